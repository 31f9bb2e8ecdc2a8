// Flags shared by eval, predict and pipeline that choose the post-processing of a recording's
// per-window outputs: PULSE's clamp, or HMM belief tracking (tracking/hmm.h).
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "datasets/registry.h"
#include "kd/evaluate.h"
#include "kd/hybrid.h"

namespace pulsekd::cli {

struct PostArgs {
  std::string track = "none";  // none (PULSE clamp) | forward | viterbi
  std::string prior_data;      // dataset spec whose labels fit the transition prior
  double prior_scale = 0;      // or the Laplace scale itself (BPM per 2 s step); 0: the default
  double laplace = 5;          // regression head: likelihood width (BPM)
};

// The prior's default when neither --prior-data nor --prior-scale is given. The mean absolute
// change of the label per 2 s step over the 13 IEEE SPC 2015 recordings is 1.13 BPM (0.81 to
// 1.97 per recording; TransitionPrior::fit on spc2015:DIR); 1.5 is wider on purpose, for
// exercise whose heart rate changes faster than treadmill running.
constexpr double kDefaultPriorScaleBpm = 1.5;

inline void add_post_options(CLI::App* cmd, PostArgs& a) {
  cmd->add_option("--track", a.track, "post-processing: none (PULSE's +-10 % clamp), forward (HMM filtering, online) or viterbi (HMM, offline)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "forward", "viterbi"}));
  cmd->add_option("--prior-data", a.prior_data, "fit the HMM's heart-rate transition prior to this dataset's labels (a training set)");
  cmd->add_option("--prior-scale", a.prior_scale, "or give the prior's Laplace scale (BPM per 2 s step)")->check(finite_range(0.05, 50.0));
  cmd->add_option("--laplace", a.laplace, "regression head: width of the likelihood around each estimate (BPM)")
      ->capture_default_str()
      ->check(finite_range(0.1, 100.0));
}

inline kd::PostProcess make_post(const PostArgs& a) {
  kd::PostProcess pp;
  pp.mode = tracking::parse_track_mode(a.track, "--track");
  pp.laplace_bpm = a.laplace;
  if (!a.prior_data.empty() && a.prior_scale > 0) throw std::invalid_argument("give --prior-data or --prior-scale, not both");
  if (!a.prior_data.empty()) pp.prior = tracking::TransitionPrior::fit(kd::label_traces(data::load_dataset(a.prior_data)));
  else pp.prior.scale_bpm = a.prior_scale > 0 ? a.prior_scale : kDefaultPriorScaleBpm;
  return pp;
}

// How the classical tracker enters the HMM (kd::TrackerLikelihood): `source` is parsed in the
// callback (parse_tracker_source) so a bad name fails naming the flag.
inline void add_tracker_options(CLI::App* cmd, kd::TrackerLikelihood& t, std::string& source) {
  cmd->add_option("--tracker-likelihood", source, "tracker in the HMM: estimate (Laplace around its estimate) or spectrum (its filtered spectrum)")
      ->capture_default_str()
      ->check(CLI::IsMember({"estimate", "spectrum"}));
  cmd->add_option("--tracker-laplace", t.laplace_bpm, "estimate: width of the Laplace around the tracker's estimate (BPM)")
      ->capture_default_str()
      ->check(finite_range(0.1, 100.0));
  cmd->add_option("--tracker-sharpness", t.sharpness, "spectrum: exponent on the normalised spectrum")->capture_default_str()->check(finite_range(0.01, 100.0));
  cmd->add_option("--tracker-floor", t.floor, "spectrum: constant added so no heart rate is ruled out")->capture_default_str()->check(finite_range(0.0, 0.99));
}

// --fuse-tracker and the tracker options, as eval and pipeline take them.
struct FuseArgs {
  bool fuse = false;                 // --fuse-tracker
  kd::TrackerLikelihood tracker;     // --tracker-laplace / -sharpness / -floor
  std::string source = "estimate";   // --tracker-likelihood, parsed by fused_tracker
};

inline void add_fuse_options(CLI::App* cmd, FuseArgs& f) {
  cmd->add_flag("--fuse-tracker", f.fuse, "multiply the classical tracker's likelihood into each network's before the HMM (needs --track)");
  add_tracker_options(cmd, f.tracker, f.source);
}

// The tracker's likelihood as the flags give it (whether fused or not).
inline kd::TrackerLikelihood tracker_of(const FuseArgs& f) {
  kd::TrackerLikelihood t = f.tracker;
  t.source = kd::parse_tracker_source(f.source, "--tracker-likelihood");
  return t;
}

// The tracker to fuse with post-processing pp, or nothing without --fuse-tracker. Throws naming
// the flag when fusion is asked without an HMM.
inline std::optional<kd::TrackerLikelihood> fused_tracker(const FuseArgs& f, const kd::PostProcess& pp) {
  const kd::TrackerLikelihood t = tracker_of(f);
  if (!f.fuse) return std::nullopt;
  if (pp.mode == tracking::TrackMode::None) throw CLI::ValidationError("--fuse-tracker", "needs --track forward or viterbi");
  return t;
}

}  // namespace pulsekd::cli
