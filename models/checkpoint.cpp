#include "models/checkpoint.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "formats/torch_checkpoint.h"
#include "engine/safetensors.h"

namespace pulsekd::models {

namespace {

enum class Kind { Plain, Conv1d, Modality };

// PULSE (the model's layer plan): the row convs' weights are (1, K) kernels, the student's conv4
// is the modality-wise (4, 1) one. The resnet family stores every 3-D conv weight like a
// PyTorch Conv2d with a (1, K) kernel on [B, C, 4, T] (row-shared, as PULSE's convs) and its
// modality-wise fusion "fuse.weight" like conv4.
Kind kind_for(const PulseModel& m, const std::string& name, const Parameter& p) {
  if (m.config().arch == "resnet") {
    if (name == "fuse.weight") return Kind::Modality;
    return p.shape.ndim == 3 ? Kind::Conv1d : Kind::Plain;
  }
  const PulsePlan& plan = m.plan();
  if (!plan.teacher && name == "conv4.weight") return Kind::Modality;
  for (const PulsePlan::Conv& c : plan.convs)
    if (name == c.name + ".weight") return Kind::Conv1d;
  return Kind::Plain;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

}  // namespace

std::vector<int64_t> torch_shape(const PulseModel& m, const std::string& name, const Parameter& p) {
  switch (kind_for(m, name, p)) {
    case Kind::Conv1d: return {p.shape[0], p.shape[2], 1, p.shape[1]};    // (Cout, K, Cin) → (Cout, Cin, 1, K)
    case Kind::Modality: return {p.shape[0], p.shape[2], p.shape[1], 1};  // (Cout, R, Cin) → (Cout, Cin, R, 1)
    default: return p.shape.vec();
  }
}

std::vector<float> to_torch_layout(const PulseModel& m, const std::string& name, const Parameter& p) {
  const Kind k = kind_for(m, name, p);
  if (k == Kind::Plain) return std::vector<float>(p.value.begin(), p.value.end());
  // Both special layouts swap the last two axes of a 3-D (Cout, A, B) array.
  const int64_t co = p.shape[0], a = p.shape[1], b = p.shape[2];
  std::vector<float> out(size_t(p.numel()));
  for (int64_t o = 0; o < co; ++o)
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) out[size_t((o * b + j) * a + i)] = float(p.value[size_t((o * a + i) * b + j)]);
  (void)m;
  return out;
}

void from_torch_layout(const PulseModel& m, const std::string& name, Parameter& p,
                       const std::vector<int64_t>& shape, const std::vector<float>& data,
                       const std::string& source) {
  const std::vector<int64_t> want = torch_shape(m, name, p);
  if (shape != want)
    throw std::runtime_error(source + ": tensor '" + name + "' has shape " + shape_str(shape) + ", expected " +
                             shape_str(want) + " for " + m.config().describe());
  if (int64_t(data.size()) != p.numel())
    throw std::runtime_error(source + ": tensor '" + name + "' holds " + std::to_string(data.size()) + " values, expected " +
                             std::to_string(p.numel()));
  // A NaN or infinite weight would load and then turn every prediction into NaN downstream.
  for (size_t i = 0; i < data.size(); ++i)
    if (!std::isfinite(data[i]))
      throw std::runtime_error(source + ": tensor '" + name + "' holds a non-finite value (" + std::to_string(data[i]) +
                               ") at flat index " + std::to_string(i) + " of " + shape_str(shape));
  const Kind k = kind_for(m, name, p);
  if (k == Kind::Plain) {
    std::copy(data.begin(), data.end(), p.value.begin());
    return;
  }
  const int64_t co = p.shape[0], a = p.shape[1], b = p.shape[2];
  for (int64_t o = 0; o < co; ++o)
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) p.value[size_t((o * a + i) * b + j)] = real(data[size_t((o * b + j) * a + i)]);
}

void save_checkpoint(const std::string& path, PulseModel& model, const RowNorm& norm,
                     const std::map<std::string, std::string>& extra_metadata) {
  SafeTensorsFile f;
  f.metadata = extra_metadata;
  f.metadata["format"] = "pt";  // Python safetensors' convention for torch state_dicts
  f.metadata["pulsekd.config"] = model.config().to_json();
  if (norm.present) {
    f.metadata["pulsekd.norm_mean"] = nlohmann::json(std::vector<float>(norm.mean, norm.mean + 4)).dump();
    f.metadata["pulsekd.norm_std"] = nlohmann::json(std::vector<float>(norm.std, norm.std + 4)).dump();
  }
  for (auto& [name, p] : model.named_parameters(true)) {
    const std::vector<float> data = to_torch_layout(model, name, *p);
    f.tensors[name] = SafeTensor::from_floats(torch_shape(model, name, *p), data.data());
  }
  save_safetensors(path, f);
}

LoadedModel load_checkpoint(const std::string& path) {
  SafeTensorsFile f = load_safetensors(path);
  auto it = f.metadata.find("pulsekd.config");
  if (it == f.metadata.end())
    throw std::runtime_error(path + ": no 'pulsekd.config' in the safetensors metadata (not a pulsekd checkpoint? "
                             "import PyTorch files with 'pulsekd import-torch')");
  ModelConfig cfg;
  try {
    cfg = ModelConfig::from_json(it->second);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  LoadedModel lm;
  lm.model = std::make_unique<PulseModel>(cfg);
  for (auto& [name, p] : lm.model->named_parameters(true)) {
    auto t = f.tensors.find(name);
    if (t == f.tensors.end()) throw std::runtime_error(path + ": tensor '" + name + "' is missing");
    if (t->second.dtype != "F32") throw std::runtime_error(path + ": tensor '" + name + "' has dtype " + t->second.dtype + ", expected F32");
    from_torch_layout(*lm.model, name, *p, t->second.shape, t->second.to_floats(), path);
  }
  for (auto& [name, t] : f.tensors)
    if (!lm.model->find(name)) throw std::runtime_error(path + ": unexpected tensor '" + name + "' for " + cfg.describe());
  auto read4 = [&](const char* key, float* dst) {
    auto m = f.metadata.find(key);
    if (m == f.metadata.end()) return false;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(m->second);
    } catch (const std::exception&) {
      throw std::runtime_error(path + ": metadata '" + key + "' is not JSON");
    }
    if (!j.is_array() || j.size() != 4) throw std::runtime_error(path + ": metadata '" + key + "' must be an array of 4 numbers");
    for (int i = 0; i < 4; ++i) {
      if (!j[i].is_number()) throw std::runtime_error(path + ": metadata '" + key + "' must be an array of 4 numbers");
      const double v = j[i].get<double>();  // checked before narrowing: a double beyond float is no float
      if (!std::isfinite(v) || std::fabs(v) > double(std::numeric_limits<float>::max()))
        throw std::runtime_error(path + ": metadata '" + key + "' holds a non-finite value (or one beyond float)");
      dst[i] = float(v);
    }
    return true;
  };
  lm.norm.present = read4("pulsekd.norm_mean", lm.norm.mean) && read4("pulsekd.norm_std", lm.norm.std);
  for (float s : lm.norm.std)
    if (lm.norm.present && !(s > 0)) throw std::runtime_error(path + ": normalisation std must be > 0");
  lm.metadata = f.metadata;
  return lm;
}

std::unique_ptr<PulseModel> import_torch(const std::string& pt_path, const std::string& arch) {
  ModelConfig cfg;
  cfg.arch = arch;
  cfg.validate();
  auto model = std::make_unique<PulseModel>(cfg);
  auto sd = load_torch_state_dict(pt_path);
  std::map<std::string, const TorchTensor*> by_name;
  for (auto& [name, t] : sd) by_name[name] = &t;
  for (auto& [name, p] : model->named_parameters(true)) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw std::runtime_error(pt_path + ": state_dict has no '" + name + "' (is this a PULSE " + arch + " checkpoint?)");
    from_torch_layout(*model, name, *p, it->second->shape, it->second->data, pt_path);
  }
  for (auto& [name, t] : sd)
    if (!model->find(name)) throw std::runtime_error(pt_path + ": unexpected tensor '" + name + "' for a PULSE " + arch);
  return model;
}

}  // namespace pulsekd::models
