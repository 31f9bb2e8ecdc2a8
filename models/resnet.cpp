// The 1-D ResNet family (ModelConfig::arch "resnet"), the size family of the capacity studies:
// PulseModel's members for it, kept apart from the PULSE teacher and student (models/pulse.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "engine/ops.h"
#include "models/pulse.h"

namespace pulsekd::models {

// ---------------------------------------------------------------------------------------
// 1-D ResNet family
//
// stem:   conv(1 -> C0, K) + BN + ReLU, avg-pool 4 (256 -> 64 samples)
// stage s (s = 0..S-1, C_s = round(base_channels * width * 2^s)): D residual blocks
//         block: conv(K, stride) + BN + ReLU, conv(K) + BN, + skip, ReLU; the first block of
//         every stage after the first has stride 2 and a 1x1 stride-2 conv + BN on the skip
// all of it row-shared over the 4 modality rows (folded into the batch, as PULSE does)
// fuse:   modality-wise conv (C, 4, C) + bias + ReLU over the rows -> (B, T, C)
// pool:   mean over time -> (B, C), dropout, dense (cfg.dense, the "dense32" features),
//         ReLU, out (1 or bins). Names follow torchvision ("layer2.0.conv1.weight",
//         "layer2.0.downsample.0.weight", "layer2.0.bn1.running_mean").

PulseModel::ResConv PulseModel::make_res_conv(Layer& parent, const std::string& conv_name, const std::string& bn_name,
                                              int c_in, int c_out, int k, int stride, int t_in) {
  ResConv c;
  c.name = conv_name;
  c.c_in = c_in;
  c.c_out = c_out;
  c.k = k;
  c.stride = stride;
  c.pad = (k - 1) / 2;
  c.t_in = t_in;
  c.t_out = (t_in + 2 * c.pad - k) / stride + 1;
  c.w = &child(parent, conv_name).add_parameter("weight", {c_out, k, c_in});
  Layer& bn = child(parent, bn_name);
  c.bn.w = &bn.add_parameter("weight", {c_out});
  c.bn.b = &bn.add_parameter("bias", {c_out});
  c.bn.mean = &bn.add_buffer("running_mean", {c_out});
  c.bn.var = &bn.add_buffer("running_var", {c_out});
  return c;
}

void PulseModel::build_resnet() {
  const int k = cfg_.kernel;
  for (int s = 0; s < cfg_.stages; ++s)
    stage_channels_.push_back(std::max(1, int(std::lround(cfg_.base_channels * cfg_.width * double(1 << s)))));
  Layer& stem = layer("stem");
  stem_ = make_res_conv(stem, "conv", "bn", 1, stage_channels_[0], k, 1, 256);
  stem_.name = "stem";
  int t = (stem_.t_out + stem_pool_ - 1) / stem_pool_;
  int c_in = stage_channels_[0];
  for (int s = 0; s < cfg_.stages; ++s) {
    Layer& st = layer("layer" + std::to_string(s + 1));
    for (int j = 0; j < cfg_.convs_per_block; ++j) {
      ResBlock blk;
      blk.name = "layer" + std::to_string(s + 1) + "." + std::to_string(j);
      Layer& bl = child(st, std::to_string(j));
      const int c_out = stage_channels_[size_t(s)];
      const int stride = (s > 0 && j == 0) ? 2 : 1;
      blk.c1 = make_res_conv(bl, "conv1", "bn1", c_in, c_out, k, stride, t);
      blk.c2 = make_res_conv(bl, "conv2", "bn2", c_out, c_out, k, 1, blk.c1.t_out);
      blk.proj = stride != 1 || c_in != c_out;
      if (blk.proj) {
        Layer& ds = child(bl, "downsample");
        blk.skip = make_res_conv(ds, "0", "1", c_in, c_out, 1, stride, t);
      }
      blk.last_of_stage = j + 1 == cfg_.convs_per_block;
      t = blk.c2.t_out;
      c_in = c_out;
      blocks_.push_back(blk);
    }
  }
  t_final_ = t;
  for (int i = 0; i < 3; ++i) channels_.push_back(stage_channels_[size_t(std::max(0, cfg_.stages - 3 + i))]);
  const int c = stage_channels_.back();
  Layer& fuse = layer("fuse");
  fuse_w_ = &fuse.add_parameter("weight", {c, 4, c});
  fuse_b_ = &fuse.add_parameter("bias", {c});
  Layer& dense = layer("dense");
  dense_w_ = &dense.add_parameter("weight", {cfg_.dense, c});
  dense_b_ = &dense.add_parameter("bias", {cfg_.dense});
  Layer& out = layer("out");
  const int n_out = cfg_.head == "binned" ? cfg_.bins : 1;
  out_w_ = &out.add_parameter("weight", {n_out, cfg_.dense});
  out_b_ = &out.add_parameter("bias", {n_out});
}

void PulseModel::init_resnet(Rng& rng) {
  // PyTorch defaults: conv and linear uniform ±1/sqrt(fan_in); BatchNorm weight 1, bias 0,
  // running mean 0, running variance 1.
  auto init_conv = [&](ResConv& c) {
    init_uniform_fan_in(*c.w, nullptr, int64_t(c.c_in) * c.k, rng);
    std::fill(c.bn.w->value.begin(), c.bn.w->value.end(), real(1));
    std::fill(c.bn.b->value.begin(), c.bn.b->value.end(), real(0));
    std::fill(c.bn.mean->value.begin(), c.bn.mean->value.end(), real(0));
    std::fill(c.bn.var->value.begin(), c.bn.var->value.end(), real(1));
  };
  init_conv(stem_);
  for (auto& b : blocks_) {
    init_conv(b.c1);
    init_conv(b.c2);
    if (b.proj) init_conv(b.skip);
  }
  const int c = stage_channels_.back();
  init_uniform_fan_in(*fuse_w_, fuse_b_, int64_t(c) * 4, rng);
  init_uniform_fan_in(*dense_w_, dense_b_, c, rng);
  init_uniform_fan_in(*out_w_, out_b_, cfg_.dense, rng);
}

Var PulseModel::apply_res_conv(Graph& g, const ResConv& c, Var h) {
  h = conv1d(h, g.param(*c.w), Var{}, Conv1dOpts{c.stride, c.pad, 1, 1, false});
  return batch_norm(h, g.param(*c.bn.w), g.param(*c.bn.b), *c.bn.mean, *c.bn.var, training());
}

ModelOutput PulseModel::forward_resnet(Graph& g, Var x, Rng& rng) {
  const int64_t b = x.shape()[0];
  const bool train = training();
  const real p_drop = real(cfg_.dropout >= 0 ? cfg_.dropout : 0.1);
  ModelOutput out;
  Var h = reshape(x, {b * 4, 256, 1});
  h = relu(apply_res_conv(g, stem_, h));
  h = avg_pool1d(h, stem_pool_, stem_pool_, true);
  std::vector<Var> stage_out;
  for (const ResBlock& blk : blocks_) {
    Var y = relu(apply_res_conv(g, blk.c1, h));
    y = apply_res_conv(g, blk.c2, y);
    Var skip = blk.proj ? apply_res_conv(g, blk.skip, h) : h;
    h = relu(add(y, skip));
    if (blk.last_of_stage) stage_out.push_back(h);
  }
  for (int i = 0; i < 3; ++i) out.features.push_back(stage_out[size_t(std::max(0, cfg_.stages - 3 + i))]);
  const int64_t c = stage_channels_.back(), t = t_final_;
  Var rows = reshape(h, {b, 4, t, c});
  Var m = relu(modality_conv(rows, g.param(*fuse_w_), g.param(*fuse_b_)));  // (B, T, C)
  out.features.push_back(m);
  Var pooled = dropout(mean_axis(m, 1), p_drop, train, rng);  // (B, C)
  out.dense32 = linear(pooled, g.param(*dense_w_), g.param(*dense_b_));
  Var o = linear(relu(out.dense32), g.param(*out_w_), g.param(*out_b_));
  set_head_output(g, o, b, out);
  return out;
}

std::vector<LayerInfo> PulseModel::layers_resnet() const {
  // Parameters exclude the BatchNorm running statistics (buffers), as num_parameters() does;
  // BatchNorm costs no MACs (it folds into the preceding conv for inference).
  auto conv_info = [](const ResConv& c) {
    return std::pair<int64_t, int64_t>{c.w->numel() + c.bn.w->numel() + c.bn.b->numel(),
                                       int64_t(4) * c.t_out * c.c_out * c.c_in * c.k};
  };
  std::vector<LayerInfo> out;
  auto [sp, sm] = conv_info(stem_);
  out.push_back({"stem", sp, sm});
  for (const ResBlock& blk : blocks_) {
    LayerInfo li{blk.name, 0, 0};
    for (const ResConv* c : {&blk.c1, &blk.c2, blk.proj ? &blk.skip : nullptr}) {
      if (!c) continue;
      auto [p, m] = conv_info(*c);
      li.params += p;
      li.macs += m;
    }
    out.push_back(li);
  }
  const int64_t c = stage_channels_.back(), t = t_final_;
  out.push_back({"fuse", fuse_w_->numel() + fuse_b_->numel(), t * c * 4 * c});
  out.push_back({"dense", dense_w_->numel() + dense_b_->numel(), dense_w_->numel()});
  out.push_back({"out", out_w_->numel() + out_b_->numel(), out_w_->numel()});
  return out;
}

}  // namespace pulsekd::models
