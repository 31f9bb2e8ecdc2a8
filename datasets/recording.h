// One raw recording given by a user (`pulsekd predict --recording FILE`): an IEEE SPC 2015
// MAT-file (any of its layouts) or a plain CSV of PPG and 3-axis ACC, cut into the models'
// 8 s windows at 32 Hz with a 2 s shift. Labels are optional.
#pragma once
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/spc2015.h"

namespace pulsekd::data {

struct RecordingOptions {
  std::string path;         // .mat (SPC 2015: `sig` 6xN or 5xN at 125 Hz) or .csv
  std::string labels;       // optional: .mat (BPM0 / True BPM, W x 1) or a text file of one BPM per line
  double rate_hz = 0;       // CSV only: sampling rate of the rows (whole Hz, 16..2000)
  bool mean_ppg = false;    // average PPG1 and PPG2 when the file has two PPG channels
};

// Signals at their native rate: rows of equal length N.
struct RawSignals {
  std::string name;         // file stem
  int rate_hz = 0;
  std::vector<float> ppg;   // (N)
  std::vector<float> acc[3];  // (3, N), in g
  std::vector<float> ppg2;  // (N) the second PPG channel when the file has one (and ppg is not the mean), else empty
  std::vector<float> bpm;   // (W) labels of window k = [2k s, 2k + 8 s); empty when unlabelled
};

// An SPC 2015 recording as the windowing sees it (PPG = PPG1 or the mean of both, 125 Hz).
RawSignals spc_signals(const Spc2015Recording& r, const Spc2015Options& opt);

// W = floor((N / rate - 8) / 2) + 1 windows (0 when shorter than 8 s).
int64_t windows_in(int64_t samples, int rate_hz);

// Reads a CSV: a header naming the columns (case-insensitive) ppg (or ppg1, with optional ppg2),
// acc_x, acc_y, acc_z (or accx/ax ...), optionally time (ignored), then one row of numbers per
// sample. Throws std::runtime_error naming the file, the line and what was expected.
RawSignals read_csv_recording(const std::string& path, int rate_hz, bool mean_ppg);

// Reads either kind (by the file's extension), then the optional labels.
RawSignals read_recording(const RecordingOptions& opt);

// Appends the recording as one subject: each row resampled to 32 Hz (resample_poly), window k
// = [64k, 64k + 256); labels NaN when the recording has none.
void append_windows(WindowSet& ws, const RawSignals& rec, const std::string& rates_text);

// read_recording + append_windows into a new set whose source is "recording:PATH".
WindowSet load_recording(const RecordingOptions& opt);

}  // namespace pulsekd::data
