#include "kd/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/blas.h"
#include "kd/losses.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "kd/evaluate.h"
#include "kd/fileutil.h"
#include "models/checkpoint.h"

namespace pulsekd::kd {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// log.jsonl is appended before the state of the same epoch is saved (TrainSession::end_epoch):
// after a kill between the two, or before the first state, the log holds epochs the state does
// not. They are trained again, so their lines are dropped first: a resumed log reads as one
// written without interruption. Lines of epochs 1..kept stay as they are.
void trim_epoch_log(const std::string& path, int kept) {
  std::ifstream f(path);
  if (!f) return;
  std::string line, out;
  bool dropped = false;
  while (std::getline(f, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() && j["epoch"].get<int64_t>() > kept)
      dropped = true;
    else
      out += line + "\n";
  }
  if (dropped) write_file_atomic(path, out);
}

// Every parameter and buffer, in the model's order: what a state checkpoint stores.
std::vector<std::pair<std::string, Parameter*>> state_params(models::PulseModel& m) { return m.named_parameters(true); }

void put(SafeTensorsFile& f, const std::string& name, const Shape& s, const std::vector<real>& v) {
  std::vector<float> fl(v.begin(), v.end());
  f.tensors[name] = SafeTensor::from_floats(s.vec(), fl.data());
}

void get(const SafeTensorsFile& f, const std::string& name, std::vector<real>& v, const std::string& path) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) throw std::runtime_error(path + ": training state lacks '" + name + "'");
  std::vector<float> fl = it->second.to_floats();
  if (fl.size() != v.size()) throw std::runtime_error(path + ": training state '" + name + "' has the wrong size");
  std::copy(fl.begin(), fl.end(), v.begin());
}

}  // namespace

void save_model(const std::string& path, models::PulseModel& m, const data::Normalizer& norm,
                const std::map<std::string, std::string>& meta) {
  models::save_checkpoint(path, m, models::RowNorm(norm), meta);
}

void augment_batch(float* x, int64_t b, const Augment& a, Rng& rng) {
  std::vector<float> tmp(data::kWindow);
  for (int64_t i = 0; i < b; ++i) {
    float* w = x + i * data::kRows * data::kWindow;
    const int shift = a.max_shift > 0 ? int(rng.below(uint64_t(2 * a.max_shift + 1))) - a.max_shift : 0;
    for (int r = 0; r < data::kRows; ++r) {
      float* row = w + r * data::kWindow;
      const float s = float(rng.uniform(1 - a.amplitude, 1 + a.amplitude));
      for (int t = 0; t < data::kWindow; ++t) tmp[size_t(t)] = row[((t - shift) % data::kWindow + data::kWindow) % data::kWindow] * s;
      for (int t = 0; t < data::kWindow; ++t) row[t] = tmp[size_t(t)] + float(a.noise * rng.normal());
    }
    if (a.rotate) {
      // Uniform random rotation from a random unit quaternion (Shoemake).
      const double u1 = rng.uniform(), u2 = rng.uniform() * 6.283185307179586, u3 = rng.uniform() * 6.283185307179586;
      const double qx = std::sqrt(1 - u1) * std::sin(u2), qy = std::sqrt(1 - u1) * std::cos(u2);
      const double qz = std::sqrt(u1) * std::sin(u3), qw = std::sqrt(u1) * std::cos(u3);
      const double R[3][3] = {{1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)},
                              {2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)},
                              {2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)}};
      float* ax = w + 1 * data::kWindow;
      for (int t = 0; t < data::kWindow; ++t) {
        const double v[3] = {ax[t], ax[data::kWindow + t], ax[2 * data::kWindow + t]};
        for (int k = 0; k < 3; ++k) ax[k * data::kWindow + t] = float(R[k][0] * v[0] + R[k][1] * v[1] + R[k][2] * v[2]);
      }
    }
    if (a.motion > 0) augment_motion(w, a.motion, rng);
  }
}

namespace {
// A random direction in 3-D (normalised Gaussian vector).
void random_direction(Rng& rng, double d[3]) {
  double n = 0;
  for (int k = 0; k < 3; ++k) {
    d[k] = rng.normal();
    n += d[k] * d[k];
  }
  n = std::sqrt(std::max(n, 1e-12));
  for (int k = 0; k < 3; ++k) d[k] /= n;
}
}  // namespace

void augment_motion(float* w, double strength, Rng& rng) {
  constexpr int T = data::kWindow;
  float* ppg = w;          // (256) row 0
  float* acc = w + T;      // (3, 256) rows 1-3
  if (rng.uniform() < 0.5) {
    // (a) PPG += g1 (d . acc_dyn) + g2 (|acc_dyn|^2 - its mean): a linear and a quadratic
    // artefact of the window's own dynamic acceleration (the gravity part, the row mean, removed).
    double mean[3] = {0, 0, 0}, d[3];
    for (int k = 0; k < 3; ++k) {
      for (int t = 0; t < T; ++t) mean[k] += acc[k * T + t];
      mean[k] /= T;
    }
    random_direction(rng, d);
    const double g1 = rng.uniform(0, strength), g2 = rng.uniform(0, 0.3 * strength);
    std::vector<double> sq(T);  // (256) |acc_dyn|^2
    double sq_mean = 0;
    for (int t = 0; t < T; ++t) {
      double lin = 0, s2 = 0;
      for (int k = 0; k < 3; ++k) {
        const double v = acc[k * T + t] - mean[k];
        lin += d[k] * v;
        s2 += v * v;
      }
      ppg[t] += float(g1 * lin);
      sq[size_t(t)] = s2;
      sq_mean += s2 / T;
    }
    for (int t = 0; t < T; ++t) ppg[t] += float(g2 * (sq[size_t(t)] - sq_mean));
  }
  if (rng.uniform() < 0.5) {
    // (b) A periodic arm motion m(t) = sin(p) + h2 sin(2p + f2) + h3 sin(3p + f3) at a cadence
    // of 0.8-3 Hz: along a random ACC direction with amplitude a_acc, in the PPG with a_ppg and
    // a delay (the artefact lags the motion).
    const double hz = rng.uniform(0.8, 3.0), phase0 = rng.uniform(0, 6.283185307179586);
    const double h2 = rng.uniform(0, 0.6), h3 = rng.uniform(0, 0.3);
    const double f2 = rng.uniform(0, 6.283185307179586), f3 = rng.uniform(0, 6.283185307179586);
    const double a_acc = rng.uniform(0.2, 1.0) * strength, a_ppg = rng.uniform(0, 1.0) * strength;
    const double lag = rng.uniform(0, 6.283185307179586);
    double d[3];
    random_direction(rng, d);
    for (int t = 0; t < T; ++t) {
      const double p = phase0 + 6.283185307179586 * hz * t / data::kRateHz;
      const double m = std::sin(p) + h2 * std::sin(2 * p + f2) + h3 * std::sin(3 * p + f3);
      const double mp = std::sin(p + lag) + h2 * std::sin(2 * (p + lag) + f2) + h3 * std::sin(3 * (p + lag) + f3);
      for (int k = 0; k < 3; ++k) acc[k * T + t] += float(a_acc * d[k] * m);
      ppg[t] += float(a_ppg * mp);
    }
  }
}

Var task_loss(Graph& g, const models::PulseModel& m, const models::ModelOutput& out, const BatchView& b,
              const std::string& kind) {
  if (m.config().head == "binned") {
    const auto& c = m.config();
    const int64_t bs = int64_t(b.y_host->size());
    std::vector<real> tgt = gaussian_bin_targets(b.y_host->data(), bs, c.bins, c.bin_lo, c.bin_hi);
    return soft_cross_entropy(out.logits, g.input({bs, int64_t(c.bins)}, tgt.data()));
  }
  if (kind == "l1") return l1_loss(out.hr, b.y);
  if (kind == "mse") return mse_loss(out.hr, b.y);
  if (kind == "huber") return huber_loss(out.hr, b.y, 1);
  if (kind == "logcosh") return log_cosh_loss(out.hr, b.y);
  throw std::invalid_argument("task loss '" + kind + "' unknown (expected l1, mse, huber or logcosh)");
}

void init_output_at_prior(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& train_idx) {
  if (train_idx.empty()) return;
  const models::ModelConfig& c = m.config();
  Parameter* ob = m.find("out.bias");
  if (c.head == "regression") {
    double mean_hr = 0;
    for (int64_t i : train_idx) mean_hr += ws.hr[size_t(i)] / double(train_idx.size());
    ob->value[0] = real(mean_hr);
    return;
  }
  // Binned: biases = log of the training windows' mean target distribution (the HR prior). The
  // weights stay as they are: zero on a fresh layer over transferred features (--init), the
  // fan-in init from scratch (zero there would cut the trunk's gradient, W^T (p - y), and a
  // from-scratch run was seen to stay at the prior for 10 epochs).
  std::vector<float> hr;
  hr.reserve(train_idx.size());
  for (int64_t i : train_idx) hr.push_back(ws.hr[size_t(i)]);
  const std::vector<real> tgt = gaussian_bin_targets(hr.data(), int64_t(hr.size()), c.bins, c.bin_lo, c.bin_hi);
  std::vector<double> prior(size_t(c.bins), 0.0);  // (bins)
  for (size_t i = 0; i < hr.size(); ++i)
    for (int k = 0; k < c.bins; ++k) prior[size_t(k)] += double(tgt[i * size_t(c.bins) + size_t(k)]) / double(hr.size());
  for (int k = 0; k < c.bins; ++k) ob->value[k] = real(std::log(std::max(prior[size_t(k)], 1e-6)));
}

namespace {
std::atomic<bool> g_stop{false};  // set by request_stop (a signal handler), read after each batch
}  // namespace
void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }

json run_settings(const TrainOptions& opt, const data::WindowSet& ws, const data::Fold& fold) {
  const auto names = [&](const std::vector<int>& subjects) {
    json a = json::array();
    for (int s : subjects) a.push_back(ws.subjects[size_t(s)].name);
    return a;
  };
  const Augment& au = opt.augment;
  json j = {{"data", ws.source},
            {"train_subjects", names(fold.train)},
            {"val_subjects", names(fold.val)},
            {"epochs", opt.epochs},
            {"patience", opt.patience},
            {"batch", opt.batch},
            {"lr", opt.lr},
            {"weight_decay", opt.weight_decay},
            {"optimizer", opt.optimizer},
            {"task_loss", opt.task_loss},
            {"schedule", opt.schedule},
            {"seed", opt.seed},
            {"init_output_at_mean", opt.init_output_at_mean},
            {"freeze", opt.freeze},
            {"clip_norm", opt.clip_norm},
            {"augment", au.enabled ? json{{"amplitude", au.amplitude}, {"max_shift", au.max_shift}, {"noise", au.noise},
                                          {"rotate", au.rotate}, {"motion", au.motion}}
                                   : json(false)}};
  const json extra = json::parse(opt.provenance.empty() ? "{}" : opt.provenance);
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

std::string settings_difference(const json& saved, const json& now) {
  std::string out;
  const auto text = [](const json& v) {
    const std::string s = v.dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  };
  for (auto it = now.begin(); it != now.end(); ++it) {
    const json old = saved.contains(it.key()) ? saved[it.key()] : json("(unset)");
    if (old != it.value()) out += (out.empty() ? "" : "; ") + it.key() + ": " + text(old) + " -> " + text(it.value());
  }
  for (auto it = saved.begin(); it != saved.end(); ++it)
    if (!now.contains(it.key())) out += (out.empty() ? "" : "; ") + it.key() + ": " + text(it.value()) + " -> (unset)";
  return out;
}

namespace {

// What best.safetensors records beside the weights: the best epoch and validation MAE, and the
// run's settings (data spec, training/validation subjects, options; run_settings), so that a
// checkpoint tells how it was made (`pulsekd info`) and `quantize` can calibrate on its
// training subjects.
std::map<std::string, std::string> best_metadata(const TrainResult& res, const json& settings) {
  return {{"pulsekd.best_epoch", std::to_string(res.best_epoch)},
          {"pulsekd.best_val_mae", std::to_string(res.best_val_mae)},
          {"pulsekd.settings", settings.dump()}};
}

// One call of train_model: the model, its optimiser, the best weights so far and the result,
// with the steps of a run (resume, one epoch, validation, saving) as methods. Epochs are
// counted from 0 in the loop and from 1 wherever a user sees them (EpochLog, best_epoch,
// messages, log.jsonl, plots).
struct TrainSession {
  models::PulseModel& m;
  const data::WindowSet& ws;
  const data::Normalizer& norm;
  const TrainOptions& opt;
  const LossFn& loss_fn;
  std::vector<int64_t> train_idx, val_idx;  // window indices
  std::vector<float> val_truth;             // (val windows) BPM
  std::vector<Parameter*> params;           // optimised: trainable model parameters + extra
  Optimizer optim;
  std::vector<std::pair<std::string, Parameter*>> all;  // every parameter and buffer (the state)
  std::vector<std::vector<real>> best;                  // best validation weights, as `all`
  TrainResult res;
  int start_epoch = 0, since_best = 0;
  json settings;
  std::string state_path, log_path;

  TrainSession(models::PulseModel& m_, const data::WindowSet& ws_, const data::Fold& fold, const data::Normalizer& norm_,
               const TrainOptions& opt_, const LossFn& loss_fn_, std::vector<Parameter*> params_, const OptimConfig& oc)
      : m(m_), ws(ws_), norm(norm_), opt(opt_), loss_fn(loss_fn_), train_idx(data::windows_of(ws_, fold.train)),
        val_idx(data::windows_of(ws_, fold.val)), params(std::move(params_)), optim(params, oc), all(state_params(m_)),
        settings(run_settings(opt_, ws_, fold)) {
    for (int64_t i : val_idx) val_truth.push_back(ws.hr[size_t(i)]);
    best.resize(all.size());
    for (size_t i = 0; i < all.size(); ++i) best[i] = all[i].second->value;
    res.best_val_mae = 1e30;
    if (!opt.out_dir.empty()) {
      state_path = opt.out_dir + "/state.safetensors";
      log_path = opt.out_dir + "/log.jsonl";
    }
  }
  std::string label() const { return opt.label.empty() ? std::string("training") : opt.label; }

  // Continues from state_path when it exists: weights, best weights, extra parameters, optimiser
  // moments and counters, history; refused when the model or the settings differ.
  void resume() {
    SafeTensorsFile st = load_safetensors(state_path);
    if (st.metadata["pulsekd.config"] != m.config().to_json())
      throw std::runtime_error(state_path + ": saved for a different model (" + st.metadata["pulsekd.config"] + "); use a new --out");
    // A state written before settings were recorded resumes unchecked (said once).
    const bool recorded = st.metadata.count("pulsekd.settings") > 0;
    if (!recorded) std::cerr << "note: " << state_path << " records no settings; resuming without checking them\n";
    const std::string diff = recorded ? settings_difference(json::parse(st.metadata["pulsekd.settings"]), settings) : "";
    if (!diff.empty() && !opt.force_resume)
      throw std::runtime_error(state_path + ": this run was started with other settings (" + diff +
                               "); rerun with the same flags to resume, give a new --out, or --force to continue with the new ones");
    if (!diff.empty()) std::cerr << "--force: resuming " << state_path << " with changed settings (" << diff << ")\n";
    for (size_t i = 0; i < all.size(); ++i) {
      get(st, "model/" + all[i].first, all[i].second->value, state_path);
      get(st, "best/" + all[i].first, best[i], state_path);
    }
    for (size_t i = 0; i < opt.extra_parameters.size(); ++i)
      get(st, "extra/" + std::to_string(i), opt.extra_parameters[i]->value, state_path);
    for (size_t i = 0; i < params.size(); ++i) {
      get(st, "adam_m/" + std::to_string(i), optim.first_moments()[i], state_path);
      if (!optim.second_moments()[i].empty()) get(st, "adam_v/" + std::to_string(i), optim.second_moments()[i], state_path);
    }
    const json meta = json::parse(st.metadata["pulsekd.train_state"]);
    start_epoch = meta["next_epoch"];
    res.best_epoch = meta["best_epoch"];
    res.best_val_mae = meta["best_val_mae"];
    since_best = meta["since_best"];
    optim.set_steps(meta["steps"]);
    for (auto& h : meta["history"])
      res.history.push_back({h["epoch"], h["train_loss"], h["val_mae"], h["seconds"], h["lr"]});
    res.resumed = true;
    if (since_best >= opt.patience) res.early_stopped = true;
    if (opt.progress || opt.epoch_lines)
      std::fprintf(stderr, "%s: resuming from epoch %d of %d (%s)\n", label().c_str(), start_epoch + 1, opt.epochs,
                   state_path.c_str());
  }

  // An epoch's log line is appended just before its state is saved: a process killed between
  // the two (kill -9, a lost MPI rank) leaves a line the state does not hold, and the resumed
  // run would log that epoch again. Keep only the epochs the run continues from.
  void save_state(int epoch) {
    SafeTensorsFile st;
    st.metadata["pulsekd.config"] = m.config().to_json();
    st.metadata["pulsekd.settings"] = settings.dump();
    json hist = json::array();
    for (auto& h : res.history)
      hist.push_back({{"epoch", h.epoch}, {"train_loss", h.train_loss}, {"val_mae", h.val_mae}, {"seconds", h.seconds}, {"lr", h.lr}});
    st.metadata["pulsekd.train_state"] = json{{"next_epoch", epoch + 1}, {"best_epoch", res.best_epoch},
                                              {"best_val_mae", res.best_val_mae}, {"since_best", since_best},
                                              {"steps", optim.steps()}, {"history", hist}}.dump();
    for (size_t i = 0; i < all.size(); ++i) {
      put(st, "model/" + all[i].first, all[i].second->shape, all[i].second->value);
      put(st, "best/" + all[i].first, all[i].second->shape, best[i]);
    }
    // Parameters trained beside the model (the FitNets adapter): without them a resumed
    // run would restart the adapter from its initialisation.
    for (size_t i = 0; i < opt.extra_parameters.size(); ++i)
      put(st, "extra/" + std::to_string(i), opt.extra_parameters[i]->shape, opt.extra_parameters[i]->value);
    for (size_t i = 0; i < params.size(); ++i) {
      put(st, "adam_m/" + std::to_string(i), Shape{int64_t(optim.first_moments()[i].size())}, optim.first_moments()[i]);
      if (!optim.second_moments()[i].empty())
        put(st, "adam_v/" + std::to_string(i), Shape{int64_t(optim.second_moments()[i].size())}, optim.second_moments()[i]);
    }
    save_safetensors(state_path, st);
  }

  // The best weights as a checkpoint (written at each improvement, so a stopped run keeps it).
  void save_best() {
    std::vector<std::vector<real>> current(all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      current[i] = all[i].second->value;
      all[i].second->value = best[i];
    }
    save_model(opt.out_dir + "/best.safetensors", m, norm, best_metadata(res, settings));
    for (size_t i = 0; i < all.size(); ++i) all[i].second->value = std::move(current[i]);
  }

  // One pass over the training windows; returns the mean training loss.
  double run_epoch(int epoch, data::BatchIterator& it, Clock::time_point t0, int64_t& batches_done) {
    m.train(true);
    it.reset_epoch(epoch);
    Rng rng(opt.seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);  // dropout + augmentation of this epoch
    const int64_t batches = it.batches_per_epoch();
    Graph g;
    std::vector<float> xb, yb;  // (B, 4, 256), (B)
    std::vector<int64_t> bidx;  // (B) window indices
    double loss_sum = 0;
    int64_t b_i = 0;
    while (it.next(bidx)) {
      const int64_t bs = int64_t(bidx.size());
      xb.resize(size_t(bs) * data::kRows * data::kWindow);
      yb.resize(size_t(bs));
      data::gather_batch(ws, bidx, norm, xb.data(), yb.data());
      if (opt.augment.enabled) augment_batch(xb.data(), bs, opt.augment, rng);
      g.reset();
      std::vector<real> xr(xb.begin(), xb.end()), yr(yb.begin(), yb.end());
      BatchView bv{g.input({bs, 4, 256, 1}, xr.data()), g.input({bs}, yr.data()), &yb, &xb, epoch, &bidx, opt.augment.enabled};
      models::ModelOutput out = m.forward(g, bv.x, rng);
      Var loss = loss_fn ? loss_fn(g, out, bv) : task_loss(g, m, out, bv, opt.task_loss);
      const double lv = loss.data()[0];
      if (!std::isfinite(lv))
        throw TrainingDiverged(label() + ": loss became " + (std::isnan(lv) ? "NaN" : "infinite") + " at epoch " +
                               std::to_string(epoch + 1) + ", batch " + std::to_string(b_i + 1) + "; stopped (the last good checkpoint is kept" +
                               (state_path.empty() ? "" : " in " + opt.out_dir) + "); lower --lr or check the data");
      optim.zero_grad();
      g.backward(loss);
      if (opt.clip_norm > 0) clip_grad_norm(params, opt.clip_norm);
      optim.step();
      loss_sum += lv;
      ++b_i;
      if (opt.interrupt_after_batches >= 0 && ++batches_done >= opt.interrupt_after_batches)
        throw Interrupted("interrupted after " + std::to_string(batches_done) + " batches");
      if (stop_requested())
        throw Interrupted(label() + ": interrupted in epoch " + std::to_string(epoch + 1) +
                          (state_path.empty() ? std::string("; nothing was saved")
                                              : "; the state of epoch " + std::to_string(epoch) + " is in " + state_path +
                                                    ": run the same command again to resume from epoch " + std::to_string(epoch + 1)));
      if (opt.progress) {
        const double el = seconds_since(t0);
        const double done = double(epoch - start_epoch) + double(b_i) / double(batches);
        const double eta = done > 0 ? el / done * double(opt.epochs - start_epoch) - el : 0;
        const std::string best_text = res.best_epoch >= 1 ? std::to_string(res.best_val_mae).substr(0, 6) : std::string("-");
        std::fprintf(stderr, "\r%s epoch %d/%d batch %lld/%lld loss %.3f best val MAE %s ETA %s (max)   ", opt.label.c_str(),
                     epoch + 1, opt.epochs, (long long)b_i, (long long)batches, loss_sum / double(b_i), best_text.c_str(),
                     format_duration(eta).c_str());
      }
    }
    return loss_sum / double(std::max<int64_t>(b_i, 1));
  }

  // Validation in eval mode, the best weights and patience, log.jsonl, the state and best checkpoint.
  void end_epoch(int epoch, double train_loss, double seconds) {
    const std::vector<float> vp = predict_windows(m, ws, val_idx, norm);
    const double val_mae = compute_metrics(vp, val_truth).mae;
    if (!std::isfinite(val_mae))
      throw TrainingDiverged(label() + ": validation MAE is not finite at epoch " + std::to_string(epoch + 1));
    const EpochLog el{epoch + 1, train_loss, val_mae, seconds, optim.lr()};
    res.history.push_back(el);
    const bool improved = val_mae < res.best_val_mae;
    if (improved) {
      res.best_val_mae = val_mae;
      res.best_epoch = epoch + 1;
      since_best = 0;
      for (size_t i = 0; i < all.size(); ++i) best[i] = all[i].second->value;
    } else if (++since_best >= opt.patience) {
      res.early_stopped = true;
    }
    if (opt.epoch_lines)
      std::fprintf(stderr, "%s epoch %d/%d loss %.4f val MAE %.3f best %.3f (epoch %d) %.1f s\n", label().c_str(), epoch + 1,
                   opt.epochs, train_loss, val_mae, res.best_val_mae, res.best_epoch, seconds);
    if (!log_path.empty())
      append_line(log_path, json{{"label", opt.label}, {"epoch", el.epoch}, {"train_loss", el.train_loss}, {"val_mae", val_mae},
                                 {"best_epoch", res.best_epoch}, {"seconds", el.seconds}, {"lr", el.lr}}.dump());
    if (!state_path.empty()) {
      if (improved) save_best();
      save_state(epoch);
    }
  }
};

}  // namespace

TrainResult train_model(models::PulseModel& m, const data::WindowSet& ws, const data::Fold& fold,
                        const data::Normalizer& norm, const TrainOptions& opt, const LossFn& loss_fn) {
  if (opt.epochs < 1 || opt.batch < 1 || opt.patience < 1) throw std::invalid_argument("epochs, batch and patience must be >= 1");
  if (fold.train.empty() || fold.val.empty()) throw std::invalid_argument("the fold needs training and validation subjects");
  set_blas_threads(std::max(1, opt.threads));
  for (const std::string& prefix : opt.freeze)
    if (m.set_trainable(prefix, false) == 0) throw std::invalid_argument("--freeze '" + prefix + "' matches no parameter");
  if (opt.init_output_at_mean) init_output_at_prior(m, ws, data::windows_of(ws, fold.train));

  OptimConfig oc;
  oc.kind = opt.optimizer;
  oc.lr = opt.lr;
  oc.weight_decay = opt.weight_decay;
  std::vector<Parameter*> params = m.trainable_parameters();
  if (params.empty()) throw std::invalid_argument("--freeze leaves no parameter to train: name only some layers (e.g. conv1,conv2)");
  params.insert(params.end(), opt.extra_parameters.begin(), opt.extra_parameters.end());
  TrainSession s(m, ws, fold, norm, opt, loss_fn, params, oc);
  if (!opt.out_dir.empty()) ensure_dir(opt.out_dir, "--out");
  if (!s.state_path.empty() && opt.resume && std::filesystem::exists(s.state_path)) s.resume();
  if (!s.log_path.empty()) trim_epoch_log(s.log_path, s.start_epoch);

  data::BatchIterator it(ws, s.train_idx, opt.batch, opt.seed, true, false);
  const auto t0 = Clock::now();
  int64_t batches_done = 0;
  LrSchedule sched;
  sched.kind = opt.schedule;
  sched.base_lr = opt.lr;
  sched.total_epochs = opt.epochs;
  sched.step_size = std::max(1, opt.epochs / 3);
  sched.lr_at(0);  // validates the kind before any work
  for (int epoch = s.start_epoch; epoch < opt.epochs && !s.res.early_stopped; ++epoch) {
    const auto te = Clock::now();
    s.optim.set_lr(sched.lr_at(epoch));
    const double train_loss = s.run_epoch(epoch, it, t0, batches_done);
    s.end_epoch(epoch, train_loss, seconds_since(te));
  }
  if (opt.progress) std::fprintf(stderr, "\n");
  // Keep the best validation weights.
  for (size_t i = 0; i < s.all.size(); ++i) s.all[i].second->value = s.best[i];
  m.eval();
  TrainResult res = std::move(s.res);
  res.seconds = seconds_since(t0);
  if (!opt.out_dir.empty())
    save_model(opt.out_dir + "/best.safetensors", m, norm, best_metadata(res, s.settings));
  return res;
}

}  // namespace pulsekd::kd
