// Leave-one-subject-out folds, normalisation, post-processing and batching (PULSE protocol).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace pulsekd::data {

struct Fold {
  std::vector<int> train, val, test;  // subject indices into WindowSet::subjects
};

// One fold per subject (test = {t}), in subject order.
// kind "dalia": PULSE's fixed validation groups [[5,6,7,8],[9,10,11,12],[13,14,15],[1,2,3,4]]
//   (subject numbers from the names S1..S15; all 15 must be present): val = G \ {t},
//   train = every subject outside G.
// kind "groups4": the same scheme for any set: subjects split in order into 4 contiguous
//   groups of near-equal size (sizes differ by at most 1, larger groups first); with fewer
//   than 8 subjects a group can be a single subject: then val = the first subject of the next
//   group (cyclically), which leaves train. Needs >= 2 subjects.
// kind "auto": "dalia" when ws.source starts with "dalia:" and all 15 subjects are there, else "groups4".
std::vector<Fold> loso_folds(const WindowSet& ws, const std::string& kind);

// The windows of a list of subjects, in set order: (sum of their num_windows).
std::vector<int64_t> windows_of(const WindowSet& ws, const std::vector<int>& subjects);

// Per-row z-score with statistics of training windows only (PULSE section 1).
struct Normalizer {
  float mean[kRows] = {0, 0, 0, 0};
  float std[kRows] = {1, 1, 1, 1};  // floored at 1e-6
  static Normalizer fit(const WindowSet& ws, const std::vector<int64_t>& window_indices);
  void apply(float* x /*(n,4,256)*/, int64_t n) const;
};

// For window i >= 10 (time order of one subject), clamp to +-10 % of the mean of the previous
// 10 already-clamped outputs (PULSE's post-processing).
std::vector<float> postprocess_clamp(const std::vector<float>& hr_in_time_order);

// Mini-batches over a list of window indices. Shuffles only the index list (never the data),
// deterministically: Fisher-Yates on Mt64Rng (engine/rng.h, std::mt19937_64 bits) seeded with
// seed + epoch.
class BatchIterator {
 public:
  BatchIterator(const WindowSet& ws, std::vector<int64_t> indices, int batch, uint64_t seed,
                bool shuffle, bool drop_last);
  // Next batch of indices into ws; false at the end of the epoch.
  bool next(std::vector<int64_t>& batch_indices);
  void reset_epoch(int epoch);  // starts epoch `epoch` (called with 0 by the constructor)
  int64_t batches_per_epoch() const;

 private:
  std::vector<int64_t> base_;   // (M) indices as given
  std::vector<int64_t> order_;  // (M) this epoch's order
  int batch_;
  uint64_t seed_;
  bool shuffle_, drop_last_;
  size_t pos_ = 0;
};

// Copies windows idx into x_out (B,4,256), normalised, and their labels into y_out (B).
void gather_batch(const WindowSet& ws, const std::vector<int64_t>& idx, const Normalizer& norm,
                  float* x_out /*(B,4,256)*/, float* y_out /*(B)*/);

}  // namespace pulsekd::data
