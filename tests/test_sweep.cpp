// Capacity sweeps on a tiny synthetic set (seconds): results written atomically per point,
// teachers reused, re-running skips finished points, a partial or interrupted sweep completes
// only what is missing, the report is written, and bad configs name the offending key.
#include <doctest/doctest.h>

#include "tests/run_pulsekd.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kd/fileutil.h"
#include "kd/scaling.h"
#include "kd/sweep.h"
#include "kd/trainer.h"

using namespace pulsekd;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fresh_dir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("pulsekd_sweep_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  return d;
}

// 2 student widths × (none, hard) with one teacher, 1 fold, 1 epoch, 3 subjects of 1 minute.
json tiny_config() {
  return json::parse(R"({
    "description": "test sweep",
    "data": "synth:4",
    "synth": {"subjects": 3, "minutes": 1},
    "teachers": [{"arch": "student", "width": 0.5, "depth": 1, "name": "tiny-teacher"}],
    "students": [{"arch": "student", "width": [0.125, 0.25], "depth": 1}],
    "strategies": ["none", "hard"],
    "folds": [1],
    "seeds": [0],
    "train": {"epochs": 1, "batch": 64, "patience": 1}
  })");
}

int count_json(const std::string& dir) {
  int n = 0;
  if (!fs::is_directory(dir)) return 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".json";
  return n;
}

kd::SweepRunOptions quiet() {
  kd::SweepRunOptions o;
  o.progress = false;
  return o;
}

}  // namespace

TEST_CASE("a tiny sweep writes every point, reuses the teacher, and re-running skips everything") {
  const kd::SweepConfig c = kd::SweepConfig::parse(tiny_config().dump());
  const data::WindowSet ws = kd::load_sweep_data(c);
  CHECK(ws.subjects.size() == 3);
  const std::string dir = fresh_dir("full");
  const kd::SweepStats s1 = kd::run_sweep(c, ws, dir, quiet());
  CHECK(s1.points_total == 4);  // 2 students × (none + hard with 1 teacher)
  CHECK(s1.points_run == 4);
  CHECK(s1.teachers_run == 1);
  CHECK(count_json(dir + "/points") == 4);
  CHECK(fs::exists(dir + "/teachers/tiny-teacher/seed0-fold1.json"));
  CHECK(fs::exists(dir + "/teachers/tiny-teacher/seed0-fold1/fold1/best.safetensors"));
  const json p = json::parse(std::ifstream(dir + "/points/student-w0.25-d1__hard__tiny-teacher__fold1__seed0.json"));
  CHECK(p.at("strategy") == "hard");
  CHECK(p.at("teacher").at("id") == "tiny-teacher");
  CHECK(p.at("student").at("parameters").get<int64_t>() > 0);
  CHECK(p.at("mae").get<double>() > 0);
  const json alone = json::parse(std::ifstream(dir + "/points/student-w0.125-d1__none__alone__fold1__seed0.json"));
  CHECK(alone.at("teacher").is_null());
  // nothing left over from atomic writes
  for (auto& e : fs::directory_iterator(dir + "/points")) CHECK(e.path().string().find(".tmp") == std::string::npos);

  const auto before = fs::last_write_time(dir + "/points/student-w0.25-d1__hard__tiny-teacher__fold1__seed0.json");
  const kd::SweepStats s2 = kd::run_sweep(c, ws, dir, quiet());
  CHECK(s2.points_run == 0);
  CHECK(s2.points_skipped == 4);
  CHECK(s2.teachers_run == 0);
  CHECK(s2.teachers_skipped == 1);
  CHECK(fs::last_write_time(dir + "/points/student-w0.25-d1__hard__tiny-teacher__fold1__seed0.json") == before);

  // The report: markdown, JSON, plots; the fit with 2 sizes fixes c at 0.
  const std::string md = kd::write_sweep_report(dir, 50);
  CHECK(md.find("MAE against student parameters") != std::string::npos);
  CHECK(md.find("Arora") != std::string::npos);
  CHECK(fs::exists(dir + "/REPORT.md"));
  CHECK(fs::exists(dir + "/mae_vs_params_tiny-teacher.svg"));
  const json r = json::parse(std::ifstream(dir + "/report.json"));
  CHECK(r.at("fits").size() == 2);
  CHECK(r.at("best").size() == 2);
  CHECK(r.at("teachers").size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("a partial sweep completes only the missing points; a new grid entry runs only its points") {
  const kd::SweepConfig c = kd::SweepConfig::parse(tiny_config().dump());
  const data::WindowSet ws = kd::load_sweep_data(c);
  const std::string dir = fresh_dir("partial");
  kd::SweepRunOptions o = quiet();
  o.max_new_points = 1;
  const kd::SweepStats s1 = kd::run_sweep(c, ws, dir, o);
  CHECK(s1.points_run == 1);
  CHECK(count_json(dir + "/points") == 1);
  const kd::SweepStats s2 = kd::run_sweep(c, ws, dir, quiet());
  CHECK(s2.points_run == 3);
  CHECK(s2.points_skipped == 1);
  CHECK(s2.teachers_run == 0);  // trained in the first run already (teachers come first)
  CHECK(count_json(dir + "/points") == 4);

  // A deleted point result is re-made (its run directory resumes from state.safetensors).
  fs::remove(dir + "/points/student-w0.125-d1__hard__tiny-teacher__fold1__seed0.json");
  const kd::SweepStats s3 = kd::run_sweep(c, ws, dir, quiet());
  CHECK(s3.points_run == 1);

  // Growing the grid (a new strategy) keeps the old points; changing training settings is refused.
  json g = tiny_config();
  g["strategies"] = {"none", "hard", "pulse"};
  const kd::SweepStats s4 = kd::run_sweep(kd::SweepConfig::parse(g.dump()), ws, dir, quiet());
  CHECK(s4.points_run == 2);
  CHECK(s4.points_skipped == 4);
  json other = tiny_config();
  other["train"]["lr"] = 0.01;
  try {
    kd::run_sweep(kd::SweepConfig::parse(other.dump()), ws, dir, quiet());
    FAIL("settings change accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("train") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("an interrupted sweep resumes and loses nothing") {
  json j = tiny_config();
  j["train"]["epochs"] = 2;
  j["strategies"] = {"none"};
  j["students"][0]["width"] = 0.25;
  const kd::SweepConfig c = kd::SweepConfig::parse(j.dump());
  const data::WindowSet ws = kd::load_sweep_data(c);
  const std::string dir = fresh_dir("interrupt");
  kd::SweepRunOptions o = quiet();
  o.interrupt_after_batches = 2;  // the first run stops in its second epoch, after one state checkpoint
  CHECK_THROWS_AS(kd::run_sweep(c, ws, dir, o), kd::Interrupted);
  CHECK(count_json(dir + "/points") == 0);
  const std::string state = dir + "/runs/student-w0.25-d1__none__alone__fold1__seed0/fold1/state.safetensors";
  CHECK(fs::exists(state));
  const kd::SweepStats s = kd::run_sweep(c, ws, dir, quiet());
  CHECK(s.points_run == 1);
  const json p = json::parse(std::ifstream(dir + "/points/student-w0.25-d1__none__alone__fold1__seed0.json"));
  CHECK(p.at("epochs_run") == 2);  // the resumed run reports the whole history
  fs::remove_all(dir);
}

TEST_CASE("bad sweep configs give errors naming the key") {
  auto err = [](const json& j) {
    try {
      kd::SweepConfig::parse(j.dump());
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  auto with = [](const std::function<void(json&)>& f) {
    json j = tiny_config();
    f(j);
    return j;
  };
  CHECK(err(with([](json& j) { j["train"].erase("epochs"); })).find("train.epochs") != std::string::npos);
  CHECK(err(with([](json& j) { j["train"]["epochs"] = 0; })).find("train.epochs") != std::string::npos);
  CHECK(err(with([](json& j) { j["train"]["lr"] = "fast"; })).find("train.lr") != std::string::npos);
  CHECK(err(with([](json& j) { j["train"]["epoch"] = 3; })).find("train.epoch ") != std::string::npos);
  CHECK(err(with([](json& j) { j["strategies"] = {"none", "magic"}; })).find("strategies[1]") != std::string::npos);
  CHECK(err(with([](json& j) { j["strategies"] = {"soft"}; })).find("binned") != std::string::npos);
  CHECK(err(with([](json& j) { j.erase("teachers"); })).find("teachers") != std::string::npos);
  CHECK(err(with([](json& j) { j["students"][0]["width"] = {0.5, -1}; })).find("students[0].width") != std::string::npos);
  CHECK(err(with([](json& j) { j["students"][0]["arch"] = "vgg"; })).find("students[0].arch") != std::string::npos);
  CHECK(err(with([](json& j) { j["students"][0]["stages"] = 2; })).find("resnet only") != std::string::npos);
  CHECK(err(with([](json& j) { j["folds"] = "all"; })).find("folds") != std::string::npos);
  CHECK(err(with([](json& j) { j["folds"] = {0}; })).find("folds") != std::string::npos);
  CHECK(err(with([](json& j) { j["seeds"] = {-1}; })).find("seeds") != std::string::npos);
  CHECK(err(with([](json& j) { j["data"] = "spc2015:/x"; })).find("synth applies only") != std::string::npos);
  CHECK(err(with([](json& j) { j["kd"] = {{"temperature", -1}}; })).find("kd.temperature") != std::string::npos);
  CHECK(err(with([](json& j) { j["colour"] = 1; })).find("'colour'") != std::string::npos);
  CHECK(err(with([](json& j) { j["teachers"][0]["dense"] = 16; j["strategies"] = {"pulse"}; })).find("dense") != std::string::npos);
  CHECK(err(json::parse("[1]")).find("JSON object") != std::string::npos);
  CHECK(err(with([](json&) {})) == "(accepted)");
  // binned head with resnet teacher and PULSE students, every strategy: accepted
  CHECK(err(with([](json& j) {
          j["head"] = "binned";
          j["teachers"] = json::parse(R"([{"arch": "resnet", "width": 0.5, "depth": 1, "stages": [2, 3]}])");
          j["strategies"] = {"none", "pulse", "rkd", "hard", "soft", "dkd", "fitnet", "pulse+rkd"};
        })) == "(accepted)");
  // Integer keys take JSON integers in range only, compared without conversion: a float such as
  // 1e30 or 2^64 (which nlohmann can only hold as a float), a fraction, a string or a boolean is
  // refused naming the key; 2^64 - 1 and 2^63 (held as uint64) must not wrap to small or negative values.
  const auto epochs = [&](const json& v) { return err(with([&](json& j) { j["train"]["epochs"] = v; })); };
  CHECK(epochs(json::parse("1e30")) == "sweep config: train.epochs must be an integer in 1..100000, got 1e+30");
  CHECK(epochs(json::parse("18446744073709551616")).find("train.epochs must be an integer in 1..100000") != std::string::npos);
  CHECK(epochs(json::parse("18446744073709551615")) == "sweep config: train.epochs must be an integer in 1..100000, got 18446744073709551615");
  CHECK(epochs(json::parse("9223372036854775808")).find("train.epochs must be an integer") != std::string::npos);
  CHECK(epochs(2.5) == "sweep config: train.epochs must be an integer in 1..100000, got 2.5");
  CHECK(epochs(json::parse("3.0")).find("train.epochs must be an integer") != std::string::npos);
  CHECK(epochs("3") == "sweep config: train.epochs must be an integer in 1..100000, got \"3\"");
  CHECK(epochs(true).find("train.epochs must be an integer") != std::string::npos);
  CHECK(err(with([](json& j) { j["kd"] = {{"dkd_warmup", json::parse("-9223372036854775809")}}; })).find("kd.dkd_warmup must be an integer") !=
        std::string::npos);
  CHECK(err(with([](json& j) { j["bins"] = json::parse("4294967298"); })).find("bins must be an integer in 2..4096") != std::string::npos);
  CHECK(err(with([](json& j) { j["synth"]["subjects"] = 3.5; })).find("synth.subjects must be an integer") != std::string::npos);
  CHECK(err(with([](json& j) { j["students"][0]["depth"] = 1.5; })).find("students[0].depth") != std::string::npos);
  CHECK(err(with([](json& j) { j["train"]["lr"] = "0.1"; })).find("train.lr must be a number") != std::string::npos);
  CHECK(err(with([](json& j) { j["folds"] = {json::parse("18446744073709551617")}; })).find("folds must hold fold numbers") != std::string::npos);
  CHECK(err(with([](json& j) { j["folds"] = {json::parse("18446744073709551615")}; })).find("folds must hold fold numbers") != std::string::npos);
  CHECK(err(with([](json& j) { j["folds"] = {1.0}; })).find("folds must hold fold numbers") != std::string::npos);
  CHECK(err(with([](json& j) { j["seeds"] = {1.5}; })).find("seeds must hold integers") != std::string::npos);
  CHECK(err(with([](json& j) { j["seeds"] = {json::parse("1e30")}; })).find("seeds must hold integers") != std::string::npos);
  // every uint64 is a seed, 2^63 and above too (they used to be called negative)
  CHECK(err(with([](json& j) { j["seeds"] = {json::parse("18446744073709551615"), json::parse("9223372036854775808")}; })) == "(accepted)");
  CHECK(kd::SweepConfig::parse(with([](json& j) { j["seeds"] = {json::parse("18446744073709551615")}; }).dump()).seeds.at(0) ==
        18446744073709551615ull);
  // from a file, the message names the file and the key
  const std::string cfg = fresh_dir("cfg") + ".json";
  std::ofstream(cfg) << with([](json& j) { j["train"]["batch"] = json::parse("1e30"); }).dump();
  CHECK_THROWS_WITH(kd::SweepConfig::load(cfg), (cfg + ": sweep config: train.batch must be an integer in 1..65536, got 1e+30").c_str());
  fs::remove(cfg);
  // a fold beyond the data is refused when the sweep starts
  const kd::SweepConfig c = kd::SweepConfig::parse(with([](json& j) { j["folds"] = {5}; }).dump());
  CHECK_THROWS_WITH_AS(kd::run_sweep(c, kd::load_sweep_data(c), fresh_dir("badfold"), quiet()), doctest::Contains("fold 5"),
                       std::invalid_argument);
}

TEST_CASE("the pulsekd sweep, sweep-report and info --arch resnet commands") {
  // CMake builds pulsekd before this test (add_dependencies): a missing binary is a failure.
  REQUIRE_MESSAGE(fs::exists(pulsekd::testing::pulsekd_binary()), "pulsekd is not built in " PULSEKD_BINARY_DIR);
  auto run = [](const std::string& args) {
    const auto r = pulsekd::testing::run_pulsekd(args);
    return std::make_pair(r.code, r.out);
  };
  const std::string dir = fresh_dir("cli"), cfg = dir + ".json";
  {
    json j = tiny_config();
    j["strategies"] = {"none"};
    std::ofstream(cfg) << j.dump();
  }
  auto dry = run("sweep --config " + cfg + " --out " + dir + " --dry-run");
  CHECK(dry.first == 0);
  CHECK(dry.second.find("todo  student-w0.125-d1__none__alone__fold1__seed0") != std::string::npos);
  auto full = run("sweep --config " + cfg + " --out " + dir + " --report");
  CHECK(full.first == 0);
  CHECK(full.second.find("ETA") != std::string::npos);
  CHECK(fs::exists(dir + "/REPORT.md"));
  CHECK(fs::exists(dir + "/mae_vs_params.svg"));
  auto again = run("sweep --config " + cfg + " --out " + dir);
  CHECK(again.second.find("0 point(s) run, 2 skipped") != std::string::npos);
  auto rep = run("sweep-report " + dir + " --bootstrap 20 --print");
  CHECK(rep.first == 0);
  CHECK(rep.second.find("none (student alone)") != std::string::npos);
  {
    json j = tiny_config();
    j["train"]["batch"] = "big";
    std::ofstream(cfg) << j.dump();
  }
  auto bad = run("sweep --config " + cfg + " --out " + dir);
  CHECK(bad.first != 0);
  CHECK(bad.second.find("pulsekd: error:") != std::string::npos);
  CHECK(bad.second.find("train.batch") != std::string::npos);
  auto info = run("info --arch resnet --width 1 --depth 1");
  CHECK(info.first == 0);
  CHECK(info.second.find("62833") != std::string::npos);  // worked out in test_resnet.cpp
  CHECK(info.second.find("layer3.0") != std::string::npos);
  fs::remove_all(dir);
  fs::remove(cfg);
}

TEST_CASE("format_duration: the progress lines' durations (sweep and training ETA)") {
  CHECK(kd::format_duration(0) == "0s");
  CHECK(kd::format_duration(59.4) == "59s");
  CHECK(kd::format_duration(59.6) == "1m00s");
  CHECK(kd::format_duration(187) == "3m07s");
  CHECK(kd::format_duration(3600 * 2 + 60 * 5 + 29) == "2h05m");
  CHECK(kd::format_duration(-1) == "?");
  CHECK(kd::format_duration(std::nan("")) == "?");
  CHECK(kd::format_duration(HUGE_VAL) == "?");
}
