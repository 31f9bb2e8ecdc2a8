// Ensembles of saved models (kd/ensemble.h): which checkpoints a run directory or a list names,
// the ensemble's outputs against each member's own (each with its own normalisation), head
// checks, and `pulsekd eval --ensemble` / `--fuse-tracker`.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/registry.h"
#include "kd/ensemble.h"
#include "run_pulsekd.h"

namespace fs = std::filesystem;
using namespace pulsekd;
using pulsekd::testing::run_pulsekd;

namespace {

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("pulsekd_test_ensemble_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// A tiny student with its own seed and its own row statistics, saved to path.
void save_member(const std::string& path, uint64_t seed, const std::string& head, float mean_shift) {
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  cfg.head = head;
  cfg.bins = 16;
  models::PulseModel m(cfg, seed);
  data::Normalizer n;
  for (int r = 0; r < data::kRows; ++r) {
    n.mean[r] = mean_shift * float(r + 1);
    n.std[r] = 1.0f + 0.5f * float(r);
  }
  fs::create_directories(fs::path(path).parent_path());
  models::save_checkpoint(path, m, models::RowNorm(n));
}

}  // namespace

TEST_CASE("ensemble_checkpoints: a run directory gives its fold models in fold order, then all/; lists are checked") {
  const std::string dir = scratch("names");
  for (const char* sub : {"fold10", "fold2", "all", "fold1"}) save_member(dir + "/" + sub + "/best.safetensors", 1, "regression", 0);
  fs::create_directories(dir + "/fold3");  // no best.safetensors: not a member
  fs::create_directories(dir + "/plots");
  const auto paths = kd::ensemble_checkpoints(dir);
  REQUIRE(paths.size() == 4);
  CHECK(paths[0] == dir + "/fold1/best.safetensors");
  CHECK(paths[1] == dir + "/fold2/best.safetensors");
  CHECK(paths[2] == dir + "/fold10/best.safetensors");
  CHECK(paths[3] == dir + "/all/best.safetensors");
  const std::string a = dir + "/fold1/best.safetensors", b = dir + "/fold2/best.safetensors";
  CHECK(kd::ensemble_checkpoints(a + "," + b) == std::vector<std::string>{a, b});
  CHECK_THROWS_WITH_AS(kd::ensemble_checkpoints(a), doctest::Contains("at least 2"), std::runtime_error);
  CHECK_THROWS_WITH_AS(kd::ensemble_checkpoints(a + "," + dir + "/none.safetensors"), doctest::Contains("none.safetensors' does not exist"),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(kd::ensemble_checkpoints(a + ",," + b), doctest::Contains("empty checkpoint name"), std::runtime_error);
  CHECK_THROWS_WITH_AS(kd::ensemble_checkpoints(scratch("empty")), doctest::Contains("found 0"), std::runtime_error);
}

TEST_CASE("the ensemble's heart rate is the mean of its members', each normalising the raw windows itself") {
  const std::string dir = scratch("mean");
  const std::vector<std::string> paths = {dir + "/a.safetensors", dir + "/b.safetensors", dir + "/c.safetensors"};
  for (size_t k = 0; k < paths.size(); ++k) save_member(paths[k], 10 + k, "regression", 0.3f * float(k));
  const data::WindowSet ws = data::load_dataset("synth?subjects=2&minutes=1");
  const int64_t n = 12;
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  std::vector<kd::EnsembleMember> members = kd::load_ensemble(paths, ws, idx);
  const kd::Predictor p = kd::ensemble_predictor(members);
  std::vector<float> hr;
  p.predict(ws.x.data(), n, hr, nullptr);  // raw windows (n, 4, 256)
  REQUIRE(hr.size() == size_t(n));
  std::vector<double> expected(n, 0.0);
  for (const std::string& path : paths) {
    models::LoadedModel lm = models::load_checkpoint(path);
    std::vector<float> x(ws.x.begin(), ws.x.begin() + n * data::kWindowValues), one;  // (n, 4, 256)
    lm.norm.apply(x.data(), n);
    lm.model->predict(x.data(), n, one);
    for (int64_t i = 0; i < n; ++i) expected[i] += one[i] / 3.0;
  }
  for (int64_t i = 0; i < n; ++i) CHECK(hr[i] == doctest::Approx(expected[i]).epsilon(1e-5));
  CHECK(p.bin_centres.empty());
}

TEST_CASE("binned members: the ensemble's logits are the log of the mean bin probabilities; heads must agree") {
  const std::string dir = scratch("binned");
  const std::string a = dir + "/a.safetensors", b = dir + "/b.safetensors", r = dir + "/r.safetensors";
  save_member(a, 3, "binned", 0.1f);
  save_member(b, 4, "binned", -0.2f);
  save_member(r, 5, "regression", 0);
  const data::WindowSet ws = data::load_dataset("synth?subjects=2&minutes=1");
  const int64_t n = 4;
  std::vector<kd::EnsembleMember> members = kd::load_ensemble({a, b}, ws, {0, 1, 2, 3});
  const kd::Predictor p = kd::ensemble_predictor(members);
  REQUIRE(p.bin_centres.size() == 16);
  std::vector<float> hr, logits;
  p.predict(ws.x.data(), n, hr, &logits);
  REQUIRE(logits.size() == size_t(n) * 16);
  std::vector<double> prob(size_t(n) * 16, 0.0);  // (n, 16) mean of the members' softmax
  for (const std::string& path : {a, b}) {
    models::LoadedModel lm = models::load_checkpoint(path);
    std::vector<float> x(ws.x.begin(), ws.x.begin() + n * data::kWindowValues), h, l;  // (n, 4, 256)
    lm.norm.apply(x.data(), n);
    lm.model->predict(x.data(), n, h, nullptr, &l);
    for (int64_t i = 0; i < n; ++i) {
      double z = 0;
      for (int k = 0; k < 16; ++k) z += std::exp(double(l[i * 16 + k]));
      for (int k = 0; k < 16; ++k) prob[i * 16 + k] += 0.5 * std::exp(double(l[i * 16 + k])) / z;
    }
  }
  for (size_t k = 0; k < prob.size(); ++k) CHECK(std::exp(double(logits[k])) == doctest::Approx(prob[k]).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(kd::load_ensemble({a, r}, ws, {0}), doctest::Contains("has another head"), std::runtime_error);
}

TEST_CASE("pulsekd eval --ensemble over a leave-one-subject-out run, with the tracker fused in") {
  const std::string dir = scratch("cli");
  const std::string train = "'synth?subjects=3&minutes=1'";
  auto r = run_pulsekd("train --model student --width 0.25 --epochs 1 --batch 32 --threads 1 --data " + train + " --loso --out " + dir +
                       "/run");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_pulsekd("eval --checkpoint " + dir + "/run --ensemble --data 'synth:5?subjects=2&minutes=1' --track viterbi --fuse-tracker --post --out " +
                  dir + "/ens");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("ensemble of 3 models") != std::string::npos);
  CHECK(fs::is_regular_file(dir + "/ens_windows.csv"));
  r = run_pulsekd("eval --checkpoint " + dir + "/run --ensemble --fold 1 --data " + train);
  CHECK(r.code != 0);
  CHECK(r.out.find("drop --fold") != std::string::npos);
  r = run_pulsekd("eval --checkpoint " + dir + "/run/fold1/best.safetensors --fuse-tracker --data " + train);
  CHECK(r.code != 0);
  CHECK(r.out.find("--fuse-tracker") != std::string::npos);
  r = run_pulsekd("eval --checkpoint " + dir + "/run/fold1/best.safetensors --ensemble --data " + train);
  CHECK(r.code != 0);
  CHECK(r.out.find("at least 2") != std::string::npos);
}
