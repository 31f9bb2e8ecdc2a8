// Flags shared by train, distill and pipeline, and their translation into a kd::RunSpec.
#pragma once
#include <unistd.h>

#include <sstream>

#include "cli/commands.h"
#include "datasets/registry.h"
#include "datasets/subsets.h"
#include "dist/dist.h"
#include "kd/fileutil.h"
#include "kd/runs.h"

namespace pulsekd::cli {

struct RunArgs {
  std::string data = "synth", out, arch = "teacher", head = "regression", teacher, kd = "pulse", init;
  std::string optimizer = "adam", task_loss = "l1", freeze, kd_weights, schedule = "constant";
  double width = 1, lr = -1, weight_decay = -1, clip = 0;
  int depth = 3, bins = 64, fold = 0, epochs = 500, patience = -1, batch = 256, threads = 1;
  int stages = 3, base_channels = 16, kernel = 5;  // resnet family
  std::string student_arch = "student";
  uint64_t seed = 0;
  bool loso = false, all = false, init_mean = false, augment = false;
  double augment_motion = 0;
  bool force = false;
  std::string val_data;
  kd::DistillOptions kd_opts;
};

inline void add_run_options(CLI::App* cmd, RunArgs& a, bool distill) {
  cmd->add_option("--data", a.data, data::dataset_spec_help())->capture_default_str();
  cmd->add_option("--fold", a.fold, "train only fold K (test subject K, 1-based)")->check(finite_positive());
  cmd->add_flag("--loso", a.loso, "train every leave-one-subject-out fold");
  cmd->add_flag("--all", a.all, "train one model on every subject (validation: the last subject group, or --val-data); writes all/");
  cmd->add_option("--val-data", a.val_data, "with --all: validate on this dataset spec instead of a held-out group");
  cmd->add_option("--out", a.out, "output directory (fold<K>/ checkpoints, logs, results.json/csv)")->required();
  if (distill) {
    cmd->add_option("--teacher", a.teacher, "teacher run directory (fold<K>/best.safetensors) or one checkpoint")->required();
    cmd->add_option("--student-width", a.width, "student width multiplier")->capture_default_str()->check(finite_range(0.05, 16.0));
    cmd->add_option("--student-arch", a.student_arch, "student family: student (PULSE) or resnet")->capture_default_str()
        ->check(CLI::IsMember({"student", "resnet"}));
    cmd->add_option("--kd", a.kd, "strategies, comma separated: pulse, rkd, hard, soft, dkd, fitnet")->capture_default_str();
    cmd->add_option("--kd-weights", a.kd_weights, "per-strategy weights, e.g. pulse=1,rkd=0.5");
    cmd->add_option("--pulse-b", a.kd_opts.pulse_b, "PULSE loss b")->capture_default_str()->check(finite_range(0.0, 1.0));
    cmd->add_option("--pulse-g", a.kd_opts.pulse_g, "PULSE loss g")->capture_default_str()->check(finite_range(0.0, 1.0));
    cmd->add_option("--rkd-distance", a.kd_opts.rkd_distance, "RKD distance weight")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--rkd-angle", a.kd_opts.rkd_angle, "RKD angle weight")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--temperature", a.kd_opts.temperature, "soft/DKD temperature T")->capture_default_str()->check(finite_positive());
    cmd->add_option("--alpha", a.kd_opts.alpha, "soft KD alpha")->capture_default_str()->check(finite_range(0.0, 1.0));
    cmd->add_option("--dkd-alpha", a.kd_opts.dkd_alpha, "DKD alpha (TCKD weight)")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--dkd-beta", a.kd_opts.dkd_beta, "DKD beta (NCKD weight)")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--dkd-warmup", a.kd_opts.dkd_warmup, "DKD warm-up epochs")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--fitnet-lambda", a.kd_opts.fitnet_lambda, "FitNets hint weight")->capture_default_str()->check(finite_non_negative());
    cmd->add_option("--fitnet-stage1", a.kd_opts.fitnet_stage1_epochs, "two-stage FitNets: hint-only epochs first")->capture_default_str()
        ->check(finite_non_negative());
  } else {
    cmd->add_option("--model", a.arch, "teacher, student (PULSE) or resnet")->capture_default_str()
        ->check(CLI::IsMember({"teacher", "student", "resnet"}));
    cmd->add_option("--width", a.width, "width multiplier on every channel count")->capture_default_str()->check(finite_range(0.05, 16.0));
  }
  cmd->add_option("--depth", a.depth, "convolutions per block (resnet: residual blocks per stage)")->capture_default_str()->check(CLI::Range(1, 8));
  cmd->add_option("--stages", a.stages, "resnet: residual stages")->capture_default_str()->check(CLI::Range(1, 6));
  cmd->add_option("--base-channels", a.base_channels, "resnet: first-stage channels before --width")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--kernel", a.kernel, "resnet: convolution kernel size")->capture_default_str()->check(CLI::IsMember({3, 5, 7}));
  cmd->add_option("--head", a.head, "regression or binned")->capture_default_str()->check(CLI::IsMember({"regression", "binned"}));
  cmd->add_option("--bins", a.bins, "bins of the binned head (30-210 BPM)")->capture_default_str()->check(CLI::Range(2, 4096));
  cmd->add_option("--epochs", a.epochs, "maximum epochs")->capture_default_str()->check(finite_positive());
  cmd->add_option("--patience", a.patience, "early-stopping patience (default: teacher 150, student 100)")->check(finite_positive());
  cmd->add_option("--lr", a.lr, "learning rate (default: teacher 5e-4, student 1e-3)")->check(finite_positive());
  cmd->add_option("--weight-decay", a.weight_decay, "weight decay (default: teacher 0, student 1e-6)")->check(finite_non_negative());
  cmd->add_option("--optimizer", a.optimizer, "adam, adamw or sgd")->capture_default_str()->check(CLI::IsMember({"adam", "adamw", "sgd"}));
  cmd->add_option("--schedule", a.schedule, "learning-rate schedule: constant, step, cosine")->capture_default_str()
      ->check(CLI::IsMember({"constant", "step", "cosine"}));
  cmd->add_option("--loss", a.task_loss, "task loss: l1, mse, huber, logcosh")->capture_default_str()->check(CLI::IsMember({"l1", "mse", "huber", "logcosh"}));
  cmd->add_option("--batch", a.batch, "batch size")->capture_default_str()->check(finite_positive());
  cmd->add_option("--seed", a.seed, "random seed")->capture_default_str();
  cmd->add_option("--threads", a.threads, "threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--clip", a.clip, "clip the gradient norm to this (0: off)")->capture_default_str()->check(finite_non_negative());
  cmd->add_option("--init", a.init, "start from this checkpoint (.safetensors or a released .pt; a head change starts the output layer fresh)");
  cmd->add_option("--freeze", a.freeze, "comma-separated parameter-name prefixes to keep fixed (e.g. conv1,conv2)");
  cmd->add_flag("--init-output-mean", a.init_mean, "start the output at the training heart rates (regression: bias = mean HR; binned: biases = log of the training HR distribution)");
  cmd->add_flag("--augment", a.augment, "augment: amplitude scaling, time shift, noise, accelerometer rotation");
  cmd->add_flag("--force", a.force, "resume a run directory whose fold was started with other settings (default: refused, naming each difference)");
  cmd->add_option("--augment-motion", a.augment_motion,
                  "motion-aware augmentation strength (0-5, normalised units; implies --augment): ACC-driven PPG artefacts and "
                  "synthetic arm motion at random cadences")
      ->check(finite_range(0, 5));
}

// Under MPI every rank reads the data itself: a node with another copy (other files, another
// version) would train its folds on other windows. Compared on all ranks as a hash of the
// windows, labels and subjects; a difference fails every rank, rank 0 naming both.
inline void require_same_data(const data::WindowSet& ws) {
  if (dist::size() == 1) return;
  uint64_t h = dist::hash_bytes(ws.x.data(), ws.x.size() * sizeof(float));
  h = dist::hash_bytes(ws.hr.data(), ws.hr.size() * sizeof(float), h);
  h = dist::hash_bytes(ws.subject.data(), ws.subject.size() * sizeof(int32_t), h);
  for (const auto& s : ws.subjects) h = dist::hash_bytes(s.name.data(), s.name.size(), h);
  std::ostringstream shown;
  shown << ws.source << ": " << ws.subjects.size() << " subjects, " << ws.size() << " windows, hash " << std::hex << h;
  const dist::Disagreement d = dist::compare_ranks(shown.str(), shown.str());
  if (d.rank < 0) return;
  if (dist::rank() != 0) throw std::runtime_error("the ranks loaded different data (rank 0 names both)");
  throw std::runtime_error("the ranks loaded different data: rank 0 has " + d.mine + ", rank " + std::to_string(d.rank) + " has " +
                           d.theirs + "; every rank must read the same files (give --data a path that all nodes share)");
}

// The training data and the folds a run covers (--fold K, --loso, or --all [--val-data SPEC]).
struct RunData {
  data::WindowSet ws;
  std::vector<kd::FoldPlan> plans;
};
inline RunData load_run_data(const RunArgs& a) {
  RunData d;
  d.ws = data::load_dataset(a.data);
  require_same_data(d.ws);
  if (!a.val_data.empty() && !a.all) throw std::invalid_argument("--val-data goes with --all");
  if (!a.all) {
    d.plans = kd::select_folds(d.ws, a.fold, a.loso);
    return d;
  }
  if (a.fold > 0 || a.loso) throw std::invalid_argument("--all trains on every subject: drop --fold / --loso");
  int first_val = -1;
  if (!a.val_data.empty()) {
    first_val = static_cast<int>(d.ws.subjects.size());
    d.ws = data::concat(d.ws, data::load_dataset(a.val_data));
    require_same_data(d.ws);
  }
  d.plans = {kd::all_subjects_plan(d.ws, first_val)};
  return d;
}

inline kd::RunSpec make_spec(RunArgs& a, const data::WindowSet&) {
  const bool distill = !a.teacher.empty();
  kd::RunSpec spec;
  spec.model.arch = distill ? a.student_arch : a.arch;
  spec.model.stages = a.stages;
  spec.model.base_channels = a.base_channels;
  spec.model.kernel = a.kernel;
  spec.model.width = a.width;
  spec.model.convs_per_block = a.depth;
  spec.model.head = a.head;
  spec.model.bins = a.bins;
  spec.model.validate();
  const kd::Recipe recipe = kd::default_recipe(spec.model.arch);
  auto& t = spec.train;
  t.epochs = a.epochs;
  t.patience = a.patience > 0 ? a.patience : recipe.patience;
  t.lr = a.lr > 0 ? a.lr : recipe.lr;
  t.weight_decay = a.weight_decay >= 0 ? a.weight_decay : recipe.weight_decay;
  t.optimizer = a.optimizer;
  t.task_loss = a.task_loss;
  t.schedule = a.schedule;
  t.batch = a.batch;
  t.seed = a.seed;
  t.threads = a.threads;
  t.clip_norm = a.clip;
  t.init_output_at_mean = a.init_mean;
  t.freeze = kd::split_list(a.freeze);
  t.augment.enabled = a.augment || a.augment_motion > 0;
  t.augment.motion = a.augment_motion;
  t.progress = ::isatty(2);
  t.epoch_lines = !t.progress;  // without a terminal: one line per epoch
  spec.init_checkpoint = a.init;
  spec.force = a.force;
  if (distill) {
    a.kd_opts.strategies = kd::split_list(a.kd);
    a.kd_opts.task_loss = a.task_loss;
    for (const std::string& kv : kd::split_list(a.kd_weights)) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("--kd-weights: expected name=value, got '" + kv + "'");
      try {
        a.kd_opts.weights[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
      } catch (const std::exception&) {
        throw std::invalid_argument("--kd-weights: '" + kv + "' has no number after '='");
      }
    }
    spec.kd = &a.kd_opts;
    spec.teacher = a.teacher;
  }
  return spec;
}

}  // namespace pulsekd::cli
