// The main job: train the teacher, train the student alone, distil the student, and report.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "kd/fileutil.h"
#include "kd/plots.h"
#include "kd/runs.h"
#include "models/export_mcu.h"
#include "models/quantize.h"

namespace pulsekd::cli {
namespace {

struct Stage {
  std::string name;
  kd::RunReport rep;
  std::string dir;
};

CommandRegistrar reg_pipeline([](CLI::App& app) {
  auto* cmd = app.add_subcommand("pipeline", "Teacher → student alone → distilled student on one dataset, with one report");
  auto spec = std::make_shared<std::string>("synth");
  auto out = std::make_shared<std::string>("out/pipeline");
  auto fold = std::make_shared<int>(1);
  auto loso = std::make_shared<bool>(false);
  auto teacher_epochs = std::make_shared<int>(12);
  auto student_epochs = std::make_shared<int>(20);
  auto batch = std::make_shared<int>(32);
  auto kd = std::make_shared<std::string>("pulse");
  auto threads = std::make_shared<int>(2);
  auto seed = std::make_shared<uint64_t>(1);
  cmd->add_option("--data", *spec, data::dataset_spec_help())->capture_default_str();
  cmd->add_option("--out", *out, "output directory")->capture_default_str();
  cmd->add_option("--fold", *fold, "the fold to run (test subject K, 1-based)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--loso", *loso, "run every fold (long on real data)");
  cmd->add_option("--teacher-epochs", *teacher_epochs, "teacher epochs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--student-epochs", *student_epochs, "student epochs (alone and distilled)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", *batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--kd", *kd, "distillation strategies (comma separated)")->capture_default_str();
  cmd->add_option("--threads", *threads, "threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--seed", *seed, "random seed")->capture_default_str();
  auto mcu = std::make_shared<std::string>("m4");
  cmd->add_option("--mcu", *mcu, "run the quantised student in emulated firmware: m4, m7 or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"m4", "m7", "none"}));
  cmd->callback([=]() {
    const data::WindowSet ws = data::load_dataset(*spec);
    const auto plans = kd::select_folds(ws, *loso ? 0 : *fold, *loso);
    kd::ensure_dir(*out, "--out");
    auto base = [&](const std::string& arch, int epochs) {
      RunArgs a;
      a.data = *spec;
      a.arch = arch;
      a.epochs = epochs;
      a.patience = epochs;  // short runs: keep the best epoch, no early stop
      a.batch = *batch;
      a.threads = *threads;
      a.seed = *seed;
      a.init_mean = true;   // the output starts at the mean training HR (PULSE.md §6)
      return a;
    };
    std::vector<Stage> stages;
    auto run = [&](const std::string& name, RunArgs a) {
      std::cerr << "== " << name << "\n";
      a.out = *out + "/" + name;
      kd::RunSpec s = make_spec(a, ws);
      stages.push_back({name, kd::run_folds(ws, plans, s, a.out), a.out});
      std::cerr << "   mean subject MAE " << stages.back().rep.eval.mean_subject_mae_raw << " BPM in "
                << int(stages.back().rep.seconds) << " s\n";
    };
    run("teacher", base("teacher", *teacher_epochs));
    run("student", base("student", *student_epochs));
    RunArgs d = base("student", *student_epochs);
    d.teacher = *out + "/teacher";
    d.kd = *kd;
    run("distilled", d);

    // Post-training quantisation of the distilled student of each fold (models/quantize.h):
    // calibrated on (up to 512 of) its training windows, evaluated on its test subject.
    std::cerr << "== quantised (distilled student)\n";
    // Firmware stage (docs/MCU.md): each fold's integer model is exported, built with
    // arm-none-eabi-gcc and run under QEMU on its test windows; its outputs ARE the quantised
    // predictions, checked against the host simulation. Skipped, saying why, without the tools.
    std::string fw_skip;
    if (*mcu == "none") fw_skip = "--mcu none";
    for (const char* tool : {"arm-none-eabi-gcc", "qemu-system-arm", "cmake", "cc"})
      if (fw_skip.empty() && std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) != 0)
        fw_skip = std::string(tool) + " not found (scripts/install-deps installs it)";
    const std::string fw_dir = *out + "/firmware-" + *mcu;
    int64_t fw_windows = 0, fw_mismatches = 0;
    std::vector<kd::EvalResult> qparts;
    double q_diff_sum = 0;
    int64_t q_windows = 0, q_bytes = 0;
    const auto tq = std::chrono::steady_clock::now();
    for (const auto& fp : plans) {
      models::LoadedModel lm = models::load_checkpoint(kd::checkpoint_for_fold(*out + "/distilled", fp.number));
      data::Normalizer norm;
      for (int r = 0; r < 4; ++r) {
        norm.mean[r] = lm.norm.mean[r];
        norm.std[r] = lm.norm.std[r];
      }
      std::vector<int64_t> calib_idx = data::windows_of(ws, fp.fold.train);
      if (calib_idx.size() > 512) {  // evenly spaced subset: calibration needs coverage, not all
        std::vector<int64_t> sub;
        for (size_t i = 0; i < 512; ++i) sub.push_back(calib_idx[i * calib_idx.size() / 512]);
        calib_idx = sub;
      }
      std::vector<float> cx(calib_idx.size() * 4 * 256), cy(calib_idx.size());
      data::gather_batch(ws, calib_idx, norm, cx.data(), cy.data());
      models::QuantOptions qo;
      qo.bits = models::default_layer_bits();
      models::QuantModel qm = models::quantize_model(*lm.model, lm.norm, cx.data(), int64_t(calib_idx.size()), qo, "pipeline");
      q_bytes = models::quant_param_bytes(qm);
      kd::EvalResult part;
      for (int s : fp.fold.test) {
        const std::vector<int64_t> idx = data::windows_of(ws, {s});
        std::vector<float> tx(idx.size() * 4 * 256), ty(idx.size());
        data::gather_batch(ws, idx, norm, tx.data(), ty.data());
        kd::SubjectEval se;
        se.subject = ws.subjects[size_t(s)].name;
        const int64_t n = int64_t(idx.size());
        const std::vector<int16_t> qin = models::quantize_input(qm, tx.data(), n);  // (n, 4, 256)
        const std::vector<int32_t> host = models::simulate(qm, qin.data(), n);      // (n) raw accumulators
        std::vector<int32_t> raw = host;
        if (fw_skip.empty()) {
          models::export_mcu(qm, *mcu, fw_dir);
          raw = models::mcu_run(fw_dir, *mcu, qin.data(), n);
          for (int64_t i = 0; i < n; ++i) fw_mismatches += raw[size_t(i)] != host[size_t(i)];
          fw_windows += n;
        }
        se.pred.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) se.pred[size_t(i)] = qm.out_scale * float(raw[size_t(i)]);
        std::vector<float> fl;
        lm.model->predict(tx.data(), int64_t(idx.size()), fl);
        for (size_t i = 0; i < fl.size(); ++i) q_diff_sum += std::fabs(double(fl[i]) - se.pred[i]);
        q_windows += int64_t(fl.size());
        se.truth = ty;
        se.pred_post = data::postprocess_clamp(se.pred);
        se.raw = kd::compute_metrics(se.pred, se.truth);
        se.post = kd::compute_metrics(se.pred_post, se.truth);
        part.subjects.push_back(se);
      }
      qparts.push_back(part);
    }
    const kd::EvalResult qeval = kd::merge_evals(qparts);
    std::vector<models::McuCoreReport> fw_report;
    if (fw_skip.empty()) {
      // Count instructions on a real test window: the last fold's first input.
      std::filesystem::copy_file(fw_dir + "/run-" + *mcu + "/input.bin", fw_dir + "/input.bin",
                                 std::filesystem::copy_options::overwrite_existing);
      models::McuReportOptions ro;
      ro.cores = {*mcu};
      fw_report = models::mcu_report(fw_dir, ro);
    }
    const double q_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tq).count();
    const double q_mean_diff = q_windows ? q_diff_sum / double(q_windows) : 0;

    // Report.
    char line[200];
    std::ostringstream rep;
    rep << "pulsekd pipeline on " << *spec << " (" << plans.size() << " fold" << (plans.size() > 1 ? "s" : "") << ", "
        << ws.size() << " windows)\n";
    std::snprintf(line, sizeof line, "%-26s %9s %9s %10s %11s %11s %8s\n", "model", "MAE", "MAE post", "params", "MACs/win",
                  "weights kB", "time s");
    rep << line;
    nlohmann::json j = {{"data", *spec}, {"folds", plans.size()}, {"stages", nlohmann::json::array()}};
    for (auto& s : stages) {
      std::snprintf(line, sizeof line, "%-26s %9.2f %9.2f %10lld %11lld %11.1f %8.0f\n",
                    (s.name == "distilled" ? "student distilled (" + *kd + ")" : s.name == "student" ? std::string("student alone") : s.name).c_str(),
                    s.rep.eval.mean_subject_mae_raw, s.rep.eval.mean_subject_mae_post, (long long)s.rep.params,
                    (long long)s.rep.macs, s.rep.params * 4 / 1000.0, s.rep.seconds);
      rep << line;
      j["stages"].push_back({{"name", s.name}, {"mae", s.rep.eval.mean_subject_mae_raw}, {"mae_post", s.rep.eval.mean_subject_mae_post},
                             {"parameters", s.rep.params}, {"macs_per_window", s.rep.macs}, {"float32_weight_bytes", s.rep.params * 4},
                             {"seconds", s.rep.seconds}, {"dir", s.dir}});
    }
    std::snprintf(line, sizeof line, "%-26s %9.2f %9.2f %10lld %11lld %11.1f %8.0f\n", "student quantised", qeval.mean_subject_mae_raw,
                  qeval.mean_subject_mae_post, (long long)stages.back().rep.params, (long long)stages.back().rep.macs, q_bytes / 1000.0,
                  q_seconds);
    rep << line;
    std::snprintf(line, sizeof line, "quantised: int8 weights, int8/int16 activations (docs/MCU.md); mean |HR int - HR float| %.3f BPM per window\n",
                  q_mean_diff);
    rep << line;
    nlohmann::json jfw = {{"core", *mcu}};
    if (!fw_skip.empty()) {
      rep << "firmware: not run (" << fw_skip << ")\n";
      jfw["skipped"] = fw_skip;
    } else {
      const models::McuCoreReport& r = fw_report.at(0);
      std::snprintf(line, sizeof line,
                    "firmware (Cortex-%s under QEMU %s): %lld windows, %lld differ from the host simulation; "
                    "flash %lld B + RAM %lld B = %.1f kB; %.2f M instructions/window\n",
                    *mcu == "m4" ? "M4" : "M7", *mcu == "m4" ? "mps2-an386" : "mps2-an500", (long long)fw_windows,
                    (long long)fw_mismatches, (long long)r.flash_bytes(), (long long)r.ram_bytes(),
                    double(r.flash_bytes() + r.ram_bytes()) / 1000.0, double(r.instructions) / 1e6);
      rep << line;
      jfw.update({{"windows", fw_windows}, {"mismatches_vs_host", fw_mismatches}, {"flash_bytes", r.flash_bytes()},
                  {"ram_bytes", r.ram_bytes()}, {"instructions_per_window", r.instructions}, {"dir", fw_dir}});
    }
    j["firmware"] = jfw;
    rep << "weights kB: float32 bytes of the float models; for the quantised model the flash bytes of weights, biases and requantisation tables\n";
    j["stages"].push_back({{"name", "quantized"}, {"mae", qeval.mean_subject_mae_raw}, {"mae_post", qeval.mean_subject_mae_post},
                           {"parameter_bytes", q_bytes}, {"mean_abs_diff_vs_float", q_mean_diff}, {"seconds", q_seconds}});
    std::cout << rep.str();
    kd::write_file_atomic(*out + "/report.txt", rep.str());
    kd::write_file_atomic(*out + "/report.json", j.dump(1) + "\n");
    std::string csv = "model,mae,mae_post,parameters,macs_per_window,seconds\n";
    for (auto& s : stages)
      csv += s.name + "," + std::to_string(s.rep.eval.mean_subject_mae_raw) + "," + std::to_string(s.rep.eval.mean_subject_mae_post) +
             "," + std::to_string(s.rep.params) + "," + std::to_string(s.rep.macs) + "," + std::to_string(s.rep.seconds) + "\n";
    kd::write_file_atomic(*out + "/report.csv", csv);

    // Plots: HR over time for the first test subject, per-subject MAE, training curves.
    const auto& first = stages[0].rep.eval.subjects.at(0);
    std::vector<kd::Series> hr_series;
    kd::Series truth{"true HR", {}, std::vector<double>(first.truth.begin(), first.truth.end()), "#000000"};
    for (size_t i = 0; i < first.truth.size(); ++i) truth.x.push_back(double(i) * 2.0);
    hr_series.push_back(truth);
    for (auto& s : stages) {
      const auto& se = s.rep.eval.subjects.at(0);
      hr_series.push_back({s.name, truth.x, std::vector<double>(se.pred.begin(), se.pred.end()), ""});
    }
    kd::write_file_atomic(*out + "/hr_" + first.subject + ".svg",
                          kd::svg_line_chart("Heart rate of " + first.subject + " (test subject)", "time (s)", "BPM", hr_series));
    std::vector<std::string> groups;
    for (auto& se : stages[0].rep.eval.subjects) groups.push_back(se.subject);
    std::vector<kd::Series> bars;
    for (auto& s : stages) {
      kd::Series b{s.name, {}, {}, ""};
      for (auto& se : s.rep.eval.subjects) b.y.push_back(se.raw.mae);
      bars.push_back(b);
    }
    kd::write_file_atomic(*out + "/mae_per_subject.svg", kd::svg_bar_chart("MAE per test subject", "MAE (BPM)", groups, bars));
    std::vector<kd::Series> curves;
    for (auto& s : stages) {
      kd::Series c{s.name + " val MAE", {}, {}, ""};
      for (auto& h : s.rep.folds.at(0).history) {
        c.x.push_back(h.epoch);
        c.y.push_back(h.val_mae);
      }
      curves.push_back(c);
    }
    kd::write_file_atomic(*out + "/training_curves.svg",
                          kd::svg_line_chart("Validation MAE per epoch (fold " + std::to_string(plans[0].number) + ")", "epoch", "MAE (BPM)", curves));
    std::cout << "report, JSON, CSV and SVG plots in " << *out << "\n";
  });
});

}  // namespace
}  // namespace pulsekd::cli
