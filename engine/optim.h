// Optimisers (SGD with momentum, Adam, AdamW), gradient-norm clipping and learning-rate
// schedules. They update Parameter::value from Parameter::grad, in place.
#pragma once
#include <string>
#include <vector>

#include "engine/module.h"

namespace pulsekd {

struct OptimConfig {
  std::string kind = "adam";  // "sgd", "adam", "adamw"
  double lr = 1e-3;
  double momentum = 0.9;      // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam(w)
  double weight_decay = 0;    // sgd/adam: L2 added to the gradient (PyTorch); adamw: decoupled
};

class Optimizer {
 public:
  Optimizer(std::vector<Parameter*> params, const OptimConfig& cfg);
  void step();  // one update with the current learning rate
  void zero_grad();
  void set_lr(double lr) { cfg_.lr = lr; }
  double lr() const { return cfg_.lr; }
  int64_t steps() const { return t_; }
  const OptimConfig& config() const { return cfg_; }
  // State for checkpoints: per-parameter moment buffers and the step count.
  std::vector<std::vector<real>>& first_moments() { return m_; }
  std::vector<std::vector<real>>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  std::vector<Parameter*> params_;
  OptimConfig cfg_;
  std::vector<std::vector<real>> m_, v_;  // (per parameter) moments / momentum buffers
  int64_t t_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm);

struct LrSchedule {
  std::string kind = "constant";  // "constant", "step", "cosine"
  double base_lr = 1e-3;
  int step_size = 30;     // step: multiply by gamma every step_size epochs
  double gamma = 0.1;
  int total_epochs = 100; // cosine: anneal from base_lr to min_lr over total_epochs
  double min_lr = 0;
  double lr_at(int epoch) const;
};

}  // namespace pulsekd
