// Evaluation: MAE, RMSE and Pearson r per subject and overall, raw and post-processed.
#pragma once
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/folds.h"
#include "models/pulse.h"

namespace pulsekd::kd {

struct Metrics {
  double mae = 0, rmse = 0, pearson = 0;
  int64_t n = 0;
};
Metrics compute_metrics(const std::vector<float>& pred, const std::vector<float>& truth);

struct SubjectEval {
  std::string subject;
  Metrics raw, post;
  std::vector<float> pred, pred_post, truth;  // (windows) in time order
};

struct EvalResult {
  std::vector<SubjectEval> subjects;
  // Mean over subjects of the per-subject MAE (the PULSE protocol's figure) and pooled metrics.
  double mean_subject_mae_raw = 0, mean_subject_mae_post = 0;
  Metrics pooled_raw, pooled_post;
};

// Predicts every window of the given subjects (normalised with norm) in batches.
std::vector<float> predict_windows(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& idx,
                                   const data::Normalizer& norm, int batch = 256);
EvalResult evaluate(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int>& subjects,
                    const data::Normalizer& norm);

// Table on a stream; JSON and CSV files.
std::string format_eval_table(const EvalResult& r, const std::string& title);
void write_eval_json(const std::string& path, const EvalResult& r, const std::string& extra_json = "{}");
void write_eval_csv(const std::string& path, const EvalResult& r);

}  // namespace pulsekd::kd
