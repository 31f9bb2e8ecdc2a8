// Tiny synthetic quantised models (no data needed): what tests/test_quant_io.cpp mutates and
// tools/make_fuzz_seeds.cpp writes as fuzz seeds (fuzz/corpus/quant_model/).
#pragma once
#include <cstdint>
#include <random>

#include "deploy/quant_model.h"

namespace pulsekd::testing {

// A tiny student-like model: conv -> pool per row, modality conv, dense (int16 input).
inline deploy::QuantModel tiny_model() {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
  deploy::QuantModel q;
  q.calib = "minmax";
  q.source = "tiny";
  q.input = {16, 1e-3f, 0};
  q.rows = 4;
  q.row_layers = 2;
  q.out_scale = 0.01f;
  auto params = [&](deploy::QLayer& L, int per_co, bool requant) {
    L.w.resize(size_t(L.c_out) * size_t(per_co));
    for (auto& w : L.w) w = int8_t(wd(rng));
    for (int co = 0; co < L.c_out; ++co) {
      L.bias.push_back(bd(rng));
      L.w_scale.push_back(0.01f);
      if (requant) {
        L.mult.push_back((1 << 30) + co * 12345);
        L.shift.push_back(-9 - co % 3);
      }
    }
  };
  deploy::QLayer c;
  c.name = "conv1";
  c.op = deploy::QOp::Conv;
  c.c_in = 1, c.c_out = 4, c.kernel = 3, c.pad = 1, c.t_in = 256, c.relu = true;
  c.in = q.input;
  c.out = {16, 2e-3f, 0};
  c.act_min = 0, c.act_max = 32767;
  params(c, 3, true);
  deploy::QLayer p;
  p.name = "pool1";
  p.op = deploy::QOp::AvgPool;
  p.c_in = p.c_out = 4, p.pool = 4, p.t_in = 256;
  p.in = p.out = c.out;
  p.act_min = -32768, p.act_max = 32767;
  deploy::QLayer m;
  m.name = "conv4";
  m.op = deploy::QOp::ModalityConv;
  m.c_in = 4, m.c_out = 2, m.rows = 4, m.t_in = 64, m.relu = true;
  m.in = c.out;
  m.out = {8, 0.05f, -128};
  m.act_min = -128, m.act_max = 127;
  params(m, 16, true);
  deploy::QLayer d;
  d.name = "out";
  d.op = deploy::QOp::Linear;
  d.c_in = 128, d.c_out = 1, d.t_in = 1;
  d.in = m.out;
  d.out = {32, 1.f, 0};
  d.act_min = INT32_MIN, d.act_max = INT32_MAX;
  params(d, 128, false);
  q.layers = {c, p, m, d};
  return q;
}

// A tiny teacher-like model: conv -> pool per row (16 steps, 4 channels), then the attention
// part (attn_in_proj, attention with 4 heads over 12 keys, per-token out-projection, layer_norm)
// and the output layer over the flattened 4 x 16 tokens.
inline deploy::QuantModel tiny_teacher() {
  deploy::QuantModel q = tiny_model();
  q.arch = "teacher";
  q.layers.resize(2);
  q.layers[1].pool = q.layers[1].kernel = 16;
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
  auto layer = [&](const char* name, deploy::QOp op, int t_in, int c_in, int c_out, deploy::QTensor in, deploy::QTensor out) {
    deploy::QLayer L;
    L.name = name;
    L.op = op;
    L.rows = 4;
    L.t_in = t_in, L.c_in = c_in, L.c_out = c_out;
    L.in = in, L.out = out;
    L.act_min = out.qmin(), L.act_max = out.qmax();
    const int64_t per = L.weights_per_channel();
    for (int64_t i = 0; per >= 0 && i < int64_t(c_out) * per; ++i) L.w.push_back(int8_t(wd(rng)));
    for (int co = 0; per >= 0 && co < c_out; ++co) L.bias.push_back(bd(rng)), L.w_scale.push_back(0.01f);
    for (size_t co = 0; co < L.requant_channels(); ++co) L.mult.push_back((1 << 30) + int(co) * 4321), L.shift.push_back(-8 - int(co % 3));
    return L;
  };
  const deploy::QTensor i16{16, 1e-3f, 0}, i32{32, 1e-4f, 0};
  deploy::QLayer p = layer("attn_in_proj", deploy::QOp::AttnInProj, 16, 4, 48, q.layers[1].out, i32);
  p.act_min = -8388607, p.act_max = 8388607;
  deploy::QLayer a = layer("attention", deploy::QOp::Attention, 4, 16, 16, i32, i16);
  a.heads = 4;
  deploy::QLayer o = layer("attn_out_proj", deploy::QOp::Linear, 4, 16, 16, i16, i16);
  deploy::QLayer n = layer("layer_norm", deploy::QOp::LayerNorm, 4, 16, 16, i16, {8, 0.02f, -5});
  n.norm_eps = 123456;
  deploy::QLayer d = layer("out", deploy::QOp::Linear, 1, 64, 1, n.out, {32, 1.f, 0});
  q.layers.insert(q.layers.end(), {p, a, o, n, d});
  return q;
}

}  // namespace pulsekd::testing
