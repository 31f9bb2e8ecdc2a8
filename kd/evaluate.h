// Evaluation: MAE, RMSE and Pearson r per subject and overall, raw and post-processed.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/folds.h"
#include "models/pulse.h"
#include "tracking/hmm.h"

namespace pulsekd::kd {

struct Metrics {
  double mae = 0, rmse = 0, pearson = 0;
  int64_t n = 0;
};
Metrics compute_metrics(const std::vector<float>& pred, const std::vector<float>& truth);

// Heart rates a human can have (BPM); outputs outside are flagged, never silently written.
constexpr float kPlausibleHrMin = 20, kPlausibleHrMax = 300;
// Indices of estimates outside [kPlausibleHrMin, kPlausibleHrMax] or not finite.
std::vector<int64_t> implausible_estimates(const std::vector<float>& hr);
// "" when every estimate is plausible, else one warning line naming `what`, the count and the first.
std::string implausible_warning(const std::vector<float>& hr, const std::string& what);

struct SubjectEval {
  std::string subject;
  Metrics raw, post;
  std::vector<float> pred, pred_post, truth;  // (windows) in time order
};

// What turns a recording's per-window outputs into its post-processed track.
struct PostProcess {
  // None: PULSE's clamp (data::postprocess_clamp). Forward / Viterbi: HMM belief tracking
  // (tracking/hmm.h) over `grid`, with the binned head's softmax (or, for the regression head,
  // a Laplace of width laplace_bpm around each estimate) as the per-window likelihood.
  tracking::TrackMode mode = tracking::TrackMode::None;
  tracking::TransitionPrior prior;  // fit it to training labels: TransitionPrior::fit
  double laplace_bpm = 5;
  tracking::HrGrid grid = tracking::HrGrid::uniform(30, 210, 181);  // 1 BPM states
  // Optional second likelihood per recording, multiplied in before tracking (the hybrid of a
  // network and a classical tracker's spectra): windows [first, first + count) of ws.
  std::function<tracking::Likelihoods(const data::WindowSet& ws, int64_t first, int64_t count, const tracking::HrGrid& grid)>
      fuse_with;
  std::string describe() const;  // "PULSE clamp", "HMM viterbi (prior b = 1.20 BPM)" ...
};

// The post-processed track of one recording. hr (T); logits (T, bins) of the binned head with
// their bin centres, or empty for the regression head; windows [first, first + T) of ws feed
// pp.fuse_with.
std::vector<float> post_process(const PostProcess& pp, const std::vector<float>& hr, const std::vector<float>& logits,
                                const std::vector<float>& centres, const data::WindowSet& ws, int64_t first);

struct EvalResult {
  std::vector<SubjectEval> subjects;
  // Mean over subjects of the per-subject MAE (the PULSE protocol's figure) and pooled metrics.
  double mean_subject_mae_raw = 0, mean_subject_mae_post = 0;
  Metrics pooled_raw, pooled_post;
};

// Predicts every window of the given subjects (normalised with norm) in batches; for the binned
// head also their logits (idx.size(), bins) when `logits` is given.
std::vector<float> predict_windows(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& idx,
                                   const data::Normalizer& norm, int batch = 256, std::vector<float>* logits = nullptr);
EvalResult evaluate(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int>& subjects,
                    const data::Normalizer& norm, const PostProcess& pp = {});
// Metrics of subjects whose pred / pred_post / truth are filled in; the means and pooled figures.
EvalResult summarise(std::vector<SubjectEval> subjects);

// Per-subject label traces in time order (all subjects when `subjects` is empty), for
// tracking::TransitionPrior::fit.
std::vector<std::vector<float>> label_traces(const data::WindowSet& ws, const std::vector<int>& subjects = {});

// Table on a stream; JSON and CSV files.
std::string format_eval_table(const EvalResult& r, const std::string& title);
void write_eval_json(const std::string& path, const EvalResult& r, const std::string& extra_json = "{}");
void write_eval_csv(const std::string& path, const EvalResult& r);
// One row per window: subject, window, time_s (centre of the 8 s window: 2 k + 4), truth, pred, pred_post.
void write_eval_windows_csv(const std::string& path, const EvalResult& r);

}  // namespace pulsekd::kd
