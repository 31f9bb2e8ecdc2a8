// Finite-difference gradient check of every op and loss of the engine (double precision,
// central differences), on random shapes with odd lengths, dilation, padding, groups,
// ceil-mode pooling and unequal query/key lengths.
#include <doctest/doctest.h>

#include "engine/module.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace pulsekd;
using pulsekd::testing::check_gradients;
using pulsekd::testing::random_input;

TEST_CASE("gradcheck conv1d: stride, padding, dilation, groups, bias, odd lengths") {
  Rng rng(1);
  struct Case { int n, t, cin, cout, k; Conv1dOpts o; bool bias; };
  const Case cases[] = {
      {2, 11, 3, 4, 5, {1, 4, 2, 1}, true},   // PULSE teacher style: k5 d2 p4
      {1, 13, 2, 3, 3, {2, 1, 1, 1}, true},   // stride 2
      {2, 9, 4, 4, 3, {1, 3, 3, 4}, true},    // depthwise, dilation 3
      {1, 10, 4, 6, 3, {1, 0, 2, 2}, false},  // grouped, no padding, no bias
      {2, 11, 3, 4, 5, {1, 4, 2, 1, true}, true},  // fused ReLU
  };
  for (const Case& c : cases) {
    std::vector<pulsekd::testing::Input> in = {random_input({c.n, c.t, c.cin}, rng),
                                                random_input({c.cout, c.k, c.cin / c.o.groups}, rng)};
    if (c.bias) in.push_back(random_input({c.cout}, rng));
    check_gradients("conv1d", in, [&](Graph&, std::vector<Var>& v) {
      return conv1d(v[0], v[1], c.bias ? v[2] : Var{}, c.o);
    });
  }
}

TEST_CASE("gradcheck modality_conv: with bias, without bias, bias the only trainable input") {
  Rng rng(2);
  check_gradients("modality_conv", {random_input({2, 4, 5, 3}, rng), random_input({6, 4, 3}, rng), random_input({6}, rng)},
                  [](Graph&, std::vector<Var>& v) { return modality_conv(v[0], v[1], v[2]); });
  check_gradients("modality_conv no bias", {random_input({3, 2, 4, 5}, rng), random_input({3, 2, 5}, rng)},
                  [](Graph&, std::vector<Var>& v) { return modality_conv(v[0], v[1], Var{}); });
  // input and weight frozen: the bias gradient alone (backward uses a scratch weight gradient)
  check_gradients("modality_conv bias only",
                  {random_input({2, 4, 5, 3}, rng, -1, 1, false), random_input({6, 4, 3}, rng, -1, 1, false), random_input({6}, rng)},
                  [](Graph&, std::vector<Var>& v) { return modality_conv(v[0], v[1], v[2]); });
}

TEST_CASE("gradcheck linear") {
  Rng rng(3);
  check_gradients("linear 2-D", {random_input({3, 7}, rng), random_input({5, 7}, rng), random_input({5}, rng)},
                  [](Graph&, std::vector<Var>& v) { return linear(v[0], v[1], v[2]); });
  check_gradients("linear 3-D no bias", {random_input({2, 3, 4}, rng), random_input({5, 4}, rng)},
                  [](Graph&, std::vector<Var>& v) { return linear(v[0], v[1], Var{}); });
}

TEST_CASE("gradcheck pooling, ceil mode included") {
  Rng rng(4);
  for (bool ceil : {false, true}) {
    check_gradients("avg_pool1d", {random_input({2, 11, 3}, rng)},
                    [&](Graph&, std::vector<Var>& v) { return avg_pool1d(v[0], 4, 4, ceil); });
    check_gradients("avg_pool1d overlapping", {random_input({1, 9, 2}, rng)},
                    [&](Graph&, std::vector<Var>& v) { return avg_pool1d(v[0], 3, 2, ceil); });
    // max pooling: values far apart so the finite difference never flips the argmax
    pulsekd::testing::Input x{{2, 11, 3}, {}, true};
    for (int i = 0; i < 66; ++i) x.data.push_back(real((i * 37 % 66) * 0.1));
    check_gradients("max_pool1d", {x}, [&](Graph&, std::vector<Var>& v) { return max_pool1d(v[0], 4, 4, ceil); });
  }
}

TEST_CASE("gradcheck activations, dropout, normalisation, softmax") {
  Rng rng(5);
  // ReLU away from the kink at 0
  pulsekd::testing::Input x{{3, 5}, {}, true};
  for (int i = 0; i < 15; ++i) x.data.push_back(real((i % 2 ? 1 : -1) * (0.1 + 0.05 * i)));
  check_gradients("relu", {x}, [](Graph&, std::vector<Var>& v) { return relu(v[0]); });
  check_gradients("gelu", {random_input({3, 5}, rng, -3, 3)}, [](Graph&, std::vector<Var>& v) { return gelu(v[0]); });
  check_gradients("dropout", {random_input({4, 6}, rng)}, [](Graph&, std::vector<Var>& v) {
    Rng drop(99);  // same mask on every evaluation
    return dropout(v[0], real(0.3), true, drop);
  });
  check_gradients("layer_norm", {random_input({3, 2, 7}, rng), random_input({7}, rng), random_input({7}, rng)},
                  [](Graph&, std::vector<Var>& v) { return layer_norm(v[0], v[1], v[2]); });
  check_gradients("layer_norm without affine parameters", {random_input({4, 6}, rng)},
                  [](Graph&, std::vector<Var>& v) { return layer_norm(v[0], Var{}, Var{}); });
  for (bool training : {true, false}) {
    Parameter rm, rv;
    rm.resize({5});
    rv.resize({5});
    for (int i = 0; i < 5; ++i) { rm.value[i] = real(0.1 * i); rv.value[i] = real(1 + 0.2 * i); }
    check_gradients(training ? "batch_norm train" : "batch_norm eval",
                    {random_input({4, 3, 5}, rng), random_input({5}, rng), random_input({5}, rng)},
                    [&](Graph&, std::vector<Var>& v) {
                      // momentum 0 keeps running stats fixed across the repeated forwards
                      return batch_norm(v[0], v[1], v[2], rm, rv, training, real(0));
                    });
  }
  for (int axis : {-1, 1, 0}) {
    check_gradients("softmax", {random_input({3, 4, 5}, rng, -2, 2)},
                    [&](Graph&, std::vector<Var>& v) { return softmax(v[0], axis); });
    check_gradients("log_softmax", {random_input({3, 4, 5}, rng, -2, 2)},
                    [&](Graph&, std::vector<Var>& v) { return log_softmax(v[0], axis); });
  }
}

TEST_CASE("gradcheck matmul and multi-head attention with unequal query/key lengths") {
  Rng rng(6);
  check_gradients("matmul", {random_input({2, 3, 4}, rng), random_input({2, 4, 5}, rng)},
                  [](Graph&, std::vector<Var>& v) { return matmul(v[0], v[1]); });
  check_gradients("matmul trans_b", {random_input({2, 2, 3, 4}, rng), random_input({2, 2, 5, 4}, rng)},
                  [](Graph&, std::vector<Var>& v) { return matmul(v[0], v[1], true); });
  const int e = 8, heads = 2;
  check_gradients("multi_head_attention",
                  {random_input({2, 3, e}, rng), random_input({2, 7, e}, rng), random_input({3 * e, e}, rng),
                   random_input({3 * e}, rng), random_input({e, e}, rng), random_input({e}, rng)},
                  [&](Graph&, std::vector<Var>& v) { return multi_head_attention(v[0], v[1], v[2], v[3], v[4], v[5], heads); });
}

TEST_CASE("gradcheck shape ops and elementwise ops") {
  Rng rng(7);
  check_gradients("reshape", {random_input({2, 3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return reshape(v[0], {4, 6}); });
  check_gradients("flatten", {random_input({2, 3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return flatten(v[0], 1); });
  check_gradients("slice", {random_input({2, 5, 3}, rng)}, [](Graph&, std::vector<Var>& v) { return slice(v[0], 1, 1, 4); });
  check_gradients("concat", {random_input({2, 2, 3}, rng), random_input({2, 3, 3}, rng)},
                  [](Graph&, std::vector<Var>& v) { return concat({v[0], v[1]}, 1); });
  check_gradients("transpose", {random_input({2, 3, 4, 5}, rng)}, [](Graph&, std::vector<Var>& v) { return transpose(v[0], 1, 3); });
  check_gradients("add", {random_input({3, 4}, rng), random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return add(v[0], v[1]); });
  check_gradients("add bias", {random_input({3, 4}, rng), random_input({4}, rng)}, [](Graph&, std::vector<Var>& v) { return add(v[0], v[1]); });
  check_gradients("sub", {random_input({3, 4}, rng), random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return sub(v[0], v[1]); });
  check_gradients("mul", {random_input({3, 4}, rng), random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return mul(v[0], v[1]); });
  check_gradients("scale", {random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return scale(v[0], real(-2.5)); });
  check_gradients("add_scalar", {random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return add_scalar(v[0], real(3)); });
  check_gradients("sum", {random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return sum(v[0]); });
  check_gradients("mean", {random_input({3, 4}, rng)}, [](Graph&, std::vector<Var>& v) { return mean(v[0]); });
  check_gradients("sum_axis", {random_input({3, 4, 2}, rng)}, [](Graph&, std::vector<Var>& v) { return sum_axis(v[0], 1); });
  check_gradients("mean_axis", {random_input({3, 4, 2}, rng)}, [](Graph&, std::vector<Var>& v) { return mean_axis(v[0], 0); });
}

TEST_CASE("gradcheck losses with respect to prediction and target") {
  Rng rng(8);
  // Differences kept away from 0 (L1 kink) and from ±delta (Huber seam) for every delta below.
  pulsekd::testing::Input pred{{6}, {0.5, -1.2, 2.0, 0.3, -0.4, 3.0}, true};
  pulsekd::testing::Input target{{6}, {0.0, 0.1, 0.2, 1.1, -2.0, 0.5}, true};
  check_gradients("l1_loss", {pred, target}, [](Graph&, std::vector<Var>& v) { return l1_loss(v[0], v[1]); });
  check_gradients("mse_loss", {pred, target}, [](Graph&, std::vector<Var>& v) { return mse_loss(v[0], v[1]); });
  check_gradients("huber_loss", {pred, target}, [](Graph&, std::vector<Var>& v) { return huber_loss(v[0], v[1], real(1)); });
  // |d| = 0.5, 1.3, 1.8, 0.8, 1.6, 2.5: delta 0.7 and 2 each leave values on both sides of the seam
  for (const double delta : {0.7, 2.0})
    check_gradients("huber_loss delta " + std::to_string(delta), {pred, target},
                    [&](Graph&, std::vector<Var>& v) { return huber_loss(v[0], v[1], real(delta)); });
  check_gradients("log_cosh_loss", {pred, target}, [](Graph&, std::vector<Var>& v) { return log_cosh_loss(v[0], v[1]); });
  // probabilities from a softmax so they are valid distributions
  check_gradients("soft_cross_entropy", {random_input({3, 5}, rng, -2, 2), random_input({3, 5}, rng, -2, 2)},
                  [](Graph&, std::vector<Var>& v) { return soft_cross_entropy(v[0], softmax(v[1])); });
  check_gradients("kl_div", {random_input({3, 5}, rng, -2, 2), random_input({3, 5}, rng, -2, 2)},
                  [](Graph&, std::vector<Var>& v) { return kl_div(log_softmax(v[0]), softmax(v[1])); });
}
