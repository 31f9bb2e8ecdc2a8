// The PULSE teacher (row-shared dilated convolutions + multi-head cross-attention between the
// PPG row and the accelerometer rows) and its distilled student (the attention replaced by a
// "modality-wise" convolution), after Kasnesis, Toumanidis, Jahier Pagliari, Burrello (2025),
// layer by layer as ../shared/docs/PULSE.md specifies. Parameter names equal the released
// PyTorch state_dicts ("conv11.weight", "multihead_attn.in_proj_weight", ...).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/module.h"
#include "engine/rng.h"
#include "models/pulse_plan.h"

namespace pulsekd::models {

struct ModelConfig {
  std::string arch = "teacher";     // "teacher", "student" or "resnet" (1-D ResNet family)
  double width = 1.0;               // multiplier on every convolution channel count
  int convs_per_block = 3;          // depth option: convolutions in each of the 3 blocks
                                    // (resnet: residual blocks in each stage)
  int stages = 3;                   // resnet: residual stages; each after the first halves time
  int base_channels = 16;           // resnet: first-stage channels before the width multiplier
                                    // (doubled at every stage)
  int kernel = 5;                   // resnet: convolution kernel size (3, 5 or 7)
  int dense = 32;                   // width of the penultimate "dense32" features
  std::string head = "regression";  // "regression" (1 output, BPM) or "binned" (bins logits)
  int bins = 64;                    // binned head: number of heart-rate bins
  double bin_lo = 30, bin_hi = 210; // binned head: BPM range covered by the bins
  double dropout = -1;              // -1: the published value (teacher 0.5, student 0.1)

  std::string to_json() const;
  static ModelConfig from_json(const std::string& text);  // validates every field
  void validate() const;
  std::string describe() const;  // "teacher width 1 depth 3 regression"
};

struct ModelOutput {
  Var hr;                     // (B) heart rate in BPM
  Var logits;                 // (B, bins) for the binned head, undefined otherwise
  Var dense32;                // (B, dense) penultimate features
  std::vector<Var> features;  // block outputs (B*4, T_b, C_b) and the fused map, for FitNets
};

struct LayerInfo {
  std::string name;
  int64_t params = 0;
  int64_t macs = 0;  // multiply-accumulates per window
};

class PulseModel : public Module {
 public:
  explicit PulseModel(const ModelConfig& cfg, uint64_t seed = 0);
  // x: (B, 4, 256, 1) — rows [PPG, accX, accY, accZ], 256 samples, channels-last.
  ModelOutput forward(Graph& g, Var x, Rng& dropout_rng);
  // Convenience for inference: windows (B, 4, 256) already normalised → HR (B), dense32 (B, dense),
  // and for the binned head the logits (B, bins) (left empty for the regression head).
  void predict(const float* windows, int64_t b, std::vector<float>& hr, std::vector<float>* dense32 = nullptr,
               std::vector<float>* logits = nullptr);
  const ModelConfig& config() const { return cfg_; }
  // The teacher's or student's layer plan (models/pulse_plan.h); throws for the 1-D ResNet.
  const PulsePlan& plan() const;
  std::vector<LayerInfo> layers() const;  // per-layer parameters and MACs per window
  int64_t macs_per_window() const;
  // Channels of features[0..2] (PULSE: the 3 blocks; resnet: the stage widths, front-padded
  // with the first stage when there are fewer than 3 stages).
  std::vector<int> block_channels() const { return cfg_.arch == "resnet" ? channels_ : plan_.block_channels; }
  std::vector<int> stage_channels() const { return stage_channels_; }  // resnet: width of every stage
  // Bin centres (bins) of the binned head.
  std::vector<float> bin_centres() const;
  void init(uint64_t seed);  // PyTorch-default initialisation

 private:
  struct ConvParams {
    Parameter* w;  // (c_out, K, c_in)
    Parameter* b;  // (c_out)
  };
  ModelConfig cfg_;
  PulsePlan plan_;                       // teacher and student; empty for the resnet
  std::vector<ConvParams> conv_params_;  // (plan_.convs.size()), in the plan's order
  // teacher
  Parameter *in_proj_w_ = nullptr, *in_proj_b_ = nullptr, *out_proj_w_ = nullptr, *out_proj_b_ = nullptr;
  Parameter *ln_w_ = nullptr, *ln_b_ = nullptr;
  // student
  Parameter *conv4_w_ = nullptr, *conv4_b_ = nullptr;
  Parameter *dense_w_ = nullptr, *dense_b_ = nullptr, *out_w_ = nullptr, *out_b_ = nullptr;

  // A named group of parameters ("conv11", "multihead_attn", ...), so state_dict order and
  // names follow the PyTorch modules.
  struct Layer : Module {
    using Module::add_module;
    using Module::add_parameter;
    using Module::add_buffer;
  };
  std::vector<std::unique_ptr<Layer>> layers_;
  Layer& layer(const std::string& name);
  void set_head_output(Graph& g, Var o, int64_t b, ModelOutput& out) const;
  std::unique_ptr<Graph> infer_graph_;  // reused by predict()
  Layer& child(Layer& parent, const std::string& name);

  // 1-D ResNet family (arch "resnet"): row-shared residual stages, a modality-wise fusion conv,
  // global average pooling over time, dense, head.
  struct BatchNormLayer {
    Parameter *w = nullptr, *b = nullptr, *mean = nullptr, *var = nullptr;
  };
  struct ResConv {
    std::string name;
    Parameter* w = nullptr;  // (c_out, K, c_in), no bias (BatchNorm follows)
    BatchNormLayer bn;
    int c_in = 0, c_out = 0, k = 1, stride = 1, pad = 0, t_in = 0, t_out = 0;
  };
  struct ResBlock {
    std::string name;  // "layer2.0"
    ResConv c1, c2;
    bool proj = false;  // 1x1 (strided) conv + BatchNorm on the skip path
    ResConv skip;
    bool last_of_stage = false;
  };
  ResConv stem_;
  std::vector<ResBlock> blocks_;
  std::vector<int> channels_;  // resnet (3): widths of features[0..2]
  int t_final_ = 0;            // resnet: time steps after the last stage
  std::vector<int> stage_channels_;
  int stem_pool_ = 4;
  Parameter *fuse_w_ = nullptr, *fuse_b_ = nullptr;
  void build_resnet();
  void init_resnet(Rng& rng);
  ModelOutput forward_resnet(Graph& g, Var x, Rng& rng);
  std::vector<LayerInfo> layers_resnet() const;
  ResConv make_res_conv(Layer& parent, const std::string& conv_name, const std::string& bn_name, int c_in, int c_out,
                        int k, int stride, int t_in);
  Var apply_res_conv(Graph& g, const ResConv& c, Var h);
};

}  // namespace pulsekd::models
