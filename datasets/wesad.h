// WESAD (Schmidt, Reiss, Duerichen, Marberger, Van Laerhoven, "Introducing WESAD, a
// multimodal dataset for wearable stress and affect detection", ICMI 2018):
// DIR/S{i}/S{i}.pkl, i = 2..17 without 1 and 12, a Python-2 pickle of
//   {'signal': {'chest': {'ECG' (N,1) 700 Hz, ...}, 'wrist': {'ACC' (n,3) 32 Hz, 'BVP' (m,1) 64 Hz, ...}},
//    'label': (N,) 700 Hz study-protocol labels (NOT heart rate), 'subject': 'S2'}
// Heart-rate labels come from the chest ECG: R peaks (detect_rpeaks), then per 8 s window
// with 2 s shift the mean instantaneous HR 60/RR of the beats inside it; RR intervals
// outside 30-220 BPM are dropped; a window with none is interpolated from its neighbours.
// Chest and wrist start together, so window k is [2k, 2k+8) s on both.
#pragma once
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

struct WesadOptions {
  std::vector<int> subjects;  // empty = all of S2..S17 (no S1, S12) found
};

WindowSet load_wesad(const std::string& dir, const WesadOptions& options = {});

// The labelling rule above, exposed for tests: beat times in seconds -> one HR per window
// k < count, window k = [k*2, k*2+8) s. Throws DatasetError (naming `what`) if no window
// has a usable interval.
std::vector<float> wesad_window_hr(const std::vector<double>& beats_s, int64_t count,
                                   const std::string& what);

}  // namespace pulsekd::data
