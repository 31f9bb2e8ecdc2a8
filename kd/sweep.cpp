#include "kd/sweep.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "datasets/registry.h"
#include "datasets/synth.h"
#include "dist/dist.h"
#include "kd/fileutil.h"
#include "kd/runs.h"

namespace pulsekd::kd {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read '" + path + "'");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error("'" + path + "' is not valid JSON: " + e.what());
  }
}

bool json_integer_in(const json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return hi >= 0 && u <= uint64_t(hi) && (lo <= 0 || u >= uint64_t(lo));
  }
  return v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
}

int64_t json_integer(const json& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!json_integer_in(v, lo, hi))
    throw std::runtime_error(what + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v.dump());
  return v.get<int64_t>();
}

double json_number(const json& v, const std::string& what) {
  if (!v.is_number()) throw std::runtime_error(what + " must be a number, got " + v.dump());
  return v.get<double>();
}

std::vector<SweepPoint> plan_points(const SweepConfig& c, const std::vector<int>& folds) {
  std::vector<SweepPoint> out;
  for (size_t si = 0; si < c.students.size(); ++si)
    for (const std::string& strat : c.strategies) {
      std::vector<int> ts;
      if (strat == "none") ts.push_back(-1);
      else
        for (size_t ti = 0; ti < c.teachers.size(); ++ti) ts.push_back(int(ti));
      for (int ti : ts)
        for (int f : folds)
          for (uint64_t seed : c.seeds) {
            SweepPoint p;
            p.teacher = ti;
            p.student = int(si);
            p.strategy = strat;
            p.fold = f;
            p.seed = seed;
            p.id = c.students[si].id + "__" + strat + "__" + (ti < 0 ? std::string("alone") : c.teachers[size_t(ti)].id) + "__fold" +
                   std::to_string(f) + "__seed" + std::to_string(seed);
            out.push_back(p);
          }
    }
  return out;
}

data::WindowSet load_sweep_data(const SweepConfig& c) {
  if (!c.synth_options) return data::load_dataset(c.data);
  data::SynthOptions o;
  const auto colon = c.data.find(':');
  if (colon != std::string::npos) {
    try {
      o.seed = std::stoull(c.data.substr(colon + 1));
    } catch (const std::exception&) {
      throw std::invalid_argument("sweep config: data '" + c.data + "': the seed after synth: must be a non-negative integer");
    }
  } else if (c.data != "synth") {
    throw std::invalid_argument("sweep config: data '" + c.data + "' is not synth[:SEED]");
  }
  o.subjects = c.synth_subjects;
  o.minutes = c.synth_minutes;
  return data::make_synthetic(o);
}

namespace {

// One teacher training run, shared by every point with that (teacher, fold, seed).
struct TeacherJob {
  int teacher;
  int fold;
  uint64_t seed;
  std::string run_dir, result;
};

// The config's folds, or every subject's with loso; each must exist in the data.
std::vector<int> resolve_folds(const SweepConfig& c, const std::vector<FoldPlan>& all) {
  std::vector<int> folds = c.folds;
  if (c.loso)
    for (auto& p : all) folds.push_back(p.number);
  for (int f : folds)
    if (f > int(all.size()))
      throw std::invalid_argument("sweep config: folds: fold " + std::to_string(f) + " does not exist, the data has " +
                                  std::to_string(all.size()) + " subjects (folds 1.." + std::to_string(all.size()) + ")");
  return folds;
}

// The distinct (teacher, fold, seed) runs the points need, in the order the points first need them.
std::vector<TeacherJob> plan_teacher_jobs(const SweepConfig& c, const std::vector<SweepPoint>& points, const std::string& dir) {
  std::vector<TeacherJob> tjobs;
  std::set<std::tuple<int, int, uint64_t>> seen;
  for (auto& p : points)
    if (p.teacher >= 0 && seen.insert({p.teacher, p.fold, p.seed}).second) {
      const std::string base = dir + "/teachers/" + c.teachers[size_t(p.teacher)].id + "/seed" + std::to_string(p.seed) + "-fold" +
                               std::to_string(p.fold);
      tjobs.push_back({p.teacher, p.fold, p.seed, base, base + ".json"});
    }
  return tjobs;
}

// The index in tjobs of the teacher run point p distils from.
size_t teacher_index(const std::vector<TeacherJob>& tjobs, const SweepPoint& p) {
  for (size_t k = 0; k < tjobs.size(); ++k)
    if (tjobs[k].teacher == p.teacher && tjobs[k].fold == p.fold && tjobs[k].seed == p.seed) return k;
  throw std::logic_error("sweep: no teacher job");
}

std::string point_result(const std::string& dir, const SweepPoint& p) { return dir + "/points/" + p.id + ".json"; }

// The grid summary on stderr; with dry_run also every run and point, done or todo, on stdout.
void print_plan(const SweepConfig& c, size_t n_folds, const std::vector<TeacherJob>& tjobs, const std::vector<SweepPoint>& points,
                int pend_t, int todo_p, const std::string& dir, const SweepRunOptions& o) {
  if (o.progress || o.dry_run)
    std::cerr << "sweep: " << c.teachers.size() << " teacher size(s), " << c.students.size() << " student size(s), " << c.strategies.size()
              << " strateg" << (c.strategies.size() == 1 ? "y" : "ies") << ", " << n_folds << " fold(s), " << c.seeds.size()
              << " seed(s): " << tjobs.size() << " teacher runs (" << tjobs.size() - size_t(pend_t) << " done), " << points.size()
              << " points (" << points.size() - size_t(todo_p) << " done)\n";
  if (!o.dry_run) return;
  for (auto& j : tjobs)
    std::cout << (fs::exists(j.result) ? "done  " : "todo  ") << "teacher " << c.teachers[size_t(j.teacher)].id << " fold " << j.fold << " seed "
              << j.seed << "\n";
  for (auto& p : points) std::cout << (fs::exists(point_result(dir, p)) ? "done  " : "todo  ") << p.id << "\n";
}

// Results in DIR are only comparable when made with the same settings: refuse other settings
// unless forced, then record this run's settings and config.
void check_and_write_settings(const SweepConfig& c, const std::string& dir, bool force) {
  ensure_dir(dir, "--out");
  ensure_dir(dir + "/points", "--out");
  const std::string settings_path = dir + "/settings.json";
  if (fs::exists(settings_path)) {
    const json old = read_json_file(settings_path);
    if (old != c.settings && !force) {
      std::string diff;  // the differing keys, ", "-separated
      for (auto& [k, v] : c.settings.items())
        if (!old.contains(k) || old.at(k) != v) diff += (diff.empty() ? "" : ", ") + k;
      for (auto& [k, v] : old.items())
        if (!c.settings.contains(k)) diff += (diff.empty() ? "" : ", ") + k;
      throw std::invalid_argument("sweep: '" + dir + "' was made with other settings (" + diff +
                                  " differ; only teachers, students, strategies, folds and seeds may change between runs); use "
                                  "another --out, or --force to mix them");
    }
  }
  write_file_atomic(settings_path, c.settings.dump(1) + "\n");
  write_file_atomic(dir + "/config.json", c.raw.dump(1) + "\n");
}

// What the teacher and point runs of one run_sweep call share: the inputs, the progress
// count for the ETA, and the test interrupt, which fires in the first run trained only.
struct SweepRun {
  const SweepConfig& c;
  const data::WindowSet& ws;
  const std::string& dir;
  const SweepRunOptions& o;
  const std::vector<FoldPlan>& all;  // every LOSO fold of ws; fold K at [K - 1]
  std::chrono::steady_clock::time_point t0;
  int units = 0, done_units = 0;     // runs to do in this call, runs done so far
  bool interrupt_armed = false;

  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
  std::vector<FoldPlan> plan_of(int f) const { return std::vector<FoldPlan>{all[size_t(f - 1)]}; }

  void report(const std::string& what, double mae, double secs) {
    ++done_units;
    if (!o.progress) return;
    const double el = elapsed();
    const double eta = done_units > 0 ? el / done_units * (units - done_units) : 0;
    std::fprintf(stderr, "sweep [%d/%d] %s: MAE %.2f BPM in %s; elapsed %s, ETA %s\n", done_units, units, what.c_str(), mae,
                 format_duration(secs).c_str(), format_duration(el).c_str(), format_duration(eta).c_str());
  }

  TrainOptions prep(TrainOptions t, uint64_t seed) {
    t.seed = seed;
    t.progress = o.progress && ::isatty(2);
    if (interrupt_armed) {
      t.interrupt_after_batches = o.interrupt_after_batches;
      interrupt_armed = false;
    }
    return t;
  }
};

// What one finished run tells rank 0 for the progress line (dist::run_queue's result bytes).
std::string run_summary(const std::string& what, double mae, double seconds) {
  return json{{"what", what}, {"mae", mae}, {"seconds", seconds}}.dump();
}

// A teacher: trained once per (size, fold, seed), reused by every student and strategy.
std::string run_teacher(SweepRun& s, const TeacherJob& j) {
  const SweepSize& ts = s.c.teachers[size_t(j.teacher)];
  RunSpec spec;
  spec.model = ts.model;
  spec.train = s.prep(s.c.teacher_train, j.seed);
  const RunReport rep = run_folds(s.ws, s.plan_of(j.fold), spec, j.run_dir);
  json r = {{"id", ts.id}, {"config", json::parse(ts.model.to_json())}, {"parameters", rep.params}, {"macs_per_window", rep.macs},
            {"fold", j.fold}, {"seed", j.seed}, {"test_subject", rep.eval.subjects.at(0).subject},
            {"mae", rep.eval.mean_subject_mae_raw}, {"mae_post", rep.eval.mean_subject_mae_post},
            {"best_epoch", rep.folds.at(0).best_epoch}, {"best_val_mae", rep.folds.at(0).best_val_mae},
            {"epochs_run", rep.folds.at(0).history.size()}, {"seconds", rep.seconds}, {"data", s.c.data},
            {"checkpoint", fs::path(j.run_dir).filename().string() + "/fold" + std::to_string(j.fold) + "/best.safetensors"}};
  write_file_atomic(j.result, r.dump(1) + "\n");
  return run_summary("teacher " + ts.id + " fold " + std::to_string(j.fold) + " seed " + std::to_string(j.seed),
                     rep.eval.mean_subject_mae_raw, rep.seconds);
}

// Trains one point's student (distilled from its teacher's run unless strategy none) and
// writes its result file.
std::string run_point(SweepRun& s, const SweepPoint& p, const std::vector<TeacherJob>& tjobs) {
  const SweepSize& ss = s.c.students[size_t(p.student)];
  RunSpec spec;
  spec.model = ss.model;
  spec.train = s.prep(s.c.student_train, p.seed);
  DistillOptions kd = s.c.kd;
  json teacher = nullptr;
  if (p.strategy != "none") {
    kd = strategy_kd(s.c.kd, p.strategy);
    const TeacherJob& tj = tjobs[teacher_index(tjobs, p)];
    spec.kd = &kd;
    spec.teacher = tj.run_dir;
    const json tr = read_json_file(tj.result);
    teacher = {{"id", s.c.teachers[size_t(p.teacher)].id}, {"config", tr.at("config")}, {"parameters", tr.at("parameters")},
               {"macs_per_window", tr.at("macs_per_window")}, {"mae", tr.at("mae")}};
  }
  const RunReport rep = run_folds(s.ws, s.plan_of(p.fold), spec, s.dir + "/runs/" + p.id);
  json r = {{"id", p.id}, {"strategy", p.strategy}, {"fold", p.fold}, {"seed", p.seed}, {"data", s.c.data},
            {"student", {{"id", ss.id}, {"config", json::parse(ss.model.to_json())}, {"parameters", rep.params}, {"macs_per_window", rep.macs}}},
            {"teacher", teacher}, {"test_subject", rep.eval.subjects.at(0).subject}, {"mae", rep.eval.mean_subject_mae_raw},
            {"mae_post", rep.eval.mean_subject_mae_post}, {"rmse", rep.eval.pooled_raw.rmse}, {"best_epoch", rep.folds.at(0).best_epoch},
            {"best_val_mae", rep.folds.at(0).best_val_mae}, {"epochs_run", rep.folds.at(0).history.size()},
            {"seconds", rep.seconds}};
  write_file_atomic(point_result(s.dir, p), r.dump(1) + "\n");
  return run_summary(p.id, rep.eval.mean_subject_mae_raw, rep.seconds);
}

// The runs still to do as queue jobs: teacher run k has id k, point i id tjobs.size() + i and
// waits for its teacher's run. Counts what is skipped as done; at most max_new_points points.
std::vector<dist::Job> plan_jobs(const std::vector<TeacherJob>& tjobs, const std::vector<SweepPoint>& points, const std::string& dir,
                                 const SweepRunOptions& o, SweepStats& st) {
  std::vector<dist::Job> jobs;
  for (size_t k = 0; k < tjobs.size(); ++k) {
    if (fs::exists(tjobs[k].result)) ++st.teachers_skipped;
    else jobs.push_back({int(k), {}});
  }
  int new_points = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    if (fs::exists(point_result(dir, points[i]))) {
      ++st.points_skipped;
      continue;
    }
    if (o.max_new_points >= 0 && new_points >= o.max_new_points) break;
    ++new_points;
    dist::Job job{int(tjobs.size() + i), {}};
    if (points[i].teacher >= 0) job.after.push_back(int(teacher_index(tjobs, points[i])));
    jobs.push_back(job);
  }
  return jobs;
}

}  // namespace

SweepStats run_sweep(const SweepConfig& c, const data::WindowSet& ws, const std::string& dir, const SweepRunOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<FoldPlan> all = select_folds(ws, 0, true);
  const std::vector<int> folds = resolve_folds(c, all);
  const std::vector<SweepPoint> points = plan_points(c, folds);
  const std::vector<TeacherJob> tjobs = plan_teacher_jobs(c, points, dir);
  SweepStats st;
  st.points_total = int(points.size());
  st.teachers_total = int(tjobs.size());
  int pend_t = 0, todo_p = 0;
  for (auto& j : tjobs) pend_t += !fs::exists(j.result);
  for (auto& p : points) todo_p += !fs::exists(point_result(dir, p));
  // Under MPI rank 0 alone plans, prints and writes the shared files; the others run jobs.
  const bool lead = dist::rank() == 0;
  if (lead) print_plan(c, folds.size(), tjobs, points, pend_t, todo_p, dir, o);
  if (o.dry_run) return st;
  if (lead) check_and_write_settings(c, dir, o.force_settings);

  // Progress counts only the runs this call will make (at most max_new_points points).
  const int pend_p = o.max_new_points >= 0 ? std::min(todo_p, o.max_new_points) : todo_p;
  SweepRun s{c, ws, dir, o, all, t0, pend_t + pend_p, 0, o.interrupt_after_batches >= 0};
  const std::vector<dist::Job> jobs = lead ? plan_jobs(tjobs, points, dir, o, st) : std::vector<dist::Job>{};
  const int n_teachers = int(tjobs.size());
  const auto run = [&](int id) {
    return id < n_teachers ? run_teacher(s, tjobs[size_t(id)]) : run_point(s, points[size_t(id - n_teachers)], tjobs);
  };
  const auto done = [&](int id, const std::string& summary) {
    ++(id < n_teachers ? st.teachers_run : st.points_run);
    const json j = json::parse(summary);
    s.report(j.at("what"), j.at("mae"), j.at("seconds"));
  };
  st.holds_results = dist::run_queue(jobs, run, done);
  st.seconds = s.elapsed();
  if (o.progress && st.holds_results)
    std::fprintf(stderr, "sweep: %d point(s) run, %d skipped as done; %d teacher run(s), %d reused; %s\n", st.points_run, st.points_skipped,
                 st.teachers_run, st.teachers_skipped, format_duration(st.seconds).c_str());
  return st;
}

}  // namespace pulsekd::kd
