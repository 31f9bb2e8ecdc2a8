// Every differentiable op of the engine. Activations are channels-last: a sequence batch is
// (N, T, C); a PULSE input [B, 1, 4, 256] is held as (B, 4, 256, 1) and its row-shared
// convolutions see (B*4, T, C). Shapes are checked; a mismatch throws ShapeError naming the
// op and the shapes.
#pragma once
#include <vector>

#include "engine/graph.h"

namespace pulsekd {

class Rng;

struct Conv1dOpts {
  int stride = 1;
  int pad = 0;
  int dilation = 1;
  int groups = 1;
  bool relu = false;  // fused ReLU on the output: saves a full pass and a gradient buffer
};

// x (N, T, Cin), w (Cout, K, Cin/groups), b (Cout) or undefined Var → (N, Tout, Cout)
Var conv1d(Var x, Var w, Var b, const Conv1dOpts& o);
// x (B, R, T, C), w (Cout, R, C), b (Cout) or undefined → (B, T, Cout)
Var modality_conv(Var x, Var w, Var b);
// x (..., In), w (Out, In), b (Out) or undefined → (..., Out)
Var linear(Var x, Var w, Var b);
// x (N, T, C) → (N, Tout, C)
Var avg_pool1d(Var x, int kernel, int stride, bool ceil_mode);
Var max_pool1d(Var x, int kernel, int stride, bool ceil_mode);

Var relu(Var x);
Var gelu(Var x);
// Inverted dropout: in training, zero with probability p and scale the rest by 1/(1-p).
Var dropout(Var x, real p, bool training, Rng& rng);
// Over the last axis; gamma/beta (D) may be undefined.
Var layer_norm(Var x, Var gamma, Var beta, real eps = real(1e-5));
struct Parameter;
// x (..., C): statistics over every leading position. Running stats updated in training.
Var batch_norm(Var x, Var gamma, Var beta, Parameter& running_mean, Parameter& running_var,
               bool training, real momentum = real(0.1), real eps = real(1e-5));
Var softmax(Var x, int axis = -1);
Var log_softmax(Var x, int axis = -1);

// a (..., M, K) × b (..., K, N) (or b (..., N, K) with trans_b) → (..., M, N); equal leading dims.
Var matmul(Var a, Var b, bool trans_b = false);
// PyTorch nn.MultiheadAttention (batch_first): query (B, Lq, E), key = value (B, Lk, E),
// in_w (3E, E) packed [q; k; v], in_b (3E), out_w (E, E), out_b (E) → (B, Lq, E).
Var multi_head_attention(Var query, Var kv, Var in_w, Var in_b, Var out_w, Var out_b, int heads);

Var reshape(Var x, const Shape& s);
Var flatten(Var x, int start_dim = 1);  // merges start_dim..last
Var slice(Var x, int axis, int64_t start, int64_t end);
Var concat(const std::vector<Var>& xs, int axis);
Var transpose(Var x, int a, int b);

Var add(Var a, Var b);  // same shapes, or b (D) broadcast over the last axis of a
Var sub(Var a, Var b);  // same shapes
Var mul(Var a, Var b);  // same shapes
Var scale(Var x, real s);
Var add_scalar(Var x, real s);
Var sum(Var x);   // → (1)
Var mean(Var x);  // → (1)
Var sum_axis(Var x, int axis);   // removes the axis
Var mean_axis(Var x, int axis);  // removes the axis

// Losses: mean over all elements unless stated; target may be a constant or another Var.
Var l1_loss(Var pred, Var target);
Var mse_loss(Var pred, Var target);
Var huber_loss(Var pred, Var target, real delta = real(1));  // PyTorch smooth L1 with beta = delta
Var log_cosh_loss(Var pred, Var target);
// logits (N, K), target probabilities (N, K): mean over N of -sum_k p_k log softmax(z)_k
Var soft_cross_entropy(Var logits, Var target_probs);
// KL(p || q) with log_q (N, K) and p (N, K), batch mean (PyTorch kl_div, 'batchmean')
Var kl_div(Var log_q, Var p);

}  // namespace pulsekd
