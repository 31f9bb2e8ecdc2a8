// Workflows for unseen data: --all / --val-data training, eval on another spec with per-window
// CSV, HMM post-processing, and predict on a raw recording (CSV or MAT) with and without labels.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/recording.h"
#include "datasets/registry.h"
#include "run_pulsekd.h"
#include "tests/shared_data.h"

namespace fs = std::filesystem;
using pulsekd::testing::run_pulsekd;

namespace {

const double kPi = 3.14159265358979323846;

// A 40 s recording at `rate` Hz: PPG a pulse at `bpm`, ACC gravity on z plus a 2.2 Hz arm swing.
void write_csv_recording(const std::string& path, int rate, double bpm, double seconds = 40) {
  std::ofstream f(path);
  f << "time,ppg,acc_x,acc_y,acc_z\n";
  const int n = static_cast<int>(seconds * rate);
  for (int i = 0; i < n; ++i) {
    const double t = double(i) / rate;
    f << t << "," << std::sin(2 * kPi * bpm / 60 * t) + 0.3 * std::sin(2 * kPi * 2.2 * t) << ","
      << 0.2 * std::sin(2 * kPi * 2.2 * t) << "," << 0.05 << "," << 1.0 << "\n";
  }
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> r;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) r.push_back(c);
    rows.push_back(r);
  }
  return rows;
}

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("pulsekd_test_generalise_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

const std::string kTrain = "'synth?subjects=5&minutes=1.5'";
const std::string kTiny = "--model student --width 0.25 --epochs 2 --batch 32 --threads 1";

}  // namespace

TEST_CASE("a CSV recording becomes 8 s windows at 32 Hz with a 2 s shift, labels optional") {
  const std::string dir = scratch("csv");
  write_csv_recording(dir + "/rec.csv", 64, 84);
  pulsekd::data::RecordingOptions o;
  o.path = dir + "/rec.csv";
  o.rate_hz = 64;
  const auto ws = pulsekd::data::load_recording(o);
  CHECK(pulsekd::data::windows_in(40 * 64, 64) == 17);  // (40 - 8) / 2 + 1
  REQUIRE(ws.size() == 17);
  CHECK(std::isnan(ws.hr[0]));
  // Row 0 of window 1 starts 2 s in: the 64 -> 32 Hz resampled PPG at t = 2 s.
  const float* w1 = ws.window(1);
  const double t = 2.0;
  CHECK(w1[0] == doctest::Approx(std::sin(2 * kPi * 1.4 * t) + 0.3 * std::sin(2 * kPi * 2.2 * t)).epsilon(0.02));
  CHECK(w1[3 * 256 + 10] == doctest::Approx(1.0).epsilon(1e-3));  // gravity on z
  {
    std::ofstream l(dir + "/labels.txt");
    l << "# one BPM per window\n";
    for (int k = 0; k < 17; ++k) l << 84 << "\n";
  }
  o.labels = dir + "/labels.txt";
  CHECK(pulsekd::data::load_recording(o).hr[16] == 84.0f);
  {
    std::ofstream l(dir + "/short.txt");
    l << "84\n85\n";
  }
  o.labels = dir + "/short.txt";
  CHECK_THROWS_WITH_AS(pulsekd::data::load_recording(o), doctest::Contains("2 labels, but the recording has 17 windows"),
                       std::runtime_error);
  o.labels.clear();
  o.rate_hz = 0;
  CHECK_THROWS_WITH_AS(pulsekd::data::load_recording(o), doctest::Contains("sampling rate"), std::runtime_error);
  {
    std::ofstream b(dir + "/bad.csv");
    b << "ppg,acc_x,acc_y\n1,2,3\n";
  }
  o.path = dir + "/bad.csv";
  o.rate_hz = 64;
  CHECK_THROWS_WITH_AS(pulsekd::data::load_recording(o), doctest::Contains("must name the columns"), std::runtime_error);
  {
    std::ofstream b(dir + "/nan.csv");
    b << "ppg,acc_x,acc_y,acc_z\n1,2,3,nan\n";
  }
  o.path = dir + "/nan.csv";
  CHECK_THROWS_WITH_AS(pulsekd::data::load_recording(o), doctest::Contains("line 2, column acc_z"), std::runtime_error);
}

TEST_CASE("--all trains on every subject, --val-data validates elsewhere, eval reads the run on another spec") {
  const std::string dir = scratch("all");
  auto r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --all --out " + dir + "/alone");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(fs::is_regular_file(dir + "/alone/all/best.safetensors"));
  CHECK(r.out.find("on every subject") != std::string::npos);

  r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --all --val-data 'synth:7?subjects=2&minutes=1' --out " + dir + "/val");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(fs::is_regular_file(dir + "/val/all/best.safetensors"));

  r = run_pulsekd("distill --teacher " + dir + "/alone --kd hard --student-width 0.25 --epochs 2 --batch 32 --data " + kTrain +
                  " --all --out " + dir + "/kd");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(fs::is_regular_file(dir + "/kd/all/best.safetensors"));

  // Evaluate on an unseen set, with HMM tracking whose prior is fitted to the training labels.
  r = run_pulsekd("eval --checkpoint " + dir + "/alone --data 'synth:9?subjects=3&minutes=1' --track viterbi --prior-data " + kTrain +
                  " --post --out " + dir + "/eval");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("HMM viterbi") != std::string::npos);
  const auto rows = read_csv(dir + "/eval_windows.csv");
  REQUIRE(rows.size() > 10);
  CHECK(rows[0] == std::vector<std::string>{"subject", "window", "time_s", "truth", "pred", "pred_post"});
  CHECK(rows[1][2] == "4");
  CHECK(rows[2][2] == "6");

  // Bad combinations are refused.
  r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --val-data synth --out " + dir + "/x");
  CHECK(r.code != 0);
  CHECK(r.out.find("--val-data goes with --all") != std::string::npos);
  r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --all --fold 1 --out " + dir + "/x");
  CHECK(r.code != 0);
  CHECK(r.out.find("drop --fold") != std::string::npos);
  r = run_pulsekd("eval --checkpoint " + dir + "/alone --data synth --track kalman");
  CHECK(r.code != 0);
}

TEST_CASE("predict on a raw recording writes time and HR every 2 s, with and without labels") {
  const std::string dir = scratch("predict");
  auto r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --all --out " + dir + "/run");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  write_csv_recording(dir + "/rec.csv", 50, 96);
  const std::string ckpt = dir + "/run/all/best.safetensors";
  r = run_pulsekd("predict --checkpoint " + ckpt + " --recording " + dir + "/rec.csv --rate 50 --out " + dir + "/hr.csv");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto rows = read_csv(dir + "/hr.csv");
  REQUIRE(rows.size() == 1 + 17);
  CHECK(rows[0] == std::vector<std::string>{"time_s", "hr", "hr_post"});
  CHECK(std::stod(rows[17][0]) == doctest::Approx(36.0));
  for (size_t k = 1; k < rows.size(); ++k) CHECK(std::isfinite(std::stod(rows[k][1])));

  {
    std::ofstream l(dir + "/labels.txt");
    for (int k = 0; k < 17; ++k) l << 96 << "\n";
  }
  r = run_pulsekd("predict --checkpoint " + ckpt + " --recording " + dir + "/rec.csv --rate 50 --labels " + dir +
                  "/labels.txt --track forward --out " + dir + "/hr2.csv");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("HMM forward") != std::string::npos);
  CHECK(r.out.find("MAE") != std::string::npos);
  rows = read_csv(dir + "/hr2.csv");
  REQUIRE(rows.size() == 18);
  CHECK(rows[0].back() == "truth");
  CHECK(rows[5].back() == "96");

  r = run_pulsekd("predict --checkpoint " + ckpt + " --recording " + dir + "/rec.csv --out " + dir + "/x.csv");
  CHECK(r.code != 0);
  CHECK(r.out.find("--rate") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/x.csv"));
  r = run_pulsekd("predict --checkpoint " + ckpt + " --out " + dir + "/x.csv");
  CHECK(r.code != 0);
  CHECK(r.out.find("--windows FILE or --recording FILE") != std::string::npos);
}

TEST_CASE("predict on an IEEE SPC 2015 recording (MAT layout)") {
  const fs::path spc = pulsekd::testing::shared_path("data/ieee-spc2015");
  const fs::path rec = spc / "Training_data/DATA_01_TYPE01.mat";
  if (!pulsekd::testing::require_shared(rec.string(), "the IEEE SPC 2015 recording DATA_01")) return;
  const std::string dir = scratch("predict_mat");
  auto r = run_pulsekd("train " + kTiny + " --data " + kTrain + " --all --out " + dir + "/run");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string labels = (rec.parent_path() / "DATA_01_TYPE01_BPMtrace.mat").string();
  r = run_pulsekd("predict --checkpoint " + dir + "/run/all/best.safetensors --recording " + rec.string() + " --labels " + labels +
                  " --track viterbi --out " + dir + "/hr.csv");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto rows = read_csv(dir + "/hr.csv");
  CHECK(rows.size() == 1 + 148);  // W = floor((N/125 - 8)/2) + 1 for DATA_01
  // The truth column is the recording's own BPM trace, as the dataset loader reads it.
  const auto ws = pulsekd::data::load_dataset("spc2015:" + spc.string() + "?subjects=1");
  REQUIRE(ws.size() == 148);
  for (int w : {0, 73, 147}) CHECK(std::stod(rows[1 + w].back()) == doctest::Approx(ws.hr[w]).epsilon(1e-4));
}

TEST_CASE("pipeline --test-data trains on one spec, tests on another and prints the mean per-recording MAE") {
  const std::string dir = scratch("pipeline");
  const std::string test = "'synth:3?subjects=2&minutes=1'";
  auto r = run_pulsekd("pipeline --data " + kTrain + " --test-data " + test +
                       " --teacher-epochs 1 --student-epochs 1 --batch 32 --threads 1 --mcu none --track viterbi --fuse-tracker"
                       " --laplace 15 --out " + dir + "/p");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("tested on synth:3?subjects=2&minutes=1") != std::string::npos);
  CHECK(r.out.find("mean per-recording MAE on synth:3?subjects=2&minutes=1: ") != std::string::npos);
  CHECK(r.out.find("classical tracker (WFPV)") != std::string::npos);
  CHECK(fs::exists(dir + "/p/report.json"));
  CHECK(fs::exists(dir + "/p/quantized") == false);  // stages are teacher/, student/, distilled/ only
  CHECK(fs::exists(dir + "/p/distilled/all/best.safetensors"));

  // Bad combinations fail naming the flag, before any training.
  r = run_pulsekd("pipeline --data " + kTrain + " --fuse-tracker --out " + dir + "/bad");
  CHECK(r.code != 0);
  CHECK(r.out.find("--fuse-tracker") != std::string::npos);
  r = run_pulsekd("pipeline --data " + kTrain + " --test-data " + test + " --loso --out " + dir + "/bad");
  CHECK(r.code != 0);
  CHECK(r.out.find("--loso") != std::string::npos);
  r = run_pulsekd("pipeline --data " + kTrain + " --tracker-likelihood peaks --out " + dir + "/bad");
  CHECK(r.code != 0);
  CHECK(r.out.find("--tracker-likelihood") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/bad/teacher"));
  fs::remove_all(dir);
}
