// Building exported firmware and running it under QEMU (docs/MCU.md): the only place pulsekd
// starts external programs (cmake, the ARM toolchain, qemu-system-arm, cc for the plugin).
#include "deploy/qemu_runner.h"

#include "datasets/dataset.h"
#include "engine/atomic_file.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace pulsekd::deploy {

namespace fs = std::filesystem;

namespace {

std::string sh_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}
void run_or_throw(const std::string& cmd, const std::string& what, const fs::path& log) {
  if (std::system(("( " + cmd + " ) > " + sh_quote(log.string()) + " 2>&1").c_str()) != 0)
    throw std::runtime_error("mcu-report: " + what + " failed; see " + log.string());
}
std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

std::string firmware_tools_missing() {
  for (const char* tool : {"arm-none-eabi-gcc", "qemu-system-arm", "cmake", "cc"})
    if (std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) != 0)
      return std::string(tool) + " not found (scripts/install-deps installs it)";
  return "";
}

std::vector<McuCoreReport> mcu_report(const std::string& dir_in, const McuReportOptions& o) {
  const fs::path dir = fs::absolute(dir_in);
  if (!fs::is_regular_file(dir / "schedule.json") || !fs::is_regular_file(dir / "CMakeLists.txt"))
    throw std::runtime_error("mcu-report: '" + dir.string() + "' is not a directory written by pulsekd export-mcu (no schedule.json)");
  const nlohmann::json s = nlohmann::json::parse(read_text(dir / "schedule.json"));
  const int rows = s.at("rows"), rl = s.at("row_layers");
  const auto& lj = s.at("layers");
  const int nl = int(lj.size());
  const bool hmm = s.contains("hmm");  // one more marker per window, after the filter step
  // One window of int16 input.
  const size_t win_bytes = size_t(rows) * data::kWindow * 2;  // int16 samples
  std::vector<char> win(win_bytes, 0);
  const fs::path in = o.input.empty() ? dir / "input.bin" : fs::path(o.input);
  // A window file that is given (or DIR/input.bin when present) must hold a whole window: a
  // missing or short one is an error, never silently replaced by the synthetic window.
  if (!o.input.empty() || fs::exists(in)) {
    const std::string name = (o.input.empty() ? "'" : "--input '") + in.string() + "'";
    const std::string expect = std::to_string(win_bytes) + " bytes (one window: " + std::to_string(rows) + " rows x " +
                               std::to_string(data::kWindow) + " int16 samples)";
    std::error_code ec;
    if (!fs::is_regular_file(in, ec)) throw std::runtime_error("mcu-report: " + name + " does not exist or is not a file; expected " + expect);
    const uintmax_t have = fs::file_size(in, ec);
    if (ec || have < win_bytes)
      throw std::runtime_error("mcu-report: " + name + " holds " + std::to_string(ec ? 0 : have) + " bytes; expected at least " + expect);
    std::ifstream f(in, std::ios::binary);
    if (!f.read(win.data(), std::streamsize(win_bytes))) throw std::runtime_error("mcu-report: cannot read " + name);
  } else {
    uint32_t x = 12345;  // deterministic synthetic window inside the int8 range
    for (size_t i = 0; i < win_bytes / 2; ++i) {
      x = x * 1664525u + 1013904223u;
      const int16_t v = int16_t(int(x >> 24) - 128);
      std::memcpy(win.data() + 2 * i, &v, 2);
    }
  }
  const fs::path tools = dir / "pulsekd" / "mcu" / "tools" / "qemu_count";
  const fs::path work = dir / "report";
  fs::create_directories(work);
  const fs::path plugin = work / "libpk_count.so";
  run_or_throw("cc -shared -fPIC -O2 -o " + sh_quote(plugin.string()) + " " + sh_quote((tools / "pk_count.c").string()),
               "building the QEMU plugin", work / "plugin.log");
  std::vector<McuCoreReport> out;
  for (const std::string& core : o.cores) {
    if (core != "m4" && core != "m7") throw std::runtime_error("mcu-report: core must be m4 or m7, got '" + core + "'");
    const fs::path w = work / core;
    fs::create_directories(w);
    run_or_throw("cmake -S " + sh_quote(dir.string()) + " -B " + sh_quote((w / "build").string()) +
                     " -DCMAKE_TOOLCHAIN_FILE=" + sh_quote((dir / "pulsekd/mcu/cmake/arm-none-eabi.cmake").string()) +
                     " -DPK_CORE=" + core + " -DPK_OPT=" + sh_quote(o.opt) + " && cmake --build " + sh_quote((w / "build").string()),
                 "firmware build for " + core, w / "build.log");
    {  // with the HMM filter the window runs twice: the second step is the steady-state one
      std::string runs(win.data(), win.size());  // (1 or 2 windows)
      if (hmm) runs += runs;
      write_file_atomic((w / "input.bin").string(), runs.data(), runs.size());
    }
    fs::remove(w / "marks.txt");
    const std::string machine = core == "m4" ? "mps2-an386" : "mps2-an500";
    run_or_throw("cd " + sh_quote(w.string()) + " && timeout 120 qemu-system-arm -M " + machine +
                     " -display none -monitor none -serial none -semihosting-config enable=on,target=native -kernel build/fw.elf"
                     " -plugin " + sh_quote(plugin.string()) + ",out=marks.txt",
                 "QEMU run on " + core, w / "qemu.log");
    std::vector<int64_t> marks;
    {
      std::istringstream ms(read_text(w / "marks.txt"));
      std::string tag;
      int64_t v;
      while (ms >> tag >> v)
        if (tag == "mark") marks.push_back(v);
    }
    const size_t per_window = size_t(rows) * size_t(1 + rl) + size_t(nl - rl) + 1;  // the inference's markers
    const size_t expect = hmm ? 2 * (per_window + 1) : per_window;
    if (marks.size() != expect)
      throw std::runtime_error("mcu-report: " + core + ": " + std::to_string(marks.size()) + " marker calls, expected " +
                               std::to_string(expect) + " (see " + (w / "marks.txt").string() + ")");
    McuCoreReport r;
    r.core = core;
    for (auto& L : lj)
      r.layers.push_back({L.at("name"), L.at("op"), L.at("kernel_fn"), L.at("runs").get<int>(),
                          L.at("macs").get<int64_t>() * L.at("runs").get<int64_t>(), 0});
    size_t m = 0;
    auto step = [&]() { return marks[m + 1] - marks[m]; };
    for (int row = 0; row < rows; ++row) {
      r.input_copy_instructions += step(), ++m;
      for (int l = 0; l < rl; ++l) r.layers[size_t(l)].instructions += step(), ++m;
    }
    for (int l = rl; l < nl; ++l) r.layers[size_t(l)].instructions += step(), ++m;
    r.instructions = marks[per_window - 1] - marks.front();
    if (hmm) {
      r.hmm_first_instructions = marks[per_window] - marks[per_window - 1];
      r.hmm_instructions = marks[2 * per_window + 1] - marks[2 * per_window];
    }
    std::istringstream sz(read_text(w / "build" / "size.txt"));
    std::string line;
    while (std::getline(sz, line)) {
      std::istringstream ls(line);
      std::string sec;
      int64_t bytes = 0;
      if (!(ls >> sec >> bytes)) continue;
      if (sec == ".text" || sec == ".rodata" || sec == ".ARM.exidx") r.text += bytes;
      else if (sec == ".data") r.data += bytes;
      else if (sec == ".bss") r.bss += bytes;
      else if (sec == ".stack") r.stack_reserved += bytes;
    }
    r.stack_peak = std::atoll(read_text(w / "stack.txt").c_str());
    out.push_back(r);
  }
  return out;
}

std::vector<int32_t> mcu_run(const std::string& dir_in, const std::string& core, const int16_t* qin, int64_t n,
                             const std::string& opt, std::vector<float>* hmm_hr) {
  if (core != "m4" && core != "m7") throw std::runtime_error("mcu_run: core must be m4 or m7, got '" + core + "'");
  const fs::path dir = fs::absolute(dir_in);
  if (!fs::is_regular_file(dir / "schedule.json"))
    throw std::runtime_error("mcu_run: '" + dir.string() + "' is not a directory written by pulsekd export-mcu");
  const nlohmann::json s = nlohmann::json::parse(read_text(dir / "schedule.json"));
  const int64_t per = int64_t(s.at("rows").get<int>()) * data::kWindow;
  const fs::path w = dir / ("run-" + core);
  fs::create_directories(w);
  run_or_throw("cmake -S " + sh_quote(dir.string()) + " -B " + sh_quote((w / "build").string()) +
                   " -DCMAKE_TOOLCHAIN_FILE=" + sh_quote((dir / "pulsekd/mcu/cmake/arm-none-eabi.cmake").string()) +
                   " -DPK_CORE=" + core + " -DPK_OPT=" + sh_quote(opt) + " && cmake --build " + sh_quote((w / "build").string()),
               "firmware build for " + core, w / "build.log");
  write_file_atomic((w / "input.bin").string(), qin, size_t(n * per * 2));
  fs::remove(w / "output.bin");
  fs::remove(w / "hmm.bin");
  const std::string machine = core == "m4" ? "mps2-an386" : "mps2-an500";
  run_or_throw("cd " + sh_quote(w.string()) + " && timeout 600 qemu-system-arm -M " + machine +
                   " -display none -monitor none -serial none -semihosting-config enable=on,target=native -kernel build/fw.elf",
               "QEMU run on " + core, w / "qemu.log");
  std::vector<int32_t> out(static_cast<size_t>(n));
  std::ifstream f(w / "output.bin", std::ios::binary);
  f.read(reinterpret_cast<char*>(out.data()), std::streamsize(n * 4));
  if (f.gcount() != std::streamsize(n * 4))
    throw std::runtime_error("mcu_run: " + core + " firmware wrote " + std::to_string(f.gcount() / 4) + " of " +
                             std::to_string(n) + " outputs; see " + (w / "qemu.log").string());
  const bool has_hmm = s.contains("hmm");
  if (has_hmm != (hmm_hr != nullptr))
    throw std::logic_error("mcu_run: the firmware in " + dir.string() + (has_hmm ? " runs" : " does not run") +
                           " the HMM filter, but the caller expects " + (has_hmm ? "no filtered output" : "one"));
  if (hmm_hr) {
    hmm_hr->assign(size_t(n), 0.0f);
    std::ifstream fh(w / "hmm.bin", std::ios::binary);
    fh.read(reinterpret_cast<char*>(hmm_hr->data()), std::streamsize(n * 4));
    if (fh.gcount() != std::streamsize(n * 4))
      throw std::runtime_error("mcu_run: " + core + " firmware wrote " + std::to_string(fh.gcount() / 4) + " of " +
                               std::to_string(n) + " filtered heart rates; see " + (w / "qemu.log").string());
  }
  return out;
}

}  // namespace pulsekd::deploy
