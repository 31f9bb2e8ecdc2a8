// Writes the fuzz targets' seed corpora that pulsekd itself produces (small files):
//   make_fuzz_seeds CORPUS_DIR        (normally fuzz/corpus)
// checkpoint/: tiny pulsekd model checkpoints (student, binned head with normalisation, resnet).
// mat/: MAT-files written with libmatio (recordings, labels, uncompressed, single, wrong shape, damaged zlib).
// quant_model/: the tiny quantised models of tests/quant_fixtures.h (int16, int8 with a
// normalisation block, teacher-like). Checkpoints and quantised models are deterministic; MAT-files
// carry libmatio's creation time. The JSON seeds (sweep_config/, model_config/) are written by
// hand; pickle/, torch/, zip/, safetensors/ by fuzz/corpus/make_seeds.py (docs/TESTING.md).
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "models/checkpoint.h"
#include "tests/mat_fixtures.h"
#include "deploy/quant_format.h"
#include "tests/quant_fixtures.h"

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

// Inputs of the SPC 2015 reading path (fuzz_mat): two valid recordings with their label files
// (BPM0, and another variable name), an uncompressed and a single-precision signal, a bad shape,
// and the first recording with 4 bytes overwritten in the middle of its zlib stream.
void write_mat_seeds(const fs::path& d) {
  using testing::write_mat;
  fs::create_directories(d);
  testing::write_recording(d / "sig6.mat", d / "bpm0.mat", 6, 1000);
  testing::write_recording(d / "sig5.mat", d / "bpm_other.mat", 5, 1250, "BPMtrue");
  write_mat(d / "sig_uncompressed.mat", "sig", 6, 200, std::vector<double>(1200, 0.5), false);
  write_mat(d / "sig_single.mat", "sig", 6, 1000, std::vector<double>(6000, 0.5), true, MAT_C_SINGLE);
  write_mat(d / "sig_wrongshape.mat", "sig", 3, 4, std::vector<double>(12, 0.5));
  std::ifstream in(d / "sig6.mat", std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t mid = 136 + (b.size() - 136) / 2;  // inside the compressed element after the 128-byte header
  for (size_t k = 0; k < 4; ++k) b[mid + k] = "\xde\xad\xbe\xef"[k];
  std::ofstream(d / "sig6_damaged_zlib.mat", std::ios::binary).write(b.data(), std::streamsize(b.size()));
}

// Tiny quantised models (fuzz_quant_model): int16 activations; int8 input and an int8 per-row
// path with a normalisation block; teacher-like (attention, layer norm).
void write_quant_seeds(const fs::path& d) {
  fs::create_directories(d);
  deploy::QuantModel q = testing::tiny_model();
  deploy::save_quant_model((d / "tiny_int16.safetensors").string(), q);
  q.input = {8, 0.02f, -3};
  q.layers[0].in = q.input;
  q.layers[0].out = {8, 0.03f, -128};
  q.layers[0].act_min = -128, q.layers[0].act_max = 127;
  q.layers[1].in = q.layers[1].out = q.layers[0].out;
  q.layers[1].act_min = -128, q.layers[1].act_max = 127;
  q.layers[2].in = q.layers[0].out;
  q.norm.present = true;
  deploy::save_quant_model((d / "tiny_int8_norm.safetensors").string(), q);
  deploy::save_quant_model((d / "tiny_teacher.safetensors").string(), testing::tiny_teacher());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (normally fuzz/corpus; writes its checkpoint/, mat/, quant_model/)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root(argv[1]);
    write_checkpoint_seeds(root / "checkpoint");
    write_mat_seeds(root / "mat");
    write_quant_seeds(root / "quant_model");
    std::printf("wrote the seeds under %s\n", root.string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
