// The backward pass of the released PULSE models against PyTorch: the teacher's and the
// student's parameter gradients of the L1 loss, and the student's under the PULSE loss and
// hard KD with the frozen teacher (built by kd::make_distill_loss, as training builds them),
// on the 8 windows of ../shared/reference/kd_pulse_fold1.json with the labels of
// grad_reference_fold1.safetensors (PyTorch 1.13 autograd in double precision, both models in
// eval mode; its README says what each tensor is). This runs in the float build, where the
// models live; the losses' own references are checked in double precision in
// test_grad_reference.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/safetensors.h"
#include "kd/distill.h"
#include "models/checkpoint.h"
#include "tests/reference_tensors.h"
#include "tests/shared_data.h"

using namespace pulsekd;

namespace {

const std::string kRef = pulsekd::testing::shared_path("reference/");
constexpr int64_t kB = 8;  // reference windows

// Float build against PyTorch's double (relative error = max|Δ| / max|PyTorch|). Measured:
// parameter gradients, whole model / worst tensor: teacher L1 3.4e-6 / 9.0e-6 (conv12.bias),
// student L1 1.0e-6 / 2.6e-6, student PULSE and hard KD 4e-7 / 1.0e-6; losses <= 1.9e-7.
// Tolerances: 1e-4 for gradients (11x the worst), 1e-5 for losses (50x).
// Averaging conventions are the original code's: L1 over the batch, the PULSE feature MSE over
// all B·32 elements.
constexpr double kGradTol = 1e-4;
constexpr double kLossTol = 1e-5;

// The one place that decides whether these cases run: a reported skip (tests/shared_data.h).
bool have_reference() {
  for (const std::string f : {"grad_reference_fold1.safetensors", "kd_pulse_fold1.json", "pulse_teacher_fold1.pt",
                              "pulse_student_fold1.pt"})
    if (!pulsekd::testing::require_shared(kRef + f, "released checkpoints and PyTorch references")) return false;
  return true;
}

const SafeTensorsFile& reference() {
  static const SafeTensorsFile f = load_safetensors(kRef + "grad_reference_fold1.safetensors");
  return f;
}

std::vector<double> tensor(const std::string& name, const std::vector<int64_t>& shape) {
  return testing::f64_tensor(reference(), name, shape);
}

// The 8 windows (B, 4, 256) normalised as PyTorch saw them, and their labels (B).
struct Windows {
  std::vector<float> x_host, y_host;
  std::vector<real> x, y;
  Windows() {
    std::ifstream f(kRef + "kd_pulse_fold1.json");
    const nlohmann::json j = nlohmann::json::parse(f);
    REQUIRE(j["input_shape"].get<std::vector<int64_t>>() == std::vector<int64_t>{kB, 1, 4, 256});
    x_host = j["input"].get<std::vector<float>>();
    for (double v : tensor("labels", {kB})) y_host.push_back(float(v));
    x.assign(x_host.begin(), x_host.end());
    y.assign(y_host.begin(), y_host.end());
  }
};

struct Errors {
  double whole = 0, worst_tensor = 0;  // max|Δ| / max|ref| over the model, and per tensor
  std::string worst_name;
};

// Every parameter gradient of m (PyTorch layout) against `prefix + name`.
Errors compare_gradients(models::PulseModel& m, const std::string& prefix) {
  Errors e;
  double diff_all = 0, scale_all = 0;
  for (auto& [name, p] : m.named_parameters(false)) {
    REQUIRE_MESSAGE(p->grad.size() == p->value.size(), name << " received no gradient");
    Parameter grad_as_value = *p;  // to_torch_layout transposes `value`
    grad_as_value.value = p->grad;
    const std::vector<float> ours = models::to_torch_layout(m, name, grad_as_value);
    const std::vector<double> want = tensor(prefix + name, models::torch_shape(m, name, *p));
    double diff = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      diff = std::max(diff, std::fabs(double(ours[i]) - want[i]));
      scale = std::max(scale, std::fabs(want[i]));
    }
    if (diff / scale > e.worst_tensor) {
      e.worst_tensor = diff / scale;
      e.worst_name = name;
    }
    diff_all = std::max(diff_all, diff);
    scale_all = std::max(scale_all, scale);
  }
  e.whole = diff_all / scale_all;
  return e;
}

void check(const std::string& what, double loss, const std::string& key, models::PulseModel& m) {
  const double want = testing::metadata_number(reference(), key);
  const double loss_err = std::fabs(loss - want) / std::fabs(want);
  const Errors e = compare_gradients(m, "grad." + key + ".");
  MESSAGE(what << ": loss " << loss << " (PyTorch " << want << ", relative error " << loss_err
               << "); parameter gradients: whole model " << e.whole << ", worst tensor " << e.worst_name << " "
               << e.worst_tensor);
  CHECK(loss_err < kLossTol);
  CHECK(e.whole < kGradTol);
  CHECK(e.worst_tensor < kGradTol);
}

std::unique_ptr<models::PulseModel> released(const std::string& arch) {
  auto m = models::import_torch(kRef + "pulse_" + arch + "_fold1.pt", arch);
  m->eval();  // as PyTorch computed the references: no dropout
  m->zero_grad();
  return m;
}

// L1(hr, labels), batch mean, backward into m's parameter gradients.
double l1_backward(models::PulseModel& m, const Windows& w) {
  Graph g;
  Rng unused(0);
  const models::ModelOutput out = m.forward(g, g.input({kB, 4, 256, 1}, w.x.data()), unused);
  const Var loss = l1_loss(out.hr, g.input({kB}, w.y.data()));
  g.backward(loss);
  return double(loss.data()[0]);
}

// The student's distillation loss with the frozen teacher, backward into its gradients.
double distill_backward(const std::string& strategy, models::PulseModel& teacher, models::PulseModel& student,
                        const Windows& w) {
  kd::DistillOptions o;  // defaults: b = 0.5, g = 0.6667, task l1, weight 1
  o.strategies = {strategy};
  kd::DistillLoss dl = kd::make_distill_loss(teacher, student, o, 0);
  Graph g;
  Rng unused(0);
  const kd::BatchView bv{g.input({kB, 4, 256, 1}, w.x.data()), g.input({kB}, w.y.data()), &w.y_host, &w.x_host, 0};
  const models::ModelOutput out = student.forward(g, bv.x, unused);
  const Var loss = dl.fn(g, out, bv);
  g.backward(loss);
  return double(loss.data()[0]);
}

}  // namespace

TEST_CASE("the released teacher's and student's L1 parameter gradients match PyTorch") {
  if (!have_reference()) return;
  const Windows w;
  for (const std::string arch : {"teacher", "student"}) {
    auto m = released(arch);
    const double loss = l1_backward(*m, w);
    check(arch + " L1", loss, arch + ".l1", *m);
  }
}

TEST_CASE("the student's gradients under the PULSE loss and hard KD with the frozen teacher match PyTorch") {
  if (!have_reference()) return;
  const Windows w;
  auto teacher = released("teacher");
  for (const auto& [strategy, key] : {std::pair<std::string, std::string>{"pulse", "student.pulse_kd"}, {"hard", "student.hard_kd"}}) {
    auto student = released("student");
    const double loss = distill_backward(strategy, *teacher, *student, w);
    check("student " + strategy, loss, key, *student);
    // The teacher is frozen: nothing reaches its gradients (they stay unallocated or zero).
    for (auto& [name, p] : teacher->named_parameters(false))
      CHECK(std::all_of(p->grad.begin(), p->grad.end(), [](real v) { return v == 0; }));
  }
}
