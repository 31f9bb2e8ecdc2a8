#include "datasets/wesad.h"

#include <algorithm>

#include "datasets/dalia.h"
#include "datasets/ecg.h"

namespace pulsekd::data {

namespace {
constexpr double kEcgHz = 700.0;
constexpr double kWindowS = 8.0, kShiftS = 2.0;
constexpr double kMinBpm = 30.0, kMaxBpm = 220.0;
}  // namespace

std::vector<float> wesad_window_hr(const std::vector<double>& beats, int64_t count, const std::string& what) {
  std::vector<double> hr(size_t(std::max<int64_t>(count, 0)), -1);  // (count) BPM, -1 = no usable interval
  for (int64_t k = 0; k < count; ++k) {
    const double t0 = double(k) * kShiftS, t1 = t0 + kWindowS;
    // Beats i >= 1 with t_i in [t0, t1), each with the interval to the beat before it.
    auto it = std::lower_bound(beats.begin(), beats.end(), t0);
    double sum = 0;
    int used = 0;
    for (; it != beats.end() && *it < t1; ++it) {
      if (it == beats.begin()) continue;
      const double rr = *it - *(it - 1);
      if (rr <= 0) continue;
      const double bpm = 60.0 / rr;
      if (bpm < kMinBpm || bpm > kMaxBpm) continue;  // missed or spurious detection
      sum += bpm;
      ++used;
    }
    if (used) hr[size_t(k)] = sum / used;
  }
  // Windows with no usable interval: linear between the nearest labelled windows.
  std::vector<size_t> have;
  for (size_t k = 0; k < hr.size(); ++k)
    if (hr[k] >= 0) have.push_back(k);
  if (have.empty() && count > 0)
    throw DatasetError(what + ": no 8 s window has a heart beat interval within 30-220 BPM in the chest ECG");
  std::vector<float> out(hr.size());  // (count) BPM
  size_t j = 0;
  for (size_t k = 0; k < hr.size(); ++k) {
    while (j + 1 < have.size() && have[j + 1] <= k) ++j;
    if (hr[k] >= 0) out[k] = float(hr[k]);
    else if (k < have.front()) out[k] = float(hr[have.front()]);
    else if (j + 1 >= have.size()) out[k] = float(hr[have.back()]);
    else {
      const double a = double(k - have[j]) / double(have[j + 1] - have[j]);
      out[k] = float(hr[have[j]] * (1 - a) + hr[have[j + 1]] * a);
    }
  }
  return out;
}

WindowSet load_wesad(const std::string& dir, const WesadOptions& options) {
  std::vector<int> valid;
  for (int i = 2; i <= 17; ++i)
    if (i != 12) valid.push_back(i);
  auto labels = [](const PyRef& root, const std::string& path, const wrist::Signals& s) {
    size_t n_ecg = 0;
    const std::vector<float> ecg =  // (n_ecg) 700 Hz
        wrist::signal(wrist::lookup(root, {"signal", "chest", "ECG"}, path), 1, path, "signal/chest/ECG", &n_ecg);
    const double ecg_s = double(n_ecg) / kEcgHz;
    const int64_t fit_ecg = ecg_s < kWindowS ? 0 : int64_t((ecg_s - kWindowS) / kShiftS + 1e-9) + 1;
    const int64_t n = std::min(fit_ecg, wrist::windows_that_fit(s));
    if (n <= 0)
      throw DatasetError(path + ": no complete 8 s window: " + std::to_string(s.n_bvp) + " BVP, " +
                         std::to_string(s.n_acc) + " ACC and " + std::to_string(n_ecg) + " ECG samples");
    std::vector<double> beats;
    try {
      beats = detect_rpeaks(ecg.data(), ecg.size(), kEcgHz);
    } catch (const std::exception& e) {
      throw DatasetError(path + ": signal/chest/ECG: " + e.what());
    }
    return wesad_window_hr(beats, n, path);
  };
  // Chest and wrist start together: window k is [2k, 2k+8) s on both.
  return wrist::load_all(dir, valid, options.subjects, "WESAD", "wesad:", false,
                         "BVP 64 Hz, ACC 32 Hz, chest ECG 700 Hz (labels from R peaks)", labels);
}

}  // namespace pulsekd::data
