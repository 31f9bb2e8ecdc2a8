// A run remembers how it was made: the settings recorded in a fold's state.safetensors, and a
// resume with other settings refused (naming each difference) unless forced; what training
// tells the user (epoch lines, resuming, numbering) and keeps on disk (best.safetensors).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "datasets/folds.h"
#include "datasets/synth.h"
#include "engine/safetensors.h"
#include "kd/runs.h"

using namespace pulsekd;
namespace fs = std::filesystem;

namespace {

std::string error_of_run(const data::WindowSet& ws, const kd::RunSpec& spec, const std::string& dir) {
  try {
    kd::run_folds(ws, kd::select_folds(ws, 1, false), spec, dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("resume: the same settings continue; other lr, data, augmentation or init are refused unless forced") {
  data::SynthOptions so;
  so.subjects = 4;
  so.minutes = 1;
  data::WindowSet ws = data::make_synthetic(so);
  ws.source = "synth?subjects=4&minutes=1";
  kd::RunSpec spec;
  spec.model.arch = "student";
  spec.model.width = 0.25;
  spec.train.epochs = 2;
  spec.train.patience = 2;
  spec.train.batch = 32;
  spec.train.seed = 1;
  const std::string dir = (fs::temp_directory_path() / ("pulsekd_settings_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  REQUIRE(error_of_run(ws, spec, dir).empty());

  // the state records every setting, the data spec and the fold's subjects
  const SafeTensorsFile st = load_safetensors(dir + "/fold1/state.safetensors");
  REQUIRE(st.metadata.count("pulsekd.settings"));
  const nlohmann::json saved = nlohmann::json::parse(st.metadata.at("pulsekd.settings"));
  CHECK(saved["data"] == "synth?subjects=4&minutes=1");
  CHECK(saved["lr"] == spec.train.lr);
  CHECK(saved["train_subjects"].size() + saved["val_subjects"].size() == 3);
  CHECK(saved["init"] == "");

  CHECK(error_of_run(ws, spec, dir).empty());  // the same command again: resumes (finished run)

  kd::RunSpec other = spec;
  other.train.lr = 2e-3;
  std::string e = error_of_run(ws, other, dir);
  CHECK(e.find("state.safetensors") != std::string::npos);
  CHECK(e.find("lr: 0.0005 -> 0.002") != std::string::npos);
  CHECK(e.find("--force") != std::string::npos);

  other = spec;
  other.train.augment.enabled = true;
  other.train.augment.motion = 1;
  CHECK(error_of_run(ws, other, dir).find("augment: false -> {") != std::string::npos);

  data::WindowSet ws2 = ws;
  ws2.source = "synth:2?subjects=4&minutes=1";
  CHECK(error_of_run(ws2, spec, dir).find("data: \"synth?subjects=4&minutes=1\" -> \"synth:2?subjects=4&minutes=1\"") !=
        std::string::npos);

  other = spec;
  other.init_checkpoint = dir + "/fold1/best.safetensors";
  CHECK(error_of_run(ws, other, dir).find("init: \"\" -> ") != std::string::npos);

  other = spec;
  other.train.lr = 2e-3;
  other.train.epochs = other.train.patience = 3;  // one more epoch, so the state is saved again
  other.force = true;
  CHECK(error_of_run(ws, other, dir).empty());
  const SafeTensorsFile st2 = load_safetensors(dir + "/fold1/state.safetensors");
  CHECK(nlohmann::json::parse(st2.metadata.at("pulsekd.settings"))["lr"] == 2e-3);  // the new settings are recorded
  fs::remove_all(dir);
}

TEST_CASE("settings_difference names added, removed and changed keys") {
  const nlohmann::json a = {{"lr", 1}, {"gone", true}, {"same", "x"}};
  const nlohmann::json b = {{"lr", 2}, {"new", 3}, {"same", "x"}};
  const std::string d = kd::settings_difference(a, b);
  CHECK(d.find("lr: 1 -> 2") != std::string::npos);
  CHECK(d.find("new: \"(unset)\" -> 3") != std::string::npos);
  CHECK(d.find("gone: true -> (unset)") != std::string::npos);
  CHECK(d.find("same") == std::string::npos);
  CHECK(kd::settings_difference(a, a).empty());
}

namespace {

// Runs f with stderr (fd 2) redirected to a file; returns what was written.
template <class F>
std::string capture_stderr(F f) {
  const std::string path = (fs::temp_directory_path() / ("pulsekd_stderr_" + std::to_string(::getpid()))).string();
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* file = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(file), 2);
  try {
    f();
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::fclose(file);
    throw;
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(file);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  return text;
}

}  // namespace

TEST_CASE("training output: epochs from 1 everywhere, one line per epoch, 'resuming from epoch N', best.safetensors kept") {
  data::SynthOptions so;
  so.subjects = 4;
  so.minutes = 1;
  const data::WindowSet ws = data::make_synthetic(so);
  const data::Fold fold = kd::select_folds(ws, 1, false).front().fold;
  const data::Normalizer norm = data::Normalizer::fit(ws, data::windows_of(ws, fold.train));
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  const std::string dir = (fs::temp_directory_path() / ("pulsekd_output_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  kd::TrainOptions t;
  t.epochs = t.patience = 3;
  t.batch = 32;
  t.seed = 1;
  t.out_dir = dir;
  t.label = "tiny";
  t.epoch_lines = true;
  const int64_t per_epoch = data::BatchIterator(ws, data::windows_of(ws, fold.train), 32, 1, true, false).batches_per_epoch();
  t.interrupt_after_batches = per_epoch + 1;  // stopped in the second epoch
  models::PulseModel m(cfg, 1);
  const std::string first = capture_stderr([&] { CHECK_THROWS_AS(kd::train_model(m, ws, fold, norm, t), kd::Interrupted); });
  CHECK(first.find("tiny epoch 1/3 loss ") != std::string::npos);
  CHECK(first.find("tiny epoch 2/3") == std::string::npos);
  // the best weights so far are on disk although the run stopped
  REQUIRE(fs::exists(dir + "/best.safetensors"));
  CHECK(models::load_checkpoint(dir + "/best.safetensors").metadata.at("pulsekd.best_epoch") == "1");
  std::ifstream log(dir + "/log.jsonl");
  std::string line;
  REQUIRE(std::getline(log, line));
  CHECK(nlohmann::json::parse(line)["epoch"] == 1);
  CHECK(nlohmann::json::parse(line)["best_epoch"] == 1);

  t.interrupt_after_batches = -1;
  models::PulseModel m2(cfg, 1);
  kd::TrainResult r;
  const std::string second = capture_stderr([&] { r = kd::train_model(m2, ws, fold, norm, t); });
  CHECK(second.find("tiny: resuming from epoch 2 of 3") != std::string::npos);
  CHECK(second.find("tiny epoch 2/3") != std::string::npos);
  CHECK(second.find("tiny epoch 3/3") != std::string::npos);
  REQUIRE(r.history.size() == 3);
  for (int e = 0; e < 3; ++e) CHECK(r.history[size_t(e)].epoch == e + 1);
  CHECK(r.best_epoch >= 1);
  CHECK(r.best_epoch <= 3);
  fs::remove_all(dir);
}
