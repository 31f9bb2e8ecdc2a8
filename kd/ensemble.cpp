#include "kd/ensemble.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "kd/runs.h"

namespace pulsekd::kd {
namespace fs = std::filesystem;

std::vector<std::string> ensemble_checkpoints(const std::string& arg) {
  std::vector<std::string> paths;
  if (fs::is_directory(arg)) {
    paths = run_checkpoints(arg);
  } else {
    size_t start = 0;
    while (start <= arg.size()) {
      const size_t comma = std::min(arg.find(',', start), arg.size());
      const std::string p = arg.substr(start, comma - start);
      if (p.empty()) throw std::runtime_error("ensemble '" + arg + "': an empty checkpoint name in the list");
      if (!fs::is_regular_file(p)) throw std::runtime_error("ensemble '" + arg + "': '" + p + "' does not exist or is not a file");
      paths.push_back(p);
      start = comma + 1;
    }
  }
  if (paths.size() < 2)
    throw std::runtime_error("ensemble '" + arg + "': needs at least 2 checkpoints (a run directory with fold<K>/best.safetensors, or a comma-separated list); found " +
                             std::to_string(paths.size()));
  return paths;
}

std::vector<EnsembleMember> load_ensemble(const std::vector<std::string>& paths, const data::WindowSet& ws,
                                          const std::vector<int64_t>& idx) {
  std::vector<EnsembleMember> members;
  for (const std::string& p : paths) {
    EnsembleMember m{p, load_any_checkpoint(p), {}};
    if (m.model.norm.present) {
      m.norm = m.model.norm;
    } else {
      m.norm = data::Normalizer::fit(ws, idx);
      std::cerr << "note: " << p << " carries no normalisation; using the evaluated windows' own statistics\n";
    }
    const models::ModelConfig& c = m.model.model->config();
    const bool same_head = members.empty() || (c.head == members.front().model.model->config().head &&
                                               m.model.model->bin_centres() == members.front().model.model->bin_centres());
    if (!same_head)
      throw std::runtime_error("ensemble: '" + p + "' has another head (" + c.describe() + ") than '" + members.front().path +
                               "' (" + members.front().model.model->config().describe() + "); members must share the head and its bins");
    members.push_back(std::move(m));
  }
  return members;
}

Predictor ensemble_predictor(std::vector<EnsembleMember>& members) {
  if (members.empty()) throw std::invalid_argument("ensemble_predictor: no members");
  Predictor p;
  p.name = "ensemble of " + std::to_string(members.size());
  models::PulseModel& first = *members.front().model.model;
  if (first.config().head == "binned") p.bin_centres = first.bin_centres();
  const bool binned = !p.bin_centres.empty();
  p.predict = [&members, binned](const float* x, int64_t n, std::vector<float>& hr, std::vector<float>* logits) {
    const double share = 1.0 / static_cast<double>(members.size());
    std::vector<double> hr_sum(size_t(n), 0.0), prob_sum;  // (n), (n, bins)
    std::vector<float> buf, hr_m, logits_m;                // (n, 4, 256), (n), (n, bins)
    for (EnsembleMember& m : members) {
      buf.assign(x, x + n * data::kWindowValues);
      m.norm.apply(buf.data(), n);
      m.model.model->predict(buf.data(), n, hr_m, nullptr, binned ? &logits_m : nullptr);
      for (int64_t i = 0; i < n; ++i) hr_sum[size_t(i)] += share * hr_m[size_t(i)];
      if (!binned) continue;
      const size_t bins = logits_m.size() / size_t(n);
      prob_sum.resize(logits_m.size(), 0.0);
      for (int64_t i = 0; i < n; ++i) {  // softmax of each window's logits, accumulated
        const float* l = logits_m.data() + size_t(i) * bins;
        const double mx = *std::max_element(l, l + bins);
        double z = 0;
        for (size_t b = 0; b < bins; ++b) z += std::exp(double(l[b]) - mx);
        for (size_t b = 0; b < bins; ++b) prob_sum[size_t(i) * bins + b] += share * std::exp(double(l[b]) - mx) / z;
      }
    }
    hr.assign(hr_sum.begin(), hr_sum.end());
    if (binned && logits) {
      logits->resize(prob_sum.size());
      for (size_t k = 0; k < prob_sum.size(); ++k) (*logits)[k] = static_cast<float>(std::log(std::max(prob_sum[k], 1e-30)));
    }
  };
  return p;
}

EvalResult evaluate_ensemble(const std::vector<std::string>& paths, const data::WindowSet& ws,
                             const std::vector<int>& subjects, const PostProcess& pp) {
  std::vector<EnsembleMember> members = load_ensemble(paths, ws, data::windows_of(ws, subjects));
  return evaluate(ensemble_predictor(members), ws, subjects, data::Normalizer{}, pp);
}

}  // namespace pulsekd::kd
