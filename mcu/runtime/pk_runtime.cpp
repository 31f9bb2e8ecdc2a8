// Interpreter of the static layer schedule: every layer calls the kernel instantiation the
// generated table names (mcu/runtime/pk_kernels.h: a shared reference loop of engine/kernels in
// the integer policy, or its DSP variant), so the runtime itself instantiates no kernel.
// No heap, no exceptions, no STL.
#include "pk_model.h"

extern "C" __attribute__((noinline)) void pk_mark(int32_t i) { __asm__ volatile("" ::"r"(i) : "memory"); }

namespace {

void run_layer(const pk_layer& L, uint32_t out_extra) {
  const uint8_t* x = pk_arena + L.in_off;
  uint8_t* y = pk_arena + L.out_off + out_extra;
  L.run(&L, x, y);
}

}  // namespace

extern "C" int32_t pk_infer_stream(pk_reader read, void* ctx) {
  const pk_model& m = pk_the_model;
  const pk_layer& first = m.layers[0];
  int16_t chunk[32];
  for (int32_t r = 0; r < m.rows; ++r) {
    pk_mark(-1);  // the row's input copy starts
    for (int32_t t0 = 0; t0 < first.t_in; t0 += 32) {
      const int32_t n = first.t_in - t0 < 32 ? first.t_in - t0 : 32;
      if (read(chunk, n, ctx) != 0) return INT32_MIN;
      if (m.input_bits == 8) {
        int8_t* d = reinterpret_cast<int8_t*>(pk_arena + first.in_off) + t0;
        for (int32_t t = 0; t < n; ++t) d[t] = (int8_t)chunk[t];
      } else {
        int16_t* d = reinterpret_cast<int16_t*>(pk_arena + first.in_off) + t0;
        for (int32_t t = 0; t < n; ++t) d[t] = chunk[t];
      }
    }
    for (int32_t l = 0; l < m.row_layers; ++l) {
      pk_mark(l);
      run_layer(m.layers[l], l == m.row_layers - 1 ? (uint32_t)r * m.row_out_bytes : 0u);
    }
  }
  for (int32_t l = m.row_layers; l < m.n_layers; ++l) {
    pk_mark(l);
    run_layer(m.layers[l], 0);
  }
  pk_mark(m.n_layers);
  int32_t v;
  __builtin_memcpy(&v, pk_arena + m.layers[m.n_layers - 1].out_off, 4);
  return v;
}

namespace {
int32_t read_from_memory(int16_t* dst, int32_t n, void* ctx) {
  const int16_t** p = static_cast<const int16_t**>(ctx);
  for (int32_t i = 0; i < n; ++i) dst[i] = (*p)[i];
  *p += n;
  return 0;
}
}  // namespace

extern "C" int32_t pk_infer(const int16_t* window) {
  const int16_t* p = window;
  return pk_infer_stream(read_from_memory, &p);
}
