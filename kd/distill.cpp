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

bool TeacherCache::covers(const std::vector<int64_t>& windows) const {
  return std::all_of(windows.begin(), windows.end(),
                     [&](int64_t w) { return w >= 0 && w < int64_t(row_of.size()) && row_of[size_t(w)] >= 0; });
}

void DistillLoss::cache_teacher(const data::WindowSet& ws, const std::vector<int64_t>& windows, const data::Normalizer& norm,
                                int batch) {
  if (!teacher || !cache) throw std::logic_error("cache_teacher: the loss was not made by make_distill_loss");
  data::BatchIterator chunks(ws, windows, batch, 0, false, false);  // in order; checks batch and indices
  TeacherCache c;
  c.row_of.assign(ws.hr.size(), -1);
  for (size_t i = 0; i < windows.size(); ++i) c.row_of[size_t(windows[i])] = int64_t(i);
  NoGradGuard ng;
  Rng unused(0);  // eval mode: no dropout
  Graph g;
  std::vector<int64_t> b;   // (B) this chunk's windows
  std::vector<float> x, y;  // (B, 4, 256), (B)
  auto append = [](std::vector<real>& dst, const Var& v) { dst.insert(dst.end(), v.data(), v.data() + v.shape().numel()); };
  while (chunks.next(b)) {
    const int64_t bs = int64_t(b.size());
    x.resize(size_t(bs) * data::kRows * data::kWindow);
    y.resize(size_t(bs));
    data::gather_batch(ws, b, norm, x.data(), y.data());
    const std::vector<real> xr(x.begin(), x.end());
    g.reset();
    const models::ModelOutput t = teacher->forward(g, g.input({bs, 4, 256, 1}, xr.data()), unused);
    append(c.hr, t.hr);
    c.dense = t.dense32.shape()[1];
    append(c.dense32, t.dense32);
    if (t.logits.defined()) {
      c.bins = t.logits.shape()[1];
      append(c.logits, t.logits);
    }
    if (adapter) {  // FitNets compares the last block's map
      const Shape& fs = t.features[2].shape();  // (B*4, T, C)
      c.feat_t = fs[1];
      c.feat_c = fs[2];
      append(c.feature, t.features[2]);
    }
  }
  *cache = std::move(c);
}

namespace {

// The cached teacher outputs of a batch's windows as graph inputs (no gradient), shaped as
// the teacher's forward would give them.
models::ModelOutput cached_teacher_outputs(Graph& g, const TeacherCache& c, const std::vector<int64_t>& windows) {
  const int64_t bs = int64_t(windows.size());
  std::vector<real> rows;
  auto gather = [&](const std::vector<real>& src, int64_t row) -> const real* {
    rows.resize(size_t(bs * row));
    for (int64_t i = 0; i < bs; ++i) {
      const int64_t r = c.row_of[size_t(windows[size_t(i)])];
      std::copy_n(src.begin() + long(r * row), row, rows.begin() + long(i * row));
    }
    return rows.data();
  };
  models::ModelOutput t;
  t.hr = g.input({bs}, gather(c.hr, 1));
  t.dense32 = g.input({bs, c.dense}, gather(c.dense32, c.dense));
  if (c.bins > 0) t.logits = g.input({bs, c.bins}, gather(c.logits, c.bins));
  if (!c.feature.empty()) {
    t.features.resize(3);
    t.features[2] = g.input({bs * 4, c.feat_t, c.feat_c}, gather(c.feature, 4 * c.feat_t * c.feat_c));
  }
  return t;
}

}  // namespace

DistillLoss make_distill_loss(models::PulseModel& teacher, models::PulseModel& student, const DistillOptions& o,
                              uint64_t seed) {
  o.validate(student.config(), teacher.config());
  DistillLoss dl;
  const bool use_fitnet = std::count(o.strategies.begin(), o.strategies.end(), "fitnet") > 0;
  if (use_fitnet)
    dl.adapter = std::make_unique<FitNetAdapter>(student.block_channels()[2], teacher.block_channels()[2], seed + 17);
  FitNetAdapter* adapter = dl.adapter.get();
  teacher.eval();
  dl.teacher = &teacher;
  dl.cache = std::make_shared<TeacherCache>();
  std::shared_ptr<const TeacherCache> cache = dl.cache;
  const models::ModelConfig sc = student.config();
  dl.fn = [&teacher, &student, o, adapter, sc, cache](Graph& g, const models::ModelOutput& s, const BatchView& b) {
    models::ModelOutput t;
    if (!b.augmented && b.windows && cache->covers(*b.windows)) {
      t = cached_teacher_outputs(g, *cache, *b.windows);
    } else {
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
