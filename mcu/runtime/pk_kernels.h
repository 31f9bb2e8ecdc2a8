// Per-layer kernel entry points for the layer table. deploy/kernel_variants.h names every one of
// them and picks, for each layer, ONE instantiation from the layer's bits and shape
// (choose_kernel); the generated model_data.cpp stores its address in the firmware's table, so
// only the combinations the model uses are instantiated and linked, and the host runtime
// (deploy/host_kernels.cpp) instantiates them all. C++17, freestanding.
#pragma once
#include "pk_model.h"

#include "engine/kernels/attention.h"
#include "engine/kernels/conv1d.h"
#include "engine/kernels/fixed_point.h"
#include "engine/kernels/int_dsp.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/modality_conv.h"
#include "engine/kernels/pool1d_int.h"

namespace pk {
namespace k = pulsekd::kernels;

inline k::requant_params rq(const pk_layer* L) {
  return k::requant_params{L->in_zp, L->out_zp, L->mult, L->shift, L->act_min, L->act_max};
}
template <class T>
inline T* as(uint8_t* p) { return reinterpret_cast<T*>(p); }
template <class T>
inline const T* as(const uint8_t* p) { return reinterpret_cast<const T*>(p); }

template <class In, class Out>
void conv_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::conv1d_fwd_ref<k::ArithInt<In, Out>>(as<Out>(y), as<In>(x), L->w, L->bias, L->t_in,
                                          k::conv1d_params{L->c_in, L->c_out, L->kernel, 1, L->pad, L->dilation, 1}, rq(L));
}
template <class In, class Out>
void modality_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::modality_conv_fwd_ref<k::ArithInt<In, Out>>(as<Out>(y), as<In>(x), L->w, L->bias,
                                                 k::modality_conv_params{L->rows, L->t_in, L->c_in, L->c_out}, rq(L));
}
template <class In, class Out>
void linear_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::linear_fwd_ref<k::ArithInt<In, Out>>(as<Out>(y), as<In>(x), L->w, L->bias, 1, L->c_in, L->c_out, rq(L));
}
// int8 inputs, unpacked weights, two output channels per pass.
template <class Out>
void linear_dsp(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::linear_s8_dsp<Out>(as<Out>(y), as<int8_t>(x), L->w, L->bias, 1, L->c_in, L->c_out, rq(L));
}
// int8 inputs, weights packed (4 channels per pass; int_dsp.h: dsp_pack_weights_s8).
template <class Out>
void conv_dsp8p(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::conv1d_s8p_dsp<Out>(as<Out>(y), as<int8_t>(x), L->w, L->bias, L->t_in,
                         k::conv1d_params{L->c_in, L->c_out, L->kernel, 1, L->pad, L->dilation, 1}, rq(L));
}
template <class Out>
void modality_dsp8p(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::modality_conv_s8p_dsp<Out>(as<Out>(y), as<int8_t>(x), L->w, L->bias, k::modality_conv_params{L->rows, L->t_in, L->c_in, L->c_out}, rq(L));
}
// int16 inputs, weights stored interleaved (int_dsp.h: dsp_pack_weights_s16).
template <class Out>
void conv_dsp16(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::conv1d_s16_dsp<Out>(as<Out>(y), as<int16_t>(x), L->w, L->bias, L->t_in,
                         k::conv1d_params{L->c_in, L->c_out, L->kernel, 1, L->pad, L->dilation, 1}, rq(L));
}
// int16 conv with c_in == c_out whose output overwrites its input, delayed by pad rows
// (the arena plan, deploy/codegen.h, puts out_off = in_off - pad * c_in * 2).
template <class Out>
void conv_dsp16_inplace(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::conv1d_s16_dsp_inplace<Out>(as<Out>(y), as<int16_t>(x), L->w, L->bias, L->t_in,
                                 k::conv1d_params{L->c_in, L->c_out, L->kernel, 1, L->pad, L->dilation, 1}, rq(L));
}
// c_in % 4 != 0 (the first layer): gathered columns, zero-padded interleaved weights.
template <class Out>
void conv_col16(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::conv1d_s16_col_dsp<Out>(as<Out>(y), as<int16_t>(x), L->w, L->bias, L->t_in,
                             k::conv1d_params{L->c_in, L->c_out, L->kernel, 1, L->pad, L->dilation, 1}, rq(L));
}
template <class Out>
void modality_dsp16(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::modality_conv_s16_dsp<Out>(as<Out>(y), as<int16_t>(x), L->w, L->bias, k::modality_conv_params{L->rows, L->t_in, L->c_in, L->c_out}, rq(L));
}
template <class Out>
void linear_dsp16(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::linear_s16_dsp<Out>(as<Out>(y), as<int16_t>(x), L->w, L->bias, 1, L->c_in, L->c_out, rq(L));
}
// Teacher (engine/kernels/attention.h): reference loops only.
template <class In, class Out>
void token_linear_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {  // linear on each of t_in tokens
  k::linear_fwd_ref<k::ArithInt<In, Out>>(as<Out>(y), as<In>(x), L->w, L->bias, L->t_in, L->c_in, L->c_out, rq(L));
}
template <class In>
void attn_in_proj_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::attn_in_proj_fwd_ref<k::ArithInt<In, int32_t>>(as<int32_t>(y), as<In>(x), L->w, L->bias, L->rows, L->t_in, L->c_in, rq(L));
}
// Its scratch is static (.bss, no stack or heap): one inference at a time per process.
inline void attention_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  static int64_t scores[k::kSoftmaxMaxKeys];       // (.bss)
  static int32_t scratch[2 * k::kSoftmaxMaxKeys];  // reduced scores, exponentials
  static int16_t probs[k::kSoftmaxMaxKeys];
  const int32_t lk = (L->rows - 1) * L->t_in;
  k::attention_fwd_int<int16_t>(as<int16_t>(y), as<int32_t>(x), as<int32_t>(x) + (size_t)L->t_in * L->c_in, scores, scratch, probs,
                                L->t_in, lk, L->c_in, L->heads, L->mult[0], L->shift[0], L->mult[1], L->shift[1],
                                L->act_min, L->act_max);
}
template <class In, class Out>
void layer_norm_ref(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  const uint64_t lo = (uint32_t)L->bias[L->c_out], hi = (uint32_t)L->bias[L->c_out + 1];
  k::layernorm_fwd_int<In, Out>(as<Out>(y), as<In>(x), L->w, L->bias, L->t_in, L->c_in, (int64_t)(lo | (hi << 32)), rq(L));
}
template <class In>
void avgpool(const pk_layer* L, const uint8_t* x, uint8_t* y) {
  k::avgpool1d_fwd_int<In>(as<In>(y), as<In>(x), L->t_in, L->c_in, k::pool1d_params{L->pool, L->pool, 1});
}

}  // namespace pk
