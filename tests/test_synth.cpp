// Synthetic dataset: determinism, coverage, consistency, difficulty.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "datasets/baseline.h"
#include "datasets/synth.h"

using namespace pulsekd::data;

TEST_CASE("SynthRng: reproducible, uniform in [0,1), normal has mean 0 and std 1") {
  SynthRng a(42), b(42);
  double m = 0, v = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = a.uniform();
    CHECK_FALSE((u < 0 || u >= 1));
    CHECK(u == b.uniform());
    const double z = a.normal();
    CHECK(z == b.normal());
    m += z;
    v += z * z;
  }
  m /= n;
  v = v / n - m * m;
  CHECK(std::fabs(m) < 0.01);
  CHECK(std::fabs(v - 1) < 0.02);
  // First draws are pinned so a change of the generator is noticed (mt19937_64 is specified).
  SynthRng c(1);
  CHECK(c.next_u64() == 2469588189546311528ULL);
}

TEST_CASE("deterministic by seed, different across seeds") {
  SynthOptions o;
  o.subjects = 2;
  o.minutes = 2;
  const WindowSet a = make_synthetic(o), b = make_synthetic(o);
  CHECK(a.x == b.x);
  CHECK(a.hr == b.hr);
  o.seed = 2;
  const WindowSet c = make_synthetic(o);
  CHECK(a.x != c.x);
}

// The default set's values as generated before: a change to the model or to the order of its
// random draws shows here. Tolerances allow last-digit libm differences, not a new draw order.
TEST_CASE("default set: pinned values") {
  SynthTruth tr;
  const WindowSet ws = make_synthetic(SynthOptions{}, &tr);
  REQUIRE(ws.hr.size() == 1416);
  REQUIRE(ws.x.size() == 1449984);
  double sx = 0, sh = 0;
  for (float v : ws.x) sx += v;
  for (float v : ws.hr) sh += v;
  CHECK(sx == doctest::Approx(-175049.971).epsilon(1e-6));
  CHECK(sh == doctest::Approx(166786.652).epsilon(1e-7));
  CHECK(ws.hr[0] == doctest::Approx(48.5660019).epsilon(1e-6));
  CHECK(ws.hr[100] == doctest::Approx(155.257248).epsilon(1e-6));
  CHECK(ws.hr[700] == doctest::Approx(156.902374).epsilon(1e-6));
  CHECK(ws.hr[1415] == doctest::Approx(104.73748).epsilon(1e-6));
  CHECK(ws.x[0] == doctest::Approx(0.0252552517).epsilon(1e-5));
  CHECK(ws.x[1000] == doctest::Approx(0.226324007).epsilon(1e-5));
  CHECK(ws.x[123456] == doctest::Approx(-0.771069586).epsilon(1e-5));
  CHECK(ws.x[1449000] == doctest::Approx(0.273146421).epsilon(1e-5));
  int act[4] = {0, 0, 0, 0}, locked = 0;
  for (SynthActivity a : tr.activity) ++act[static_cast<int>(a)];
  for (uint8_t l : tr.locked) locked += l;
  CHECK(act[0] == 300);  // rest
  CHECK(act[1] == 270);  // walk
  CHECK(act[2] == 650);  // run
  CHECK(act[3] == 196);  // arm
  CHECK(locked == 159);
}

TEST_CASE("default set: windows, labels and subjects consistent; 45-190 BPM covered") {
  SynthTruth truth;
  const WindowSet ws = make_synthetic(SynthOptions{}, &truth);
  REQUIRE(ws.subjects.size() == 8);
  const int64_t per = (6 * 60 - 8) / 2 + 1;  // 177
  CHECK(ws.size() == 8 * per);
  CHECK(ws.x.size() == static_cast<size_t>(ws.size()) * kRows * kWindow);
  CHECK(truth.activity.size() == static_cast<size_t>(ws.size()));
  float lo = 1e9f, hi = 0;
  for (int s = 0; s < 8; ++s) {
    const auto& info = ws.subjects[s];
    CHECK(info.first_window == s * per);
    CHECK(info.num_windows == per);
    for (int64_t k = 0; k < per; ++k) {
      CHECK(ws.subject[info.first_window + k] == s);
      const float h = ws.hr[info.first_window + k];
      CHECK(h >= info.label_min);
      CHECK(h <= info.label_max);
    }
    lo = std::min(lo, info.label_min);
    hi = std::max(hi, info.label_max);
  }
  MESSAGE("label range over subjects: " << lo << " .. " << hi << " BPM");
  CHECK(lo >= 44.0f);
  CHECK(lo < 52.0f);
  CHECK(hi > 175.0f);
  CHECK(hi <= 191.0f);
  bool finite = true;
  for (float v : ws.x) finite = finite && std::isfinite(v);
  CHECK(finite);
}

TEST_CASE("difficulty: PPG-only peak picking fails on motion, the PPG+ACC tracker does not") {
  SynthTruth truth;
  const WindowSet ws = make_synthetic(SynthOptions{}, &truth);
  const auto tr = spectral_baseline(ws, 0, ws.size());
  const auto pk = ppg_peak_baseline(ws, 0, ws.size());
  double e_tr = 0, e_pk = 0, r_tr = 0, r_pk = 0;
  int n = 0, nr = 0;
  for (int64_t i = 0; i < ws.size(); ++i) {
    const double a = std::fabs(tr[i] - ws.hr[i]), b = std::fabs(pk[i] - ws.hr[i]);
    if (truth.activity[i] == SynthActivity::Rest) {
      r_tr += a;
      r_pk += b;
      ++nr;
    } else {
      e_tr += a;
      e_pk += b;
      ++n;
    }
  }
  e_tr /= n;
  e_pk /= n;
  MESSAGE("motion windows (" << n << "): PPG-only peak MAE " << e_pk << ", tracker MAE " << e_tr
                             << "; rest (" << nr << "): " << r_pk / nr << " / " << r_tr / nr);
  CHECK(e_pk > 15.0);        // measured 25.6
  CHECK(e_tr < 0.5 * e_pk);  // measured 8.3
  CHECK(r_tr / nr < 3.0);    // at rest both are easy
}

TEST_CASE("bad options") {
  SynthOptions o;
  o.subjects = 0;
  CHECK_THROWS(make_synthetic(o));
  o = {};
  o.internal_hz = 100;
  CHECK_THROWS(make_synthetic(o));
  o = {};
  o.minutes = 0.1;
  CHECK_THROWS(make_synthetic(o));
}
