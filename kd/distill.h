// Distillation: builds the training loss of a student from a frozen teacher with any
// combination of strategies (kd/losses.h has the formulas; docs/KD-LOSSES.md).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kd/losses.h"
#include "kd/trainer.h"
#include "models/pulse.h"

namespace pulsekd::kd {

struct DistillOptions {
  std::vector<std::string> strategies;  // pulse, rkd, hard, soft, dkd, fitnet (none = no teacher)
  std::map<std::string, double> weights;  // per strategy, default 1
  std::string task_loss = "l1";
  double pulse_b = 0.5, pulse_g = 0.6667;     // PULSE loss
  double rkd_distance = 1, rkd_angle = 2;     // RKD weights λ_D, λ_A (metric-learning setting)
  double temperature = 4, alpha = 0.9;        // soft KD
  double dkd_alpha = 1, dkd_beta = 8;         // DKD
  int dkd_warmup = 20;                        // DKD warm-up epochs
  double fitnet_lambda = 1;                   // hint weight (features are z-scored inside? no: raw)
  int fitnet_stage1_epochs = 0;               // > 0: two-stage FitNets (hint only for these epochs)
  static const std::vector<std::string>& known();
  void validate(const models::ModelConfig& student, const models::ModelConfig& teacher) const;
};

// The frozen teacher's outputs for a fixed set of windows. Without augmentation a window's input
// never changes and the teacher is in eval mode, so its outputs are computed once before training
// instead of once per batch per epoch (the teacher forward is ~2/3 of a PULSE-KD step).
struct TeacherCache {
  std::vector<int64_t> row_of;  // (windows in the WindowSet) row below, -1 = not cached
  int64_t dense = 0, bins = 0, feat_t = 0, feat_c = 0;
  std::vector<real> hr;       // (N) heart rate
  std::vector<real> dense32;  // (N, dense)
  std::vector<real> logits;   // (N, bins), binned head only
  std::vector<real> feature;  // (N, 4, feat_t, feat_c) last block map, FitNets only
  bool covers(const std::vector<int64_t>& windows) const;
};

// Owns what the loss needs beyond the student (the FitNets adapter, the teacher cache).
struct DistillLoss {
  LossFn fn;
  std::unique_ptr<FitNetAdapter> adapter;  // present with "fitnet"
  std::shared_ptr<TeacherCache> cache;     // filled by cache_teacher; used for batches it covers
  models::PulseModel* teacher = nullptr;
  std::vector<Parameter*> extra_parameters() const;
  // Runs the teacher once over `windows` (normalised with norm, in chunks of `batch`). Batches
  // that are not augmented and whose windows are all cached then use the cached outputs.
  void cache_teacher(const data::WindowSet& ws, const std::vector<int64_t>& windows, const data::Normalizer& norm,
                     int batch = 256);
};

DistillLoss make_distill_loss(models::PulseModel& teacher, models::PulseModel& student, const DistillOptions& o,
                              uint64_t seed);

}  // namespace pulsekd::kd
