// Dataset specs: one string names a dataset and where it lives.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace pulsekd::data {

// SPEC forms:
//   synth[:SEED]   built-in synthetic set (make_synthetic, default options, SEED default 1)
//   spc2015:DIR    IEEE SPC 2015 (load_spc2015, PPG1, with the extra recording)
//   dalia:DIR      PPG-DaLiA (load_dalia, default options)
//   wesad:DIR      WESAD with ECG-derived labels (load_wesad, default options)
// Anything else throws std::runtime_error listing these forms.
WindowSet load_dataset(const std::string& spec);

// The accepted forms, one line each (for error messages and --help).
const char* dataset_spec_help();

}  // namespace pulsekd::data
