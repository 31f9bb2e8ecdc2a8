// A quantised PULSE student or teacher: the layer list every deploy/ part shares (calibration,
// the file format, the host runtime, code generation), its layer geometry and the invariants
// that make it safe to run. Scheme, rounding rule and per-layer choices: docs/MCU.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/checkpoint.h"

// fixed_point.h is not included here (only declared): tests/test_rounding_rule.cpp checks the
// rounding rule through deploy/'s public functions without seeing that header.
namespace pulsekd::kernels {
struct requant_params;
}

namespace pulsekd::deploy {

using models::RowNorm;

// Quantisation of one activation tensor: real = scale * (q - zp). bits 8 (asymmetric),
// 16 (symmetric, zp 0) or 32 (a raw accumulator: the model's output; and the teacher's q/k/v,
// requantised int32 clamped to 24 bits).
struct QTensor {
  int bits = 8;
  float scale = 1.f;
  int32_t zp = 0;
  int32_t qmin() const;
  int32_t qmax() const;
};

// AttnInProj, Attention, LayerNorm: the teacher's cross-attention and LayerNorm
// (engine/kernels/attention.h).
enum class QOp { Conv, AvgPool, ModalityConv, Linear, AttnInProj, Attention, LayerNorm };
const char* qop_name(QOp op);

struct QLayer {
  std::string name;  // "conv11", "pool1", "conv4" (student), "attn_in_proj", "attention",
                     // "attn_out_proj", "layer_norm" (teacher), "dense", "out"
  QOp op = QOp::Conv;
  // Conv: one row (t_in, c_in) -> (t_out, c_out), kernel/dilation/pad along time.
  // AvgPool: kernel = stride = pool, ceil mode. ModalityConv: rows x (t, c_in) -> (t, c_out).
  // Linear: c_in -> c_out on each of t_in tokens (t_in 1: the flattened previous tensor).
  // AttnInProj: rows x (t_in, c_in) -> q (c_in, t_in) and kv ((rows-1) c_in, 2 t_in); c_out = 3 t_in.
  // Attention: q/kv of the previous AttnInProj -> ctx (t_in tokens, c_in = c_out embed), `heads` heads,
  //   mult/shift = {score difference -> Q16 exponent, P.V -> ctx}.
  // LayerNorm: (t_in tokens, c_in = c_out), gamma as int8 weights, beta as bias, eps as norm_eps.
  int c_in = 0, c_out = 0, kernel = 1, dilation = 1, pad = 0, pool = 1, rows = 1, t_in = 1;
  int heads = 1;                // Attention only
  int64_t norm_eps = 0;         // LayerNorm only: E = d^3 eps / s_in^2 in integer units (attention.h)
  bool relu = false;
  QTensor in, out;
  std::vector<int8_t> w;        // conv (c_out, K, c_in); modality (c_out, rows, c_in); linear (c_out, c_in);
                                // attn_in_proj (3 t_in, t_in); layer_norm (c_out)
  std::vector<int32_t> bias;    // (c_out) at scale s_in * s_w[co], input zero point folded in
  std::vector<int32_t> mult;    // (c_out) Q31 multipliers (empty for a raw int32 output)
  std::vector<int32_t> shift;   // (c_out)
  std::vector<float> w_scale;   // (c_out) per-channel weight scales
  int32_t act_min = 0, act_max = 0;
  int bias_saturated = 0;       // channels whose bias was saturated to keep the int32 bound
  int t_out() const;
  int64_t macs_per_row() const;  // multiply-accumulates for one execution of the layer
  int64_t out_elems() const;     // t_out * c_out (Linear: c_out)
  int64_t in_elems() const;
  int64_t weights_per_channel() const;  // -1: the op has no weights (avgpool, attention)
  size_t requant_channels() const;      // entries of mult/shift: c_out, 2 (attention), 0 (raw int32 output)
  bool raw_output() const;              // the int32 accumulator itself (the last layer), not requantised
  kernels::requant_params requant() const;
};

struct QuantModel {
  std::string arch = "student";    // "student" or "teacher"
  std::string calib;               // "minmax" or "percentile"
  std::string source;              // checkpoint the model came from
  RowNorm norm;                    // present: apply it; absent: z-score each recording itself
  QTensor input;                   // quantisation of the (normalised) input windows
  int rows = 4;                    // the row-shared part runs once per modality row
  int row_layers = 0;              // layers[0 .. row_layers) run per row; the rest once
  std::vector<QLayer> layers;
  float out_scale = 1.f;           // heart rate (BPM) = out_scale * output accumulator
};

// Every invariant the host simulation, export_mcu and the firmware rely on: bits 8/16 (32 only
// for the last layer's raw output), zero points and clamps in range, each layer's input equal to
// the previous tensor (bits, zero point, shape), parameter sizes, weights in [-127, 127],
// multipliers 0 or [2^30, 2^31), shifts -31..30, no int32 accumulator overflow
// (|bias| + max|x| * sum|w| <= 2^31 - 1 per channel), sizes bounded, C-identifier layer names.
void validate_quant_model(const QuantModel& q, const std::string& what);

// Bytes of weights + biases + requantisation tables (what the firmware keeps in flash).
int64_t quant_param_bytes(const QuantModel& q);

// Limits shared by validate_quant_model and the file parser (deploy/quant_format.cpp).
constexpr int kMaxLayers = 64;
constexpr int kMaxDim = 4096;                    // channels, time steps, padding, dilation, pool
constexpr int kMaxKernel = 64;
constexpr int64_t kMaxElems = int64_t(1) << 22;  // per activation tensor / weight tensor
// Throws std::runtime_error("quantised model 'what': msg").
[[noreturn]] void quant_model_error(const std::string& what, const std::string& msg);
// A C identifier of at most 64 characters (layer names become C++ symbols in export).
bool is_c_identifier(const std::string& name);

}  // namespace pulsekd::deploy
