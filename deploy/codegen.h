// Code generation for bare-metal Cortex-M: a quantised model (models/quantize.h) becomes C++
// sources (weights as const arrays, a static layer schedule, one static activation arena laid
// out by liveness planning) plus the runtime, startup, linker script, toolchain file and kernel
// headers copied from the source tree, so the output directory builds on its own:
//   cmake -S DIR -B DIR/build -DCMAKE_TOOLCHAIN_FILE=DIR/pulsekd/mcu/cmake/arm-none-eabi.cmake -DPK_CORE=m4
#pragma once
#include <string>
#include <vector>

#include "models/quantize.h"

namespace pulsekd::models {

struct ArenaSlot {
  std::string tensor;  // "input", a layer name, or "rows" (the per-row results)
  int64_t offset = 0, bytes = 0;
  int first = 0, last = 0;  // schedule steps it is live in
  bool inplace = false;     // written over the previous tensor by a row-delayed conv (inplace_layer)
};

struct McuExport {
  int64_t arena_bytes = 0;
  int64_t weight_bytes = 0;   // const data: int8 weights, int32 biases, multipliers, shifts
  std::vector<ArenaSlot> slots;
};

// Liveness planning alone (also used by tests): greedy first-fit, largest tensors first,
// 4-byte aligned; tensors whose live ranges overlap never share bytes, except an in-place
// conv's output with its own input (inplace_layer: int16 conv, c_in == c_out, DSP on; output
// row t overwrites input row t - pad, which nothing reads afterwards).
McuExport plan_arena(const QuantModel& q, bool dsp = true);
bool inplace_layer(const QuantModel& q, int i, bool dsp);

// target: "m4" or "m7". root: the pulsekd source tree (holds mcu/ and engine/kernels/);
// empty = the tree this binary was built from. The generated layer table names one kernel
// instantiation per layer (kernel_name), so only the combinations the model uses are compiled;
// dsp = false: reference loops only (for comparisons).
McuExport export_mcu(const QuantModel& q, const std::string& target, const std::string& out_dir,
                     const std::string& root = "", bool dsp = true);
std::string kernel_name(const QLayer& L, bool dsp);

// The source tree this binary was built from.
std::string pulsekd_source_root();

}  // namespace pulsekd::models

namespace pulsekd::models {

// `pulsekd mcu-report`: builds the exported firmware in DIR for each core, runs one window under
// QEMU with the instruction-counting plugin (mcu/tools/qemu_count) and reads the marker counts.
struct McuLayerCount {
  std::string name, op, kernel_fn;
  int runs = 1;              // executions per inference (per-row layers: rows)
  int64_t macs = 0;          // multiply-accumulates per inference (all runs)
  int64_t instructions = 0;  // per inference (all runs), marker call included
};
struct McuCoreReport {
  std::string core;                  // "m4" / "m7"
  int64_t instructions = 0;          // one inference, first marker to last
  int64_t input_copy_instructions = 0;
  std::vector<McuLayerCount> layers;
  int64_t text = 0, data = 0, bss = 0, stack_reserved = 0, stack_peak = 0;
  int64_t flash_bytes() const { return text + data; }
  // .bss excludes the .stack reservation (a NOLOAD section of its own); RAM counts the measured peak
  int64_t ram_bytes() const { return data + bss + stack_peak; }
};
struct McuReportOptions {
  std::vector<std::string> cores = {"m4", "m7"};
  std::string opt = "-Os";  // firmware PK_OPT (docs/MCU.md: -Os is smaller and, with the DSP kernels, about as fast)
  std::string input;        // file with int16 windows (first one used); empty: DIR/input.bin, else synthetic
};
std::vector<McuCoreReport> mcu_report(const std::string& dir, const McuReportOptions& o = {});

// Builds the exported firmware in DIR for `core` (DIR/run-<core>/build) and runs it under QEMU on
// n quantised windows (quantize_input's output, (n, rows, 256)); returns the raw int32 outputs
// (heart rate = out_scale * output), which equal simulate()'s bit for bit. For `pulsekd pipeline`.
std::vector<int32_t> mcu_run(const std::string& dir, const std::string& core, const int16_t* qin, int64_t n,
                             const std::string& opt = "-Os");

}  // namespace pulsekd::models
