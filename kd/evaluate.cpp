#include "kd/evaluate.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "kd/fileutil.h"

namespace pulsekd::kd {

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

std::vector<float> predict_windows(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& idx,
                                   const data::Normalizer& norm, int batch) {
  std::vector<float> out;
  out.reserve(idx.size());
  std::vector<float> x, y, hr;  // x (B,4,256), y (B), hr (B)
  std::vector<int64_t> b;       // (B) this chunk's window indices
  data::BatchIterator chunks(ws, idx, batch, 0, false, false);  // in order; checks batch and indices
  while (chunks.next(b)) {
    x.resize(b.size() * data::kRows * data::kWindow);
    y.resize(b.size());
    data::gather_batch(ws, b, norm, x.data(), y.data());
    m.predict(x.data(), int64_t(b.size()), hr);
    out.insert(out.end(), hr.begin(), hr.end());
  }
  return out;
}

EvalResult evaluate(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int>& subjects,
                    const data::Normalizer& norm) {
  EvalResult r;
  std::vector<float> all_p, all_pp, all_t;
  for (int s : subjects) {
    SubjectEval se;
    se.subject = ws.subjects.at(size_t(s)).name;
    const std::vector<int64_t> idx = data::windows_of(ws, {s});
    se.pred = predict_windows(m, ws, idx, norm);
    for (int64_t i : idx) se.truth.push_back(ws.hr[size_t(i)]);
    se.pred_post = data::postprocess_clamp(se.pred);
    se.raw = compute_metrics(se.pred, se.truth);
    se.post = compute_metrics(se.pred_post, se.truth);
    r.mean_subject_mae_raw += se.raw.mae / double(subjects.size());
    r.mean_subject_mae_post += se.post.mae / double(subjects.size());
    all_p.insert(all_p.end(), se.pred.begin(), se.pred.end());
    all_pp.insert(all_pp.end(), se.pred_post.begin(), se.pred_post.end());
    all_t.insert(all_t.end(), se.truth.begin(), se.truth.end());
    r.subjects.push_back(std::move(se));
  }
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

}  // namespace pulsekd::kd
