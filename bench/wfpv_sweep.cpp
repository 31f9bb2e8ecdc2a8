// The odd/even check of the WFPV tracker's tracking constants (tracking/wfpv.h) on the 12 SPC
// 2015 training recordings: a grid over the four constants that decide where the track goes
// (search_sigma_bpm, escape_noise, escape_ratio, escape_windows) is scored on the
// odd-numbered recordings (DATA_01, 03, ..., 11) and the best point checked on the even ones,
// and the reverse; then the defaults on both halves. Per-recording MAE of each chosen point.
//
//   build/wfpv_sweep spc2015:/path/to/ieee-spc2015
//
// docs/results/baseline-spc2015.md reports its output.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "datasets/registry.h"
#include "tracking/wfpv.h"

using namespace pulsekd;

namespace {

// MAE of each of the first 12 subjects (the training recordings) under one option set.
std::vector<double> per_recording(const data::WindowSet& ws, const tracking::WfpvOptions& opt) {
  std::vector<double> mae;  // (12)
  for (size_t s = 0; s < ws.subjects.size() && s < 12; ++s) {
    const auto& info = ws.subjects[s];
    const auto est = tracking::wfpv_track(ws, info.first_window, info.num_windows, opt);
    double e = 0;
    for (int64_t k = 0; k < info.num_windows; ++k) e += std::fabs(est[k] - ws.hr[info.first_window + k]);
    mae.push_back(e / info.num_windows);
  }
  return mae;
}

// Mean over recording numbers of one parity (odd: DATA_01, DATA_03, ... = indices 0, 2, ...).
double half_mean(const std::vector<double>& mae, bool odd) {
  double sum = 0;
  int n = 0;
  for (size_t i = odd ? 0 : 1; i < mae.size(); i += 2, ++n) sum += mae[i];
  return sum / n;
}

struct Point {
  tracking::WfpvOptions opt;
  std::vector<double> mae;  // (12)
};

void print_point(const char* label, const Point& p) {
  std::printf("%-26s sigma %4.1f escape noise %.2f ratio %.2f windows %d | odd %.2f even %.2f all %.2f |",
              label, p.opt.search_sigma_bpm, p.opt.escape_noise, p.opt.escape_ratio, p.opt.escape_windows,
              half_mean(p.mae, true), half_mean(p.mae, false), 0.5 * (half_mean(p.mae, true) + half_mean(p.mae, false)));
  for (double m : p.mae) std::printf(" %.2f", m);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: wfpv_sweep spc2015:DIR\n");
    return 2;
  }
  const data::WindowSet ws = data::load_dataset(argv[1]);
  if (ws.subjects.size() < 12) {
    std::fprintf(stderr, "wfpv_sweep: %s has %zu recordings, expected the 12 SPC 2015 training ones\n", argv[1],
                 ws.subjects.size());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Point> grid;
  for (double sigma : {8.0, 12.0, 16.0})
    for (double noise : {0.5, 0.6, 0.7})
      for (double ratio : {0.35, 0.5, 0.7})
        for (int windows : {2, 3, 5}) {
          Point p;
          p.opt.search_sigma_bpm = sigma;
          p.opt.escape_noise = noise;
          p.opt.escape_ratio = ratio;
          p.opt.escape_windows = windows;
          p.mae = per_recording(ws, p.opt);
          grid.push_back(p);
        }
  const auto best_on = [&](bool odd) {
    const Point* best = &grid.front();
    for (const auto& p : grid)
      if (half_mean(p.mae, odd) < half_mean(best->mae, odd)) best = &p;
    return *best;
  };
  std::printf("%zu grid points, %.1f s\n", grid.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  std::printf("columns: the 12 recordings DATA_01 .. DATA_12\n");
  print_point("best on odd, check even:", best_on(true));
  print_point("best on even, check odd:", best_on(false));
  Point defaults;
  defaults.mae = per_recording(ws, defaults.opt);
  print_point("defaults:", defaults);
  return 0;
}
