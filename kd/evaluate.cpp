#include "kd/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "kd/fileutil.h"

namespace pulsekd::kd {

std::vector<int64_t> implausible_estimates(const std::vector<float>& hr) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < hr.size(); ++i)
    if (!(hr[i] >= kPlausibleHrMin && hr[i] <= kPlausibleHrMax)) out.push_back(int64_t(i));  // NaN fails both
  return out;
}

std::string implausible_warning(const std::vector<float>& hr, const std::string& what) {
  const std::vector<int64_t> bad = implausible_estimates(hr);
  if (bad.empty()) return "";
  std::ostringstream os;
  os << "warning: " << what << ": " << bad.size() << " of " << hr.size() << " heart rates outside " << kPlausibleHrMin << "-"
     << kPlausibleHrMax << " BPM (first: window " << bad[0] << ", " << hr[size_t(bad[0])] << " BPM)";
  return os.str();
}

Metrics compute_metrics(const std::vector<float>& pred, const std::vector<float>& truth) {
  Metrics m;
  m.n = int64_t(pred.size());
  if (pred.empty()) return m;
  double se = 0, ae = 0, mp = 0, mt = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const double d = double(pred[i]) - truth[i];
    ae += std::fabs(d);
    se += d * d;
    mp += pred[i];
    mt += truth[i];
  }
  const double n = double(pred.size());
  m.mae = ae / n;
  m.rmse = std::sqrt(se / n);
  mp /= n;
  mt /= n;
  double cov = 0, vp = 0, vt = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    cov += (pred[i] - mp) * (truth[i] - mt);
    vp += (pred[i] - mp) * (pred[i] - mp);
    vt += (truth[i] - mt) * (truth[i] - mt);
  }
  m.pearson = (vp > 0 && vt > 0) ? cov / std::sqrt(vp * vt) : 0;
  return m;
}

std::string PostProcess::describe() const {
  if (mode == tracking::TrackMode::None) return "PULSE clamp";
  char buf[160];
  std::snprintf(buf, sizeof buf, "HMM %s (prior b = %.2f BPM%s)", tracking::track_mode_name(mode), prior.scale_bpm,
                fuse_with ? ", fused" : "");
  return buf;
}

std::vector<float> post_process(const PostProcess& pp, const std::vector<float>& hr, const std::vector<float>& logits,
                                const std::vector<float>& centres, const data::WindowSet& ws, int64_t first) {
  if (pp.mode == tracking::TrackMode::None) return data::postprocess_clamp(hr);
  const int64_t T = static_cast<int64_t>(hr.size());
  if (T == 0) return {};
  tracking::Likelihoods lik;
  if (!logits.empty()) {
    const size_t bins = centres.size();
    if (bins < 2 || logits.size() != static_cast<size_t>(T) * bins)
      throw std::invalid_argument("post_process: logits must be (windows, bins) with their bin centres");
    std::vector<double> p(logits.size());  // (T, bins) softmax of each row
    for (int64_t t = 0; t < T; ++t) {
      const float* z = logits.data() + t * bins;
      const float mx = *std::max_element(z, z + bins);
      double sum = 0;
      for (size_t k = 0; k < bins; ++k) sum += (p[t * bins + k] = std::exp(double(z[k]) - mx));
      for (size_t k = 0; k < bins; ++k) p[t * bins + k] /= sum;
    }
    lik = tracking::resample_likelihoods(p, std::vector<double>(centres.begin(), centres.end()), pp.grid);
  } else {
    lik = tracking::laplace_likelihoods(hr, pp.grid, pp.laplace_bpm);
  }
  if (pp.fuse_with) lik = tracking::fuse(lik, pp.fuse_with(ws, first, T, pp.grid));
  return tracking::track(lik, pp.grid, pp.prior, pp.mode);
}

std::vector<float> predict_windows(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& idx,
                                   const data::Normalizer& norm, int batch, std::vector<float>* logits) {
  std::vector<float> out;
  out.reserve(idx.size());
  if (logits) logits->clear();
  std::vector<float> x, y, hr, lg;  // x (B,4,256), y (B), hr (B), lg (B, bins)
  std::vector<int64_t> b;       // (B) this chunk's window indices
  data::BatchIterator chunks(ws, idx, batch, 0, false, false);  // in order; checks batch and indices
  while (chunks.next(b)) {
    x.resize(b.size() * data::kRows * data::kWindow);
    y.resize(b.size());
    data::gather_batch(ws, b, norm, x.data(), y.data());
    m.predict(x.data(), int64_t(b.size()), hr, nullptr, logits ? &lg : nullptr);
    out.insert(out.end(), hr.begin(), hr.end());
    if (logits) logits->insert(logits->end(), lg.begin(), lg.end());
  }
  return out;
}

EvalResult evaluate(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int>& subjects,
                    const data::Normalizer& norm, const PostProcess& pp) {
  std::vector<SubjectEval> out;
  const bool binned = m.config().head == "binned";
  const std::vector<float> centres = binned ? m.bin_centres() : std::vector<float>{};
  for (int s : subjects) {
    SubjectEval se;
    se.subject = ws.subjects.at(size_t(s)).name;
    const std::vector<int64_t> idx = data::windows_of(ws, {s});
    std::vector<float> logits;  // (windows, bins), binned head only
    se.pred = predict_windows(m, ws, idx, norm, 256, binned ? &logits : nullptr);
    for (int64_t i : idx) se.truth.push_back(ws.hr[size_t(i)]);
    se.pred_post = post_process(pp, se.pred, logits, centres, ws, ws.subjects.at(size_t(s)).first_window);
    out.push_back(std::move(se));
  }
  return summarise(std::move(out));
}

std::vector<std::vector<float>> label_traces(const data::WindowSet& ws, const std::vector<int>& subjects) {
  std::vector<std::vector<float>> traces;
  auto add = [&](const data::SubjectInfo& s) {
    traces.emplace_back(ws.hr.begin() + s.first_window, ws.hr.begin() + s.first_window + s.num_windows);
  };
  if (subjects.empty())
    for (const auto& s : ws.subjects) add(s);
  for (int s : subjects) add(ws.subjects.at(size_t(s)));
  return traces;
}

EvalResult summarise(std::vector<SubjectEval> subjects) {
  EvalResult r;
  std::vector<float> all_p, all_pp, all_t;
  for (auto& se : subjects) {
    se.raw = compute_metrics(se.pred, se.truth);
    se.post = compute_metrics(se.pred_post, se.truth);
    r.mean_subject_mae_raw += se.raw.mae / double(subjects.size());
    r.mean_subject_mae_post += se.post.mae / double(subjects.size());
    all_p.insert(all_p.end(), se.pred.begin(), se.pred.end());
    all_pp.insert(all_pp.end(), se.pred_post.begin(), se.pred_post.end());
    all_t.insert(all_t.end(), se.truth.begin(), se.truth.end());
  }
  r.subjects = std::move(subjects);
  r.pooled_raw = compute_metrics(all_p, all_t);
  r.pooled_post = compute_metrics(all_pp, all_t);
  return r;
}

std::string format_eval_table(const EvalResult& r, const std::string& title) {
  std::ostringstream os;
  char line[200];
  os << title << "\n";
  std::snprintf(line, sizeof line, "%-18s %7s %8s %8s %7s %9s %9s\n", "subject", "windows", "MAE", "RMSE", "r", "MAE post", "RMSE post");
  os << line;
  for (auto& s : r.subjects) {
    std::snprintf(line, sizeof line, "%-18s %7lld %8.2f %8.2f %7.3f %9.2f %9.2f\n", s.subject.c_str(), (long long)s.raw.n,
                  s.raw.mae, s.raw.rmse, s.raw.pearson, s.post.mae, s.post.rmse);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-18s %7s %8.2f %8s %7s %9.2f\n", "mean of subjects", "", r.mean_subject_mae_raw, "", "",
                r.mean_subject_mae_post);
  os << line;
  std::snprintf(line, sizeof line, "%-18s %7lld %8.2f %8.2f %7.3f %9.2f %9.2f\n", "all windows", (long long)r.pooled_raw.n,
                r.pooled_raw.mae, r.pooled_raw.rmse, r.pooled_raw.pearson, r.pooled_post.mae, r.pooled_post.rmse);
  os << line;
  return os.str();
}

static nlohmann::json metrics_json(const Metrics& m) {
  return {{"mae", m.mae}, {"rmse", m.rmse}, {"pearson", m.pearson}, {"windows", m.n}};
}

void write_eval_json(const std::string& path, const EvalResult& r, const std::string& extra_json) {
  nlohmann::json j = nlohmann::json::parse(extra_json);
  j["mean_subject_mae_raw"] = r.mean_subject_mae_raw;
  j["mean_subject_mae_post"] = r.mean_subject_mae_post;
  j["pooled_raw"] = metrics_json(r.pooled_raw);
  j["pooled_post"] = metrics_json(r.pooled_post);
  for (auto& s : r.subjects)
    j["subjects"].push_back({{"subject", s.subject}, {"raw", metrics_json(s.raw)}, {"post", metrics_json(s.post)},
                             {"pred", s.pred}, {"pred_post", s.pred_post}, {"truth", s.truth}});
  write_file_atomic(path, j.dump(1) + "\n");
}

void write_eval_csv(const std::string& path, const EvalResult& r) {
  std::ostringstream os;
  os << "subject,windows,mae,rmse,pearson,mae_post,rmse_post,pearson_post\n";
  for (auto& s : r.subjects)
    os << s.subject << "," << s.raw.n << "," << s.raw.mae << "," << s.raw.rmse << "," << s.raw.pearson << "," << s.post.mae
       << "," << s.post.rmse << "," << s.post.pearson << "\n";
  write_file_atomic(path, os.str());
}

void write_eval_windows_csv(const std::string& path, const EvalResult& r) {
  std::ostringstream os;
  os << "subject,window,time_s,truth,pred,pred_post\n";
  for (auto& s : r.subjects)
    for (size_t k = 0; k < s.pred.size(); ++k) {
      os << s.subject << "," << k << "," << 2.0 * double(k) + 4.0 << ",";
      if (k < s.truth.size() && std::isfinite(s.truth[k])) os << s.truth[k];
      os << "," << s.pred[k] << "," << (k < s.pred_post.size() ? s.pred_post[k] : s.pred[k]) << "\n";
    }
  write_file_atomic(path, os.str());
}

}  // namespace pulsekd::kd
