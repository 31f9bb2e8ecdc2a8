// Parsing and validation of sweep configs (docs/SWEEPS.md): every error names the key.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "datasets/registry.h"
#include "kd/runs.h"
#include "kd/sweep.h"

namespace pulsekd::kd {

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
  if (!json_integer_in(v, lo, hi))
    bad(key_of(where, k), "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v.dump());
  return int(v.get<int64_t>());
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

// The optional "synth" block: generator options, meaningful only for synth data.
void parse_synth(const json& root, SweepConfig& c) {
  if (!root.contains("synth")) return;
  if (c.data.rfind("synth", 0) != 0) bad("synth", "applies only when data is synth[:SEED], got data '" + c.data + "'");
  const json& s = root.at("synth");
  check_keys(s, "synth", {"subjects", "minutes"});
  c.synth_options = true;
  c.synth_subjects = get_int(s, "synth", "subjects", 8, 3, 1000);
  c.synth_minutes = get_num(s, "synth", "minutes", 6.0, 0.5, 600);
}

// One "strategies" entry: every '+' part is known and named once, soft/dkd have the binned
// head, and a distilling strategy has a teacher to distil from.
void check_strategy(const std::string& w, const std::string& s, const std::string& head, const SweepConfig& c) {
  std::stringstream ss(s);
  std::string part;
  std::set<std::string> parts;
  while (std::getline(ss, part, '+')) {
    if (std::find(DistillOptions::known().begin(), DistillOptions::known().end(), part) == DistillOptions::known().end())
      bad(w, "'" + s + "': unknown strategy '" + part + "' (expected none, pulse, rkd, hard, soft, dkd, fitnet or a '+' combination)");
    if (!parts.insert(part).second) bad(w, "'" + s + "' names '" + part + "' twice");
  }
  if ((parts.count("soft") || parts.count("dkd")) && head != "binned") bad(w, "'" + s + "' needs the binned head: set \"head\": \"binned\"");
  if (c.teachers.empty()) bad("teachers", "is required: strategy '" + s + "' distils from a teacher");
}

void parse_strategies(const json& root, const std::string& head, SweepConfig& c) {
  if (!root.contains("strategies")) bad("strategies", "is required (none, pulse, rkd, hard, soft, dkd, fitnet, or combinations like pulse+rkd)");
  const json& sl = root.at("strategies");
  if (!sl.is_array() || sl.empty()) bad("strategies", "must be a non-empty list of strategy names");
  for (size_t i = 0; i < sl.size(); ++i) {
    const std::string w = "strategies[" + std::to_string(i) + "]";
    if (!sl[i].is_string()) bad(w, "must be a string, got " + sl[i].dump());
    const std::string s = sl[i].get<std::string>();
    if (std::find(c.strategies.begin(), c.strategies.end(), s) != c.strategies.end()) bad(w, "repeats '" + s + "'");
    if (s != "none") check_strategy(w, s, head, c);
    c.strategies.push_back(s);
  }
}

// "folds": "loso" or a list of distinct 1-based fold numbers (checked against the data later).
void parse_folds(const json& root, SweepConfig& c) {
  if (!root.contains("folds")) bad("folds", "is required (\"loso\" or a list such as [1, 2])");
  const json& f = root.at("folds");
  if (f.is_string()) {
    if (f.get<std::string>() != "loso") bad("folds", "must be \"loso\" or a list of 1-based fold numbers, got " + f.dump());
    c.loso = true;
  } else if (f.is_array() && !f.empty()) {
    for (auto& x : f) {
      if (!json_integer_in(x, 1, 100000))
        bad("folds", "must hold fold numbers 1..100000 (fold K tests subject K), got " + x.dump());
      if (std::count(c.folds.begin(), c.folds.end(), x.get<int>())) bad("folds", "repeats fold " + x.dump());
      c.folds.push_back(x.get<int>());
    }
  } else {
    bad("folds", "must be \"loso\" or a non-empty list of fold numbers, got " + f.dump());
  }
}

void parse_seeds(const json& root, SweepConfig& c) {
  if (!root.contains("seeds")) return;
  const json& s = root.at("seeds");
  if (!s.is_array() || s.empty()) bad("seeds", "must be a non-empty list of non-negative integers, got " + s.dump());
  c.seeds.clear();
  for (auto& x : s) {
    // Any uint64: nlohmann holds every non-negative integer as unsigned, 2^63 and above included.
    if (!x.is_number_unsigned()) bad("seeds", "must hold integers 0..18446744073709551615, got " + x.dump());
    if (std::count(c.seeds.begin(), c.seeds.end(), x.get<uint64_t>())) bad("seeds", "repeats seed " + x.dump());
    c.seeds.push_back(x.get<uint64_t>());
  }
}

// "train" is shared; "teacher_train" / "student_train" override it key by key.
void parse_train_sections(const json& root, SweepConfig& c) {
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
}

// "kd": loss parameters shared by every point; absent keys keep DistillOptions' defaults.
void parse_kd(const json& root, SweepConfig& c) {
  const json empty = json::object();
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
}


// Every (teacher, student, strategy) combination must be distillable (heads, dense widths).
void check_distillable(const SweepConfig& c) {
  for (const std::string& s : c.strategies) {
    if (s == "none") continue;
    const DistillOptions o = strategy_kd(c.kd, s);
    for (auto& t : c.teachers)
      for (auto& stu : c.students) try {
          o.validate(stu.model, t.model);
        } catch (const std::exception& e) {
          bad("strategies", "'" + s + "' cannot distil student " + stu.id + " from teacher " + t.id + ": " + e.what());
        }
  }
}

}  // namespace

DistillOptions strategy_kd(const DistillOptions& base, const std::string& strategy) {
  DistillOptions o = base;
  std::stringstream ss(strategy);
  std::string part;
  while (std::getline(ss, part, '+')) o.strategies.push_back(part);
  std::map<std::string, double> w;
  for (auto& [k, v] : o.weights)
    if (std::count(o.strategies.begin(), o.strategies.end(), k)) w[k] = v;
  o.weights = w;
  return o;
}

// The sections are parsed in this order so that the first error reported stays the same.
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
  parse_synth(root, c);
  const std::string head = get_str(root, "", "head", "regression", {"regression", "binned"});
  const int bins = get_int(root, "", "bins", 64, 2, 4096);
  c.teachers = parse_sizes(root, "teachers", head, bins);
  c.students = parse_sizes(root, "students", head, bins);
  if (c.students.empty()) bad("students", "is required: at least one student size");
  for (auto& t : c.teachers)
    for (auto& s : c.students)
      if (t.id == s.id) bad("teachers", "and students share the id '" + t.id + "' (give one of them a \"name\")");
  parse_strategies(root, head, c);
  parse_folds(root, c);
  parse_seeds(root, c);
  parse_train_sections(root, c);
  parse_kd(root, c);
  c.kd.task_loss = c.student_train.task_loss;
  check_distillable(c);
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

}  // namespace pulsekd::kd
