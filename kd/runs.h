// Leave-one-subject-out runs shared by `train`, `distill`, `pipeline` and sweeps: for each
// selected fold, fit the normaliser on its training subjects, train (or distil), keep the
// best validation weights, evaluate the test subject; merge the per-subject results.
#pragma once
#include <string>
#include <vector>

#include "datasets/folds.h"
#include "kd/distill.h"
#include "kd/evaluate.h"
#include "kd/trainer.h"
#include "models/checkpoint.h"

namespace pulsekd::kd {

struct FoldPlan {
  int number = 0;  // 1-based: fold K tests subject K (in the set's subject order); 0: --all
  data::Fold fold;
  std::string dir_name() const { return number > 0 ? "fold" + std::to_string(number) : "all"; }
};
// fold > 0 selects one fold; loso selects all. Exactly one of them must be given.
std::vector<FoldPlan> select_folds(const data::WindowSet& ws, int fold, bool loso);
// --all: train on every subject but a validation set, test on none (evaluate on another set with
// `pulsekd eval`). first_val_subject >= 0: subjects from there on validate (the appended
// --val-data set); -1: the last subject group of loso_folds(ws, "auto") validates.
FoldPlan all_subjects_plan(const data::WindowSet& ws, int first_val_subject = -1);

// Per-architecture training defaults (PULSE.md §6 for teacher and student; the ResNet family
// takes the student's), used by train, distill, pipeline and sweeps alike.
struct Recipe {
  int patience = 150;
  double lr = 5e-4;
  double weight_decay = 0;
};
Recipe default_recipe(const std::string& arch);

struct RunSpec {
  models::ModelConfig model;
  TrainOptions train;
  std::string init_checkpoint;      // --init: start from these weights (pulsekd .safetensors or PyTorch .pt)
  const DistillOptions* kd = nullptr;
  std::string teacher;              // DIR with fold<K>/best.safetensors, or one checkpoint for all folds
  bool force = false;               // resume a fold whose state was saved with other settings (TrainOptions::force_resume)
};
// The settings of a run beyond TrainOptions (init source, teacher, distillation options) as
// TrainOptions::provenance JSON.
std::string run_provenance(const RunSpec& spec);

struct RunReport {
  EvalResult eval;
  std::vector<TrainResult> folds;
  double seconds = 0;
  int64_t params = 0, macs = 0;
  // False on the ranks of an MPI run other than rank 0: they ran some of the folds (their
  // directories are written) but rank 0 gathered the results and wrote results.json / .csv.
  bool holds_results = true;
};

// Trains (or distils) each planned fold into out_dir/fold<K>/ (or all/), tests it, and writes
// out_dir/results.{json,csv}. Under mpirun the folds are shared among the ranks (dist/dist.h);
// the files are those of a single process.
RunReport run_folds(const data::WindowSet& ws, const std::vector<FoldPlan>& plans, const RunSpec& spec,
                    const std::string& out_dir);

// A model from a pulsekd checkpoint, a PyTorch .pt (arch from the file name or `arch_hint`).
// --init: copy every parameter of the checkpoint at `path` into `model` (names and shapes must
// match), except the output layer when the heads differ (regression vs binned, other bins), which
// keeps its fresh initialisation. Throws naming the file and the parameter otherwise.
struct InitReport {
  int copied = 0;                  // parameters taken from the checkpoint
  std::vector<std::string> fresh;  // parameters left at their initialisation (output layer)
};
InitReport init_from_checkpoint(models::PulseModel& model, const std::string& path);
models::LoadedModel load_any_checkpoint(const std::string& path, const std::string& arch_hint = "");
// Throws unless `path` is a regular file, saying what it is instead: missing, a run directory
// (naming the checkpoints it holds, e.g. DIR/fold1/best.safetensors), or another kind of file.
// `flag` names the flag in the message ("--checkpoint").
void require_checkpoint_file(const std::string& path, const std::string& flag);
// The checkpoint of fold K (0: the --all run) in a run directory, or the file itself.
std::string checkpoint_for_fold(const std::string& dir_or_file, int fold);
// Every checkpoint a run directory holds (fold<K>/best.safetensors, all/best.safetensors): the
// folds in ascending order, then the --all run. Other entries are ignored.
std::vector<std::string> run_checkpoints(const std::string& dir);
// Evaluates a saved run on ws with post-processing pp: for each plan, the checkpoint of that
// fold (checkpoint_for_fold) on the plan's test subjects, or on every subject of ws when
// `every_subject` (a model trained on another set). A checkpoint without normalisation (an
// imported .pt) z-scores with the evaluated windows' own statistics, noted on stderr.
EvalResult evaluate_saved(const std::string& dir_or_file, const std::vector<FoldPlan>& plans, const data::WindowSet& ws,
                          const PostProcess& pp, bool every_subject);
// Merges several evaluations (different test subjects) into one.
EvalResult merge_evals(const std::vector<EvalResult>& parts);

}  // namespace pulsekd::kd
