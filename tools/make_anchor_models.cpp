// Writes two quantised models whose second layer is the CMSIS-NN anchor layer of
// ../shared/docs/MCU.md (256 steps, conv k=5, 32 -> 32, 'same' padding, stride 1), with int8
// (anchor_s8.safetensors) or int16 (anchor_s16.safetensors) activations, for
// `pulsekd export-mcu` + `pulsekd mcu-report` (docs/MCU.md, "CMSIS-NN anchor"):
//   make_anchor_models DIR
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <random>
#include <string>

#include "deploy/quant_format.h"

using namespace pulsekd;
namespace fs = std::filesystem;

namespace {

void write_anchor_models(const fs::path& dir) {
  for (const int bits : {8, 16}) {
    std::mt19937 rng(9);
    std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
    const deploy::QTensor act = bits == 8 ? deploy::QTensor{8, 0.02f, -3} : deploy::QTensor{16, 1e-3f, 0};
    const int32_t amin = bits == 8 ? -128 : -32768, amax = bits == 8 ? 127 : 32767;
    auto layer = [&](const char* name, deploy::QOp op, int cin, int cout, int K, int pad, int t, int per_co_rows) {
      deploy::QLayer L;
      L.name = name, L.op = op, L.c_in = cin, L.c_out = cout, L.kernel = K, L.pad = pad, L.t_in = t, L.rows = per_co_rows;
      L.in = L.out = act;
      L.act_min = amin, L.act_max = amax;
      if (op == deploy::QOp::AvgPool) return L;
      const int per_co = cin * (op == deploy::QOp::Conv ? K : op == deploy::QOp::ModalityConv ? per_co_rows : 1);
      for (int i = 0; i < cout * per_co; ++i) L.w.push_back(int8_t(wd(rng)));
      for (int co = 0; co < cout; ++co) {
        L.bias.push_back(bd(rng));
        L.w_scale.push_back(0.01f);
        L.mult.push_back((1 << 30) + co * 4567);
        L.shift.push_back(-14);
      }
      return L;
    };
    deploy::QuantModel q;
    q.calib = "none";
    q.source = "cmsis-nn anchor layer";
    q.input = act;
    q.rows = 4;
    q.row_layers = 3;
    q.out_scale = 1.f;
    q.layers.push_back(layer("stem", deploy::QOp::Conv, 1, 32, 1, 0, 256, 1));
    q.layers.push_back(layer("anchor", deploy::QOp::Conv, 32, 32, 5, 2, 256, 1));
    deploy::QLayer pool = layer("pool", deploy::QOp::AvgPool, 32, 32, 1, 0, 256, 1);
    pool.pool = 4;
    q.layers.push_back(pool);
    deploy::QLayer mc = layer("mod", deploy::QOp::ModalityConv, 32, 4, 1, 0, 64, 4);
    mc.out = {8, 0.05f, 0};
    mc.act_min = -128, mc.act_max = 127;
    q.layers.push_back(mc);
    deploy::QLayer out = layer("out", deploy::QOp::Linear, 256, 1, 1, 0, 1, 1);
    out.in = mc.out;
    out.out = {32, 1.f, 0};
    out.act_min = INT32_MIN, out.act_max = INT32_MAX;
    out.mult.clear(), out.shift.clear();
    q.layers.push_back(out);
    deploy::save_quant_model((dir / ("anchor_s" + std::to_string(bits) + ".safetensors")).string(), q);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR   (writes DIR/anchor_s8.safetensors and DIR/anchor_s16.safetensors)\n", argv[0]);
    return 2;
  }
  try {
    fs::create_directories(argv[1]);
    write_anchor_models(argv[1]);
    std::printf("wrote anchor_s8.safetensors and anchor_s16.safetensors in %s\n", argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_anchor_models: %s\n", e.what());
    return 1;
  }
  return 0;
}
