// Usage errors found deep inside the library reach the user in the user's terms (issue #18:
// "internal messages leak"): the flag or data at fault is named, never an internal function.
// Exit 1: errors found while running (2 is for flags the parser refuses).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "run_pulsekd.h"

namespace fs = std::filesystem;
using pulsekd::testing::run_pulsekd;

namespace {

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("pulsekd_test_user_errors_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  return d.string();
}

const std::string kTiny = "train --model student --width 0.25 --epochs 1 --batch 32 --threads 1 ";

}  // namespace

TEST_CASE("a fold with nothing to train on names the fold and the data, not Normalizer::fit") {
  const auto r = run_pulsekd(kTiny + "--data 'synth?subjects=2&minutes=1' --fold 1 --out " + scratch("fold"));
  CHECK(r.code == 1);
  CHECK(r.out.find("fold 1: 'synth?subjects=2&minutes=1' has 2 subjects") != std::string::npos);
  CHECK(r.out.find("give more subjects") != std::string::npos);
  CHECK(r.out.find("Normalizer") == std::string::npos);
  const auto loso = run_pulsekd(kTiny + "--data 'synth?subjects=2&minutes=1' --loso --out " + scratch("loso"));
  CHECK(loso.code == 1);
  CHECK(loso.out.find("none is left to train on") != std::string::npos);
}

TEST_CASE("--freeze of every parameter is refused as such, not as a backward() failure") {
  const auto r = run_pulsekd(kTiny + "--data 'synth?subjects=4&minutes=1' --fold 1 --freeze c,d,o --out " + scratch("freeze"));
  CHECK(r.code == 1);
  CHECK(r.out.find("--freeze leaves no parameter to train") != std::string::npos);
  CHECK(r.out.find("backward") == std::string::npos);
}

TEST_CASE("bench refuses a batch whose training step would not fit in memory, before allocating it") {
  // The case: batch 65536 grew to 11.7 GB. With a 1 GB limit it is refused up front.
  auto r = run_pulsekd("bench --batch 65536 --steps 1 --max-memory-gb 1");
  CHECK(r.code == 2);
  CHECK(r.out.find("teacher training step of batch 65536 needs about") != std::string::npos);
  CHECK(r.out.find("--max-memory-gb") != std::string::npos);
  // A batch that fits runs.
  r = run_pulsekd("bench --batch 4 --steps 1 --max-memory-gb 1 --json");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("train_windows_per_s") != std::string::npos);
}
