// Model checkpoints: safetensors files whose tensors carry the PyTorch names AND layouts of
// the authors' state_dicts (conv weights [Cout, Cin, 1, K], conv4 [Cout, Cin, 4, 1]), so a
// pulsekd checkpoint loads into the PyTorch PULSE code and a released .pt imports here.
// Metadata: "pulsekd.config" (model JSON), "pulsekd.norm_mean" / "pulsekd.norm_std"
// (per-row z-score statistics, JSON arrays of 4), plus whatever the caller adds.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "datasets/folds.h"
#include "models/pulse.h"

namespace pulsekd::models {

// The per-row z-score statistics a checkpoint carries: a data::Normalizer (one type, one
// arithmetic for training, evaluation, prediction and quantisation), or none (present false:
// each recording is z-scored with its own statistics).
struct RowNorm : data::Normalizer {
  bool present = false;
  RowNorm() = default;
  explicit RowNorm(const data::Normalizer& n) : data::Normalizer(n), present(true) {}
};

struct LoadedModel {
  std::unique_ptr<PulseModel> model;
  RowNorm norm;
  std::map<std::string, std::string> metadata;
};

void save_checkpoint(const std::string& path, PulseModel& model, const RowNorm& norm,
                     const std::map<std::string, std::string>& extra_metadata = {});
LoadedModel load_checkpoint(const std::string& path);

// A PyTorch state_dict (.pt) of the authors' teacher or student. Every expected name must be
// present with the expected shape, and nothing else; otherwise the error names the tensor.
std::unique_ptr<PulseModel> import_torch(const std::string& pt_path, const std::string& arch);

// PyTorch layout ↔ engine layout for one named parameter of a model.
std::vector<int64_t> torch_shape(const PulseModel& m, const std::string& name, const Parameter& p);
std::vector<float> to_torch_layout(const PulseModel& m, const std::string& name, const Parameter& p);
void from_torch_layout(const PulseModel& m, const std::string& name, Parameter& p,
                       const std::vector<int64_t>& shape, const std::vector<float>& data,
                       const std::string& source);

}  // namespace pulsekd::models
