// The layer plan of a PULSE teacher or student (../shared/docs/PULSE.md sections 2, 3): every
// convolution's kernel, dilation, padding and channels, the poolings, the sizes after them and
// the head, computed from the model config alone. The network is described here once: the model
// (parameters, forward, MACs), checkpoints (which tensors are row-shared conv kernels), the
// quantiser's float reference and calibration (deploy/) all walk this plan.
#pragma once
#include <string>
#include <vector>

namespace pulsekd::models {

struct ModelConfig;

struct PulsePlan {
  struct Conv {
    std::string name;  // "conv11".."conv3D": block b, position i (1-based), as PyTorch names it
    int c_in = 0, c_out = 0;
    int kernel = 0, dilation = 0;
    int pad = 0;   // "same" length: dilation * (kernel - 1) / 2 on both sides
    int t_in = 0;  // input (= output) time steps per row
  };
  struct Pool {
    std::string name;  // "pool1".."pool3" (the quantised model's layer names)
    int size = 0;  // average pooling, kernel = stride = size, ceil mode
    int t_in = 0;  // input time steps per row
    int t_out = 0; // ceil(t_in / size)
  };
  bool teacher = false;        // teacher: cross-attention fusion; student: modality-wise conv4
  int rows = 4;                // modality rows [PPG, accX, accY, accZ]: share every conv;
                               // the student's conv4 has one tap per row
  int t_in = 256;              // samples per row of one window
  std::vector<Conv> convs;     // (3 * convs_per_block) in forward order
  std::vector<int> block_end;  // (3) index into convs of each block's last conv
  std::vector<Pool> pools;     // (3) one per block, after its last conv
  std::vector<int> block_channels;  // (3) output channels of each block
  int c3 = 0;                  // channels of the last block (= block_channels[2])
  int t_final = 0;             // time steps after the last pooling (teacher: attention embedding)
  int heads = 4;               // teacher: attention heads over the t_final embedding
  int flat = 0;                // c3 * t_final: the features dense reads
  int dense = 0;               // width of the "dense32" features
  int outputs = 1;             // 1 (regression, BPM) or bins (binned head logits)
  double dropout = 0;          // after every pooling: config value, or the published one
};

// Throws std::invalid_argument unless cfg.arch is "teacher" or "student" (the 1-D ResNet family
// has its own structure, models/resnet.cpp).
PulsePlan pulse_plan(const ModelConfig& cfg);

}  // namespace pulsekd::models
