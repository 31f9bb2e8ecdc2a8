// Quantisation and microcontroller commands: quantize (export-mcu, mcu-report follow).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "datasets/folds.h"
#include "datasets/registry.h"
#include "kd/evaluate.h"
#include "kd/predictor.h"
#include "models/checkpoint.h"
#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/host_runtime.h"
#include "deploy/qemu_runner.h"
#include "deploy/quant_format.h"

namespace pulsekd::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

void need_file(const std::string& path, const std::string& flag) {
  if (!fs::is_regular_file(path)) throw std::runtime_error(flag + " '" + path + "' does not exist or is not a file");
}

// "input=16,conv11=16" -> map
std::map<std::string, int> parse_bits(const std::string& s) {
  std::map<std::string, int> m;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--bits: expected NAME=8|16, got '" + item + "'");
    const std::string v = item.substr(eq + 1);
    if (v != "8" && v != "16") throw std::runtime_error("--bits: '" + item + "': bits must be 8 or 16");
    m[item.substr(0, eq)] = std::stoi(v);
  }
  return m;
}

// The subjects of ws (indices) that the checkpoint was trained on, from the settings its training
// recorded (kd::run_settings "train_subjects"); empty when none is recorded or none is in ws.
std::vector<int> recorded_training_subjects(const models::LoadedModel& lm, const data::WindowSet& ws) {
  const auto it = lm.metadata.find("pulsekd.settings");
  if (it == lm.metadata.end()) return {};
  const json settings = json::parse(it->second, nullptr, false);
  if (!settings.is_object() || !settings.contains("train_subjects") || !settings["train_subjects"].is_array()) return {};
  std::vector<int> out;
  for (size_t k = 0; k < ws.subjects.size(); ++k)
    for (const json& name : settings["train_subjects"])
      if (name.is_string() && name.get<std::string>() == ws.subjects[k].name) out.push_back(int(k));
  return out;
}

CommandRegistrar reg_quantize([](CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Post-training quantisation of a student or teacher checkpoint; float vs integer MAE per subject");
  struct Opts {
    std::string ckpt, data, out, calib = "percentile", calib_data, bits, report;
    double percentile = 99.99;
    int default_bits = 16;
    bool nearest = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--checkpoint", o->ckpt, "pulsekd .safetensors student or teacher checkpoint")->required();
  cmd->add_option("--data", o->data, "dataset SPEC to evaluate on (and calibrate on unless --calib-data)")->required();
  cmd->add_option("--out", o->out, "output quantised model (.safetensors)")->required()->check(output_file(false));
  cmd->add_option("--calib", o->calib, "calibration: minmax or percentile")->check(CLI::IsMember({"minmax", "percentile"}));
  cmd->add_option("--percentile", o->percentile, "two-sided percentile for --calib percentile")->check(CLI::Range(50.0, 100.0));
  cmd->add_option("--calib-data", o->calib_data,
                  "dataset SPEC of the calibration windows (default: the checkpoint's training subjects within --data)");
  cmd->add_option("--bits", o->bits, "activation bits per tensor, e.g. input=16,conv11=16 (default: docs/MCU.md choice)");
  cmd->add_option("--default-bits", o->default_bits, "bits of the tensors --bits does not name")->check(CLI::IsMember({8, 16}));
  cmd->add_flag("--round-nearest", o->nearest, "round weights to nearest (default: error-compensating GPTQ rounding)");
  cmd->add_option("--report", o->report, "also write the per-subject results as JSON (- for standard output)")->check(output_file(true));
  cmd->callback([o]() {
    std::ostream& say = is_stdout_path(o->report) ? std::cerr : std::cout;  // `--report -`: stdout holds the JSON alone
    need_file(o->ckpt, "--checkpoint");
    auto lm = models::load_checkpoint(o->ckpt);
    const data::WindowSet ws = data::load_dataset(o->data);
    if (ws.size() == 0) throw std::runtime_error("--data '" + o->data + "': no windows");
    const std::vector<float> x = deploy::normalised_windows(ws, lm.norm);
    std::vector<float> xc;
    std::string calib_from = o->calib_data;
    if (!o->calib_data.empty()) {
      xc = deploy::normalised_windows(data::load_dataset(o->calib_data), lm.norm);
    } else {
      // By default only the checkpoint's own training subjects calibrate: the evaluated (test)
      // subjects must not shape the quantisation.
      const std::vector<int> train = recorded_training_subjects(lm, ws);
      if (train.empty()) {
        xc = x;
        calib_from = o->data + " (every subject: the checkpoint records no training subjects found in --data; "
                     "give --calib-data to keep test subjects out)";
        std::cerr << "warning: " << o->ckpt << " records no training subjects found in --data; calibrating on every subject\n";
      } else {
        for (int k : train) {
          const data::SubjectInfo& sub = ws.subjects[size_t(k)];
          xc.insert(xc.end(), x.begin() + sub.first_window * data::kWindowValues, x.begin() + (sub.first_window + sub.num_windows) * data::kWindowValues);
        }
        calib_from = o->data + ": the checkpoint's " + std::to_string(train.size()) + " training subjects";
      }
    }
    const std::vector<float>& cal = xc;
    deploy::QuantOptions qo;
    qo.calib = o->calib;
    qo.percentile = o->percentile;
    qo.default_bits = o->default_bits;
    qo.gptq = !o->nearest;
    qo.bits = o->bits.empty() ? deploy::default_layer_bits(lm.model->config().arch) : parse_bits(o->bits);
    say << "normalisation: "
              << (lm.norm.present ? "the checkpoint's per-row statistics"
                                  : "none in the checkpoint: each recording z-scored with its own per-row statistics")
              << "\ncalibration: " << o->calib << " on " << cal.size() / data::kWindowValues << " windows of " << calib_from << "\n";
    deploy::QuantModel q = deploy::quantize_model(*lm.model, lm.norm, cal.data(), int64_t(cal.size() / data::kWindowValues), qo, o->ckpt);
    deploy::save_quant_model(o->out, q);

    // The float network and the integer model (host runtime) on the same normalised windows x.
    std::vector<int> all_subjects(ws.subjects.size());
    for (size_t k = 0; k < all_subjects.size(); ++k) all_subjects[k] = int(k);
    const auto windows_of_subject = [&](int k) {
      const data::SubjectInfo& sub = ws.subjects[size_t(k)];
      return std::vector<float>(x.begin() + sub.first_window * data::kWindowValues, x.begin() + (sub.first_window + sub.num_windows) * data::kWindowValues);
    };
    const kd::EvalResult ef = kd::evaluate_subjects(kd::float_predictor(*lm.model), ws, all_subjects, windows_of_subject);
    const kd::EvalResult eq = kd::evaluate_subjects(kd::integer_predictor(q), ws, all_subjects, windows_of_subject);

    char line[256];
    std::snprintf(line, sizeof line, "%-18s %7s %9s %9s %9s %9s %9s %9s\n", "subject", "windows", "MAE f32", "MAE int",
                  "PP f32", "PP int", "mean|d|", "max|d|");
    say << "\n" << line;
    json rep = json::array();
    double sf = 0, sq = 0, spf = 0, spq = 0, sd = 0, dmax = 0;
    int64_t nd = 0;
    for (size_t k = 0; k < ws.subjects.size(); ++k) {
      const kd::SubjectEval &f = ef.subjects[k], &g = eq.subjects[k];
      const double mf = f.raw.mae, mq = g.raw.mae, pf = f.post.mae, pq = g.post.mae;
      double d = 0, dm = 0;
      for (size_t i = 0; i < f.pred.size(); ++i) {
        d += std::fabs(double(g.pred[i]) - double(f.pred[i]));
        dm = std::max(dm, std::fabs(double(g.pred[i]) - double(f.pred[i])));
      }
      sd += d;
      nd += int64_t(f.pred.size());
      d /= double(std::max<size_t>(1, f.pred.size()));
      dmax = std::max(dmax, dm);
      sf += mf, sq += mq, spf += pf, spq += pq;
      const data::SubjectInfo& sub = ws.subjects[k];
      std::snprintf(line, sizeof line, "%-18s %7lld %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", sub.name.c_str(),
                    (long long)sub.num_windows, mf, mq, pf, pq, d, dm);
      say << line;
      rep.push_back({{"subject", sub.name}, {"windows", sub.num_windows}, {"mae_float", mf}, {"mae_int", mq},
                     {"mae_post_float", pf}, {"mae_post_int", pq}, {"mean_abs_diff", d}, {"max_abs_diff", dm}});
    }
    const double ns = double(ws.subjects.size());
    std::snprintf(line, sizeof line, "%-18s %7lld %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", "mean of subjects",
                  (long long)ws.size(), sf / ns, sq / ns, spf / ns, spq / ns, sd / double(nd), dmax);
    say << line;
    say << "\nMAE change (int - float): raw " << (sq - sf) / ns << " BPM, post-processed " << (spq - spf) / ns
              << " BPM; mean |HR_int - HR_float| per window " << sd / double(nd) << " BPM\n";
    say << "int8 weights + int32 biases + requantisation tables: " << deploy::quant_param_bytes(q) << " bytes\n";
    say << "activation bits:";
    say << " input=" << q.input.bits;
    for (auto& L : q.layers)
      if (L.op != deploy::QOp::AvgPool) say << " " << L.name << "=" << L.out.bits;
    say << "\nwrote " << o->out << "\n";
    if (!o->report.empty()) {
      json j = {{"checkpoint", o->ckpt}, {"data", o->data}, {"calib", o->calib}, {"subjects", rep},
                {"mean_mae_float", sf / ns}, {"mean_mae_int", sq / ns}, {"mean_mae_post_float", spf / ns},
                {"mean_mae_post_int", spq / ns}, {"mean_abs_diff", sd / double(nd)}, {"max_abs_diff", dmax}};
      write_output(o->report, j.dump(2) + "\n");
    }
  });
});

// export-mcu's HMM flags -> deploy::McuHmm (the prior fitted to --prior-data's labels).
struct HmmArgs {
  bool on = false;
  int states = 64;
  std::string prior_data;
  double prior_scale = 0, laplace = 5;
  // given: how many of --hmm-states, --prior-data, --prior-scale, --laplace were on the command line
  deploy::McuHmm settings(size_t given) const {
    if (!on && given) throw std::invalid_argument("--hmm-states, --prior-data, --prior-scale and --laplace need --hmm-forward");
    if (!prior_data.empty() && prior_scale > 0) throw std::invalid_argument("give --prior-data or --prior-scale, not both");
    deploy::McuHmm h;
    h.states = states;
    h.laplace_bpm = laplace;
    if (!prior_data.empty()) h.prior_scale_bpm = tracking::TransitionPrior::fit(kd::label_traces(data::load_dataset(prior_data))).scale_bpm;
    else if (prior_scale > 0) h.prior_scale_bpm = prior_scale;
    h.validate();
    return h;
  }
};

CommandRegistrar reg_export([](CLI::App& app) {
  auto* cmd = app.add_subcommand("export-mcu", "C++ sources + firmware build for Cortex-M4/M7 from a quantised model");
  auto model = std::make_shared<std::string>();
  auto target = std::make_shared<std::string>("m4");
  auto out = std::make_shared<std::string>();
  auto root = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  auto hmm = std::make_shared<HmmArgs>();
  cmd->add_option("--model", *model, "quantised model written by pulsekd quantize")->required();
  cmd->add_option("--target", *target, "m4 (mps2-an386, Cortex-M4F) or m7 (mps2-an500, Cortex-M7)")->check(CLI::IsMember({"m4", "m7"}));
  cmd->add_option("--out", *out, "output directory (new or empty)")->required();
  cmd->add_flag("--force", *force, "write into a non-empty --out, replacing the files export-mcu generates");
  cmd->add_option("--source-root", *root, "pulsekd source tree holding mcu/ and engine/kernels/ (default: the build's)");
  cmd->add_flag("--hmm-forward", hmm->on, "also run the HMM forward filter on each window's heart rate (writes hmm.bin)");
  cmd->add_option("--hmm-states", hmm->states, "--hmm-forward: heart-rate states, bin centres over 30-210 BPM")
      ->capture_default_str()
      ->check(CLI::Range(2, 1024));
  cmd->add_option("--prior-data", hmm->prior_data, "--hmm-forward: fit the transition prior to this dataset's labels (a training set)");
  cmd->add_option("--prior-scale", hmm->prior_scale, "--hmm-forward: or give the prior's Laplace scale (BPM per 2 s step; default 1.5)")
      ->check(finite_range(0.05, 50.0));
  cmd->add_option("--laplace", hmm->laplace, "--hmm-forward: width of the likelihood around each estimate (BPM)")
      ->capture_default_str()
      ->check(finite_range(0.1, 100.0));
  cmd->callback([=]() {
    need_file(*model, "--model");
    deploy::check_export_dir(*out, *force);
    const deploy::McuHmm h =
        hmm->settings(cmd->count("--hmm-states") + cmd->count("--prior-data") + cmd->count("--prior-scale") + cmd->count("--laplace"));
    const deploy::QuantModel q = deploy::load_quant_model(*model);
    const deploy::McuExport e = deploy::export_mcu(q, *target, *out, *root, true, hmm->on ? &h : nullptr);
    std::cout << "wrote " << *out << "/model_data.cpp (" << q.layers.size() << " layers, const data " << e.weight_bytes
              << " bytes, activation arena " << e.arena_bytes << " bytes) and a CMake build for " << *target << "\n";
    if (hmm->on)
      std::cout << "HMM forward filter: " << h.states << " states, prior scale " << h.prior_scale_bpm << " BPM, Laplace "
                << h.laplace_bpm << " BPM; filtered heart rates go to hmm.bin (float32 per window)\n";
    std::cout << "build: " << *out << "/build.sh  (then: qemu-system-arm -M " << (*target == "m4" ? "mps2-an386" : "mps2-an500")
              << " -display none -monitor none -serial none -semihosting-config enable=on,target=native -kernel "
              << *out << "/build/fw.elf, with input.bin in the working directory)\n";
  });
});

CommandRegistrar reg_report([](CLI::App& app) {
  auto* cmd = app.add_subcommand("mcu-report",
                                 "Build an export-mcu directory for M4 and M7, count instructions per layer under QEMU (TCG plugin), flash/RAM");
  struct Opts {
    std::string dir, opt = "-Os", input, cores = "m4,m7";
    bool json = false;
    double mhz = 100;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("DIR", o->dir, "directory written by pulsekd export-mcu")->required();
  cmd->add_flag("--json", o->json, "print one JSON object (flash_bytes, ram_bytes, instructions_m4, instructions_m7, layers)");
  cmd->add_option("--opt", o->opt, "firmware optimisation flags (PK_OPT), e.g. -O2 or -Os");
  cmd->add_option("--input", o->input, "int16 window file, at least one window (first used; default DIR/input.bin if present, else a synthetic window)");
  cmd->add_option("--cores", o->cores, "comma-separated: m4,m7");
  cmd->add_option("--clock-mhz", o->mhz, "clock for the latency estimate (1 instruction per cycle assumed)");
  cmd->callback([=]() {
    deploy::McuReportOptions ro;
    ro.opt = o->opt;
    ro.input = o->input;
    ro.cores.clear();
    std::stringstream ss(o->cores);
    for (std::string c; std::getline(ss, c, ',');)
      if (!c.empty()) ro.cores.push_back(c);
    const std::vector<deploy::McuCoreReport> rs = deploy::mcu_report(o->dir, ro);
    if (o->json) {
      json j = {{"dir", o->dir}, {"opt", o->opt}, {"clock_mhz", o->mhz}};
      for (auto& r : rs) {
        json layers = json::array();
        for (auto& L : r.layers)
          layers.push_back({{"name", L.name}, {"op", L.op}, {"kernel", L.kernel_fn}, {"runs", L.runs}, {"macs", L.macs},
                            {"instructions", L.instructions},
                            {"instructions_per_mac", L.macs ? double(L.instructions) / double(L.macs) : 0.0}});
        j["instructions_" + r.core] = r.instructions;
        j["layers_" + r.core] = layers;
        j["input_copy_instructions_" + r.core] = r.input_copy_instructions;
        if (r.hmm_instructions) {
          j["hmm_instructions_" + r.core] = r.hmm_instructions;
          j["hmm_first_instructions_" + r.core] = r.hmm_first_instructions;
        }
        j["flash_bytes_" + r.core] = r.flash_bytes();
        j["ram_bytes_" + r.core] = r.ram_bytes();
        j["stack_peak_bytes_" + r.core] = r.stack_peak;
        j["latency_ms_estimate_" + r.core] = double(r.instructions) / (o->mhz * 1e3);
      }
      // Headline figures: the first core given (m4 by default).
      j["flash_bytes"] = rs.front().flash_bytes();
      j["ram_bytes"] = rs.front().ram_bytes();
      std::cout << j.dump(2) << "\n";
      return;
    }
    char line[256];
    for (auto& r : rs) {
      std::cout << "== " << r.core << " (" << o->opt << ")\n";
      std::snprintf(line, sizeof line, "%-13s %-14s %-40s %4s %11s %12s %9s\n", "layer", "op", "kernel", "runs", "MACs",
                    "instructions", "instr/MAC");
      std::cout << line;
      int64_t macs = 0;
      for (auto& L : r.layers) {
        macs += L.macs;
        std::snprintf(line, sizeof line, "%-13s %-14s %-40s %4d %11lld %12lld %9.2f\n", L.name.c_str(), L.op.c_str(),
                      L.kernel_fn.c_str(), L.runs, (long long)L.macs, (long long)L.instructions,
                      L.macs ? double(L.instructions) / double(L.macs) : 0.0);
        std::cout << line;
      }
      std::snprintf(line, sizeof line, "%-13s %-14s %-40s %4s %11s %12lld\n", "input", "copy", "", "", "", (long long)r.input_copy_instructions);
      std::cout << line;
      std::snprintf(line, sizeof line, "%-13s %-14s %-40s %4s %11lld %12lld %9.2f\n", "total", "", "", "", (long long)macs,
                    (long long)r.instructions, macs ? double(r.instructions) / double(macs) : 0.0);
      std::cout << line;
      if (r.hmm_instructions)
        std::cout << "HMM forward filter: " << r.hmm_instructions << " instructions per window (first window " << r.hmm_first_instructions
                  << "), not in the total above\n";
      std::cout << "flash " << r.flash_bytes() << " B (text " << r.text << ", data " << r.data << "); RAM " << r.ram_bytes()
                << " B (data + bss " << r.data + r.bss << ", measured peak stack " << r.stack_peak << " of " << r.stack_reserved
                << " reserved); total " << r.flash_bytes() + r.ram_bytes() << " B\n";
      std::snprintf(line, sizeof line, "estimated latency %.2f ms at %.0f MHz (assumes 1 instruction per cycle)\n\n",
                    double(r.instructions) / (o->mhz * 1e3), o->mhz);
      std::cout << line;
    }
  });
});

}  // namespace
}  // namespace pulsekd::cli
