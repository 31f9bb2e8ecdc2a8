#include "kd/pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "datasets/registry.h"
#include "kd/fileutil.h"
#include "kd/plots.h"
#include "kd/runs.h"
#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/host_runtime.h"
#include "deploy/qemu_runner.h"

namespace pulsekd::kd {
namespace {

using Clock = std::chrono::steady_clock;

// What the stages are tested on: each plan's test subjects of the training set, or (test_data)
// every subject of the test set.
struct EvalTarget {
  const data::WindowSet* ws = nullptr;
  bool every_subject = false;
  std::vector<int> subjects(const FoldPlan& fp) const {
    if (!every_subject) return fp.fold.test;
    std::vector<int> all(ws->subjects.size());
    for (size_t s = 0; s < all.size(); ++s) all[s] = int(s);
    return all;
  }
};

// The post-processing of one fold: the prior fitted to that fold's training labels.
PostProcess post_for_fold(const PipelineOptions& o, const data::WindowSet& train, const FoldPlan& fp) {
  PostProcess pp = o.post;
  if (o.fit_prior && pp.mode != tracking::TrackMode::None) {
    const double floor = pp.prior.floor;
    pp.prior = tracking::TransitionPrior::fit(label_traces(train, fp.fold.train));
    pp.prior.floor = floor;
  }
  if (o.fuse_tracker) pp.fuse_with = o.tracker;
  return pp;
}

RunSpec stage_spec(const PipelineOptions& o, const std::string& arch, int epochs) {
  RunSpec s;
  s.model.arch = arch;
  s.model.validate();
  const bool teacher = arch == "teacher";
  s.init_checkpoint = teacher ? o.teacher_init : o.student_init;
  s.force = o.force;
  const Recipe recipe = default_recipe(arch);
  const double lr = teacher ? o.teacher_lr : o.student_lr;
  TrainOptions& t = s.train;
  t.epochs = epochs;
  t.patience = epochs;  // short runs: keep the best epoch, no early stop
  t.lr = lr > 0 ? lr : recipe.lr;
  t.weight_decay = recipe.weight_decay;
  t.batch = o.batch;
  t.threads = o.threads;
  t.seed = o.seed;
  // From scratch the output starts at the mean training HR (PULSE.md §6); a transferred model
  // keeps its trained output layer (moving its bias to the mean costs ~10 BPM on SPC 2015).
  t.init_output_at_mean = s.init_checkpoint.empty();
  t.augment.enabled = o.augment || o.augment_motion > 0;
  t.augment.motion = o.augment_motion;
  t.progress = o.progress;
  t.epoch_lines = o.epoch_lines;
  return s;
}

// Evaluates a trained run's checkpoints fold by fold with each fold's post-processing.
EvalResult evaluate_stage(const PipelineOptions& o, const std::string& dir, const data::WindowSet& train,
                          const std::vector<FoldPlan>& plans, const EvalTarget& target) {
  std::vector<EvalResult> parts;
  for (const FoldPlan& fp : plans)
    parts.push_back(evaluate_saved(dir, {fp}, *target.ws, post_for_fold(o, train, fp), target.every_subject));
  return merge_evals(parts);
}

// The firmware stage's tools, or why it cannot run.
std::string firmware_skip_reason(const std::string& core) {
  if (core == "none") return "--mcu none";
  return deploy::firmware_tools_missing();
}

// The firmware's HMM forward filter matching the host's post-processing pp (same grid, prior and
// likelihood), or nothing when pp is not forward filtering of the network's own estimates.
std::unique_ptr<deploy::McuHmm> firmware_hmm(const PostProcess& pp) {
  if (pp.mode != tracking::TrackMode::Forward || pp.fuse_with) return nullptr;
  auto h = std::make_unique<deploy::McuHmm>();
  const double step = pp.grid.step();
  h->states = pp.grid.size();  // McuHmm's centres are bin centres: widen the range by half a step
  h->lo_bpm = pp.grid.bpm.front() - step / 2;
  h->hi_bpm = pp.grid.bpm.back() + step / 2;
  h->prior_scale_bpm = pp.prior.scale_bpm;
  h->prior_floor = pp.prior.floor;
  h->laplace_bpm = pp.laplace_bpm;  // outlier: laplace_likelihoods' default, as post_process
  return h;
}

// Post-training quantisation of each fold's distilled student (deploy/calibrate.h), calibrated
// on up to 512 of its training windows; on the firmware (docs/MCU.md) when the tools are there:
// each fold's integer model is exported, built with arm-none-eabi-gcc and run under QEMU on its
// test windows — those outputs ARE the quantised predictions, checked against the host simulation.
StageResult quantised_stage(const PipelineOptions& o, const data::WindowSet& train, const std::vector<FoldPlan>& plans,
                            const EvalTarget& target, const std::string& distilled_dir, PipelineReport& rep) {
  const auto t0 = Clock::now();
  FirmwareResult& fw = rep.firmware;
  fw.core = o.mcu;
  fw.skipped = firmware_skip_reason(o.mcu);
  fw.dir = o.out + "/firmware-" + o.mcu;
  StageResult st{"quantized", "student quantised", {}, 0, 0, 0, 0, distilled_dir, {}};
  std::vector<EvalResult> parts;
  double diff_sum = 0;
  int64_t diff_n = 0;
  auto check = std::make_shared<FirmwareCheck>();
  for (const FoldPlan& fp : plans) {
    models::LoadedModel lm = models::load_checkpoint(checkpoint_for_fold(distilled_dir, fp.number));
    const data::Normalizer norm = lm.norm;  // the distilled run always stores one
    std::vector<int64_t> calib_idx = data::windows_of(train, fp.fold.train);
    if (calib_idx.size() > 512) {  // evenly spaced subset: calibration needs coverage, not all
      std::vector<int64_t> sub;
      for (size_t i = 0; i < 512; ++i) sub.push_back(calib_idx[i * calib_idx.size() / 512]);
      calib_idx = sub;
    }
    std::vector<float> cx(calib_idx.size() * data::kRows * data::kWindow), cy(calib_idx.size());  // (n,4,256), (n)
    data::gather_batch(train, calib_idx, norm, cx.data(), cy.data());
    deploy::QuantOptions qo;
    qo.bits = deploy::default_layer_bits();
    const deploy::QuantModel qm = deploy::quantize_model(*lm.model, lm.norm, cx.data(), int64_t(calib_idx.size()), qo, "pipeline");
    st.weight_bytes = deploy::quant_param_bytes(qm);
    st.params = lm.model->num_parameters();
    st.macs = lm.model->macs_per_window();
    const PostProcess pp = post_for_fold(o, train, fp);
    // The firmware's outputs ARE the quantised predictions when it runs (checked against the
    // host runtime window by window); otherwise the host runtime's.
    const std::unique_ptr<deploy::McuHmm> hmm = firmware_hmm(pp);
    const size_t hmm_first = check->hmm_hr.size();
    const Predictor quantised = fw.skipped.empty() ? firmware_predictor(qm, fw.dir, o.mcu, check, hmm.get()) : integer_predictor(qm);
    const EvalResult ev = evaluate(quantised, *target.ws, target.subjects(fp), norm, pp);
    fw.hmm = hmm && fw.skipped.empty();
    for (size_t s = 0, k = hmm_first; fw.hmm && s < ev.subjects.size(); ++s)  // the firmware's filter against the host's
      for (float v : ev.subjects[s].pred_post) fw.hmm_max_diff_bpm = std::max(fw.hmm_max_diff_bpm, std::fabs(double(check->hmm_hr.at(k++)) - v));
    const EvalResult fl = evaluate(float_predictor(*lm.model), *target.ws, target.subjects(fp), norm);  // the same windows in float
    for (size_t s = 0; s < ev.subjects.size(); ++s)
      for (size_t i = 0; i < ev.subjects[s].pred.size(); ++i)
        diff_sum += std::fabs(double(fl.subjects[s].pred[i]) - double(ev.subjects[s].pred[i]));
    for (const SubjectEval& se : ev.subjects) diff_n += int64_t(se.pred.size());
    parts.push_back(ev);
  }
  fw.windows = check->windows;
  fw.mismatches = check->mismatches;
  fw.hmm_mismatches = check->hmm_mismatches;
  st.eval = merge_evals(parts);
  rep.quant_mean_abs_diff = diff_n ? diff_sum / double(diff_n) : 0;
  if (fw.skipped.empty()) {
    // Count instructions on a real test window: the last fold's first input.
    copy_file_atomic(fw.dir + "/run-" + o.mcu + "/input.bin", fw.dir + "/input.bin");
    deploy::McuReportOptions ro;
    ro.cores = {o.mcu};
    const deploy::McuCoreReport r = deploy::mcu_report(fw.dir, ro).at(0);
    fw.flash_bytes = r.flash_bytes();
    fw.ram_bytes = r.ram_bytes();
    fw.instructions = r.instructions;
    fw.hmm_instructions = r.hmm_instructions;
  }
  st.seconds = seconds_since(t0);
  return st;
}

StageResult tracker_stage(const PipelineOptions& o, const data::WindowSet& train, const std::vector<FoldPlan>& plans,
                          const EvalTarget& target) {
  const auto t0 = Clock::now();
  StageResult st{"tracker", "classical tracker (WFPV)", {}, 0, 0, 0, 0, "", {}};
  std::vector<EvalResult> parts;
  for (const FoldPlan& fp : plans) parts.push_back(evaluate_tracker(*target.ws, target.subjects(fp), post_for_fold(o, train, fp), o.tracker));
  st.eval = merge_evals(parts);
  st.seconds = seconds_since(t0);
  return st;
}

}  // namespace

void PipelineOptions::validate() const {
  if (teacher_epochs < 1 || student_epochs < 1) throw std::invalid_argument("pipeline: --teacher-epochs and --student-epochs must be >= 1");
  if (batch < 1) throw std::invalid_argument("pipeline: --batch must be >= 1");
  if (mcu != "m4" && mcu != "m7" && mcu != "none") throw std::invalid_argument("pipeline: --mcu must be m4, m7 or none, not '" + mcu + "'");
  if (!test_data.empty() && loso) throw std::invalid_argument("pipeline: --test-data trains on every subject of --data: drop --loso");
  if (fuse_tracker && post.mode == tracking::TrackMode::None)
    throw std::invalid_argument("pipeline: --fuse-tracker needs an HMM (--track forward or viterbi)");
  if (teacher_lr < 0 || student_lr < 0) throw std::invalid_argument("pipeline: learning rates must be >= 0 (0: the default)");
  for (const std::string* init : {&teacher_init, &student_init})
    if (!init->empty() && !std::filesystem::is_regular_file(*init))
      throw std::invalid_argument("pipeline: init checkpoint '" + *init + "' does not exist or is not a file");
  post.prior.validate();
  tracker.validate();
}

PipelineReport run_pipeline(const PipelineOptions& o) {
  o.validate();
  const data::WindowSet train = data::load_dataset(o.data);
  data::WindowSet test;
  EvalTarget target{&train, false};
  std::vector<FoldPlan> plans;
  if (o.test_data.empty()) {
    plans = select_folds(train, o.loso ? 0 : o.fold, o.loso);
  } else {
    test = data::load_dataset(o.test_data);
    target = {&test, true};
    plans = {all_subjects_plan(train)};
  }
  CreatedDirs dirs;  // a pipeline that fails before writing anything leaves no empty directory
  dirs.ensure(o.out, "--out");
  PipelineReport rep;
  rep.data = o.data;
  rep.test_data = o.test_data;
  rep.folds = int(plans.size());
  rep.windows = train.size();
  rep.test_windows = o.test_data.empty() ? 0 : test.size();
  rep.post = post_for_fold(o, train, plans.front()).describe();

  auto train_stage = [&](const std::string& name, const std::string& label, RunSpec spec) {
    std::cerr << "== " << name << "\n";
    const std::string dir = o.out + "/" + name;
    const RunReport rr = run_folds(train, plans, spec, dir);
    StageResult st{name, label, evaluate_stage(o, dir, train, plans, target), rr.params, rr.macs, rr.params * 4, rr.seconds, dir,
                   rr.folds.at(0).history};
    std::cerr << "   mean subject MAE " << st.eval.mean_subject_mae_raw << " / " << st.eval.mean_subject_mae_post << " BPM (raw / "
              << rep.post << ") in " << int(st.seconds) << " s\n";
    rep.stages.push_back(std::move(st));
  };
  train_stage("teacher", "teacher", stage_spec(o, "teacher", o.teacher_epochs));
  train_stage("student", "student alone", stage_spec(o, "student", o.student_epochs));
  DistillOptions kd_opts;
  kd_opts.strategies = split_list(o.kd);
  RunSpec d = stage_spec(o, "student", o.student_epochs);
  d.kd = &kd_opts;
  d.teacher = o.out + "/teacher";
  train_stage("distilled", "student distilled (" + o.kd + ")", d);
  std::cerr << "== quantised (distilled student)\n";
  rep.stages.push_back(quantised_stage(o, train, plans, target, o.out + "/distilled", rep));
  std::cerr << "== tracker\n";
  rep.stages.push_back(tracker_stage(o, train, plans, target));
  return rep;
}

std::string format_pipeline_report(const PipelineReport& r) {
  char line[240];
  std::ostringstream out;
  out << "pulsekd pipeline on " << r.data << " (" << r.windows << " windows), ";
  if (r.test_data.empty()) out << r.folds << " fold" << (r.folds > 1 ? "s" : "") << " of it\n";
  else out << "trained on every subject, tested on " << r.test_data << " (" << r.test_windows << " windows)\n";
  out << "post-processing: " << r.post << "\n";
  std::snprintf(line, sizeof line, "%-28s %9s %9s %10s %11s %11s %8s\n", "model", "MAE", "MAE post", "params", "MACs/win", "weights kB",
                "time s");
  out << line;
  for (const StageResult& s : r.stages) {
    std::snprintf(line, sizeof line, "%-28s %9.2f %9.2f %10lld %11lld %11.1f %8.0f\n", s.label.c_str(), s.eval.mean_subject_mae_raw,
                  s.eval.mean_subject_mae_post, (long long)s.params, (long long)s.macs, double(s.weight_bytes) / 1000.0, s.seconds);
    out << line;
  }
  out << "MAE: mean over test recordings of each recording's mean absolute error (BPM); post: after the post-processing\n";
  std::snprintf(line, sizeof line, "quantised: int8 weights, int8/int16 activations (docs/MCU.md); mean |HR int - HR float| %.3f BPM per window\n",
                r.quant_mean_abs_diff);
  out << line;
  const FirmwareResult& fw = r.firmware;
  if (!fw.skipped.empty()) {
    out << "firmware: not run (" << fw.skipped << ")\n";
  } else {
    std::snprintf(line, sizeof line,
                  "firmware (Cortex-%s under QEMU %s): %lld windows, %lld differ from the host simulation; "
                  "flash %lld B + RAM %lld B = %.1f kB; %.2f M instructions/window\n",
                  fw.core == "m4" ? "M4" : "M7", fw.core == "m4" ? "mps2-an386" : "mps2-an500", (long long)fw.windows,
                  (long long)fw.mismatches, (long long)fw.flash_bytes, (long long)fw.ram_bytes,
                  double(fw.flash_bytes + fw.ram_bytes) / 1000.0, double(fw.instructions) / 1e6);
    out << line;
    if (fw.hmm) {
      std::snprintf(line, sizeof line,
                    "firmware HMM forward filter: %lld of %lld filtered heart rates differ from the host's float filter; "
                    "max |firmware - host tracker| %.2g BPM; %lld instructions/window\n",
                    (long long)fw.hmm_mismatches, (long long)fw.windows, fw.hmm_max_diff_bpm, (long long)fw.hmm_instructions);
      out << line;
    }
  }
  out << "weights kB: float32 bytes of the float models; for the quantised model the flash bytes of weights, biases and requantisation tables\n";
  return out.str();
}

void write_pipeline_report(const PipelineReport& r, const std::string& dir) {
  using nlohmann::json;
  json j = {{"data", r.data}, {"test_data", r.test_data}, {"folds", r.folds}, {"post_process", r.post}, {"stages", json::array()}};
  std::string csv = "model,mae,mae_post,parameters,macs_per_window,weight_bytes,seconds\n";
  for (const StageResult& s : r.stages) {
    json st = {{"name", s.name}, {"mae", s.eval.mean_subject_mae_raw}, {"mae_post", s.eval.mean_subject_mae_post},
               {"parameters", s.params}, {"macs_per_window", s.macs}, {"weight_bytes", s.weight_bytes}, {"seconds", s.seconds},
               {"per_recording", json::array()}};
    for (const SubjectEval& se : s.eval.subjects)
      st["per_recording"].push_back({{"recording", se.subject}, {"mae", se.raw.mae}, {"mae_post", se.post.mae}, {"windows", se.raw.n}});
    if (!s.dir.empty()) st["dir"] = s.dir;
    if (s.name == "quantized") st["mean_abs_diff_vs_float"] = r.quant_mean_abs_diff;
    j["stages"].push_back(st);
    csv += s.name + "," + std::to_string(s.eval.mean_subject_mae_raw) + "," + std::to_string(s.eval.mean_subject_mae_post) + "," +
           std::to_string(s.params) + "," + std::to_string(s.macs) + "," + std::to_string(s.weight_bytes) + "," + std::to_string(s.seconds) + "\n";
  }
  const FirmwareResult& fw = r.firmware;
  json jfw = {{"core", fw.core}};
  if (!fw.skipped.empty()) jfw["skipped"] = fw.skipped;
  else
    jfw.update({{"windows", fw.windows}, {"mismatches_vs_host", fw.mismatches}, {"flash_bytes", fw.flash_bytes},
                {"ram_bytes", fw.ram_bytes}, {"instructions_per_window", fw.instructions}, {"dir", fw.dir}});
  if (fw.hmm)
    jfw["hmm_forward"] = {{"mismatches_vs_host", fw.hmm_mismatches}, {"max_abs_diff_vs_host_tracker_bpm", fw.hmm_max_diff_bpm},
                          {"instructions_per_window", fw.hmm_instructions}};
  j["firmware"] = jfw;
  write_file_atomic(dir + "/report.txt", format_pipeline_report(r));
  write_file_atomic(dir + "/report.json", j.dump(1) + "\n");
  write_file_atomic(dir + "/report.csv", csv);

  // Plots: HR over time for the first test subject, per-subject MAE, training curves.
  const SubjectEval& first = r.stages.at(0).eval.subjects.at(0);
  std::vector<Series> hr_series;
  Series truth{"true HR", {}, std::vector<double>(first.truth.begin(), first.truth.end()), "#000000"};
  for (size_t i = 0; i < first.truth.size(); ++i) truth.x.push_back(double(i) * 2.0);
  hr_series.push_back(truth);
  for (const StageResult& s : r.stages) {
    const SubjectEval& se = s.eval.subjects.at(0);
    hr_series.push_back({s.name, truth.x, std::vector<double>(se.pred_post.begin(), se.pred_post.end()), ""});
  }
  write_file_atomic(dir + "/hr_" + first.subject + ".svg",
                    svg_line_chart("Heart rate of " + first.subject + " (test subject, post-processed)", "time (s)", "BPM", hr_series));
  std::vector<std::string> groups;
  for (const SubjectEval& se : r.stages.at(0).eval.subjects) groups.push_back(se.subject);
  std::vector<Series> bars;
  for (const StageResult& s : r.stages) {
    Series b{s.name, {}, {}, ""};
    for (const SubjectEval& se : s.eval.subjects) b.y.push_back(se.post.mae);
    bars.push_back(b);
  }
  write_file_atomic(dir + "/mae_per_subject.svg", svg_bar_chart("MAE per test subject (post-processed)", "MAE (BPM)", groups, bars));
  std::vector<Series> curves;
  for (const StageResult& s : r.stages) {
    if (s.curve.empty()) continue;
    Series c{s.name + " val MAE", {}, {}, ""};
    for (const EpochLog& h : s.curve) {
      c.x.push_back(h.epoch);
      c.y.push_back(h.val_mae);
    }
    curves.push_back(c);
  }
  write_file_atomic(dir + "/training_curves.svg", svg_line_chart("Validation MAE per epoch (first fold)", "epoch", "MAE (BPM)", curves));
}

}  // namespace pulsekd::kd
