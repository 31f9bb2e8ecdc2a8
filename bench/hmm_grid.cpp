// The firmware's HMM forward filter on real recordings: `build/hmm_grid MODEL.safetensors SPEC
// [LAPLACE_BPM]` runs the quantised model on every window of SPEC (host runtime = firmware
// outputs), then per recording the firmware's float filter (deploy::mcu_hmm_track, bit-exact
// with the firmware) on 64 states (the binned head's bins) and on 181 (1 BPM, the host's grid),
// and the host's double tracker (tracking::track, 181 states). The transition prior of each
// recording is fitted to the OTHER recordings' labels. Prints MAE per recording (docs/MCU.md,
// "HMM forward filter").
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "datasets/registry.h"
#include "deploy/calibrate.h"
#include "deploy/host_runtime.h"
#include "deploy/mcu_hmm.h"
#include "deploy/quant_format.h"
#include "kd/evaluate.h"

using namespace pulsekd;

static double mae(const std::vector<float>& a, const float* truth) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::fabs(double(a[i]) - truth[i]) / double(a.size());
  return s;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors SPEC [LAPLACE_BPM]\n", argv[0]);
    return 2;
  }
  try {
    const deploy::QuantModel q = deploy::load_quant_model(argv[1]);
    const data::WindowSet ws = data::load_dataset(argv[2]);
    const double laplace = argc > 3 ? std::atof(argv[3]) : 5.0;
    const std::vector<float> x = deploy::normalised_windows(ws, q.norm);                   // (windows, 4, 256)
    const std::vector<int16_t> qin = deploy::quantize_input(q, x.data(), int64_t(ws.size()));  // (windows, 4, 256)
    const std::vector<int32_t> raw = deploy::HostModel(q).infer(qin.data(), int64_t(ws.size()));  // (windows)
    const int n_sub = int(ws.subjects.size());
    std::printf("%-16s %7s %8s %8s %10s %10s %10s %12s\n", "recording", "windows", "prior b", "raw", "host 181", "fw 181", "fw 64",
                "|fw64-h181|");
    double sums[5] = {0, 0, 0, 0, 0};
    for (int s = 0; s < n_sub; ++s) {
      std::vector<int> others;
      for (int o = 0; o < n_sub; ++o)
        if (o != s) others.push_back(o);
      const double b = tracking::TransitionPrior::fit(kd::label_traces(ws, others)).scale_bpm;
      const data::SubjectInfo& si = ws.subjects[size_t(s)];
      const std::vector<int32_t> r(raw.begin() + si.first_window, raw.begin() + si.first_window + si.num_windows);  // (T)
      const std::vector<float> hr = deploy::heart_rates(q, r);
      const float* truth = ws.hr.data() + si.first_window;
      kd::PostProcess pp;  // the host's forward tracker: 181 states over 30-210 BPM
      pp.mode = tracking::TrackMode::Forward;
      pp.prior.scale_bpm = b;
      pp.laplace_bpm = laplace;
      const std::vector<float> host = kd::post_process(pp, hr, {}, {}, ws, si.first_window);
      double m[5] = {mae(hr, truth), mae(host, truth), 0, 0, 0};
      std::vector<float> fw64;
      for (int states : {181, 64}) {
        deploy::McuHmm h;
        h.states = states;
        if (states == 181) h.lo_bpm = 29.5, h.hi_bpm = 210.5;  // centres 30, 31, ..., 210: the host's grid
        h.prior_scale_bpm = b;
        h.laplace_bpm = laplace;
        deploy::McuHmmTables t;
        deploy::mcu_hmm_tables(t, h, q.out_scale);
        const std::vector<float> fw = deploy::mcu_hmm_track(t, r);
        m[states == 181 ? 2 : 3] = mae(fw, truth);
        if (states == 64) fw64 = fw;
      }
      m[4] = mae(fw64, host.data());
      for (int k = 0; k < 5; ++k) sums[k] += m[k] / n_sub;
      std::printf("%-16s %7lld %8.2f %8.3f %10.3f %10.3f %10.3f %12.3f\n", si.name.c_str(), (long long)si.num_windows, b, m[0], m[1],
                  m[2], m[3], m[4]);
    }
    std::printf("%-16s %7s %8s %8.3f %10.3f %10.3f %10.3f %12.3f\n", "mean", "", "", sums[0], sums[1], sums[2], sums[3], sums[4]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hmm_grid: %s\n", e.what());
    return 1;
  }
  return 0;
}
