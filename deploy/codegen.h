// Code generation for bare-metal Cortex-M: a quantised model (deploy/quant_model.h) becomes C++
// sources (weights as const arrays, a static layer schedule, one static activation arena laid
// out by liveness planning) plus the runtime, startup, linker script, toolchain file and kernel
// headers copied from the source tree, so the output directory builds on its own:
//   cmake -S DIR -B DIR/build -DCMAKE_TOOLCHAIN_FILE=DIR/pulsekd/mcu/cmake/arm-none-eabi.cmake -DPK_CORE=m4
#pragma once
#include <string>
#include <vector>

#include "deploy/kernel_variants.h"
#include "deploy/mcu_hmm.h"
#include "deploy/quant_model.h"
#include "mcu/runtime/pk_model.h"

namespace pulsekd::deploy {

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

// The firmware's layer table for q over the arena `plan` (n_layers entries, mcu/runtime/pk_model.h):
// shapes, zero points, clamps and arena offsets. The pointers (run, w, bias, mult, shift) are left
// null: export_mcu prints symbol names in their place, the host runtime fills them in.
std::vector<pk_layer> layer_table(const QuantModel& q, const McuExport& plan);
// The table's header (model.layers null).
pk_model model_header(const QuantModel& q, const McuExport& plan);

// target: "m4" or "m7". root: the pulsekd source tree (holds mcu/ and engine/kernels/);
// empty = the tree this binary was built from. The generated layer table names one kernel
// instantiation per layer (choose_kernel), so only the combinations the model uses are compiled;
// dsp = false: reference loops only (for comparisons). hmm: also run the HMM forward filter on
// each window's output (mcu/runtime/pk_hmm.h; the firmware writes the filtered heart rates,
// float32, to hmm.bin). Every file goes through write_file_atomic (engine/atomic_file.h): a
// failure names the file and leaves no truncated source. While it writes, out_dir holds the
// marker kUnfinishedExport, removed once every file is in place.
McuExport export_mcu(const QuantModel& q, const std::string& target, const std::string& out_dir,
                     const std::string& root = "", bool dsp = true, const McuHmm* hmm = nullptr);

// export-mcu's refusal to mix its files with others: an existing out_dir must be an empty
// directory unless force (then the generated files are replaced, atomically, and other files stay).
// A directory holding kUnfinishedExport is an export that was interrupted (killed, a full disk):
// rerunning export-mcu into it needs no --force.
inline constexpr const char* kUnfinishedExport = ".export-mcu-unfinished";
void check_export_dir(const std::string& out_dir, bool force);

// The source tree this binary was built from.
std::string pulsekd_source_root();

}  // namespace pulsekd::deploy
