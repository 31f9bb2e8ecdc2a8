// Runs under mpiexec (dist/dist.h, docs/DISTRIBUTED.md): LOSO train and distill, and a sweep,
// on 2 and 3 ranks write the files of a single process; ranks given different arguments fail
// with a clear error; a rank killed mid-run, then the same command again, completes with the
// files of a single process. Tiny synthetic data, seconds each. Skipped (reported) only when
// MPI was not found at configure time.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "engine/safetensors.h"
#include "tests/run_pulsekd.h"
#include "tests/shared_data.h"

using namespace pulsekd;
using namespace pulsekd::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

#ifdef PULSEKD_MPIEXEC
const std::string kMpiexec = PULSEKD_MPIEXEC;
#else
const std::string kMpiexec;
#endif

bool need_mpi() {
  if (!kMpiexec.empty()) return true;
  return skip_or_fail("MPI was not found when this build was configured (scripts/install-deps installs Open MPI; configure again)");
}

std::string fresh_dir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / ("pulsekd_dist_" + name + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The command run in `dir` (so that paths recorded in the files are the same relative ones),
// by one process (ranks 0) or by mpiexec with that many ranks; stdout + stderr captured.
CommandResult run_in(const std::string& dir, int ranks, const std::string& args) {
  const std::string launcher = ranks > 0 ? kMpiexec + " --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " " : "";
  return run_shell("cd '" + dir + "' && " + launcher + pulsekd_binary() + " " + args + " 2>&1");
}

// Drops every "seconds" (measured wall time, different in any two runs) from a JSON value.
void drop_seconds(json& j) {
  if (j.is_object()) {
    j.erase("seconds");
    for (auto& [k, v] : j.items()) drop_seconds(v);
  } else if (j.is_array()) {
    for (auto& v : j) drop_seconds(v);
  }
}

// A file's content with the measured times taken out: JSON and JSON lines without "seconds";
// a training state without its history's seconds; every other file as it is.
std::string comparable(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string ext = p.extension().string();
  if (ext == ".json") {
    json j = json::parse(ss.str());
    drop_seconds(j);
    return j.dump();
  }
  if (ext == ".jsonl") {
    std::string out, line;
    for (std::istringstream in(ss.str()); std::getline(in, line);) {
      json j = json::parse(line);
      drop_seconds(j);
      out += j.dump() + "\n";
    }
    return out;
  }
  if (p.filename() == "state.safetensors") {
    SafeTensorsFile st = load_safetensors(p.string());
    json meta = json::parse(st.metadata.at("pulsekd.train_state"));
    drop_seconds(meta);
    st.metadata["pulsekd.train_state"] = meta.dump();
    const std::vector<uint8_t> b = serialize_safetensors(st);
    return std::string(b.begin(), b.end());
  }
  return ss.str();
}

// Every file under a and b: the same names, the same content up to measured times, and the
// files that hold no time (checkpoints, test.json, CSV) identical byte for byte.
void check_same_tree(const std::string& a, const std::string& b) {
  std::set<std::string> fa, fb;
  for (auto& e : fs::recursive_directory_iterator(a))
    if (e.is_regular_file()) fa.insert(fs::relative(e.path(), a).string());
  for (auto& e : fs::recursive_directory_iterator(b))
    if (e.is_regular_file()) fb.insert(fs::relative(e.path(), b).string());
  std::string only;  // names in one tree only
  for (const std::string& f : fa) only += fb.count(f) ? "" : " " + a + "/" + f;
  for (const std::string& f : fb) only += fa.count(f) ? "" : " " + b + "/" + f;
  INFO("files in one tree only:" << only);
  CHECK(fa == fb);
  REQUIRE(!fa.empty());
  int raw_same = 0;
  for (const std::string& f : fa) {
    if (!fb.count(f)) continue;
    INFO("file " << f);
    CHECK(comparable(fs::path(a) / f) == comparable(fs::path(b) / f));
    const std::string name = fs::path(f).filename().string();
    if (name == "best.safetensors" || name == "test.json" || fs::path(f).extension() == ".csv") {
      std::ifstream x(fs::path(a) / f, std::ios::binary), y(fs::path(b) / f, std::ios::binary);
      CHECK(std::string(std::istreambuf_iterator<char>(x), {}) == std::string(std::istreambuf_iterator<char>(y), {}));
      ++raw_same;
    }
  }
  CHECK(raw_same > 0);
}

const std::string kData = "'synth:3?subjects=4&minutes=1'";
const std::string kTrain = "train --model student --width 0.25 --depth 1 --data " + kData + " --loso --batch 64 --out t";

}  // namespace

TEST_CASE("LOSO train and distill on 2 and 3 ranks write the files of one process") {
  if (!need_mpi()) return;
  const std::string distill = "distill --teacher t --kd pulse,hard --student-width 0.125 --depth 1 --data " + kData +
                              " --loso --epochs 2 --batch 64 --out d";
  const std::string ref = fresh_dir("loso_ref");
  REQUIRE(run_in(ref, 0, kTrain + " --epochs 3").code == 0);
  REQUIRE(run_in(ref, 0, distill).code == 0);
  for (int ranks : {2, 3}) {
    INFO(ranks << " ranks");
    const std::string dir = fresh_dir("loso_np" + std::to_string(ranks));
    const CommandResult t = run_in(dir, ranks, kTrain + " --epochs 3");
    INFO(t.out);
    REQUIRE(t.code == 0);
    // Rank 0 alone prints the table (once) and writes results.json.
    CHECK(t.out.find("mean of subjects") == t.out.rfind("mean of subjects"));
    CHECK(t.out.find("results: t/results.json") != std::string::npos);
    const CommandResult d = run_in(dir, ranks, distill);
    INFO(d.out);
    REQUIRE(d.code == 0);
    check_same_tree(ref, dir);
    fs::remove_all(dir);
  }
  fs::remove_all(ref);
}

TEST_CASE("a sweep on 2 and 3 ranks writes the files of one process, teachers before their students") {
  if (!need_mpi()) return;
  const std::string config = fresh_dir("sweep_cfg") + "/sweep.json";
  std::ofstream(config) << R"({
    "data": "synth:4", "synth": {"subjects": 3, "minutes": 1},
    "teachers": [{"arch": "student", "width": 0.5, "depth": 1, "name": "ta"}, {"arch": "student", "width": 0.375, "depth": 1, "name": "tb"}],
    "students": [{"arch": "student", "width": [0.125, 0.25], "depth": 1}],
    "strategies": ["none", "hard"], "folds": [1, 2], "seeds": [0],
    "train": {"epochs": 1, "batch": 64, "patience": 1}
  })";
  const std::string ref = fresh_dir("sweep_ref");
  REQUIRE(run_in(ref, 0, "sweep --config " + config + " --out s").code == 0);
  for (int ranks : {2, 3}) {
    INFO(ranks << " ranks");
    const std::string dir = fresh_dir("sweep_np" + std::to_string(ranks));
    const CommandResult r = run_in(dir, ranks, "sweep --config " + config + " --out s");
    INFO(r.out);
    REQUIRE(r.code == 0);
    // Rank 0 counts every run once: 4 teacher runs and 12 points (a student before its teacher
    // would have failed: the teacher's checkpoint would be missing).
    CHECK(r.out.find("sweep: 12 point(s) run, 0 skipped as done; 4 teacher run(s), 0 reused") != std::string::npos);
    CHECK(r.out.find("sweep [16/16]") != std::string::npos);
    check_same_tree(ref, dir);
    fs::remove_all(dir);
  }
  fs::remove_all(ref);
  fs::remove_all(fs::path(config).parent_path());
}

TEST_CASE("ranks that disagree on the arguments, or a command that does not share its work, are refused") {
  if (!need_mpi()) return;
  const std::string dir = fresh_dir("mismatch");
  const std::string base = pulsekd_binary() + " " + kTrain + " --epochs 1";
  const CommandResult r = run_shell("cd '" + dir + "' && " + kMpiexec + " --allow-run-as-root --oversubscribe -np 1 " + base +
                                    " --seed 0 : -np 1 " + base + " --seed 1 2>&1");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find("pulsekd: error: the 2 ranks were started with different arguments") != std::string::npos);
  CHECK(r.out.find("rank 1 runs 'pulsekd " + kTrain.substr(0, 5)) != std::string::npos);
  CHECK(r.out.find("--seed 1'") != std::string::npos);
  CHECK(!fs::exists(dir + "/t"));  // refused before anything was written
  const CommandResult info = run_in(dir, 2, "info --arch student");
  CHECK(info.code == 2);
  CHECK(info.out.find("'info' does not run on 2 MPI ranks: only train, distill and sweep") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("ranks that load different data (another copy of the files on one node) are refused") {
  if (!need_mpi()) return;
  const std::string spc = shared_path("data/ieee-spc2015");
  if (!require_shared(spc + "/Training_data/DATA_12_TYPE02.mat", "the SPC 2015 recordings")) return;
  // The same relative --data on both ranks; rank 1's directory lacks recordings 10-12.
  const std::string dir = fresh_dir("data_mismatch");
  fs::create_directories(dir + "/a");
  fs::create_symlink(spc, dir + "/a/d");
  fs::create_directories(dir + "/b/d/Training_data");
  for (auto& e : fs::directory_iterator(spc + "/Training_data"))
    if (e.path().filename().string().rfind("DATA_0", 0) == 0)
      fs::create_symlink(e.path(), fs::path(dir + "/b/d/Training_data") / e.path().filename());
  const std::string cmd = pulsekd_binary() + " train --model student --data spc2015:d --loso --epochs 1 --out t";
  const CommandResult r = run_shell(kMpiexec + " --allow-run-as-root --oversubscribe -np 1 -wdir " + dir + "/a " + cmd + " : -np 1 -wdir " +
                                    dir + "/b " + cmd + " 2>&1");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("error: the ranks loaded different data: rank 0 has spc2015:d: 13 subjects") != std::string::npos);
  CHECK(r.out.find("rank 1 has spc2015:d: 9 subjects") != std::string::npos);
  CHECK(!fs::exists(dir + "/a/t"));
  fs::remove_all(dir);
}

TEST_CASE("a rank killed mid-run: the same command again redoes only what was unfinished") {
  if (!need_mpi()) return;
  const std::string args = kTrain + " --epochs 40 --patience 40";
  const std::string ref = fresh_dir("kill_ref");
  REQUIRE(run_in(ref, 0, args).code == 0);
  const std::string dir = fresh_dir("kill");
  // mpiexec in the background; as soon as a fold has saved its first epoch, one rank gets SIGKILL.
  const pid_t launcher = fork();
  REQUIRE(launcher >= 0);
  if (launcher == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    const int log = open("run.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, 1), dup2(log, 2);
    const std::string cmd = kMpiexec + " --allow-run-as-root --oversubscribe -np 2 " + pulsekd_binary() + " " + args;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto t0 = std::chrono::steady_clock::now();
  bool started = false;
  while (!started && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    for (int k = 1; k <= 4 && !started; ++k) started = fs::exists(dir + "/t/fold" + std::to_string(k) + "/state.safetensors");
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(started);
  // The ranks are mpiexec's children; the last one listed is killed.
  const CommandResult children = run_shell("pgrep -P " + std::to_string(launcher));
  std::istringstream ids(children.out);
  pid_t victim = 0;
  for (pid_t id; ids >> id;) victim = id;
  REQUIRE(victim > 0);
  CHECK(kill(victim, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(launcher, &status, 0) == launcher);
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(!fs::exists(dir + "/t/results.json"));  // the run was cut short

  const CommandResult again = run_in(dir, 2, args);
  INFO(again.out);
  REQUIRE(again.code == 0);
  CHECK(again.out.find("resuming from epoch") != std::string::npos);
  fs::remove(dir + "/run.log");
  // The same files as one uninterrupted process (a temporary of a write the kill cut short,
  // NAME.tmp.<pid>, is removed when its fold resumes); log.jsonl holds each epoch once, so no
  // finished epoch was trained again.
  check_same_tree(ref, dir);
  fs::remove_all(ref);
  fs::remove_all(dir);
}

TEST_CASE("an epoch logged but not saved (a process killed between the two) is logged once after the resume") {
  const std::string dir = fresh_dir("trim");
  const std::string args = "train --model student --width 0.25 --depth 1 --data " + kData + " --fold 1 --batch 64 --epochs 2 --out t";
  REQUIRE(run_in(dir, 0, args).code == 0);
  const auto lines = [&] {
    std::ifstream f(dir + "/t/fold1/log.jsonl");
    std::vector<int> epochs;
    for (std::string l; std::getline(f, l);) epochs.push_back(json::parse(l).at("epoch"));
    return epochs;
  };
  REQUIRE(lines() == std::vector<int>{1, 2});
  // The line of an epoch 3 whose state was never written, then the run continued to 3 epochs.
  std::ofstream(dir + "/t/fold1/log.jsonl", std::ios::app) << R"({"epoch":3,"label":"killed","seconds":0})" << "\n";
  const CommandResult r = run_in(dir, 0, args.substr(0, args.find("--epochs")) + "--epochs 3 --out t --force");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(lines() == std::vector<int>{1, 2, 3});
  std::ifstream f(dir + "/t/fold1/log.jsonl");
  CHECK(std::string(std::istreambuf_iterator<char>(f), {}).find("killed") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("the temporary of an atomic write cut short by a kill is removed when its fold resumes") {
  const std::string dir = fresh_dir("stale_tmp");
  const std::string args = "train --model student --width 0.25 --depth 1 --data " + kData + " --fold 2 --batch 64 --epochs 1 --out t";
  REQUIRE(run_in(dir, 0, args).code == 0);
  std::ofstream(dir + "/t/fold2/log.jsonl.tmp.4242") << "partial";
  std::ofstream(dir + "/t/fold2/notes.tmp.txt") << "a user's file, not a temporary";
  REQUIRE(run_in(dir, 0, args).code == 0);
  CHECK(!fs::exists(dir + "/t/fold2/log.jsonl.tmp.4242"));
  CHECK(fs::exists(dir + "/t/fold2/notes.tmp.txt"));
  fs::remove_all(dir);
}
