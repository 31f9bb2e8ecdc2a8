// Writes the fuzz targets' seed corpora that pulsekd itself produces (deterministic, small):
//   make_fuzz_seeds CORPUS_DIR        (normally fuzz/corpus)
// checkpoint/: tiny pulsekd model checkpoints (student, binned head with normalisation, resnet).
// The JSON seeds (sweep_config/, model_config/) are written by hand; pickle/, torch/, zip/ and
// safetensors/ by fuzz/corpus/make_seeds.py. docs/TESTING.md lists every corpus.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "models/checkpoint.h"

using namespace pulsekd;
namespace fs = std::filesystem;

namespace {

// Tiny model checkpoints: as `pulsekd train` writes them, small enough to mutate quickly.
void write_checkpoint_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  models::ModelConfig student;
  student.arch = "student";
  student.width = 0.125;
  models::PulseModel s(student, 1);
  models::save_checkpoint((dir / "student_w0.125.safetensors").string(), s, models::RowNorm{});

  models::ModelConfig binned = student;
  binned.head = "binned";
  binned.bins = 8;
  models::RowNorm norm;
  norm.present = true;
  for (int i = 0; i < 4; ++i) norm.mean[i] = 0.5f * float(i), norm.std[i] = 1.0f + float(i);
  models::PulseModel b(binned, 2);
  models::save_checkpoint((dir / "student_binned_norm.safetensors").string(), b, norm);

  models::ModelConfig resnet;
  resnet.arch = "resnet";
  resnet.width = 0.125;
  resnet.convs_per_block = 1;
  resnet.stages = 2;
  resnet.base_channels = 16;
  resnet.dense = 8;
  models::PulseModel r(resnet, 3);
  models::save_checkpoint((dir / "resnet_tiny.safetensors").string(), r, models::RowNorm{});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (normally fuzz/corpus; writes CORPUS_DIR/checkpoint/)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root(argv[1]);
    write_checkpoint_seeds(root / "checkpoint");
    std::printf("wrote the seeds under %s\n", root.string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
