// Training commands: train, distill, eval.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/post_options.h"
#include "cli/train_options.h"
#include "datasets/registry.h"
#include "kd/fileutil.h"
#include "kd/ensemble.h"
#include "kd/hybrid.h"
#include "kd/runs.h"

namespace pulsekd::cli {
namespace {

// train and distill: run the selected folds, print the test table (none for --all).
void run_and_report(RunArgs& a, const std::string& what) {
  const RunData d = load_run_data(a);
  kd::RunSpec spec = make_spec(a, d.ws);
  kd::RunReport r = kd::run_folds(d.ws, d.plans, spec, a.out);
  if (!r.holds_results) return;  // an MPI rank other than 0: rank 0 reports
  if (a.all)
    std::cout << "trained " << what << spec.model.describe() << " on every subject of " << a.data << " (best weights in " << a.out
              << "/all/best.safetensors); evaluate it with pulsekd eval --checkpoint " << a.out << " --data SPEC\n";
  else
    std::cout << kd::format_eval_table(r.eval, "test subjects (" + what + spec.model.describe() + ")");
  std::cout << "results: " << a.out << "/results.json, " << a.out << "/results.csv (" << int(r.seconds) << " s)\n";
}

CommandRegistrar reg_train([](CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a PULSE teacher or student (leave-one-subject-out)");
  auto a = std::make_shared<RunArgs>();
  add_run_options(cmd, *a, /*distill=*/false);
  cmd->callback([a]() { run_and_report(*a, ""); });
});

CommandRegistrar reg_distill([](CLI::App& app) {
  auto* cmd = app.add_subcommand("distill", "Distil a student from a trained teacher with one or more strategies");
  auto a = std::make_shared<RunArgs>();
  add_run_options(cmd, *a, /*distill=*/true);
  cmd->callback([a]() { run_and_report(*a, "distilled "); });
});

CommandRegistrar reg_eval([](CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint (or a run directory) per subject");
  auto ckpt = std::make_shared<std::string>();
  auto spec = std::make_shared<std::string>();
  auto fold = std::make_shared<int>(0);
  auto loso = std::make_shared<bool>(false);
  auto post = std::make_shared<bool>(false);
  auto out = std::make_shared<std::string>("eval");
  cmd->add_option("--checkpoint", *ckpt, "a checkpoint (.safetensors or .pt) or a run directory with fold<K>/best.safetensors")->required();
  cmd->add_option("--data", *spec, data::dataset_spec_help())->required();
  cmd->add_option("--fold", *fold, "evaluate the test subject of fold K (1-based)")->check(finite_positive());
  cmd->add_option("--out", *out, "prefix of the JSON and CSV files written (PREFIX.json, PREFIX.csv, PREFIX_windows.csv)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return is_stdout_path(s) ? "the prefix of three files: '-' (standard output) is not accepted; give a prefix" : "";
          },
          "PREFIX"));
  cmd->add_flag("--loso", *loso, "evaluate every fold's test subject (a run directory: each fold's own model)");
  cmd->add_flag("--post", *post, "report post-processed MAE in the headline (both are always in the table)");
  auto ensemble = std::make_shared<bool>(false);
  cmd->add_flag("--ensemble", *ensemble,
                "average several models on every subject: --checkpoint is a run directory (every fold<K>/ and all/ model) or a "
                "comma-separated list of checkpoints");
  auto post_args = std::make_shared<PostArgs>();
  add_post_options(cmd, *post_args);
  auto fuse = std::make_shared<FuseArgs>();
  add_fuse_options(cmd, *fuse);
  cmd->callback([=]() {
    kd::PostProcess pp = make_post(*post_args);
    if (const auto tracker = fused_tracker(*fuse, pp)) pp.fuse_with = *tracker;
    if (*ensemble && (*fold > 0 || *loso))
      throw CLI::ValidationError("--ensemble", "evaluates every subject with all members: drop --fold / --loso");
    const data::WindowSet ws = data::load_dataset(*spec);
    kd::EvalResult r;
    if (*ensemble) {
      const std::vector<std::string> members = kd::ensemble_checkpoints(*ckpt);
      std::vector<int> every(ws.subjects.size());  // every subject of --data
      for (size_t s = 0; s < every.size(); ++s) every[s] = int(s);
      std::cout << "ensemble of " << members.size() << " models from " << *ckpt << "\n";
      r = kd::evaluate_ensemble(members, ws, every, pp);
    } else {
      std::vector<kd::FoldPlan> plans;
      if (*fold > 0 || *loso) plans = kd::select_folds(ws, *fold, *loso);
      else plans.push_back(kd::FoldPlan{});  // number 0: one checkpoint (or an --all run) on every subject
      r = kd::evaluate_saved(*ckpt, plans, ws, pp, /*every_subject=*/plans.front().number == 0);
    }
    std::cout << kd::format_eval_table(r, "evaluation of " + *ckpt + " on " + *spec);
    std::cout << "mean subject MAE: " << (*post ? r.mean_subject_mae_post : r.mean_subject_mae_raw) << " BPM"
              << (*post ? " (post-processed: " + pp.describe() + ")" : std::string(" (raw)")) << "\n";
    kd::write_eval_json(*out + ".json", r, nlohmann::json({{"post_process", pp.describe()}}).dump());
    kd::write_eval_csv(*out + ".csv", r);
    kd::write_eval_windows_csv(*out + "_windows.csv", r);
    std::cout << "wrote " << *out << ".json, " << *out << ".csv and " << *out << "_windows.csv (post-processing: " << pp.describe() << ")\n";
  });
});

}  // namespace
}  // namespace pulsekd::cli
