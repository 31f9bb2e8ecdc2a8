#include "deploy/mcu_hmm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "engine/kernels/hmm_forward.h"

namespace pulsekd::deploy {

void McuHmm::validate() const {
  if (states < 2 || states > 1024) throw std::invalid_argument("--hmm-states must be 2-1024, got " + std::to_string(states));
  if (!(lo_bpm >= 1 && lo_bpm < hi_bpm && hi_bpm <= 400))
    throw std::invalid_argument("HMM grid: need 1 <= lo < hi <= 400 BPM");
  if (!(prior_scale_bpm >= 0.05 && prior_scale_bpm <= 50))
    throw std::invalid_argument("--prior-scale: the transition prior's scale must be 0.05-50 BPM");
  if (!(prior_floor >= 0 && prior_floor < 1)) throw std::invalid_argument("HMM prior floor must be in [0, 1)");
  if (!(laplace_bpm >= 0.1 && laplace_bpm <= 100)) throw std::invalid_argument("--laplace must be 0.1-100 BPM");
  if (!(outlier >= 0 && outlier < 1)) throw std::invalid_argument("HMM outlier floor must be in [0, 1)");
}

std::vector<double> McuHmm::centres() const {
  std::vector<double> c(static_cast<size_t>(states));  // (S)
  const double step = (hi_bpm - lo_bpm) / states;
  for (int k = 0; k < states; ++k) c[size_t(k)] = lo_bpm + (k + 0.5) * step;
  return c;
}

pk_hmm McuHmmTables::view() const {
  return pk_hmm{int32_t(centres.size()), int32_t(taps.size()) - 1, centres.data(), taps.data(), row_scale.data(),
                jump, out_scale, laplace_bpm, outlier};
}

void mcu_hmm_tables(McuHmmTables& t, const McuHmm& h, float out_scale) {
  h.validate();
  if (!(out_scale > 0) || !std::isfinite(out_scale)) throw std::invalid_argument("HMM: the model's output scale is not positive");
  namespace k = pulsekd::kernels;
  const std::vector<double> c = h.centres();
  const double step = (h.hi_bpm - h.lo_bpm) / h.states;
  const int w = h.half_width < 0 ? k::hmm_band_width(step, h.prior_scale_bpm, h.states, k::kHmmBandTol)
                                 : std::min(h.half_width, h.states - 1);
  std::vector<double> taps(size_t(w) + 1), row(size_t(h.states));  // (W + 1), (S) in double
  const double jump = k::hmm_band_fill(taps.data(), row.data(), h.states, w, step, h.prior_scale_bpm, h.prior_floor);
  t.centres.assign(c.begin(), c.end());
  t.taps.assign(taps.begin(), taps.end());
  t.row_scale.assign(row.begin(), row.end());
  t.jump = float(jump);
  t.out_scale = out_scale;
  t.laplace_bpm = float(h.laplace_bpm);
  t.outlier = float(h.outlier);
}

std::vector<float> mcu_hmm_track(const McuHmmTables& t, const std::vector<int32_t>& raw) {
  const pk_hmm h = t.view();
  std::vector<float> belief(t.centres.size()), scratch(t.centres.size()), out(raw.size());  // (S), (S), (T)
  for (size_t i = 0; i < raw.size(); ++i) out[i] = pk_hmm_step(&h, raw[i], belief.data(), scratch.data(), i == 0);
  return out;
}

namespace {
std::string hexf(float v) {  // exact: a C++17 hexadecimal float literal
  char b[48];
  std::snprintf(b, sizeof b, "%af", double(v));
  return b;
}
void write_floats(std::ostream& os, const std::string& name, const std::vector<float>& v) {
  os << "static const float " << name << "[" << v.size() << "] = {";
  for (size_t i = 0; i < v.size(); ++i) os << (i % 6 == 0 ? "\n  " : " ") << hexf(v[i]) << (i + 1 < v.size() ? "," : "");
  os << "};\n";
}
}  // namespace

std::string mcu_hmm_source(const McuHmmTables& t) {
  std::ostringstream os;
  os << "\n// HMM forward filter (pk_hmm.h): " << t.centres.size() << " states " << t.centres.front() << "-" << t.centres.back()
     << " BPM, transition band half-width " << t.taps.size() - 1 << ".\n#include \"pk_hmm.h\"\n";
  write_floats(os, "hmm_centres", t.centres);
  write_floats(os, "hmm_taps", t.taps);
  write_floats(os, "hmm_row_scale", t.row_scale);
  os << "extern \"C\" const pk_hmm pk_the_hmm = {" << t.centres.size() << ", " << t.taps.size() - 1
     << ", hmm_centres, hmm_taps, hmm_row_scale, " << hexf(t.jump) << ", " << hexf(t.out_scale) << ", " << hexf(t.laplace_bpm)
     << ", " << hexf(t.outlier) << "};\n";
  return os.str();
}

}  // namespace pulsekd::deploy
