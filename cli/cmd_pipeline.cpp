// `pulsekd pipeline`: flags -> kd::PipelineOptions -> kd::run_pipeline (kd/pipeline.h).
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/post_options.h"
#include "kd/pipeline.h"

namespace pulsekd::cli {
namespace {

CommandRegistrar reg_pipeline([](CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "pipeline", "Teacher → student alone → distilled → quantised student, with the classical tracker beside them, in one report");
  auto o = std::make_shared<kd::PipelineOptions>();
  auto post = std::make_shared<PostArgs>();
  cmd->add_option("--data", o->data, std::string("training data: ") + data::dataset_spec_help())->capture_default_str();
  cmd->add_option("--test-data", o->test_data,
                  "train every model on every subject of --data and test on this dataset spec (prints its mean per-recording MAE)");
  cmd->add_option("--out", o->out, "output directory")->capture_default_str();
  cmd->add_option("--fold", o->fold, "the fold to run (test subject K, 1-based)")->capture_default_str()->check(finite_positive());
  cmd->add_flag("--loso", o->loso, "run every fold (long on real data)");
  cmd->add_option("--teacher-epochs", o->teacher_epochs, "teacher epochs")->capture_default_str()->check(finite_positive());
  cmd->add_option("--student-epochs", o->student_epochs, "student epochs (alone and distilled)")->capture_default_str()->check(finite_positive());
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str()->check(finite_positive());
  cmd->add_option("--kd", o->kd, "distillation strategies (comma separated)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_flag("--augment", o->augment, "augment training windows: amplitude, time shift, noise, accelerometer rotation");
  cmd->add_flag("--force", o->force, "resume stages (in --out) that were started with other settings (default: refused)");
  cmd->add_option("--augment-motion", o->augment_motion,
                  "motion-aware augmentation strength (0-5, normalised units; implies --augment): ACC-driven PPG artefacts and "
                  "synthetic arm motion at random cadences")
      ->check(finite_range(0, 5));
  cmd->add_option("--teacher-init", o->teacher_init, "start the teacher from this checkpoint (.safetensors or a released .pt)");
  cmd->add_option("--student-init", o->student_init, "start both students from this checkpoint");
  cmd->add_option("--teacher-lr", o->teacher_lr, "teacher learning rate (default 5e-4)")->check(finite_positive());
  cmd->add_option("--student-lr", o->student_lr, "students' learning rate (default 1e-3)")->check(finite_positive());
  cmd->add_option("--mcu", o->mcu, "run the quantised student in emulated firmware: m4, m7 or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"m4", "m7", "none"}));
  add_post_options(cmd, *post);
  auto fuse = std::make_shared<FuseArgs>();
  add_fuse_options(cmd, *fuse);
  cmd->callback([=]() {
    o->post = make_post(*post);
    o->tracker = tracker_of(*fuse);  // the tracker row uses it, fused or not
    o->fuse_tracker = fused_tracker(*fuse, o->post).has_value();
    // Without --prior-data / --prior-scale the prior is fitted to the training labels.
    o->fit_prior = post->prior_data.empty() && post->prior_scale <= 0;
    o->progress = ::isatty(2);
    o->epoch_lines = !o->progress;
    const kd::PipelineReport rep = kd::run_pipeline(*o);
    std::cout << kd::format_pipeline_report(rep);
    kd::write_pipeline_report(rep, o->out);
    if (!o->test_data.empty()) {
      for (const kd::StageResult& s : rep.stages)
        std::cout << "test MAE on " << o->test_data << ", " << s.label << ": " << s.eval.mean_subject_mae_post << " BPM (post-processed)\n";
      // The headline is the deployed model: the int8 distilled student with the post-processing.
      for (const kd::StageResult& s : rep.stages)
        if (s.name == "quantized")
          std::cout << "mean per-recording MAE on " << o->test_data << ": " << s.eval.mean_subject_mae_post
                    << " BPM (int8 distilled student, " << rep.post << ")\n";
    }
    std::cout << "report, JSON, CSV and SVG plots in " << o->out << "\n";
  });
});

}  // namespace
}  // namespace pulsekd::cli
