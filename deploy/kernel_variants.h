// The integer kernel vocabulary: every kernel instantiation of mcu/runtime/pk_kernels.h a layer
// can run, the ONE choice of it per layer (choose_kernel), its symbol text for the generated
// firmware and the weights as that kernel reads them. The code generator (deploy/codegen.h) and
// the host runtime (deploy/host_runtime.h) both take these, so they run the same kernels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "deploy/quant_model.h"

namespace pulsekd::deploy {

// One per kernel family of pk_kernels.h. Ref: the shared reference loop (engine/kernels/) in the
// integer policy. Dsp8p: int8 input, weights packed 4 channels per pass (dsp_pack_weights_s8).
// Dsp16: int16 input, weights interleaved (dsp_pack_weights_s16). LinearDsp: int8 input, unpacked
// 2-channel kernel. ConvCol16: int16 conv with c_in % 4 != 0 on gathered, zero-padded columns.
// ConvDsp16Inplace: an int16 conv writing over its own input (inplace_layer).
enum class Kernel {
  ConvRef, ConvDsp8p, ConvDsp16, ConvDsp16Inplace, ConvCol16,
  ModalityRef, ModalityDsp8p, ModalityDsp16,
  LinearRef, LinearDsp, LinearDsp16, TokenLinearRef,
  AttnInProjRef, AttentionRef, LayerNormRef, AvgPool,
};

// A kernel and the integer types it is instantiated with (8, 16 or 32 bits).
struct KernelChoice {
  Kernel kernel = Kernel::ConvRef;
  int in_bits = 16, out_bits = 16;
};

// Layer `layer` of q runs in place: an int16 conv with c_in == c_out (<= kDspMaxRow, a multiple
// of 4) between two per-row layers, DSP on; its output row t overwrites input row t - pad, which
// nothing reads afterwards (the arena plan puts it there: deploy/codegen.h plan_arena).
bool inplace_layer(const QuantModel& q, int layer, bool dsp);

// The kernel layer `layer` of q runs. dsp: the packed DSP variants (SXTB16/SMLAD; M4 and M7 both
// have them, the host runs int_dsp.h's portable definitions) wherever they apply, else the
// reference loops only (for comparisons).
KernelChoice choose_kernel(const QuantModel& q, int layer, bool dsp);

// The instantiation's C++ name in pk_kernels.h, e.g. "pk::conv_dsp16<int16_t>".
std::string kernel_symbol(const KernelChoice& c);

// The layer's int8 weights in the order the kernel reads them (packed, interleaved or as stored)
// and its int32 bias table ((c_out), for layer_norm followed by the 64-bit eps term as two words).
std::vector<int8_t> kernel_weights(const QLayer& L, Kernel k);
std::vector<int32_t> kernel_bias(const QLayer& L);

}  // namespace pulsekd::deploy
