// The released PULSE fold-1 checkpoints, imported without Python, must reproduce PyTorch's
// outputs in ../shared/reference/kd_pulse_fold1.json within 1e-4 (hr and dense32).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "tests/shared_data.h"

using namespace pulsekd;
namespace fs = std::filesystem;

static const std::string kRef = pulsekd::testing::shared_path("reference");

// PyTorch's outputs and the released checkpoint of `arch`.
static bool have_reference(const std::string& arch) {
  using pulsekd::testing::require_shared;
  return require_shared(kRef + "/kd_pulse_fold1.json", "PyTorch's outputs") &&
         require_shared(kRef + "/pulse_" + arch + "_fold1.pt", "the released " + arch);
}

static void check_parity(const std::string& arch) {
  std::ifstream f(kRef + "/kd_pulse_fold1.json");
  const nlohmann::json ref = nlohmann::json::parse(f);
  const auto shape = ref["input_shape"].get<std::vector<int64_t>>();
  REQUIRE(shape == std::vector<int64_t>{8, 1, 4, 256});
  const auto input = ref["input"].get<std::vector<float>>();
  auto model = models::import_torch(kRef + "/pulse_" + arch + "_fold1.pt", arch);
  CHECK(model->num_parameters() == (arch == "teacher" ? 131825 : 27241));
  std::vector<float> hr, dense;
  model->predict(input.data(), 8, hr, &dense);
  const auto want_hr = ref[arch]["hr"].get<std::vector<float>>();
  REQUIRE(ref[arch]["dense32"].size() == 8 * 32);  // row-major (8, 32)
  const auto want_dense = ref[arch]["dense32"].get<std::vector<float>>();
  double worst_hr = 0, worst_dense = 0;
  for (int i = 0; i < 8; ++i) {
    worst_hr = std::max(worst_hr, std::fabs(double(hr[i]) - want_hr[i]));
    for (int j = 0; j < 32; ++j) worst_dense = std::max(worst_dense, std::fabs(double(dense[i * 32 + j]) - want_dense[size_t(i * 32 + j)]));
  }
  MESSAGE(arch << ": max |hr - torch| = " << worst_hr << ", max |dense32 - torch| = " << worst_dense);
  // Measured with the AVX-512, AVX2 and scalar kernels alike (PULSEKD_ISA): teacher 1.53e-5
  // (hr and dense32), student 7.6e-6, i.e. 1-2 float ulps; 1e-4 leaves a 6x margin.
  CHECK(worst_hr < 1e-4);
  CHECK(worst_dense < 1e-4);
}

TEST_CASE("teacher fold 1 reproduces PyTorch") {
  if (!have_reference("teacher")) return;
  check_parity("teacher");
}

TEST_CASE("student fold 1 reproduces PyTorch") {
  if (!have_reference("student")) return;
  check_parity("student");
}

TEST_CASE("published parameter counts and MACs") {
  models::ModelConfig t, s;
  s.arch = "student";
  models::PulseModel teacher(t), student(s);
  CHECK(teacher.num_parameters() == 131825);
  CHECK(student.num_parameters() == 27241);
  // PULSE.md: ~26.3 M and ~3.38 M MACs per window
  CHECK(std::abs(teacher.macs_per_window() - 26.3e6) < 0.1e6);
  CHECK(std::abs(student.macs_per_window() - 3.38e6) < 0.05e6);
}
