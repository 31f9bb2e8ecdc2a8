// A quantised model run on the host by the firmware's own interpreter (mcu/runtime/pk_runtime.cpp
// compiled into this library) over the layer table the firmware gets: the same arena plan
// (plan_arena), the same packed weights and the same kernel per layer (choose_kernel, the
// instantiations of mcu/runtime/pk_kernels.h with int_dsp.h's portable DSP definitions). So its
// outputs equal the firmware's bit for bit by construction; tests/test_mcu.cpp checks it.
#pragma once
#include <cstdint>
#include <vector>

#include "deploy/codegen.h"
#include "deploy/quant_model.h"
#include "mcu/runtime/pk_model.h"

namespace pulsekd::deploy {

// Not re-entrant: one infer() at a time per HostModel (one arena), and for a model with an
// attention layer one at a time per process (pk::attention_ref keeps its scratch in static
// buffers, as the firmware keeps them in .bss). Movable, not copyable (the table points into it).
class HostModel {
 public:
  // Validates q. dsp: the DSP kernels as export_mcu's default; false: reference loops only.
  explicit HostModel(const QuantModel& q, bool dsp = true);
  HostModel(HostModel&&) = default;
  HostModel& operator=(HostModel&&) = default;
  HostModel(const HostModel&) = delete;
  HostModel& operator=(const HostModel&) = delete;

  // Quantised windows qin (n, rows, 256) (quantize_input's output) -> raw int32 outputs (n);
  // heart rate = out_scale * output.
  std::vector<int32_t> infer(const int16_t* qin, int64_t n);

  const McuExport& plan() const { return plan_; }

 private:
  McuExport plan_;
  std::vector<std::vector<int8_t>> w_;      // per layer: the weights as its kernel reads them
  std::vector<std::vector<int32_t>> bias_;  // per layer: kernel_bias
  std::vector<std::vector<int32_t>> mult_, shift_;
  std::vector<pk_layer> layers_;            // (n_layers) pointing into the vectors above
  pk_model model_{};
  std::vector<uint64_t> arena_;             // (arena_bytes / 8, rounded up): 8-byte aligned as the firmware's
  int rows_ = 4;
};

// Normalised float windows (n, 4, 256) -> heart rates (BPM) through the integer model.
std::vector<float> predict_quantized(const QuantModel& q, const float* x, int64_t n);

}  // namespace pulsekd::deploy
