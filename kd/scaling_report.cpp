// `sweep-report`: the sweep directory's points read back, fitted and written as Markdown, CSV,
// JSON and plots (kd/scaling.h). The power-law fit and the chart are in kd/scaling.cpp.
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
// Report

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

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

// What the report sections share: the points, the teachers, the students and the series
// (strategy, teacher) found in a sweep directory, and each (series, student) cell's MAEs.
struct Cell {
  std::vector<double> per_fold;  // [folds.size()]: MAE per fold (mean over seeds), NaN when missing
  std::vector<double> all, all_post;  // [runs]: every fold × seed run's MAE (raw, post-processed)
};

struct SweepTable {
  std::vector<PointRec> pts;  // sorted by student parameters, student, strategy, teacher, fold, seed
  std::string data_spec;
  std::map<std::string, TeacherRec> teachers;
  std::vector<std::string> teacher_order;  // smallest teacher first
  std::vector<std::string> students;       // in the order of pts (smallest first)
  std::map<std::string, int64_t> s_params, s_macs;
  std::set<uint64_t> seed_set;
  std::vector<int> folds;                                   // ascending
  std::vector<std::pair<std::string, std::string>> series;  // (strategy, teacher); none first
  std::map<std::pair<size_t, std::string>, Cell> cells;     // (series index, student) → cell; only cells with runs
  size_t none_idx = 0;                                      // series index of strategy none; series.size() if absent

  double cell_mean(size_t si, const std::string& st) const {
    auto it = cells.find({si, st});
    return it == cells.end() ? kNaN : mean(it->second.all);
  }
  std::string label(size_t si) const { return series_label(series[si].first, series[si].second); }
  json teacher_json(size_t si) const { return series[si].second.empty() ? json(nullptr) : json(series[si].second); }
};

// DIR/points/*.json, sorted so that every table lists students smallest first.
void read_points(const std::string& dir, SweepTable& t) {
  const std::string pdir = dir + "/points";
  if (!fs::is_directory(pdir)) throw std::runtime_error("sweep-report: '" + dir + "' has no points/ directory (not a sweep directory?)");
  for (auto& e : fs::directory_iterator(pdir)) {
    if (e.path().extension() != ".json") continue;
    const json j = read_json_file(e.path().string());
    try {
      PointRec p;
      p.strategy = j.at("strategy").get<std::string>();
      p.student = j.at("student").at("id").get<std::string>();
      const std::string in = "'" + e.path().string() + "': ";
      const int64_t kMax = std::numeric_limits<int64_t>::max();
      p.s_params = json_integer(j.at("student").at("parameters"), in + "student.parameters", 0, kMax);
      p.s_macs = json_integer(j.at("student").at("macs_per_window"), in + "student.macs_per_window", 0, kMax);
      if (!j.at("teacher").is_null()) {
        p.teacher = j.at("teacher").at("id").get<std::string>();
        p.t_params = json_integer(j.at("teacher").at("parameters"), in + "teacher.parameters", 0, kMax);
      }
      p.fold = int(json_integer(j.at("fold"), in + "fold", 1, 100000));
      if (!j.at("seed").is_number_unsigned()) throw std::runtime_error(in + "seed must be an integer >= 0, got " + j.at("seed").dump());
      p.seed = j.at("seed").get<uint64_t>();
      p.mae = json_number(j.at("mae"), in + "mae");
      p.mae_post = json_number(j.at("mae_post"), in + "mae_post");
      p.seconds = j.contains("seconds") ? json_number(j.at("seconds"), in + "seconds") : 0.0;
      t.data_spec = j.value("data", t.data_spec);
      t.pts.push_back(p);
    } catch (const json::exception& ex) {
      throw std::runtime_error("'" + e.path().string() + "' is not a sweep point result: " + ex.what());
    }
  }
  if (t.pts.empty()) throw std::runtime_error("sweep-report: '" + pdir + "' holds no point results yet (run pulsekd sweep first)");
  std::sort(t.pts.begin(), t.pts.end(), [](const PointRec& a, const PointRec& b) {
    return std::tie(a.s_params, a.student, a.strategy, a.teacher, a.fold, a.seed) <
           std::tie(b.s_params, b.student, b.strategy, b.teacher, b.fold, b.seed);
  });
}

// DIR/teachers/*/*.json, plus teachers the points name whose results are missing; ordered by size.
void read_teachers(const std::string& dir, SweepTable& t) {
  if (fs::is_directory(dir + "/teachers"))
    for (auto& td : fs::directory_iterator(dir + "/teachers")) {
      if (!td.is_directory()) continue;
      for (auto& e : fs::directory_iterator(td.path())) {
        if (e.path().extension() != ".json") continue;
        const json j = read_json_file(e.path().string());
        const std::string in = "'" + e.path().string() + "': ";
        if (!j.is_object() || (j.contains("id") && !j.at("id").is_string()))
          throw std::runtime_error(in + "not a sweep teacher result (an object whose id is a string)");
        const std::string id = j.value("id", td.path().filename().string());
        TeacherRec& r = t.teachers[id];
        r.id = id;
        const int64_t kMax = std::numeric_limits<int64_t>::max();
        r.params = j.contains("parameters") ? json_integer(j.at("parameters"), in + "parameters", 0, kMax) : 0;
        r.macs = j.contains("macs_per_window") ? json_integer(j.at("macs_per_window"), in + "macs_per_window", 0, kMax) : 0;
        r.mae.push_back(j.contains("mae") ? json_number(j.at("mae"), in + "mae") : kNaN);
      }
    }
  for (auto& [id, r] : t.teachers) t.teacher_order.push_back(id);
  for (auto& p : t.pts)
    if (!p.teacher.empty() && !t.teachers.count(p.teacher)) {
      t.teachers[p.teacher] = TeacherRec{p.teacher, p.t_params, 0, {}};
      t.teacher_order.push_back(p.teacher);
    }
  const auto& teachers = t.teachers;
  std::sort(t.teacher_order.begin(), t.teacher_order.end(), [&](const std::string& a, const std::string& b) {
    return std::tie(teachers.at(a).params, a) < std::tie(teachers.at(b).params, b);
  });
}

// Students, series (strategy, teacher) and folds of the points, and the cells of the tables.
void index_points(SweepTable& t) {
  std::set<int> fold_set;
  for (auto& p : t.pts) {
    if (!t.s_params.count(p.student)) t.students.push_back(p.student);
    t.s_params[p.student] = p.s_params;
    t.s_macs[p.student] = p.s_macs;
    fold_set.insert(p.fold);
    t.seed_set.insert(p.seed);
    const auto key = std::make_pair(p.strategy, p.teacher);
    if (std::find(t.series.begin(), t.series.end(), key) == t.series.end()) t.series.push_back(key);
  }
  const auto& teachers = t.teachers;
  std::sort(t.series.begin(), t.series.end(), [&](const auto& a, const auto& b) {
    const bool an = a.first == "none", bn = b.first == "none";
    if (an != bn) return an;
    const int64_t ta = teachers.count(a.second) ? teachers.at(a.second).params : 0, tb = teachers.count(b.second) ? teachers.at(b.second).params : 0;
    return std::tie(a.first, ta, a.second) < std::tie(b.first, tb, b.second);
  });
  t.folds.assign(fold_set.begin(), fold_set.end());
  for (size_t si = 0; si < t.series.size(); ++si)
    for (auto& st : t.students) {
      Cell c;
      for (int fo : t.folds) {
        std::vector<double> v;
        for (auto& p : t.pts)
          if (p.strategy == t.series[si].first && p.teacher == t.series[si].second && p.student == st && p.fold == fo) {
            v.push_back(p.mae);
            c.all.push_back(p.mae);
            c.all_post.push_back(p.mae_post);
          }
        c.per_fold.push_back(mean(v));
      }
      if (!c.all.empty()) t.cells[{si, st}] = c;
    }
  t.none_idx = t.series.size();
  for (size_t si = 0; si < t.series.size(); ++si)
    if (t.series[si].first == "none") t.none_idx = si;
}

void write_intro(const std::string& dir, const SweepTable& t, std::ostringstream& md, json& rj) {
  rj["data"] = t.data_spec;
  rj["folds"] = t.folds;
  rj["seeds"] = std::vector<uint64_t>(t.seed_set.begin(), t.seed_set.end());
  rj["points"] = t.pts.size();
  md << "# Capacity sweep: MAE against student size per distillation strategy\n\n";
  md << "Sweep directory `" << fs::path(dir).filename().string() << "`, data `" << t.data_spec << "`, " << t.pts.size() << " points, folds";
  for (int f : t.folds) md << " " << f;
  md << ", seeds";
  for (auto s : t.seed_set) md << " " << s;
  md << ". MAE is the test subject's mean absolute error in BPM (raw model output), averaged over the seeds of a fold and "
        "then over folds (± is the standard deviation over all fold × seed runs). The study design follows Arora, "
        "Narayanswamy, Patel, Li (2025), \"Towards Characterizing Knowledge Distillation of PPG Heart Rate Estimation "
        "Models\" and ../shared/docs/KD-STRATEGIES.md §7.\n\n";
}

void write_teachers(const SweepTable& t, std::ostringstream& md, json& rj) {
  md << "## Teachers\n\n| teacher | parameters | MACs/window | MAE | runs |\n|---|---:|---:|---:|---:|\n";
  rj["teachers"] = json::array();
  for (auto& id : t.teacher_order) {
    const TeacherRec& r = t.teachers.at(id);
    md << "| " << id << " | " << r.params << " | " << r.macs << " | " << fmt(mean(r.mae)) << (r.mae.size() > 1 ? " ± " + fmt(sd(r.mae)) : "")
       << " | " << r.mae.size() << " |\n";
    rj["teachers"].push_back({{"id", id}, {"parameters", r.params}, {"macs_per_window", r.macs}, {"mae", mean(r.mae)}, {"runs", r.mae.size()}});
  }
  if (t.teacher_order.empty()) md << "| (none: every strategy was 'none') | | | | |\n";
}

// One row per student, one column per series.
void write_mae_table(const SweepTable& t, std::ostringstream& md, json& rj) {
  md << "\n## MAE against student parameters\n\n| student | parameters | MACs/window |";
  for (size_t si = 0; si < t.series.size(); ++si) md << " " << t.label(si) << " |";
  md << "\n|---|---:|---:|";
  for (size_t i = 0; i < t.series.size(); ++i) md << "---:|";
  md << "\n";
  rj["table"] = json::array();
  for (auto& st : t.students) {
    md << "| " << st << " | " << t.s_params.at(st) << " | " << t.s_macs.at(st) << " |";
    for (size_t si = 0; si < t.series.size(); ++si) {
      auto it = t.cells.find({si, st});
      if (it == t.cells.end()) {
        md << " – |";
        continue;
      }
      const Cell& c = it->second;
      md << " " << fmt(mean(c.all)) << (c.all.size() > 1 ? " ± " + fmt(sd(c.all)) : "") << " |";
      rj["table"].push_back({{"student", st}, {"parameters", t.s_params.at(st)}, {"macs_per_window", t.s_macs.at(st)},
                             {"strategy", t.series[si].first}, {"teacher", t.teacher_json(si)}, {"mae", mean(c.all)}, {"mae_sd", sd(c.all)},
                             {"mae_post", mean(c.all_post)}, {"runs", c.all.size()}, {"mae_per_fold", c.per_fold}});
    }
    md << "\n";
  }
}

// The power-law fit of one series with its bootstrap intervals; returns the fit.
PowerLawFit write_fit(const SweepTable& t, size_t si, int bootstrap_resamples, std::ostringstream& md, json& rj) {
  std::vector<double> n, y;               // [sizes with runs]: student parameters, mean MAE
  std::vector<std::vector<double>> pf;    // [sizes with runs][folds]
  for (auto& st : t.students) {
    auto it = t.cells.find({si, st});
    if (it == t.cells.end()) continue;
    n.push_back(double(t.s_params.at(st)));
    y.push_back(mean(it->second.all));
    pf.push_back(it->second.per_fold);
  }
  const PowerLawFit f = fit_power_law(n, y);
  json fj = {{"strategy", t.series[si].first}, {"teacher", t.teacher_json(si)}, {"ok", f.ok}, {"note", f.note}, {"n", n}, {"mae", y}};
  if (!f.ok) {
    md << "| " << t.label(si) << " | – | – | – | – | – | " << f.note << " |\n";
    rj["fits"].push_back(fj);
    return f;
  }
  const BootstrapFit bf = bootstrap_power_law(n, pf, bootstrap_resamples, 1 + si);
  std::string res;
  for (double r : f.log_residuals) res += (res.empty() ? "" : ", ") + fmt(r, 3);
  std::string note = f.note;
  if (!bf.note.empty()) note += (note.empty() ? "" : "; ") + bf.note;
  if (bf.failed) note += (note.empty() ? "" : "; ") + std::to_string(bf.failed) + " resamples did not fit";
  auto ci = [](double v, const Interval& iv) { return fmtg(v) + " [" + fmtg(iv.lo) + ", " + fmtg(iv.hi) + "]"; };
  md << "| " << t.label(si) << " | " << ci(f.a, bf.a) << " | " << ci(f.b, bf.b) << " | " << ci(f.c, bf.c) << " | " << fmt(f.rms_log, 4)
     << " | " << res << " | " << note << " |\n";
  fj.update({{"a", f.a}, {"b", f.b}, {"c", f.c}, {"c_fixed", f.c_fixed}, {"rms_log_residual", f.rms_log}, {"log_residuals", f.log_residuals},
             {"fitted", f.fitted}, {"bootstrap", {{"resamples", bf.resamples}, {"failed", bf.failed}, {"folds", bf.folds}, {"level", 0.95},
             {"a", {bf.a.lo, bf.a.hi}}, {"b", {bf.b.lo, bf.b.hi}}, {"c", {bf.c.lo, bf.c.hi}}, {"note", bf.note}}}});
  rj["fits"].push_back(fj);
  return f;
}

// Every series' fit; the successful ones, by series index, for the plots.
std::map<size_t, PowerLawFit> write_fits(const SweepTable& t, int bootstrap_resamples, std::ostringstream& md, json& rj) {
  md << "\n## Scaling fits MAE(N) = a·N^(−b) + c\n\nLeast squares on the log scale over the per-size means; [ ] is the "
        "95 % percentile bootstrap interval over folds (" << bootstrap_resamples << " resamples; folds drawn with replacement, "
        "the same draw for every size). Residuals are log(MAE) − log(fit) per student size, smallest first.\n\n"
        "| series | a | b | c | RMS log residual | residuals | note |\n|---|---:|---:|---:|---:|---|---|\n";
  rj["fits"] = json::array();
  std::map<size_t, PowerLawFit> fits;
  for (size_t si = 0; si < t.series.size(); ++si) {
    PowerLawFit f = write_fit(t, si, bootstrap_resamples, md, rj);
    if (f.ok) fits[si] = f;
  }
  return fits;
}

void write_best(const SweepTable& t, std::ostringstream& md, json& rj) {
  md << "\n## Best strategy at each student budget\n\n| student | parameters | best | MAE | student alone | gain over alone |\n"
        "|---|---:|---|---:|---:|---:|\n";
  rj["best"] = json::array();
  for (auto& st : t.students) {
    size_t best = t.series.size();
    double bm = kNaN;
    for (size_t si = 0; si < t.series.size(); ++si) {
      const double m = t.cell_mean(si, st);
      if (std::isfinite(m) && (!std::isfinite(bm) || m < bm)) bm = m, best = si;
    }
    if (best == t.series.size()) continue;
    const double alone = t.none_idx < t.series.size() ? t.cell_mean(t.none_idx, st) : kNaN;
    md << "| " << st << " | " << t.s_params.at(st) << " | " << t.label(best) << " | " << fmt(bm) << " | " << fmt(alone) << " | "
       << fmt(alone - bm) << " |\n";
    rj["best"].push_back({{"student", st}, {"parameters", t.s_params.at(st)}, {"strategy", t.series[best].first},
                          {"teacher", t.series[best].second}, {"mae", bm}, {"mae_alone", alone}});
  }
}

// Mean MAE of (strategy, teacher) for one student; NaN when that cell has no runs.
double strategy_teacher_mae(const SweepTable& t, const std::string& strat, const std::string& teacher, const std::string& st) {
  double m = kNaN;
  for (size_t si = 0; si < t.series.size(); ++si)
    if (t.series[si].first == strat && t.series[si].second == teacher) m = t.cell_mean(si, st);
  return m;
}

// Strategies that distil, each once (sorted).
std::set<std::string> distil_strategies(const SweepTable& t) {
  std::set<std::string> strategies;
  for (auto& s : t.series)
    if (s.first != "none") strategies.insert(s.first);
  return strategies;
}

void write_teacher_effect(const SweepTable& t, std::ostringstream& md, json& rj) {
  md << "\n## Does a bigger teacher help?\n\n";
  rj["teacher_effect"] = json::array();
  if (t.teacher_order.size() < 2) {
    md << "Only one teacher size in this sweep: no comparison.\n";
    return;
  }
  md << "MAE per teacher (columns, smallest first); \"bigger helps\" when the largest teacher gives a lower MAE than the "
        "smallest.\n\n| strategy | student |";
  for (auto& id : t.teacher_order) md << " " << id << " |";
  md << " largest − smallest | bigger helps |\n|---|---|";
  for (size_t i = 0; i < t.teacher_order.size(); ++i) md << "---:|";
  md << "---:|---|\n";
  int helps = 0, total = 0;
  for (auto& strat : distil_strategies(t))
    for (auto& st : t.students) {
      std::vector<double> v;  // [teachers]: MAE per teacher, smallest first
      for (auto& id : t.teacher_order) v.push_back(strategy_teacher_mae(t, strat, id, st));
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

// One series' points against student parameters, with its fitted curve when it has one.
ScatterSeries plot_series(const SweepTable& t, const std::map<size_t, PowerLawFit>& fits, size_t si, const std::string& color) {
  ScatterSeries s;
  s.name = t.label(si);
  s.color = color;
  for (auto& st : t.students) {
    const double m = t.cell_mean(si, st);
    if (std::isfinite(m)) s.x.push_back(double(t.s_params.at(st))), s.y.push_back(m);
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
}

std::string file_safe(std::string s) {
  for (char& ch : s)
    if (!std::isalnum((unsigned char)ch) && ch != '-' && ch != '_' && ch != '.') ch = '_';
  return s;
}

// MAE against teacher size, averaged over student sizes, one series per strategy.
std::vector<ScatterSeries> teacher_size_series(const SweepTable& t, const std::map<std::string, std::string>& strat_color) {
  std::vector<ScatterSeries> ss;
  for (auto& [strat, color] : strat_color) {
    ScatterSeries s{strat, color, {}, {}, {}, {}};
    for (auto& id : t.teacher_order) {
      std::vector<double> v;  // [students of every series of this (strategy, teacher)]
      for (size_t si = 0; si < t.series.size(); ++si)
        if (t.series[si].first == strat && t.series[si].second == id)
          for (auto& st : t.students) v.push_back(t.cell_mean(si, st));
      if (std::isfinite(mean(v))) s.x.push_back(double(t.teachers.at(id).params)), s.y.push_back(mean(v));
    }
    ss.push_back(s);
  }
  return ss;
}

// Plots: one per teacher (its strategies + the student alone), and MAE against teacher size.
// Returns the file names written into dir.
std::vector<std::string> write_plots(const std::string& dir, const SweepTable& t, const std::map<size_t, PowerLawFit>& fits) {
  std::vector<std::string> plots;
  const char* pal[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#bcbd22"};
  std::map<std::string, std::string> strat_color;  // one color per strategy, across teachers
  for (auto& s : t.series)
    if (s.first != "none" && !strat_color.count(s.first)) strat_color[s.first] = pal[strat_color.size() % 9];
  std::vector<std::string> plot_teachers = t.teacher_order;
  if (plot_teachers.empty()) plot_teachers.push_back("");
  for (auto& id : plot_teachers) {
    std::vector<ScatterSeries> ss;
    if (t.none_idx < t.series.size()) ss.push_back(plot_series(t, fits, t.none_idx, "#000000"));
    for (size_t si = 0; si < t.series.size(); ++si)
      if (t.series[si].first != "none" && t.series[si].second == id) ss.push_back(plot_series(t, fits, si, strat_color[t.series[si].first]));
    const std::string name = id.empty() ? "mae_vs_params.svg" : "mae_vs_params_" + file_safe(id) + ".svg";
    write_file_atomic(dir + "/" + name, svg_log_x_chart("Test MAE vs student parameters" + (id.empty() ? "" : " (teacher " + id + ")"),
                                                        "student parameters (log scale)", "MAE (BPM)", ss));
    plots.push_back(name);
  }
  if (t.teacher_order.size() >= 2) {
    write_file_atomic(dir + "/mae_vs_teacher.svg", svg_log_x_chart("Student MAE (mean over student sizes) vs teacher parameters",
                                                                   "teacher parameters (log scale)", "MAE (BPM)",
                                                                   teacher_size_series(t, strat_color)));
    plots.push_back("mae_vs_teacher.svg");
  }
  return plots;
}

}  // namespace

std::string write_sweep_report(const std::string& dir, int bootstrap_resamples) {
  SweepTable t;
  read_points(dir, t);
  read_teachers(dir, t);
  index_points(t);
  std::ostringstream md;
  json rj;
  write_intro(dir, t, md, rj);
  write_teachers(t, md, rj);
  write_mae_table(t, md, rj);
  const std::map<size_t, PowerLawFit> fits = write_fits(t, bootstrap_resamples, md, rj);
  write_best(t, md, rj);
  write_teacher_effect(t, md, rj);
  md << "\n## Plots\n\n";
  const std::vector<std::string> plots = write_plots(dir, t, fits);
  for (auto& p : plots) md << "![" << p << "](" << p << ")\n\n";
  rj["plots"] = plots;
  write_file_atomic(dir + "/REPORT.md", md.str());
  write_file_atomic(dir + "/report.json", rj.dump(1) + "\n");
  return md.str();
}

}  // namespace pulsekd::kd
