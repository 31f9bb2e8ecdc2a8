// A run remembers how it was made: the settings recorded in a fold's state.safetensors, and a
// resume with other settings refused (naming each difference) unless forced.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

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
