// Code generation for bare-metal Cortex-M (docs/MCU.md): arena planning and the generated
// model_data.cpp / schedule.json, plus the runtime sources copied from this tree.
#include "deploy/codegen.h"

#include "datasets/dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/atomic_file.h"
#include "engine/kernels/int_dsp.h"

namespace pulsekd::deploy {

namespace fs = std::filesystem;

std::string pulsekd_source_root() {
#ifdef PULSEKD_ROOT_DIR
  return PULSEKD_ROOT_DIR;
#else
  return ".";
#endif
}

static int64_t bytes_of(int bits, int64_t n) { return n * (bits / 8); }
static int64_t align4(int64_t v) { return (v + 3) & ~int64_t(3); }

McuExport plan_arena(const QuantModel& q, bool dsp) {
  // Steps: layer i runs at step i (per-row layers each row, in a loop; the loop is steps
  // 0 .. row_layers-1). "input" (one row) is written at step -1.
  std::vector<ArenaSlot> t;
  const int rl = q.row_layers, nl = int(q.layers.size());
  t.push_back({"input", 0, align4(bytes_of(q.input.bits, data::kWindow)), -1, 0});
  for (int i = 0; i < rl - 1; ++i)
    t.push_back({q.layers[size_t(i)].name, 0, align4(bytes_of(q.layers[size_t(i)].out.bits, q.layers[size_t(i)].out_elems())), i, i + 1});
  const QLayer& lr = q.layers[size_t(rl) - 1];
  // the per-row results live across the whole row loop (every row appends) until conv4 reads them
  t.push_back({"rows", 0, align4(bytes_of(lr.out.bits, lr.out_elems()) * q.rows), -1, rl});
  for (int i = rl; i < nl; ++i)
    t.push_back({q.layers[size_t(i)].name, 0, align4(bytes_of(q.layers[size_t(i)].out.bits, q.layers[size_t(i)].out_elems())), i, i + 1});
  // In-place chains: a producer's output followed by the outputs of in-place convs (layer i's
  // output row t overwrites input row t - pad, the last row that output reads; int_dsp.h
  // conv1d_s16_dsp with a row buffer). One placement item per chain; member j sits at
  // sub[j] = sub[j+1] + pad[j+1] * row_bytes above the next member.
  std::vector<std::vector<size_t>> groups;  // t indices
  std::vector<int> group_of(t.size(), -1);
  for (size_t k = 0; k < t.size(); ++k) {
    const int layer = k >= 1 && int(k) <= rl - 1 ? int(k) - 1 : -1;
    if (layer >= 1 && inplace_layer(q, layer, dsp)) {
      t[k].inplace = true;
      groups[size_t(group_of[k - 1])].push_back(k);
      group_of[k] = group_of[k - 1];
    } else {
      group_of[k] = int(groups.size());
      groups.push_back({k});
    }
  }
  std::vector<int64_t> sub(t.size(), 0);
  std::vector<ArenaSlot> items;
  for (auto& g : groups) {
    for (size_t m = g.size() - 1; m > 0; --m) {
      const QLayer& L = q.layers[size_t(g[m]) - 1];
      sub[g[m - 1]] = sub[g[m]] + int64_t(L.pad) * L.c_in * 2;
    }
    ArenaSlot it{t[g[0]].tensor, 0, 0, t[g[0]].first, t[g[0]].last};
    for (size_t k : g) {
      it.bytes = std::max(it.bytes, align4(sub[k] + t[k].bytes));
      it.first = std::min(it.first, t[k].first);
      it.last = std::max(it.last, t[k].last);
    }
    items.push_back(it);
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return items[a].bytes > items[b].bytes; });
  std::vector<size_t> placed;
  McuExport e;
  for (size_t i : order) {
    int64_t off = 0;
    bool moved = true;
    while (moved) {
      moved = false;
      for (size_t j : placed) {
        const bool live_overlap = !(items[i].last < items[j].first || items[j].last < items[i].first);
        const bool mem_overlap = off < items[j].offset + items[j].bytes && items[j].offset < off + items[i].bytes;
        if (live_overlap && mem_overlap) {
          off = items[j].offset + items[j].bytes;
          moved = true;
        }
      }
    }
    items[i].offset = off;
    placed.push_back(i);
    e.arena_bytes = std::max(e.arena_bytes, off + items[i].bytes);
  }
  for (size_t k = 0; k < t.size(); ++k) t[k].offset = items[size_t(group_of[k])].offset + sub[k];
  e.slots = t;
  e.weight_bytes = quant_param_bytes(q);
  return e;
}

template <class T>
static void write_array(std::ostream& os, const char* type, const std::string& name, const std::vector<T>& v) {
  os << "static const " << type << " " << name << "[" << std::max<size_t>(1, v.size()) << "] = {";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 24 == 0) os << "\n  ";
    os << int64_t(v[i]) << (i + 1 < v.size() ? "," : "");
  }
  if (v.empty()) os << "0";
  os << "};\n";
}

// A directory of the export (and its parents), or an error naming it.
static void make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    throw std::runtime_error("export-mcu --out: cannot create the directory '" + dir.string() + "'" + (ec ? " (" + ec.message() + ")" : ""));
}

static void copy_glob(const fs::path& from, const fs::path& to, const std::vector<std::string>& exts) {
  if (!fs::is_directory(from)) throw std::runtime_error("export-mcu: runtime folder '" + from.string() + "' is missing");
  make_dir(to);
  for (auto& e : fs::directory_iterator(from)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    if (std::find(exts.begin(), exts.end(), ext) == exts.end()) continue;
    copy_file_atomic(e.path().string(), (to / e.path().filename()).string());
  }
}

void check_export_dir(const std::string& out_dir, bool force) {
  std::error_code ec;
  const fs::file_status st = fs::status(out_dir, ec);
  if (!fs::exists(st)) return;
  if (!fs::is_directory(st)) throw std::runtime_error("--out '" + out_dir + "' exists and is not a directory");
  if (force || fs::directory_iterator(out_dir, ec) == fs::directory_iterator()) return;
  if (fs::exists(fs::path(out_dir) / kUnfinishedExport, ec)) return;
  throw std::runtime_error("--out '" + out_dir +
                           "' is not empty: export-mcu writes into a new or empty directory; give --force to overwrite the files "
                           "it generates there");
}

std::vector<pk_layer> layer_table(const QuantModel& q, const McuExport& plan) {
  auto offset = [&](const std::string& name) {
    for (auto& s : plan.slots)
      if (s.tensor == name) return uint32_t(s.offset);
    throw std::logic_error("layer_table: no arena slot " + name);
  };
  const int rl = q.row_layers;
  std::vector<pk_layer> t(q.layers.size());  // (n_layers)
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const QLayer& L = q.layers[i];
    pk_layer& e = t[i];
    e.op = int16_t(L.op);  // QOp and the PK_* enum list the ops in the same order
    e.in_bits = int16_t(L.in.bits), e.out_bits = int16_t(L.out.bits);
    e.c_in = int16_t(L.c_in), e.c_out = int16_t(L.c_out), e.kernel = int16_t(L.kernel), e.dilation = int16_t(L.dilation);
    e.pad = int16_t(L.pad), e.pool = int16_t(L.pool), e.rows = int16_t(L.rows), e.t_in = int16_t(L.t_in);
    e.in_zp = int16_t(L.in.zp), e.out_zp = int16_t(L.out.zp), e.heads = int16_t(L.heads);
    e.act_min = L.act_min, e.act_max = L.act_max;
    e.in_off = i == 0 ? offset("input") : int(i) == rl ? offset("rows") : offset(q.layers[i - 1].name);
    e.out_off = int(i) == rl - 1 ? offset("rows") : offset(L.name);
  }
  return t;
}

pk_model model_header(const QuantModel& q, const McuExport& plan) {
  const QLayer& lr = q.layers[size_t(q.row_layers) - 1];
  return pk_model{q.rows, q.row_layers, int32_t(q.layers.size()), q.input.bits, uint32_t(bytes_of(lr.out.bits, lr.out_elems())),
                  uint32_t(plan.arena_bytes), nullptr};
}

namespace {

// The const arrays of every layer: weights as its kernel reads them, biases, requantisation.
void write_params(std::ostream& os, const QuantModel& q, bool dsp) {
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const QLayer& L = q.layers[i];
    if (L.weights_per_channel() >= 0) {  // avgpool and attention have none (attention: two multipliers)
      write_array(os, "int8_t", "w_" + L.name, kernel_weights(L, choose_kernel(q, int(i), dsp).kernel));
      write_array(os, "int32_t", "b_" + L.name, kernel_bias(L));
    }
    if (!L.mult.empty()) {
      write_array(os, "int32_t", "m_" + L.name, L.mult);
      write_array(os, "int32_t", "s_" + L.name, L.shift);
    }
  }
}

std::string int32_text(int32_t v) {
  return v == INT32_MIN ? std::string("INT32_MIN") : v == INT32_MAX ? std::string("INT32_MAX") : std::to_string(v);
}

// The layer table and the model header of model_data.cpp.
void write_table(std::ostream& os, const QuantModel& q, const McuExport& e, bool dsp) {
  static const char* const op_enum[] = {"PK_CONV",         "PK_AVGPOOL",   "PK_MODALITY",  "PK_LINEAR",
                                        "PK_ATTN_IN_PROJ", "PK_ATTENTION", "PK_LAYER_NORM"};
  const std::vector<pk_layer> table = layer_table(q, e);
  os << "static const pk_layer layers[" << q.layers.size() << "] = {\n";
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const QLayer& L = q.layers[i];
    const pk_layer& t = table[i];
    const bool hasw = L.weights_per_channel() >= 0, hasm = !L.mult.empty();
    os << "  {" << kernel_symbol(choose_kernel(q, int(i), dsp)) << ", " << op_enum[t.op] << ", " << t.in_bits << ", " << t.out_bits
       << ", " << t.c_in << ", " << t.c_out << ", " << t.kernel << ", " << t.dilation << ", " << t.pad << ", " << t.pool << ", "
       << t.rows << ", " << t.t_in << ", " << t.in_zp << ", " << t.out_zp << ", " << t.heads << ", " << int32_text(t.act_min)
       << ", " << int32_text(t.act_max) << ", " << (hasw ? "w_" + L.name : "0") << ", " << (hasw ? "b_" + L.name : "0") << ", "
       << (hasm ? "m_" + L.name : "0") << ", " << (hasm ? "s_" + L.name : "0") << ", " << t.in_off << "u, " << t.out_off
       << "u},  // " << L.name << "\n";
  }
  const pk_model h = model_header(q, e);
  os << "};\n\nextern \"C\" const pk_model pk_the_model = {" << h.rows << ", " << h.row_layers << ", " << h.n_layers << ", "
     << h.input_bits << ", " << h.row_out_bytes << "u, " << h.arena_bytes << "u, layers};\n";
}

}  // namespace

McuExport export_mcu(const QuantModel& q, const std::string& target, const std::string& out_dir, const std::string& root_in,
                     bool dsp, const McuHmm* hmm) {
  if (target != "m4" && target != "m7") throw std::runtime_error("--target must be m4 or m7, got '" + target + "'");
  const fs::path root = root_in.empty() ? fs::path(pulsekd_source_root()) : fs::path(root_in);
  if (!fs::is_directory(root / "mcu" / "runtime") || !fs::is_directory(root / "engine" / "kernels"))
    throw std::runtime_error("export-mcu: '" + root.string() + "' is not a pulsekd source tree (no mcu/runtime, engine/kernels)");
  validate_quant_model(q, q.source.empty() ? std::string("export-mcu") : q.source);
  McuExport e = plan_arena(q, dsp);
  const fs::path dir(out_dir);
  make_dir(dir);
  const std::string unfinished = (dir / kUnfinishedExport).string();
  // Empty, created in one step (a temporary renamed over it would leave the directory non-empty
  // but unmarked if killed in between).
  const int marker = ::open(unfinished.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (marker < 0) throw std::runtime_error("export-mcu: cannot create '" + unfinished + "': " + std::strerror(errno));
  ::close(marker);

  std::ostringstream os;
  std::string src = q.source;  // goes into a comment: printable characters only
  for (char& ch : src)
    if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f) ch = '?';
  os << "// Generated by `pulsekd export-mcu` from " << src << " (target " << target << "). Do not edit.\n"
     << "// Arena " << e.arena_bytes << " bytes (liveness-planned); const data " << e.weight_bytes << " bytes.\n"
     << "#include \"model_data.h\"\n#include \"pk_kernels.h\"\n\n";
  write_params(os, q, dsp);
  os << "\n// Arena layout:\n";
  for (auto& s : e.slots)
    os << "//   " << s.tensor << ": [" << s.offset << ", " << s.offset + s.bytes << ") live in steps " << s.first << ".." << s.last << "\n";
  os << "__attribute__((aligned(8))) uint8_t pk_arena[" << e.arena_bytes << "];\n\n";
  write_table(os, q, e, dsp);
  McuHmmTables hmm_tables;
  if (hmm) {
    mcu_hmm_tables(hmm_tables, *hmm, q.out_scale);
    os << mcu_hmm_source(hmm_tables);
  }
  write_file_atomic((dir / "model_data.cpp").string(), os.str());

  std::ostringstream h;
  h << "// Generated by `pulsekd export-mcu`. Heart rate (BPM) = PK_OUT_SCALE * pk_infer(window).\n#pragma once\n"
    << "#define PK_OUT_SCALE " << std::to_string(double(q.out_scale)) << "f\n#define PK_INPUT_BITS " << q.input.bits
    << "\n#define PK_INPUT_SCALE " << std::to_string(double(q.input.scale)) << "f\n#define PK_INPUT_ZP " << q.input.zp
    << "\n#define PK_ARENA_BYTES " << e.arena_bytes << "\n#define PK_TARGET \"" << target << "\"\n";
  if (hmm) h << "// HMM forward filter on each window (pk_the_hmm): belief and scratch rows of this many floats.\n#define PK_HMM_STATES " << hmm->states << "\n";
  write_file_atomic((dir / "model_data.h").string(), h.str());

  copy_glob(root / "engine" / "kernels", dir / "pulsekd" / "engine" / "kernels", {".h"});
  copy_glob(root / "mcu" / "runtime", dir / "pulsekd" / "mcu" / "runtime", {".h", ".cpp", ".c"});
  copy_glob(root / "mcu" / "startup", dir / "pulsekd" / "mcu" / "startup", {".c", ".ld"});
  copy_glob(root / "mcu" / "cmake", dir / "pulsekd" / "mcu" / "cmake", {".cmake"});
  copy_glob(root / "mcu" / "tools" / "qemu_count", dir / "pulsekd" / "mcu" / "tools" / "qemu_count", {".c", ".h"});
  // The schedule for `pulsekd mcu-report` (marker sequence, MACs per layer).
  const int rl = q.row_layers;
  nlohmann::json sched = {{"target", target}, {"rows", q.rows}, {"row_layers", rl}, {"arena_bytes", e.arena_bytes},
                          {"weight_bytes", e.weight_bytes}, {"input_bits", q.input.bits}, {"source", src}};
  nlohmann::json lj = nlohmann::json::array();
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const QLayer& L = q.layers[i];
    lj.push_back({{"name", L.name}, {"op", qop_name(L.op)},
                  {"kernel_fn", kernel_symbol(choose_kernel(q, int(i), dsp))}, {"in_bits", L.in.bits},
                  {"out_bits", L.out.bits}, {"macs", L.macs_per_row()}, {"runs", int(i) < rl ? q.rows : 1}});
  }
  sched["layers"] = lj;
  if (hmm)  // mcu-report: one more marker per window, after the filter step
    sched["hmm"] = {{"states", hmm->states}, {"half_width", int(hmm_tables.taps.size()) - 1}, {"prior_scale_bpm", hmm->prior_scale_bpm},
                    {"prior_floor", hmm->prior_floor}, {"laplace_bpm", hmm->laplace_bpm}, {"outlier", hmm->outlier},
                    {"lo_bpm", hmm->lo_bpm}, {"hi_bpm", hmm->hi_bpm}};
  write_file_atomic((dir / "schedule.json").string(), sched.dump(2) + "\n");
  copy_file_atomic((root / "mcu" / "CMakeLists.txt").string(), (dir / "CMakeLists.txt").string());
  std::ostringstream b;
  b << "#!/bin/sh\n# Builds fw.elf for " << target << " into ./build (needs gcc-arm-none-eabi).\nset -e\ncd \"$(dirname \"$0\")\"\n"
    << "cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=$PWD/pulsekd/mcu/cmake/arm-none-eabi.cmake -DPK_CORE=" << target
    << " >/dev/null\ncmake --build build\n";
  write_file_atomic((dir / "build.sh").string(), b.str(), 0755);
  if (::unlink(unfinished.c_str()) != 0)
    throw std::runtime_error("export-mcu: cannot remove '" + unfinished + "': " + std::strerror(errno));
  return e;
}

}  // namespace pulsekd::deploy
