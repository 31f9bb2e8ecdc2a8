// Temporal belief tracking of heart rate: a hidden-Markov model over heart-rate bins.
// Each 2 s step gives a likelihood over the bins (a binned network's softmax, a Laplace
// around a regression output, or a tracker's filtered spectrum); a transition prior
// p(HR_t | HR_t-1), fitted to training heart-rate traces, ties the steps together. Forward
// filtering uses only the past (online: the MCU can run it over 64 bins); Viterbi decodes the
// whole recording (offline). The idea follows BeliefPPG: V. Bieri, P. Streli, B. U. Demirel,
// C. Holz, "BeliefPPG: Uncertainty-aware Heart Rate Estimation from PPG signals via Belief
// Propagation", UAI 2023.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/kernels/hmm_forward.h"

namespace pulsekd::tracking {

// Heart-rate states: bin centres in BPM, strictly increasing.
struct HrGrid {
  std::vector<double> bpm;  // (S)
  // n centres evenly spread over [lo, hi] (lo and hi included); n >= 2, lo < hi.
  static HrGrid uniform(double lo, double hi, int n);
  int size() const { return static_cast<int>(bpm.size()); }
  int nearest(double hr) const;  // index of the closest centre
  // Distance between neighbouring centres; throws std::invalid_argument when they are not
  // evenly spaced (the banded transition needs it).
  double step() const;
};

// The transition on a uniform grid as a band (engine/kernels/hmm_forward.h): W + 1 taps, a
// per-row normaliser and the uniform jump. Owns the arrays that view() points into.
struct TransitionBand {
  int states = 0, half_width = 0;
  std::vector<double> taps;       // (W + 1)
  std::vector<double> row_scale;  // (S)
  double jump = 0;
  kernels::HmmBand<double> view() const;
};

// p(j | i) proportional to exp(-|bpm_j - bpm_i| / scale) (a Laplace on the change per step),
// mixed with `floor` of a uniform jump so that a lost track can be re-acquired.
struct TransitionPrior {
  double scale_bpm = 1.5;  // Laplace scale b = mean |HR_t - HR_t-1| of the training traces
  double floor = 1e-4;     // probability mass of a uniform jump, 0 <= floor < 1
  // Maximum-likelihood Laplace scale of the per-step changes of `traces` (each one subject's
  // labels in time order, 2 s apart), floored at `min_scale_bpm` (no narrower than the grid
  // can express). Throws std::invalid_argument when the traces hold no step.
  static TransitionPrior fit(const std::vector<std::vector<float>>& traces, double min_scale_bpm = 0.5);
  // (S, S) row-stochastic matrix, row i = p(. | i).
  std::vector<double> matrix(const HrGrid& grid) const;
  // The same transition as a band of half-width W (< 0: the smallest W whose dropped taps are
  // all below kernels::kHmmBandTol; S - 1 gives matrix() exactly). The grid must be uniform.
  TransitionBand band(const HrGrid& grid, int half_width = -1) const;
  void validate() const;  // throws std::invalid_argument naming the bad field
};

// Per-step likelihoods: (T, S) row-major, every entry >= 0 and finite, no all-zero row.
struct Likelihoods {
  int64_t steps = 0;
  int states = 0;
  std::vector<double> p;  // (steps, states)
  void validate(const char* who) const;
};

// Forward filtering: posterior (T, S), row t = p(HR_t | observations 0..t), each row sums to 1.
// init: (S) prior over the first step's states (empty: uniform).
std::vector<double> forward_filter(const Likelihoods& lik, const std::vector<double>& transition /*(S,S)*/,
                                   const std::vector<double>& init = {});
// Viterbi: the most probable state sequence (T) given all observations.
std::vector<int> viterbi(const Likelihoods& lik, const std::vector<double>& transition /*(S,S)*/,
                         const std::vector<double>& init = {});

// How a track of estimates is read from the model.
enum class TrackMode { None, Forward, Viterbi };
TrackMode parse_track_mode(const std::string& name, const std::string& flag);  // none|forward|viterbi
const char* track_mode_name(TrackMode m);

// Estimates (T) in BPM: Forward -> the median of each filtered posterior (the estimate that
// minimises the expected absolute error), filtered with prior.band(grid) by the freestanding
// loops the firmware runs (engine/kernels/hmm_forward.h); Viterbi -> the centres of the decoded path.
std::vector<float> track(const Likelihoods& lik, const HrGrid& grid, const TransitionPrior& prior, TrackMode mode);

// Likelihoods of point estimates: a Laplace of scale `scale_bpm` around each estimate (peak 1),
// plus a constant `outlier` (0 <= outlier < 1): an estimate may be a motion artefact far from
// the heart rate, and without that floor one such step outweighs the transition prior and
// drags the track away (a pure Laplace gives the truth exp(-90/3) at a 90 BPM outlier).
Likelihoods laplace_likelihoods(const std::vector<float>& hr, const HrGrid& grid, double scale_bpm,
                                double outlier = 0.01);
// A distribution given on other centres (e.g. a binned network's 64 bins), linearly
// interpolated onto `grid`, plus `eps` times its mean so no state is impossible.
Likelihoods resample_likelihoods(const std::vector<double>& p /*(T, S_src)*/, const std::vector<double>& src_bpm,
                                 const HrGrid& grid, double eps = 1e-3);
// Element-wise product of two likelihoods on the same grid, each row rescaled to max 1.
Likelihoods fuse(const Likelihoods& a, const Likelihoods& b);

}  // namespace pulsekd::tracking
