#include "kd/fileutil.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <exception>
#include <stdexcept>

namespace pulsekd::kd {

void ensure_dir(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir))
    throw std::runtime_error(flag + " '" + dir + "': cannot create the directory" + (ec ? " (" + ec.message() + ")" : ""));
}

CreatedDirs::CreatedDirs() : exceptions_(std::uncaught_exceptions()) {}

CreatedDirs::~CreatedDirs() {
  if (std::uncaught_exceptions() <= exceptions_) return;  // success: keep everything
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
    std::error_code ec;
    if (std::filesystem::is_empty(*it, ec) && !ec) std::filesystem::remove(*it, ec);
  }
}

void CreatedDirs::ensure(const std::string& dir, const std::string& flag) {
  std::vector<std::string> missing;  // dir and its missing parents, deepest first
  std::filesystem::path start = std::filesystem::path(dir).lexically_normal();
  if (!start.has_filename() && start.has_parent_path()) start = start.parent_path();  // "runs/x/" -> "runs/x"
  for (std::filesystem::path p = start; !p.empty() && !std::filesystem::exists(p); p = p.parent_path()) {
    missing.push_back(p.string());
    if (p == p.parent_path()) break;
  }
  ensure_dir(dir, flag);
  made_.insert(made_.end(), missing.rbegin(), missing.rend());
}

void append_line(const std::string& path, const std::string& line) { append_file_atomic(path, line + "\n"); }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  char b[32];
  const long t = long(seconds + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

std::vector<std::string> split_list(const std::string& csv) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= csv.size()) {
    const size_t end = std::min(csv.find(',', start), csv.size());
    if (end > start) out.push_back(csv.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace pulsekd::kd
