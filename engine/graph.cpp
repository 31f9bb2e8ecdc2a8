#include "engine/graph.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include "engine/module.h"

namespace pulsekd {

namespace {
thread_local bool g_grad_mode = true;
bool g_profiling = false;
std::map<std::string, OpProfile>& profile_table() {
  static std::map<std::string, OpProfile> t;
  return t;
}
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void set_op_profiling(bool on) { g_profiling = on; }
void reset_op_profile() { profile_table().clear(); }
std::vector<std::pair<std::string, OpProfile>> op_profile() {
  std::vector<std::pair<std::string, OpProfile>> v(profile_table().begin(), profile_table().end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second.forward_s + a.second.backward_s > b.second.forward_s + b.second.backward_s;
  });
  return v;
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
  if (g_profiling) {
    const double t = now_s();
    if (last_record_ > 0 && std::string(op) != "leaf" && std::string(op) != "param") {
      OpProfile& p = profile_table()[op];
      p.forward_s += t - last_record_;
      ++p.calls;
    }
    last_record_ = t;
  }
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
    if (!n.backward || !n.grad.defined()) continue;
    if (g_profiling) {
      const double t = now_s();
      n.backward(n.grad);
      profile_table()[n.op].backward_s += now_s() - t;
    } else {
      n.backward(n.grad);
    }
  }
}

void Graph::reset() {
  last_record_ = 0;
  nodes_.clear();
  int_scratch_.clear();
  arena_.reset();
}

}  // namespace pulsekd
