// Training with early stopping, best-weight keeping, an atomic state checkpoint every epoch
// and exact resume (every epoch's shuffling, dropout and augmentation derive from
// seed + epoch, so an interrupted run resumed from its last epoch ends with the same weights).
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "datasets/folds.h"
#include "engine/graph.h"
#include "models/pulse.h"

namespace pulsekd::kd {

// Training-time augmentation (off by default: the authors' recipe has none).
struct Augment {
  bool enabled = false;
  double amplitude = 0.2;  // each row scaled by a factor uniform in [1 - a, 1 + a]
  int max_shift = 16;      // circular time shift, uniform in [-max_shift, max_shift] samples
  double noise = 0.05;     // additive Gaussian noise std (in normalised units)
  bool rotate = true;      // random 3-D rotation of the accelerometer axes
  // Motion-aware artefacts (0: off), strength in normalised units (augment_motion): each
  // window, independently with probability 1/2 each, gets (a) an artefact in the PPG that is a
  // random function of its own accelerometer, (b) a synthetic periodic arm motion at a random
  // cadence (48-180 per minute, with harmonics) in both the accelerometer and the PPG.
  double motion = 0;
};

struct TrainOptions {
  int epochs = 500;
  int patience = 150;        // stop this many epochs after the best validation MAE
  int batch = 256;
  double lr = 5e-4;
  double weight_decay = 0;
  std::string optimizer = "adam";  // adam, adamw, sgd
  std::string task_loss = "l1";    // l1, mse, huber, logcosh (regression head)
  std::string schedule = "constant";  // learning rate per epoch: constant, step (x0.1 every third of the epochs), cosine
  uint64_t seed = 0;
  int threads = 1;
  // Start the output at the training heart rates: regression bias = their mean; binned head:
  // biases = log of their mean target distribution (init_output_at_prior).
  bool init_output_at_mean = false;
  std::vector<std::string> freeze;   // parameter-name prefixes kept fixed
  Augment augment;
  double clip_norm = 0;              // 0: no gradient clipping
  std::string out_dir;               // state.safetensors, best.safetensors, log.jsonl
  bool resume = true;                // continue from out_dir/state.safetensors when present
  bool progress = false;             // live progress line on stderr (a terminal)
  bool epoch_lines = false;          // one line per epoch on stderr (no terminal: logs, CI)
  int64_t interrupt_after_batches = -1;  // testing: throw Interrupted after this many batches
  std::string label;                 // shown in progress lines and logs ("teacher fold 3")
  std::vector<Parameter*> extra_parameters;  // optimised beside the model (FitNets adapter)
  // Settings beyond these options that decide the run (JSON object: the --init source, the
  // teacher and the distillation options; run_folds fills it). With the options, the data spec
  // and the fold's subjects they are recorded in state.safetensors; a resume with other
  // settings is refused (naming each difference) unless force_resume.
  std::string provenance = "{}";
  bool force_resume = false;
};

// Everything that decides a training run, as recorded in its state (see TrainOptions::provenance).
nlohmann::json run_settings(const TrainOptions& opt, const data::WindowSet& ws, const data::Fold& fold);
// "" when equal, else "key: old -> new; ..." for each differing top-level key.
std::string settings_difference(const nlohmann::json& saved, const nlohmann::json& now);

struct EpochLog {
  int epoch = 0;  // from 1, as everywhere a user sees epochs
  double train_loss = 0, val_mae = 0, seconds = 0, lr = 0;
};

struct TrainResult {
  std::vector<EpochLog> history;
  int best_epoch = -1;  // from 1; -1: no validation yet
  double best_val_mae = 0;
  double seconds = 0;
  bool resumed = false;
  bool early_stopped = false;
};

struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A stop asked from outside (the command line's SIGINT/SIGTERM handler: async-signal-safe, it
// only sets a flag). Training checks it after every batch and throws Interrupted, whose message
// says from which epoch the same command resumes (the state is saved at every epoch's end).
void request_stop();
bool stop_requested();
struct TrainingDiverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a loss sees of one batch.
struct BatchView {
  Var x;                       // (B, 4, 256, 1) normalised, augmented
  Var y;                       // (B) heart rate
  const std::vector<float>* y_host;
  const std::vector<float>* x_host;  // (B, 4, 256) the same values as x
  int epoch;
  const std::vector<int64_t>* windows = nullptr;  // (B) the batch's window indices in the WindowSet
  bool augmented = false;                         // x differs from the stored window (augmentation)
};
// Builds the training loss from the student's output; empty → the task loss alone.
using LossFn = std::function<Var(Graph& g, const models::ModelOutput& out, const BatchView& b)>;

// The task loss of a model's head: regression → task_loss on HR; binned → cross-entropy with
// Gaussian bin targets (sigma 1.5 BPM).
Var task_loss(Graph& g, const models::PulseModel& m, const models::ModelOutput& out, const BatchView& b,
              const std::string& kind);

// The start of the output layer that TrainOptions::init_output_at_mean asks for, from the heart
// rates of the windows train_idx of ws.
void init_output_at_prior(models::PulseModel& m, const data::WindowSet& ws, const std::vector<int64_t>& train_idx);
TrainResult train_model(models::PulseModel& m, const data::WindowSet& ws, const data::Fold& fold,
                        const data::Normalizer& norm, const TrainOptions& opt, const LossFn& loss = nullptr);

// Writes a model checkpoint with its normalisation (what eval and predict load).
void save_model(const std::string& path, models::PulseModel& m, const data::Normalizer& norm,
                const std::map<std::string, std::string>& meta = {});

// Applies the augmentation in place to x (B, 4, 256) with rng.
void augment_batch(float* x, int64_t b, const Augment& a, Rng& rng);
// The motion-aware part on one window w (4, 256), labels unchanged: the network learns that
// what the accelerometer explains is not the pulse, whatever the motion and its cadence.
void augment_motion(float* w, double strength, Rng& rng);

}  // namespace pulsekd::kd
