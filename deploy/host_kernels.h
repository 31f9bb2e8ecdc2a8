// The host's table of kernel instantiations (mcu/runtime/pk_kernels.h, compiled for the host with
// int_dsp.h's portable DSP definitions): the function the firmware's layer table would name.
#pragma once
#include "deploy/kernel_variants.h"
#include "mcu/runtime/pk_model.h"

namespace pulsekd::deploy {

// Throws std::logic_error for a choice no layer can have (e.g. a DSP kernel with int32 input).
pk_kernel_fn host_kernel(const KernelChoice& c);

}  // namespace pulsekd::deploy
