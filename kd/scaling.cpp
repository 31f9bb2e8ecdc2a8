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

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '&') o += "&amp;";
    else if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else if (ch == '\'') o += "&apos;";
    else o += ch;
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

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
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n";
  o << "<rect width='100%' height='100%' fill='white'/>\n";
  o << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>" << esc(title) << "</text>\n";
  o << "<text x='" << (L + W - R) / 2 << "' y='" << H - 10 << "' text-anchor='middle'>" << esc(xlabel) << "</text>\n";
  o << "<text x='16' y='" << H / 2 << "' text-anchor='middle' transform='rotate(-90 16 " << H / 2 << ")'>" << esc(ylabel) << "</text>\n";
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B << "' fill='none' stroke='#444'/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = y0 + (y1 - y0) * i / 4, y = py(v);
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << y << "' y2='" << y << "' stroke='#ddd'/>\n";
    o << "<text x='" << L - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << num(v) << "</text>\n";
  }
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

// ---------------------------------------------------------------------------------------
// Report

namespace {

struct PointRec {
  std::string strategy, student, teacher;  // teacher "" for strategy none
  int fold = 0;
  uint64_t seed = 0;
  double mae = kNaN, mae_post = kNaN;
  int64_t s_params = 0, s_macs = 0, t_params = 0;
  double seconds = 0;
};

struct TeacherRec {
  std::string id;
  int64_t params = 0, macs = 0;
  std::vector<double> mae;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  int k = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++k;
  return k ? s / k : kNaN;
}

double sd(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  int k = 0;
  for (double x : v)
    if (std::isfinite(x)) s += (x - m) * (x - m), ++k;
  return k > 1 ? std::sqrt(s / (k - 1)) : kNaN;
}

std::string fmt(double v, int prec = 2) {
  if (!std::isfinite(v)) return "–";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

std::string fmtg(double v) {
  if (!std::isfinite(v)) return "–";
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

std::string series_label(const std::string& strategy, const std::string& teacher) {
  return strategy == "none" ? std::string("none (student alone)") : strategy + " ← " + teacher;
}

}  // namespace

std::string write_sweep_report(const std::string& dir, int bootstrap_resamples) {
  const std::string pdir = dir + "/points";
  if (!fs::is_directory(pdir)) throw std::runtime_error("sweep-report: '" + dir + "' has no points/ directory (not a sweep directory?)");
  std::vector<PointRec> pts;
  std::string data_spec;
  for (auto& e : fs::directory_iterator(pdir)) {
    if (e.path().extension() != ".json") continue;
    const json j = read_json_file(e.path().string());
    try {
      PointRec p;
      p.strategy = j.at("strategy").get<std::string>();
      p.student = j.at("student").at("id").get<std::string>();
      p.s_params = j.at("student").at("parameters").get<int64_t>();
      p.s_macs = j.at("student").at("macs_per_window").get<int64_t>();
      if (!j.at("teacher").is_null()) {
        p.teacher = j.at("teacher").at("id").get<std::string>();
        p.t_params = j.at("teacher").at("parameters").get<int64_t>();
      }
      p.fold = j.at("fold").get<int>();
      p.seed = j.at("seed").get<uint64_t>();
      p.mae = j.at("mae").get<double>();
      p.mae_post = j.at("mae_post").get<double>();
      p.seconds = j.value("seconds", 0.0);
      data_spec = j.value("data", data_spec);
      pts.push_back(p);
    } catch (const json::exception& ex) {
      throw std::runtime_error("'" + e.path().string() + "' is not a sweep point result: " + ex.what());
    }
  }
  if (pts.empty()) throw std::runtime_error("sweep-report: '" + pdir + "' holds no point results yet (run pulsekd sweep first)");
  std::sort(pts.begin(), pts.end(), [](const PointRec& a, const PointRec& b) {
    return std::tie(a.s_params, a.student, a.strategy, a.teacher, a.fold, a.seed) <
           std::tie(b.s_params, b.student, b.strategy, b.teacher, b.fold, b.seed);
  });

  // Teachers.
  std::map<std::string, TeacherRec> teachers;
  if (fs::is_directory(dir + "/teachers"))
    for (auto& td : fs::directory_iterator(dir + "/teachers")) {
      if (!td.is_directory()) continue;
      for (auto& e : fs::directory_iterator(td.path())) {
        if (e.path().extension() != ".json") continue;
        const json j = read_json_file(e.path().string());
        TeacherRec& t = teachers[j.value("id", td.path().filename().string())];
        t.id = j.value("id", td.path().filename().string());
        t.params = j.value("parameters", int64_t(0));
        t.macs = j.value("macs_per_window", int64_t(0));
        t.mae.push_back(j.value("mae", kNaN));
      }
    }
  std::vector<std::string> teacher_order;
  for (auto& [id, t] : teachers) teacher_order.push_back(id);
  for (auto& p : pts)
    if (!p.teacher.empty() && !teachers.count(p.teacher)) {
      teachers[p.teacher] = TeacherRec{p.teacher, p.t_params, 0, {}};
      teacher_order.push_back(p.teacher);
    }
  std::sort(teacher_order.begin(), teacher_order.end(), [&](const std::string& a, const std::string& b) {
    return std::tie(teachers[a].params, a) < std::tie(teachers[b].params, b);
  });

  // Students, series (strategy, teacher), folds.
  std::vector<std::string> students;
  std::map<std::string, int64_t> s_params, s_macs;
  std::set<int> fold_set;
  std::set<uint64_t> seed_set;
  std::vector<std::pair<std::string, std::string>> series;  // (strategy, teacher)
  for (auto& p : pts) {
    if (!s_params.count(p.student)) students.push_back(p.student);
    s_params[p.student] = p.s_params;
    s_macs[p.student] = p.s_macs;
    fold_set.insert(p.fold);
    seed_set.insert(p.seed);
    const auto key = std::make_pair(p.strategy, p.teacher);
    if (std::find(series.begin(), series.end(), key) == series.end()) series.push_back(key);
  }
  std::sort(series.begin(), series.end(), [&](const auto& a, const auto& b) {
    const bool an = a.first == "none", bn = b.first == "none";
    if (an != bn) return an;
    const int64_t ta = teachers.count(a.second) ? teachers[a.second].params : 0, tb = teachers.count(b.second) ? teachers[b.second].params : 0;
    return std::tie(a.first, ta, a.second) < std::tie(b.first, tb, b.second);
  });
  const std::vector<int> folds(fold_set.begin(), fold_set.end());
  // cell[(series, student)] → per-fold MAE (mean over seeds), all values
  struct Cell {
    std::vector<double> per_fold;  // indexed like folds
    std::vector<double> all, all_post;
  };
  std::map<std::pair<size_t, std::string>, Cell> cells;
  for (size_t si = 0; si < series.size(); ++si)
    for (auto& st : students) {
      Cell c;
      for (int fo : folds) {
        std::vector<double> v;
        for (auto& p : pts)
          if (p.strategy == series[si].first && p.teacher == series[si].second && p.student == st && p.fold == fo) {
            v.push_back(p.mae);
            c.all.push_back(p.mae);
            c.all_post.push_back(p.mae_post);
          }
        c.per_fold.push_back(mean(v));
      }
      if (!c.all.empty()) cells[{si, st}] = c;
    }
  auto cell_mean = [&](size_t si, const std::string& st) {
    auto it = cells.find({si, st});
    return it == cells.end() ? kNaN : mean(it->second.all);
  };

  std::ostringstream md;
  json rj;
  rj["data"] = data_spec;
  rj["folds"] = folds;
  rj["seeds"] = std::vector<uint64_t>(seed_set.begin(), seed_set.end());
  rj["points"] = pts.size();
  md << "# Capacity sweep: MAE against student size per distillation strategy\n\n";
  md << "Sweep directory `" << fs::path(dir).filename().string() << "`, data `" << data_spec << "`, " << pts.size() << " points, folds";
  for (int f : folds) md << " " << f;
  md << ", seeds";
  for (auto s : seed_set) md << " " << s;
  md << ". MAE is the test subject's mean absolute error in BPM (raw model output), averaged over the seeds of a fold and "
        "then over folds (± is the standard deviation over all fold × seed runs). The study design follows Arora, "
        "Narayanswamy, Patel, Li (2025), \"Towards Characterizing Knowledge Distillation of PPG Heart Rate Estimation "
        "Models\" and ../shared/docs/KD-STRATEGIES.md §7.\n\n";

  // Teachers table.
  md << "## Teachers\n\n| teacher | parameters | MACs/window | MAE | runs |\n|---|---:|---:|---:|---:|\n";
  rj["teachers"] = json::array();
  for (auto& id : teacher_order) {
    const TeacherRec& t = teachers[id];
    md << "| " << id << " | " << t.params << " | " << t.macs << " | " << fmt(mean(t.mae)) << (t.mae.size() > 1 ? " ± " + fmt(sd(t.mae)) : "")
       << " | " << t.mae.size() << " |\n";
    rj["teachers"].push_back({{"id", id}, {"parameters", t.params}, {"macs_per_window", t.macs}, {"mae", mean(t.mae)}, {"runs", t.mae.size()}});
  }
  if (teacher_order.empty()) md << "| (none: every strategy was 'none') | | | | |\n";

  // MAE vs student parameters.
  md << "\n## MAE against student parameters\n\n| student | parameters | MACs/window |";
  for (auto& s : series) md << " " << series_label(s.first, s.second) << " |";
  md << "\n|---|---:|---:|";
  for (size_t i = 0; i < series.size(); ++i) md << "---:|";
  md << "\n";
  rj["table"] = json::array();
  for (auto& st : students) {
    md << "| " << st << " | " << s_params[st] << " | " << s_macs[st] << " |";
    for (size_t si = 0; si < series.size(); ++si) {
      auto it = cells.find({si, st});
      if (it == cells.end()) {
        md << " – |";
        continue;
      }
      const Cell& c = it->second;
      md << " " << fmt(mean(c.all)) << (c.all.size() > 1 ? " ± " + fmt(sd(c.all)) : "") << " |";
      rj["table"].push_back({{"student", st}, {"parameters", s_params[st]}, {"macs_per_window", s_macs[st]}, {"strategy", series[si].first},
                             {"teacher", series[si].second.empty() ? json(nullptr) : json(series[si].second)}, {"mae", mean(c.all)},
                             {"mae_sd", sd(c.all)}, {"mae_post", mean(c.all_post)}, {"runs", c.all.size()}, {"mae_per_fold", c.per_fold}});
    }
    md << "\n";
  }

  // Fits.
  md << "\n## Scaling fits MAE(N) = a·N^(−b) + c\n\nLeast squares on the log scale over the per-size means; [ ] is the "
        "95 % percentile bootstrap interval over folds (" << bootstrap_resamples << " resamples; folds drawn with replacement, "
        "the same draw for every size). Residuals are log(MAE) − log(fit) per student size, smallest first.\n\n"
        "| series | a | b | c | RMS log residual | residuals | note |\n|---|---:|---:|---:|---:|---|---|\n";
  rj["fits"] = json::array();
  std::map<size_t, PowerLawFit> fits;
  for (size_t si = 0; si < series.size(); ++si) {
    std::vector<double> n, y;
    std::vector<std::vector<double>> pf;
    for (auto& st : students) {
      auto it = cells.find({si, st});
      if (it == cells.end()) continue;
      n.push_back(double(s_params[st]));
      y.push_back(mean(it->second.all));
      pf.push_back(it->second.per_fold);
    }
    const std::string label = series_label(series[si].first, series[si].second);
    PowerLawFit f = fit_power_law(n, y);
    json fj = {{"strategy", series[si].first}, {"teacher", series[si].second.empty() ? json(nullptr) : json(series[si].second)}, {"ok", f.ok},
               {"note", f.note}, {"n", n}, {"mae", y}};
    if (!f.ok) {
      md << "| " << label << " | – | – | – | – | – | " << f.note << " |\n";
      rj["fits"].push_back(fj);
      continue;
    }
    fits[si] = f;
    const BootstrapFit bf = bootstrap_power_law(n, pf, bootstrap_resamples, 1 + si);
    std::string res;
    for (double r : f.log_residuals) res += (res.empty() ? "" : ", ") + fmt(r, 3);
    std::string note = f.note;
    if (!bf.note.empty()) note += (note.empty() ? "" : "; ") + bf.note;
    if (bf.failed) note += (note.empty() ? "" : "; ") + std::to_string(bf.failed) + " resamples did not fit";
    auto ci = [](double v, const Interval& iv) { return fmtg(v) + " [" + fmtg(iv.lo) + ", " + fmtg(iv.hi) + "]"; };
    md << "| " << label << " | " << ci(f.a, bf.a) << " | " << ci(f.b, bf.b) << " | " << ci(f.c, bf.c) << " | " << fmt(f.rms_log, 4) << " | "
       << res << " | " << note << " |\n";
    fj.update({{"a", f.a}, {"b", f.b}, {"c", f.c}, {"c_fixed", f.c_fixed}, {"rms_log_residual", f.rms_log}, {"log_residuals", f.log_residuals},
               {"fitted", f.fitted}, {"bootstrap", {{"resamples", bf.resamples}, {"failed", bf.failed}, {"folds", bf.folds}, {"level", 0.95},
               {"a", {bf.a.lo, bf.a.hi}}, {"b", {bf.b.lo, bf.b.hi}}, {"c", {bf.c.lo, bf.c.hi}}, {"note", bf.note}}}});
    rj["fits"].push_back(fj);
  }

  // Best strategy at each budget.
  md << "\n## Best strategy at each student budget\n\n| student | parameters | best | MAE | student alone | gain over alone |\n"
        "|---|---:|---|---:|---:|---:|\n";
  rj["best"] = json::array();
  size_t none_idx = series.size();
  for (size_t si = 0; si < series.size(); ++si)
    if (series[si].first == "none") none_idx = si;
  for (auto& st : students) {
    size_t best = series.size();
    double bm = kNaN;
    for (size_t si = 0; si < series.size(); ++si) {
      const double m = cell_mean(si, st);
      if (std::isfinite(m) && (!std::isfinite(bm) || m < bm)) bm = m, best = si;
    }
    if (best == series.size()) continue;
    const double alone = none_idx < series.size() ? cell_mean(none_idx, st) : kNaN;
    md << "| " << st << " | " << s_params[st] << " | " << series_label(series[best].first, series[best].second) << " | " << fmt(bm) << " | "
       << fmt(alone) << " | " << fmt(alone - bm) << " |\n";
    rj["best"].push_back({{"student", st}, {"parameters", s_params[st]}, {"strategy", series[best].first}, {"teacher", series[best].second},
                          {"mae", bm}, {"mae_alone", alone}});
  }

  // Does a bigger teacher help?
  md << "\n## Does a bigger teacher help?\n\n";
  rj["teacher_effect"] = json::array();
  if (teacher_order.size() < 2) {
    md << "Only one teacher size in this sweep: no comparison.\n";
  } else {
    md << "MAE per teacher (columns, smallest first); \"bigger helps\" when the largest teacher gives a lower MAE than the "
          "smallest.\n\n| strategy | student |";
    for (auto& t : teacher_order) md << " " << t << " |";
    md << " largest − smallest | bigger helps |\n|---|---|";
    for (size_t i = 0; i < teacher_order.size(); ++i) md << "---:|";
    md << "---:|---|\n";
    int helps = 0, total = 0;
    std::set<std::string> strategies;
    for (auto& s : series)
      if (s.first != "none") strategies.insert(s.first);
    for (auto& strat : strategies)
      for (auto& st : students) {
        std::vector<double> v;
        for (auto& t : teacher_order) {
          double m = kNaN;
          for (size_t si = 0; si < series.size(); ++si)
            if (series[si].first == strat && series[si].second == t) m = cell_mean(si, st);
          v.push_back(m);
        }
        if (!std::isfinite(v.front()) || !std::isfinite(v.back())) continue;
        const double d = v.back() - v.front();
        ++total;
        helps += d < 0;
        md << "| " << strat << " | " << st << " |";
        for (double x : v) md << " " << fmt(x) << " |";
        md << " " << fmt(d) << " | " << (d < 0 ? "yes" : "no") << " |\n";
        rj["teacher_effect"].push_back({{"strategy", strat}, {"student", st}, {"mae_per_teacher", v}, {"largest_minus_smallest", d}});
      }
    md << "\nThe largest teacher gave a lower MAE than the smallest in " << helps << " of " << total << " (strategy, student) pairs.\n";
    rj["bigger_teacher_helps"] = {{"pairs", total}, {"helps", helps}};
  }

  // Plots: one per teacher (its strategies + the student alone), and the fits of all series.
  md << "\n## Plots\n\n";
  std::vector<std::string> plots;
  auto make_series = [&](size_t si, const std::string& color) {
    ScatterSeries s;
    s.name = series_label(series[si].first, series[si].second);
    s.color = color;
    for (auto& st : students) {
      const double m = cell_mean(si, st);
      if (std::isfinite(m)) s.x.push_back(double(s_params[st])), s.y.push_back(m);
    }
    auto it = fits.find(si);
    if (it != fits.end() && !s.x.empty()) {
      const double lo = *std::min_element(s.x.begin(), s.x.end()) / 1.3, hi = *std::max_element(s.x.begin(), s.x.end()) * 1.3;
      for (int i = 0; i <= 60; ++i) {
        const double x = lo * std::pow(hi / lo, i / 60.0);
        s.fit_x.push_back(x);
        s.fit_y.push_back(it->second.predict(x));
      }
    }
    return s;
  };
  const char* pal[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#bcbd22"};
  std::map<std::string, std::string> strat_color;
  for (auto& s : series)
    if (s.first != "none" && !strat_color.count(s.first)) strat_color[s.first] = pal[strat_color.size() % 9];
  auto safe = [](std::string s) {
    for (char& ch : s)
      if (!std::isalnum((unsigned char)ch) && ch != '-' && ch != '_' && ch != '.') ch = '_';
    return s;
  };
  std::vector<std::string> plot_teachers = teacher_order;
  if (plot_teachers.empty()) plot_teachers.push_back("");
  for (auto& t : plot_teachers) {
    std::vector<ScatterSeries> ss;
    if (none_idx < series.size()) ss.push_back(make_series(none_idx, "#000000"));
    for (size_t si = 0; si < series.size(); ++si)
      if (series[si].first != "none" && series[si].second == t) ss.push_back(make_series(si, strat_color[series[si].first]));
    const std::string name = t.empty() ? "mae_vs_params.svg" : "mae_vs_params_" + safe(t) + ".svg";
    write_file_atomic(dir + "/" + name, svg_log_x_chart("Test MAE vs student parameters" + (t.empty() ? "" : " (teacher " + t + ")"),
                                                        "student parameters (log scale)", "MAE (BPM)", ss));
    plots.push_back(name);
  }
  if (teacher_order.size() >= 2) {
    // MAE against teacher size, averaged over student sizes, per strategy.
    std::vector<ScatterSeries> ss;
    for (auto& [strat, color] : strat_color) {
      ScatterSeries s{strat, color, {}, {}, {}, {}};
      for (auto& t : teacher_order) {
        std::vector<double> v;
        for (size_t si = 0; si < series.size(); ++si)
          if (series[si].first == strat && series[si].second == t)
            for (auto& st : students) v.push_back(cell_mean(si, st));
        if (std::isfinite(mean(v))) s.x.push_back(double(teachers[t].params)), s.y.push_back(mean(v));
      }
      ss.push_back(s);
    }
    write_file_atomic(dir + "/mae_vs_teacher.svg", svg_log_x_chart("Student MAE (mean over student sizes) vs teacher parameters",
                                                                   "teacher parameters (log scale)", "MAE (BPM)", ss));
    plots.push_back("mae_vs_teacher.svg");
  }
  for (auto& p : plots) md << "![" << p << "](" << p << ")\n\n";
  rj["plots"] = plots;
  write_file_atomic(dir + "/REPORT.md", md.str());
  write_file_atomic(dir + "/report.json", rj.dump(1) + "\n");
  return md.str();
}

}  // namespace pulsekd::kd
