// Evaluation metrics (kd/evaluate.*) against values worked out by hand: MAE, RMSE and Pearson r
// of one series, and kd::evaluate's aggregation (per subject, the mean over subjects that the
// PULSE protocol reports, and the metrics pooled over all windows) on a model whose predictions
// are known exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "datasets/folds.h"
#include "kd/evaluate.h"
#include "models/pulse.h"

using namespace pulsekd;

TEST_CASE("compute_metrics: MAE, RMSE and Pearson r by hand") {
  // errors pred - truth = [-1, -2, -2, -5]: MAE 10/4, RMSE sqrt(34/4).
  // Centred pred [-1.5, -0.5, 0.5, 1.5], centred truth [-3, -1, 0, 4]: cov 4.5 + 0.5 + 0 + 6 = 11,
  // sum of squares 5 and 26 → r = 11 / sqrt(130).
  const kd::Metrics m = kd::compute_metrics({1, 2, 3, 4}, {2, 4, 5, 9});
  CHECK(m.n == 4);
  CHECK(m.mae == doctest::Approx(2.5).epsilon(1e-12));
  CHECK(m.rmse == doctest::Approx(std::sqrt(8.5)).epsilon(1e-12));
  CHECK(m.pearson == doctest::Approx(11 / std::sqrt(130.0)).epsilon(1e-12));
  // perfectly anti-correlated, and the documented convention for a constant series (r = 0)
  CHECK(kd::compute_metrics({1, 2, 3}, {30, 20, 10}).pearson == doctest::Approx(-1).epsilon(1e-12));
  const kd::Metrics flat = kd::compute_metrics({5, 5, 5}, {4, 6, 8});
  CHECK(flat.pearson == 0);
  CHECK(flat.mae == doctest::Approx(5.0 / 3).epsilon(1e-12));  // |1| + |-1| + |-3|
  CHECK(flat.rmse == doctest::Approx(std::sqrt(11.0 / 3)).epsilon(1e-12));
  CHECK(kd::compute_metrics({}, {}).n == 0);
}

namespace {

// A student whose prediction is exactly bias + (the PPG row's mean) for a non-negative window:
// every conv passes channel 0 through its centre tap (ReLU sees only non-negative values), the
// average pools keep the mean, conv4 takes channel 0 of the PPG row, dense unit 0 averages the
// T_final = 8 time steps, out = unit 0 + bias.
std::unique_ptr<models::PulseModel> mean_ppg_student(float bias) {
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  cfg.convs_per_block = 1;
  auto model = std::make_unique<models::PulseModel>(cfg, 1);
  models::PulseModel& m = *model;
  for (auto& [name, p] : m.named_parameters()) {
    std::fill(p->value.begin(), p->value.end(), real(0));
    const Shape& s = p->shape;
    if (name.rfind("conv", 0) == 0 && name.find("weight") != std::string::npos && name != "conv4.weight")
      p->value[size_t((s[1] - 1) / 2) * size_t(s[2])] = 1;  // w[0, centre, 0] of (c_out, K, c_in)
  }
  auto param = [&](const std::string& n) {
    for (auto& [name, p] : m.named_parameters())
      if (name == n) return p;
    FAIL("no parameter " << n);
    return static_cast<Parameter*>(nullptr);
  };
  param("conv4.weight")->value[0] = 1;  // (C, 4 rows, C): output 0 = row 0 (PPG), channel 0
  Parameter* dense = param("dense.weight");  // (32, C * 8), input index c * 8 + t
  for (int t = 0; t < 8; ++t) dense->value[size_t(t)] = real(1.0 / 8);
  param("out.weight")->value[0] = 1;
  param("out.bias")->value[0] = bias;
  return model;
}

// Windows whose PPG row is the constant ppg[i] (other rows 0), labels hr, two subjects.
data::WindowSet two_subjects(const std::vector<float>& ppg, const std::vector<float>& hr, int64_t first_subject_windows) {
  data::WindowSet ws;
  ws.x.assign(ppg.size() * 4 * 256, 0.f);  // (n, 4, 256)
  for (size_t i = 0; i < ppg.size(); ++i) std::fill_n(ws.x.begin() + long(i * 1024), 256, ppg[i]);
  ws.hr = hr;
  const int64_t n = int64_t(hr.size());
  for (int64_t i = 0; i < n; ++i) ws.subject.push_back(i < first_subject_windows ? 0 : 1);
  ws.subjects.resize(2);
  ws.subjects[0].name = "A", ws.subjects[0].first_window = 0, ws.subjects[0].num_windows = first_subject_windows;
  ws.subjects[1].name = "B", ws.subjects[1].first_window = first_subject_windows;
  ws.subjects[1].num_windows = n - first_subject_windows;
  return ws;
}

}  // namespace

TEST_CASE("evaluate: per-subject metrics, mean over subjects and pooled over windows, by hand") {
  const std::unique_ptr<models::PulseModel> model = mean_ppg_student(100);
  models::PulseModel& m = *model;
  // subject A: pred [100, 110], truth [104, 106]: errors [-4, 4] → MAE 4, RMSE 4, r = 1
  // subject B: pred [100, 102, 104, 106], truth [103, 101, 107, 105]: errors [-3, 1, -3, 1] → MAE 2,
  //   RMSE sqrt(5); centred [-3, -1, 1, 3] and [-1, -3, 3, 1]: r = 12 / 20
  const data::WindowSet ws = two_subjects({0, 10, 0, 2, 4, 6}, {104, 106, 103, 101, 107, 105}, 2);
  const kd::EvalResult r = kd::evaluate(m, ws, {0, 1}, data::Normalizer{});
  REQUIRE(r.subjects.size() == 2);
  const std::vector<float> pred_a = {100, 110}, pred_b = {100, 102, 104, 106};
  double worst = 0;
  for (size_t i = 0; i < 2; ++i) worst = std::max(worst, std::fabs(double(r.subjects[0].pred[i]) - pred_a[i]));
  for (size_t i = 0; i < 4; ++i) worst = std::max(worst, std::fabs(double(r.subjects[1].pred[i]) - pred_b[i]));
  CHECK(worst < 1e-4);  // measured 0: every step of the chain is exact in float here
  const double tol = 1e-9;  // relative: the metrics are double sums of exact predictions
  CHECK(r.subjects[0].subject == "A");
  CHECK(r.subjects[0].raw.n == 2);
  CHECK(r.subjects[0].raw.mae == doctest::Approx(4).epsilon(tol));
  CHECK(r.subjects[0].raw.rmse == doctest::Approx(4).epsilon(tol));
  CHECK(r.subjects[0].raw.pearson == doctest::Approx(1).epsilon(tol));
  CHECK(r.subjects[1].raw.n == 4);
  CHECK(r.subjects[1].raw.mae == doctest::Approx(2).epsilon(tol));
  CHECK(r.subjects[1].raw.rmse == doctest::Approx(std::sqrt(5.0)).epsilon(tol));
  CHECK(r.subjects[1].raw.pearson == doctest::Approx(0.6).epsilon(tol));
  // the PULSE figure: mean over subjects (4 + 2) / 2 = 3, not the pooled 16 / 6
  CHECK(r.mean_subject_mae_raw == doctest::Approx(3).epsilon(tol));
  // pooled over the 6 windows: MAE 16 / 6, RMSE sqrt(52 / 6); centred (x3) pred [-11, 19, -11, -5, 1, 7]
  // and truth [-1, 5, -4, -10, 8, 2]: r = 222 / sqrt(678 * 210)
  CHECK(r.pooled_raw.n == 6);
  CHECK(r.pooled_raw.mae == doctest::Approx(16.0 / 6).epsilon(tol));
  CHECK(r.pooled_raw.rmse == doctest::Approx(std::sqrt(52.0 / 6)).epsilon(tol));
  CHECK(r.pooled_raw.pearson == doctest::Approx(222 / std::sqrt(678.0 * 210.0)).epsilon(tol));
  // fewer than 10 windows per subject: post-processing leaves every prediction as it is
  CHECK(r.mean_subject_mae_post == doctest::Approx(r.mean_subject_mae_raw).epsilon(1e-12));
  CHECK(r.pooled_post.rmse == doctest::Approx(r.pooled_raw.rmse).epsilon(1e-12));
  // one subject alone: its own metrics, and the mean over one subject is that subject's MAE
  const kd::EvalResult only_b = kd::evaluate(m, ws, {1}, data::Normalizer{});
  CHECK(only_b.mean_subject_mae_raw == doctest::Approx(2).epsilon(tol));
  CHECK(only_b.pooled_raw.n == 4);
}
