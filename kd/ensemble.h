// Ensembles of saved models (issue #17 item 4): several checkpoints — typically the fold models
// of one leave-one-subject-out run — answer together for windows none of them was trained on.
// Each member normalises the raw windows with its own statistics; the ensemble's heart rate is
// the mean of the members' (regression), or the mean of their bin probabilities (binned head:
// the logits returned are the log of that mean, so a softmax gives it back).
#pragma once
#include <string>
#include <vector>

#include "datasets/folds.h"
#include "kd/evaluate.h"
#include "models/checkpoint.h"

namespace pulsekd::kd {

struct EnsembleMember {
  std::string path;
  models::LoadedModel model;
  data::Normalizer norm;  // the checkpoint's own, or the evaluated windows' when it has none
};

// The checkpoints an ensemble argument names: a run directory gives every fold<K>/best.safetensors
// (fold order) and all/best.safetensors when present; otherwise a comma-separated list of
// checkpoint files. Throws naming the argument when it yields fewer than 2 or a file is missing.
std::vector<std::string> ensemble_checkpoints(const std::string& dir_or_list);

// Loads the members; those without stored statistics are normalised with windows `idx` of ws
// (as evaluate_saved does for one checkpoint). Throws naming the files when the heads differ.
std::vector<EnsembleMember> load_ensemble(const std::vector<std::string>& paths, const data::WindowSet& ws,
                                          const std::vector<int64_t>& idx);

// A Predictor over RAW windows (n, 4, 256): evaluate it with an identity data::Normalizer{}.
// The members must outlive it.
Predictor ensemble_predictor(std::vector<EnsembleMember>& members);

// evaluate_saved for an ensemble: every subject of `subjects` through every member.
EvalResult evaluate_ensemble(const std::vector<std::string>& paths, const data::WindowSet& ws,
                             const std::vector<int>& subjects, const PostProcess& pp);

}  // namespace pulsekd::kd
