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
#include "kd/fileutil.h"
#include "kd/runs.h"

namespace pulsekd::kd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& msg) {
  throw std::invalid_argument("sweep config: " + key + " " + msg);
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

void check_keys(const json& j, const std::string& where, const std::vector<std::string>& known) {
  if (!j.is_object()) bad(where.empty() ? "the top level" : where, "must be a JSON object");
  for (auto& [k, v] : j.items())
    if (std::find(known.begin(), known.end(), k) == known.end())
      bad(where.empty() ? "'" + k + "'" : where + "." + k, "is not a known key (known: " + join(known) + ")");
}

std::string key_of(const std::string& where, const std::string& k) { return where.empty() ? k : where + "." + k; }

double get_num(const json& j, const std::string& where, const std::string& k, double def, double lo, double hi) {
  if (!j.contains(k)) return def;
  const json& v = j.at(k);
  if (!v.is_number()) bad(key_of(where, k), "must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(key_of(where, k), "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return x;
}

int get_int(const json& j, const std::string& where, const std::string& k, int def, int lo, int hi) {
  if (!j.contains(k)) return def;
  const json& v = j.at(k);
  if (!v.is_number_integer()) bad(key_of(where, k), "must be an integer, got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(key_of(where, k), "must be " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v.dump());
  return int(x);
}

bool get_bool(const json& j, const std::string& where, const std::string& k, bool def) {
  if (!j.contains(k)) return def;
  if (!j.at(k).is_boolean()) bad(key_of(where, k), "must be true or false, got " + j.at(k).dump());
  return j.at(k).get<bool>();
}

std::string get_str(const json& j, const std::string& where, const std::string& k, const std::string& def,
                    const std::vector<std::string>& allowed = {}) {
  if (!j.contains(k)) return def;
  if (!j.at(k).is_string()) bad(key_of(where, k), "must be a string, got " + j.at(k).dump());
  const std::string s = j.at(k).get<std::string>();
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end())
    bad(key_of(where, k), "must be one of " + join(allowed) + ", got '" + s + "'");
  return s;
}

// A number or an array of numbers.
std::vector<double> get_num_list(const json& j, const std::string& where, const std::string& k, double def, double lo, double hi,
                                 bool integer) {
  if (!j.contains(k)) return {def};
  const json& v = j.at(k);
  std::vector<json> items;
  if (v.is_array()) {
    if (v.empty()) bad(key_of(where, k), "must not be an empty list");
    for (auto& x : v) items.push_back(x);
  } else {
    items.push_back(v);
  }
  std::vector<double> out;
  for (auto& x : items) {
    if (integer ? !x.is_number_integer() : !x.is_number())
      bad(key_of(where, k), std::string("must be ") + (integer ? "an integer" : "a number") + " or a list of them, got " + v.dump());
    const double d = x.get<double>();
    if (!(d >= lo && d <= hi)) bad(key_of(where, k), "values must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + x.dump());
    out.push_back(d);
  }
  return out;
}

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::string size_id(const models::ModelConfig& m) {
  std::string s = m.arch + "-w" + fmt_g(m.width) + "-d" + std::to_string(m.convs_per_block);
  if (m.arch == "resnet") s += "-s" + std::to_string(m.stages) + "-c" + std::to_string(m.base_channels) + "-k" + std::to_string(m.kernel);
  if (m.dense != 32) s += "-h" + std::to_string(m.dense);
  return s;
}

std::vector<SweepSize> parse_sizes(const json& root, const std::string& key, const std::string& head, int bins) {
  std::vector<SweepSize> out;
  if (!root.contains(key)) return out;
  const json& list = root.at(key);
  if (!list.is_array()) bad(key, "must be a list of size groups ({\"arch\": ..., \"width\": [...], \"depth\": [...]})");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = key + "[" + std::to_string(i) + "]";
    const json& g = list[i];
    check_keys(g, w, {"arch", "width", "depth", "stages", "base_channels", "kernel", "dense", "dropout", "name"});
    if (!g.contains("arch")) bad(w + ".arch", "is required (teacher, student or resnet)");
    const std::string arch = get_str(g, w, "arch", "", {"teacher", "student", "resnet"});
    const auto widths = get_num_list(g, w, "width", 1.0, 0.01, 16, false);
    const auto depths = get_num_list(g, w, "depth", 3, 1, 8, true);
    const auto stages = get_num_list(g, w, "stages", 3, 1, 6, true);
    if (arch != "resnet")
      for (const char* k : {"stages", "base_channels", "kernel"})
        if (g.contains(k)) bad(w + "." + k, "applies to arch resnet only");
    const int base = get_int(g, w, "base_channels", 16, 1, 1024);
    const int kernel = get_int(g, w, "kernel", 5, 3, 7);
    const int dense = get_int(g, w, "dense", 32, 1, 4096);
    const double dropout = get_num(g, w, "dropout", -1, -1, 0.99);
    const std::string name = get_str(g, w, "name", "");
    if (!name.empty() && widths.size() * depths.size() * stages.size() != 1) bad(w + ".name", "names one size only (the group expands to several)");
    for (char ch : name)
      if (!std::isalnum((unsigned char)ch) && ch != '-' && ch != '_' && ch != '.') bad(w + ".name", "may hold letters, digits, '-', '_' and '.' only");
    for (double wd : widths)
      for (double dp : depths)
        for (double st : stages) {
          SweepSize s;
          s.model.arch = arch;
          s.model.width = wd;
          s.model.convs_per_block = int(dp);
          s.model.stages = int(st);
          s.model.base_channels = base;
          s.model.kernel = kernel;
          s.model.dense = dense;
          s.model.dropout = dropout;
          s.model.head = head;
          s.model.bins = bins;
          try {
            s.model.validate();
          } catch (const std::exception& e) {
            bad(w, std::string("describes an invalid model: ") + e.what());
          }
          s.id = name.empty() ? size_id(s.model) : name;
          for (auto& o : out)
            if (o.id == s.id) bad(w, "repeats the size '" + s.id + "'");
          out.push_back(s);
        }
  }
  return out;
}

const std::vector<std::string> kTrainKeys = {"epochs", "patience", "batch", "lr", "weight_decay", "optimizer", "loss",
                                             "threads", "clip", "init_output_mean", "augment"};

TrainOptions parse_train(const json& common, const json& over, const std::string& over_key, bool teacher) {
  json m = common;
  for (auto& [k, v] : over.items()) m[k] = v;
  const std::string where = over.contains("epochs") || over.empty() ? "train" : over_key;
  TrainOptions t;
  auto src = [&](const std::string& k) { return over.contains(k) ? over_key : std::string("train"); };
  if (!m.contains("epochs")) bad("train.epochs", "is required");
  t.epochs = get_int(m, src("epochs"), "epochs", 0, 1, 100000);
  const Recipe recipe = default_recipe(teacher ? "teacher" : "student");
  t.patience = get_int(m, src("patience"), "patience", recipe.patience, 1, 100000);
  t.batch = get_int(m, src("batch"), "batch", 256, 1, 65536);
  t.lr = get_num(m, src("lr"), "lr", recipe.lr, 1e-9, 10);
  t.weight_decay = get_num(m, src("weight_decay"), "weight_decay", recipe.weight_decay, 0, 1);
  t.optimizer = get_str(m, src("optimizer"), "optimizer", "adam", {"adam", "adamw", "sgd"});
  t.task_loss = get_str(m, src("loss"), "loss", "l1", {"l1", "mse", "huber", "logcosh"});
  t.threads = get_int(m, src("threads"), "threads", 1, 1, 256);
  t.clip_norm = get_num(m, src("clip"), "clip", 0, 0, 1e9);
  t.init_output_at_mean = get_bool(m, src("init_output_mean"), "init_output_mean", true);
  t.augment.enabled = get_bool(m, src("augment"), "augment", false);
  (void)where;
  return t;
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read '" + path + "'");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error("'" + path + "' is not valid JSON: " + e.what());
  }
}

SweepConfig SweepConfig::parse(const std::string& text) {
  json root;
  try {
    root = json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("sweep config: not valid JSON: ") + e.what());
  }
  check_keys(root, "", {"description", "data", "synth", "teachers", "students", "strategies", "folds", "seeds", "head", "bins",
                        "train", "teacher_train", "student_train", "kd"});
  SweepConfig c;
  c.raw = root;
  if (!root.contains("data")) bad("data", "is required (a dataset SPEC: " + std::string(data::dataset_spec_help()) + ")");
  c.data = get_str(root, "", "data", "");
  if (root.contains("synth")) {
    if (c.data.rfind("synth", 0) != 0) bad("synth", "applies only when data is synth[:SEED], got data '" + c.data + "'");
    const json& s = root.at("synth");
    check_keys(s, "synth", {"subjects", "minutes"});
    c.synth_options = true;
    c.synth_subjects = get_int(s, "synth", "subjects", 8, 3, 1000);
    c.synth_minutes = get_num(s, "synth", "minutes", 6.0, 0.5, 600);
  }
  const std::string head = get_str(root, "", "head", "regression", {"regression", "binned"});
  const int bins = get_int(root, "", "bins", 64, 2, 4096);
  c.teachers = parse_sizes(root, "teachers", head, bins);
  c.students = parse_sizes(root, "students", head, bins);
  if (c.students.empty()) bad("students", "is required: at least one student size");
  for (auto& t : c.teachers)
    for (auto& s : c.students)
      if (t.id == s.id) bad("teachers", "and students share the id '" + t.id + "' (give one of them a \"name\")");

  if (!root.contains("strategies")) bad("strategies", "is required (none, pulse, rkd, hard, soft, dkd, fitnet, or combinations like pulse+rkd)");
  const json& sl = root.at("strategies");
  if (!sl.is_array() || sl.empty()) bad("strategies", "must be a non-empty list of strategy names");
  for (size_t i = 0; i < sl.size(); ++i) {
    const std::string w = "strategies[" + std::to_string(i) + "]";
    if (!sl[i].is_string()) bad(w, "must be a string, got " + sl[i].dump());
    const std::string s = sl[i].get<std::string>();
    if (std::find(c.strategies.begin(), c.strategies.end(), s) != c.strategies.end()) bad(w, "repeats '" + s + "'");
    if (s != "none") {
      std::stringstream ss(s);
      std::string part;
      std::set<std::string> parts;
      while (std::getline(ss, part, '+')) {
        if (std::find(DistillOptions::known().begin(), DistillOptions::known().end(), part) == DistillOptions::known().end())
          bad(w, "'" + s + "': unknown strategy '" + part + "' (expected none, pulse, rkd, hard, soft, dkd, fitnet or a '+' combination)");
        if (!parts.insert(part).second) bad(w, "'" + s + "' names '" + part + "' twice");
      }
      if ((parts.count("soft") || parts.count("dkd")) && head != "binned")
        bad(w, "'" + s + "' needs the binned head: set \"head\": \"binned\"");
      if (c.teachers.empty()) bad("teachers", "is required: strategy '" + s + "' distils from a teacher");
    }
    c.strategies.push_back(s);
  }

  if (root.contains("folds")) {
    const json& f = root.at("folds");
    if (f.is_string()) {
      if (f.get<std::string>() != "loso") bad("folds", "must be \"loso\" or a list of 1-based fold numbers, got " + f.dump());
      c.loso = true;
    } else if (f.is_array() && !f.empty()) {
      for (auto& x : f) {
        if (!x.is_number_integer() || x.get<int64_t>() < 1 || x.get<int64_t>() > 100000)
          bad("folds", "must hold positive fold numbers (fold K tests subject K), got " + x.dump());
        if (std::count(c.folds.begin(), c.folds.end(), x.get<int>())) bad("folds", "repeats fold " + x.dump());
        c.folds.push_back(x.get<int>());
      }
    } else {
      bad("folds", "must be \"loso\" or a non-empty list of fold numbers, got " + f.dump());
    }
  } else {
    bad("folds", "is required (\"loso\" or a list such as [1, 2])");
  }
  if (root.contains("seeds")) {
    const json& s = root.at("seeds");
    if (!s.is_array() || s.empty()) bad("seeds", "must be a non-empty list of non-negative integers, got " + s.dump());
    c.seeds.clear();
    for (auto& x : s) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0) bad("seeds", "must hold non-negative integers, got " + x.dump());
      if (std::count(c.seeds.begin(), c.seeds.end(), x.get<uint64_t>())) bad("seeds", "repeats seed " + x.dump());
      c.seeds.push_back(x.get<uint64_t>());
    }
  }

  if (!root.contains("train")) bad("train", "is required (at least {\"epochs\": N})");
  const json& tr = root.at("train");
  check_keys(tr, "train", kTrainKeys);
  const json empty = json::object();
  const json& tt = root.contains("teacher_train") ? root.at("teacher_train") : empty;
  const json& st = root.contains("student_train") ? root.at("student_train") : empty;
  check_keys(tt, "teacher_train", kTrainKeys);
  check_keys(st, "student_train", kTrainKeys);
  c.teacher_train = parse_train(tr, tt, "teacher_train", true);
  c.student_train = parse_train(tr, st, "student_train", false);

  const json& kd = root.contains("kd") ? root.at("kd") : empty;
  check_keys(kd, "kd", {"temperature", "alpha", "dkd_alpha", "dkd_beta", "dkd_warmup", "pulse_b", "pulse_g", "rkd_distance", "rkd_angle",
                        "fitnet_lambda", "fitnet_stage1_epochs", "weights"});
  c.kd.temperature = get_num(kd, "kd", "temperature", c.kd.temperature, 1e-3, 1e3);
  c.kd.alpha = get_num(kd, "kd", "alpha", c.kd.alpha, 0, 1);
  c.kd.dkd_alpha = get_num(kd, "kd", "dkd_alpha", c.kd.dkd_alpha, 0, 1e3);
  c.kd.dkd_beta = get_num(kd, "kd", "dkd_beta", c.kd.dkd_beta, 0, 1e3);
  c.kd.dkd_warmup = get_int(kd, "kd", "dkd_warmup", c.kd.dkd_warmup, 0, 100000);
  c.kd.pulse_b = get_num(kd, "kd", "pulse_b", c.kd.pulse_b, 0, 1);
  c.kd.pulse_g = get_num(kd, "kd", "pulse_g", c.kd.pulse_g, 0, 1);
  c.kd.rkd_distance = get_num(kd, "kd", "rkd_distance", c.kd.rkd_distance, 0, 1e3);
  c.kd.rkd_angle = get_num(kd, "kd", "rkd_angle", c.kd.rkd_angle, 0, 1e3);
  c.kd.fitnet_lambda = get_num(kd, "kd", "fitnet_lambda", c.kd.fitnet_lambda, 0, 1e3);
  c.kd.fitnet_stage1_epochs = get_int(kd, "kd", "fitnet_stage1_epochs", c.kd.fitnet_stage1_epochs, 0, 100000);
  if (kd.contains("weights")) {
    const json& w = kd.at("weights");
    if (!w.is_object()) bad("kd.weights", "must be an object such as {\"rkd\": 0.5}");
    for (auto& [k, v] : w.items()) {
      if (std::find(DistillOptions::known().begin(), DistillOptions::known().end(), k) == DistillOptions::known().end())
        bad("kd.weights." + k, "is not a strategy (pulse, rkd, hard, soft, dkd, fitnet)");
      if (!v.is_number() || !(v.get<double>() >= 0)) bad("kd.weights." + k, "must be a number >= 0, got " + v.dump());
      c.kd.weights[k] = v.get<double>();
    }
  }
  c.kd.task_loss = c.student_train.task_loss;
  // Every (teacher, student, strategy) combination must be distillable (heads, dense widths).
  for (const std::string& s : c.strategies) {
    if (s == "none") continue;
    DistillOptions o = c.kd;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, '+')) o.strategies.push_back(part);
    std::map<std::string, double> w;
    for (auto& [k, v] : o.weights)
      if (std::count(o.strategies.begin(), o.strategies.end(), k)) w[k] = v;
    o.weights = w;
    for (auto& t : c.teachers)
      for (auto& stu : c.students) try {
          o.validate(stu.model, t.model);
        } catch (const std::exception& e) {
          bad("strategies", "'" + s + "' cannot distil student " + stu.id + " from teacher " + t.id + ": " + e.what());
        }
  }
  c.settings = root;
  for (const char* k : {"description", "teachers", "students", "strategies", "folds", "seeds"}) c.settings.erase(k);
  return c;
}

SweepConfig SweepConfig::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("--config '" + path + "' cannot be read");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse(ss.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
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

SweepStats run_sweep(const SweepConfig& c, const data::WindowSet& ws, const std::string& dir, const SweepRunOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&]() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  // Folds.
  const std::vector<FoldPlan> all = select_folds(ws, 0, true);
  std::vector<int> folds = c.folds;
  if (c.loso)
    for (auto& p : all) folds.push_back(p.number);
  for (int f : folds)
    if (f > int(all.size()))
      throw std::invalid_argument("sweep config: folds: fold " + std::to_string(f) + " does not exist, the data has " +
                                  std::to_string(all.size()) + " subjects (folds 1.." + std::to_string(all.size()) + ")");
  auto plan_of = [&](int f) { return std::vector<FoldPlan>{all[size_t(f - 1)]}; };

  const std::vector<SweepPoint> points = plan_points(c, folds);
  struct TeacherJob {
    int teacher;
    int fold;
    uint64_t seed;
    std::string run_dir, result;
  };
  std::vector<TeacherJob> tjobs;
  std::set<std::tuple<int, int, uint64_t>> seen;
  for (auto& p : points)
    if (p.teacher >= 0 && seen.insert({p.teacher, p.fold, p.seed}).second) {
      const std::string base = dir + "/teachers/" + c.teachers[size_t(p.teacher)].id + "/seed" + std::to_string(p.seed) + "-fold" +
                               std::to_string(p.fold);
      tjobs.push_back({p.teacher, p.fold, p.seed, base, base + ".json"});
    }
  auto teacher_job = [&](const SweepPoint& p) -> const TeacherJob& {
    for (auto& j : tjobs)
      if (j.teacher == p.teacher && j.fold == p.fold && j.seed == p.seed) return j;
    throw std::logic_error("sweep: no teacher job");
  };
  SweepStats st;
  st.points_total = int(points.size());
  st.teachers_total = int(tjobs.size());
  int pend_t = 0, pend_p = 0;
  for (auto& j : tjobs) pend_t += !fs::exists(j.result);
  for (auto& p : points) pend_p += !fs::exists(dir + "/points/" + p.id + ".json");
  if (o.max_new_points >= 0) pend_p = std::min(pend_p, o.max_new_points);
  if (o.progress || o.dry_run)
    std::cerr << "sweep: " << c.teachers.size() << " teacher size(s), " << c.students.size() << " student size(s), " << c.strategies.size()
              << " strateg" << (c.strategies.size() == 1 ? "y" : "ies") << ", " << folds.size() << " fold(s), " << c.seeds.size()
              << " seed(s): " << tjobs.size() << " teacher runs (" << tjobs.size() - size_t(pend_t) << " done), " << points.size()
              << " points (" << points.size() - size_t(std::count_if(points.begin(), points.end(), [&](const SweepPoint& p) {
                   return !fs::exists(dir + "/points/" + p.id + ".json");
                 })) << " done)\n";
  if (o.dry_run) {
    for (auto& j : tjobs)
      std::cout << (fs::exists(j.result) ? "done  " : "todo  ") << "teacher " << c.teachers[size_t(j.teacher)].id << " fold " << j.fold << " seed "
                << j.seed << "\n";
    for (auto& p : points) std::cout << (fs::exists(dir + "/points/" + p.id + ".json") ? "done  " : "todo  ") << p.id << "\n";
    return st;
  }

  // Settings: results in DIR are only comparable when made with the same settings.
  ensure_dir(dir, "--out");
  ensure_dir(dir + "/points", "--out");
  const std::string settings_path = dir + "/settings.json";
  if (fs::exists(settings_path)) {
    const json old = read_json_file(settings_path);
    if (old != c.settings && !o.force_settings) {
      std::vector<std::string> diff;
      for (auto& [k, v] : c.settings.items())
        if (!old.contains(k) || old.at(k) != v) diff.push_back(k);
      for (auto& [k, v] : old.items())
        if (!c.settings.contains(k)) diff.push_back(k);
      throw std::invalid_argument("sweep: '" + dir + "' was made with other settings (" + join(diff) +
                                  " differ; only teachers, students, strategies, folds and seeds may change between runs); use "
                                  "another --out, or --force to mix them");
    }
  }
  write_file_atomic(settings_path, c.settings.dump(1) + "\n");
  write_file_atomic(dir + "/config.json", c.raw.dump(1) + "\n");

  const int units = pend_t + pend_p;
  int done_units = 0;
  bool interrupt_armed = o.interrupt_after_batches >= 0;
  auto report = [&](const std::string& what, double mae, double secs) {
    ++done_units;
    if (!o.progress) return;
    const double el = elapsed();
    const double eta = done_units > 0 ? el / done_units * (units - done_units) : 0;
    std::fprintf(stderr, "sweep [%d/%d] %s: MAE %.2f BPM in %s; elapsed %s, ETA %s\n", done_units, units, what.c_str(), mae,
                 format_duration(secs).c_str(), format_duration(el).c_str(), format_duration(eta).c_str());
  };
  auto prep = [&](TrainOptions t, uint64_t seed) {
    t.seed = seed;
    t.progress = o.progress && ::isatty(2);
    if (interrupt_armed) {
      t.interrupt_after_batches = o.interrupt_after_batches;
      interrupt_armed = false;
    }
    return t;
  };

  // Teachers: trained once per (size, fold, seed), reused by every student and strategy.
  for (auto& j : tjobs) {
    if (fs::exists(j.result)) {
      ++st.teachers_skipped;
      continue;
    }
    const SweepSize& ts = c.teachers[size_t(j.teacher)];
    RunSpec spec;
    spec.model = ts.model;
    spec.train = prep(c.teacher_train, j.seed);
    const RunReport rep = run_folds(ws, plan_of(j.fold), spec, j.run_dir);
    json r = {{"id", ts.id}, {"config", json::parse(ts.model.to_json())}, {"parameters", rep.params}, {"macs_per_window", rep.macs},
              {"fold", j.fold}, {"seed", j.seed}, {"test_subject", rep.eval.subjects.at(0).subject},
              {"mae", rep.eval.mean_subject_mae_raw}, {"mae_post", rep.eval.mean_subject_mae_post},
              {"best_epoch", rep.folds.at(0).best_epoch}, {"best_val_mae", rep.folds.at(0).best_val_mae},
              {"epochs_run", rep.folds.at(0).history.size()}, {"seconds", rep.seconds}, {"data", c.data},
              {"checkpoint", fs::path(j.run_dir).filename().string() + "/fold" + std::to_string(j.fold) + "/best.safetensors"}};
    write_file_atomic(j.result, r.dump(1) + "\n");
    ++st.teachers_run;
    report("teacher " + ts.id + " fold " + std::to_string(j.fold) + " seed " + std::to_string(j.seed), rep.eval.mean_subject_mae_raw,
           rep.seconds);
  }

  // Points.
  for (auto& p : points) {
    const std::string result = dir + "/points/" + p.id + ".json";
    if (fs::exists(result)) {
      ++st.points_skipped;
      continue;
    }
    if (o.max_new_points >= 0 && st.points_run >= o.max_new_points) break;
    const SweepSize& ss = c.students[size_t(p.student)];
    RunSpec spec;
    spec.model = ss.model;
    spec.train = prep(c.student_train, p.seed);
    DistillOptions kd = c.kd;
    json teacher = nullptr;
    if (p.strategy != "none") {
      std::stringstream sst(p.strategy);
      std::string part;
      while (std::getline(sst, part, '+')) kd.strategies.push_back(part);
      std::map<std::string, double> w;
      for (auto& [k, v] : kd.weights)
        if (std::count(kd.strategies.begin(), kd.strategies.end(), k)) w[k] = v;
      kd.weights = w;
      const TeacherJob& tj = teacher_job(p);
      spec.kd = &kd;
      spec.teacher = tj.run_dir;
      const json tr = read_json_file(tj.result);
      teacher = {{"id", c.teachers[size_t(p.teacher)].id}, {"config", tr.at("config")}, {"parameters", tr.at("parameters")},
                 {"macs_per_window", tr.at("macs_per_window")}, {"mae", tr.at("mae")}};
    }
    const RunReport rep = run_folds(ws, plan_of(p.fold), spec, dir + "/runs/" + p.id);
    json r = {{"id", p.id}, {"strategy", p.strategy}, {"fold", p.fold}, {"seed", p.seed}, {"data", c.data},
              {"student", {{"id", ss.id}, {"config", json::parse(ss.model.to_json())}, {"parameters", rep.params}, {"macs_per_window", rep.macs}}},
              {"teacher", teacher}, {"test_subject", rep.eval.subjects.at(0).subject}, {"mae", rep.eval.mean_subject_mae_raw},
              {"mae_post", rep.eval.mean_subject_mae_post}, {"rmse", rep.eval.pooled_raw.rmse}, {"best_epoch", rep.folds.at(0).best_epoch},
              {"best_val_mae", rep.folds.at(0).best_val_mae}, {"epochs_run", rep.folds.at(0).history.size()},
              {"seconds", rep.seconds}};
    write_file_atomic(result, r.dump(1) + "\n");
    ++st.points_run;
    report(p.id, rep.eval.mean_subject_mae_raw, rep.seconds);
  }
  st.seconds = elapsed();
  if (o.progress)
    std::fprintf(stderr, "sweep: %d point(s) run, %d skipped as done; %d teacher run(s), %d reused; %s\n", st.points_run, st.points_skipped,
                 st.teachers_run, st.teachers_skipped, format_duration(st.seconds).c_str());
  return st;
}

}  // namespace pulsekd::kd
