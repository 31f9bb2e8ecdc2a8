// The pulsekd command as a user meets it: import → predict reproduces PyTorch, and bad input
// gets a one-line reason and a non-zero exit.
#include <doctest/doctest.h>

#include "tests/run_pulsekd.h"
#include "tests/shared_data.h"
#include <sys/wait.h>
#include <csignal>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "datasets/registry.h"
#include "kd/evaluate.h"
#include "models/checkpoint.h"

namespace fs = std::filesystem;
static const std::string kRef = pulsekd::testing::shared_path("reference");

using Run = pulsekd::testing::CommandResult;
static Run run(const std::string& args) { return pulsekd::testing::run_pulsekd(args); }

static std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("pulsekd_cli_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST_CASE("import-torch, info and predict reproduce the released student") {
  if (!pulsekd::testing::require_shared(kRef + "/pulse_student_fold1.pt", "the released student")) return;
  if (!pulsekd::testing::require_shared(kRef + "/kd_pulse_fold1.json", "PyTorch's outputs")) return;
  const std::string ck = tmp("student.safetensors"), out = tmp("pred.json");
  Run r = run("import-torch --arch student " + kRef + "/pulse_student_fold1.pt " + ck);
  REQUIRE(r.code == 0);
  r = run("info " + ck);
  CHECK(r.code == 0);
  CHECK(r.out.find("27241") != std::string::npos);
  r = run("info " + kRef + "/pulse_student_fold1.pt");  // a .pt is imported, not read as safetensors
  CHECK(r.code == 0);
  CHECK(r.out.find("PyTorch state_dict, imported") != std::string::npos);
  CHECK(r.out.find("27241") != std::string::npos);
  CHECK(r.out.find("3383328") != std::string::npos);  // MACs per window
  // The reference windows are already normalised, and an imported .pt carries no statistics:
  // without --normalized predict z-scores them again with their own statistics and says so.
  r = run("predict --checkpoint " + ck + " --windows " + kRef + "/kd_pulse_fold1.json --out " + out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("carries no normalisation; z-scoring the 8 windows") != std::string::npos);
  r = run("predict --normalized --checkpoint " + ck + " --windows " + kRef + "/kd_pulse_fold1.json --out " + out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("carries no normalisation") == std::string::npos);
  std::ifstream f(out), g(kRef + "/kd_pulse_fold1.json");
  auto got = nlohmann::json::parse(f), want = nlohmann::json::parse(g);
  REQUIRE(got["hr"].size() == 8);
  REQUIRE(got["dense32"].size() == 8 * 32);
  for (int i = 0; i < 8; ++i) CHECK(std::fabs(got["hr"][i].get<double>() - want["student"]["hr"][i].get<double>()) < 1e-3);
  fs::remove(ck);
  fs::remove(out);
}

TEST_CASE("bad input: clear one-line reasons and non-zero exits") {
  Run r = run("predict --checkpoint /nonexistent.safetensors --windows x.json --out y.json");
  CHECK(r.code != 0);
  CHECK(r.out.find("--checkpoint '/nonexistent.safetensors' does not exist") != std::string::npos);
  r = run("import-torch --arch robot a.pt b.safetensors");
  CHECK(r.code != 0);
  CHECK(r.out.find("--arch") != std::string::npos);
  r = run("train --model teacher --data synth --out " + tmp("x"));  // neither --fold nor --loso
  CHECK(r.code != 0);
  CHECK(r.out.find("--fold K and --loso") != std::string::npos);
  r = run("train --model teacher --data synth --fold 99 --out " + tmp("x"));
  CHECK(r.code != 0);
  CHECK(r.out.find("--fold 99") != std::string::npos);
  r = run("train --model teacher --data nosuch:thing --fold 1 --out " + tmp("x"));
  CHECK(r.code != 0);
  r = run("distill --teacher /nonexistent --kd pulse --data synth --fold 1 --epochs 1 --out " + tmp("y"));
  CHECK(r.code != 0);
  CHECK(r.out.find("/nonexistent") != std::string::npos);
  r = run("train --model teacher --data synth --fold 1 --epochs 0 --out " + tmp("z"));
  CHECK(r.code != 0);
  // a corrupt checkpoint: a text file given as safetensors
  const std::string bad = tmp("bad.safetensors");
  std::ofstream(bad) << "not a checkpoint";
  r = run("info " + bad);
  CHECK(r.code != 0);
  CHECK(r.out.find(bad) != std::string::npos);
  fs::remove(bad);
  // Numeric flags: NaN, infinity, non-numbers and out-of-range values are refused before any work,
  // naming the flag and what it expects (--lr nan used to become the default learning rate).
  const std::pair<const char*, const char*> numeric[] = {
      {"train --data synth --fold 1 --lr nan", "--lr: expected a finite number > 0, got 'nan'"},
      {"train --data synth --fold 1 --lr inf", "--lr: expected a finite number > 0, got 'inf'"},
      {"train --data synth --fold 1 --lr abc", "(not a number)"},
      {"train --data synth --fold 1 --weight-decay -1", "--weight-decay: expected a finite number >= 0"},
      {"train --data synth --fold 1 --width 1e400", "(beyond the range of a double)"},
      {"train --data synth --fold 1 --augment-motion 6", "--augment-motion: expected a number in [0, 5]"},
      {"distill --teacher x --data synth --fold 1 --temperature nan", "--temperature: expected a finite number > 0"},
      {"pipeline --data synth --laplace nan", "--laplace"},
      {"pipeline --data synth --teacher-lr -nan", "--teacher-lr"}};
  for (const auto& [args, message] : numeric) {
    INFO(args);
    r = run(std::string(args) + " --out " + tmp("num"));
    CHECK(r.code != 0);
    CHECK(r.out.find(message) != std::string::npos);
    CHECK(!fs::exists(tmp("num")));
  }
  // A run directory where a checkpoint file is expected is named as such, with its checkpoints.
  const std::string rundir = tmp("rundir");
  fs::create_directories(rundir + "/fold2");
  std::ofstream(rundir + "/fold2/best.safetensors") << "x";
  r = run("predict --checkpoint " + rundir + " --windows x.json --out y.json");
  CHECK(r.code != 0);
  CHECK(r.out.find("is a run directory; give one of its checkpoints, e.g. " + rundir + "/fold2/best.safetensors") != std::string::npos);
  r = run("info " + rundir);
  CHECK(r.out.find("is a run directory") != std::string::npos);
  fs::remove_all(rundir);
  r = run("predict --checkpoint /dev/null --windows x.json --out y.json");
  CHECK(r.out.find("is not a regular file") != std::string::npos);
  r = run("info --help");
  CHECK(r.code == 0);
  for (const char* sub : {"import-torch", "predict", "info", "train", "distill", "eval", "pipeline", "data", "baseline"}) {
    INFO(sub);
    CHECK(run(std::string(sub) + " --help").code == 0);
  }
}

TEST_CASE("usage errors: 'pulsekd: error:', exit 2, unknown commands named with a suggestion; --version") {
  Run r = run("trian --data synth");
  CHECK(r.code == 2);
  CHECK(r.out.find("pulsekd: error: unknown command 'trian' (did you mean 'train'?)") != std::string::npos);
  r = run("trian --help");  // used to print the main help and exit 0
  CHECK(r.code == 2);
  CHECK(r.out.find("did you mean 'train'") != std::string::npos);
  r = run("xyzzy");
  CHECK(r.code == 2);
  CHECK(r.out.find("unknown command 'xyzzy'") != std::string::npos);
  CHECK(r.out.find("did you mean") == std::string::npos);
  r = run("");
  CHECK(r.code == 2);
  CHECK(r.out.find("pulsekd: error: a command is required: ") != std::string::npos);
  r = run("train --data synth --fold 1 --lr nan --out " + tmp("u"));
  CHECK(r.code == 2);
  CHECK(r.out.find("pulsekd: error: --lr: expected a finite number > 0") != std::string::npos);
  r = run("train --data nosuch:thing --fold 1 --out " + tmp("u"));  // a failure of the command, not of its usage
  CHECK(r.code == 1);
  CHECK(r.out.find("pulsekd: error: ") != std::string::npos);
  r = run("--version");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("pulsekd ", 0) == 0);
  CHECK(r.out.size() > 9);
  CHECK(run("train --help").code == 0);
}

TEST_CASE("Ctrl-C during training: exit 130, a message saying how to resume, and the same command resumes") {
  const std::string dir = tmp("sigint"), out = tmp("sigint.out");
  fs::remove_all(dir);
  const std::string cmd = pulsekd::testing::pulsekd_binary() + " train --data 'synth?subjects=4&minutes=3' --fold 1 --epochs 200 --out " + dir;
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::freopen(out.c_str(), "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first finished epoch (its line in log.jsonl), then interrupt.
  for (int i = 0; i < 600 && !(fs::exists(dir + "/fold1/log.jsonl") && fs::file_size(dir + "/fold1/log.jsonl") > 0); ++i) usleep(100000);
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  std::ifstream f(out);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(text.find("interrupted in epoch") != std::string::npos);
  CHECK(text.find("run the same command again to resume from epoch") != std::string::npos);
  CHECK(fs::exists(dir + "/fold1/state.safetensors"));
  CHECK(fs::exists(dir + "/fold1/best.safetensors"));
  // Resuming says so (here ending sooner: --force, since the settings differ).
  const Run r = run("train --data 'synth?subjects=4&minutes=3' --fold 1 --epochs 3 --force --out " + dir);
  CHECK(r.code == 0);
  CHECK(r.out.find("changed settings (epochs: 200 -> 3") != std::string::npos);
  CHECK(r.out.find("resuming from epoch ") != std::string::npos);
  fs::remove_all(dir);
  fs::remove(out);
}

TEST_CASE("quantize calibrates on the checkpoint's training subjects by default, never silently on the test subject") {
  const std::string run_dir = tmp("qrun"), q = tmp("q.safetensors"), rep = tmp("q.json");
  fs::remove_all(run_dir);
  const std::string data = "'synth?subjects=4&minutes=1'";
  Run r = run("train --model student --width 0.25 --data " + data + " --fold 1 --epochs 1 --out " + run_dir);
  REQUIRE(r.code == 0);
  // the checkpoint records how it was made
  const auto lm = pulsekd::models::load_checkpoint(run_dir + "/fold1/best.safetensors");
  const nlohmann::json settings = nlohmann::json::parse(lm.metadata.at("pulsekd.settings"));
  const std::vector<std::string> train = settings["train_subjects"];
  REQUIRE(!train.empty());
  r = run("quantize --checkpoint " + run_dir + "/fold1/best.safetensors --data " + data + " --out " + q + " --report " + rep);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("the checkpoint's " + std::to_string(train.size()) + " training subjects") != std::string::npos);
  CHECK(r.out.find("warning") == std::string::npos);
  nlohmann::json j;
  std::ifstream(rep) >> j;
  CHECK(j["subjects"].size() == 4);  // evaluated on every subject, calibrated on the training ones
  // info shows how the checkpoint was made, and inspects the quantised model
  r = run("info " + run_dir + "/fold1/best.safetensors");
  CHECK(r.code == 0);
  CHECK(r.out.find("made by: training with") != std::string::npos);
  CHECK(r.out.find("train_subjects: [\"" + train.front()) != std::string::npos);
  r = run("info " + q);
  CHECK(r.code == 0);
  CHECK(r.out.find("quantised student: " + q) != std::string::npos);
  CHECK(r.out.find("pk::") != std::string::npos);  // the kernel each layer runs
  CHECK(r.out.find("MACs per window: ") != std::string::npos);
  // a checkpoint without a record (like an imported .pt) calibrates on everything, and says so
  pulsekd::models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  pulsekd::models::PulseModel m(cfg, 2);
  const std::string bare = tmp("bare.safetensors");
  pulsekd::models::save_checkpoint(bare, m, pulsekd::models::RowNorm{});
  r = run("quantize --checkpoint " + bare + " --data " + data + " --out " + q);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("warning: " + bare + " records no training subjects") != std::string::npos);
  CHECK(r.out.find("(every subject:") != std::string::npos);
  fs::remove_all(run_dir);
  for (const std::string& f : {q, rep, bare}) fs::remove(f);
}

TEST_CASE("predict --windows: strict JSON (integer shapes, numbers, bounded B) and implausible heart rates flagged") {
  // A tiny student whose output bias makes every prediction ~1e6 BPM.
  pulsekd::models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  pulsekd::models::PulseModel m(cfg, 1);
  m.find("out.bias")->value[0] = 1e6f;
  const std::string ckpt = tmp("huge.safetensors");
  pulsekd::models::save_checkpoint(ckpt, m, pulsekd::models::RowNorm{});
  int files = 0;
  const auto windows = [&](const nlohmann::json& shape, const nlohmann::json& input) {
    const std::string path = tmp("windows" + std::to_string(files++) + ".json");
    std::ofstream(path) << nlohmann::json{{"input_shape", shape}, {"input", input}}.dump();
    return path;
  };
  const nlohmann::json one_window = std::vector<double>(1024, 0.1);
  const std::string out = tmp("pred.json");
  // good input: written, and every estimate flagged (JSON list + a warning line)
  Run r = run("predict --checkpoint " + ckpt + " --windows " + windows({1, 1, 4, 256}, one_window) + " --out " + out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("warning: predict: 1 of 1 heart rates outside 20-300 BPM") != std::string::npos);
  nlohmann::json j;
  std::ifstream(out) >> j;
  CHECK(j["implausible"] == nlohmann::json::array({0}));
  fs::remove(out);
  nlohmann::json with_bool = one_window;
  with_bool[5] = true;
  const std::pair<std::string, std::string> bad[] = {
      {windows({1.5, 1, 4, 256}, one_window), "input_shape must hold 4 integers, got 1.5"},
      {windows({true, 1, 4, 256}, one_window), "input_shape must hold 4 integers, got true"},
      {windows({int64_t(1) << 62, 1, 4, 256}, one_window), "input_shape must be [B, 1, 4, 256] with 1 <= B"},
      {windows({1, 1, 4, 256}, with_bool), "'input' must hold numbers only, got true"},
      {windows({2, 1, 4, 256}, one_window), "'input' has 1024 values, input_shape needs 2048"},
      {windows({1, 1, 4}, one_window), "input_shape must be [B, 1, 4, 256]"}};
  for (const auto& [path, message] : bad) {
    INFO(message);
    r = run("predict --checkpoint " + ckpt + " --windows " + path + " --out " + out);
    CHECK(r.code != 0);
    CHECK(r.out.find(message) != std::string::npos);
    CHECK(!fs::exists(out));
  }
  fs::remove(ckpt);
  for (int k = 0; k < files; ++k) fs::remove(tmp("windows" + std::to_string(k) + ".json"));
}

TEST_CASE("pipeline end to end on a tiny synthetic set: report, JSON, CSV, plots, quantised stage, M4 firmware") {
  const std::string out = tmp("pipeline");
  Run r = run("pipeline --data 'synth?subjects=4&minutes=1.5' --teacher-epochs 1 --student-epochs 1 --track forward --out " + out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("student quantised") != std::string::npos);
  std::ifstream f(out + "/report.json");
  const auto j = nlohmann::json::parse(f);
  REQUIRE(j["stages"].size() == 5);
  CHECK(j["stages"][0]["parameters"] == 131825);
  CHECK(j["stages"][1]["parameters"] == 27241);
  CHECK(j["stages"][3]["name"] == "quantized");
  CHECK(j["stages"][4]["name"] == "tracker");
  // Each stage lists its test recording (fold 1: the first synthetic subject).
  for (auto& s : j["stages"]) CHECK(s["per_recording"].size() == 1);
  for (auto& s : j["stages"]) CHECK(std::isfinite(s["mae"].get<double>()));
  // The quantised student ran in Cortex-M4 firmware under QEMU (make test installs the tools),
  // every output equal to the host integer simulation, with its memory and instruction count.
  const auto& fw = j["firmware"];
  INFO(fw.dump());
  REQUIRE(!fw.contains("skipped"));
  CHECK(fw["core"] == "m4");
  CHECK(fw["windows"].get<int64_t>() > 0);
  CHECK(fw["mismatches_vs_host"] == 0);
  CHECK(fw["flash_bytes"].get<int64_t>() > 27241);  // at least the int8 weights
  CHECK(fw["ram_bytes"].get<int64_t>() > 0);
  CHECK(fw["instructions_per_window"].get<int64_t>() > 3383328);  // at least one per MAC
  CHECK(r.out.find("firmware (Cortex-M4") != std::string::npos);
  // --track forward: the firmware runs the HMM forward filter too, bit-exact with the host's
  // float filter and within float rounding of the host's double tracker (the quantised row).
  REQUIRE(fw.contains("hmm_forward"));
  CHECK(fw["hmm_forward"]["mismatches_vs_host"] == 0);
  CHECK(fw["hmm_forward"]["max_abs_diff_vs_host_tracker_bpm"].get<double>() < 1e-3);
  CHECK(fw["hmm_forward"]["instructions_per_window"].get<int64_t>() > 0);
  for (const char* file : {"report.txt", "report.csv", "mae_per_subject.svg", "training_curves.svg", "teacher/results.json",
                           "distilled/fold1/best.safetensors", "teacher/fold1/log.jsonl"})
    CHECK_MESSAGE(fs::exists(out + "/" + file), file);
  fs::remove_all(out);
}

TEST_CASE("export-mcu --hmm-forward writes the filter's tables with the prior fitted to --prior-data; its flags are validated") {
  const std::string model = std::string(PULSEKD_SOURCE_DIR) + "/fuzz/corpus/quant_model/student_default.safetensors";
  const std::string out = tmp("export_hmm"), spec = "'synth?subjects=3&minutes=1'";
  Run r = run("export-mcu --model " + model + " --out " + out + " --laplace 3");
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.out.find("need --hmm-forward") != std::string::npos, r.out);
  r = run("export-mcu --model " + model + " --out " + out + " --hmm-forward --prior-scale 2 --prior-data " + spec);
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.out.find("--prior-data or --prior-scale, not both") != std::string::npos, r.out);
  r = run("export-mcu --model " + model + " --out " + out + " --hmm-forward --hmm-states 1");
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.out.find("--hmm-states") != std::string::npos, r.out);
  r = run("export-mcu --model " + model + " --out " + out + " --hmm-forward --hmm-states 32 --laplace 4 --prior-data " + spec);
  REQUIRE_MESSAGE(r.code == 0, r.out);
  std::ifstream sf(out + "/schedule.json");
  const auto j = nlohmann::json::parse(sf);
  REQUIRE(j.contains("hmm"));
  CHECK(j["hmm"]["states"] == 32);
  CHECK(j["hmm"]["laplace_bpm"] == 4.0);
  const double b = pulsekd::tracking::TransitionPrior::fit(pulsekd::kd::label_traces(pulsekd::data::load_dataset("synth?subjects=3&minutes=1"))).scale_bpm;
  CHECK(j["hmm"]["prior_scale_bpm"].get<double>() == doctest::Approx(b));
  CHECK(j["hmm"]["half_width"].get<int>() < 32);
  std::ifstream hf(out + "/model_data.h"), cf(out + "/model_data.cpp");
  const std::string h((std::istreambuf_iterator<char>(hf)), {}), c((std::istreambuf_iterator<char>(cf)), {});
  CHECK(h.find("#define PK_HMM_STATES 32") != std::string::npos);
  CHECK(c.find("const pk_hmm pk_the_hmm = {32, ") != std::string::npos);
  fs::remove_all(out);
}
