// Building an exported firmware directory (deploy/codegen.h) and running it under QEMU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pulsekd::deploy {

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
  // Exported with --hmm-forward: the filter step on the second of two windows (with its
  // prediction; the first window's step has none) and on the first. 0 without the filter.
  int64_t hmm_instructions = 0, hmm_first_instructions = 0;
  std::vector<McuLayerCount> layers;
  int64_t text = 0, data = 0, bss = 0, stack_reserved = 0, stack_peak = 0;
  int64_t flash_bytes() const { return text + data; }
  // .bss excludes the .stack reservation (a NOLOAD section of its own); RAM counts the measured peak
  int64_t ram_bytes() const { return data + bss + stack_peak; }
};
struct McuReportOptions {
  std::vector<std::string> cores = {"m4", "m7"};
  std::string opt = "-Os";  // firmware PK_OPT (docs/MCU.md: -Os is smaller and, with the DSP kernels, about as fast)
  std::string input;        // file with int16 windows (first one used; missing or short: an error); empty: DIR/input.bin if present, else synthetic
};
// "" when the tools to build and run firmware are on PATH (arm-none-eabi-gcc, qemu-system-arm,
// cmake, cc), else which one is missing and how to get it.
std::string firmware_tools_missing();

std::vector<McuCoreReport> mcu_report(const std::string& dir, const McuReportOptions& o = {});

// Builds the exported firmware in DIR for `core` (DIR/run-<core>/build) and runs it under QEMU on
// n quantised windows (quantize_input's output, (n, rows, 256)); returns the raw int32 outputs
// (heart rate = out_scale * output), which equal the host runtime's (deploy/host_runtime.h) bit for bit. For `pulsekd pipeline`.
// A firmware exported with the HMM filter also returns its filtered heart rates (n) in *hmm_hr
// (equal to deploy::mcu_hmm_track's); hmm_hr must be null otherwise.
std::vector<int32_t> mcu_run(const std::string& dir, const std::string& core, const int16_t* qin, int64_t n,
                             const std::string& opt = "-Os", std::vector<float>* hmm_hr = nullptr);

}  // namespace pulsekd::deploy
