// The HMM forward filter in the firmware (mcu/runtime/pk_hmm.h, docs/MCU.md "HMM forward
// filter"): its settings, the tables `export-mcu --hmm-forward` writes into model_data.cpp, and
// the same compiled filter run on the host (bit-identical with the firmware's output).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mcu/runtime/pk_hmm.h"

namespace pulsekd::deploy {

struct McuHmm {
  // States: `states` bin centres evenly spread over [lo_bpm, hi_bpm] (bin k's centre
  // lo + (k + 0.5) (hi - lo) / states: the binned head's 64 bins over 30-210 BPM by default).
  int states = 64;
  double lo_bpm = 30, hi_bpm = 210;
  // The transition prior (tracking::TransitionPrior: fit scale_bpm to training labels).
  double prior_scale_bpm = 1.5, prior_floor = 1e-4;
  // Regression head: the likelihood around each window's estimate (tracking::laplace_likelihoods).
  double laplace_bpm = 5, outlier = 0.01;
  int half_width = -1;  // band half-width W; < 0: kernels::hmm_band_width with kHmmBandTol
  void validate() const;  // throws std::invalid_argument naming the export-mcu flag
  std::vector<double> centres() const;  // (states) BPM
};

// The firmware's tables in float (computed in double, rounded once). Not copyable: view() points
// into the vectors.
struct McuHmmTables {
  std::vector<float> centres, taps, row_scale;  // (S), (W + 1), (S)
  float jump = 0, out_scale = 0, laplace_bpm = 0, outlier = 0;
  McuHmmTables() = default;
  McuHmmTables(const McuHmmTables&) = delete;
  McuHmmTables& operator=(const McuHmmTables&) = delete;
  pk_hmm view() const;
};
// out_scale: the quantised model's BPM per raw output unit (QuantModel::out_scale).
void mcu_hmm_tables(McuHmmTables& t, const McuHmm& h, float out_scale);

// The firmware's filter (pk_hmm_step) on the host over one recording's raw outputs (T) in time
// order, starting from a uniform prior: filtered heart rates (T) equal to the firmware's.
std::vector<float> mcu_hmm_track(const McuHmmTables& t, const std::vector<int32_t>& raw);

// model_data.cpp text: the tables (exact hexadecimal float literals) and pk_the_hmm.
std::string mcu_hmm_source(const McuHmmTables& t);

}  // namespace pulsekd::deploy
