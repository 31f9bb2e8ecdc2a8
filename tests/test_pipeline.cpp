// The pipeline as a library (kd/pipeline.h) and the tracker as an HMM likelihood (kd/hybrid.h),
// on tiny synthetic sets: train on one set, test on another, with HMM post-processing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "datasets/registry.h"
#include "kd/hybrid.h"
#include "kd/pipeline.h"
#include "kd/runs.h"
#include "tracking/wfpv.h"

namespace fs = std::filesystem;
using namespace pulsekd;

namespace {
const std::string kTrain = "synth?subjects=4&minutes=1.5";
const std::string kTest = "synth:5?subjects=2&minutes=1";

std::string scratch(const std::string& name) {
  const std::string dir = std::string(PULSEKD_BINARY_DIR) + "/test_pipeline_" + name;
  fs::remove_all(dir);
  return dir;
}
}  // namespace

TEST_CASE("the tracker's spectra as a likelihood: rows peak at 1, the floor bounds them below") {
  const data::WindowSet ws = data::load_dataset(kTest);
  const tracking::HrGrid grid = tracking::HrGrid::uniform(30, 210, 181);
  kd::TrackerLikelihood tl;
  tl.source = kd::TrackerLikelihood::Source::Spectrum;
  tl.floor = 0.05;
  tl.sharpness = 2;
  const int64_t n = ws.subjects[0].num_windows;
  const tracking::Likelihoods lik = tl(ws, 0, n, grid);
  REQUIRE(lik.steps == n);
  REQUIRE(lik.states == grid.size());
  for (int64_t t = 0; t < n; ++t) {
    const double* row = lik.p.data() + t * lik.states;
    CHECK(*std::max_element(row, row + lik.states) == doctest::Approx(1.0));
    CHECK(*std::min_element(row, row + lik.states) >= 0.05 - 1e-12);
  }
  // On clean synthetic data the spectrum's peak lies near the label (the generator's HR).
  int near = 0;
  for (int64_t t = 0; t < n; ++t) {
    const double* row = lik.p.data() + t * lik.states;
    const double peak = grid.bpm[size_t(std::max_element(row, row + lik.states) - row)];
    near += std::fabs(peak - ws.hr[size_t(t)]) < 10;
  }
  CHECK(near > n / 2);
  tl.floor = 1.0;
  CHECK_THROWS_AS(tl.validate(), std::invalid_argument);
  tl.floor = 0;
  tl.sharpness = 0;
  CHECK_THROWS_AS(tl.validate(), std::invalid_argument);
  CHECK_THROWS_WITH_AS(kd::parse_tracker_source("peaks", "--tracker-likelihood"), doctest::Contains("--tracker-likelihood"),
                       std::invalid_argument);
}

TEST_CASE("the tracker's estimate as a likelihood: a Laplace around wfpv_track with an outlier floor") {
  const data::WindowSet ws = data::load_dataset(kTest);
  const tracking::HrGrid grid = tracking::HrGrid::uniform(30, 210, 181);
  kd::TrackerLikelihood tl;  // Source::Estimate by default
  tl.laplace_bpm = 3;
  tl.outlier = 0.05;
  const int64_t n = ws.subjects[0].num_windows;
  const tracking::Likelihoods lik = tl(ws, 0, n, grid);
  const std::vector<float> est = tracking::wfpv_track(ws, 0, n);
  const tracking::Likelihoods want = tracking::laplace_likelihoods(est, grid, 3, 0.05);
  REQUIRE(lik.p.size() == want.p.size());
  for (size_t i = 0; i < lik.p.size(); ++i) CHECK(lik.p[i] == doctest::Approx(want.p[i]));
  // Each row peaks at the grid state nearest the estimate.
  for (int64_t t = 0; t < n; ++t) {
    const double* row = lik.p.data() + t * lik.states;
    CHECK(std::max_element(row, row + lik.states) - row == grid.nearest(est[size_t(t)]));
  }
  tl.laplace_bpm = 0;
  CHECK_THROWS_AS(tl.validate(), std::invalid_argument);
  tl.laplace_bpm = 2;
  tl.outlier = 1;
  CHECK_THROWS_AS(tl.validate(), std::invalid_argument);
}

TEST_CASE("evaluate_tracker: raw track and HMM track per subject") {
  const data::WindowSet ws = data::load_dataset(kTest);
  kd::PostProcess pp;
  pp.mode = tracking::TrackMode::Viterbi;
  const kd::EvalResult r = kd::evaluate_tracker(ws, {0, 1}, pp);
  REQUIRE(r.subjects.size() == 2);
  for (size_t s = 0; s < 2; ++s) {
    CHECK(r.subjects[s].pred.size() == size_t(ws.subjects[s].num_windows));
    CHECK(r.subjects[s].pred_post.size() == r.subjects[s].pred.size());
    CHECK(std::isfinite(r.subjects[s].post.mae));
  }
  pp.mode = tracking::TrackMode::None;  // no decoding: the tracker's own track
  const kd::EvalResult c = kd::evaluate_tracker(ws, {1}, pp);
  CHECK(c.subjects[0].pred_post == c.subjects[0].pred);
  CHECK(c.subjects[0].pred == tracking::wfpv_track(ws, ws.subjects[1].first_window, ws.subjects[1].num_windows));
}

TEST_CASE("run_pipeline trains on one set and tests every stage on another, with the HMM fused with the tracker") {
  kd::PipelineOptions o;
  o.data = kTrain;
  o.test_data = kTest;
  o.out = scratch("test_data");
  o.teacher_epochs = 1;
  o.student_epochs = 1;
  o.batch = 32;
  o.threads = 1;
  o.mcu = "none";
  o.post.mode = tracking::TrackMode::Viterbi;
  o.fuse_tracker = true;
  const kd::PipelineReport rep = kd::run_pipeline(o);

  const data::WindowSet train = data::load_dataset(kTrain), test = data::load_dataset(kTest);
  CHECK(rep.windows == train.size());
  CHECK(rep.test_windows == test.size());
  CHECK(rep.folds == 1);
  // The prior is fitted to the labels of the training subjects of the --all plan.
  const kd::FoldPlan plan = kd::all_subjects_plan(train);
  const auto prior = tracking::TransitionPrior::fit(kd::label_traces(train, plan.fold.train));
  char expect[64];
  std::snprintf(expect, sizeof expect, "prior b = %.2f BPM, fused", prior.scale_bpm);
  CHECK_MESSAGE(rep.post.find(expect) != std::string::npos, rep.post);
  CHECK(rep.post.find("viterbi") != std::string::npos);

  REQUIRE(rep.stages.size() == 5);
  const char* names[] = {"teacher", "student", "distilled", "quantized", "tracker"};
  for (size_t i = 0; i < 5; ++i) {
    const kd::StageResult& s = rep.stages[i];
    CHECK(s.name == names[i]);
    REQUIRE(s.eval.subjects.size() == test.subjects.size());  // every test recording, none of the training set
    for (size_t k = 0; k < s.eval.subjects.size(); ++k) {
      CHECK(s.eval.subjects[k].subject == test.subjects[k].name);
      CHECK(s.eval.subjects[k].truth.size() == size_t(test.subjects[k].num_windows));
    }
    CHECK(std::isfinite(s.eval.mean_subject_mae_post));
  }
  CHECK(rep.stages[0].params == 131825);
  CHECK(rep.stages[3].weight_bytes > 0);
  CHECK(rep.firmware.skipped == "--mcu none");
  CHECK(rep.quant_mean_abs_diff < 2.0);  // int8 vs float on the same windows (docs/MCU.md)
  CHECK(fs::exists(o.out + "/teacher/all/best.safetensors"));

  kd::write_pipeline_report(rep, o.out);
  std::ifstream f(o.out + "/report.json");
  const auto j = nlohmann::json::parse(f);
  CHECK(j["test_data"] == kTest);
  REQUIRE(j["stages"].size() == 5);
  CHECK(j["stages"][4]["per_recording"].size() == test.subjects.size());
  CHECK(j["stages"][4]["mae_post"].get<double>() == doctest::Approx(rep.stages[4].eval.mean_subject_mae_post));
  const std::string txt = kd::format_pipeline_report(rep);
  CHECK(txt.find("tested on " + kTest) != std::string::npos);
  CHECK(txt.find("firmware: not run (--mcu none)") != std::string::npos);
  for (const char* file : {"report.txt", "report.csv", "mae_per_subject.svg", "training_curves.svg"})
    CHECK_MESSAGE(fs::exists(o.out + "/" + file), file);
  fs::remove_all(o.out);
}

TEST_CASE("pipeline options are validated before any work") {
  kd::PipelineOptions o;
  o.out = scratch("bad");
  o.fuse_tracker = true;  // fusion without an HMM
  CHECK_THROWS_WITH_AS(kd::run_pipeline(o), doctest::Contains("--fuse-tracker"), std::invalid_argument);
  o = {};
  o.test_data = kTest;
  o.loso = true;
  CHECK_THROWS_WITH_AS(kd::run_pipeline(o), doctest::Contains("--loso"), std::invalid_argument);
  o = {};
  o.teacher_init = "no/such/teacher.pt";
  CHECK_THROWS_WITH_AS(kd::run_pipeline(o), doctest::Contains("no/such/teacher.pt"), std::invalid_argument);
  o = {};
  o.mcu = "m33";
  CHECK_THROWS_WITH_AS(kd::run_pipeline(o), doctest::Contains("--mcu"), std::invalid_argument);
  CHECK_FALSE(fs::exists(scratch("bad")));
}

TEST_CASE("all_subjects_plan: the last subject group validates, every set keeps subjects to train on") {
  for (int n : {2, 3, 5, 12}) {
    const data::WindowSet ws = data::load_dataset("synth?subjects=" + std::to_string(n) + "&minutes=0.5");
    const kd::FoldPlan p = kd::all_subjects_plan(ws);
    CAPTURE(n);
    CHECK(p.number == 0);
    CHECK(p.fold.test.empty());
    CHECK_FALSE(p.fold.train.empty());
    CHECK_FALSE(p.fold.val.empty());
    CHECK(p.fold.train.size() + p.fold.val.size() == size_t(n));  // every subject used once
    CHECK(p.fold.val.back() == n - 1);
  }
  // 12 subjects in 4 groups of 3: the last group (10, 11, 12) validates.
  const data::WindowSet ws12 = data::load_dataset("synth?subjects=12&minutes=0.5");
  CHECK(kd::all_subjects_plan(ws12).fold.val == std::vector<int>{9, 10, 11});
  // --val-data appended after subject 12: those validate, all 12 train.
  CHECK(kd::all_subjects_plan(ws12, 10).fold.train.size() == 10);
  CHECK_THROWS_AS(kd::all_subjects_plan(ws12, 0), std::invalid_argument);
}
