// Capacity sweeps: `pulsekd sweep --config SWEEP.json --out DIR` and `pulsekd sweep-report DIR`
// (kd/sweep.h, kd/scaling.h, docs/SWEEPS.md).
#include <iostream>

#include "cli/commands.h"
#include "cli/train_options.h"
#include "kd/scaling.h"
#include "kd/sweep.h"

namespace pulsekd::cli {
namespace {

CommandRegistrar reg_sweep([](CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Capacity sweep: teacher sizes × student sizes × strategies × folds × seeds (resumable)");
  auto config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto max_points = std::make_shared<int>(-1);
  auto dry = std::make_shared<bool>(false);
  auto force = std::make_shared<bool>(false);
  auto report = std::make_shared<bool>(false);
  cmd->add_option("--config", *config, "sweep config JSON (docs/SWEEPS.md)")->required();
  cmd->add_option("--out", *out, "sweep directory (re-running skips finished points)")->required();
  cmd->add_option("--max-points", *max_points, "stop after this many newly run points")->check(finite_non_negative());
  cmd->add_flag("--dry-run", *dry, "list the teacher runs and points (done/todo) without running");
  cmd->add_flag("--force", *force, "run although DIR was made with other settings");
  cmd->add_flag("--report", *report, "write the report (as sweep-report) when the sweep finishes");
  cmd->callback([=]() {
    const kd::SweepConfig c = kd::SweepConfig::load(*config);
    const data::WindowSet ws = kd::load_sweep_data(c);
    require_same_data(ws);
    kd::SweepRunOptions o;
    o.max_new_points = *max_points;
    o.dry_run = *dry;
    o.force_settings = *force;
    const kd::SweepStats st = kd::run_sweep(c, ws, *out, o);
    if (*report && !*dry && st.holds_results) {
      kd::write_sweep_report(*out);
      std::cout << "wrote " << *out << "/REPORT.md, report.json and plots\n";
    }
  });
});

CommandRegistrar reg_sweep_report([](CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep-report", "MAE vs student size per strategy, scaling fits with bootstrap intervals, plots");
  auto dir = std::make_shared<std::string>();
  auto resamples = std::make_shared<int>(1000);
  auto print = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "sweep directory (pulsekd sweep --out)")->required();
  cmd->add_option("--bootstrap", *resamples, "bootstrap resamples over folds")->capture_default_str()->check(CLI::Range(10, 100000));
  cmd->add_flag("--print", *print, "also print REPORT.md");
  cmd->callback([=]() {
    const std::string md = kd::write_sweep_report(*dir, *resamples);
    if (*print) std::cout << md;
    std::cout << "wrote " << *dir << "/REPORT.md, " << *dir << "/report.json and SVG plots\n";
  });
});

}  // namespace
}  // namespace pulsekd::cli
