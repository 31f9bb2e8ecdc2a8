// `pulsekd data summary SPEC` and `pulsekd baseline SPEC [--method NAME]`: look at a dataset
// and at a classical (training-free) heart-rate tracker on it.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/post_options.h"
#include "kd/hybrid.h"
#include "datasets/baseline.h"
#include "datasets/registry.h"
#include "tracking/wfpv.h"

namespace {

using pulsekd::data::WindowSet;

// The trackers `baseline --method` accepts, by name.
std::vector<std::string> tracker_names() { return {"wfpv", "spectral", "ppg-peak"}; }

pulsekd::data::Estimator tracker_by_name(const std::string& name) {
  if (name == "wfpv")
    return [](const WindowSet& ws, int64_t first, int64_t count) { return pulsekd::tracking::wfpv_track(ws, first, count); };
  if (name == "spectral") return pulsekd::data::spectral_baseline;
  return pulsekd::data::ppg_peak_baseline;
}

void print_summary(const WindowSet& ws) {
  std::printf("%s\n", ws.source.c_str());
  std::printf("%-18s %8s %10s  %-36s %s\n", "subject", "windows", "duration", "sampling rates", "label range (BPM)");
  double total_s = 0;
  float lo = 1e30f, hi = -1e30f;
  for (const auto& s : ws.subjects) {
    std::printf("%-18s %8lld %9.1fs  %-36s %.1f .. %.1f\n", s.name.c_str(),
                static_cast<long long>(s.num_windows), s.duration_s, s.rates.c_str(), s.label_min,
                s.label_max);
    total_s += s.duration_s;
    if (s.num_windows > 0) {
      lo = std::min(lo, s.label_min);
      hi = std::max(hi, s.label_max);
    }
  }
  const double mb = static_cast<double>(ws.x.size()) * sizeof(float) / 1e6;
  std::printf("total: %zu subjects, %lld windows of 4 x 256 at 32 Hz (%.1f MB), %.1f min, labels %.1f .. %.1f BPM\n",
              ws.subjects.size(), static_cast<long long>(ws.size()), mb, total_s / 60, lo, hi);
}

pulsekd::cli::CommandRegistrar reg([](CLI::App& app) {
  const std::string spec_help = std::string("dataset: ") + pulsekd::data::dataset_spec_help();

  auto* data = app.add_subcommand("data", "Inspect datasets");
  data->require_subcommand(1);
  auto spec_summary = std::make_shared<std::string>();
  auto* summary = data->add_subcommand("summary", "Per subject/recording: windows, duration, sampling rates, label range; totals");
  summary->add_option("SPEC", *spec_summary, spec_help)->required();
  summary->callback([spec_summary] { print_summary(pulsekd::data::load_dataset(*spec_summary)); });

  auto spec_base = std::make_shared<std::string>();
  auto json_path = std::make_shared<std::string>();
  auto method = std::make_shared<std::string>("wfpv");
  auto* base = app.add_subcommand(
      "baseline", "MAE of a classical heart-rate tracker and of a PPG-only peak picker, per subject");
  base->add_option("SPEC", *spec_base, spec_help)->required();
  base->add_option("--method", *method,
                   "Tracker: wfpv (Wiener filter + phase vocoder, Temko 2017; default), spectral (the simplified "
                   "TROIKA/WFPV spectral-peak tracker), ppg-peak (strongest PPG peak per window)")
      ->check(CLI::IsMember(tracker_names()));
  base->add_option("--json", *json_path, "Also write the results as JSON to this file (- for standard output)")
      ->check(pulsekd::cli::output_file(true));
  // HMM decoding of the WFPV tracker (tracking/hmm.h over kd::TrackerLikelihood).
  auto post = std::make_shared<pulsekd::cli::PostArgs>();
  auto tracker = std::make_shared<pulsekd::kd::TrackerLikelihood>();
  auto tracker_source = std::make_shared<std::string>("estimate");
  base->add_option("--track", post->track, "wfpv: also decode the tracker with an HMM: none, forward (online) or viterbi (offline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "forward", "viterbi"}));
  base->add_option("--prior-data", post->prior_data, "--track: fit the transition prior to this dataset's labels");
  base->add_option("--prior-scale", post->prior_scale, "--track: or give the prior's Laplace scale (BPM per 2 s step)")
      ->check(pulsekd::cli::finite_range(0.05, 50.0));
  pulsekd::cli::add_tracker_options(base, *tracker, *tracker_source);
  base->callback([spec_base, json_path, method, post, tracker, tracker_source] {
    const pulsekd::kd::PostProcess pp = pulsekd::cli::make_post(*post);
    tracker->source = pulsekd::kd::parse_tracker_source(*tracker_source, "--tracker-likelihood");
    if (pp.mode != pulsekd::tracking::TrackMode::None && *method != "wfpv")
      throw std::invalid_argument("--track decodes the wfpv tracker: give --method wfpv (or drop --track)");
    FILE* say = pulsekd::is_stdout_path(*json_path) ? stderr : stdout;  // `--json -`: stdout holds the JSON alone
    const WindowSet ws = pulsekd::data::load_dataset(*spec_base);
    const std::clock_t c0 = std::clock();
    const auto rep = pulsekd::data::evaluate_baselines(ws, *method, tracker_by_name(*method));
    const double cpu_s = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const std::string col = *method + " MAE";
    std::fprintf(say, "%s\n%-18s %8s %14s %14s\n", ws.source.c_str(), "subject", "windows", col.c_str(), "PPG-peak MAE");
    nlohmann::json j;
    j["spec"] = *spec_base;
    j["method"] = rep.method;
    j["subjects"] = nlohmann::json::array();
    for (const auto& s : rep.subjects) {
      std::fprintf(say, "%-18s %8lld %14.2f %14.2f\n", s.name.c_str(), static_cast<long long>(s.windows), s.mae_tracker,
                  s.mae_ppg_peak);
      j["subjects"].push_back({{"name", s.name}, {"windows", s.windows}, {"mae_tracker", s.mae_tracker},
                               {"mae_ppg_peak", s.mae_ppg_peak}});
    }
    std::fprintf(say, "%-18s %8s %14.2f %14.2f\n", "mean of subjects", "", rep.mean_tracker, rep.mean_ppg_peak);
    std::fprintf(say, "CPU time of both estimators over %lld windows: %.2f s\n", static_cast<long long>(ws.size()), cpu_s);
    j["mean_tracker"] = rep.mean_tracker;
    j["mean_ppg_peak"] = rep.mean_ppg_peak;
    j["cpu_seconds"] = cpu_s;
    if (pp.mode != pulsekd::tracking::TrackMode::None) {
      std::vector<int> all(ws.subjects.size());
      for (size_t k = 0; k < all.size(); ++k) all[k] = int(k);
      const pulsekd::kd::EvalResult tr = pulsekd::kd::evaluate_tracker(ws, all, pp, *tracker);
      std::fprintf(say, "%s (WFPV %s likelihood)\n%-18s %14s %14s\n", pp.describe().c_str(), tracker_source->c_str(), "subject", "wfpv MAE",
                  "decoded MAE");
      nlohmann::json jt = {{"post_process", pp.describe()}, {"likelihood", *tracker_source}, {"subjects", nlohmann::json::array()}};
      for (const auto& se : tr.subjects) {
        std::fprintf(say, "%-18s %14.2f %14.2f\n", se.subject.c_str(), se.raw.mae, se.post.mae);
        jt["subjects"].push_back({{"name", se.subject}, {"mae", se.raw.mae}, {"mae_decoded", se.post.mae}});
      }
      std::fprintf(say, "%-18s %14.2f %14.2f\n", "mean of subjects", tr.mean_subject_mae_raw, tr.mean_subject_mae_post);
      jt["mean"] = tr.mean_subject_mae_raw;
      jt["mean_decoded"] = tr.mean_subject_mae_post;
      j["tracked"] = jt;
    }
    if (!json_path->empty()) pulsekd::write_output(*json_path, j.dump(2) + "\n");
  });
});

}  // namespace
