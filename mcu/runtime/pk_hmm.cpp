// pk_hmm_step (pk_hmm.h): the firmware's HMM forward filter, also compiled into the host
// runtime library. Float arithmetic only, built with -ffp-contract=off on both sides (no fused
// multiply-add on the M4/M7 FPU that the host would not do), so the results are bit-identical.
#include "pk_hmm.h"

#include "engine/kernels/hmm_forward.h"

extern "C" float pk_hmm_step(const pk_hmm* h, int32_t raw, float* belief, float* scratch, int32_t first) {
  namespace k = pulsekd::kernels;
  k::HmmBand<float> a;
  a.states = h->states;
  a.half_width = h->half_width;
  a.taps = h->taps;
  a.row_scale = h->row_scale;
  a.jump = h->jump;
  k::hmm_prior_step(a, belief, scratch, first != 0);  // scratch is free again afterwards
  const float hr = h->out_scale * float(raw);  // as deploy::heart_rates
  k::hmm_laplace_likelihood(scratch, h->centres, a.states, hr, h->laplace_bpm, h->outlier);
  k::hmm_correct(belief, scratch, a.states);
  return k::hmm_median(belief, h->centres, a.states);
}
