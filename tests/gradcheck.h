// Finite-difference gradient check used by every op test: the analytic gradient from the
// tape against central differences, in double precision.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace pulsekd::testing {

struct Input {
  Shape shape;
  std::vector<real> data;
  bool needs_grad = true;
};

inline Input random_input(const Shape& s, Rng& rng, double lo = -1, double hi = 1, bool needs_grad = true) {
  Input in{s, std::vector<real>(size_t(s.numel())), needs_grad};
  for (auto& v : in.data) v = real(rng.uniform(lo, hi));
  return in;
}

// f builds the op's output from the leaves; the checked scalar is sum(out * r) for a fixed
// random r, so every output element carries a different upstream gradient.
using OpFn = std::function<Var(Graph&, std::vector<Var>&)>;

inline double check_gradients(const std::string& name, std::vector<Input> inputs, const OpFn& f,
                              double eps = 1e-6, double tol = 1e-6) {
  static_assert(sizeof(real) == sizeof(double), "gradient checks need the double build");
  Rng rng(1234);
  std::vector<real> r;
  auto loss_of = [&](Graph& g, std::vector<Var>& leaves, bool record) {
    leaves.clear();
    for (auto& in : inputs) leaves.push_back(g.leaf(in.shape, in.data.data(), record && in.needs_grad));
    Var out = f(g, leaves);
    if (r.size() != size_t(out.value().numel())) {
      r.resize(size_t(out.value().numel()));
      for (auto& v : r) v = real(rng.uniform(-1, 1));
    }
    Var rv = g.input(out.shape(), r.data());
    return sum(mul(out, rv));
  };
  Graph g;
  std::vector<Var> leaves;
  Var loss = loss_of(g, leaves, true);
  g.backward(loss);
  double worst = 0;
  for (size_t j = 0; j < inputs.size(); ++j) {
    if (!inputs[j].needs_grad) continue;
    const Tensor analytic = leaves[j].grad();
    for (size_t i = 0; i < inputs[j].data.size(); ++i) {
      const real orig = inputs[j].data[i];
      auto eval = [&](real v) {
        inputs[j].data[i] = v;
        Graph g2;
        std::vector<Var> l2;
        const double out = loss_of(g2, l2, false).value().data[0];
        inputs[j].data[i] = orig;
        return out;
      };
      const double numeric = (eval(orig + eps) - eval(orig - eps)) / (2 * eps);
      const double err = std::fabs(numeric - analytic.data[i]) / std::max(1.0, std::fabs(numeric));
      worst = std::max(worst, err);
      if (err > tol) {
        INFO(name << ": input " << j << " element " << i << " analytic " << analytic.data[i] << " numeric " << numeric);
        CHECK(err <= tol);
        return worst;
      }
    }
  }
  INFO(name << " worst relative error " << worst);
  CHECK(worst <= tol);
  return worst;
}

}  // namespace pulsekd::testing
