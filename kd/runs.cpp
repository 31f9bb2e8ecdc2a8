#include "kd/runs.h"

#include <algorithm>
#include <climits>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "dist/dist.h"
#include "kd/fileutil.h"
#include "models/checkpoint.h"

namespace pulsekd::kd {

namespace fs = std::filesystem;

namespace {

// A fold that leaves nothing to train on is a usage error, said in the user's terms.
void require_training_subjects(const data::WindowSet& ws, const FoldPlan& fp) {
  if (!fp.fold.train.empty()) return;
  const std::string which = fp.number > 0 ? "fold " + std::to_string(fp.number) : "--all";
  throw std::invalid_argument(which + ": '" + ws.source + "' has " + std::to_string(ws.subjects.size()) +
                              " subjects, and after the test and validation subjects none is left to train on; give more subjects");
}

}  // namespace

std::vector<FoldPlan> select_folds(const data::WindowSet& ws, int fold, bool loso) {
  if ((fold > 0) == loso) throw std::invalid_argument("give exactly one of --fold K and --loso");
  const std::vector<data::Fold> all = data::loso_folds(ws, "auto");
  std::vector<FoldPlan> out;
  if (loso) {
    for (size_t i = 0; i < all.size(); ++i) out.push_back({int(i) + 1, all[i]});
  } else {
    if (fold > int(all.size()))
      throw std::invalid_argument("--fold " + std::to_string(fold) + ": the data has " + std::to_string(all.size()) +
                                  " subjects (folds 1.." + std::to_string(all.size()) + ")");
    out.push_back({fold, all[size_t(fold - 1)]});
  }
  for (const FoldPlan& fp : out) require_training_subjects(ws, fp);
  return out;
}

FoldPlan all_subjects_plan(const data::WindowSet& ws, int first_val_subject) {
  const int n = static_cast<int>(ws.subjects.size());
  FoldPlan plan;
  if (first_val_subject >= 0) {
    if (first_val_subject < 1 || first_val_subject >= n)
      throw std::invalid_argument("--all: need training subjects before the validation subjects");
    for (int s = 0; s < n; ++s) (s < first_val_subject ? plan.fold.train : plan.fold.val).push_back(s);
    return plan;
  }
  if (n < 2) throw std::invalid_argument("--all: the data has " + std::to_string(n) + " subject; need >= 2 (one validates)");
  // The last subject's LOSO fold: its validation group plus the subject itself validate.
  const data::Fold last = data::loso_folds(ws, "auto").back();
  plan.fold.train = last.train;
  plan.fold.val = last.val;
  plan.fold.val.insert(plan.fold.val.end(), last.test.begin(), last.test.end());
  std::sort(plan.fold.val.begin(), plan.fold.val.end());
  if (plan.fold.train.empty()) {  // two or three subjects: the groups leave none to train on
    plan.fold = {};
    for (int s = 0; s + 1 < n; ++s) plan.fold.train.push_back(s);
    plan.fold.val = {n - 1};
  }
  return plan;
}

void require_checkpoint_file(const std::string& path, const std::string& flag) {
  if (fs::is_regular_file(path)) return;
  if (!fs::exists(path)) throw std::runtime_error(flag + " '" + path + "' does not exist");
  if (!fs::is_directory(path)) throw std::runtime_error(flag + " '" + path + "' is not a regular file (a device, FIFO or socket?)");
  std::vector<std::string> found;  // run sub-directories holding a best checkpoint
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_directory() && fs::is_regular_file(e.path() / "best.safetensors")) found.push_back(e.path().filename().string());
  std::sort(found.begin(), found.end());
  if (found.empty())
    throw std::runtime_error(flag + " '" + path + "' is a directory, not a checkpoint file (and holds no FOLD/best.safetensors)");
  std::string list;
  for (size_t i = 0; i < found.size() && i < 6; ++i) list += (i ? ", " : "") + found[i];
  if (found.size() > 6) list += ", ...";
  throw std::runtime_error(flag + " '" + path + "' is a run directory; give one of its checkpoints, e.g. " +
                           (fs::path(path) / found.front() / "best.safetensors").string() + " (it holds " + list + ")");
}

models::LoadedModel load_any_checkpoint(const std::string& path, const std::string& arch_hint) {
  require_checkpoint_file(path, "checkpoint");
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".pt") == 0) {
    std::string arch = arch_hint;
    const std::string name = fs::path(path).filename().string();
    if (arch.empty()) arch = name.find("student") != std::string::npos || name.find("distil") != std::string::npos ? "student" : "teacher";
    models::LoadedModel lm;
    lm.model = models::import_torch(path, arch);
    return lm;
  }
  return models::load_checkpoint(path);
}

std::string checkpoint_for_fold(const std::string& p, int fold) {
  if (fs::is_directory(p)) {
    const std::string sub = FoldPlan{fold, {}}.dir_name();
    const std::string f = p + "/" + sub + "/best.safetensors";
    if (!fs::is_regular_file(f))
      throw std::runtime_error("'" + p + "' has no " + sub + "/best.safetensors (" +
                               (fold > 0 ? "train that fold first" : "train with --all, or give --fold K / --loso") + ")");
    return f;
  }
  return p;
}

std::vector<std::string> run_checkpoints(const std::string& dir) {
  std::vector<std::pair<int, std::string>> found;  // (order: fold number, the --all run last; path)
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const std::string file = e.path().string() + "/best.safetensors";
    if (!e.is_directory() || !fs::is_regular_file(file)) continue;
    const bool digits = name.size() > 4 && name.size() < 10 &&
                        std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int fold = name == "all" ? 0 : digits ? std::stoi(name.substr(4)) : -1;
    if (fold < 0 || FoldPlan{fold, {}}.dir_name() != name) continue;  // not a run's own sub-directory
    found.emplace_back(fold == 0 ? INT_MAX : fold, file);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(f.second);
  return paths;
}

Recipe default_recipe(const std::string& arch) {
  if (arch == "teacher") return {150, 5e-4, 0};
  return {100, 1e-3, 1e-6};  // student and the ResNet family
}

EvalResult evaluate_saved(const std::string& dir_or_file, const std::vector<FoldPlan>& plans, const data::WindowSet& ws,
                          const PostProcess& pp, bool every_subject) {
  std::vector<int> all_subjects(ws.subjects.size());
  for (size_t s = 0; s < all_subjects.size(); ++s) all_subjects[s] = int(s);
  std::vector<EvalResult> parts;
  for (const FoldPlan& fp : plans) {
    const std::vector<int>& subjects = every_subject ? all_subjects : fp.fold.test;
    const std::string path = checkpoint_for_fold(dir_or_file, fp.number);
    models::LoadedModel lm = load_any_checkpoint(path);
    data::Normalizer norm;
    if (lm.norm.present) {
      norm = lm.norm;
    } else {
      // As PULSE.md §6 does for the released models: the evaluated windows' own statistics.
      norm = data::Normalizer::fit(ws, data::windows_of(ws, subjects));
      std::cerr << "note: " << path << " carries no normalisation; using the evaluated windows' own statistics\n";
    }
    parts.push_back(evaluate(*lm.model, ws, subjects, norm, pp));
  }
  return merge_evals(parts);
}

EvalResult merge_evals(const std::vector<EvalResult>& parts) {
  std::vector<SubjectEval> all;
  for (auto& e : parts) all.insert(all.end(), e.subjects.begin(), e.subjects.end());
  return summarise(std::move(all));
}

InitReport init_from_checkpoint(models::PulseModel& model, const std::string& path) {
  models::LoadedModel init = load_any_checkpoint(path, model.config().arch);
  const models::ModelConfig& from = init.model->config();
  const models::ModelConfig& to = model.config();
  // Only the output layer may differ, and only when the heads differ (regression <-> binned, or
  // another number of bins): transfer of a regression checkpoint to a binned student.
  const bool head_differs = from.head != to.head || (to.head == "binned" && from.bins != to.bins);
  InitReport r;
  for (auto& [name, p] : model.named_parameters(true)) {
    Parameter* src = init.model->find(name);
    const bool same = src && src->shape == p->shape;
    if (!same && head_differs && name.rfind("out.", 0) == 0) {
      // A fresh output layer over transferred features starts at zero weights: with its fan-in
      // init, the released models' large dense32 features gave logits of tens (softmax one-hot,
      // cross-entropy ~50 on SPC 2015) that barely moved at fine-tuning learning rates.
      if (name == "out.weight") std::fill(p->value.begin(), p->value.end(), real(0));
      r.fresh.push_back(name);
      continue;
    }
    if (!same)
      throw std::runtime_error("--init '" + path + "': parameter '" + name + "' missing or of another shape (" +
                               from.describe() + " vs " + to.describe() + ")");
    p->value = src->value;
    ++r.copied;
  }
  return r;
}

std::string run_provenance(const RunSpec& spec) {
  nlohmann::json j = {{"init", spec.init_checkpoint}, {"teacher", spec.teacher}};
  if (spec.kd) {
    const DistillOptions& k = *spec.kd;
    j["kd"] = {{"strategies", k.strategies}, {"weights", k.weights}, {"task_loss", k.task_loss},
               {"pulse_b", k.pulse_b}, {"pulse_g", k.pulse_g}, {"rkd_distance", k.rkd_distance},
               {"rkd_angle", k.rkd_angle}, {"temperature", k.temperature}, {"alpha", k.alpha},
               {"dkd_alpha", k.dkd_alpha}, {"dkd_beta", k.dkd_beta}, {"dkd_warmup", k.dkd_warmup},
               {"fitnet_lambda", k.fitnet_lambda}, {"fitnet_stage1_epochs", k.fitnet_stage1_epochs}};
  }
  return j.dump();
}

namespace {

// One fold's outcome as bytes, to travel from the rank that ran it to rank 0 (dist::run_queue):
// its test subjects' per-window predictions and truth (floats exactly: CBOR keeps every bit), the
// training summary and history, the model's size.
struct FoldOutcome {
  EvalResult eval;
  TrainResult train;
  int64_t params = 0, macs = 0;
};

std::string encode_outcome(const FoldOutcome& o) {
  nlohmann::json subjects = nlohmann::json::array(), history = nlohmann::json::array();
  for (const SubjectEval& se : o.eval.subjects)
    subjects.push_back({{"subject", se.subject}, {"pred", se.pred}, {"pred_post", se.pred_post}, {"truth", se.truth}});
  for (const EpochLog& h : o.train.history) history.push_back({h.epoch, h.train_loss, h.val_mae, h.seconds, h.lr});
  const TrainResult& t = o.train;
  const nlohmann::json j = {{"subjects", subjects}, {"history", history}, {"best_epoch", t.best_epoch},
                            {"best_val_mae", t.best_val_mae}, {"seconds", t.seconds}, {"resumed", t.resumed},
                            {"early_stopped", t.early_stopped}, {"params", o.params}, {"macs", o.macs}};
  const std::vector<uint8_t> bytes = nlohmann::json::to_cbor(j);
  return std::string(bytes.begin(), bytes.end());
}

FoldOutcome decode_outcome(const std::string& bytes) {
  const nlohmann::json j = nlohmann::json::from_cbor(bytes);
  FoldOutcome o;
  std::vector<SubjectEval> subjects;
  for (const auto& s : j.at("subjects")) {
    SubjectEval se;
    se.subject = s.at("subject");
    se.pred = s.at("pred").get<std::vector<float>>();
    se.pred_post = s.at("pred_post").get<std::vector<float>>();
    se.truth = s.at("truth").get<std::vector<float>>();
    subjects.push_back(std::move(se));
  }
  o.eval = summarise(std::move(subjects));  // the metrics follow from the windows, as on the rank that ran it
  for (const auto& h : j.at("history"))  // [epoch, train_loss, val_mae, seconds, lr]
    o.train.history.push_back({h[0].get<int>(), h[1].get<double>(), h[2].get<double>(), h[3].get<double>(), h[4].get<double>()});
  o.train.best_epoch = j.at("best_epoch");
  o.train.best_val_mae = j.at("best_val_mae");
  o.train.seconds = j.at("seconds");
  o.train.resumed = j.at("resumed");
  o.train.early_stopped = j.at("early_stopped");
  o.params = j.at("params");
  o.macs = j.at("macs");
  return o;
}

// A process killed inside an atomic write (engine/atomic_file.h) leaves its temporary
// NAME.tmp.<pid> beside the file. Only the process running a fold writes into its directory, so
// when a fold starts, any such file there is stale (also those of a rank on another node, whose
// pid the atomic writer cannot check).
void remove_stale_temporaries(const std::string& fdir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fdir, ec)) {
    const std::string n = e.path().filename().string();
    const size_t at = n.rfind(".tmp.");
    if (at != std::string::npos && at + 5 < n.size() && n.find_first_not_of("0123456789", at + 5) == std::string::npos &&
        e.is_regular_file())
      fs::remove(e.path(), ec);
  }
}

// Trains (or distils) one fold into out_dir/<fold>/ and tests it; writes its test.json.
FoldOutcome run_fold(const data::WindowSet& ws, const FoldPlan& fp, const RunSpec& spec, const std::string& fdir,
                     bool first_fold) {
  models::PulseModel model(spec.model, spec.train.seed);
  if (!spec.init_checkpoint.empty()) {
    const InitReport ir = init_from_checkpoint(model, spec.init_checkpoint);
    if (!ir.fresh.empty() && first_fold)
      std::cerr << "--init: the checkpoint has another head; '" << ir.fresh.front()
                << "' and the rest of the output layer start fresh\n";
  }
  FoldOutcome o;
  o.params = model.num_parameters();
  o.macs = model.macs_per_window();
  const data::Normalizer norm = data::Normalizer::fit(ws, data::windows_of(ws, fp.fold.train));
  TrainOptions to = spec.train;
  to.out_dir = fdir;
  to.provenance = run_provenance(spec);
  to.force_resume = spec.force;
  to.label = (spec.kd ? "distil " : "train ") + spec.model.arch + (fp.number > 0 ? " fold " + std::to_string(fp.number) : " all");
  if (spec.kd) {
    models::LoadedModel teacher = load_any_checkpoint(checkpoint_for_fold(spec.teacher, fp.number), "teacher");
    DistillLoss dl = make_distill_loss(*teacher.model, model, *spec.kd, spec.train.seed);
    if (!spec.train.augment.enabled) dl.cache_teacher(ws, data::windows_of(ws, fp.fold.train), norm);
    to.extra_parameters = dl.extra_parameters();
    o.train = train_model(model, ws, fp.fold, norm, to, dl.fn);
  } else {
    o.train = train_model(model, ws, fp.fold, norm, to);
  }
  o.eval = evaluate(model, ws, fp.fold.test, norm);
  write_eval_json(fdir + "/test.json", o.eval);
  return o;
}

}  // namespace

RunReport run_folds(const data::WindowSet& ws, const std::vector<FoldPlan>& plans, const RunSpec& spec,
                    const std::string& out_dir) {
  CreatedDirs dirs;  // a run that fails before writing anything leaves no empty directory
  dirs.ensure(out_dir, "--out");
  RunReport rep;
  const auto t0 = std::chrono::steady_clock::now();
  // Each fold is a job; under MPI the ranks share them (dist/dist.h) and rank 0 gathers the
  // outcomes, in plan order whatever the order they finished in.
  std::vector<dist::Job> jobs(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) jobs[i].id = int(i);
  std::vector<std::string> outcomes(plans.size());  // (folds) encoded FoldOutcome
  const auto run = [&](int i) {
    const FoldPlan& fp = plans[size_t(i)];
    const std::string fdir = out_dir + "/" + fp.dir_name();
    dirs.ensure(fdir, "--out");
    remove_stale_temporaries(fdir);
    return encode_outcome(run_fold(ws, fp, spec, fdir, i == 0));
  };
  rep.holds_results = dist::run_queue(jobs, run, [&](int i, const std::string& r) { outcomes[size_t(i)] = r; });
  if (!rep.holds_results) return rep;  // another rank writes results.json
  std::vector<EvalResult> evals;
  for (const std::string& bytes : outcomes) {
    FoldOutcome o = decode_outcome(bytes);
    rep.params = o.params, rep.macs = o.macs;
    evals.push_back(std::move(o.eval));
    rep.folds.push_back(std::move(o.train));
  }
  rep.eval = merge_evals(evals);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json extra = {{"model", nlohmann::json::parse(spec.model.to_json())}, {"seconds", rep.seconds},
                          {"parameters", rep.params}, {"macs_per_window", rep.macs}};
  if (spec.kd) extra["kd"] = spec.kd->strategies;
  write_eval_json(out_dir + "/results.json", rep.eval, extra.dump());
  write_eval_csv(out_dir + "/results.csv", rep.eval);
  return rep;
}

}  // namespace pulsekd::kd
