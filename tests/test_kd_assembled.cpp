// The assembled distillation loss (kd::make_distill_loss) on one fixed batch, for every strategy
// kd/ offers and two combinations, against the documented sum written out here from the
// individual loss functions (docs/KD-LOSSES.md, ../shared/docs/KD-STRATEGIES.md):
//   total = Σ_strategies weight · term  (+ the task loss when only rkd / fitnet are selected),
//   FitNets stage 1 = the hint alone.
// The individual losses are checked against independent re-implementations in
// test_grad_kd_losses.cpp; this file checks how kd/distill.cpp combines them. Every weight is
// distinct and non-symmetric, and each case also checks that the deliberately broken variants
// of the formula (b and g swapped, RKD angle dropped, DKD warm-up ignored, FitNets weight or
// stage ignored) differ from the documented sum by far more than the tolerance, so the test
// fails when kd/distill.cpp makes one of those mistakes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kd/distill.h"

using namespace pulsekd;

namespace {

constexpr int64_t kBatch = 6;  // RKD angle needs >= 3 samples

// One formula mistake each; the documented sum is Formula{} (all false).
struct Formula {
  bool swap_pulse_b_g = false;
  bool drop_rkd_angle = false;
  bool ignore_dkd_warmup = false;     // warm-up factor taken as 1
  bool ignore_fitnet_weight = false;  // weight · λ taken as 1
  bool ignore_fitnet_stage = false;   // stage 1 treated as stage 2
};

struct Case {
  std::string name;
  std::string head;  // "regression" or "binned"
  kd::DistillOptions options;
  std::vector<int> epochs;
  // The mistakes this case must catch at each of its epochs (where they change the formula).
  std::vector<std::pair<std::string, Formula>> must_catch;
};

// A quarter-width teacher and half-width student of one head, their outputs on a fixed batch,
// and the batch as the trainer hands it to the loss.
struct Batch {
  models::PulseModel teacher, student;
  std::vector<float> x_host, y_host;  // (B, 4, 256) normalised windows, (B) heart rates
  std::vector<real> x, y;             // the same as engine reals
  Graph g;
  Var xv, yv;
  models::ModelOutput s, t;

  static models::ModelConfig config(const std::string& arch, double width, const std::string& head) {
    models::ModelConfig c;
    c.arch = arch;
    c.width = width;
    c.head = head;
    return c;
  }
  explicit Batch(const std::string& head)
      : teacher(config("teacher", 0.25, head), 21), student(config("student", 0.5, head), 34) {
    Rng rng(7);
    x_host.resize(size_t(kBatch) * 4 * 256);
    for (auto& v : x_host) v = float(rng.normal());
    y_host = {62, 75, 88, 101, 119, 143};
    x.assign(x_host.begin(), x_host.end());
    y.assign(y_host.begin(), y_host.end());
    if (head == "regression") {  // outputs near plausible, different heart rates, so L1(s, t) ≠ 0
      teacher.find("out.bias")->value[0] = 80;
      student.find("out.bias")->value[0] = 105;
    }
    student.eval();  // no dropout: the same student output for the library and the formula
    teacher.eval();
    xv = g.input({kBatch, 4, 256, 1}, x.data());
    yv = g.input({kBatch}, y.data());
    Rng unused(0);
    s = student.forward(g, xv, unused);
    NoGradGuard ng;
    t = teacher.forward(g, xv, unused);
  }
  double library_total(kd::DistillLoss& dl, int epoch) {
    const kd::BatchView bv{xv, yv, &y_host, &x_host, epoch, nullptr, false};  // no windows: live teacher
    return dl.fn(g, s, bv).data()[0];
  }
};

double v(Var x) { return double(x.data()[0]); }

double weight_of(const kd::DistillOptions& o, const std::string& strategy) {
  auto it = o.weights.find(strategy);
  return it == o.weights.end() ? 1.0 : it->second;
}

// Gaussian bin targets (B, K) and the ground-truth bins of the batch's heart rates.
Var bin_targets(Batch& b, std::vector<real>& storage) {
  const models::ModelConfig& c = b.student.config();
  storage = gaussian_bin_targets(b.y_host.data(), kBatch, c.bins, c.bin_lo, c.bin_hi);
  return b.g.input({kBatch, int64_t(c.bins)}, storage.data());
}

// One-hot of the teacher's argmax (first maximum), (B, K).
Var teacher_onehot(Batch& b, std::vector<real>& storage) {
  const int64_t k = b.t.logits.shape()[1];
  storage.assign(size_t(kBatch * k), 0);
  for (int64_t i = 0; i < kBatch; ++i) {
    const real* row = b.t.logits.data() + i * k;
    storage[size_t(i * k + (std::max_element(row, row + k) - row))] = 1;
  }
  return b.g.input({kBatch, k}, storage.data());
}

// The task loss the trainer uses alone: L_task on the HR (regression) or CE with Gaussian bin
// targets (binned).
double task_term(Batch& b, const kd::DistillOptions& o) {
  std::vector<real> tp;
  if (b.student.config().head == "binned") return v(soft_cross_entropy(b.s.logits, bin_targets(b, tp)));
  return v(regression_task_loss(b.s.hr, b.yv, o.task_loss));
}

// g·(b·L1(ŷs, y) + (1−b)·L1(ŷs, ŷt)) + (1−g)·MSE(σ(f_t), σ(f_s))
double pulse_term(Batch& b, const kd::DistillOptions& o, const Formula& f) {
  const double pb = f.swap_pulse_b_g ? o.pulse_g : o.pulse_b, pg = f.swap_pulse_b_g ? o.pulse_b : o.pulse_g;
  const Var hs = reshape(b.s.hr, {kBatch}), ht = reshape(b.t.hr, {kBatch});
  const double task = pb * v(l1_loss(hs, b.yv)) + (1 - pb) * v(l1_loss(hs, ht));
  return pg * task + (1 - pg) * v(mse_loss(softmax(b.t.dense32, -1), softmax(b.s.dense32, -1)));
}

// regression: ½·L_task(ŷs, y) + ½·L_task(ŷs, ŷt); binned: ½·CE(y, σ(z_s)) + ½·CE(onehot(argmax z_t), σ(z_s))
double hard_term(Batch& b, const kd::DistillOptions& o) {
  if (b.student.config().head == "binned") {
    std::vector<real> tp, oh;
    return 0.5 * v(soft_cross_entropy(b.s.logits, bin_targets(b, tp))) +
           0.5 * v(soft_cross_entropy(b.s.logits, teacher_onehot(b, oh)));
  }
  const Var hs = reshape(b.s.hr, {kBatch}), ht = reshape(b.t.hr, {kBatch});
  return 0.5 * v(regression_task_loss(hs, b.yv, o.task_loss)) + 0.5 * v(regression_task_loss(hs, ht, o.task_loss));
}

// (1−α)·CE(y, σ(z_s)) + α·T²·KL(σ(z_t/T) ‖ σ(z_s/T))
double soft_term(Batch& b, const kd::DistillOptions& o) {
  std::vector<real> tp;
  const real inv_t = real(1 / o.temperature);
  const double kl = v(kl_div(log_softmax(scale(b.s.logits, inv_t), -1), softmax(scale(b.t.logits, inv_t), -1)));
  const double ce = v(soft_cross_entropy(b.s.logits, bin_targets(b, tp)));
  return (1 - o.alpha) * ce + o.alpha * o.temperature * o.temperature * kl;
}

// CE(y, σ(z_s)) + w·T²·(α·TCKD + β·NCKD), w = min(epoch / warmup, 1). The T²·(α·TCKD + β·NCKD)
// part is dkd_loss at w = 1 minus its CE (dkd_loss itself is checked in test_grad_kd_losses).
double dkd_term(Batch& b, const kd::DistillOptions& o, int epoch, const Formula& f) {
  std::vector<real> tp;
  const Var targets = bin_targets(b, tp);
  const models::ModelConfig& c = b.student.config();
  const std::vector<int> tbin = target_bin_index(b.y_host.data(), kBatch, c.bins, c.bin_lo, c.bin_hi);
  const double ce = v(soft_cross_entropy(b.s.logits, targets));
  const double kd_part = v(dkd_loss(b.s.logits, b.t.logits, targets, tbin, real(o.dkd_alpha), real(o.dkd_beta),
                                    real(o.temperature), 1)) - ce;
  const double warm = f.ignore_dkd_warmup ? 1.0 : std::min(1.0, double(epoch) / o.dkd_warmup);
  return ce + warm * kd_part;
}

// λ_D·L_D + λ_A·L_A on the dense32 features
double rkd_term(Batch& b, const kd::DistillOptions& o, const Formula& f) {
  const double angle = f.drop_rkd_angle ? 0.0 : o.rkd_angle * v(rkd_angle_loss(b.s.dense32, b.t.dense32));
  return o.rkd_distance * v(rkd_distance_loss(b.s.dense32, b.t.dense32)) + angle;
}

// MSE(r(f_s), f_t) on the last block's maps, the teacher's 16 steps pooled to the student's 8.
double hint_term(Batch& b, FitNetAdapter& adapter) {
  auto [fs, ft] = match_time_lengths(b.s.features[2], b.t.features[2]);
  return v(fitnet_hint_loss(adapter.forward(b.g, fs), ft));
}

// The documented total of the options' strategies at `epoch`, with the mistakes in f.
double documented_total(Batch& b, const kd::DistillOptions& o, FitNetAdapter* adapter, int epoch, const Formula& f) {
  const auto& st = o.strategies;
  const bool fitnet = std::count(st.begin(), st.end(), "fitnet") > 0;
  if (fitnet && !f.ignore_fitnet_stage && epoch < o.fitnet_stage1_epochs) return hint_term(b, *adapter);
  double total = 0;
  bool has_task = false;
  for (const std::string& s : st) {
    const double w = weight_of(o, s);
    if (s == "pulse") total += w * pulse_term(b, o, f);
    if (s == "hard") total += w * hard_term(b, o);
    if (s == "soft") total += w * soft_term(b, o);
    if (s == "dkd") total += w * dkd_term(b, o, epoch, f);
    if (s == "rkd") total += w * rkd_term(b, o, f);
    if (s == "fitnet") total += (f.ignore_fitnet_weight ? 1.0 : w * o.fitnet_lambda) * hint_term(b, *adapter);
    has_task = has_task || s == "pulse" || s == "hard" || s == "soft" || s == "dkd";
  }
  return has_task ? total : total + task_term(b, o);
}

// Distinct weights for every strategy and non-default, non-symmetric hyper-parameters.
kd::DistillOptions options_for(std::vector<std::string> strategies) {
  kd::DistillOptions o;
  o.strategies = std::move(strategies);
  const std::map<std::string, double> w = {{"pulse", 1.3}, {"rkd", 0.7}, {"hard", 1.7},
                                           {"soft", 0.6},  {"dkd", 0.45}, {"fitnet", 2.5}};
  for (const auto& s : o.strategies) o.weights[s] = w.at(s);
  o.pulse_b = 0.3;
  o.pulse_g = 0.8;
  o.rkd_distance = 1.5;
  o.rkd_angle = 3.5;
  o.temperature = 3;
  o.alpha = 0.7;
  o.dkd_alpha = 1.5;
  o.dkd_beta = 5;
  o.dkd_warmup = 8;
  o.fitnet_lambda = 20;
  return o;
}

Formula swapped_b_g() { Formula f; f.swap_pulse_b_g = true; return f; }
Formula no_angle() { Formula f; f.drop_rkd_angle = true; return f; }
Formula no_warmup() { Formula f; f.ignore_dkd_warmup = true; return f; }
Formula no_fitnet_weight() { Formula f; f.ignore_fitnet_weight = true; return f; }
Formula no_fitnet_stage() { Formula f; f.ignore_fitnet_stage = true; return f; }

std::vector<Case> every_case() {
  std::vector<Case> c;
  c.push_back({"pulse", "regression", options_for({"pulse"}), {0}, {{"b and g swapped", swapped_b_g()}}});
  c.push_back({"rkd + task", "regression", options_for({"rkd"}), {0}, {{"angle dropped", no_angle()}}});
  c.push_back({"hard, regression, mse task", "regression", options_for({"hard"}), {0}, {}});
  c.back().options.task_loss = "mse";
  c.push_back({"fitnet stage 2 + task", "regression", options_for({"fitnet"}), {2, 5}, {{"weight ignored", no_fitnet_weight()}}});
  c.back().options.fitnet_stage1_epochs = 2;
  c.push_back({"fitnet stage 1", "regression", options_for({"fitnet"}), {0, 1}, {{"stage ignored", no_fitnet_stage()}}});
  c.back().options.fitnet_stage1_epochs = 2;
  c.push_back({"pulse + rkd", "regression", options_for({"pulse", "rkd"}), {0},
               {{"b and g swapped", swapped_b_g()}, {"angle dropped", no_angle()}}});
  c.push_back({"hard, binned", "binned", options_for({"hard"}), {0}, {}});
  c.push_back({"soft", "binned", options_for({"soft"}), {0}, {}});
  c.push_back({"dkd during warm-up", "binned", options_for({"dkd"}), {0, 3, 5}, {{"warm-up ignored", no_warmup()}}});
  c.push_back({"dkd after warm-up", "binned", options_for({"dkd"}), {8, 12}, {}});
  c.push_back({"soft + fitnet (single stage)", "binned", options_for({"soft", "fitnet"}), {0},
               {{"weight ignored", no_fitnet_weight()}}});
  c.push_back({"rkd + binned task", "binned", options_for({"rkd"}), {0}, {{"angle dropped", no_angle()}}});
  return c;
}

}  // namespace

TEST_CASE("the assembled distillation loss is the documented weighted sum, for every strategy") {
  // Measured: |library − documented| / |documented| ≤ 1.4e-7 over all cases (float build: the
  // library sums float terms, this side sums the same terms in double). Tolerance 1e-5, 70×
  // the measured difference. The mistakes move the sum by 6.3e-3 (RKD angle beside an L1 task
  // of ~24 BPM) to 1.2e3 relative, so requiring > 100× the tolerance leaves a margin of 6×.
  const double tol = 1e-5;
  for (const Case& c : every_case()) {
    Batch b(c.head);
    kd::DistillLoss dl = kd::make_distill_loss(b.teacher, b.student, c.options, 3);
    for (int epoch : c.epochs) {
      INFO(c.name << ", epoch " << epoch);
      const double lib = b.library_total(dl, epoch);
      const double want = documented_total(b, c.options, dl.adapter.get(), epoch, Formula{});
      MESSAGE(c.name << ", epoch " << epoch << ": library " << lib << ", documented " << want
                     << ", relative difference " << std::fabs(lib - want) / std::fabs(want));
      CHECK(std::isfinite(want));
      CHECK(std::fabs(lib - want) <= tol * std::fabs(want));
      // Each mistake moves the sum by far more than the tolerance, so the check above sees it.
      for (const auto& [mistake, f] : c.must_catch) {
        INFO("mistake: " << mistake);
        const double wrong = documented_total(b, c.options, dl.adapter.get(), epoch, f);
        CHECK(std::fabs(wrong - want) > 100 * tol * std::fabs(want));
      }
    }
  }
}
