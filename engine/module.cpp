#include "engine/module.h"

#include <algorithm>
#include <cmath>

#include "engine/rng.h"

namespace pulsekd {

void Parameter::resize(const Shape& s) {
  shape = s;
  value.assign(s.numel(), 0);
  grad.assign(s.numel(), 0);
}

Parameter& Module::add_parameter(const std::string& name, const Shape& s) {
  owned_.push_back(std::make_unique<Parameter>());
  Parameter& p = *owned_.back();
  p.resize(s);
  params_.emplace_back(name, &p);
  return p;
}

Parameter& Module::add_buffer(const std::string& name, const Shape& s) {
  Parameter& p = add_parameter(name, s);
  p.trainable = false;
  p.is_buffer = true;
  p.grad.clear();
  return p;
}

void Module::add_module(const std::string& name, Module& child) { children_.emplace_back(name, &child); }

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters(bool include_buffers) {
  std::vector<std::pair<std::string, Parameter*>> out;
  for (auto& [n, p] : params_)
    if (include_buffers || !p->is_buffer) out.emplace_back(n, p);
  for (auto& [cn, c] : children_)
    for (auto& [n, p] : c->named_parameters(include_buffers)) out.emplace_back(cn + "." + n, p);
  return out;
}

std::vector<Parameter*> Module::trainable_parameters() {
  std::vector<Parameter*> out;
  for (auto& [n, p] : named_parameters(false))
    if (p->trainable) out.push_back(p);
  return out;
}

Parameter* Module::find(const std::string& name) {
  for (auto& [n, p] : named_parameters(true))
    if (n == name) return p;
  return nullptr;
}

int64_t Module::num_parameters(bool include_buffers) {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters(include_buffers)) n += p->numel();
  return n;
}

void Module::zero_grad() {
  for (auto& [n, p] : named_parameters(false)) std::fill(p->grad.begin(), p->grad.end(), real(0));
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

int Module::set_trainable(const std::string& prefix, bool trainable) {
  int count = 0;
  for (auto& [n, p] : named_parameters(false))
    if (n.compare(0, prefix.size(), prefix) == 0) {
      p->trainable = trainable;
      if (trainable && p->grad.size() != p->value.size()) p->grad.assign(p->value.size(), 0);
      ++count;
    }
  return count;
}

void init_uniform_fan_in(Parameter& w, Parameter* b, int64_t fan_in, Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1)));
  for (auto& v : w.value) v = static_cast<real>(rng.uniform(-bound, bound));
  if (b)
    for (auto& v : b->value) v = static_cast<real>(rng.uniform(-bound, bound));
}

}  // namespace pulsekd
