#include "tracking/hmm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace pulsekd::tracking {
namespace {

void check_model(const Likelihoods& lik, const std::vector<double>& transition, const std::vector<double>& init,
                 const char* who) {
  lik.validate(who);
  const size_t s = static_cast<size_t>(lik.states);
  if (transition.size() != s * s)
    throw std::invalid_argument(std::string(who) + ": transition matrix has " + std::to_string(transition.size()) +
                                " entries, expected " + std::to_string(s * s));
  if (!init.empty() && init.size() != s)
    throw std::invalid_argument(std::string(who) + ": initial distribution has " + std::to_string(init.size()) +
                                " entries, expected " + std::to_string(s));
}

// Normalises v to sum 1; an all-zero v (every state ruled out) becomes uniform.
void normalise(double* v, int n) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += v[i];
  if (sum > 0 && std::isfinite(sum)) {
    for (int i = 0; i < n; ++i) v[i] /= sum;
  } else {
    for (int i = 0; i < n; ++i) v[i] = 1.0 / n;
  }
}

}  // namespace

HrGrid HrGrid::uniform(double lo, double hi, int n) {
  if (n < 2 || !(lo < hi) || !std::isfinite(lo) || !std::isfinite(hi))
    throw std::invalid_argument("HrGrid::uniform: need n >= 2 and finite lo < hi");
  HrGrid g;
  g.bpm.resize(n);
  for (int i = 0; i < n; ++i) g.bpm[i] = lo + (hi - lo) * i / (n - 1);
  return g;
}

int HrGrid::nearest(double hr) const {
  const auto it = std::lower_bound(bpm.begin(), bpm.end(), hr);
  if (it == bpm.begin()) return 0;
  if (it == bpm.end()) return size() - 1;
  const int j = static_cast<int>(it - bpm.begin());
  return (hr - bpm[j - 1] <= bpm[j] - hr) ? j - 1 : j;
}

double HrGrid::step() const {
  if (size() < 2) throw std::invalid_argument("HrGrid: need at least 2 states");
  const double d = (bpm.back() - bpm.front()) / (size() - 1);
  for (int i = 1; i < size(); ++i)
    if (!(std::fabs(bpm[i] - bpm[i - 1] - d) <= 1e-9 * std::fabs(d)) || !(d > 0))
      throw std::invalid_argument("HrGrid: the banded transition needs evenly spaced, increasing centres");
  return d;
}

kernels::HmmBand<double> TransitionBand::view() const {
  kernels::HmmBand<double> v;
  v.states = states;
  v.half_width = half_width;
  v.taps = taps.data();
  v.row_scale = row_scale.data();
  v.jump = jump;
  return v;
}

TransitionPrior TransitionPrior::fit(const std::vector<std::vector<float>>& traces, double min_scale_bpm) {
  double sum = 0;
  int64_t steps = 0;
  for (const auto& tr : traces)
    for (size_t t = 1; t < tr.size(); ++t) {
      if (!std::isfinite(tr[t]) || !std::isfinite(tr[t - 1])) continue;
      sum += std::fabs(tr[t] - tr[t - 1]);
      ++steps;
    }
  if (steps == 0) throw std::invalid_argument("TransitionPrior::fit: the training traces hold no step (need >= 2 windows)");
  TransitionPrior p;
  p.scale_bpm = std::max(min_scale_bpm, sum / steps);  // Laplace MLE: mean absolute deviation
  return p;
}

void TransitionPrior::validate() const {
  if (!(scale_bpm > 0) || !std::isfinite(scale_bpm))
    throw std::invalid_argument("transition prior: scale must be a positive number of BPM");
  if (!(floor >= 0 && floor < 1)) throw std::invalid_argument("transition prior: floor must be in [0, 1)");
}

std::vector<double> TransitionPrior::matrix(const HrGrid& grid) const {
  validate();
  const int n = grid.size();
  std::vector<double> a(static_cast<size_t>(n) * n);  // (S, S)
  for (int i = 0; i < n; ++i) {
    double* row = a.data() + static_cast<size_t>(i) * n;
    for (int j = 0; j < n; ++j) row[j] = std::exp(-std::fabs(grid.bpm[j] - grid.bpm[i]) / scale_bpm);
    normalise(row, n);
    for (int j = 0; j < n; ++j) row[j] = (1 - floor) * row[j] + floor / n;
  }
  return a;
}

TransitionBand TransitionPrior::band(const HrGrid& grid, int half_width) const {
  validate();
  const double step = grid.step();
  TransitionBand b;
  b.states = grid.size();
  b.half_width = half_width < 0 ? kernels::hmm_band_width(step, scale_bpm, b.states, kernels::kHmmBandTol)
                                : std::min(half_width, b.states - 1);
  b.taps.resize(size_t(b.half_width) + 1);
  b.row_scale.resize(size_t(b.states));
  b.jump = kernels::hmm_band_fill(b.taps.data(), b.row_scale.data(), b.states, b.half_width, step, scale_bpm, floor);
  return b;
}

void Likelihoods::validate(const char* who) const {
  if (states < 2 || steps < 0 || p.size() != static_cast<size_t>(steps) * states)
    throw std::invalid_argument(std::string(who) + ": likelihoods must be (steps, states >= 2)");
  for (int64_t t = 0; t < steps; ++t) {
    double row = 0;
    for (int j = 0; j < states; ++j) {
      const double v = p[t * states + j];
      if (!(v >= 0) || !std::isfinite(v))
        throw std::invalid_argument(std::string(who) + ": likelihood of step " + std::to_string(t) +
                                    " is negative, NaN or infinite");
      row += v;
    }
    if (!(row > 0)) throw std::invalid_argument(std::string(who) + ": step " + std::to_string(t) + " rules out every state");
  }
}

std::vector<double> forward_filter(const Likelihoods& lik, const std::vector<double>& transition,
                                   const std::vector<double>& init) {
  check_model(lik, transition, init, "forward_filter");
  const int n = lik.states;
  std::vector<double> post(lik.p.size());  // (T, S)
  for (int64_t t = 0; t < lik.steps; ++t) {
    double* cur = post.data() + t * n;  // the prediction, then the posterior
    if (t > 0) kernels::hmm_predict_dense(cur, cur - n, transition.data(), n);
    else
      for (int j = 0; j < n; ++j) cur[j] = init.empty() ? 1.0 / n : init[j];
    kernels::hmm_correct(cur, lik.p.data() + t * n, n);
  }
  return post;
}

std::vector<int> viterbi(const Likelihoods& lik, const std::vector<double>& transition, const std::vector<double>& init) {
  check_model(lik, transition, init, "viterbi");
  const int n = lik.states;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const auto safe_log = [&](double v) { return v > 0 ? std::log(v) : neg_inf; };
  std::vector<double> log_a(transition.size());  // (S, S)
  for (size_t k = 0; k < transition.size(); ++k) log_a[k] = safe_log(transition[k]);
  std::vector<double> score(n), next(n);                    // (S) best log-probability ending in each state
  std::vector<int> back(static_cast<size_t>(lik.steps) * n);  // (T, S) best predecessor
  for (int64_t t = 0; t < lik.steps; ++t) {
    const double* l = lik.p.data() + t * n;
    if (t == 0) {
      for (int j = 0; j < n; ++j) score[j] = safe_log(init.empty() ? 1.0 / n : init[j]) + safe_log(l[j]);
      continue;
    }
    for (int j = 0; j < n; ++j) {
      int best = 0;
      double best_v = neg_inf;
      for (int i = 0; i < n; ++i) {
        const double v = score[i] + log_a[static_cast<size_t>(i) * n + j];
        if (v > best_v) {  // ties keep the lowest state index: deterministic
          best_v = v;
          best = i;
        }
      }
      next[j] = best_v + safe_log(l[j]);
      back[t * n + j] = best;
    }
    // Rescale so long recordings cannot underflow (a constant shift keeps the argmax).
    const double top = *std::max_element(next.begin(), next.end());
    for (int j = 0; j < n; ++j) score[j] = std::isfinite(top) ? next[j] - top : next[j];
  }
  std::vector<int> path(lik.steps);
  if (lik.steps == 0) return path;
  path[lik.steps - 1] = static_cast<int>(std::max_element(score.begin(), score.end()) - score.begin());
  for (int64_t t = lik.steps - 1; t > 0; --t) path[t - 1] = back[t * n + path[t]];
  return path;
}

TrackMode parse_track_mode(const std::string& name, const std::string& flag) {
  if (name == "none") return TrackMode::None;
  if (name == "forward") return TrackMode::Forward;
  if (name == "viterbi") return TrackMode::Viterbi;
  throw std::invalid_argument(flag + ": expected none, forward or viterbi, got '" + name + "'");
}

const char* track_mode_name(TrackMode m) {
  switch (m) {
    case TrackMode::Forward: return "forward";
    case TrackMode::Viterbi: return "viterbi";
    default: return "none";
  }
}

std::vector<float> track(const Likelihoods& lik, const HrGrid& grid, const TransitionPrior& prior, TrackMode mode) {
  if (grid.size() != lik.states) throw std::invalid_argument("track: the likelihoods and the grid have different state counts");
  if (mode == TrackMode::None) throw std::invalid_argument("track: mode none has no track");
  std::vector<float> out(lik.steps);  // (T)
  if (mode == TrackMode::Viterbi) {
    const auto path = viterbi(lik, prior.matrix(grid));
    for (int64_t t = 0; t < lik.steps; ++t) out[t] = static_cast<float>(grid.bpm[path[t]]);
    return out;
  }
  lik.validate("track");
  const TransitionBand band = prior.band(grid);
  const int n = lik.states;
  std::vector<double> belief(n), scratch(n);  // (S) each
  for (int64_t t = 0; t < lik.steps; ++t) {
    kernels::hmm_forward_step(band.view(), belief.data(), lik.p.data() + t * n, scratch.data(), t == 0);
    out[t] = static_cast<float>(kernels::hmm_median(belief.data(), grid.bpm.data(), n));
  }
  return out;
}

Likelihoods laplace_likelihoods(const std::vector<float>& hr, const HrGrid& grid, double scale_bpm, double outlier) {
  if (!(scale_bpm > 0)) throw std::invalid_argument("laplace_likelihoods: scale must be positive");
  if (!(outlier >= 0 && outlier < 1)) throw std::invalid_argument("laplace_likelihoods: outlier must be in [0, 1)");
  Likelihoods l;
  l.steps = static_cast<int64_t>(hr.size());
  l.states = grid.size();
  l.p.resize(hr.size() * grid.size());
  for (size_t t = 0; t < hr.size(); ++t) {
    if (!std::isfinite(hr[t])) throw std::invalid_argument("laplace_likelihoods: estimate " + std::to_string(t) + " is not finite");
    // Relative to the closest state, so an estimate far off the grid keeps a usable row.
    kernels::hmm_laplace_likelihood(l.p.data() + t * l.states, grid.bpm.data(), l.states, double(hr[t]), scale_bpm, outlier);
  }
  return l;
}

Likelihoods resample_likelihoods(const std::vector<double>& p, const std::vector<double>& src_bpm, const HrGrid& grid,
                                 double eps) {
  const size_t s = src_bpm.size();
  if (s < 2 || p.size() % s != 0) throw std::invalid_argument("resample_likelihoods: p must be (steps, source states >= 2)");
  if (!(eps >= 0)) throw std::invalid_argument("resample_likelihoods: eps must be >= 0");
  for (size_t k = 1; k < s; ++k)
    if (!(src_bpm[k] > src_bpm[k - 1])) throw std::invalid_argument("resample_likelihoods: source centres must increase");
  Likelihoods l;
  l.steps = static_cast<int64_t>(p.size() / s);
  l.states = grid.size();
  l.p.resize(static_cast<size_t>(l.steps) * l.states);
  for (int64_t t = 0; t < l.steps; ++t) {
    const double* row = p.data() + t * s;
    for (size_t k = 0; k < s; ++k)
      if (!(row[k] >= 0) || !std::isfinite(row[k]))
        throw std::invalid_argument("resample_likelihoods: value of step " + std::to_string(t) + " is negative or not finite");
    kernels::hmm_resample(l.p.data() + t * l.states, grid.bpm.data(), l.states, row, src_bpm.data(), int32_t(s), eps);
  }
  return l;
}

Likelihoods fuse(const Likelihoods& a, const Likelihoods& b) {
  a.validate("fuse");
  b.validate("fuse");
  if (a.steps != b.steps || a.states != b.states) throw std::invalid_argument("fuse: the likelihoods differ in shape");
  Likelihoods f = a;
  for (int64_t t = 0; t < f.steps; ++t) {
    double* row = f.p.data() + t * f.states;
    double mx = 0;
    for (int j = 0; j < f.states; ++j) {
      row[j] *= b.p[t * f.states + j];
      mx = std::max(mx, row[j]);
    }
    // Disjoint supports (the product is 0 everywhere): keep a's row rather than rule out all.
    if (!(mx > 0)) {
      std::copy(a.p.begin() + t * f.states, a.p.begin() + (t + 1) * f.states, row);
      mx = *std::max_element(row, row + f.states);
    }
    for (int j = 0; j < f.states; ++j) row[j] /= mx;
  }
  return f;
}

}  // namespace pulsekd::tracking
