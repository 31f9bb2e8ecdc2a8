// Parameters and modules with hierarchical names matching PyTorch state_dict keys
// ("conv11.weight", "multihead_attn.out_proj.bias").
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace pulsekd {

class Rng;

struct Parameter {
  Shape shape;
  std::vector<real> value;  // (shape) row-major
  std::vector<real> grad;   // (shape) accumulated by backward, cleared by zero_grad
  bool trainable = true;    // false: frozen, or a buffer such as BatchNorm running stats
  bool is_buffer = false;   // part of the state but never optimised (running statistics)
  void resize(const Shape& s);
  Tensor tensor() { return Tensor{value.data(), shape}; }
  int64_t numel() const { return shape.numel(); }
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter and buffer of this module and its children, "child.name" order of
  // registration.
  std::vector<std::pair<std::string, Parameter*>> named_parameters(bool include_buffers = true);
  std::vector<Parameter*> trainable_parameters();
  Parameter* find(const std::string& name);  // nullptr if absent
  int64_t num_parameters(bool include_buffers = false);
  void zero_grad();
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }
  // Freezes (or unfreezes) every parameter whose name starts with prefix; returns how many.
  int set_trainable(const std::string& prefix, bool trainable);

 protected:
  Parameter& add_parameter(const std::string& name, const Shape& s);
  Parameter& add_buffer(const std::string& name, const Shape& s);
  void add_module(const std::string& name, Module& child);

 private:
  std::vector<std::pair<std::string, Parameter*>> params_;
  std::vector<std::unique_ptr<Parameter>> owned_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

// PyTorch's default initialisation for conv and linear layers: weights and bias uniform in
// ±1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) gives the same bound for weights).
void init_uniform_fan_in(Parameter& w, Parameter* b, int64_t fan_in, Rng& rng);

}  // namespace pulsekd
