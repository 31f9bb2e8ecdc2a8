// Model commands: import-torch, predict, info.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "formats/windows_json.h"
#include "cli/post_options.h"
#include "datasets/folds.h"
#include "datasets/recording.h"
#include "deploy/quant_format.h"
#include "deploy/kernel_variants.h"
#include "engine/safetensors.h"
#include "kd/fileutil.h"
#include "kd/runs.h"
#include "models/checkpoint.h"

namespace pulsekd::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

void require_file(const std::string& path, const std::string& what) {
  if (!fs::is_regular_file(path)) throw std::runtime_error(what + " '" + path + "' does not exist or is not a file");
}

void print_info(models::PulseModel& m, std::ostream& os) {
  os << "architecture: " << (m.config().arch == "resnet" ? "1-D ResNet " : "PULSE ") << m.config().describe() << "\n";
  os << "block channels:";
  for (int c : m.block_channels()) os << " " << c;
  os << "\n\n";
  char line[160];
  std::snprintf(line, sizeof line, "%-16s %12s %14s\n", "layer", "parameters", "MACs/window");
  os << line;
  int64_t p = 0, macs = 0;
  for (auto& l : m.layers()) {
    std::snprintf(line, sizeof line, "%-16s %12lld %14lld\n", l.name.c_str(), (long long)l.params, (long long)l.macs);
    os << line;
    p += l.params;
    macs += l.macs;
  }
  std::snprintf(line, sizeof line, "%-16s %12lld %14lld\n", "total", (long long)p, (long long)macs);
  os << line;
  std::snprintf(line, sizeof line, "\nfloat32 weights: %.1f kB; int8 weights (+int32 biases) would take about %.1f kB\n",
                p * 4 / 1000.0, p / 1000.0);
  os << line;
}

CommandRegistrar reg_import([](CLI::App& app) {
  auto* cmd = app.add_subcommand("import-torch", "Import an authors' PULSE .pt state_dict into a pulsekd checkpoint");
  auto arch = std::make_shared<std::string>();
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--arch", *arch, "teacher or student")->required()->check(CLI::IsMember({"teacher", "student"}));
  cmd->add_option("input", *in, "PyTorch .pt file (torch.save of a state_dict)")->required();
  cmd->add_option("output", *out, "output .safetensors checkpoint")->required()->check(output_file(false));
  cmd->callback([=]() {
    require_file(*in, "input");
    auto model = models::import_torch(*in, *arch);
    models::save_checkpoint(*out, *model, models::RowNorm{}, {{"pulsekd.source", fs::path(*in).filename().string()}});
    std::cout << "imported " << *arch << " (" << model->num_parameters() << " parameters) from " << *in << " to " << *out << "\n";
  });
});

// Heart rate per 2 s step of one raw recording, written as CSV (time = centre of each 8 s window).
void predict_recording(const std::string& ckpt, const data::RecordingOptions& rec, const kd::PostProcess& pp,
                       const std::string& out) {
  const data::WindowSet ws = data::load_recording(rec);
  models::LoadedModel lm = kd::load_any_checkpoint(ckpt);
  data::Normalizer norm;
  const std::vector<int64_t> all = data::windows_of(ws, {0});
  if (lm.norm.present) {
    norm = lm.norm;
  } else {
    norm = data::Normalizer::fit(ws, all);
    std::cerr << "note: " << ckpt << " carries no normalisation; using the recording's own statistics\n";
  }
  const bool binned = lm.model->config().head == "binned";
  std::vector<float> logits;  // (windows, bins), binned head only
  const std::vector<float> hr = kd::predict_windows(*lm.model, ws, all, norm, 256, binned ? &logits : nullptr);
  const std::vector<float> post =
      kd::post_process(pp, hr, logits, binned ? lm.model->bin_centres() : std::vector<float>{}, ws, 0);
  const bool labelled = !rec.labels.empty();
  std::ostringstream os;
  os << "time_s,hr,hr_post" << (labelled ? ",truth" : "") << "\n";
  for (size_t k = 0; k < hr.size(); ++k) {
    os << 2.0 * double(k) + 4.0 << "," << hr[k] << "," << post[k];
    if (labelled) os << "," << ws.hr[k];
    os << "\n";
  }
  write_output(out, os.str());
  for (const auto& [v, name] : {std::make_pair(&hr, "predict (raw)"), std::make_pair(&post, "predict (post-processed)")}) {
    const std::string warn = kd::implausible_warning(*v, name);
    if (!warn.empty()) std::cerr << warn << "\n";
  }
  std::ostream& say = is_stdout_path(out) ? std::cerr : std::cout;  // stdout holds the CSV alone
  say << "wrote " << hr.size() << " heart rates (every 2 s, post-processing: " << pp.describe() << ") to " << out << "\n";
  if (labelled) {
    const std::vector<float> truth(ws.hr.begin(), ws.hr.end());
    say << "MAE " << kd::compute_metrics(hr, truth).mae << " BPM raw, " << kd::compute_metrics(post, truth).mae
              << " BPM post-processed\n";
  }
}

CommandRegistrar reg_predict([](CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Heart rate for windows given in JSON (with dense32 features) or for a raw recording");
  auto ckpt = std::make_shared<std::string>();
  auto windows = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto prenorm = std::make_shared<bool>(false);
  auto rec = std::make_shared<data::RecordingOptions>();
  auto post_args = std::make_shared<PostArgs>();
  cmd->add_option("--checkpoint", *ckpt, "pulsekd .safetensors checkpoint")->required();
  auto* opt_windows = cmd->add_option("--windows", *windows, "JSON with input_shape [B,1,4,256] and row-major input");
  auto* opt_rec = cmd->add_option("--recording", rec->path, "a raw recording: IEEE SPC 2015 .mat or a CSV with columns ppg,acc_x,acc_y,acc_z")
                      ->excludes(opt_windows);
  cmd->add_option("--labels", rec->labels, "--recording: reference heart rates, one per 2 s window (.mat or one BPM per line)")->needs(opt_rec);
  cmd->add_option("--rate", rec->rate_hz, "--recording: sampling rate of a CSV recording (Hz)")->needs(opt_rec)->check(finite_range(16.0, 2000.0));
  cmd->add_flag("--ppg-mean", rec->mean_ppg, "--recording: average the two PPG channels when there are two")->needs(opt_rec);
  cmd->add_option("--out", *out, "output (- for standard output): JSON hr (B) and dense32 (B×32) for --windows; CSV time_s,hr,hr_post[,truth] for --recording")
      ->required()
      ->check(output_file(true));
  cmd->add_flag("--normalized", *prenorm,
                "the windows are already z-scored: skip the checkpoint's normalisation (without one, predict z-scores the windows with their own statistics)");
  add_post_options(cmd, *post_args);
  cmd->callback([=]() {
    kd::require_checkpoint_file(*ckpt, "--checkpoint");
    if (windows->empty() == rec->path.empty()) throw std::runtime_error("predict: give --windows FILE or --recording FILE");
    if (!rec->path.empty()) return predict_recording(*ckpt, *rec, make_post(*post_args), *out);
    require_file(*windows, "--windows");
    auto lm = models::load_checkpoint(*ckpt);
    json j;
    try {
      std::ifstream f(*windows);
      j = json::parse(f);
    } catch (const std::exception& e) {
      throw std::runtime_error("--windows '" + *windows + "': not valid JSON (" + e.what() + ")");
    }
    if (!j.contains("input_shape") || !j.contains("input"))
      throw std::runtime_error("--windows '" + *windows + "': expected keys 'input_shape' and 'input'");
    auto [shape, x] = formats::parse_windows_json(j, "--windows '" + *windows + "'");  // (B,1,4,256), (B*1024)
    if (lm.norm.present && !*prenorm) {
      lm.norm.apply(x.data(), shape[0]);
    } else if (!*prenorm) {
      // As eval does for a checkpoint without statistics (an imported .pt): z-score each row with
      // the given windows' own statistics, and say so.
      data::WindowSet given;
      given.x = x;
      given.hr.assign(size_t(shape[0]), 0.f);
      std::vector<int64_t> every(static_cast<size_t>(shape[0]));  // (B) window indices
      for (int64_t i = 0; i < shape[0]; ++i) every[size_t(i)] = i;
      data::Normalizer::fit(given, every).apply(x.data(), shape[0]);
      std::cerr << "note: " << *ckpt << " carries no normalisation; z-scoring the " << shape[0]
                << " windows with their own per-row statistics (--normalized: they already are)\n";
    }
    std::vector<float> hr, dense;
    lm.model->predict(x.data(), shape[0], hr, &dense);
    const std::string warn = kd::implausible_warning(hr, "predict");
    if (!warn.empty()) std::cerr << warn << "\n";
    json o = {{"checkpoint", *ckpt}, {"hr", hr}, {"dense32", dense}, {"dense32_shape", {shape[0], lm.model->config().dense}},
              {"implausible", kd::implausible_estimates(hr)}};
    write_output(*out, o.dump() + "\n");
    (is_stdout_path(*out) ? std::cerr : std::cout) << "wrote " << shape[0] << " predictions to " << *out << "\n";
  });
});

// How a checkpoint was made, from the metadata training wrote (kd::run_settings).
void print_provenance(const std::map<std::string, std::string>& meta, std::ostream& os) {
  for (const char* key : {"pulsekd.source", "pulsekd.best_epoch", "pulsekd.best_val_mae"})
    if (meta.count(key)) os << std::string(key).substr(8) << ": " << meta.at(key) << "\n";
  const auto it = meta.find("pulsekd.settings");
  if (it == meta.end()) {
    os << "made by: not recorded (imported, or written before pulsekd recorded its settings)\n";
    return;
  }
  const json st = json::parse(it->second, nullptr, false);
  if (!st.is_object()) return;
  os << "made by: training with\n";
  for (auto kv = st.begin(); kv != st.end(); ++kv) os << "  " << kv.key() << ": " << kv.value().dump() << "\n";
}

// A quantised model (deploy/quant_model.h): its layers, bits, kernels and sizes.
void print_quant_info(const std::string& path, std::ostream& os) {
  const deploy::QuantModel q = deploy::load_quant_model(path);
  os << "quantised " << q.arch << ": " << path << "\nsource: " << (q.source.empty() ? "-" : q.source) << "\ncalibration: " << q.calib
     << "\ninput: " << q.input.bits << "-bit, scale " << q.input.scale << ", zero point " << q.input.zp
     << "\nnormalisation: " << (q.norm.present ? "stored" : "none (each recording z-scored with its own statistics)") << "\n\n";
  char line[200];
  std::snprintf(line, sizeof line, "%-14s %-13s %5s %5s %6s %6s %12s  %s\n", "layer", "op", "in", "out", "c_in", "c_out", "MACs", "kernel");
  os << line;
  int64_t macs = 0;
  for (size_t i = 0; i < q.layers.size(); ++i) {
    const deploy::QLayer& L = q.layers[i];
    const int64_t m = L.macs_per_row() * (int(i) < q.row_layers ? q.rows : 1);
    macs += m;
    std::snprintf(line, sizeof line, "%-14s %-13s %5d %5d %6d %6d %12lld  %s\n", L.name.c_str(), deploy::qop_name(L.op), L.in.bits,
                  L.out.bits, L.c_in, L.c_out, (long long)m, deploy::kernel_symbol(deploy::choose_kernel(q, int(i), true)).c_str());
    os << line;
  }
  os << "\nMACs per window: " << macs << "; weights + biases + requantisation tables: " << deploy::quant_param_bytes(q)
     << " bytes; heart rate = " << q.out_scale << " x output\n";
}

CommandRegistrar reg_info([](CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Architecture, parameters per layer and MACs per window of a checkpoint or family member");
  auto ckpt = std::make_shared<std::string>();
  auto cfg = std::make_shared<models::ModelConfig>();
  auto arch = std::make_shared<std::string>();
  cmd->add_option("checkpoint", *ckpt, "pulsekd .safetensors checkpoint (or give --arch)");
  cmd->add_option("--arch", *arch, "describe a family member instead: teacher, student or resnet")->check(CLI::IsMember({"teacher", "student", "resnet"}));
  cmd->add_option("--width", cfg->width, "width multiplier on every channel count")->check(finite_range(0.01, 16.0));
  cmd->add_option("--depth", cfg->convs_per_block, "convolutions per block")->check(CLI::Range(1, 8));
  cmd->add_option("--head", cfg->head, "regression or binned")->check(CLI::IsMember({"regression", "binned"}));
  cmd->add_option("--bins", cfg->bins, "bins of the binned head")->check(CLI::Range(2, 4096));
  cmd->add_option("--stages", cfg->stages, "resnet: residual stages")->check(CLI::Range(1, 6));
  cmd->add_option("--base-channels", cfg->base_channels, "resnet: first-stage channels before --width")->check(CLI::Range(1, 1024));
  cmd->add_option("--kernel", cfg->kernel, "resnet: convolution kernel size")->check(CLI::IsMember({3, 5, 7}));
  cmd->callback([=]() {
    if (ckpt->empty() == arch->empty()) throw std::runtime_error("info: give either a checkpoint or --arch");
    if (!ckpt->empty()) {
      kd::require_checkpoint_file(*ckpt, "checkpoint");
      const bool torch = fs::path(*ckpt).extension() == ".pt";
      if (!torch && load_safetensors(*ckpt).metadata.count("pulsekd.quant")) return print_quant_info(*ckpt, std::cout);
      auto lm = kd::load_any_checkpoint(*ckpt);  // a .pt is imported (architecture from its name)
      std::cout << "checkpoint: " << *ckpt << (torch ? " (PyTorch state_dict, imported)" : "") << "\n";
      print_info(*lm.model, std::cout);
      if (lm.norm.present) {
        std::cout << "normalisation (mean/std per row PPG, accX, accY, accZ):";
        for (int r = 0; r < 4; ++r) std::cout << " " << lm.norm.mean[r] << "/" << lm.norm.std[r];
        std::cout << "\n";
      } else {
        std::cout << "normalisation: none stored (eval and predict z-score each recording with its own statistics)\n";
      }
      print_provenance(lm.metadata, std::cout);
    } else {
      models::ModelConfig c = *cfg;
      c.arch = *arch;
      models::PulseModel m(c);
      print_info(m, std::cout);
    }
  });
});

}  // namespace
}  // namespace pulsekd::cli
