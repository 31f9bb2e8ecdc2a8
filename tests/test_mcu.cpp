// Firmware built for Cortex-M4 (mps2-an386) and Cortex-M7 (mps2-an500) from `export-mcu`
// output, run under QEMU with semihosting on EVERY SPC 2015 window (all 1,875 for the student,
// all 1,768 of extra=0 for the teacher): every raw int32 output must equal the host runtime's
// (deploy::HostModel) with the reference loops exactly; the firmware's DSP kernels share nothing
// with them but the requantisation rules. The windows of one firmware go through a few QEMU processes started
// together (each runs a batch of windows), overlapping the host simulation and the next builds.
// A reported skip (tests/shared_data.h) when the ARM toolchain, QEMU or ../shared is absent.
#include <doctest/doctest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "datasets/registry.h"
#include "models/checkpoint.h"
#include "deploy/calibrate.h"
#include "deploy/codegen.h"
#include "deploy/host_runtime.h"
#include "deploy/qemu_runner.h"
#include "tests/shared_data.h"

using namespace pulsekd;
namespace fs = std::filesystem;

using pulsekd::testing::require_shared;
static const std::string kShared = pulsekd::testing::shared_dir();

// The cross toolchain, QEMU and the released `arch` with the SPC 2015 recordings: a reported
// skip (tests/shared_data.h) when one is missing.
static bool ready(const std::string& arch) {
  for (const char* t : {"arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "cmake"})
    if (!pulsekd::testing::require_tool(t)) return false;
  return require_shared(kShared + "/reference/pulse_" + arch + "_fold1.pt", "the released " + arch) &&
         require_shared(kShared + "/data/ieee-spc2015", "the SPC 2015 recordings");
}

// Starts `sh -c cmd` and returns at once with the child's pid (-1 if it could not start).
static pid_t spawn_shell(const std::string& cmd) {
  pid_t pid = -1;
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  if (posix_spawnp(&pid, "sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) return -1;
  return pid;
}

// QEMU runs of one firmware on consecutive batches of windows (dir/batch<i>: input.bin, output.bin).
struct FirmwareRuns {
  fs::path dir;
  std::vector<pid_t> pids;
  std::vector<int64_t> first;  // (batches + 1) window offsets
};

// Writes the windows qin (n, 4, 256) in `batches` parts and starts QEMU on `elf` for each part.
static FirmwareRuns start_firmware(const fs::path& elf, const std::string& target, const fs::path& dir,
                                   const std::vector<int16_t>& qin, int64_t n, int batches) {
  FirmwareRuns r{dir, {}, {}};
  const std::string machine = target == "m4" ? "mps2-an386" : "mps2-an500";
  for (int b = 0; b <= batches; ++b) r.first.push_back(n * b / batches);
  for (int b = 0; b < batches; ++b) {
    const fs::path w = dir / ("batch" + std::to_string(b));
    fs::remove_all(w);
    fs::create_directories(w);
    std::ofstream(w / "input.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(qin.data() + r.first[size_t(b)] * 1024),
               std::streamsize((r.first[size_t(b) + 1] - r.first[size_t(b)]) * 1024 * 2));
    r.pids.push_back(spawn_shell("cd " + w.string() + " && timeout 900 qemu-system-arm -M " + machine +
                                 " -display none -monitor none -serial none -semihosting-config enable=on,target=native"
                                 " -kernel " + elf.string() + " > qemu.log 2>&1"));
  }
  return r;
}

// Waits for every batch (each must exit 0) and returns the outputs of all windows in order.
static std::vector<int32_t> finish_firmware(const FirmwareRuns& r) {
  std::vector<int32_t> out(size_t(r.first.back()), 0);
  for (size_t b = 0; b < r.pids.size(); ++b) {
    CAPTURE(r.dir.string());
    CAPTURE(b);
    int status = -1;
    REQUIRE(r.pids[b] > 0);
    REQUIRE(waitpid(r.pids[b], &status, 0) == r.pids[b]);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    const int64_t nb = r.first[b + 1] - r.first[b];
    std::ifstream f(r.dir / ("batch" + std::to_string(b)) / "output.bin", std::ios::binary);
    f.read(reinterpret_cast<char*>(out.data() + r.first[b]), std::streamsize(nb * 4));
    CHECK(f.gcount() == std::streamsize(nb * 4));
  }
  return out;
}

static int64_t count_mismatches(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  REQUIRE(a.size() == b.size());
  int64_t m = 0;
  for (size_t i = 0; i < a.size(); ++i) m += a[i] != b[i];
  return m;
}

// Dispatch checks on the generated layer table: the DSP kernels were chosen, no reference loop.
static void check_dsp_dispatch(const fs::path& dir, const std::string& config) {
  std::ifstream m(dir / "model_data.cpp");
  const std::string src((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
  if (config == "default") {
    CHECK(src.find("pk::conv_dsp16<int16_t>") != std::string::npos);
    CHECK(src.find("pk::conv_col16<int16_t>") != std::string::npos);
    CHECK(src.find("pk::modality_dsp16<int8_t>") != std::string::npos);
  } else {
    CHECK(src.find("pk::conv_dsp8p<int8_t>") != std::string::npos);
  }
  CHECK(src.find("_ref<") == std::string::npos);
}

// mcu-report (the QEMU instruction-counting plugin) on an exported M4 directory: every layer
// counted, the counts add up to the total.
static void check_mcu_report_m4(const fs::path& dir) {
  deploy::McuReportOptions ro;
  ro.cores = {"m4"};
  const std::vector<deploy::McuCoreReport> rs = deploy::mcu_report(dir.string(), ro);
  REQUIRE(rs.size() == 1);
  int64_t sum = rs[0].input_copy_instructions;
  for (auto& L : rs[0].layers) {
    CHECK(L.instructions > 0);
    sum += L.instructions;
  }
  CHECK(sum <= rs[0].instructions);
  CHECK(sum >= rs[0].instructions - 200);  // the loop glue between markers only
  CHECK(rs[0].flash_bytes() > 0);
  CHECK(rs[0].stack_peak > 0);
  MESSAGE("mcu-report m4: " << rs[0].instructions << " instructions per window, flash " << rs[0].flash_bytes() << " B, RAM "
                            << rs[0].ram_bytes() << " B");
}

TEST_CASE("student firmware on QEMU Cortex-M4 and M7 equals the host integer simulation on every SPC 2015 window") {
  if (!ready("student")) return;
  auto model = models::import_torch(kShared + "/reference/pulse_student_fold1.pt", "student");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015");
  const std::vector<float> x = deploy::normalised_windows(ws, models::RowNorm{});  // (n, 4, 256)
  // calibrate on every 8th window (fast); run every window of every recording on the MCU
  std::vector<float> cal;  // (n / 8, 4, 256)
  for (int64_t i = 0; i < ws.size(); i += 8) cal.insert(cal.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
  const int64_t n = ws.size();
  // default bits (int16 DSP kernels) and all-int8 (SXTB16/SMLAD int8 kernels), each on both
  // cores: the four firmwares run concurrently while the next one is quantised and built
  struct Run {
    std::string config, target;
    fs::path dir;
    int64_t arena_bytes;
    std::vector<int32_t> host;  // (n) raw outputs of the host simulation
    FirmwareRuns fw;
  };
  std::vector<Run> runs;
  std::vector<int16_t> qin_default;  // (n, 4, 256) for mcu_run below
  for (const std::string config : {"default", "int8"}) {
    CAPTURE(config);
    deploy::QuantOptions qo;
    qo.bits = config == "default" ? deploy::default_layer_bits() : std::map<std::string, int>{{"input", 16}};
    qo.default_bits = config == "default" ? 16 : 8;
    qo.gptq = false;  // rounding does not matter here; keeps the test fast
    const deploy::QuantModel q = deploy::quantize_model(*model, models::RowNorm{}, cal.data(), int64_t(cal.size() / 1024), qo);
    const std::vector<int16_t> qin = deploy::quantize_input(q, x.data(), n);  // (n, 4, 256)
    if (config == "default") qin_default = qin;
    for (const std::string target : {"m4", "m7"}) {
      CAPTURE(target);
      const fs::path dir = fs::path(PULSEKD_BINARY_DIR) / ("test_mcu_" + config + "_" + target);
      fs::remove_all(dir);
      const deploy::McuExport e = deploy::export_mcu(q, target, dir.string(), PULSEKD_SOURCE_DIR);
      CHECK(e.arena_bytes > 0);
      REQUIRE(std::system(("sh " + (dir / "build.sh").string() + " > " + (dir / "build.log").string() + " 2>&1").c_str()) == 0);
      check_dsp_dispatch(dir, config);
      runs.push_back({config, target, dir, e.arena_bytes, {}, start_firmware(dir / "build" / "fw.elf", target, dir, qin, n, 1)});
    }
    // the firmware's DSP kernels are compared with the reference loops (dsp = false), which share
    // nothing with int_dsp.h; the host runtime with the firmware's own kernels must agree too
    const std::vector<int32_t> host = deploy::HostModel(q, false).infer(qin.data(), n);  // while QEMU runs
    CHECK(deploy::HostModel(q).infer(qin.data(), n) == host);
    for (Run& r : runs)
      if (r.config == config) r.host = host;
  }
  for (const Run& r : runs) {
    CAPTURE(r.config);
    CAPTURE(r.target);
    const std::vector<int32_t> mcu = finish_firmware(r.fw);
    const int64_t mismatches = count_mismatches(mcu, r.host);
    CHECK(mismatches == 0);
    std::ifstream sz(r.dir / "build" / "size.txt");
    const std::string size_txt((std::istreambuf_iterator<char>(sz)), std::istreambuf_iterator<char>());
    MESSAGE(r.config << " " << r.target << ": " << n - mismatches << " of " << n << " windows bit-exact; arena " << r.arena_bytes
                     << " B\n" << size_txt);
  }
  const Run& m4 = runs.front();  // default bits on M4
  check_mcu_report_m4(m4.dir);
  // the helper `pulsekd pipeline` uses: build + run, outputs equal the host simulation
  CHECK(deploy::mcu_run(m4.dir.string(), "m4", qin_default.data(), 3) == std::vector<int32_t>(m4.host.begin(), m4.host.begin() + 3));
}

TEST_CASE("teacher firmware on QEMU Cortex-M7: every output equals the host integer simulation; mcu-report per layer") {
  if (!ready("teacher")) return;
  auto model = models::import_torch(kShared + "/reference/pulse_teacher_fold1.pt", "teacher");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015?extra=0");
  const std::vector<float> x = deploy::normalised_windows(ws, models::RowNorm{});
  // calibrate on every 16th window (the teacher's float forward is 26 M MACs); run every
  // window of every recording on the MCU
  std::vector<float> cal;  // (n / 16, 4, 256)
  for (int64_t i = 0; i < ws.size(); i += 16) cal.insert(cal.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
  const int64_t n = ws.size();
  deploy::QuantOptions qo;
  qo.bits = deploy::default_layer_bits("teacher");
  qo.gptq = false;  // rounding does not matter for host-vs-firmware equality; keeps the test fast
  const deploy::QuantModel q = deploy::quantize_model(*model, models::RowNorm{}, cal.data(), int64_t(cal.size() / 1024), qo);
  REQUIRE(q.arch == "teacher");
  const std::vector<int16_t> qin = deploy::quantize_input(q, x.data(), n);  // (n, 4, 256)
  const fs::path dir = fs::path(PULSEKD_BINARY_DIR) / "test_mcu_teacher_m7";
  fs::remove_all(dir);
  const deploy::McuExport e = deploy::export_mcu(q, "m7", dir.string(), PULSEKD_SOURCE_DIR);
  // mcu_run (the helper `pulsekd pipeline` uses) builds dir/run-m7 and runs the first window;
  // then that firmware runs every window in two QEMU processes while the host simulates them
  const std::vector<int32_t> first = deploy::mcu_run(dir.string(), "m7", qin.data(), 1);
  const FirmwareRuns fw = start_firmware(dir / "run-m7" / "build" / "fw.elf", "m7", dir, qin, n, 2);
  const std::vector<int32_t> host = deploy::HostModel(q, false).infer(qin.data(), n);  // (n) raw outputs, reference loops
  const std::vector<int32_t> mcu = finish_firmware(fw);
  CHECK(first == std::vector<int32_t>{host[0]});
  const int64_t mismatches = count_mismatches(mcu, host);
  CHECK(mismatches == 0);
  MESSAGE("teacher m7: " << n << " windows, " << n - mismatches << " bit-exact; arena " << e.arena_bytes << " B, const data "
                         << e.weight_bytes << " B");
  // mcu-report on the first of those windows: every layer counted, the counts add up
  {
    std::ofstream f(dir / "input.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(qin.data()), std::streamsize(1024 * 2));
  }
  deploy::McuReportOptions ro;
  ro.cores = {"m7"};
  const std::vector<deploy::McuCoreReport> rs = deploy::mcu_report(dir.string(), ro);
  REQUIRE(rs.size() == 1);
  REQUIRE(rs[0].layers.size() == q.layers.size());
  int64_t sum = rs[0].input_copy_instructions;
  for (auto& L : rs[0].layers) {
    CHECK(L.instructions > 0);
    sum += L.instructions;
    MESSAGE(L.name << " (" << L.kernel_fn << "): " << L.instructions << " instructions, " << L.macs << " MACs");
  }
  CHECK(sum <= rs[0].instructions);
  CHECK(sum >= rs[0].instructions - 200);
  CHECK(rs[0].flash_bytes() > e.weight_bytes);
  CHECK(rs[0].flash_bytes() < 4 * 1024 * 1024);  // mps2-an500 flash
  CHECK(rs[0].stack_peak > 0);
  MESSAGE("mcu-report m7: " << rs[0].instructions << " instructions per window, flash " << rs[0].flash_bytes() << " B, RAM "
                            << rs[0].ram_bytes() << " B (stack peak " << rs[0].stack_peak << ")");
}
