// The classical tracker beside the networks: its per-window spectra as an HMM likelihood (alone,
// or multiplied into a network's), and its own evaluation per subject.
#pragma once
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "kd/evaluate.h"
#include "tracking/hmm.h"

namespace pulsekd::kd {

// The WFPV tracker (tracking/wfpv.h) as a likelihood over the HMM's heart-rate grid, for
// windows [first, first + count) of ws, from one of two sources:
//  - Estimate (the default): a Laplace of scale `laplace_bpm` around the tracker's own estimate
//    (wfpv_track) plus an `outlier` floor (tracking::laplace_likelihoods);
//  - Spectrum: its Wiener-filtered PPG spectrum (wfpv_spectra), each row scaled to max 1,
//    raised to `sharpness` (> 1 trusts the spectral peak more), plus `floor` so a window whose
//    spectrum misses the heart rate cannot veto it.
// Measured on the 13 SPC 2015 recordings (docs/results/generalisation.md): the HMM (Viterbi)
// over the estimate improves the tracker (1.62 -> 1.52 BPM), over the spectrum it does not
// (4.9 BPM at best): the spectrum lacks WFPV's phase-vocoder refinement and tracking rules,
// and the HMM locks onto motion lines on DATA_10.
struct TrackerLikelihood {
  enum class Source { Estimate, Spectrum };
  Source source = Source::Estimate;
  double laplace_bpm = 2.0, outlier = 0.01;  // Estimate
  double sharpness = 1.0, floor = 0.02;      // Spectrum
  void validate() const;  // throws std::invalid_argument naming the bad field
  tracking::Likelihoods operator()(const data::WindowSet& ws, int64_t first, int64_t count, const tracking::HrGrid& grid) const;
};
TrackerLikelihood::Source parse_tracker_source(const std::string& name, const std::string& flag);  // estimate|spectrum

// The tracker alone on `subjects` of ws: raw = its own peak track (wfpv_track); post = the HMM
// over its likelihood `lik` (pp.mode forward/viterbi, pp.prior, pp.grid), or the raw track for None
// (WFPV smooths its own track; PULSE's clamp is for networks).
EvalResult evaluate_tracker(const data::WindowSet& ws, const std::vector<int>& subjects, const PostProcess& pp,
                            const TrackerLikelihood& lik = {});

}  // namespace pulsekd::kd
