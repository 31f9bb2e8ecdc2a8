// Reverse-mode automatic differentiation on a tape (Wengert list). Every op appends a node
// holding its output and a closure that, during backward(), reads the node's gradient and
// ADDS the gradients of its inputs. Activations and gradients live in the graph's arena,
// which reset() recycles for the next step.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace pulsekd {

class Graph;
struct Parameter;

// A handle to a node of a graph.
struct Var {
  Graph* g = nullptr;
  int id = -1;
  bool defined() const { return g != nullptr; }
  const Tensor& value() const;
  const Shape& shape() const;
  real* data() const;
  bool requires_grad() const;
  Tensor grad() const;  // this node's gradient (allocated zeroed on first use)
};

// Gradient recording is on by default; NoGradGuard turns it off for a scope (evaluation).
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Per-op wall time of forward and backward, for profiles of a training step. Off by default;
// when on, an op's forward time is the time since the previous node was recorded.
struct OpProfile {
  double forward_s = 0, backward_s = 0;
  int64_t calls = 0;
};
void set_op_profiling(bool on);
std::vector<std::pair<std::string, OpProfile>> op_profile();  // sorted by total time
void reset_op_profile();

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A constant input, copied into the arena.
  Var input(const Shape& s, const real* data);
  // A leaf whose gradient is wanted (for tests and adapters built outside Modules).
  Var leaf(const Shape& s, const real* data, bool requires_grad);
  // A parameter: its value is used in place and its gradient accumulates into p.grad.
  Var param(Parameter& p);
  // Appends a node. backward(grad_out) adds the inputs' gradients; it may be empty (then no
  // gradient flows through the node).
  using Backward = std::function<void(const Tensor& grad_out)>;
  Var record(Tensor value, bool requires_grad, Backward backward, const char* op);
  Tensor new_tensor(const Shape& s) { return arena_.tensor(s); }
  Tensor new_zeros(const Shape& s) { return arena_.zeros(s); }
  int32_t* new_ints(size_t n);  // scratch for ops that save indices (max pooling)

  // Seeds d(loss)/d(loss) = 1 for a scalar loss and runs the tape backwards.
  void backward(Var loss);
  // Forgets every node and recycles the arena. Parameter gradients are kept.
  void reset();

  size_t num_nodes() const { return nodes_.size(); }
  size_t arena_bytes() const { return arena_.capacity_reals() * sizeof(real); }
  size_t arena_used_bytes() const { return arena_.used_reals() * sizeof(real); }  // since the last reset

  // Node access for Var and the ops.
  const Tensor& value(int id) const { return nodes_[id].value; }
  bool requires_grad(int id) const { return nodes_[id].requires_grad; }
  Tensor grad(int id);
  const char* op_name(int id) const { return nodes_[id].op; }

 private:
  struct Node {
    Tensor value;
    Tensor grad;  // lazily allocated; aliases Parameter::grad for parameters
    bool requires_grad = false;
    Backward backward;
    const char* op = "";
  };
  std::vector<Node> nodes_;
  Arena arena_;
  double last_record_ = 0;  // profiling: when the previous node was recorded
  std::vector<std::vector<int32_t>> int_scratch_;
};

}  // namespace pulsekd
