// Capacity sweeps (`pulsekd sweep --config SWEEP.json`): a grid of teacher sizes × student
// sizes × distillation strategies × folds × seeds, after the capacity study of Arora,
// Narayanswamy, Patel, Li (2025), "Towards Characterizing Knowledge Distillation of PPG Heart
// Rate Estimation Models" (KD-STRATEGIES.md §7; docs/SWEEPS.md describes the config).
//
// Layout of a sweep directory DIR:
//   DIR/settings.json                    what the results depend on (checked on every run)
//   DIR/config.json                      the config of the last run
//   DIR/teachers/<T>/seed<S>-fold<K>/    teacher run (fold<K>/best.safetensors, results.json)
//   DIR/teachers/<T>/seed<S>-fold<K>.json  teacher result (written last, atomically)
//   DIR/runs/<point>/                    student run (fold<K>/{best,state}.safetensors, log.jsonl)
//   DIR/points/<point>.json              point result (written last, atomically)
// A result file means "done": re-running skips it. An interrupted run resumes from its
// fold's state.safetensors (the trainer's exact resume), so an interrupted sweep loses at
// most the current epoch.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "kd/distill.h"
#include "kd/trainer.h"
#include "models/pulse.h"

namespace pulsekd::kd {

struct SweepSize {
  std::string id;  // "student-w0.5-d3" (or the config's "name")
  models::ModelConfig model;
};

struct SweepConfig {
  std::string data = "synth";
  bool synth_options = false;       // "synth": {...} given: generate with these options
  int synth_subjects = 8;
  double synth_minutes = 6.0;
  std::vector<SweepSize> teachers, students;
  std::vector<std::string> strategies;  // "none", "pulse", "rkd", ..., or combinations "pulse+rkd"
  std::vector<int> folds;               // 1-based; empty with loso
  bool loso = false;
  std::vector<uint64_t> seeds = {0};
  TrainOptions teacher_train, student_train;
  DistillOptions kd;                    // loss parameters; strategies set per point
  nlohmann::json settings;              // the fields results depend on (everything but the grid)
  nlohmann::json raw;

  // Parses and validates; every error names the key ("sweep config: train.epochs must be ...").
  static SweepConfig parse(const std::string& json_text);
  static SweepConfig load(const std::string& path);
};

struct SweepPoint {
  std::string id;
  int teacher = -1;  // index into teachers; -1 for strategy none
  int student = 0;
  std::string strategy;
  int fold = 0;
  uint64_t seed = 0;
};

// The distillation options of one strategy ("pulse+rkd"): base with its '+' parts as the
// strategies and only their entries of base.weights.
DistillOptions strategy_kd(const DistillOptions& base, const std::string& strategy);

// Every point of the grid for the given folds (strategy none: once per student, fold, seed).
std::vector<SweepPoint> plan_points(const SweepConfig& c, const std::vector<int>& folds);

// The data of a sweep: load_dataset(data), or the synthetic generator with the config's
// "synth" options.
data::WindowSet load_sweep_data(const SweepConfig& c);

struct SweepRunOptions {
  int max_new_points = -1;               // stop after this many newly run points (-1: all)
  bool dry_run = false;                  // print the plan, run nothing
  bool force_settings = false;           // accept a DIR made with other settings
  bool progress = true;                  // progress and ETA lines on stderr
  int64_t interrupt_after_batches = -1;  // testing: the first run trained is interrupted
};

struct SweepStats {
  int points_total = 0, points_skipped = 0, points_run = 0;
  int teachers_total = 0, teachers_skipped = 0, teachers_run = 0;
  double seconds = 0;
  bool holds_results = true;  // false on MPI ranks other than 0 (their counts stay 0)
};

// Parses a JSON file; errors name the path.
nlohmann::json read_json_file(const std::string& path);

// Typed reads of a sweep's JSON (configs, point and teacher results). `what` names the file and
// key for the message. Integers are checked without conversion: a fraction, a float such as
// 1e30 (casting it to an integer is undefined) or an unsigned value beyond int64 (nlohmann keeps
// those as uint64: read as int64 it would wrap negative) is refused, not converted.
bool json_integer_in(const nlohmann::json& v, int64_t lo, int64_t hi);
// std::runtime_error "WHAT must be an integer in LO..HI, got V" unless json_integer_in.
int64_t json_integer(const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi);
// std::runtime_error unless v is a number.
double json_number(const nlohmann::json& v, const std::string& what);

// Runs the teacher runs and points not yet done. Under mpirun the ranks share them (teachers
// before the points that need them; dist/dist.h); rank 0 alone writes settings.json and
// config.json and prints progress.
SweepStats run_sweep(const SweepConfig& c, const data::WindowSet& ws, const std::string& dir, const SweepRunOptions& o = {});

}  // namespace pulsekd::kd
