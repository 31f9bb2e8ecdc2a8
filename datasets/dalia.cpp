#include "datasets/dalia.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "formats/pickle_numpy.h"
#include "datasets/resample.h"

namespace pulsekd::data {
namespace wrist {

using Kind = PyObject::Kind;

PyRef load_pickle_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DatasetError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw DatasetError(path + ": read error");
  PickleOptions opt;
  opt.allow_global = numpy_global_allowed;
  return unpickle(bytes.data(), bytes.size(), path, opt);
}

PyRef lookup(const PyRef& root, const std::vector<std::string>& keys, const std::string& path) {
  PyRef v = root;
  std::string at;
  for (const auto& k : keys) {
    if (v->kind != Kind::Dict)
      throw DatasetError(path + ": " + (at.empty() ? "top level" : "'" + at + "'") + " is a " + v->type_name() +
                         ", expected a dict with key '" + k + "'");
    PyRef next = v->get(k);
    at += (at.empty() ? "" : "/") + k;
    if (!next) throw DatasetError(path + ": missing key '" + at + "'");
    v = next;
  }
  return v;
}

std::vector<float> signal(const PyRef& v, int cols, const std::string& path, const std::string& key,
                          size_t* rows) {
  const NumpyArray a = numpy_array(v, path, "'" + key + "'");
  const bool ok = (a.shape.size() == 2 && a.shape[1] == cols) || (cols == 1 && a.shape.size() == 1);
  if (!ok) {
    std::string sh;
    for (size_t k = 0; k < a.shape.size(); ++k) sh += (k ? "," : "") + std::to_string(a.shape[k]);
    throw DatasetError(path + ": '" + key + "' has shape (" + sh + "), expected (N, " + std::to_string(cols) + ")" +
                       (cols == 1 ? " or (N,)" : ""));
  }
  if (a.kind == 'b') throw DatasetError(path + ": '" + key + "' has dtype " + a.dtype_text() + ", expected numbers");
  const std::vector<double> d = a.to_doubles();  // (rows * cols) row-major
  std::vector<float> out(d.size());              // (rows * cols) row-major
  for (size_t k = 0; k < d.size(); ++k) {
    if (!std::isfinite(d[k]))
      throw DatasetError(path + ": '" + key + "' sample " + std::to_string(k / cols) + " is not finite (" +
                         std::to_string(d[k]) + "); expected finite samples");
    out[k] = float(d[k]);
  }
  *rows = a.shape.empty() ? 0 : size_t(a.shape[0]);
  return out;
}

Signals read(const PyRef& root, const std::string& path) {
  Signals s;
  s.bvp = signal(lookup(root, {"signal", "wrist", "BVP"}, path), 1, path, "signal/wrist/BVP", &s.n_bvp);
  s.acc = signal(lookup(root, {"signal", "wrist", "ACC"}, path), 3, path, "signal/wrist/ACC", &s.n_acc);
  return s;
}

int64_t windows_that_fit(const Signals& s) {
  auto fit = [](size_t n, size_t win, size_t shift) { return n < win ? int64_t(0) : int64_t((n - win) / shift + 1); };
  return std::min(fit(s.n_acc, kWindow, kShift), fit(s.n_bvp, 2 * kWindow, 2 * kShift));
}

void append(WindowSet& out, const Signals& s, bool antialias_bvp, const std::vector<float>& labels,
            SubjectInfo info) {
  std::vector<float> bvp32;  // (ceil(n_bvp / 2)) 32 Hz, anti-aliased path only
  if (antialias_bvp) bvp32 = resample_poly(s.bvp, 1, 2);
  const int64_t n = int64_t(labels.size());
  info.first_window = out.size();
  info.num_windows = n;
  info.label_min = n ? *std::min_element(labels.begin(), labels.end()) : 0.f;
  info.label_max = n ? *std::max_element(labels.begin(), labels.end()) : 0.f;
  const int32_t sid = int32_t(out.subjects.size());
  out.x.reserve(out.x.size() + size_t(n) * kRows * kWindow);
  for (int64_t k = 0; k < n; ++k) {
    for (int j = 0; j < kWindow; ++j)  // row 0: PPG at 32 Hz
      out.x.push_back(antialias_bvp ? bvp32[size_t(k * kShift + j)] : s.bvp[size_t(2 * (k * kShift + j))]);
    for (int c = 0; c < 3; ++c)  // rows 1-3: accX, accY, accZ
      for (int j = 0; j < kWindow; ++j) out.x.push_back(s.acc[size_t(k * kShift + j) * 3 + size_t(c)]);
    out.hr.push_back(labels[size_t(k)]);
    out.subject.push_back(sid);
  }
  out.subjects.push_back(std::move(info));
}

std::string subject_path(const std::string& dir, int i) {
  const std::string s = "S" + std::to_string(i);
  return dir + "/" + s + "/" + s + ".pkl";
}

std::vector<int> subjects(const std::string& dir, const std::vector<int>& valid,
                          const std::vector<int>& requested, const std::string& dataset) {
  auto exists = [](const std::string& p) { struct stat st; return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode); };
  const std::string range = "S" + std::to_string(valid.front()) + ".." + "S" + std::to_string(valid.back());
  std::vector<int> out;
  if (!requested.empty()) {
    for (int i : requested) {
      if (std::find(valid.begin(), valid.end(), i) == valid.end())
        throw DatasetError(dir + ": S" + std::to_string(i) + " is not a " + dataset + " subject (" + range + ")");
      if (!exists(subject_path(dir, i)))
        throw DatasetError(subject_path(dir, i) + ": subject file not found (expected " + dir + "/S{i}/S{i}.pkl)");
      out.push_back(i);
    }
    return out;
  }
  for (int i : valid)
    if (exists(subject_path(dir, i))) out.push_back(i);
  if (out.empty())
    throw DatasetError(dir + ": no " + dataset + " subject found: expected " + dir + "/S{i}/S{i}.pkl for i in " +
                       range + " (the folder of the official download)");
  return out;
}

WindowSet load_all(const std::string& dir, const std::vector<int>& valid, const std::vector<int>& requested,
                   const std::string& dataset, const std::string& source, bool antialias_bvp,
                   const std::string& rates, const LabelFn& labels) {
  WindowSet out;
  out.source = source + dir;
  for (int i : subjects(dir, valid, requested, dataset)) {
    const std::string path = subject_path(dir, i);
    const PyRef root = load_pickle_file(path);
    const Signals s = read(root, path);
    SubjectInfo info;
    info.name = "S" + std::to_string(i);
    info.duration_s = double(s.n_bvp) / 64.0;
    info.rates = rates;
    append(out, s, antialias_bvp, labels(root, path, s), std::move(info));
  }
  return out;
}

}  // namespace wrist

WindowSet load_dalia(const std::string& dir, const DaliaOptions& options) {
  std::vector<int> valid;
  for (int i = 1; i <= 15; ++i) valid.push_back(i);
  auto labels = [](const PyRef& root, const std::string& path, const wrist::Signals& s) {
    size_t n_label = 0;
    std::vector<float> label = wrist::signal(wrist::lookup(root, {"label"}, path), 1, path, "label", &n_label);
    const int64_t n = std::min<int64_t>(int64_t(n_label), wrist::windows_that_fit(s));
    if (n <= 0)
      throw DatasetError(path + ": no complete window: " + std::to_string(s.n_bvp) + " BVP and " +
                         std::to_string(s.n_acc) + " ACC samples, " + std::to_string(n_label) +
                         " labels (a window needs 512 BVP and 256 ACC samples and a label)");
    label.resize(size_t(n));
    return label;
  };
  return wrist::load_all(dir, valid, options.subjects, "PPG-DaLiA", "dalia:", options.antialias_bvp,
                         "BVP 64 Hz, ACC 32 Hz", labels);
}

}  // namespace pulsekd::data
