#include "deploy/host_runtime.h"

#include "datasets/dataset.h"

#include "deploy/calibrate.h"
#include "deploy/host_kernels.h"
#include "deploy/kernel_variants.h"

namespace pulsekd::deploy {

HostModel::HostModel(const QuantModel& q, bool dsp) {
  validate_quant_model(q, q.source.empty() ? std::string("host runtime") : q.source);
  plan_ = plan_arena(q, dsp);
  layers_ = layer_table(q, plan_);
  const size_t nl = q.layers.size();
  w_.resize(nl), bias_.resize(nl), mult_.resize(nl), shift_.resize(nl);
  for (size_t i = 0; i < nl; ++i) {
    const QLayer& L = q.layers[i];
    const KernelChoice c = choose_kernel(q, int(i), dsp);
    pk_layer& t = layers_[i];
    t.run = host_kernel(c);
    if (L.weights_per_channel() >= 0) {
      w_[i] = kernel_weights(L, c.kernel);
      bias_[i] = kernel_bias(L);
      t.w = w_[i].data();
      t.bias = bias_[i].data();
    }
    if (!L.mult.empty()) {
      mult_[i] = L.mult;
      shift_[i] = L.shift;
      t.mult = mult_[i].data();
      t.shift = shift_[i].data();
    }
  }
  model_ = model_header(q, plan_);
  model_.layers = layers_.data();
  arena_.assign(size_t(plan_.arena_bytes + 7) / 8, 0);
  rows_ = q.rows;
}

std::vector<int32_t> HostModel::infer(const int16_t* qin, int64_t n) {
  std::vector<int32_t> out(static_cast<size_t>(n));  // (n)
  uint8_t* arena = reinterpret_cast<uint8_t*>(arena_.data());
  for (int64_t i = 0; i < n; ++i) {
    const int16_t* p = qin + i * rows_ * data::kWindow;
    out[size_t(i)] = pk_run(&model_, arena, pk_read_memory, &p);
  }
  return out;
}

std::vector<float> heart_rates(const QuantModel& q, const std::vector<int32_t>& raw) {
  std::vector<float> hr(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) hr[i] = q.out_scale * float(raw[i]);  // in float, as on the MCU
  return hr;
}

std::vector<float> predict_quantized(const QuantModel& q, const float* x, int64_t n) {
  const std::vector<int16_t> qi = quantize_input(q, x, n);
  return heart_rates(q, HostModel(q).infer(qi.data(), n));
}

}  // namespace pulsekd::deploy
