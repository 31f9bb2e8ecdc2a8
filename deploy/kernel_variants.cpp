#include "deploy/kernel_variants.h"

#include <stdexcept>

#include "engine/kernels/int_dsp.h"

namespace pulsekd::deploy {

namespace k = pulsekd::kernels;

bool inplace_layer(const QuantModel& q, int i, bool dsp) {
  if (!dsp || i < 1 || i >= q.row_layers - 1) return false;  // reads a row layer's output, writes a plain slot
  const QLayer& L = q.layers[size_t(i)];
  return L.op == QOp::Conv && L.in.bits == 16 && L.out.bits == 16 && L.c_in == L.c_out && L.c_in % 4 == 0 &&
         L.c_out <= k::kDspMaxRow && L.pad <= L.t_in;
}

KernelChoice choose_kernel(const QuantModel& q, int layer, bool dsp) {
  const QLayer& L = q.layers[size_t(layer)];
  auto is = [&](Kernel kn) { return KernelChoice{kn, L.in.bits, L.out.bits}; };
  if (inplace_layer(q, layer, dsp)) return is(Kernel::ConvDsp16Inplace);
  switch (L.op) {
    case QOp::AvgPool: return is(Kernel::AvgPool);
    // the teacher's attention part: reference loops (engine/kernels/attention.h)
    case QOp::AttnInProj: return is(Kernel::AttnInProjRef);
    case QOp::Attention: return is(Kernel::AttentionRef);
    case QOp::LayerNorm: return is(Kernel::LayerNormRef);
    case QOp::Conv:
    case QOp::ModalityConv:
    case QOp::Linear: break;
  }
  if (L.op == QOp::Linear && L.t_in > 1) return is(Kernel::TokenLinearRef);
  const bool conv = L.op == QOp::Conv, modality = L.op == QOp::ModalityConv;
  if (dsp && L.c_in % 4 == 0) {
    // (int8 linear layers keep the unpacked 2-channel kernel: they are small, and a packed int8
    // instantiation next to the int16 ones makes -Os inline less in the int16 convs, +2.6 %.)
    if (L.in.bits == 8) return is(conv ? Kernel::ConvDsp8p : modality ? Kernel::ModalityDsp8p : Kernel::LinearDsp);
    return is(conv ? Kernel::ConvDsp16 : modality ? Kernel::ModalityDsp16 : Kernel::LinearDsp16);
  }
  if (dsp && conv && L.in.bits == 16 && k::dsp_col_len(L.kernel, L.c_in) <= k::kDspMaxCol) return is(Kernel::ConvCol16);
  return is(conv ? Kernel::ConvRef : modality ? Kernel::ModalityRef : Kernel::LinearRef);
}

namespace {

std::string type_of(int bits) { return bits == 8 ? "int8_t" : bits == 16 ? "int16_t" : "int32_t"; }

// Template arguments of each family in pk_kernels.h.
enum class Args { InOut, Out, In, None };

struct Variant {
  const char* name;
  Args args;
};

Variant variant(Kernel kn) {
  switch (kn) {
    case Kernel::ConvRef: return {"conv_ref", Args::InOut};
    case Kernel::ConvDsp8p: return {"conv_dsp8p", Args::Out};
    case Kernel::ConvDsp16: return {"conv_dsp16", Args::Out};
    case Kernel::ConvDsp16Inplace: return {"conv_dsp16_inplace", Args::Out};
    case Kernel::ConvCol16: return {"conv_col16", Args::Out};
    case Kernel::ModalityRef: return {"modality_ref", Args::InOut};
    case Kernel::ModalityDsp8p: return {"modality_dsp8p", Args::Out};
    case Kernel::ModalityDsp16: return {"modality_dsp16", Args::Out};
    case Kernel::LinearRef: return {"linear_ref", Args::InOut};
    case Kernel::LinearDsp: return {"linear_dsp", Args::Out};
    case Kernel::LinearDsp16: return {"linear_dsp16", Args::Out};
    case Kernel::TokenLinearRef: return {"token_linear_ref", Args::InOut};
    case Kernel::AttnInProjRef: return {"attn_in_proj_ref", Args::In};
    case Kernel::AttentionRef: return {"attention_ref", Args::None};
    case Kernel::LayerNormRef: return {"layer_norm_ref", Args::InOut};
    case Kernel::AvgPool: return {"avgpool", Args::In};
  }
  throw std::logic_error("kernel_symbol: unknown kernel");
}

}  // namespace

std::string kernel_symbol(const KernelChoice& c) {
  const Variant v = variant(c.kernel);
  const std::string base = std::string("pk::") + v.name;
  switch (v.args) {
    case Args::InOut: return base + "<" + type_of(c.in_bits) + ", " + type_of(c.out_bits) + ">";
    case Args::Out: return base + "<" + type_of(c.out_bits) + ">";
    case Args::In: return base + "<" + type_of(c.in_bits) + ">";
    case Args::None: break;
  }
  return base;
}

std::vector<int8_t> kernel_weights(const QLayer& L, Kernel kn) {
  // taps per output channel: the conv kernel, the modality rows, or one (linear)
  const int ntaps = L.op == QOp::Conv ? L.kernel : L.op == QOp::ModalityConv ? L.rows : 1;
  switch (kn) {
    case Kernel::ConvDsp8p:
    case Kernel::ModalityDsp8p: {  // int_dsp.h: dsp_pack_weights_s8
      std::vector<int8_t> wp(k::dsp_packed_size_s16(L.c_out, ntaps, L.c_in));  // (c_out, ntaps, c_in) packed
      k::dsp_pack_weights_s8(wp.data(), L.w.data(), L.c_out, ntaps, L.c_in, L.c_in);
      return wp;
    }
    case Kernel::ConvDsp16:
    case Kernel::ConvDsp16Inplace:
    case Kernel::ModalityDsp16:
    case Kernel::LinearDsp16: {  // int_dsp.h: dsp_pack_weights_s16
      std::vector<int8_t> wp(k::dsp_packed_size_s16(L.c_out, ntaps, L.c_in));  // (c_out, ntaps, c_in) interleaved
      k::dsp_pack_weights_s16(wp.data(), L.w.data(), L.c_out, ntaps, L.c_in, L.c_in);
      return wp;
    }
    case Kernel::ConvCol16: {  // one column of kernel * c_in taps, zero-padded to a multiple of 4
      const int cpad = k::dsp_col_len(L.kernel, L.c_in);
      std::vector<int8_t> wp(k::dsp_packed_size_s16(L.c_out, 1, cpad));  // (c_out, cpad) interleaved
      k::dsp_pack_weights_s16(wp.data(), L.w.data(), L.c_out, 1, L.kernel * L.c_in, cpad);
      return wp;
    }
    default: return L.w;
  }
}

std::vector<int32_t> kernel_bias(const QLayer& L) {
  std::vector<int32_t> bias = L.bias;  // (c_out), or (c_out + 2) for layer_norm
  if (L.op == QOp::LayerNorm) {  // the 64-bit eps term after the biases (pk_model.h)
    bias.push_back(int32_t(uint32_t(uint64_t(L.norm_eps) & 0xffffffffu)));
    bias.push_back(int32_t(uint32_t(uint64_t(L.norm_eps) >> 32)));
  }
  return bias;
}

}  // namespace pulsekd::deploy
