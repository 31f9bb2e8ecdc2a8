// Forward values of every op against numbers worked out by hand, shape errors, and a small
// model that must learn a synthetic regression task.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/graph.h"
#include "engine/module.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"

using namespace pulsekd;

static std::vector<real> vals(Var v) { return std::vector<real>(v.data(), v.data() + v.value().numel()); }
static void check_close(const std::vector<real>& got, const std::vector<double>& want, double tol = 1e-5) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::fabs(double(got[i]) - want[i]) <= tol);
  }
}

TEST_CASE("conv1d by hand: dilation 2, padding 2, bias") {
  Graph g;
  // x (1, 5, 1) = 1..5; w (1, 3, 1) = [1, 0, -1]; dilation 2, pad 2:
  // out[t] = x[t-2] - x[t+2] + 0.5 (zeros outside) → [-2.5, -3.5, -3.5, 2.5, 3.5]
  std::vector<real> x = {1, 2, 3, 4, 5}, w = {1, 0, -1}, b = {0.5};
  Var y = conv1d(g.input({1, 5, 1}, x.data()), g.input({1, 3, 1}, w.data()), g.input({1}, b.data()), {1, 2, 2, 1});
  check_close(vals(y), {-2.5, -3.5, -3.5, 2.5, 3.5});
  // two input channels, stride 2, no padding: out[t] = sum_k,c w[k,c] x[2t+k, c]
  std::vector<real> x2 = {1, 10, 2, 20, 3, 30, 4, 40, 5, 50}, w2 = {1, 0, 0, 1};  // (1, 2, 2)
  Var y2 = conv1d(g.input({1, 5, 2}, x2.data()), g.input({1, 2, 2}, w2.data()), Var{}, {2, 0, 1, 1});
  check_close(vals(y2), {1 + 20, 3 + 40});
  // depthwise: each channel its own kernel [1, 1]
  std::vector<real> w3 = {1, 1, 2, 2};  // (2, 2, 1)
  Var y3 = conv1d(g.input({1, 5, 2}, x2.data()), g.input({2, 2, 1}, w3.data()), Var{}, {1, 0, 1, 2});
  check_close(vals(y3), {3, 60, 5, 100, 7, 140, 9, 180});
}

TEST_CASE("modality conv, linear, pooling by hand") {
  Graph g;
  // x (1, R=2, T=2, C=1) rows [1, 2] and [3, 4]; w (1, 2, 1) = [1, 10] → out[t] = x0[t] + 10 x1[t]
  std::vector<real> x = {1, 2, 3, 4}, w = {1, 10};
  check_close(vals(modality_conv(g.input({1, 2, 2, 1}, x.data()), g.input({1, 2, 1}, w.data()), Var{})), {31, 42});
  std::vector<real> a = {1, 2, 3, 4, 5, 6}, lw = {1, 0, -1, 2, 2, 2}, lb = {1, -1};
  check_close(vals(linear(g.input({2, 3}, a.data()), g.input({2, 3}, lw.data()), g.input({2}, lb.data()))),
              {1 - 3 + 1, 12 - 1, 4 - 6 + 1, 30 - 1});
  std::vector<real> s = {1, 2, 3, 4, 5, 6, 7};  // (1, 7, 1)
  check_close(vals(avg_pool1d(g.input({1, 7, 1}, s.data()), 2, 2, false)), {1.5, 3.5, 5.5});
  check_close(vals(avg_pool1d(g.input({1, 7, 1}, s.data()), 2, 2, true)), {1.5, 3.5, 5.5, 7});  // partial window
  check_close(vals(max_pool1d(g.input({1, 7, 1}, s.data()), 3, 3, true)), {3, 6, 7});
  check_close(vals(avg_pool1d(g.input({1, 7, 1}, s.data()), 4, 4, true)), {2.5, 6});
}

TEST_CASE("activations, normalisation, softmax by hand") {
  Graph g;
  std::vector<real> x = {-1, 0, 2};
  check_close(vals(relu(g.input({3}, x.data()))), {0, 0, 2});
  check_close(vals(gelu(g.input({3}, x.data()))), {-0.15865525, 0, 1.95449974});
  // layer norm of [1, 2, 3]: mean 2, var 2/3 → [-1.22474, 0, 1.22474] (eps 1e-5)
  std::vector<real> l = {1, 2, 3};
  check_close(vals(layer_norm(g.input({1, 3}, l.data()), Var{}, Var{})), {-1.2247357, 0, 1.2247357});
  std::vector<real> gm = {2, 2, 2}, bt = {1, 1, 1};
  check_close(vals(layer_norm(g.input({1, 3}, l.data()), g.input({3}, gm.data()), g.input({3}, bt.data()))),
              {-1.4494714, 1, 3.4494714});
  // softmax of [0, ln 3] = [0.25, 0.75]
  std::vector<real> s = {0, real(std::log(3.0))};
  check_close(vals(softmax(g.input({1, 2}, s.data()))), {0.25, 0.75});
  check_close(vals(log_softmax(g.input({1, 2}, s.data()))), {std::log(0.25), std::log(0.75)});
  // softmax along axis 0 of [[0, 0], [ln 3, 0]]
  std::vector<real> s2 = {0, 0, real(std::log(3.0)), 0};
  check_close(vals(softmax(g.input({2, 2}, s2.data()), 0)), {0.25, 0.5, 0.75, 0.5});
  // batch norm, training: channel values [1, 3] → mean 2, var 1 → [-1, 1]; running stats move
  Parameter rm, rv;
  rm.resize({1});
  rv.resize({1});
  rv.value[0] = 1;
  std::vector<real> bn = {1, 3};
  check_close(vals(batch_norm(g.input({2, 1}, bn.data()), Var{}, Var{}, rm, rv, true, real(0.1), real(0))), {-1, 1});
  CHECK(rm.value[0] == doctest::Approx(0.2));
  CHECK(rv.value[0] == doctest::Approx(0.9 + 0.1 * 2.0));  // unbiased variance 2
  // eval mode uses the running statistics
  check_close(vals(batch_norm(g.input({2, 1}, bn.data()), Var{}, Var{}, rm, rv, false, real(0.1), real(0))),
              {(1 - 0.2) / std::sqrt(1.1), (3 - 0.2) / std::sqrt(1.1)});
}

TEST_CASE("dropout: train scales kept values, eval is identity, deterministic by seed") {
  Graph g;
  std::vector<real> x(1000, 1);
  Rng r1(7), r2(7);
  Var a = dropout(g.input({1000}, x.data()), real(0.25), true, r1);
  Var b = dropout(g.input({1000}, x.data()), real(0.25), true, r2);
  int zeros = 0;
  for (int i = 0; i < 1000; ++i) {
    CHECK(a.data()[i] == b.data()[i]);
    if (a.data()[i] == 0) ++zeros;
    else CHECK(a.data()[i] == doctest::Approx(1 / 0.75));
  }
  CHECK(zeros > 200);
  CHECK(zeros < 300);
  Var c = dropout(g.input({1000}, x.data()), real(0.25), false, r1);
  CHECK(c.data()[0] == 1);
}

TEST_CASE("shape ops, elementwise, reductions, losses by hand") {
  Graph g;
  std::vector<real> x = {1, 2, 3, 4, 5, 6};  // (2, 3)
  Var v = g.input({2, 3}, x.data());
  check_close(vals(transpose(v, 0, 1)), {1, 4, 2, 5, 3, 6});
  check_close(vals(slice(v, 1, 1, 3)), {2, 3, 5, 6});
  check_close(vals(concat({v, v}, 0)), {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  check_close(vals(concat({slice(v, 1, 0, 1), slice(v, 1, 2, 3)}, 1)), {1, 3, 4, 6});
  check_close(vals(sum_axis(v, 0)), {5, 7, 9});
  check_close(vals(mean_axis(v, 1)), {2, 5});
  check_close(vals(sum(v)), {21});
  check_close(vals(mean(v)), {3.5});
  check_close(vals(add(v, v)), {2, 4, 6, 8, 10, 12});
  std::vector<real> bias = {1, 0, -1};
  check_close(vals(add(v, g.input({3}, bias.data()))), {2, 2, 2, 5, 5, 5});
  check_close(vals(mul(v, v)), {1, 4, 9, 16, 25, 36});
  check_close(vals(sub(v, scale(v, 2))), {-1, -2, -3, -4, -5, -6});
  check_close(vals(add_scalar(v, 1)), {2, 3, 4, 5, 6, 7});
  check_close(vals(matmul(v, v, true)), {14, 32, 32, 77});
  std::vector<real> p = {1, 2, 3}, t = {1, 4, 0};
  Var pv = g.input({3}, p.data()), tv = g.input({3}, t.data());
  check_close(vals(l1_loss(pv, tv)), {5.0 / 3});
  check_close(vals(mse_loss(pv, tv)), {13.0 / 3});
  check_close(vals(huber_loss(pv, tv, 1)), {(0 + 1.5 + 2.5) / 3});
  // delta 2.5 (smooth L1, threshold delta): |d| = 0, 2 → 0.5 d^2 / delta = 0.8; 3 → |d| - delta / 2 = 1.75
  check_close(vals(huber_loss(pv, tv, 2.5)), {(0 + 0.8 + 1.75) / 3});
  check_close(vals(log_cosh_loss(pv, tv)), {(0 + std::log(std::cosh(2.0)) + std::log(std::cosh(3.0))) / 3});
  // cross-entropy with a one-hot target over [0, ln 3] picks -log 0.75
  std::vector<real> z = {0, real(std::log(3.0))}, onehot = {0, 1}, q = {0.5, 0.5};
  check_close(vals(soft_cross_entropy(g.input({1, 2}, z.data()), g.input({1, 2}, onehot.data()))), {-std::log(0.75)});
  // KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 ln 2 + 0.5 ln(2/3)
  check_close(vals(kl_div(log_softmax(g.input({1, 2}, z.data())), g.input({1, 2}, q.data()))),
              {0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0)});
}

TEST_CASE("attention by hand: one head, one key") {
  Graph g;
  // With a single key every query attends to it fully: out = out_proj(v_proj(kv)).
  const int e = 2;
  std::vector<real> q = {1, 2, 3, 4}, kv = {1, -1};
  std::vector<real> in_w = {1, 0, 0, 1, 1, 0, 0, 1, 2, 0, 0, 3}, in_b(6, 0), out_w = {1, 0, 0, 1}, out_b = {0.5, 0.5};
  Var o = multi_head_attention(g.input({1, 2, e}, q.data()), g.input({1, 1, e}, kv.data()), g.input({6, 2}, in_w.data()),
                               g.input({6}, in_b.data()), g.input({2, 2}, out_w.data()), g.input({2}, out_b.data()), 1);
  check_close(vals(o), {2.5, -2.5, 2.5, -2.5});
}

TEST_CASE("attention by hand: one head, three keys, two queries (softmax not trivial, scale 1/sqrt(d))") {
  Graph g;
  // E = 2, one head (d = 2, scale 1/sqrt 2). W_q = W_k = I, W_v = [[0, 1], [0, 2]] (v = [k1, 2 k1]),
  // W_out = I, out bias [0.5, -0.5]. Keys k = [0, 1], [ln 2, 1], [ln 3, 3] → v = [1, 2], [1, 2], [3, 6].
  // Query [sqrt 2, 0]: scores q.k / sqrt 2 = [0, ln 2, ln 3] → softmax [1, 2, 3] / 6
  //   → ctx = ([1, 2] + 2 [1, 2] + 3 [3, 6]) / 6 = [2, 4] → out [2.5, 3.5].
  // Query [0, sqrt 2]: scores [1, 1, 3] → softmax [1, 1, e^2] / (2 + e^2)
  //   → ctx = (2 + 3 e^2) / (2 + e^2) * [1, 2].
  const double r2 = std::sqrt(2.0), l2 = std::log(2.0), l3 = std::log(3.0), e2 = std::exp(2.0);
  std::vector<real> q = {real(r2), 0, 0, real(r2)}, kv = {0, 1, real(l2), 1, real(l3), 3};
  std::vector<real> in_w = {1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 2}, in_b(6, 0), out_w = {1, 0, 0, 1}, out_b = {0.5, -0.5};
  Var o = multi_head_attention(g.input({1, 2, 2}, q.data()), g.input({1, 3, 2}, kv.data()), g.input({6, 2}, in_w.data()),
                               g.input({6}, in_b.data()), g.input({2, 2}, out_w.data()), g.input({2}, out_b.data()), 1);
  const double c2 = (2 + 3 * e2) / (2 + e2);
  check_close(vals(o), {2.5, 3.5, c2 + 0.5, 2 * c2 - 0.5});
}

TEST_CASE("shape mismatches raise clear errors, never crash") {
  Graph g;
  std::vector<real> x(24, 1), w(30, 1);
  Var v = g.input({2, 4, 3}, x.data());
  CHECK_THROWS_WITH_AS(conv1d(v, g.input({2, 5, 3}, w.data()), Var{}, {1, 0, 1, 1}), doctest::Contains("too short"), ShapeError);
  CHECK_THROWS_WITH_AS(conv1d(v, g.input({5, 2, 3}, w.data()), Var{}, {1, 0, 1, 2}), doctest::Contains("not divisible by groups"), ShapeError);
  CHECK_THROWS_AS(linear(v, g.input({2, 5}, w.data()), Var{}), ShapeError);
  CHECK_THROWS_WITH_AS(add(v, g.input({4, 3}, w.data())), doctest::Contains("[2, 4, 3] and [4, 3]"), ShapeError);
  CHECK_THROWS_AS(reshape(v, {5, 5}), ShapeError);
  CHECK_THROWS_AS(slice(v, 1, 2, 9), ShapeError);
  CHECK_THROWS_AS(transpose(v, 0, 3), ShapeError);
  CHECK_THROWS_AS(matmul(v, v), ShapeError);
  CHECK_THROWS_AS(l1_loss(v, g.input({3}, w.data())), ShapeError);
  CHECK_THROWS_AS(multi_head_attention(v, v, g.input({9, 3}, w.data()), Var{}, Var{}, Var{}, 2), ShapeError);
  CHECK_THROWS_AS(g.backward(v), ShapeError);  // not a scalar
}

// y = sum of the first half of a sequence minus the second half, through conv + pool + linear.
struct TinyNet : Module {
  Parameter& w1 = add_parameter("conv.weight", {8, 3, 1});
  Parameter& b1 = add_parameter("conv.bias", {8});
  Parameter& w2 = add_parameter("fc.weight", {1, 8 * 4});
  Parameter& b2 = add_parameter("fc.bias", {1});
  TinyNet() {
    Rng rng(3);
    init_uniform_fan_in(w1, &b1, 3, rng);
    init_uniform_fan_in(w2, &b2, 32, rng);
  }
  Var forward(Graph& g, Var x) {  // x (B, 16, 1)
    Var h = relu(conv1d(x, g.param(w1), g.param(b1), {1, 1, 1, 1}));
    h = avg_pool1d(h, 4, 4, false);  // (B, 4, 8)
    return reshape(linear(flatten(h, 1), g.param(w2), g.param(b2)), {x.shape()[0]});
  }
};

TEST_CASE("a small model learns a synthetic regression task: loss falls 20x within 300 Adam steps") {
  TinyNet net;
  CHECK(net.named_parameters()[0].first == "conv.weight");
  Optimizer opt(net.trainable_parameters(), OptimConfig{"adam", 1e-2});
  Rng data(11);
  Graph g;
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    std::vector<real> x(32 * 16), y(32);
    for (int b = 0; b < 32; ++b) {
      double s = 0;
      for (int t = 0; t < 16; ++t) {
        x[b * 16 + t] = real(data.normal());
        s += (t < 8 ? 1 : -1) * x[b * 16 + t];
      }
      y[b] = real(s / 4);
    }
    g.reset();
    Var loss = mse_loss(net.forward(g, g.input({32, 16, 1}, x.data())), g.input({32}, y.data()));
    if (step < 10) first += loss.data()[0] / 10;
    if (step >= 290) last += loss.data()[0] / 10;
    opt.zero_grad();
    g.backward(loss);
    opt.step();
  }
  MESSAGE("mean loss of the first 10 steps " << first << ", of the last 10 " << last);
  CHECK(last < first / 20);
}

// PyTorch's Adam (torch.optim.Adam, weight_decay = L2 added to the gradient), written out in
// double: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
static std::vector<double> reference_adam(std::vector<double> theta, double lr, double wd, int steps,
                                          double (*grad_of)(double theta, int i, int t)) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  std::vector<double> m(theta.size(), 0), v(theta.size(), 0);
  for (int t = 1; t <= steps; ++t)
    for (size_t i = 0; i < theta.size(); ++i) {
      const double gr = grad_of(theta[i], int(i), t) + wd * theta[i];
      m[i] = b1 * m[i] + (1 - b1) * gr;
      v[i] = b2 * v[i] + (1 - b2) * gr * gr;
      theta[i] -= lr * (m[i] / (1 - std::pow(b1, t))) / (std::sqrt(v[i] / (1 - std::pow(b2, t))) + eps);
    }
  return theta;
}

// A quadratic pull toward i - 1 plus a step-dependent term, so the moments see changing gradients.
static double adam_test_grad(double theta, int i, int t) { return 2 * (theta - (i - 1)) + 0.3 * std::sin(1.7 * t + i); }

TEST_CASE("Adam over 12 steps, without and with L2 weight decay, equals the PyTorch update rule") {
  const std::vector<double> start = {0.5, -1.5, 2.0, 0.0};
  for (const double wd : {0.0, 0.2}) {
    CAPTURE(wd);
    Parameter p;
    p.resize({4});
    for (size_t i = 0; i < 4; ++i) p.value[i] = real(start[i]);
    OptimConfig cfg{"adam", 0.05};
    cfg.weight_decay = wd;
    Optimizer adam({&p}, cfg);
    for (int t = 1; t <= 12; ++t) {
      for (size_t i = 0; i < 4; ++i) p.grad[i] = real(adam_test_grad(double(p.value[i]), int(i), t));
      adam.step();
    }
    CHECK(adam.steps() == 12);
    const std::vector<double> want = reference_adam(start, 0.05, wd, 12, adam_test_grad);
    double worst = 0, moved = 1e9;
    for (size_t i = 0; i < 4; ++i) {
      worst = std::max(worst, std::fabs(double(p.value[i]) - want[i]));
      moved = std::min(moved, std::fabs(want[i] - start[i]));
    }
    MESSAGE("Adam weight_decay " << wd << ": max |engine - reference| " << worst << ", smallest move " << moved);
    // float storage of value and moments: measured max |diff| 1.0e-7 (no decay) and 1.6e-7 (L2);
    // tolerance 1e-6. Every parameter moves by >= 0.58 in these 12 steps.
    check_close(std::vector<real>(p.value.begin(), p.value.end()), want, 1e-6);
    CHECK(moved > 0.1);
  }
}

TEST_CASE("optimisers and schedules") {
  Parameter p;
  p.resize({1});
  p.value[0] = 1;
  p.grad[0] = 0.5;
  Optimizer sgd({&p}, OptimConfig{"sgd", 0.1, 0.9});
  sgd.step();  // v = 0.5, p = 1 - 0.05
  CHECK(p.value[0] == doctest::Approx(0.95));
  sgd.step();  // v = 0.9*0.5 + 0.5 = 0.95
  CHECK(p.value[0] == doctest::Approx(0.95 - 0.095));
  p.value[0] = 1;
  Optimizer adam({&p}, OptimConfig{"adam", 0.1});
  adam.step();  // first Adam step moves by lr * sign(g)
  CHECK(p.value[0] == doctest::Approx(0.9).epsilon(1e-6));
  p.value[0] = 1;
  p.grad[0] = 0;
  OptimConfig wcfg{"adamw", 0.1};
  wcfg.weight_decay = 0.5;
  Optimizer adamw({&p}, wcfg);
  adamw.step();  // zero gradient: only the decoupled decay acts
  CHECK(p.value[0] == doctest::Approx(0.95));
  p.grad[0] = 3;
  Parameter q;
  q.resize({1});
  q.grad[0] = 4;
  CHECK(clip_grad_norm({&p, &q}, 1.0) == doctest::Approx(5));
  CHECK(std::hypot(p.grad[0], q.grad[0]) == doctest::Approx(1).epsilon(1e-5));
  LrSchedule cos{"cosine", 1.0, 30, 0.1, 10, 0.0};
  CHECK(cos.lr_at(0) == doctest::Approx(1));
  CHECK(cos.lr_at(5) == doctest::Approx(0.5));
  CHECK(cos.lr_at(10) == doctest::Approx(0));
  LrSchedule st{"step", 1.0, 3, 0.1};
  CHECK(st.lr_at(2) == doctest::Approx(1));
  CHECK(st.lr_at(3) == doctest::Approx(0.1));
  CHECK_THROWS(Optimizer({&p}, OptimConfig{"rmsprop", 0.1}));
}
