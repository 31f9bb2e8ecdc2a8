// Knowledge-distillation losses (../shared/docs/KD-STRATEGIES.md, docs/KD-LOSSES.md): PULSE,
// relational (Park et al. 2019), hard (DeiT), soft (Hinton et al. 2015), decoupled (Zhao et
// al. 2022) and FitNets hints (Romero et al. 2015), plus the binned-head target helpers.
// Every loss returns a scalar Var of shape (1); gradients flow to the student inputs and,
// where the loss is differentiable in them, to the teacher inputs too (normally the teacher
// runs under NoGradGuard and its outputs are constants). Shapes are checked; a mismatch
// throws ShapeError naming the loss and the shapes.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph.h"
#include "engine/module.h"

namespace pulsekd {

// ---------------------------------------------------------------------------------------
// Regression head (HR in BPM)

// The task loss by name: "l1", "mse", "huber" (delta 1), "logcosh" (or "log_cosh"); mean
// over elements. Unknown names throw std::invalid_argument.
Var regression_task_loss(Var pred, Var target, const std::string& task);

// PULSE (Kasnesis et al. 2025): g·(b·L1(ŷs, y) + (1−b)·L1(ŷs, ŷt)) + (1−g)·MSE(σ(f_t), σ(f_s)),
// σ = softmax over the feature axis. hr_s, hr_t, y: (B) (or (B, 1)); dense_s, dense_t: (B, D),
// D = 32 for PULSE.
Var pulse_kd_loss(Var hr_s, Var hr_t, Var y, Var dense_s, Var dense_t, real b = real(0.5),
                  real g = real(0.6667));

// DeiT-style hard distillation for the regression head:
// ½·L_task(ŷs, y) + ½·L_task(ŷs, ŷt), task as regression_task_loss.
Var hard_kd_loss_regression(Var hr_s, Var hr_t, Var y, const std::string& task = "l1");

// ---------------------------------------------------------------------------------------
// Relational KD (Park et al. 2019). f_s (B, Ds), f_t (B, Dt); Ds and Dt may differ.
// Huber(d) = ½d² if |d| ≤ 1 else |d| − ½. Pairs or triplets with a zero distance contribute
// a zero unit vector (no NaN, zero gradient through that distance).

// ψ_D = ‖x_i − x_j‖ / μ, μ = mean of the non-zero distances over pairs i ≠ j (ψ = 0 if every
// distance is zero); mean over the B(B−1) ordered pairs i ≠ j. 0 for B < 2.
Var rkd_distance_loss(Var f_s, Var f_t);
// ψ_A(i, j, k) = ⟨e_ij, e_kj⟩, e_ij = (x_i − x_j)/‖x_i − x_j‖; mean over the B(B−1)(B−2)
// triplets of distinct samples. O(B³·D). 0 for B < 3.
Var rkd_angle_loss(Var f_s, Var f_t);

// ---------------------------------------------------------------------------------------
// Binned head: logits (B, K), target_probs (B, K) (gaussian_bin_targets), all need K ≥ 2.

// ½·CE(σ(z_s), y) + ½·CE(σ(z_s), one-hot argmax z_t) (first maximum on ties). No gradient
// reaches the teacher (argmax).
Var hard_kd_loss_binned(Var logits_s, Var logits_t, Var target_probs);

// (1−α)·CE(y, σ(z_s)) + α·T²·KL(σ(z_t/T) ‖ σ(z_s/T)), KL batch mean.
Var soft_kd_loss(Var logits_s, Var logits_t, Var target_probs, real T = real(4), real alpha = real(0.9));

// CE(y, σ(z_s)) + warmup_factor·T²·(α·TCKD + β·NCKD), batch mean; target_bin (B) the
// ground-truth bin of each sample (target_bin_index). TCKD = KL([p_t, 1−p_t]_T ‖ [p_t, 1−p_t]_S),
// NCKD = KL(p̂_T ‖ p̂_S), p̂ the softmax over the non-target logits (at temperature T).
// warmup_factor = min(epoch / warmup, 1), computed by the caller.
Var dkd_loss(Var logits_s, Var logits_t, Var target_probs, const std::vector<int>& target_bin,
             real alpha = real(1), real beta = real(8), real T = real(4), real warmup_factor = real(1));

// ---------------------------------------------------------------------------------------
// FitNets (Romero et al. 2015)

// MSE(r(f_s), f_t), mean over every element; equal shapes.
Var fitnet_hint_loss(Var f_s_adapted, Var f_t);

// The learned regressor r: a Linear layer mapping student width Ds to teacher width Dt,
// applied over the last axis. Parameters "weight" (Dt, Ds) and "bias" (Dt), PyTorch-default
// initialisation (uniform ±1/sqrt(Ds)).
class FitNetAdapter : public Module {
 public:
  FitNetAdapter(int64_t in_features, int64_t out_features, uint64_t seed = 0);
  void init(uint64_t seed);
  // f_s (..., Ds) → (..., Dt)
  Var forward(Graph& g, Var f_s);
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Parameter* weight_;
  Parameter* bias_;
};

// Average-pools x (N, T, C) over time to t_out steps; T must be a multiple of t_out.
Var pool_time_to(Var x, int64_t t_out);
// Feature maps (N, T_s, C_s) and (N, T_t, C_t): the longer one is average-pooled (kernel =
// stride = ratio) to the shorter when one length divides the other, e.g. the PULSE teacher's
// 16 steps to the student's 8. Channels are left alone (the adapter maps them). Returns
// (student, teacher) with equal lengths.
std::pair<Var, Var> match_time_lengths(Var f_s, Var f_t);

// ---------------------------------------------------------------------------------------
// Binned-head helpers (not ops)

// Bin centres lo + (i + ½)·(hi − lo)/bins, as PulseModel::bin_centres.
std::vector<real> bin_centres(int bins, double lo, double hi);
// (B, bins) row-major: a Gaussian bump exp(−(c_k − hr)²/(2σ²)) normalised over the bins.
// An HR outside [lo, hi] puts its mass on the nearest edge bins (never NaN).
std::vector<real> gaussian_bin_targets(const float* hr, int64_t B, int bins, double lo, double hi,
                                       double sigma = 1.5);
// The bin holding each HR: floor((hr − lo)/step), clamped to [0, bins − 1].
std::vector<int> target_bin_index(const float* hr, int64_t B, int bins, double lo, double hi);

}  // namespace pulsekd
