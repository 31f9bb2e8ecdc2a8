#include "kd/hybrid.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tracking/wfpv.h"

namespace pulsekd::kd {

void TrackerLikelihood::validate() const {
  if (!(laplace_bpm > 0 && laplace_bpm <= 100)) throw std::invalid_argument("tracker likelihood: laplace width must be in (0, 100] BPM");
  if (!(outlier >= 0 && outlier < 1)) throw std::invalid_argument("tracker likelihood: outlier must be in [0, 1)");
  if (!(sharpness > 0 && sharpness <= 100)) throw std::invalid_argument("tracker likelihood: sharpness must be in (0, 100]");
  if (!(floor >= 0 && floor < 1)) throw std::invalid_argument("tracker likelihood: floor must be in [0, 1)");
}

TrackerLikelihood::Source parse_tracker_source(const std::string& name, const std::string& flag) {
  if (name == "estimate") return TrackerLikelihood::Source::Estimate;
  if (name == "spectrum") return TrackerLikelihood::Source::Spectrum;
  throw std::invalid_argument(flag + ": expected estimate or spectrum, got '" + name + "'");
}

tracking::Likelihoods TrackerLikelihood::operator()(const data::WindowSet& ws, int64_t first, int64_t count,
                                                    const tracking::HrGrid& grid) const {
  validate();
  if (source == Source::Estimate)
    return tracking::laplace_likelihoods(tracking::wfpv_track(ws, first, count), grid, laplace_bpm, outlier);
  tracking::Likelihoods lik;
  lik.steps = count;
  lik.states = grid.size();
  lik.p = tracking::wfpv_spectra(ws, first, count, grid.bpm);  // (count, states)
  for (int64_t t = 0; t < count; ++t) {
    double* row = lik.p.data() + t * lik.states;
    const double mx = *std::max_element(row, row + lik.states);
    for (int j = 0; j < lik.states; ++j) {
      const double v = mx > 0 ? row[j] / mx : 1.0;  // a silent window carries no information
      row[j] = (1 - floor) * std::pow(v, sharpness) + floor;
    }
  }
  lik.validate("tracker likelihood");
  return lik;
}

EvalResult evaluate_tracker(const data::WindowSet& ws, const std::vector<int>& subjects, const PostProcess& pp,
                            const TrackerLikelihood& lik) {
  lik.validate();
  std::vector<SubjectEval> out;
  for (int s : subjects) {
    const data::SubjectInfo& info = ws.subjects.at(size_t(s));
    SubjectEval se;
    se.subject = info.name;
    se.pred = tracking::wfpv_track(ws, info.first_window, info.num_windows);
    se.truth.assign(ws.hr.begin() + info.first_window, ws.hr.begin() + info.first_window + info.num_windows);
    // PULSE's clamp is for a network's jittery outputs; WFPV smooths its own track (and the
    // clamp, lagging behind a real change, costs it 3.8 -> 8.4 BPM on the demo's synthetic set).
    if (pp.mode == tracking::TrackMode::None) se.pred_post = se.pred;
    else {
      // The estimate source is a Laplace around the track just computed: no second WFPV run.
      const tracking::Likelihoods l = lik.source == TrackerLikelihood::Source::Estimate
                                          ? tracking::laplace_likelihoods(se.pred, pp.grid, lik.laplace_bpm, lik.outlier)
                                          : lik(ws, info.first_window, info.num_windows, pp.grid);
      se.pred_post = tracking::track(l, pp.grid, pp.prior, pp.mode);
    }
    out.push_back(std::move(se));
  }
  return summarise(std::move(out));
}

}  // namespace pulsekd::kd
