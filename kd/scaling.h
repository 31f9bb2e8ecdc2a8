// Scaling laws of distillation (KD-STRATEGIES.md §7; the capacity study of Arora, Narayanswamy,
// Patel, Li (2025), "Towards Characterizing Knowledge Distillation of PPG Heart Rate
// Estimation Models"): the fit MAE(N) = a·N^(−b) + c of test MAE against student parameter
// count N, least squares on the log scale, a bootstrap over folds for its parameters, the
// sweep report (`pulsekd sweep-report DIR`) and a log-x SVG chart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pulsekd::kd {

struct PowerLawFit {
  bool ok = false;
  std::string note;        // why not ok, or how it was constrained
  double a = 0, b = 0, c = 0;
  bool c_fixed = false;    // only 2 distinct sizes: c = 0, a and b fitted
  int n_points = 0, n_sizes = 0;
  double rss_log = 0;      // sum of squared log residuals
  double rms_log = 0;      // sqrt(rss_log / n_points)
  std::vector<double> n, mae, fitted, log_residuals;  // per point: log(mae) - log(fitted)
  double predict(double n_params) const;
};

struct FitOptions {
  int grid_b = 200, grid_c = 200;  // starting grid over b in (0, 4] and c in [0, min MAE)
  int lm_iterations = 100;         // Levenberg-Marquardt polish of (log a, b, c)
};

// Least squares on the log scale: minimises Σ (log mae_i − log(a·n_i^(−b) + c))² over a > 0,
// b ≥ 0, c ≥ 0. For every (b, c) on a grid, log a has the closed form of the linearised
// problem log(mae − c) = log a − b·log n; the best grid point is then polished by
// Levenberg-Marquardt on the exact log-scale residuals. ≥ 3 distinct sizes fit a, b, c
// (3 sizes: exactly determined); 2 sizes fit a, b with c = 0; fewer: not ok.
PowerLawFit fit_power_law(const std::vector<double>& n, const std::vector<double>& mae, const FitOptions& o = {});

struct Interval {
  double lo = 0, hi = 0;
};
struct BootstrapFit {
  int resamples = 0, failed = 0, folds = 0;
  Interval a, b, c;
  std::string note;
};
// per_fold[i][f]: MAE of size n[i] on fold f (NaN when missing). Each resample draws the
// folds with replacement (the same draw for every size), averages each size over the drawn
// folds and refits; the interval is the percentile interval at `level`.
BootstrapFit bootstrap_power_law(const std::vector<double>& n, const std::vector<std::vector<double>>& per_fold,
                                 int resamples = 1000, uint64_t seed = 1, double level = 0.95);

// Scatter (markers) plus optional fitted curves (dashed) on a log10 x axis.
struct ScatterSeries {
  std::string name, color;
  std::vector<double> x, y;          // measured points
  std::vector<double> fit_x, fit_y;  // curve (empty: none)
};
std::string svg_log_x_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                            const std::vector<ScatterSeries>& series);

// Reads DIR/points/*.json and DIR/teachers/*/*.json of a sweep and writes DIR/REPORT.md,
// DIR/report.json and DIR/*.svg. Returns the Markdown text. Throws when DIR has no points.
std::string write_sweep_report(const std::string& dir, int bootstrap_resamples = 1000);

}  // namespace pulsekd::kd
