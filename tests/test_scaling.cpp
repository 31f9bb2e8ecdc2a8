// The scaling fit MAE(N) = a·N^(−b) + c: recovers known parameters from synthetic points,
// the bootstrap interval over folds contains the truth, degenerate inputs are handled.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include "engine/rng.h"
#include "kd/plots.h"
#include "kd/scaling.h"

using namespace pulsekd;

namespace {
double law(double n, double a, double b, double c) { return a * std::pow(n, -b) + c; }
}  // namespace

TEST_CASE("the fit recovers a, b, c from exact points") {
  const double a = 800, b = 0.45, c = 3.2;
  std::vector<double> n = {2e3, 5e3, 1.2e4, 3e4, 8e4, 2e5, 6e5}, y;
  for (double x : n) y.push_back(law(x, a, b, c));
  const kd::PowerLawFit f = kd::fit_power_law(n, y);
  REQUIRE(f.ok);
  CHECK(f.b == doctest::Approx(b).epsilon(0.01));
  CHECK(f.c == doctest::Approx(c).epsilon(0.01));
  CHECK(f.a == doctest::Approx(a).epsilon(0.05));
  CHECK(f.rms_log < 1e-4);
  CHECK(f.log_residuals.size() == n.size());
  CHECK(f.predict(1e4) == doctest::Approx(law(1e4, a, b, c)).epsilon(1e-3));
}

TEST_CASE("noisy folds: the fit is close and the bootstrap interval over folds contains the truth") {
  const double a = 2000, b = 0.6, c = 4.0;
  const std::vector<double> n = {1e3, 3e3, 1e4, 3e4, 1e5, 3e5};
  const int folds = 12;
  Rng rng(42);
  std::vector<std::vector<double>> per_fold(n.size());
  std::vector<double> means(n.size(), 0);
  for (size_t i = 0; i < n.size(); ++i)
    for (int f = 0; f < folds; ++f) {
      const double v = law(n[i], a, b, c) * std::exp(0.04 * rng.normal());  // 4 % multiplicative noise
      per_fold[i].push_back(v);
      means[i] += v / folds;
    }
  const kd::PowerLawFit f = kd::fit_power_law(n, means);
  REQUIRE(f.ok);
  CHECK(f.b == doctest::Approx(b).epsilon(0.25));
  CHECK(f.c == doctest::Approx(c).epsilon(0.25));
  for (double x : n) CHECK(f.predict(x) == doctest::Approx(law(x, a, b, c)).epsilon(0.03));
  CHECK(f.rms_log < 0.03);
  const kd::BootstrapFit bf = kd::bootstrap_power_law(n, per_fold, 400, 7);
  CHECK(bf.resamples + bf.failed == 400);
  CHECK(bf.failed < 20);
  CHECK(bf.b.lo <= b);
  CHECK(bf.b.hi >= b);
  CHECK(bf.c.lo <= c);
  CHECK(bf.c.hi >= c);
  CHECK(bf.a.lo <= a);
  CHECK(bf.a.hi >= a);
  CHECK(bf.b.lo <= f.b);
  CHECK(bf.b.hi >= f.b);
}

TEST_CASE("degenerate inputs: two sizes fix c at 0, one size does not fit, bad values throw") {
  const kd::PowerLawFit two = kd::fit_power_law({1e3, 1e4}, {10, 5});
  REQUIRE(two.ok);
  CHECK(two.c_fixed);
  CHECK(two.c == 0);
  CHECK(two.b == doctest::Approx(std::log10(2.0)).epsilon(1e-6));
  const kd::PowerLawFit one = kd::fit_power_law({1e3, 1e3}, {10, 9});
  CHECK_FALSE(one.ok);
  CHECK(one.note.find("2 distinct") != std::string::npos);
  CHECK_THROWS_AS(kd::fit_power_law({1e3, -1}, {1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(kd::fit_power_law({1e3, 1e4}, {1}), std::invalid_argument);
  // a single fold: the bootstrap interval collapses onto the fit and says so
  const kd::BootstrapFit bf = kd::bootstrap_power_law({1e3, 1e4, 1e5, 1e6}, {{9}, {6}, {5}, {4.5}}, 50, 1);
  CHECK(bf.note.find("1 fold") != std::string::npos);
  CHECK(bf.b.lo == doctest::Approx(bf.b.hi));
}

TEST_CASE("the log-x chart is a well-formed SVG with markers and fit curves") {
  kd::ScatterSeries s{"pulse <- teacher", "", {1e3, 1e4, 1e5}, {8, 6, 5}, {1e3, 1e5}, {8.1, 4.9}};
  const std::string svg = kd::svg_log_x_chart("t", "params", "MAE", {s});
  CHECK(svg.find("<svg") == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("<circle") != std::string::npos);
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  CHECK(svg.find("&lt;-") != std::string::npos);  // escaped
  // The escaping every chart shares: text and single-quoted attributes.
  CHECK(kd::svg::esc("a'b<c>&d") == "a&apos;b&lt;c&gt;&amp;d");
}
