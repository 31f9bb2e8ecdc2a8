#include "kd/scaling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "engine/rng.h"
#include "kd/fileutil.h"
#include "kd/plots.h"
#include "kd/sweep.h"

namespace pulsekd::kd {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Fit

double PowerLawFit::predict(double n_params) const { return a * std::pow(n_params, -b) + c; }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Log-scale loss of (log A, b, c) on scaled sizes x = n / n_ref.
double log_loss(const std::vector<double>& lx, const std::vector<double>& ly, double log_a, double b, double c) {
  double s = 0;
  for (size_t i = 0; i < lx.size(); ++i) {
    const double f = std::exp(log_a - b * lx[i]) + c;
    const double r = ly[i] - std::log(f);
    s += r * r;
  }
  return s;
}

// Solves the 3x3 (or smaller) system A x = r by Gaussian elimination with pivoting.
bool solve(std::vector<std::vector<double>> A, std::vector<double> r, std::vector<double>& x) {
  const size_t n = r.size();
  for (size_t k = 0; k < n; ++k) {
    size_t p = k;
    for (size_t i = k + 1; i < n; ++i)
      if (std::abs(A[i][k]) > std::abs(A[p][k])) p = i;
    if (std::abs(A[p][k]) < 1e-300) return false;
    std::swap(A[k], A[p]);
    std::swap(r[k], r[p]);
    for (size_t i = k + 1; i < n; ++i) {
      const double f = A[i][k] / A[k][k];
      for (size_t j = k; j < n; ++j) A[i][j] -= f * A[k][j];
      r[i] -= f * r[k];
    }
  }
  x.assign(n, 0);
  for (size_t k = n; k-- > 0;) {
    double s = r[k];
    for (size_t j = k + 1; j < n; ++j) s -= A[k][j] * x[j];
    x[k] = s / A[k][k];
  }
  return true;
}

}  // namespace

PowerLawFit fit_power_law(const std::vector<double>& n, const std::vector<double>& mae, const FitOptions& o) {
  PowerLawFit f;
  if (n.size() != mae.size()) throw std::invalid_argument("fit_power_law: sizes and MAEs differ in count");
  for (size_t i = 0; i < n.size(); ++i)
    if (!(n[i] > 0) || !(mae[i] > 0) || !std::isfinite(n[i]) || !std::isfinite(mae[i]))
      throw std::invalid_argument("fit_power_law: parameter counts and MAEs must be finite and > 0");
  f.n = n;
  f.mae = mae;
  f.n_points = int(n.size());
  f.n_sizes = int(std::set<double>(n.begin(), n.end()).size());
  if (f.n_sizes < 2) {
    f.note = "needs at least 2 distinct student sizes";
    return f;
  }
  // Scale sizes by their geometric mean so that log a and b decouple numerically.
  double lref = 0;
  for (double v : n) lref += std::log(v) / double(n.size());
  std::vector<double> lx, ly;
  for (size_t i = 0; i < n.size(); ++i) {
    lx.push_back(std::log(n[i]) - lref);
    ly.push_back(std::log(mae[i]));
  }
  const double ymin = *std::min_element(mae.begin(), mae.end());
  double best = std::numeric_limits<double>::infinity(), la = 0, b = 0, c = 0;
  auto closed_form_log_a = [&](double bb, double cc) {
    double s = 0;
    for (size_t i = 0; i < lx.size(); ++i) s += std::log(mae[i] - cc) + bb * lx[i];
    return s / double(lx.size());
  };
  if (f.n_sizes == 2) {
    // c = 0: log mae = log A − b·lx is linear; ordinary least squares.
    double mx = 0, my = 0;
    for (size_t i = 0; i < lx.size(); ++i) mx += lx[i] / double(lx.size()), my += ly[i] / double(lx.size());
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < lx.size(); ++i) sxy += (lx[i] - mx) * (ly[i] - my), sxx += (lx[i] - mx) * (lx[i] - mx);
    b = std::max(0.0, -sxy / sxx);
    la = closed_form_log_a(b, 0);
    c = 0;
    f.c_fixed = true;
    f.note = "2 distinct sizes: c fixed at 0";
  } else {
    for (int ib = 1; ib <= o.grid_b; ++ib) {
      const double bb = 4.0 * ib / o.grid_b;
      for (int ic = 0; ic < o.grid_c; ++ic) {
        const double cc = ymin * 0.999 * ic / o.grid_c;
        const double l_a = closed_form_log_a(bb, cc);
        const double loss = log_loss(lx, ly, l_a, bb, cc);
        if (loss < best) best = loss, la = l_a, b = bb, c = cc;
      }
    }
    // Levenberg-Marquardt on θ = (log A, b, c), residual r_i = ly_i − log(A e^{−b lx_i} + c).
    double lambda = 1e-3;
    double cur = log_loss(lx, ly, la, b, c);
    for (int it = 0; it < o.lm_iterations; ++it) {
      std::vector<std::vector<double>> JtJ(3, std::vector<double>(3, 0));
      std::vector<double> Jtr(3, 0);
      for (size_t i = 0; i < lx.size(); ++i) {
        const double p = std::exp(la - b * lx[i]), fv = p + c;
        const double r = ly[i] - std::log(fv);
        // d r / d θ
        const double j[3] = {-p / fv, p * lx[i] / fv, -1.0 / fv};
        for (int u = 0; u < 3; ++u) {
          Jtr[size_t(u)] += j[u] * r;
          for (int v = 0; v < 3; ++v) JtJ[size_t(u)][size_t(v)] += j[u] * j[v];
        }
      }
      bool improved = false;
      for (int tries = 0; tries < 20 && !improved; ++tries) {
        auto A = JtJ;
        for (int u = 0; u < 3; ++u) A[size_t(u)][size_t(u)] += lambda * (1 + JtJ[size_t(u)][size_t(u)]);
        std::vector<double> neg(3), d;
        for (int u = 0; u < 3; ++u) neg[size_t(u)] = -Jtr[size_t(u)];
        if (!solve(A, neg, d)) {
          lambda *= 10;
          continue;
        }
        const double nla = la + d[0], nb = std::clamp(b + d[1], 0.0, 8.0), nc = std::max(0.0, c + d[2]);
        const double nl = log_loss(lx, ly, nla, nb, nc);
        if (std::isfinite(nl) && nl < cur) {
          la = nla, b = nb, c = nc, cur = nl;
          lambda = std::max(1e-12, lambda / 3);
          improved = true;
        } else {
          lambda *= 10;
        }
      }
      if (!improved || cur < 1e-30) break;
    }
    if (f.n_sizes == 3) f.note = "3 distinct sizes: exactly determined (residuals near 0 say nothing about the fit)";
  }
  // Back to raw parameter counts: A·(n/n_ref)^(−b) = A·n_ref^b · n^(−b).
  f.a = std::exp(la + b * lref);
  f.b = b;
  f.c = c;
  f.ok = std::isfinite(f.a) && std::isfinite(f.b) && std::isfinite(f.c);
  if (!f.ok) f.note = "the fit did not converge";
  for (size_t i = 0; i < n.size(); ++i) {
    const double fv = std::exp(la - b * lx[i]) + c;
    f.fitted.push_back(fv);
    f.log_residuals.push_back(ly[i] - std::log(fv));
    f.rss_log += f.log_residuals.back() * f.log_residuals.back();
  }
  f.rms_log = std::sqrt(f.rss_log / double(n.size()));
  return f;
}

BootstrapFit bootstrap_power_law(const std::vector<double>& n, const std::vector<std::vector<double>>& per_fold, int resamples,
                                 uint64_t seed, double level) {
  BootstrapFit bf;
  if (per_fold.size() != n.size()) throw std::invalid_argument("bootstrap_power_law: one row of fold MAEs per size");
  size_t folds = 0;
  for (auto& r : per_fold) folds = std::max(folds, r.size());
  bf.folds = int(folds);
  if (folds == 0) {
    bf.note = "no folds";
    return bf;
  }
  if (folds == 1) bf.note = "1 fold: the interval is a single point (a bootstrap over folds needs several)";
  FitOptions fo;
  fo.grid_b = 50;
  fo.grid_c = 50;
  Rng rng(seed);
  std::vector<double> as, bs, cs;
  for (int r = 0; r < resamples; ++r) {
    std::vector<size_t> draw(folds);
    for (auto& d : draw) d = size_t(rng.below(uint64_t(folds)));
    std::vector<double> nn, yy;
    for (size_t i = 0; i < n.size(); ++i) {
      double s = 0;
      int k = 0;
      for (size_t d : draw)
        if (d < per_fold[i].size() && std::isfinite(per_fold[i][d])) s += per_fold[i][d], ++k;
      if (k > 0) nn.push_back(n[i]), yy.push_back(s / k);
    }
    PowerLawFit f;
    try {
      f = fit_power_law(nn, yy, fo);
    } catch (const std::exception&) {
      f.ok = false;
    }
    if (!f.ok) {
      ++bf.failed;
      continue;
    }
    as.push_back(f.a), bs.push_back(f.b), cs.push_back(f.c);
  }
  bf.resamples = int(as.size());
  auto interval = [&](std::vector<double>& v) {
    Interval iv{kNaN, kNaN};
    if (v.empty()) return iv;
    std::sort(v.begin(), v.end());
    auto q = [&](double p) {
      const double pos = p * double(v.size() - 1);
      const size_t i = size_t(std::floor(pos));
      const double t = pos - double(i);
      return i + 1 < v.size() ? v[i] * (1 - t) + v[i + 1] * t : v[i];
    };
    iv.lo = q((1 - level) / 2);
    iv.hi = q(1 - (1 - level) / 2);
    return iv;
  };
  bf.a = interval(as);
  bf.b = interval(bs);
  bf.c = interval(cs);
  return bf;
}

// ---------------------------------------------------------------------------------------
// Chart

namespace {

using svg::esc;
using svg::num;

// 2000 → "2k", 5e6 → "5M"
std::string count_label(double v) {
  if (v >= 1e6) return num(v / 1e6) + "M";
  if (v >= 1e3) return num(v / 1e3) + "k";
  return num(v);
}

const char* kColors[] = {"#000000", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"};

}  // namespace

std::string svg_log_x_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                            const std::vector<ScatterSeries>& series) {
  const double W = 760, H = 420, L = 70, R = 220, T = 40, B = 50;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  auto take = [&](const std::vector<double>& xs, const std::vector<double>& ys) {
    for (size_t i = 0; i < xs.size() && i < ys.size(); ++i) {
      if (!(xs[i] > 0) || !std::isfinite(ys[i])) continue;
      x0 = std::min(x0, std::log10(xs[i])), x1 = std::max(x1, std::log10(xs[i]));
      y0 = std::min(y0, ys[i]), y1 = std::max(y1, ys[i]);
    }
  };
  for (auto& s : series) take(s.x, s.y);
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  for (auto& s : series) {  // fitted curves may not stretch the y range much beyond the points
    for (size_t i = 0; i < s.fit_x.size() && i < s.fit_y.size(); ++i)
      if (std::isfinite(s.fit_y[i])) y0 = std::min(y0, s.fit_y[i]);
  }
  const double xpad = std::max(0.05, (x1 - x0) * 0.05);
  x0 -= xpad, x1 += xpad;
  const double ypad = (y1 - y0) * 0.08 + 1e-6;
  y0 = std::max(0.0, y0 - ypad), y1 += ypad;
  auto px = [&](double x) { return L + (std::log10(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  svg::frame(o, {W, H, L, R, T, B}, title, xlabel, ylabel, y0, y1);
  // x ticks at 1, 2, 5 × 10^k inside the range
  for (int e = int(std::floor(x0)); e <= int(std::ceil(x1)); ++e)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, e), lv = std::log10(v);
      if (lv < x0 || lv > x1) continue;
      const double x = px(v);
      o << "<line x1='" << x << "' x2='" << x << "' y1='" << T << "' y2='" << H - B << "' stroke='" << (m == 1 ? "#ccc" : "#eee") << "'/>\n";
      o << "<text x='" << x << "' y='" << H - B + 16 << "' text-anchor='middle'>" << count_label(v) << "</text>\n";
    }
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string c = s.color.empty() ? kColors[k % 10] : s.color;
    if (!s.fit_x.empty()) {
      o << "<polyline fill='none' stroke='" << c << "' stroke-width='1.3' stroke-dasharray='5,3' points='";
      for (size_t i = 0; i < s.fit_x.size() && i < s.fit_y.size(); ++i)
        if (s.fit_x[i] > 0 && std::isfinite(s.fit_y[i]) && s.fit_y[i] <= y1 && s.fit_y[i] >= y0 &&
            std::log10(s.fit_x[i]) >= x0 && std::log10(s.fit_x[i]) <= x1)
          o << num(px(s.fit_x[i])) << "," << num(py(s.fit_y[i])) << " ";
      o << "'/>\n";
    }
    // measured points joined thinly, with markers
    o << "<polyline fill='none' stroke='" << c << "' stroke-width='0.8' stroke-opacity='0.5' points='";
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (s.x[i] > 0 && std::isfinite(s.y[i])) o << num(px(s.x[i])) << "," << num(py(s.y[i])) << " ";
    o << "'/>\n";
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (s.x[i] > 0 && std::isfinite(s.y[i]))
        o << "<circle cx='" << num(px(s.x[i])) << "' cy='" << num(py(s.y[i])) << "' r='3.5' fill='" << c << "'><title>" << esc(s.name)
          << ": " << num(s.x[i]) << " params, " << num(s.y[i]) << "</title></circle>\n";
    const double ly = T + 10 + 18 * double(k);
    o << "<circle cx='" << W - R + 16 << "' cy='" << ly - 3 << "' r='4' fill='" << c << "'/>\n";
    o << "<text x='" << W - R + 26 << "' y='" << ly + 1 << "' font-size='11'>" << esc(s.name) << "</text>\n";
  }
  if (std::any_of(series.begin(), series.end(), [](const ScatterSeries& s) { return !s.fit_x.empty(); }))
    o << "<text x='" << W - R + 10 << "' y='" << H - B << "' font-size='10' fill='#555'>dashed: a·N^(−b) + c fit</text>\n";
  o << "</svg>\n";
  return o.str();
}

}  // namespace pulsekd::kd
