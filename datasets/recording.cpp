#include "datasets/recording.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "datasets/resample.h"
#include "datasets/spc2015.h"

namespace pulsekd::data {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("recording '" + path + "': " + what);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\"");
  const size_t b = s.find_last_not_of(" \t\r\"");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(trim(f));
  return out;
}

// A finite number filling the whole field, or NaN.
double parse_number(const std::string& f) {
  if (f.empty()) return std::numeric_limits<double>::quiet_NaN();
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(f, &used);
  } catch (const std::exception&) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return used == f.size() && std::isfinite(v) ? v : std::numeric_limits<double>::quiet_NaN();
}

// Column index of the first header name in `names`, or -1.
int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* n : names)
    for (size_t i = 0; i < header.size(); ++i)
      if (lower(header[i]) == n) return static_cast<int>(i);
  return -1;
}

// Labels from a text file (one BPM per line; blank lines and '#' comments skipped) or a .mat.
std::vector<float> read_labels(const std::string& path) {
  if (!fs::is_regular_file(path)) fail(path, "label file does not exist or is not a file");
  std::vector<float> out;
  if (lower(fs::path(path).extension().string()) == ".mat") {
    const MatMatrix m = read_mat_double(path, "");
    if (m.rows != 1 && m.cols != 1) fail(path, "labels must be a W x 1 vector");
    out.assign(m.data.begin(), m.data.end());
  } else {
    std::ifstream f(path);
    std::string line;
    for (int no = 1; std::getline(f, line); ++no) {
      const std::string t = trim(line.substr(0, line.find('#')));
      if (t.empty()) continue;
      const double v = parse_number(t);
      if (std::isnan(v)) fail(path, "line " + std::to_string(no) + ": expected one heart rate in BPM, got '" + t + "'");
      out.push_back(static_cast<float>(v));
    }
  }
  for (size_t k = 0; k < out.size(); ++k)
    if (!(out[k] > 20 && out[k] < 300))
      fail(path, "label " + std::to_string(k) + " = " + std::to_string(out[k]) + " BPM is outside 20..300");
  return out;
}

}  // namespace

int64_t windows_in(int64_t samples, int rate_hz) {
  if (rate_hz <= 0) throw std::invalid_argument("windows_in: the rate must be positive");
  const int64_t window = int64_t(8) * rate_hz, shift = int64_t(2) * rate_hz;
  return samples < window ? 0 : (samples - window) / shift + 1;
}

RawSignals read_csv_recording(const std::string& path, int rate_hz, bool mean_ppg) {
  if (rate_hz < 16 || rate_hz > 2000) fail(path, "a CSV recording needs its sampling rate (--rate, whole Hz in 16..2000)");
  std::ifstream f(path);
  if (!f) fail(path, "cannot open");
  std::string line;
  if (!std::getline(f, line)) fail(path, "empty file; expected a header such as ppg,acc_x,acc_y,acc_z");
  const auto header = split_fields(line);
  const int c_ppg = find_column(header, {"ppg", "ppg1", "bvp"});
  const int c_ppg2 = find_column(header, {"ppg2"});
  const int c_acc[3] = {find_column(header, {"acc_x", "accx", "ax", "x"}), find_column(header, {"acc_y", "accy", "ay", "y"}),
                        find_column(header, {"acc_z", "accz", "az", "z"})};
  if (c_ppg < 0 || c_acc[0] < 0 || c_acc[1] < 0 || c_acc[2] < 0)
    fail(path, "the header '" + line + "' must name the columns ppg (or ppg1), acc_x, acc_y and acc_z");
  RawSignals rec;
  rec.name = fs::path(path).stem().string();
  rec.rate_hz = rate_hz;
  for (int no = 2; std::getline(f, line); ++no) {
    if (trim(line).empty()) continue;
    const auto fields = split_fields(line);
    if (fields.size() != header.size())
      fail(path, "line " + std::to_string(no) + " has " + std::to_string(fields.size()) + " fields, the header " +
                     std::to_string(header.size()));
    const auto value = [&](int c) {
      const double v = parse_number(fields[c]);
      if (std::isnan(v))
        fail(path, "line " + std::to_string(no) + ", column " + header[c] + ": '" + fields[c] + "' is not a finite number");
      return static_cast<float>(v);
    };
    float ppg = value(c_ppg);
    if (c_ppg2 >= 0 && mean_ppg) ppg = 0.5f * (ppg + value(c_ppg2));
    if (c_ppg2 >= 0 && !mean_ppg) rec.ppg2.push_back(value(c_ppg2));
    rec.ppg.push_back(ppg);
    for (int a = 0; a < 3; ++a) rec.acc[a].push_back(value(c_acc[a]));
  }
  if (windows_in(static_cast<int64_t>(rec.ppg.size()), rate_hz) < 1)
    fail(path, std::to_string(rec.ppg.size()) + " samples at " + std::to_string(rate_hz) + " Hz is shorter than one 8 s window");
  return rec;
}

RawSignals read_recording(const RecordingOptions& opt) {
  if (!fs::is_regular_file(opt.path)) fail(opt.path, "does not exist or is not a file");
  const std::string ext = lower(fs::path(opt.path).extension().string());
  RawSignals rec;
  if (ext == ".mat") {
    if (opt.rate_hz != 0 && opt.rate_hz != kSpcRateHz)
      fail(opt.path, "SPC 2015 MAT-files are sampled at 125 Hz; drop --rate or give 125");
    Spc2015Options so;
    so.ppg = opt.mean_ppg ? Spc2015Options::Mean12 : Spc2015Options::Ppg1;
    rec = spc_signals(read_spc2015_recording(opt.path, ""), so);
  } else if (ext == ".csv") {
    if (opt.rate_hz != std::floor(opt.rate_hz)) fail(opt.path, "--rate must be a whole number of Hz");
    rec = read_csv_recording(opt.path, static_cast<int>(opt.rate_hz), opt.mean_ppg);
  } else {
    fail(opt.path, "unknown kind of recording (expected .mat from IEEE SPC 2015, or .csv)");
  }
  if (!opt.labels.empty()) {
    rec.bpm = read_labels(opt.labels);
    const int64_t w = windows_in(static_cast<int64_t>(rec.ppg.size()), rec.rate_hz);
    if (static_cast<int64_t>(rec.bpm.size()) != w)
      fail(opt.labels, std::to_string(rec.bpm.size()) + " labels, but the recording has " + std::to_string(w) +
                           " windows of 8 s with a 2 s shift");
  }
  return rec;
}

void append_windows(WindowSet& ws, const RawSignals& rec, const std::string& rates_text) {
  const int64_t n = static_cast<int64_t>(rec.ppg.size());
  for (int a = 0; a < 3; ++a)
    if (static_cast<int64_t>(rec.acc[a].size()) != n) fail(rec.name, "PPG and ACC rows differ in length");
  if (!rec.ppg2.empty() && static_cast<int64_t>(rec.ppg2.size()) != n) fail(rec.name, "PPG1 and PPG2 rows differ in length");
  const int64_t W = windows_in(n, rec.rate_hz);
  if (W < 1) fail(rec.name, "shorter than one 8 s window");
  if (!rec.bpm.empty() && static_cast<int64_t>(rec.bpm.size()) != W)
    fail(rec.name, std::to_string(rec.bpm.size()) + " labels for " + std::to_string(W) + " windows");
  const int g = std::gcd(32, rec.rate_hz);
  const int up = 32 / g, down = rec.rate_hz / g;
  const std::vector<float> rows32[kRows] = {  // (4, ceil(N * 32 / rate))
      resample_poly(rec.ppg, up, down), resample_poly(rec.acc[0], up, down), resample_poly(rec.acc[1], up, down),
      resample_poly(rec.acc[2], up, down)};
  if (kShift * (W - 1) + kWindow > static_cast<int64_t>(rows32[0].size()))
    fail(rec.name, "too few samples for " + std::to_string(W) + " windows");
  SubjectInfo info;
  info.name = rec.name;
  info.first_window = ws.size();
  info.num_windows = W;
  info.duration_s = static_cast<double>(n) / rec.rate_hz;
  info.rates = rates_text;
  if (!rec.bpm.empty()) {
    info.label_min = *std::min_element(rec.bpm.begin(), rec.bpm.end());
    info.label_max = *std::max_element(rec.bpm.begin(), rec.bpm.end());
  }
  const int32_t sidx = static_cast<int32_t>(ws.subjects.size());
  const size_t w0 = static_cast<size_t>(ws.size());
  ws.x.resize((w0 + W) * kRows * kWindow);
  for (int64_t k = 0; k < W; ++k) {
    float* dst = ws.x.data() + (w0 + k) * kRows * kWindow;  // (4, 256)
    for (int c = 0; c < kRows; ++c) std::copy_n(rows32[c].begin() + k * kShift, kWindow, dst + c * kWindow);
    ws.hr.push_back(rec.bpm.empty() ? std::numeric_limits<float>::quiet_NaN() : rec.bpm[k]);
    ws.subject.push_back(sidx);
  }
  // The second PPG channel is kept only while every window of the set has one.
  const bool keep_ppg2 = !rec.ppg2.empty() && (w0 == 0 || ws.has_ppg2());
  if (keep_ppg2) {
    const std::vector<float> ppg2_32 = resample_poly(rec.ppg2, up, down);  // (ceil(N * 32 / rate))
    ws.ppg2.resize((w0 + W) * kWindow);
    for (int64_t k = 0; k < W; ++k) std::copy_n(ppg2_32.begin() + k * kShift, kWindow, ws.ppg2.begin() + (w0 + k) * kWindow);
  } else {
    ws.ppg2.clear();
  }
  ws.subjects.push_back(info);
}

WindowSet load_recording(const RecordingOptions& opt) {
  const RawSignals rec = read_recording(opt);
  WindowSet ws;
  ws.source = "recording:" + opt.path;
  append_windows(ws, rec, "PPG, ACC " + std::to_string(rec.rate_hz) + " Hz");
  return ws;
}

}  // namespace pulsekd::data
