// One output path for every file pulsekd writes (engine/atomic_file.h, docs/RELIABILITY.md
// "Output files"): checked writes that leave the old file on failure, refusal of non-regular
// targets, symbolic links written through, `-` for standard output, export-mcu's empty-directory
// rule, no empty run directories after a failure, and mcu-report's checked --input.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/atomic_file.h"
#include "kd/fileutil.h"
#include "models/checkpoint.h"
#include "tests/file_size_limit.h"
#include "tests/run_pulsekd.h"

namespace fs = std::filesystem;
using pulsekd::AtomicWriteError;
using pulsekd::testing::CommandResult;
using pulsekd::testing::pulsekd_binary;
using pulsekd::testing::run_pulsekd;
using pulsekd::testing::run_shell;

namespace {

const std::string kDir = (fs::temp_directory_path() / ("pulsekd_outputs_" + std::to_string(::getpid()))).string();

std::string at(const std::string& name) {
  fs::create_directories(kDir);
  return kDir + "/" + name;
}
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
// No temporary (NAME.tmp.<pid>) left beside the files of dir.
bool no_temporaries(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (has(e.path().filename().string(), ".tmp.")) return false;
  return true;
}

// A character device of our own (the /dev/full device, 1:7) for commands to be refused: a
// regression that replaced it would then replace this node, never the system's /dev/full.
// Empty when the process may not create device nodes (not root).
std::string own_device() {
  const std::string node = at("dev_full");
  ::unlink(node.c_str());
  return ::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0 ? node : "";
}

// pulsekd under a file-size limit of 0 bytes: every write to a regular file fails (EFBIG), as on
// a full disk; SIGXFSZ is ignored so the write returns the error instead of killing the process.
CommandResult run_full_disk(const std::string& args) {
  return run_shell("trap '' XFSZ; ulimit -f 0; exec " + pulsekd_binary() + " " + args + " 2>&1");
}
// pulsekd with its standard output alone captured (stderr dropped).
CommandResult run_stdout(const std::string& args) { return run_shell(pulsekd_binary() + " " + args + " 2>/dev/null"); }

// A tiny student checkpoint (no normalisation) and one window for predict.
struct Fixture {
  std::string ckpt = at("student.safetensors"), windows = at("windows.json");
  Fixture() {
    pulsekd::models::ModelConfig cfg;
    cfg.arch = "student";
    cfg.width = 0.25;
    pulsekd::models::PulseModel m(cfg, 3);
    pulsekd::models::save_checkpoint(ckpt, m, pulsekd::models::RowNorm{});
    put(windows, nlohmann::json{{"input_shape", {1, 1, 4, 256}}, {"input", std::vector<double>(1024, 0.1)}}.dump());
  }
};
const std::string kData = "'synth?subjects=2&minutes=1'";

}  // namespace

TEST_CASE("output_target: regular files and new paths pass; directories, devices, FIFOs, sockets and dangling links are refused") {
  const std::string file = at("plain.txt"), dir = at("a_dir"), fifo = at("a_fifo"), sock = at("a_socket");
  put(file, "x");
  CHECK(pulsekd::output_target(file) == file);
  CHECK(pulsekd::output_target(at("new.txt")) == at("new.txt"));
  fs::create_directories(dir);
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  // output_target only inspects: safe on the system's /dev/full
  CHECK_THROWS_WITH_AS(pulsekd::output_target("/dev/full"), doctest::Contains("'/dev/full' is a character device"), AtomicWriteError);
  const std::string device = own_device();
  std::vector<std::pair<std::string, std::string>> refused = {{dir, "is a directory"}, {fifo, "is a FIFO"}, {sock, "is a socket"}};
  if (!device.empty()) refused.push_back({device, "is a character device"});
  for (const auto& [path, why] : refused) {
    INFO(path);
    CHECK_THROWS_WITH_AS(pulsekd::output_target(path), doctest::Contains(("'" + path + "' " + why).c_str()), AtomicWriteError);
    CHECK_THROWS_WITH_AS(pulsekd::write_file_atomic(path, std::string("data")), doctest::Contains(why.c_str()), AtomicWriteError);
  }
  // nothing was replaced: the nodes are what they were
  struct stat st;
  CHECK((::lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));
  CHECK((::lstat(sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)));
  if (!device.empty()) CHECK((::lstat(device.c_str(), &st) == 0 && S_ISCHR(st.st_mode)));
  CHECK(fs::is_directory(dir));
  ::close(s);
  // links: to a directory or to nothing are refused too
  const std::string to_dir = at("link_to_dir"), dangling = at("link_to_nothing");
  fs::create_symlink(dir, to_dir);
  fs::create_symlink(at("missing_target"), dangling);
  CHECK_THROWS_WITH_AS(pulsekd::write_file_atomic(to_dir, std::string("d")), doctest::Contains("symbolic link to a directory"),
                       AtomicWriteError);
  CHECK_THROWS_WITH_AS(pulsekd::write_file_atomic(dangling, std::string("d")), doctest::Contains("symbolic link to a missing file"),
                       AtomicWriteError);
  CHECK(fs::is_symlink(dangling));
  CHECK(!fs::exists(at("missing_target")));
  CHECK(no_temporaries(kDir));
}

TEST_CASE("write_file_atomic: a link to a regular file is written through and kept; permissions kept; a failed write leaves the file") {
  const std::string target = at("target.json"), link = at("link.json");
  put(target, "old");
  ::chmod(target.c_str(), 0600);
  fs::remove(link);
  fs::create_symlink(target, link);
  pulsekd::write_file_atomic(link, std::string("new"));
  CHECK(fs::is_symlink(link));
  CHECK(slurp(target) == "new");
  CHECK((fs::status(target).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
  // A full disk (file-size limit): an error naming the file, the old bytes kept, no temporary.
  std::string e, e_append;
  {
    pulsekd::testing::FileSizeLimit none(0);
    try {
      pulsekd::write_file_atomic(link, std::string("newer, longer"));
    } catch (const AtomicWriteError& ex) {
      e = ex.what();
    }
    try {
      pulsekd::append_file_atomic(target, "line\n");
    } catch (const AtomicWriteError& ex) {
      e_append = ex.what();
    }
  }
  CHECK(has(e, target + " (through the link '" + link + "'): write failed at byte 0 of 13"));
  CHECK(has(e, "left unchanged"));
  CHECK(has(e_append, target + ": write failed"));
  CHECK(slurp(target) == "new");
  CHECK(no_temporaries(kDir));
  pulsekd::append_file_atomic(target, "+1\n");
  CHECK(slurp(target) == "new+1\n");
}

TEST_CASE("write_file_atomic: temporaries of writers that no longer exist are removed, those of live ones kept") {
  const std::string target = at("stale.json");
  const pid_t dead = fork();  // a process that ends at once: its pid names no process after the wait
  REQUIRE(dead >= 0);
  if (dead == 0) _exit(0);
  int st = 0;
  REQUIRE(waitpid(dead, &st, 0) == dead);
  const std::string stale = target + ".tmp." + std::to_string(dead);
  const std::string live = target + ".tmp." + std::to_string(::getppid());  // a live process: a concurrent writer
  const std::string other = at("other.json.tmp." + std::to_string(dead));  // another file's: not ours to remove
  for (const std::string& f : {stale, live, other}) put(f, "partial");
  pulsekd::write_file_atomic(target, std::string("{}\n"));
  CHECK(slurp(target) == "{}\n");
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));
  for (const std::string& f : {target, live, other}) fs::remove(f);
}

TEST_CASE("write_output: '-' is standard output, and a failing standard output is an error naming it") {
  std::cout.flush();  // doctest's own output must not meet /dev/full
  std::fflush(stdout);
  const int saved = ::dup(STDOUT_FILENO);
  const int full = ::open("/dev/full", O_WRONLY);
  REQUIRE(full >= 0);
  ::dup2(full, STDOUT_FILENO);
  std::string e;
  try {
    pulsekd::write_output("-", std::string(100, 'x'));
  } catch (const AtomicWriteError& ex) {
    e = ex.what();
  }
  ::dup2(saved, STDOUT_FILENO);
  ::close(full);
  ::close(saved);
  std::cout.clear();
  CHECK(has(e, "standard output: write failed at byte 0 of 100"));
  pulsekd::write_output(at("file.txt"), "to a file");
  CHECK(slurp(at("file.txt")) == "to a file");
}

TEST_CASE("CreatedDirs: a failure removes the empty directories it created, never one that existed or holds a file") {
  const std::string existing = at("existing"), fresh = at("fresh/a/b"), kept = at("kept");
  fs::create_directories(existing);
  fs::remove_all(at("fresh"));
  fs::remove_all(kept);
  CHECK_THROWS_AS(([&] {
                    pulsekd::kd::CreatedDirs dirs;
                    dirs.ensure(existing, "--out");
                    dirs.ensure(fresh + "/", "--out");
                    dirs.ensure(kept + "/fold1", "--out");
                    put(kept + "/fold1/state.safetensors", "s");
                    throw std::runtime_error("late failure");
                  }()),
                  std::runtime_error);
  CHECK(fs::is_directory(existing));
  CHECK(!fs::exists(at("fresh")));
  CHECK(fs::exists(kept + "/fold1/state.safetensors"));
  {  // success keeps even an empty directory it made
    pulsekd::kd::CreatedDirs dirs;
    dirs.ensure(at("fresh/ok"), "--out");
  }
  CHECK(fs::is_directory(at("fresh/ok")));
}

TEST_CASE("CLI: a full disk is an error naming the file, with a non-zero exit and the previous file intact") {
  Fixture fx;
  const std::string json = at("baseline.json"), pred = at("pred.json"), csv = at("pred.csv");
  for (const std::string& f : {json, pred}) put(f, "previous\n");
  CommandResult r = run_full_disk("baseline " + kData + " --method spectral --json " + json);
  CHECK(r.code == 1);
  CHECK(has(r.out, "pulsekd: error: " + json + ": write failed at byte 0"));
  CHECK(slurp(json) == "previous\n");
  r = run_full_disk("predict --checkpoint " + fx.ckpt + " --windows " + fx.windows + " --out " + pred);
  CHECK(r.code == 1);
  CHECK(has(r.out, "pulsekd: error: " + pred + ": write failed at byte 0"));
  CHECK(slurp(pred) == "previous\n");
  // a new file: nothing is left behind
  r = run_full_disk("predict --checkpoint " + fx.ckpt + " --windows " + fx.windows + " --out " + at("new_pred.json"));
  CHECK(r.code == 1);
  CHECK(!fs::exists(at("new_pred.json")));
  CHECK(no_temporaries(kDir));
}

TEST_CASE("CLI: outputs that are devices, FIFOs or directories are refused by name, before any work, and left as they were") {
  Fixture fx;
  const std::string fifo = at("out_fifo"), dir = at("out_dir");
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  // A reader holds the FIFO open, so a command that wrongly writes into it fails the checks
  // instead of blocking the suite.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  fs::create_directories(dir);
  const std::string predict = "predict --checkpoint " + fx.ckpt + " --windows " + fx.windows + " --out ";
  // Devices: a node of our own (never the system's /dev/full, which a regression would replace).
  const std::string device = own_device();
  std::vector<std::pair<std::string, std::string>> cases = {
      {predict + fifo, "--out: '" + fifo + "' is a FIFO"},
      {predict + dir, "--out: '" + dir + "' is a directory"},
      {"quantize --checkpoint " + fx.ckpt + " --data " + kData + " --out " + at("q.safetensors") + " --report " + fifo,
       "--report: '" + fifo + "' is a FIFO"},
      {"eval --checkpoint " + fx.ckpt + " --data " + kData + " --out -", "'-' (standard output) is not accepted"}};
  if (!device.empty()) {
    cases.push_back({"baseline " + kData + " --json " + device, "--json: '" + device + "' is a character device"});
    cases.push_back({"quantize --checkpoint " + fx.ckpt + " --data " + kData + " --out " + device, "--out: '" + device + "' is a character device"});
  }
  for (const auto& [args, message] : cases) {
    INFO(args);
    const CommandResult r = run_pulsekd(args);
    CHECK(r.code != 0);
    CHECK(has(r.out, message));
  }
  char byte;
  CHECK(::read(reader, &byte, 1) <= 0);  // nothing was written into the FIFO
  ::close(reader);
  struct stat st;
  CHECK((::lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));
  if (!device.empty()) CHECK((::lstat(device.c_str(), &st) == 0 && S_ISCHR(st.st_mode)));
  CHECK(fs::is_directory(dir));
  CHECK(fs::is_empty(dir));
  CHECK(!fs::exists(at("q.safetensors")));
  // A link to a regular file is written through: the link stays, its file gets the predictions.
  const std::string target = at("linked_pred.json"), link = at("pred_link.json");
  put(target, "old");
  fs::remove(link);
  fs::create_symlink(target, link);
  const CommandResult r = run_pulsekd(predict + link);
  CHECK(r.code == 0);
  CHECK(fs::is_symlink(link));
  CHECK(nlohmann::json::parse(slurp(target))["hr"].size() == 1);
}

TEST_CASE("CLI: '-' writes the single output file to standard output (the messages go to stderr)") {
  Fixture fx;
  CommandResult r = run_stdout("predict --checkpoint " + fx.ckpt + " --windows " + fx.windows + " --out -");
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["hr"].size() == 1);
  r = run_stdout("baseline " + kData + " --method spectral --json -");
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["subjects"].size() == 2);
  r = run_stdout("quantize --checkpoint " + fx.ckpt + " --data " + kData + " --out " + at("q1.safetensors") + " --report -");
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["subjects"].size() == 2);
  CHECK(!fs::exists("-"));
  // standard output on a full device: an error naming it, exit 1
  r = run_shell(pulsekd_binary() + " predict --checkpoint " + fx.ckpt + " --windows " + fx.windows + " --out - 2>&1 >/dev/full");
  CHECK(r.code == 1);
  CHECK(has(r.out, "pulsekd: error: standard output: write failed"));
  // any command's printed output, too
  r = run_shell(pulsekd_binary() + " info --arch student 2>&1 >/dev/full");
  CHECK(r.code == 1);
  CHECK(has(r.out, "pulsekd: error: standard output: write failed: No space left on device"));
}

TEST_CASE("CLI: export-mcu writes into a new or empty directory, refuses a non-empty one unless --force, and never leaves a truncated file") {
  Fixture fx;
  const std::string q = at("qm.safetensors"), out = at("export");
  REQUIRE(run_pulsekd("quantize --checkpoint " + fx.ckpt + " --data " + kData + " --out " + q).code == 0);
  fs::remove_all(out);
  CommandResult r = run_pulsekd("export-mcu --model " + q + " --out " + out);
  REQUIRE(r.code == 0);
  const std::string source = slurp(out + "/model_data.cpp");
  CHECK(has(source, "pk_the_model"));
  CHECK((fs::status(out + "/build.sh").permissions() & fs::perms::owner_exec) != fs::perms::none);
  put(out + "/notes.txt", "mine");
  r = run_pulsekd("export-mcu --model " + q + " --out " + out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "--out '" + out + "' is not empty"));
  CHECK(has(r.out, "--force"));
  // a full disk during a forced export: an error naming a file; every file keeps its bytes
  r = run_full_disk("export-mcu --force --model " + q + " --out " + out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "pulsekd: error: " + out + "/"));
  CHECK(has(r.out, "left unchanged"));
  CHECK(slurp(out + "/model_data.cpp") == source);
  CHECK(no_temporaries(out));
  r = run_pulsekd("export-mcu --force --model " + q + " --out " + out);
  CHECK(r.code == 0);
  CHECK(slurp(out + "/notes.txt") == "mine");
  CHECK(slurp(out + "/model_data.cpp") == source);
  put(at("export_file"), "x");
  r = run_pulsekd("export-mcu --model " + q + " --out " + at("export_file"));
  CHECK(r.code == 1);
  CHECK(has(r.out, "exists and is not a directory"));
}

TEST_CASE("CLI: a run that fails before writing anything leaves no directory it created") {
  const std::string parent = at("runs_parent"), data = "'synth?subjects=4&minutes=1'";
  fs::remove_all(parent);
  const std::string nested = parent + "/a/b";
  CommandResult r = run_pulsekd("distill --teacher " + at("no_teacher") + " --kd pulse --data " + data +
                                " --fold 1 --epochs 1 --out " + nested);
  CHECK(r.code == 1);
  CHECK(has(r.out, "no_teacher"));
  CHECK(!fs::exists(parent));
  r = run_pulsekd("train --model student --width 0.25 --init " + at("no_init.safetensors") + " --data " + data +
                  " --fold 1 --epochs 1 --out " + nested);
  CHECK(r.code == 1);
  CHECK(!fs::exists(parent));
  // a directory that existed stays
  fs::create_directories(nested);
  r = run_pulsekd("distill --teacher " + at("no_teacher") + " --kd pulse --data " + data + " --fold 1 --epochs 1 --out " + nested);
  CHECK(r.code == 1);
  CHECK(fs::is_directory(nested));
  CHECK(fs::is_empty(nested));
}

TEST_CASE("CLI: mcu-report --input that is missing or short is an error naming the file and the size expected") {
  const std::string dir = at("fake_export");
  fs::create_directories(dir);
  put(dir + "/schedule.json", R"({"rows": 4, "row_layers": 1, "layers": []})");
  put(dir + "/CMakeLists.txt", "");
  CommandResult r = run_pulsekd("mcu-report " + dir + " --input " + at("no_window.bin"));
  CHECK(r.code == 1);
  CHECK(has(r.out, "--input '" + at("no_window.bin") + "' does not exist or is not a file; expected 2048 bytes (one window: 4 rows x 256 int16 samples)"));
  put(at("short.bin"), std::string(100, '\0'));
  r = run_pulsekd("mcu-report " + dir + " --input " + at("short.bin"));
  CHECK(r.code == 1);
  CHECK(has(r.out, "--input '" + at("short.bin") + "' holds 100 bytes; expected at least 2048 bytes"));
  put(dir + "/input.bin", std::string(10, '\0'));  // the default window file, present but short
  r = run_pulsekd("mcu-report " + dir);
  CHECK(r.code == 1);
  CHECK(has(r.out, "input.bin' holds 10 bytes"));
  fs::remove_all(kDir);
}
