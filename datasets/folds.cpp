#include "datasets/folds.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/rng.h"

namespace pulsekd::data {
namespace {

// PULSE's fixed validation groups for PPG-DaLiA (subject numbers).
const std::vector<std::vector<int>> kDaliaGroups = {{5, 6, 7, 8}, {9, 10, 11, 12}, {13, 14, 15}, {1, 2, 3, 4}};

std::vector<Fold> folds_from_groups(int n_subjects, const std::vector<std::vector<int>>& groups) {
  std::vector<int> group_of(n_subjects, -1);
  for (size_t g = 0; g < groups.size(); ++g)
    for (int s : groups[g]) group_of[s] = static_cast<int>(g);
  std::vector<Fold> folds;
  for (int t = 0; t < n_subjects; ++t) {
    Fold f;
    f.test = {t};
    const int g = group_of[t];
    for (int s : groups[g])
      if (s != t) f.val.push_back(s);
    int borrowed = -1;
    if (f.val.empty()) {  // singleton group: borrow the next group's first subject
      borrowed = groups[(g + 1) % groups.size()].front();
      f.val.push_back(borrowed);
    }
    for (int s = 0; s < n_subjects; ++s)
      if (group_of[s] != g && s != borrowed) f.train.push_back(s);
    std::sort(f.val.begin(), f.val.end());
    folds.push_back(f);
  }
  return folds;
}

}  // namespace

std::vector<Fold> loso_folds(const WindowSet& ws, const std::string& kind_in) {
  const int S = static_cast<int>(ws.subjects.size());
  std::string kind = kind_in;
  // PULSE's DaLiA groups need all 15 subjects; a filtered DaLiA set uses groups4.
  if (kind == "auto") kind = ws.source.rfind("dalia:", 0) == 0 && ws.subjects.size() == 15 ? "dalia" : "groups4";
  if (kind == "dalia") {
    std::vector<int> idx_of(16, -1);  // subject number -> index
    for (int i = 0; i < S; ++i) {
      const std::string& nm = ws.subjects[i].name;
      int num = -1;
      if (nm.size() >= 2 && nm[0] == 'S' && nm.find_first_not_of("0123456789", 1) == std::string::npos)
        num = std::stoi(nm.substr(1));
      if (num < 1 || num > 15 || idx_of[num] >= 0)
        throw std::runtime_error("loso_folds(dalia): subject name '" + nm +
                                 "' is not one of S1..S15 (or repeats)");
      idx_of[num] = i;
    }
    if (S != 15)
      throw std::runtime_error("loso_folds(dalia): needs all 15 subjects S1..S15, the set has " +
                               std::to_string(S));
    std::vector<std::vector<int>> groups;
    for (const auto& g : kDaliaGroups) {
      groups.emplace_back();
      for (int num : g) groups.back().push_back(idx_of[num]);
    }
    return folds_from_groups(S, groups);
  }
  if (kind != "groups4")
    throw std::runtime_error("loso_folds: unknown kind '" + kind_in + "' (expected dalia, groups4 or auto)");
  if (S < 2) throw std::runtime_error("loso_folds: leave-one-subject-out needs >= 2 subjects, got " + std::to_string(S));
  const int G = std::min(4, S);
  std::vector<std::vector<int>> groups(G);
  int s = 0;
  for (int g = 0; g < G; ++g) {
    const int size = S / G + (g < S % G ? 1 : 0);  // larger groups first
    for (int k = 0; k < size; ++k) groups[g].push_back(s++);
  }
  return folds_from_groups(S, groups);
}

std::vector<int64_t> windows_of(const WindowSet& ws, const std::vector<int>& subjects) {
  std::vector<int> sorted(subjects);
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> out;
  for (int s : sorted) {
    if (s < 0 || s >= static_cast<int>(ws.subjects.size()))
      throw std::out_of_range("windows_of: subject index " + std::to_string(s) + " out of range");
    const auto& info = ws.subjects[s];
    for (int64_t k = 0; k < info.num_windows; ++k) out.push_back(info.first_window + k);
  }
  return out;
}

Normalizer Normalizer::fit(const WindowSet& ws, const std::vector<int64_t>& window_indices) {
  if (window_indices.empty()) throw std::invalid_argument("Normalizer::fit: no training windows");
  Normalizer nz;
  double sum[kRows] = {0}, sq[kRows] = {0};  // double: 65k windows x 256 samples
  for (int64_t i : window_indices) {
    if (i < 0 || i >= ws.size()) throw std::out_of_range("Normalizer::fit: window index " + std::to_string(i));
    const float* w = ws.window(i);  // (4, 256)
    for (int r = 0; r < kRows; ++r) {
      double s = 0, q = 0;
      for (int t = 0; t < kWindow; ++t) {
        s += w[r * kWindow + t];
        q += static_cast<double>(w[r * kWindow + t]) * w[r * kWindow + t];
      }
      sum[r] += s;
      sq[r] += q;
    }
  }
  const double n = static_cast<double>(window_indices.size()) * kWindow;
  for (int r = 0; r < kRows; ++r) {
    const double m = sum[r] / n;
    const double var = std::max(0.0, sq[r] / n - m * m);
    nz.mean[r] = static_cast<float>(m);
    nz.std[r] = static_cast<float>(std::max(std::sqrt(var), 1e-6));
  }
  return nz;
}

void Normalizer::apply(float* x, int64_t n) const {
  for (int64_t i = 0; i < n; ++i)
    for (int r = 0; r < kRows; ++r) {
      float* row = x + (i * kRows + r) * kWindow;  // (256)
      const float inv = 1.0f / std[r];
      for (int t = 0; t < kWindow; ++t) row[t] = (row[t] - mean[r]) * inv;
    }
}

std::vector<float> postprocess_clamp(const std::vector<float>& in) {
  std::vector<float> out(in);  // (n)
  double run = 0;              // sum of the previous 10 clamped outputs
  for (size_t i = 0; i < out.size(); ++i) {
    if (i >= 10) {
      const double m = run / 10.0;
      out[i] = static_cast<float>(std::clamp<double>(out[i], 0.9 * m, 1.1 * m));
      run -= out[i - 10];
    }
    run += out[i];
  }
  return out;
}

BatchIterator::BatchIterator(const WindowSet& ws, std::vector<int64_t> indices, int batch,
                             uint64_t seed, bool shuffle, bool drop_last)
    : base_(std::move(indices)), batch_(batch), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
  if (batch < 1) throw std::invalid_argument("BatchIterator: batch must be >= 1, got " + std::to_string(batch));
  for (int64_t i : base_)
    if (i < 0 || i >= ws.size())
      throw std::out_of_range("BatchIterator: window index " + std::to_string(i) + " outside the set of " +
                              std::to_string(ws.size()));
  reset_epoch(0);
}

void BatchIterator::reset_epoch(int epoch) {
  order_ = base_;
  pos_ = 0;
  if (!shuffle_) return;
  Mt64Rng g(seed_ + static_cast<uint64_t>(epoch));
  // Fisher-Yates with an unbiased bounded draw (rejection), not std::uniform_int_distribution,
  // whose algorithm differs between standard libraries.
  for (size_t i = order_.size(); i > 1; --i) {
    const uint64_t bound = i, limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = g.next_u64();
    while (r >= limit);
    std::swap(order_[i - 1], order_[r % bound]);
  }
}

bool BatchIterator::next(std::vector<int64_t>& out) {
  const size_t left = order_.size() - pos_;
  if (left == 0 || (drop_last_ && left < static_cast<size_t>(batch_))) return false;
  const size_t take = std::min(left, static_cast<size_t>(batch_));
  out.assign(order_.begin() + pos_, order_.begin() + pos_ + take);
  pos_ += take;
  return true;
}

int64_t BatchIterator::batches_per_epoch() const {
  const int64_t m = static_cast<int64_t>(base_.size());
  return drop_last_ ? m / batch_ : (m + batch_ - 1) / batch_;
}

void gather_batch(const WindowSet& ws, const std::vector<int64_t>& idx, const Normalizer& norm,
                  float* x_out, float* y_out) {
  for (size_t b = 0; b < idx.size(); ++b) {
    if (idx[b] < 0 || idx[b] >= ws.size()) throw std::out_of_range("gather_batch: window index " + std::to_string(idx[b]));
    std::copy_n(ws.window(idx[b]), kRows * kWindow, x_out + b * kRows * kWindow);
    y_out[b] = ws.hr[idx[b]];
  }
  norm.apply(x_out, static_cast<int64_t>(idx.size()));
}

}  // namespace pulsekd::data
