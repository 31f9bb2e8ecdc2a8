// The synthetic non-running motion recordings (datasets/motion.h) as the tracker tests use them.
#pragma once
#include "datasets/motion.h"

namespace pulsekd::testing {

using data::kRateHz;
using data::kRows;
using data::kShift;
using data::kWindow;
using data::WindowSet;
constexpr double kPi = 3.14159265358979323846;
using Recording = data::MotionRecording;
inline void add_subject(WindowSet& ws, const std::string& name, const Recording& r) {
  data::append_motion_recording(ws, name, r);
}

inline data::WindowSet make_motion_set(uint64_t seed, double artefact_gain) {
  data::MotionOptions o;
  o.first_seed = seed;
  o.artefact_gain = artefact_gain;
  data::WindowSet ws = data::make_motion_set(o);
  ws.source = "test:motion";
  return ws;
}

}  // namespace pulsekd::testing
