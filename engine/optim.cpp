#include "engine/optim.h"

#include <cmath>
#include <stdexcept>

namespace pulsekd {

Optimizer::Optimizer(std::vector<Parameter*> params, const OptimConfig& cfg) : params_(std::move(params)), cfg_(cfg) {
  if (cfg_.kind != "sgd" && cfg_.kind != "adam" && cfg_.kind != "adamw")
    throw std::invalid_argument("optimizer: unknown kind '" + cfg_.kind + "' (expected sgd, adam or adamw)");
  if (!(cfg_.lr > 0)) throw std::invalid_argument("optimizer: learning rate must be > 0");
  for (Parameter* p : params_) {
    m_.emplace_back(p->value.size(), real(0));
    v_.emplace_back(cfg_.kind == "sgd" ? 0 : p->value.size(), real(0));
  }
}

void Optimizer::zero_grad() {
  for (Parameter* p : params_) std::fill(p->grad.begin(), p->grad.end(), real(0));
}

void Optimizer::step() {
  ++t_;
  const double lr = cfg_.lr, wd = cfg_.weight_decay;
  const double bc1 = 1 - std::pow(cfg_.beta1, double(t_)), bc2 = 1 - std::pow(cfg_.beta2, double(t_));
  for (size_t j = 0; j < params_.size(); ++j) {
    Parameter& p = *params_[j];
    if (!p.trainable) continue;
    std::vector<real>& m = m_[j];
    const size_t n = p.value.size();
    if (cfg_.kind == "sgd") {
      for (size_t i = 0; i < n; ++i) {
        const double gi = double(p.grad[i]) + wd * double(p.value[i]);
        m[i] = real(cfg_.momentum * double(m[i]) + gi);  // PyTorch: buf = mu*buf + g (dampening 0)
        p.value[i] -= real(lr * double(m[i]));
      }
      continue;
    }
    std::vector<real>& v = v_[j];
    const bool decoupled = cfg_.kind == "adamw";
    for (size_t i = 0; i < n; ++i) {
      double gi = double(p.grad[i]);
      if (decoupled) p.value[i] = real(double(p.value[i]) * (1 - lr * wd));
      else gi += wd * double(p.value[i]);
      m[i] = real(cfg_.beta1 * double(m[i]) + (1 - cfg_.beta1) * gi);
      v[i] = real(cfg_.beta2 * double(v[i]) + (1 - cfg_.beta2) * gi * gi);
      const double mhat = double(m[i]) / bc1, vhat = double(v[i]) / bc2;
      p.value[i] -= real(lr * mhat / (std::sqrt(vhat) + cfg_.eps));
    }
  }
}

double clip_grad_norm(const std::vector<Parameter*>& params, double max_norm) {
  double sq = 0;
  for (Parameter* p : params)
    for (real g : p->grad) sq += double(g) * double(g);
  const double norm = std::sqrt(sq);
  if (norm > max_norm && norm > 0) {
    const real s = real(max_norm / (norm + 1e-6));
    for (Parameter* p : params)
      for (real& g : p->grad) g *= s;
  }
  return norm;
}

double LrSchedule::lr_at(int epoch) const {
  if (kind == "constant") return base_lr;
  if (kind == "step") return base_lr * std::pow(gamma, epoch / std::max(step_size, 1));
  if (kind == "cosine") {
    const double f = std::min(1.0, double(epoch) / std::max(total_epochs, 1));
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(3.141592653589793 * f));
  }
  throw std::invalid_argument("lr schedule: unknown kind '" + kind + "' (expected constant, step or cosine)");
}

}  // namespace pulsekd
