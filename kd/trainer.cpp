#include "kd/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
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

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

models::RowNorm row_norm(const data::Normalizer& n) {
  models::RowNorm r;
  r.present = true;
  for (int i = 0; i < 4; ++i) {
    r.mean[i] = n.mean[i];
    r.std[i] = n.std[i];
  }
  return r;
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
  models::save_checkpoint(path, m, row_norm(norm), meta);
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

TrainResult train_model(models::PulseModel& m, const data::WindowSet& ws, const data::Fold& fold,
                        const data::Normalizer& norm, const TrainOptions& opt, const LossFn& loss_fn) {
  if (opt.epochs < 1 || opt.batch < 1 || opt.patience < 1) throw std::invalid_argument("epochs, batch and patience must be >= 1");
  if (fold.train.empty() || fold.val.empty()) throw std::invalid_argument("the fold needs training and validation subjects");
  set_blas_threads(std::max(1, opt.threads));
  const std::vector<int64_t> train_idx = data::windows_of(ws, fold.train);
  const std::vector<int64_t> val_idx = data::windows_of(ws, fold.val);
  std::vector<float> val_truth;
  for (int64_t i : val_idx) val_truth.push_back(ws.hr[size_t(i)]);

  for (const std::string& prefix : opt.freeze)
    if (m.set_trainable(prefix, false) == 0) throw std::invalid_argument("--freeze '" + prefix + "' matches no parameter");
  if (opt.init_output_at_mean) init_output_at_prior(m, ws, train_idx);

  OptimConfig oc;
  oc.kind = opt.optimizer;
  oc.lr = opt.lr;
  oc.weight_decay = opt.weight_decay;
  std::vector<Parameter*> params = m.trainable_parameters();
  params.insert(params.end(), opt.extra_parameters.begin(), opt.extra_parameters.end());
  Optimizer optim(params, oc);
  const auto all = state_params(m);
  std::vector<std::vector<real>> best(all.size());
  for (size_t i = 0; i < all.size(); ++i) best[i] = all[i].second->value;

  TrainResult res;
  int start_epoch = 0, since_best = 0;
  res.best_val_mae = 1e30;
  const std::string state_path = opt.out_dir.empty() ? "" : opt.out_dir + "/state.safetensors";
  const std::string log_path = opt.out_dir.empty() ? "" : opt.out_dir + "/log.jsonl";
  if (!opt.out_dir.empty()) ensure_dir(opt.out_dir, "--out");

  if (!state_path.empty() && opt.resume && std::filesystem::exists(state_path)) {
    SafeTensorsFile st = load_safetensors(state_path);
    if (st.metadata["pulsekd.config"] != m.config().to_json())
      throw std::runtime_error(state_path + ": saved for a different model (" + st.metadata["pulsekd.config"] + "); use a new --out");
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
  }

  data::BatchIterator it(ws, train_idx, opt.batch, opt.seed, true, false);
  const int64_t batches = it.batches_per_epoch();
  const auto t0 = Clock::now();
  int64_t batches_done = 0;
  Graph g;
  std::vector<float> xb, yb;
  std::vector<int64_t> bidx;
  LrSchedule sched;
  sched.kind = opt.schedule;
  sched.base_lr = opt.lr;
  sched.total_epochs = opt.epochs;
  sched.step_size = std::max(1, opt.epochs / 3);
  sched.lr_at(0);  // validates the kind before any work
  for (int epoch = start_epoch; epoch < opt.epochs && !res.early_stopped; ++epoch) {
    const auto te = Clock::now();
    optim.set_lr(sched.lr_at(epoch));
    m.train(true);
    it.reset_epoch(epoch);
    Rng rng(opt.seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);  // dropout + augmentation of this epoch
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
        throw TrainingDiverged((opt.label.empty() ? std::string("training") : opt.label) + ": loss became " +
                               (std::isnan(lv) ? "NaN" : "infinite") + " at epoch " + std::to_string(epoch) + ", batch " +
                               std::to_string(b_i) + "; stopped (the last good checkpoint is kept" +
                               (state_path.empty() ? "" : " in " + opt.out_dir) + "); lower --lr or check the data");
      optim.zero_grad();
      g.backward(loss);
      if (opt.clip_norm > 0) clip_grad_norm(params, opt.clip_norm);
      optim.step();
      loss_sum += lv;
      ++b_i;
      if (opt.interrupt_after_batches >= 0 && ++batches_done >= opt.interrupt_after_batches)
        throw Interrupted("interrupted after " + std::to_string(batches_done) + " batches");
      if (opt.progress) {
        const double el = seconds_since(t0);
        const double done = double(epoch - start_epoch) + double(b_i) / double(batches);
        const double eta = done > 0 ? el / done * double(opt.epochs - start_epoch) - el : 0;
        std::fprintf(stderr, "\r%s epoch %d/%d batch %lld/%lld loss %.3f best val MAE %.2f ETA %s (max)   ",
                     opt.label.c_str(), epoch + 1, opt.epochs, (long long)b_i, (long long)batches, loss_sum / double(b_i),
                     res.best_val_mae < 1e29 ? res.best_val_mae : 0.0, format_duration(eta).c_str());
      }
    }
    // Validation on the held-out subjects, in eval mode.
    const std::vector<float> vp = predict_windows(m, ws, val_idx, norm);
    const double val_mae = compute_metrics(vp, val_truth).mae;
    EpochLog el{epoch, loss_sum / double(std::max<int64_t>(b_i, 1)), val_mae, seconds_since(te), optim.lr()};
    res.history.push_back(el);
    if (!std::isfinite(val_mae))
      throw TrainingDiverged(opt.label + ": validation MAE is not finite at epoch " + std::to_string(epoch));
    if (val_mae < res.best_val_mae) {
      res.best_val_mae = val_mae;
      res.best_epoch = epoch;
      since_best = 0;
      for (size_t i = 0; i < all.size(); ++i) best[i] = all[i].second->value;
    } else if (++since_best >= opt.patience) {
      res.early_stopped = true;
    }
    if (!log_path.empty())
      append_line(log_path, json{{"label", opt.label}, {"epoch", epoch}, {"train_loss", el.train_loss}, {"val_mae", val_mae},
                                 {"best_epoch", res.best_epoch}, {"seconds", el.seconds}, {"lr", el.lr}}.dump());
    if (!state_path.empty()) {
      SafeTensorsFile st;
      st.metadata["pulsekd.config"] = m.config().to_json();
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
  }
  if (opt.progress) std::fprintf(stderr, "\n");
  // Keep the best validation weights.
  for (size_t i = 0; i < all.size(); ++i) all[i].second->value = best[i];
  m.eval();
  res.seconds = seconds_since(t0);
  if (!opt.out_dir.empty())
    save_model(opt.out_dir + "/best.safetensors", m, norm,
               {{"pulsekd.best_epoch", std::to_string(res.best_epoch)}, {"pulsekd.best_val_mae", std::to_string(res.best_val_mae)}});
  return res;
}

}  // namespace pulsekd::kd
