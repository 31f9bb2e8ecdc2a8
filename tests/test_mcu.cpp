// Firmware built for Cortex-M4 (mps2-an386) and Cortex-M7 (mps2-an500) from `export-mcu`
// output, run under QEMU with semihosting on real SPC 2015 windows: every raw int32 output
// must equal the host integer simulation exactly. A reported skip (tests/shared_data.h) when the
// ARM toolchain, QEMU or ../shared is absent.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "datasets/registry.h"
#include "models/checkpoint.h"
#include "models/export_mcu.h"
#include "models/quantize.h"
#include "tests/shared_data.h"

using namespace pulsekd;
namespace fs = std::filesystem;

using pulsekd::testing::require_shared;
static const std::string kShared = pulsekd::testing::shared_dir();

// The cross toolchain, QEMU and the released `arch` with the SPC 2015 recordings.
static bool ready(const std::string& arch) {
  for (const char* t : {"arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "cmake"})
    if (!pulsekd::testing::require_tool(t)) return false;
  return require_shared(kShared + "/reference/pulse_" + arch + "_fold1.pt", "the released " + arch) &&
         require_shared(kShared + "/data/ieee-spc2015", "the SPC 2015 recordings");
}

TEST_CASE("student firmware on QEMU Cortex-M4 and M7 equals the host integer simulation exactly") {
  if (!ready("student")) return;
  auto model = models::import_torch(kShared + "/reference/pulse_student_fold1.pt", "student");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015");
  const std::vector<float> x = models::normalised_windows(ws, models::RowNorm{});
  // calibrate on every 8th window (fast), run 3 windows of every recording on the MCU
  std::vector<float> cal;
  for (int64_t i = 0; i < ws.size(); i += 8) cal.insert(cal.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
  std::vector<float> sel;
  for (const auto& s : ws.subjects)
    for (int64_t j : {int64_t(0), s.num_windows / 2, s.num_windows - 1}) {
      const int64_t i = s.first_window + j;
      sel.insert(sel.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
    }
  const int64_t n = int64_t(sel.size() / 1024);
  // default bits (int16 conv activations: reference loops) on both cores; all-int8 (the DSP
  // SXTB16/SMLAD variants for conv, modality conv and dense) on both cores too
  for (const std::string config : {"default", "int8"})
  for (const std::string target : {"m4", "m7"}) {
    CAPTURE(config);
    CAPTURE(target);
    models::QuantOptions qo;
    qo.bits = config == "default" ? models::default_layer_bits() : std::map<std::string, int>{{"input", 16}};
    qo.default_bits = config == "default" ? 16 : 8;
    qo.gptq = false;  // rounding does not matter here; keeps the test fast
    const models::QuantModel q = models::quantize_model(*model, models::RowNorm{}, cal.data(), int64_t(cal.size() / 1024), qo);
    const std::vector<int16_t> qin = models::quantize_input(q, sel.data(), n);
    const std::vector<int32_t> host = models::simulate(q, qin.data(), n);
    const fs::path dir = fs::path(PULSEKD_BINARY_DIR) / ("test_mcu_" + config + "_" + target);
    fs::remove_all(dir);
    const models::McuExport e = models::export_mcu(q, target, dir.string(), PULSEKD_SOURCE_DIR);
    CHECK(e.arena_bytes > 0);
    REQUIRE(std::system(("sh " + (dir / "build.sh").string() + " > " + (dir / "build.log").string() + " 2>&1").c_str()) == 0);
    {
      std::ofstream f(dir / "input.bin", std::ios::binary);
      f.write(reinterpret_cast<const char*>(qin.data()), std::streamsize(qin.size() * 2));
    }
    const std::string machine = target == "m4" ? "mps2-an386" : "mps2-an500";
    const std::string cmd = "cd " + dir.string() + " && timeout 60 qemu-system-arm -M " + machine +
                            " -display none -monitor none -serial none -semihosting-config enable=on,target=native"
                            " -kernel build/fw.elf > qemu.log 2>&1";
    const int rc = std::system(cmd.c_str());
    CHECK(rc == 0);
    std::ifstream f(dir / "output.bin", std::ios::binary);
    std::vector<int32_t> mcu(size_t(n), 0);
    f.read(reinterpret_cast<char*>(mcu.data()), std::streamsize(n * 4));
    REQUIRE(f.gcount() == std::streamsize(n * 4));
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) mismatches += mcu[size_t(i)] != host[size_t(i)];
    CHECK(mismatches == 0);
    std::ifstream sz(dir / "build" / "size.txt");
    std::string all((std::istreambuf_iterator<char>(sz)), std::istreambuf_iterator<char>());
    MESSAGE(config << " " << target << ": " << n << " windows bit-exact; arena " << e.arena_bytes << " B\n" << all);
    // the per-model dispatch picked the DSP kernels: int16 (packed weights) or int8
    const std::string src = [&] {
      std::ifstream m(dir / "model_data.cpp");
      return std::string((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
    }();
    if (config == "default") {
      CHECK(src.find("pk::conv_dsp16<int16_t>") != std::string::npos);
      CHECK(src.find("pk::conv_col16<int16_t>") != std::string::npos);
      CHECK(src.find("pk::modality_dsp16<int8_t>") != std::string::npos);
    } else {
      CHECK(src.find("pk::conv_dsp8p<int8_t>") != std::string::npos);
    }
    CHECK(src.find("_ref<") == std::string::npos);
    if (config == "default" && target == "m4") {
      // the instruction counter (QEMU TCG plugin) and mcu-report on the exported directory
      models::McuReportOptions ro;
      ro.cores = {"m4"};
      const std::vector<models::McuCoreReport> rs = models::mcu_report(dir.string(), ro);
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
      // the helper `pulsekd pipeline` uses: build + run, outputs equal the host simulation
      CHECK(models::mcu_run(dir.string(), "m4", qin.data(), 3) == std::vector<int32_t>(host.begin(), host.begin() + 3));
      MESSAGE("mcu-report m4: " << rs[0].instructions << " instructions per window, flash " << rs[0].flash_bytes() << " B, RAM "
                                << rs[0].ram_bytes() << " B");
    }
  }
}

TEST_CASE("teacher firmware on QEMU Cortex-M7: every output equals the host integer simulation; mcu-report per layer") {
  if (!ready("teacher")) return;
  auto model = models::import_torch(kShared + "/reference/pulse_teacher_fold1.pt", "teacher");
  const data::WindowSet ws = data::load_dataset("spc2015:" + kShared + "/data/ieee-spc2015?extra=0");
  const std::vector<float> x = models::normalised_windows(ws, models::RowNorm{});
  // calibrate on every 16th window (the teacher's float forward is 26 M MACs); run the middle
  // window of every recording on the MCU
  std::vector<float> cal, sel;
  for (int64_t i = 0; i < ws.size(); i += 16) cal.insert(cal.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
  for (const auto& s : ws.subjects) {
    const int64_t i = s.first_window + s.num_windows / 2;
    sel.insert(sel.end(), x.begin() + i * 1024, x.begin() + (i + 1) * 1024);
  }
  const int64_t n = int64_t(sel.size() / 1024);
  models::QuantOptions qo;
  qo.bits = models::default_layer_bits("teacher");
  qo.gptq = false;  // rounding does not matter for host-vs-firmware equality; keeps the test fast
  const models::QuantModel q = models::quantize_model(*model, models::RowNorm{}, cal.data(), int64_t(cal.size() / 1024), qo);
  REQUIRE(q.arch == "teacher");
  const std::vector<int16_t> qin = models::quantize_input(q, sel.data(), n);
  const std::vector<int32_t> host = models::simulate(q, qin.data(), n);
  const fs::path dir = fs::path(PULSEKD_BINARY_DIR) / "test_mcu_teacher_m7";
  fs::remove_all(dir);
  const models::McuExport e = models::export_mcu(q, "m7", dir.string(), PULSEKD_SOURCE_DIR);
  const std::vector<int32_t> mcu = models::mcu_run(dir.string(), "m7", qin.data(), n);
  int mismatches = 0;
  for (int64_t i = 0; i < n; ++i) mismatches += mcu[size_t(i)] != host[size_t(i)];
  CHECK(mismatches == 0);
  MESSAGE("teacher m7: " << n << " windows, " << n - mismatches << " bit-exact; arena " << e.arena_bytes << " B, const data "
                         << e.weight_bytes << " B");
  // mcu-report on the first of those windows: every layer counted, the counts add up
  {
    std::ofstream f(dir / "input.bin", std::ios::binary);
    f.write(reinterpret_cast<const char*>(qin.data()), std::streamsize(qin.size() * 2));
  }
  models::McuReportOptions ro;
  ro.cores = {"m7"};
  const std::vector<models::McuCoreReport> rs = models::mcu_report(dir.string(), ro);
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
