// Checkpoint values: a NaN or infinite weight, or a non-finite normalisation statistic, is refused
// at load and at .pt import (both go through models::from_torch_layout), naming the file and the
// tensor; before, such a checkpoint loaded and predict wrote null / eval printed nan.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "engine/safetensors.h"
#include "models/checkpoint.h"

using namespace pulsekd;
namespace fs = std::filesystem;

namespace {

std::string error_of_load(const std::string& path) {
  try {
    models::load_checkpoint(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("load_checkpoint refuses NaN / Inf weights and normalisation, naming the file and tensor") {
  const fs::path dir = fs::temp_directory_path() / ("pulsekd_ckpt_values_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  models::PulseModel m(cfg, 3);
  models::RowNorm norm;
  norm.present = true;
  const std::string good = (dir / "good.safetensors").string();
  models::save_checkpoint(good, m, norm);
  REQUIRE(error_of_load(good).empty());

  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  for (const char* tensor : {"conv11.weight", "out.bias"}) {
    for (float v : bad_values) {
      SafeTensorsFile f = load_safetensors(good);
      REQUIRE(f.tensors.count(tensor));
      std::vector<float> data = f.tensors[tensor].to_floats();
      data[data.size() / 2] = v;
      f.tensors[tensor] = SafeTensor::from_floats(f.tensors[tensor].shape, data.data());
      const std::string bad = (dir / "bad.safetensors").string();
      save_safetensors(bad, f);
      const std::string e = error_of_load(bad);
      INFO(tensor << " = " << v << ": " << e);
      CHECK(e.find(bad) != std::string::npos);
      CHECK(e.find(std::string("'") + tensor + "'") != std::string::npos);
      CHECK(e.find("non-finite") != std::string::npos);
    }
  }
  for (const char* key : {"pulsekd.norm_mean", "pulsekd.norm_std"}) {
    SafeTensorsFile f = load_safetensors(good);
    f.metadata[key] = "[0, 1e39, 0, 0]";  // beyond float: infinite once read
    const std::string bad = (dir / "bad_norm.safetensors").string();
    save_safetensors(bad, f);
    const std::string e = error_of_load(bad);
    INFO(key << ": " << e);
    CHECK(e.find(key) != std::string::npos);
    CHECK(e.find("non-finite") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("from_torch_layout (the .pt import path) refuses a non-finite value with the tensor's name") {
  models::ModelConfig cfg;
  cfg.arch = "student";
  cfg.width = 0.25;
  models::PulseModel m(cfg, 3);
  Parameter& p = *m.find("conv11.weight");
  const std::vector<int64_t> shape = models::torch_shape(m, "conv11.weight", p);
  std::vector<float> data(size_t(p.numel()), 0.5f);
  models::from_torch_layout(m, "conv11.weight", p, shape, data, "x.pt");
  CHECK(p.value[0] == doctest::Approx(0.5));
  data[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(models::from_torch_layout(m, "conv11.weight", p, shape, data, "x.pt"),
                    doctest::Contains("x.pt: tensor 'conv11.weight' holds a non-finite value"));
}
