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
