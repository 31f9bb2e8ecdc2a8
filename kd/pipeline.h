// The main job as a library call: train the teacher, train the student alone, distil the
// student, quantise it (and run it as Cortex-M firmware under QEMU when the tools are there),
// evaluate every stage — with the classical tracker beside them — and write one report.
// `pulsekd pipeline` only parses flags into PipelineOptions and calls run_pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kd/evaluate.h"
#include "kd/hybrid.h"
#include "kd/trainer.h"

namespace pulsekd::kd {

struct PipelineOptions {
  std::string data = "synth";  // training spec (datasets/registry.h)
  // Empty: folds of `data` (fold K, or every fold with loso). Otherwise every model is trained
  // on every subject of `data` (validation: its last subject group) and tested on this spec.
  std::string test_data;
  std::string out = "out/pipeline";
  int fold = 1;
  bool loso = false;
  int teacher_epochs = 12, student_epochs = 20, batch = 32, threads = 2;
  std::string kd = "pulse";  // distillation strategies, comma separated
  uint64_t seed = 1;
  std::string mcu = "m4";    // firmware core: m4, m7, or none (skip the firmware stage)
  bool augment = false;      // training augmentation (amplitude, shift, noise, ACC rotation)
  double augment_motion = 0; // motion-aware artefacts on top (Augment::motion; implies augment)
  bool force = false;        // resume stages whose state was saved with other settings
  // Transfer: start the teacher / both students from these checkpoints (e.g. the authors'
  // released PPG-DaLiA .pt files), and learning rates (0: the architecture's default Recipe).
  std::string teacher_init, student_init;
  double teacher_lr = 0, student_lr = 0;
  // Post-processing of every stage's per-window estimates. With fit_prior the HMM prior is
  // fitted to the training labels (of the fold, or of `data` with test_data).
  PostProcess post;
  bool fit_prior = true;
  // Multiply the tracker's spectra into every network's likelihood before the HMM (needs an
  // HMM mode); the tracker row is reported either way.
  bool fuse_tracker = false;
  TrackerLikelihood tracker;
  bool progress = false;
  bool epoch_lines = false;  // one line per training epoch on stderr (TrainOptions::epoch_lines)
  void validate() const;  // throws std::invalid_argument naming the flag
};

struct StageResult {
  std::string name;   // teacher, student, distilled, quantised, tracker
  std::string label;  // for the table: "student distilled (pulse)"
  EvalResult eval;
  int64_t params = 0, macs = 0, weight_bytes = 0;  // float32 bytes, or the int8 model's flash bytes
  double seconds = 0;
  std::string dir;
  std::vector<EpochLog> curve;  // the first fold's validation history (trained stages)
};

struct FirmwareResult {
  std::string core, skipped, dir;  // skipped: why the stage did not run ("" when it ran)
  int64_t windows = 0, mismatches = 0;
  int64_t flash_bytes = 0, ram_bytes = 0, instructions = 0;  // per window, on the last fold's first window
  // --track forward: the firmware runs the HMM forward filter too (deploy/mcu_hmm.h, on the
  // post-processing's grid and prior). hmm_mismatches: filtered heart rates that differ from
  // the host's run of the same float filter; hmm_max_diff_bpm: the largest difference from the
  // host's double-precision tracker (the quantised row's post-processed estimates).
  bool hmm = false;
  int64_t hmm_mismatches = 0, hmm_instructions = 0;
  double hmm_max_diff_bpm = 0;
};

struct PipelineReport {
  std::string data, test_data, post;
  int folds = 0;
  int64_t windows = 0, test_windows = 0;
  std::vector<StageResult> stages;
  double quant_mean_abs_diff = 0;  // mean |HR int - HR float| per window, BPM
  FirmwareResult firmware;
};

PipelineReport run_pipeline(const PipelineOptions& o);
std::string format_pipeline_report(const PipelineReport& r);
// report.txt, report.json, report.csv and SVG plots (HR of the first test subject, MAE per
// subject, validation curves) in `dir`, each written atomically.
void write_pipeline_report(const PipelineReport& r, const std::string& dir);

}  // namespace pulsekd::kd
