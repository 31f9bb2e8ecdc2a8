// Crash tests: the pulsekd binary, run as a child process, is killed with SIGKILL while it writes
// its outputs (train, distill, sweep, quantize, export-mcu), then the same command is run again.
// The outputs must then equal those of an uninterrupted run byte for byte, and right after the
// kill nothing already saved may be lost and no partial file may sit at a final path.
// Deterministic kills: at every rename(2) the command makes (tests/kill_child.h run_traced), i.e.
// inside every atomic write, in turn. Plus one kill when a file appears (polling).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "tests/kill_child.h"

namespace fs = std::filesystem;
using pulsekd::testing::ChildRun;
using pulsekd::testing::kill_when;
using pulsekd::testing::run_to_end;
using pulsekd::testing::run_traced;

namespace {

const std::string kWork = (fs::temp_directory_path() / ("pulsekd_crash_" + std::to_string(::getpid()))).string();
const std::string kLog = kWork + "/child.log";
const std::string kData = "synth?subjects=4&minutes=1";

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A write's temporary (engine/atomic_file.cpp): NAME.tmp.<pid>.
bool is_temporary(const std::string& name) {
  static const std::regex tmp(R"(.*\.tmp\.[0-9]+$)");
  return std::regex_match(name, tmp);
}

// Wall-clock durations are the only thing two uninterrupted runs write differently: every
// "seconds" value (per epoch in log.jsonl and the state's history, per run in results.json and
// the sweep's result files) reads as 0. In a safetensors file only the JSON header is masked;
// the tensors' bytes are compared as they are (the header's padding follows its length).
std::string mask_durations(const std::string& text) {
  static const std::regex secs(R"((\\?"seconds\\?"\s*:\s*)[-+0-9.eE]+)");
  return std::regex_replace(text, secs, "${1}0");
}

std::string comparable(const fs::path& p) {
  const std::string b = read_bytes(p);
  const std::string ext = p.extension().string();
  if (ext == ".json" || ext == ".jsonl") return mask_durations(b);
  if (ext != ".safetensors" || b.size() < 8) return b;
  uint64_t n = 0;  // little-endian header length
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
  if (n > b.size() - 8) return b;
  std::string header = b.substr(8, size_t(n));
  header.erase(header.find_last_not_of(' ') + 1);  // padded with spaces to a multiple of 8 bytes
  return "header " + mask_durations(header) + "\ndata " + b.substr(8 + size_t(n));
}

// Every entry under dir: directories as such, files as their permission bits and comparable bytes.
using Snapshot = std::map<std::string, std::string>;
Snapshot snapshot(const std::string& dir) {
  Snapshot s;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) {
      s[rel] = "directory";
    } else {
      std::ostringstream mode;
      mode << std::oct << (int(e.status().permissions()) & 0777);
      s[rel] = "mode " + mode.str() + "\n" + comparable(e.path());
    }
  }
  return s;
}

// "" when equal, else the paths that differ.
std::string difference(const Snapshot& want, const Snapshot& got) {
  std::string d;
  for (auto& [k, v] : want)
    if (!got.count(k)) d += "  missing: " + k + "\n";
    else if (got.at(k) != v) d += "  differs: " + k + "\n";
  for (auto& [k, v] : got)
    if (!want.count(k)) d += "  extra: " + k + "\n";
  return d;
}

// A file at a final path must be whole: a safetensors file loads, JSON parses, each line of a
// JSON-lines log parses. Returns what is wrong, or "".
std::string incomplete(const fs::path& p) {
  const std::string ext = p.extension().string();
  try {
    if (ext == ".safetensors") pulsekd::load_safetensors(p.string());
    if (ext == ".json") nlohmann::json::parse(read_bytes(p)).is_discarded();
    if (ext == ".jsonl") {
      std::istringstream lines(read_bytes(p));
      for (std::string line; std::getline(lines, line);) nlohmann::json::parse(line).is_discarded();
    }
  } catch (const std::exception& e) {
    return p.string() + ": " + e.what();
  }
  return "";
}

// Right after a kill at the rename of `killed_at` (the last of `renamed`): every target renamed
// before it is still there and whole, so is every other final file, and the interrupted write
// left its temporary beside its target (the kill came inside that write).
void check_after_kill(const std::string& dir, const ChildRun& k) {
  REQUIRE(!k.renamed.empty());
  const std::string killed_at = k.renamed.back();
  for (size_t i = 0; i + 1 < k.renamed.size(); ++i) {
    INFO("saved before the kill: " << k.renamed[i]);
    CHECK(fs::is_regular_file(k.renamed[i]));
  }
  bool temporary = false;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().string();
    if (is_temporary(name)) {
      temporary = temporary || name.rfind(killed_at + ".tmp.", 0) == 0;
      continue;
    }
    const std::string bad = incomplete(e.path());
    CHECK_MESSAGE(bad.empty(), bad);
  }
  CHECK_MESSAGE(temporary, "no temporary of " << killed_at);
}

// One command: an uninterrupted run, then for each rename k it makes: a run killed at the k-th
// rename and a rerun, compared with the uninterrupted run. Then a run killed when `poll_for`
// (under dir) appears, and a rerun. `dir` holds every output of the command; a command that
// writes into an existing directory gets it created empty.
void crash_everywhere(const std::vector<std::string>& args, const std::string& dir, bool make_dir, const std::string& poll_for) {
  const auto reset = [&] {
    fs::remove_all(dir);
    if (make_dir) fs::create_directories(dir);
  };
  reset();
  const ChildRun whole = run_traced(args, kLog, 0);
  REQUIRE(whole.exit_code == 0);
  REQUIRE(whole.renamed.size() >= 2);
  const Snapshot want = snapshot(dir);
  for (auto& [path, content] : want) REQUIRE(!is_temporary(path));
  for (size_t k = 1; k <= whole.renamed.size(); ++k) {
    INFO("killed at rename " << k << " of " << whole.renamed.size() << ": " << whole.renamed[k - 1]);
    reset();
    const ChildRun killed = run_traced(args, kLog, k);
    REQUIRE(killed.killed);
    CHECK(killed.renamed == std::vector<std::string>(whole.renamed.begin(), whole.renamed.begin() + long(k)));
    check_after_kill(dir, killed);
    REQUIRE(run_to_end(args, kLog) == 0);
    const std::string d = difference(want, snapshot(dir));
    CHECK_MESSAGE(d.empty(), "after the rerun, against the uninterrupted run:\n" << d);
  }
  reset();
  const ChildRun polled = kill_when(args, kLog, [&] { return fs::exists(dir + "/" + poll_for); });
  // Timing-dependent, so only a warning: the child may end before the poll sees the file (it has
  // not on this machine; the kills at each rename above are the deterministic part).
  WARN_MESSAGE(polled.killed, "the run ended before " << poll_for << " was seen: not killed");
  REQUIRE(run_to_end(args, kLog) == 0);
  const std::string d = difference(want, snapshot(dir));
  CHECK_MESSAGE(d.empty(), "after the rerun, against the uninterrupted run:\n" << d);
}

struct WorkDir {
  WorkDir() {
    fs::remove_all(kWork);
    fs::create_directories(kWork);
  }
  ~WorkDir() { fs::remove_all(kWork); }
};

}  // namespace

TEST_CASE("train killed inside every write, rerun: the files of an uninterrupted run") {
  WorkDir w;
  crash_everywhere({"train", "--model", "student", "--width", "0.25", "--data", kData, "--fold", "1", "--epochs", "3", "--out",
                    kWork + "/run"},
                   kWork + "/run", false, "fold1/state.safetensors");
}

TEST_CASE("distill (PULSE + FitNets: the adapter is in the state) killed inside every write, rerun: identical files") {
  WorkDir w;
  const std::string teacher = kWork + "/teacher";
  REQUIRE(run_to_end({"train", "--model", "student", "--width", "0.5", "--data", kData, "--fold", "1", "--epochs", "1", "--out", teacher},
                     kLog) == 0);
  crash_everywhere({"distill", "--teacher", teacher, "--kd", "pulse,fitnet", "--student-width", "0.25", "--data", kData, "--fold", "1",
                    "--epochs", "3", "--out", kWork + "/run"},
                   kWork + "/run", false, "fold1/state.safetensors");
}

TEST_CASE("sweep killed inside every write, rerun: identical files") {
  WorkDir w;
  const std::string config = kWork + "/sweep.json";
  std::ofstream(config) << R"({"data": "synth:4", "synth": {"subjects": 3, "minutes": 1},
    "teachers": [{"arch": "student", "width": 0.5, "depth": 1, "name": "tiny-teacher"}],
    "students": [{"arch": "student", "width": 0.25, "depth": 1}],
    "strategies": ["none", "pulse"], "folds": [1], "seeds": [0],
    "train": {"epochs": 2, "batch": 64, "patience": 2}})";
  crash_everywhere({"sweep", "--config", config, "--out", kWork + "/sweep"}, kWork + "/sweep", false,
                   "teachers/tiny-teacher/seed0-fold1.json");
}

TEST_CASE("quantize and export-mcu killed inside every write, rerun: identical files") {
  WorkDir w;
  const std::string run = kWork + "/run", q = kWork + "/q";
  REQUIRE(run_to_end({"train", "--model", "student", "--width", "0.25", "--data", kData, "--fold", "1", "--epochs", "1", "--out", run},
                     kLog) == 0);
  crash_everywhere({"quantize", "--checkpoint", run + "/fold1/best.safetensors", "--data", kData, "--out", q + "/model.safetensors",
                    "--report", q + "/report.json"},
                   q, true, "model.safetensors");
  // export-mcu reads the quantised model: keep one outside the directories the cases reset.
  const std::string model = kWork + "/model.safetensors";
  fs::copy_file(q + "/model.safetensors", model);
  crash_everywhere({"export-mcu", "--model", model, "--target", "m4", "--out", kWork + "/export"}, kWork + "/export", false,
                   "model_data.cpp");
}
