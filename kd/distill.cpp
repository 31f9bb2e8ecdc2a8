#include "kd/distill.h"

#include <algorithm>
#include <stdexcept>

#include "engine/ops.h"

namespace pulsekd::kd {

const std::vector<std::string>& DistillOptions::known() {
  static const std::vector<std::string> k = {"pulse", "rkd", "hard", "soft", "dkd", "fitnet"};
  return k;
}

void DistillOptions::validate(const models::ModelConfig& s, const models::ModelConfig& t) const {
  if (strategies.empty()) throw std::invalid_argument("--kd: give at least one strategy (pulse, rkd, hard, soft, dkd, fitnet)");
  for (const auto& st : strategies)
    if (std::find(known().begin(), known().end(), st) == known().end())
      throw std::invalid_argument("--kd: unknown strategy '" + st + "' (expected pulse, rkd, hard, soft, dkd or fitnet)");
  for (const auto& [k, w] : weights)
    if (std::find(strategies.begin(), strategies.end(), k) == strategies.end() || !(w >= 0))
      throw std::invalid_argument("--kd-weights: '" + k + "' is not a selected strategy or has a negative weight");
  const bool needs_bins = std::any_of(strategies.begin(), strategies.end(), [](const std::string& x) {
    return x == "soft" || x == "dkd";
  });
  if (needs_bins && (s.head != "binned" || t.head != "binned"))
    throw std::invalid_argument("--kd soft and dkd need the binned head on teacher and student (--head binned)");
  if (s.head != t.head) throw std::invalid_argument("teacher and student heads differ (" + t.head + " vs " + s.head + ")");
  if (s.head == "binned" && (s.bins != t.bins || s.bin_lo != t.bin_lo || s.bin_hi != t.bin_hi))
    throw std::invalid_argument("teacher and student bins differ");
  if (std::count(strategies.begin(), strategies.end(), "pulse") && s.dense != t.dense)
    throw std::invalid_argument("--kd pulse compares dense32 features: teacher and student dense widths differ");
  if (!(temperature > 0)) throw std::invalid_argument("--temperature must be > 0");
  if (!(alpha >= 0 && alpha <= 1)) throw std::invalid_argument("--alpha must be in [0, 1]");
  if (!(pulse_b >= 0 && pulse_b <= 1 && pulse_g >= 0 && pulse_g <= 1)) throw std::invalid_argument("PULSE b and g must be in [0, 1]");
}

std::vector<Parameter*> DistillLoss::extra_parameters() const {
  return adapter ? adapter->trainable_parameters() : std::vector<Parameter*>{};
}

DistillLoss make_distill_loss(models::PulseModel& teacher, models::PulseModel& student, const DistillOptions& o,
                              uint64_t seed) {
  o.validate(student.config(), teacher.config());
  DistillLoss dl;
  const bool use_fitnet = std::count(o.strategies.begin(), o.strategies.end(), "fitnet") > 0;
  if (use_fitnet)
    dl.adapter = std::make_unique<FitNetAdapter>(student.block_channels()[2], teacher.block_channels()[2], seed + 17);
  FitNetAdapter* adapter = dl.adapter.get();
  teacher.eval();
  const models::ModelConfig sc = student.config();
  dl.fn = [&teacher, &student, o, adapter, sc](Graph& g, const models::ModelOutput& s, const BatchView& b) {
    models::ModelOutput t;
    {
      NoGradGuard ng;  // the teacher is frozen: no tape for it
      Rng unused(0);
      t = teacher.forward(g, b.x, unused);
    }
    const int64_t bs = int64_t(b.y_host->size());
    auto weight = [&](const std::string& k) {
      auto it = o.weights.find(k);
      return real(it == o.weights.end() ? 1.0 : it->second);
    };
    // FitNets hint on the last block's feature map: student (B*4, Ts, Cs) → adapter → (B*4, Ts, Ct),
    // the longer time axis average-pooled to the shorter (teacher 16 steps, student 8).
    auto hint = [&]() {
      auto [fs, ft] = match_time_lengths(s.features[2], t.features[2]);
      return fitnet_hint_loss(adapter->forward(g, fs), ft);
    };
    if (adapter && o.fitnet_stage1_epochs > 0 && b.epoch < o.fitnet_stage1_epochs) return hint();  // two-stage: stage 1
    std::vector<real> tgt;
    std::vector<int> tbin;
    Var tp;
    if (sc.head == "binned") {
      tgt = gaussian_bin_targets(b.y_host->data(), bs, sc.bins, sc.bin_lo, sc.bin_hi);
      tbin = target_bin_index(b.y_host->data(), bs, sc.bins, sc.bin_lo, sc.bin_hi);
      tp = g.input({bs, int64_t(sc.bins)}, tgt.data());
    }
    Var total;
    bool has_task = false;
    auto acc = [&](Var term, real w) { total = total.defined() ? add(total, scale(term, w)) : scale(term, w); };
    for (const std::string& st : o.strategies) {
      const real w = weight(st);
      if (st == "pulse") {
        acc(pulse_kd_loss(s.hr, t.hr, b.y, s.dense32, t.dense32, real(o.pulse_b), real(o.pulse_g)), w);
        has_task = true;
      } else if (st == "hard") {
        acc(sc.head == "binned" ? hard_kd_loss_binned(s.logits, t.logits, tp) : hard_kd_loss_regression(s.hr, t.hr, b.y, o.task_loss), w);
        has_task = true;
      } else if (st == "soft") {
        acc(soft_kd_loss(s.logits, t.logits, tp, real(o.temperature), real(o.alpha)), w);
        has_task = true;
      } else if (st == "dkd") {
        const real warm = real(std::min(1.0, double(b.epoch) / std::max(1, o.dkd_warmup)));
        acc(dkd_loss(s.logits, t.logits, tp, tbin, real(o.dkd_alpha), real(o.dkd_beta), real(o.temperature), warm), w);
        has_task = true;
      } else if (st == "rkd") {
        acc(add(scale(rkd_distance_loss(s.dense32, t.dense32), real(o.rkd_distance)),
                scale(rkd_angle_loss(s.dense32, t.dense32), real(o.rkd_angle))), w);
      } else if (st == "fitnet") {
        acc(hint(), w * real(o.fitnet_lambda));
      }
    }
    if (!has_task) {
      // rkd / fitnet only add terms: the task loss stays.
      Var task = task_loss(g, student, s, b, o.task_loss);
      total = total.defined() ? add(total, task) : task;
    }
    return total;
  };
  return dl;
}

}  // namespace pulsekd::kd
