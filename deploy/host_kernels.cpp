#include "deploy/host_kernels.h"

#include <cstdint>
#include <stdexcept>

#include "mcu/runtime/pk_kernels.h"

namespace pulsekd::deploy {

namespace {

// Kernels templated on <In, Out>.
template <class In, class Out>
pk_kernel_fn in_out_kernel(Kernel k) {
  switch (k) {
    case Kernel::ConvRef: return pk::conv_ref<In, Out>;
    case Kernel::ModalityRef: return pk::modality_ref<In, Out>;
    case Kernel::LinearRef: return pk::linear_ref<In, Out>;
    case Kernel::TokenLinearRef: return pk::token_linear_ref<In, Out>;
    case Kernel::LayerNormRef: return pk::layer_norm_ref<In, Out>;
    default: return nullptr;
  }
}

// Kernels templated on <Out> (their input type is fixed by the variant).
template <class Out>
pk_kernel_fn out_kernel(Kernel k) {
  switch (k) {
    case Kernel::ConvDsp8p: return pk::conv_dsp8p<Out>;
    case Kernel::ConvDsp16: return pk::conv_dsp16<Out>;
    case Kernel::ConvDsp16Inplace: return pk::conv_dsp16_inplace<Out>;
    case Kernel::ConvCol16: return pk::conv_col16<Out>;
    case Kernel::ModalityDsp8p: return pk::modality_dsp8p<Out>;
    case Kernel::ModalityDsp16: return pk::modality_dsp16<Out>;
    case Kernel::LinearDsp: return pk::linear_dsp<Out>;
    case Kernel::LinearDsp16: return pk::linear_dsp16<Out>;
    default: return nullptr;
  }
}

// Kernels templated on <In>.
template <class In>
pk_kernel_fn in_kernel(Kernel k) {
  switch (k) {
    case Kernel::AttnInProjRef: return pk::attn_in_proj_ref<In>;
    case Kernel::AvgPool: return pk::avgpool<In>;
    default: return nullptr;
  }
}

template <class In>
pk_kernel_fn by_out(const KernelChoice& c) {
  if (c.out_bits == 8) return in_out_kernel<In, int8_t>(c.kernel);
  if (c.out_bits == 16) return in_out_kernel<In, int16_t>(c.kernel);
  return in_out_kernel<In, int32_t>(c.kernel);
}

}  // namespace

pk_kernel_fn host_kernel(const KernelChoice& c) {
  if (c.kernel == Kernel::AttentionRef) return pk::attention_ref;  // int32 q/kv in, int16 out
  pk_kernel_fn f = nullptr;
  // every other kernel reads int8 or int16 (validate_quant_model)
  if (c.in_bits == 8) f = by_out<int8_t>(c);
  else if (c.in_bits == 16) f = by_out<int16_t>(c);
  if (!f) f = c.out_bits == 8 ? out_kernel<int8_t>(c.kernel) : c.out_bits == 16 ? out_kernel<int16_t>(c.kernel) : out_kernel<int32_t>(c.kernel);
  if (!f && c.in_bits != 32) f = c.in_bits == 8 ? in_kernel<int8_t>(c.kernel) : in_kernel<int16_t>(c.kernel);
  if (!f) throw std::logic_error("host_kernel: no instantiation of " + kernel_symbol(c));
  return f;
}

}  // namespace pulsekd::deploy
