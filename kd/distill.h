// Distillation: builds the training loss of a student from a frozen teacher with any
// combination of strategies (engine/kd_losses.h has the formulas; docs/KD-LOSSES.md).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/kd_losses.h"
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

// Owns what the loss needs beyond the student (the FitNets adapter).
struct DistillLoss {
  LossFn fn;
  std::unique_ptr<FitNetAdapter> adapter;  // present with "fitnet"
  std::vector<Parameter*> extra_parameters() const;
};

DistillLoss make_distill_loss(models::PulseModel& teacher, models::PulseModel& student, const DistillOptions& o,
                              uint64_t seed);

}  // namespace pulsekd::kd
