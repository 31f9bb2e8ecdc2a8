#include "models/pulse_plan.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "models/pulse.h"

namespace pulsekd::models {

PulsePlan pulse_plan(const ModelConfig& cfg) {
  if (cfg.arch != "teacher" && cfg.arch != "student")
    throw std::invalid_argument("PULSE layer plan: arch must be 'teacher' or 'student', got '" + cfg.arch + "'");
  cfg.validate();
  PulsePlan p;
  p.teacher = cfg.arch == "teacher";
  // PULSE.md sections 2 (teacher) and 3 (student): base channels before the width multiplier,
  // dilation and pooling per block, one kernel size for every row conv.
  const std::vector<int> base = p.teacher ? std::vector<int>{32, 48, 64} : std::vector<int>{16, 24, 32};
  const std::vector<int> pools = p.teacher ? std::vector<int>{4, 2, 2} : std::vector<int>{4, 4, 2};
  const std::vector<int> dil = p.teacher ? std::vector<int>{2, 2, 2} : std::vector<int>{2, 3, 4};
  const int kernel = p.teacher ? 5 : 3;
  for (int c : base) p.block_channels.push_back(std::max(1, int(std::lround(c * cfg.width))));
  int c_in = 1, t = p.t_in;
  for (size_t b = 0; b < 3; ++b) {
    for (int i = 0; i < cfg.convs_per_block; ++i) {
      PulsePlan::Conv c;
      c.name = "conv" + std::to_string(b + 1) + std::to_string(i + 1);
      c.c_in = c_in;
      c.c_out = p.block_channels[b];
      c.kernel = kernel;
      c.dilation = dil[b];
      c.pad = dil[b] * (kernel - 1) / 2;  // teacher d2 p4, student d2/3/4 p2/3/4
      c.t_in = t;
      p.convs.push_back(c);
      c_in = c.c_out;
    }
    p.block_end.push_back(int(p.convs.size()) - 1);
    const int t_out = (t + pools[b] - 1) / pools[b];  // ceil mode
    p.pools.push_back({"pool" + std::to_string(b + 1), pools[b], t, t_out});
    t = t_out;
  }
  p.c3 = p.block_channels[2];
  p.t_final = t;
  p.flat = p.c3 * p.t_final;
  p.dense = cfg.dense;
  p.outputs = cfg.head == "binned" ? cfg.bins : 1;
  p.dropout = cfg.dropout >= 0 ? cfg.dropout : (p.teacher ? 0.5 : 0.1);
  return p;
}

}  // namespace pulsekd::models
