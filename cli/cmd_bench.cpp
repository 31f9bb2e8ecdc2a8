// pulsekd bench: training throughput (batch 256, Adam, L1) and batch-1 inference latency of the
// PULSE teacher and student, timed like bench/compare_torch.py (warm-up, median of N).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.h"
#include "engine/blas.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/parallel.h"
#include "models/pulse.h"

namespace pulsekd::cli {
namespace {

// Seconds on the chosen clock: wall (steady) time, or the CPU time of the whole process
// (all threads). On a shared machine the CPU time of a 1-thread run is what the code costs;
// the wall time also counts the moments another process held the core.
double now_s(bool cpu_clock) {
  if (cpu_clock) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct BenchResult {
  double train_windows_per_s = 0, train_step_ms = 0, infer_b1_ms = 0;
};

// The loss of one training step on windows x (batch, 4, 256) with labels y (batch): what both
// the benchmark and the memory probe run.
Var training_loss(Graph& g, models::PulseModel& m, const real* x, const real* y, int batch, Rng& drop) {
  return l1_loss(m.forward(g, g.input({batch, 4, 256, 1}, x), drop).hr, g.input({batch}, y));
}

// Activation and gradient memory (bytes) of one training step of `arch` at `batch`, extrapolated
// from two small probe steps (the graph's arena grows linearly with the batch; the inputs too).
double step_memory_bytes(const std::string& arch, int batch) {
  models::ModelConfig cfg;
  cfg.arch = arch;
  models::PulseModel m(cfg, 1);
  m.train(true);
  Rng drop(3);
  const auto used = [&](int b) {
    std::vector<real> x(static_cast<size_t>(b) * 4 * 256, real(0.5)), y(static_cast<size_t>(b), real(80));  // (b, 4, 256), (b)
    Graph g;
    g.backward(training_loss(g, m, x.data(), y.data(), b, drop));
    return double(g.arena_used_bytes() + (x.size() + y.size()) * sizeof(real));
  };
  const double at8 = used(8), at16 = used(16);
  return at8 + (at16 - at8) / 8 * (batch - 8);
}

// Half of this machine's physical memory: the default bound of one bench step.
double default_memory_limit_gb() {
  const double pages = double(::sysconf(_SC_PHYS_PAGES)), page = double(::sysconf(_SC_PAGESIZE));
  return pages > 0 && page > 0 ? 0.5 * pages * page / 1e9 : 4.0;
}

BenchResult bench_model(const std::string& arch, int batch, int steps, int infer_runs, bool profile, bool cpu_clock) {
  models::ModelConfig cfg;
  cfg.arch = arch;
  models::PulseModel m(cfg, 1);
  Rng data(7), drop(3);
  std::vector<real> x(static_cast<size_t>(batch) * 4 * 256), y(static_cast<size_t>(batch));
  for (auto& v : x) v = real(data.normal());
  for (auto& v : y) v = real(60 + 100 * data.uniform());
  OptimConfig oc;
  oc.lr = 1e-4;
  Optimizer opt(m.trainable_parameters(), oc);
  Graph g;
  std::vector<double> times;
  m.train(true);
  for (int s = 0; s < steps + 2; ++s) {  // 2 warm-up steps
    if (profile && s == 2) {
      reset_op_profile();
      set_op_profiling(true);
    }
    const double t0 = now_s(cpu_clock);
    g.reset();
    Var loss = training_loss(g, m, x.data(), y.data(), batch, drop);
    opt.zero_grad();
    g.backward(loss);
    opt.step();
    if (s >= 2) times.push_back(now_s(cpu_clock) - t0);
  }
  set_op_profiling(false);
  BenchResult r;
  r.train_step_ms = median(times) * 1e3;
  r.train_windows_per_s = batch / median(times);
  // batch-1 inference
  m.eval();
  std::vector<float> xin(4 * 256), hr;
  for (auto& v : xin) v = float(data.normal());
  times.clear();
  for (int i = 0; i < infer_runs + 5; ++i) {
    const double t0 = now_s(cpu_clock);
    m.predict(xin.data(), 1, hr);
    if (i >= 5) times.push_back(now_s(cpu_clock) - t0);
  }
  r.infer_b1_ms = median(times) * 1e3;
  return r;
}

CommandRegistrar reg_bench([](CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Training windows/s and batch-1 latency of the PULSE teacher and student");
  auto threads = std::make_shared<int>(1);
  auto json_out = std::make_shared<bool>(false);
  auto profile = std::make_shared<bool>(false);
  auto steps = std::make_shared<int>(10);
  auto batch = std::make_shared<int>(256);
  auto clock = std::make_shared<std::string>("wall");
  cmd->add_option("--threads", *threads, "threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--steps", *steps, "timed training steps (median reported)")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->add_option("--batch", *batch, "training batch")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--clock", *clock, "wall (elapsed time) or cpu (CPU time of the process: steadier on a shared machine)")
      ->capture_default_str()
      ->check(CLI::IsMember({"wall", "cpu"}));
  auto max_memory_gb = std::make_shared<double>(default_memory_limit_gb());
  cmd->add_option("--max-memory-gb", *max_memory_gb, "refuse a --batch whose training step would need more memory than this (GB)")
      ->capture_default_str()
      ->check(finite_positive());
  cmd->add_flag("--json", *json_out, "print one JSON object");
  cmd->add_flag("--profile", *profile, "print a per-op profile of the training steps");
  cmd->callback([=]() {
    set_num_threads(*threads);
    const bool cpu_clock = *clock == "cpu";
    nlohmann::json j = {{"threads", *threads}, {"batch", *batch}, {"steps", *steps}, {"clock", *clock}};
    for (const std::string arch : {"teacher", "student"}) {
      const double need_gb = step_memory_bytes(arch, *batch) / 1e9;
      if (need_gb > *max_memory_gb) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "a %s training step of batch %d needs about %.1f GB, more than the limit of %.1f GB", arch.c_str(),
                      *batch, need_gb, *max_memory_gb);
        throw CLI::ValidationError("--batch", std::string(msg) + " (--max-memory-gb; default: half of this machine's memory)");
      }
    }
    for (const std::string arch : {"teacher", "student"}) {
      const BenchResult r = bench_model(arch, *batch, *steps, 100, *profile, cpu_clock);
      j[arch] = {{"train_windows_per_s", r.train_windows_per_s}, {"train_step_ms", r.train_step_ms}, {"infer_b1_ms", r.infer_b1_ms}};
      if (*profile) {
        std::fprintf(stderr, "\nper-op profile, %s, %d training steps of batch %d (forward / backward, ms per step)\n", arch.c_str(),
                     *steps, *batch);
        double total = 0;
        for (auto& [name, p] : op_profile()) total += p.forward_s + p.backward_s;
        for (auto& [name, p] : op_profile())
          std::fprintf(stderr, "  %-22s %9.2f %9.2f  %5.1f %%\n", name.c_str(), p.forward_s * 1e3 / *steps,
                       p.backward_s * 1e3 / *steps, 100 * (p.forward_s + p.backward_s) / total);
        nlohmann::json prof = nlohmann::json::array();
        for (auto& [name, p] : op_profile())
          prof.push_back({{"op", name}, {"forward_ms", p.forward_s * 1e3 / *steps}, {"backward_ms", p.backward_s * 1e3 / *steps}});
        j[arch]["profile"] = prof;
      }
    }
    if (*json_out) {
      std::cout << j.dump() << "\n";
    } else {
      std::printf("threads %d, batch %d, median of %d steps, %s clock\n", *threads, *batch, *steps, clock->c_str());
      for (const char* arch : {"teacher", "student"})
        std::printf("%-8s train %8.1f windows/s (%.1f ms/step)   batch-1 inference %.3f ms\n", arch,
                    j[arch]["train_windows_per_s"].get<double>(), j[arch]["train_step_ms"].get<double>(),
                    j[arch]["infer_b1_ms"].get<double>());
    }
  });
});

}  // namespace
}  // namespace pulsekd::cli
