// Host integer runtime speed: `build/host_runtime_bench MODEL.safetensors SPEC [N] [ref]` runs the
// quantised model (with `ref`: the reference loops instead of the DSP kernels) on the first N (default 2000) windows of the dataset SPEC, three times, and
// prints the best wall and CPU time and windows per second (CPU time: other processes on the
// machine disturb it less) (docs/MCU.md, "Host runtime").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <string>

#include "datasets/registry.h"
#include "deploy/calibrate.h"
#include "deploy/host_runtime.h"
#include "deploy/quant_format.h"

using namespace pulsekd;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors SPEC [N] [ref]\n", argv[0]);
    return 2;
  }
  try {
    const deploy::QuantModel q = deploy::load_quant_model(argv[1]);
    const data::WindowSet ws = data::load_dataset(argv[2]);
    const int64_t n = std::min<int64_t>(argc > 3 ? std::atoll(argv[3]) : 2000, int64_t(ws.size()));
    const std::vector<float> x = deploy::normalised_windows(ws, q.norm);   // (windows, 4, 256)
    const std::vector<int16_t> qin = deploy::quantize_input(q, x.data(), n);  // (n, 4, 256)
    const bool dsp = !(argc > 4 && std::string(argv[4]) == "ref");
    double best = 1e300, best_cpu = 1e300;
    int64_t check = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t c0 = std::clock();
      const std::vector<int32_t> y = deploy::HostModel(q, dsp).infer(qin.data(), n);  // (n)
      best_cpu = std::min(best_cpu, double(std::clock() - c0) / CLOCKS_PER_SEC);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      check = 0;
      for (int32_t v : y) check += v;
    }
    std::printf("%lld windows: wall %.3f s, CPU %.3f s, %.0f windows/s of CPU (sum of outputs %lld)\n", (long long)n, best,
                best_cpu, double(n) / best_cpu, (long long)check);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
