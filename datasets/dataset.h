// The in-memory form every dataset reader produces and every trainer consumes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pulsekd::data {

constexpr int kRows = 4;          // PPG, accX, accY, accZ
constexpr int kWindow = 256;      // 8 s at 32 Hz
constexpr int kWindowValues = kRows * kWindow;  // floats in one window (4 x 256 = 1024)
constexpr int kShift = 64;        // 2 s at 32 Hz
constexpr double kRateHz = 32.0;  // model input sampling rate

// One subject (or one recording, for sets with one recording per subject).
struct SubjectInfo {
  std::string name;            // "S1", "DATA_01_TYPE01", "synth03", ...
  int64_t first_window = 0;    // index of its first window in WindowSet
  int64_t num_windows = 0;
  double duration_s = 0;       // length of the source recording
  std::string rates;           // native sampling rates, human readable ("BVP 64 Hz, ACC 32 Hz")
  float label_min = 0, label_max = 0;
};

// Windows of all subjects, concatenated subject by subject, in time order inside each subject.
struct WindowSet {
  std::string source;                 // the SPEC it was read from, e.g. "spc2015:/path"
  std::vector<float> x;               // (N, kRows, kWindow) row-major
  std::vector<float> hr;              // (N) heart-rate label, BPM
  std::vector<int32_t> subject;       // (N) index into subjects
  std::vector<SubjectInfo> subjects;  // (S)
  // (N, kWindow) a second PPG channel of the same sensor (SPC 2015 has two), resampled and cut
  // as row 0; empty unless EVERY window has one (the classical tracker uses it, models do not).
  std::vector<float> ppg2;
  int64_t size() const { return static_cast<int64_t>(hr.size()); }
  const float* window(int64_t i) const { return x.data() + i * kRows * kWindow; }
  bool has_ppg2() const { return !ppg2.empty(); }
  const float* ppg2_window(int64_t i) const { return ppg2.data() + i * kWindow; }  // (kWindow); needs has_ppg2()
};

}  // namespace pulsekd::data
