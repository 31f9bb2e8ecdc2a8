// The firmware's entry points: the interpreter (pk_runtime.cpp) on the generated layer table
// pk_the_model and its static arena pk_arena (model_data.cpp). Firmware only: the host runtime
// compiles pk_runtime.cpp alone.
#include "pk_model.h"

extern "C" int32_t pk_infer_stream(pk_reader read, void* ctx) { return pk_run(&pk_the_model, pk_arena, read, ctx); }

extern "C" int32_t pk_infer(const int16_t* window) {
  const int16_t* p = window;
  return pk_infer_stream(pk_read_memory, &p);
}
