#include "engine/graph.h"

#include <cstring>

#include "engine/module.h"

namespace pulsekd {

namespace {
thread_local bool g_grad_mode = true;
}

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : prev_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = prev_; }

const Tensor& Var::value() const { return g->value(id); }
const Shape& Var::shape() const { return g->value(id).shape; }
real* Var::data() const { return g->value(id).data; }
bool Var::requires_grad() const { return g->requires_grad(id); }
Tensor Var::grad() const { return g->grad(id); }

Var Graph::input(const Shape& s, const real* data) { return leaf(s, data, false); }

Var Graph::leaf(const Shape& s, const real* data, bool requires_grad) {
  Tensor t = arena_.tensor(s);
  std::memcpy(t.data, data, sizeof(real) * t.numel());
  return record(t, requires_grad && g_grad_mode, nullptr, "leaf");
}

Var Graph::param(Parameter& p) {
  if (static_cast<int64_t>(p.value.size()) != p.shape.numel())
    throw ShapeError("parameter storage does not match its shape " + p.shape.str());
  const bool rg = p.trainable && g_grad_mode;
  Var v = record(p.tensor(), rg, nullptr, "param");
  if (rg) {
    if (p.grad.size() != p.value.size()) p.grad.assign(p.value.size(), 0);
    nodes_[v.id].grad = Tensor{p.grad.data(), p.shape};
  }
  return v;
}

Var Graph::record(Tensor value, bool requires_grad, Backward backward,
                  const char* op) {
  Node n;
  n.value = value;
  n.requires_grad = requires_grad && g_grad_mode;
  if (n.requires_grad) n.backward = std::move(backward);
  n.op = op;
  nodes_.push_back(std::move(n));
  return Var{this, static_cast<int>(nodes_.size() - 1)};
}

int32_t* Graph::new_ints(size_t n) {
  int_scratch_.emplace_back(n);
  return int_scratch_.back().data();
}

Tensor Graph::grad(int id) {
  Node& n = nodes_[id];
  if (!n.grad.defined()) n.grad = arena_.zeros(n.value.shape);
  return n.grad;
}

void Graph::backward(Var loss) {
  if (loss.g != this) throw std::invalid_argument("backward: the loss belongs to another graph");
  if (loss.value().numel() != 1)
    throw ShapeError("backward: the loss must be a scalar, got shape " + loss.shape().str());
  if (!nodes_[loss.id].requires_grad)
    throw std::invalid_argument("backward: the loss does not depend on anything that needs a gradient");
  grad(loss.id).data[0] += 1;
  for (int i = loss.id; i >= 0; --i) {
    Node& n = nodes_[i];
    // Only nodes whose gradient was touched by a consumer can contribute.
    if (n.backward && n.grad.defined()) n.backward(n.grad);
  }
}

void Graph::reset() {
  nodes_.clear();
  int_scratch_.clear();
  arena_.reset();
}

}  // namespace pulsekd
