#include "models/pulse.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/ops.h"

namespace pulsekd::models {

using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Config

void ModelConfig::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("model config: " + m); };
  if (arch != "teacher" && arch != "student" && arch != "resnet")
    bad("arch must be 'teacher', 'student' or 'resnet', got '" + arch + "'");
  if (!(width > 0 && width <= 16)) bad("width must be in (0, 16], got " + std::to_string(width));
  if (convs_per_block < 1 || convs_per_block > 8) bad("convs_per_block must be 1..8");
  if (dense < 1 || dense > 4096) bad("dense must be 1..4096");
  if (head != "regression" && head != "binned") bad("head must be 'regression' or 'binned', got '" + head + "'");
  if (head == "binned" && (bins < 2 || bins > 4096)) bad("bins must be 2..4096");
  if (head == "binned" && !(bin_hi > bin_lo)) bad("bin_hi must exceed bin_lo");
  if (dropout != -1 && !(dropout >= 0 && dropout < 1)) bad("dropout must be in [0, 1)");
  if (arch == "resnet") {
    // The stem pools 256 samples to 64; every stage after the first halves them again.
    if (stages < 1 || stages > 6) bad("stages must be 1..6 (resnet), got " + std::to_string(stages));
    if (base_channels < 1 || base_channels > 1024) bad("base_channels must be 1..1024 (resnet), got " + std::to_string(base_channels));
    if (kernel != 3 && kernel != 5 && kernel != 7) bad("kernel must be 3, 5 or 7 (resnet), got " + std::to_string(kernel));
    if (base_channels * width * double(1 << (stages - 1)) > 4096) bad("resnet last-stage width exceeds 4096 channels");
  }
}

std::string ModelConfig::to_json() const {
  json j = {{"arch", arch}, {"width", width}, {"convs_per_block", convs_per_block}, {"dense", dense},
            {"head", head}, {"bins", bins}, {"bin_lo", bin_lo}, {"bin_hi", bin_hi}, {"dropout", dropout}};
  if (arch == "resnet") {  // PULSE configs keep their original JSON
    j["stages"] = stages;
    j["base_channels"] = base_channels;
    j["kernel"] = kernel;
  }
  return j.dump();
}

namespace {

// An integer field of a model config: absent -> `fallback`; otherwise a JSON integer within int
// range. nlohmann's value<int>() would cast 1e70 (undefined behaviour) or wrap 4294967298 to 2.
int int_field(const json& j, const char* key, int fallback) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  const bool fits = it->is_number_unsigned() ? it->get<uint64_t>() <= uint64_t(INT32_MAX)
                    : it->is_number_integer() ? it->get<int64_t>() >= INT32_MIN && it->get<int64_t>() <= INT32_MAX
                                              : false;
  if (!fits) throw std::invalid_argument(std::string("model config: ") + key + " must be an integer, got " + it->dump());
  return int(it->get<int64_t>());
}

}  // namespace

ModelConfig ModelConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("model config: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  ModelConfig c;
  try {
    c.arch = j.value("arch", c.arch);
    c.width = j.value("width", c.width);
    c.convs_per_block = int_field(j, "convs_per_block", c.convs_per_block);
    c.dense = int_field(j, "dense", c.dense);
    c.head = j.value("head", c.head);
    c.bins = int_field(j, "bins", c.bins);
    c.bin_lo = j.value("bin_lo", c.bin_lo);
    c.bin_hi = j.value("bin_hi", c.bin_hi);
    c.dropout = j.value("dropout", c.dropout);
    c.stages = int_field(j, "stages", c.stages);
    c.base_channels = int_field(j, "base_channels", c.base_channels);
    c.kernel = int_field(j, "kernel", c.kernel);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("model config: a field has the wrong type: ") + e.what());
  }
  c.validate();
  return c;
}

std::string ModelConfig::describe() const {
  std::ostringstream s;
  s << arch << " width " << width << " depth " << convs_per_block << " " << head;
  if (arch == "resnet") s << " (stages " << stages << ", base channels " << base_channels << ", kernel " << kernel << ")";
  if (head == "binned") s << " (" << bins << " bins " << bin_lo << "-" << bin_hi << " BPM)";
  return s.str();
}

// ---------------------------------------------------------------------------------------
// Model

PulseModel::Layer& PulseModel::layer(const std::string& name) {
  layers_.push_back(std::make_unique<Layer>());
  add_module(name, *layers_.back());
  return *layers_.back();
}

PulseModel::Layer& PulseModel::child(Layer& parent, const std::string& name) {
  layers_.push_back(std::make_unique<Layer>());
  parent.add_module(name, *layers_.back());
  return *layers_.back();
}

const PulsePlan& PulseModel::plan() const {
  if (cfg_.arch == "resnet") throw std::logic_error("the 1-D ResNet has no PULSE layer plan");
  return plan_;
}

PulseModel::PulseModel(const ModelConfig& cfg, uint64_t seed) : cfg_(cfg) {
  cfg_.validate();
  if (cfg_.arch == "resnet") {
    build_resnet();
    init(seed);
    return;
  }
  plan_ = pulse_plan(cfg_);
  const PulsePlan& p = plan_;
  for (const PulsePlan::Conv& c : p.convs) {
    Layer& l = layer(c.name);
    conv_params_.push_back({&l.add_parameter("weight", {c.c_out, c.kernel, c.c_in}), &l.add_parameter("bias", {c.c_out})});
  }
  if (p.teacher) {
    // Cross-attention over the time axis: embed dim = remaining time steps (16), 4 heads.
    const int e = p.t_final;
    Layer& mha = layer("multihead_attn");
    in_proj_w_ = &mha.add_parameter("in_proj_weight", {3 * e, e});
    in_proj_b_ = &mha.add_parameter("in_proj_bias", {3 * e});
    Layer& op = child(mha, "out_proj");
    out_proj_w_ = &op.add_parameter("weight", {e, e});
    out_proj_b_ = &op.add_parameter("bias", {e});
    Layer& ln = layer("layer_norm");
    ln_w_ = &ln.add_parameter("weight", {e});
    ln_b_ = &ln.add_parameter("bias", {e});
  } else {
    Layer& c4 = layer("conv4");
    conv4_w_ = &c4.add_parameter("weight", {p.c3, p.rows, p.c3});
    conv4_b_ = &c4.add_parameter("bias", {p.c3});
  }
  Layer& dense = layer("dense");
  dense_w_ = &dense.add_parameter("weight", {p.dense, p.flat});
  dense_b_ = &dense.add_parameter("bias", {p.dense});
  Layer& out = layer("out");
  out_w_ = &out.add_parameter("weight", {p.outputs, p.dense});
  out_b_ = &out.add_parameter("bias", {p.outputs});
  init(seed);
}

void PulseModel::init(uint64_t seed) {
  Rng rng(seed);
  if (cfg_.arch == "resnet") {
    init_resnet(rng);
    return;
  }
  for (size_t i = 0; i < plan_.convs.size(); ++i) {
    const PulsePlan::Conv& c = plan_.convs[i];
    init_uniform_fan_in(*conv_params_[i].w, conv_params_[i].b, int64_t(c.c_in) * c.kernel, rng);
  }
  if (in_proj_w_) {
    // PyTorch MultiheadAttention: xavier_uniform in_proj, zero biases, out_proj like Linear
    // with a zero bias; LayerNorm: ones and zeros.
    const int e = plan_.t_final;
    const double bound = std::sqrt(6.0 / double(e + 3 * e));
    for (auto& v : in_proj_w_->value) v = real(rng.uniform(-bound, bound));
    std::fill(in_proj_b_->value.begin(), in_proj_b_->value.end(), real(0));
    init_uniform_fan_in(*out_proj_w_, nullptr, e, rng);
    std::fill(out_proj_b_->value.begin(), out_proj_b_->value.end(), real(0));
    std::fill(ln_w_->value.begin(), ln_w_->value.end(), real(1));
    std::fill(ln_b_->value.begin(), ln_b_->value.end(), real(0));
  }
  if (conv4_w_) init_uniform_fan_in(*conv4_w_, conv4_b_, int64_t(plan_.c3) * plan_.rows, rng);
  init_uniform_fan_in(*dense_w_, dense_b_, dense_w_->shape[1], rng);
  init_uniform_fan_in(*out_w_, out_b_, cfg_.dense, rng);
}

std::vector<float> PulseModel::bin_centres() const {
  std::vector<float> c(size_t(cfg_.bins));
  const double step = (cfg_.bin_hi - cfg_.bin_lo) / cfg_.bins;
  for (int i = 0; i < cfg_.bins; ++i) c[size_t(i)] = float(cfg_.bin_lo + (i + 0.5) * step);
  return c;
}

// The head's output o: (B, 1) heart rate, or (B, bins) logits whose softmax weights the bin
// centres into a heart rate.
void PulseModel::set_head_output(Graph& g, Var o, int64_t b, ModelOutput& out) const {
  if (cfg_.head == "binned") {
    out.logits = o;
    const std::vector<float> centres = bin_centres();
    std::vector<real> cr(centres.begin(), centres.end());
    Var cv = g.input({int64_t(cfg_.bins), 1}, cr.data());
    out.hr = reshape(matmul(softmax(o, -1), cv), {b});
  } else {
    out.hr = reshape(o, {b});
  }
}

ModelOutput PulseModel::forward(Graph& g, Var x, Rng& rng) {
  const Shape xs = x.shape();
  if (xs.ndim != 4 || xs[1] != 4 || xs[2] != 256 || xs[3] != 1)
    throw ShapeError("PULSE model: input must be (B, 4, 256, 1), got " + xs.str());
  if (cfg_.arch == "resnet") return forward_resnet(g, x, rng);
  const PulsePlan& p = plan_;
  const int64_t b = xs[0];
  const bool train = training();
  const real p_drop = real(p.dropout);
  ModelOutput out;
  // Row-shared convolutions: the rows fold into the batch.
  Var h = reshape(x, {b * p.rows, p.t_in, 1});
  size_t ci = 0;
  for (size_t blk = 0; blk < p.pools.size(); ++blk) {
    for (; ci <= size_t(p.block_end[blk]); ++ci) {
      const PulsePlan::Conv& c = p.convs[ci];
      h = conv1d(h, g.param(*conv_params_[ci].w), g.param(*conv_params_[ci].b), Conv1dOpts{1, c.pad, c.dilation, 1, /*relu=*/true});
    }
    h = avg_pool1d(h, p.pools[blk].size, p.pools[blk].size, true);
    h = dropout(h, p_drop, train, rng);
    out.features.push_back(h);
  }
  const int64_t c3 = p.c3, t = p.t_final;
  Var rows = reshape(h, {b, p.rows, t, c3});  // (B, 4, T, C)
  Var flat;
  if (p.teacher) {
    // query: PPG row as C tokens of T values; key/value: the 3 ACC rows as 3C tokens.
    Var q = transpose(reshape(slice(rows, 1, 0, 1), {b, t, c3}), 1, 2);  // (B, C, T)
    Var kv = reshape(transpose(slice(rows, 1, 1, p.rows), 2, 3), {b, (p.rows - 1) * c3, t});  // (B, 3C, T)
    Var a = multi_head_attention(q, kv, g.param(*in_proj_w_), g.param(*in_proj_b_), g.param(*out_proj_w_),
                                 g.param(*out_proj_b_), p.heads);
    a = layer_norm(a, g.param(*ln_w_), g.param(*ln_b_));
    out.features.push_back(a);
    flat = flatten(a, 1);  // (B, C*T), index c*T + t as PyTorch's [B, C, T] flatten
  } else {
    Var m = modality_conv(rows, g.param(*conv4_w_), g.param(*conv4_b_));  // (B, T, C)
    m = transpose(m, 1, 2);                                                 // (B, C, T)
    out.features.push_back(m);
    flat = flatten(m, 1);
  }
  out.dense32 = linear(flat, g.param(*dense_w_), g.param(*dense_b_));
  Var o = linear(out.dense32, g.param(*out_w_), g.param(*out_b_));
  set_head_output(g, o, b, out);
  return out;
}

void PulseModel::predict(const float* windows, int64_t b, std::vector<float>& hr, std::vector<float>* dense32,
                         std::vector<float>* logits) {
  NoGradGuard ng;
  const bool was_training = training();
  eval();
  // One inference graph per model, reset per call: its arena keeps its memory, so repeated
  // predictions (batch-1 streaming, evaluation) allocate nothing.
  if (!infer_graph_) infer_graph_ = std::make_unique<Graph>();
  Graph& g = *infer_graph_;
  g.reset();
  Rng rng(0);
  std::vector<real> xin(windows, windows + b * 4 * 256);
  ModelOutput o = forward(g, g.input({b, 4, 256, 1}, xin.data()), rng);
  hr.assign(o.hr.data(), o.hr.data() + b);
  if (dense32) dense32->assign(o.dense32.data(), o.dense32.data() + b * cfg_.dense);
  if (logits) {
    logits->clear();
    if (cfg_.head == "binned") logits->assign(o.logits.data(), o.logits.data() + b * cfg_.bins);
  }
  train(was_training);
}

std::vector<LayerInfo> PulseModel::layers() const {
  if (cfg_.arch == "resnet") return layers_resnet();
  const PulsePlan& p = plan_;
  std::vector<LayerInfo> out;
  for (size_t i = 0; i < p.convs.size(); ++i) {
    const PulsePlan::Conv& c = p.convs[i];
    const ConvParams& w = conv_params_[i];
    out.push_back({c.name, w.w->numel() + w.b->numel(), int64_t(p.rows) * c.t_in * c.c_out * c.c_in * c.kernel});
  }
  const int64_t c3 = p.c3, t = p.t_final;
  if (p.teacher) {
    const int64_t e = t, lq = c3, lk = (p.rows - 1) * c3;
    const int64_t macs = lq * e * e + 2 * lk * e * e  // q, k, v projections
                         + 2 * lq * lk * e             // QK^T and attention × V over all heads
                         + lq * e * e;                 // output projection
    out.push_back({"multihead_attn", in_proj_w_->numel() + in_proj_b_->numel() + out_proj_w_->numel() + out_proj_b_->numel(), macs});
    out.push_back({"layer_norm", ln_w_->numel() + ln_b_->numel(), 0});
  } else {
    out.push_back({"conv4", conv4_w_->numel() + conv4_b_->numel(), t * c3 * p.rows * c3});
  }
  out.push_back({"dense", dense_w_->numel() + dense_b_->numel(), dense_w_->numel()});
  out.push_back({"out", out_w_->numel() + out_b_->numel(), out_w_->numel()});
  return out;
}

int64_t PulseModel::macs_per_window() const {
  int64_t m = 0;
  for (auto& l : layers()) m += l.macs;
  return m;
}

}  // namespace pulsekd::models
