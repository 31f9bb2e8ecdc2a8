// Interpreter of the static layer schedule: every layer calls the kernel instantiation its table
// entry names (mcu/runtime/pk_kernels.h: a shared reference loop of engine/kernels in the integer
// policy, or its DSP variant), so the runtime itself instantiates no kernel. The firmware runs it
// on its generated table and arena (pk_infer.cpp); the host runtime (deploy/host_runtime.h)
// compiles this same file and runs it on a table it builds. No heap, no exceptions, no STL.
#include "pk_model.h"

extern "C" __attribute__((noinline)) void pk_mark(int32_t i) { __asm__ volatile("" ::"r"(i) : "memory"); }

namespace {

void run_layer(const pk_layer& L, uint8_t* arena, uint32_t out_extra) {
  const uint8_t* x = arena + L.in_off;
  uint8_t* y = arena + L.out_off + out_extra;
  L.run(&L, x, y);
}

}  // namespace

extern "C" int32_t pk_read_memory(int16_t* dst, int32_t n, void* ctx) {
  const int16_t** p = static_cast<const int16_t**>(ctx);
  for (int32_t i = 0; i < n; ++i) dst[i] = (*p)[i];
  *p += n;
  return 0;
}

extern "C" int32_t pk_run(const pk_model* model, uint8_t* arena, pk_reader read, void* ctx) {
  const pk_model& m = *model;
  const pk_layer& first = m.layers[0];
  int16_t chunk[32];
  for (int32_t r = 0; r < m.rows; ++r) {
    pk_mark(-1);  // the row's input copy starts
    for (int32_t t0 = 0; t0 < first.t_in; t0 += 32) {
      const int32_t n = first.t_in - t0 < 32 ? first.t_in - t0 : 32;
      if (read(chunk, n, ctx) != 0) return INT32_MIN;
      if (m.input_bits == 8) {
        int8_t* d = reinterpret_cast<int8_t*>(arena + first.in_off) + t0;
        for (int32_t t = 0; t < n; ++t) d[t] = (int8_t)chunk[t];
      } else {
        int16_t* d = reinterpret_cast<int16_t*>(arena + first.in_off) + t0;
        for (int32_t t = 0; t < n; ++t) d[t] = chunk[t];
      }
    }
    for (int32_t l = 0; l < m.row_layers; ++l) {
      pk_mark(l);
      run_layer(m.layers[l], arena, l == m.row_layers - 1 ? (uint32_t)r * m.row_out_bytes : 0u);
    }
  }
  for (int32_t l = m.row_layers; l < m.n_layers; ++l) {
    pk_mark(l);
    run_layer(m.layers[l], arena, 0);
  }
  pk_mark(m.n_layers);
  int32_t v;
  __builtin_memcpy(&v, arena + m.layers[m.n_layers - 1].out_off, 4);
  return v;
}
