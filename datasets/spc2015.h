// IEEE Signal Processing Cup 2015 (TROIKA) recordings, read with libmatio.
// Dataset: Z. Zhang, Z. Pi, B. Liu, "TROIKA: A general framework for heart rate monitoring
// using wrist-type photoplethysmographic signals during intensive physical exercise",
// IEEE Trans. Biomed. Eng. 62(2):522-531, 2015. Free for academic use when cited; the files
// must not be copied into this repository (tests read ../shared/data/ieee-spc2015).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

struct Spc2015Options {
  enum Ppg { Ppg1, Mean12 } ppg = Ppg1;  // which PPG becomes row 0: PPG1, or (PPG1+PPG2)/2
  bool include_extra = true;             // also read Extra_TrainingData/DATA_S04_T01
  bool keep_ppg2 = false;                // with Ppg1: carry PPG2 as WindowSet::ppg2 (spec ?ppg2=1; the
                                         // tracker then filters both; worse on SPC 2015, kept for experiments)
};

constexpr double kSpcRateHz = 125.0;

// One recording at its native 125 Hz.
struct Spc2015Recording {
  std::string name;          // file stem: "DATA_01_TYPE01", "DATA_S04_T01", "TEST_S01_T01"
  std::string signal_path;   // the .mat with `sig`
  std::string label_path;    // the .mat with the BPM labels
  std::vector<float> ecg;    // (N) mV-ish; empty for the official test layout (no ECG row)
  std::vector<float> ppg1;   // (N)
  std::vector<float> ppg2;   // (N)
  std::vector<float> acc[3]; // (3, N) in g, x y z
  std::vector<float> bpm;    // (W) label of window k = samples [250k, 250k + 1000)
  int64_t n() const { return static_cast<int64_t>(ppg1.size()); }
  double duration_s() const { return n() / kSpcRateHz; }
};

// W = floor((N/125 - 8)/2) + 1: the number of 8 s windows with a 2 s shift in N samples
// (0 when N < 1000).
int64_t spc_expected_windows(int64_t n_samples);

// A real double matrix read from a MAT-file (column-major, as MATLAB stores it).
struct MatMatrix {
  size_t rows = 0, cols = 0;
  std::vector<double> data;  // (cols, rows): element (r, c) at data[c * rows + r]
  double at(size_t r, size_t c) const { return data[c * rows + r]; }
};

// Reads variable `var` of `path` as a real, dense, 2-D double matrix. If `var` is empty the
// file must hold "BPM0" or exactly one variable. Throws std::runtime_error naming the file
// and the variable when the file cannot be opened, the variable is missing, is not double,
// is complex/sparse/logical, has rank != 2, more than 2^25 elements, or contains NaN/Inf.
// Only little-endian MATLAB 5 files (what SPC ships); their element structure is checked
// before libmatio parses them (libmatio allocates by unchecked header sizes).
MatMatrix read_mat_double(const std::string& path, const std::string& var);

// Reads one recording: `sig` 6xN (ECG, PPG1, PPG2, ACCx, ACCy, ACCz) or 5xN without ECG
// (official test files), labels W x 1 (or 1 x W) with W = spc_expected_windows(N); with an
// empty label_path the recording is read without labels (bpm empty).
Spc2015Recording read_spc2015_recording(const std::string& signal_path,
                                        const std::string& label_path);

// All recordings under `dir`, in name order (training, then extra). `dir` may be
//  - the top folder holding Training_data/ (and Extra_TrainingData/, read if include_extra),
//  - a folder of .mat files: DATA_xx_TYPEyy.mat + DATA_xx_TYPEyy_BPMtrace.mat,
//    DATA_Sxx_Tyy.mat + BPM_Sxx_Tyy.mat, or official test files TEST_Sxx_Tyy.mat with labels
//    True_Sxx_Tyy.mat in TrueBPM/ beside or inside that folder,
//  - a folder holding TestData/ (with TrueBPM/ beside it) and no Training_data/.
std::vector<Spc2015Recording> load_spc2015_raw(const std::string& dir,
                                               const Spc2015Options& opt = {});

// Windows at 32 Hz: each row resampled 125 -> 32 Hz (resample_poly(x, 32, 125)), window k =
// [64k, 64k + 256) at 32 Hz (= [250k, 250k + 1000) at 125 Hz), one label each; each
// recording is one subject named after its file.
WindowSet spc2015_windows(const std::vector<Spc2015Recording>& recs, const Spc2015Options& opt,
                          const std::string& source);

WindowSet load_spc2015(const std::string& dir, const Spc2015Options& opt = {});

}  // namespace pulsekd::data
