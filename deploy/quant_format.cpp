// The quantised-model file format: safetensors with the layer list as JSON metadata
// 'pulsekd.quant' (docs/FORMATS.md). Parsing is fuzzed (fuzz/fuzz_quant_model.cpp): every
// inconsistency throws std::runtime_error naming the file, and what parses is validated.
#include "deploy/quant_format.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "engine/safetensors.h"

namespace pulsekd::deploy {

using nlohmann::json;

namespace {
[[noreturn]] void bad(const std::string& what, const std::string& msg) { quant_model_error(what, msg); }
std::string s(int64_t v) { return std::to_string(v); }
}  // namespace

// ---------------------------------------------------------------------------------------
// Files

static json qt_json(const QTensor& t) { return {{"bits", t.bits}, {"scale", t.scale}, {"zp", t.zp}}; }

template <class T>
static SafeTensor tensor_of(const std::string& dtype, const std::vector<T>& v) {
  SafeTensor t;
  t.dtype = dtype;
  t.shape = {int64_t(v.size())};
  t.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

static SafeTensorsFile quant_file_of(const QuantModel& q, const std::string& what) {
  validate_quant_model(q, what);
  SafeTensorsFile f;
  json layers = json::array();
  for (auto& L : q.layers) {
    layers.push_back({{"name", L.name}, {"op", qop_name(L.op)}, {"c_in", L.c_in}, {"c_out", L.c_out},
                      {"kernel", L.kernel}, {"dilation", L.dilation}, {"pad", L.pad}, {"pool", L.pool},
                      {"rows", L.rows}, {"t_in", L.t_in}, {"relu", L.relu}, {"in", qt_json(L.in)},
                      {"out", qt_json(L.out)}, {"act_min", L.act_min}, {"act_max", L.act_max}});
    // fields only the teacher's ops have (older files stay readable)
    if (L.op == QOp::Attention) layers.back()["heads"] = L.heads;
    if (L.op == QOp::LayerNorm) layers.back()["eps_q"] = L.norm_eps;
    if (L.weights_per_channel() >= 0) {
      f.tensors[L.name + ".weight"] = tensor_of("I8", L.w);
      f.tensors[L.name + ".bias_folded"] = tensor_of("I32", L.bias);
      f.tensors[L.name + ".weight_scale"] = tensor_of("F32", L.w_scale);
    }
    if (!L.mult.empty()) {
      f.tensors[L.name + ".multiplier"] = tensor_of("I32", L.mult);
      f.tensors[L.name + ".shift"] = tensor_of("I32", L.shift);
    }
  }
  json meta = {{"format", "pulsekd-quant-1"}, {"arch", q.arch}, {"calib", q.calib}, {"source", q.source},
               {"input", qt_json(q.input)}, {"rows", q.rows}, {"row_layers", q.row_layers},
               {"out_scale", q.out_scale}, {"layers", layers},
               {"normalisation", q.norm.present ? "checkpoint" : "per-recording z-score"}};
  if (q.norm.present) {
    meta["norm_mean"] = std::vector<float>(q.norm.mean, q.norm.mean + 4);
    meta["norm_std"] = std::vector<float>(q.norm.std, q.norm.std + 4);
  }
  f.metadata["pulsekd.quant"] = meta.dump();
  return f;
}

void save_quant_model(const std::string& path, const QuantModel& q) { save_safetensors(path, quant_file_of(q, path)); }

std::vector<uint8_t> serialize_quant_model(const QuantModel& q) { return serialize_safetensors(quant_file_of(q, "serialize")); }

namespace {

// Strict JSON field readers: the right JSON type and a value representable in the target type
// (nlohmann's get<int>() would silently truncate 1e30 or 2^40).
struct Reader {
  const std::string& what;
  const json& at(const json& j, const std::string& where, const char* key) const {
    if (!j.is_object()) bad(what, where + " must be a JSON object");
    auto it = j.find(key);
    if (it == j.end()) bad(what, where + ": missing field '" + key + "'");
    return *it;
  }
  int64_t i64(const json& j, const std::string& where, const char* key, int64_t lo, int64_t hi) const {
    const json& v = at(j, where, key);
    if (!v.is_number_integer()) bad(what, where + ": field '" + key + "' must be an integer");
    // (an unsigned JSON value is <= hi <= INT64_MAX once the first test passes)
    if (v.is_number_unsigned() ? (v.get<uint64_t>() > uint64_t(hi) || int64_t(v.get<uint64_t>()) < lo)
                               : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
      bad(what, where + ": field '" + key + "' is " + v.dump() + ", expected " + s(lo) + ".." + s(hi));
    return v.is_number_unsigned() ? int64_t(v.get<uint64_t>()) : v.get<int64_t>();
  }
  int i32(const json& j, const std::string& where, const char* key) const { return int(i64(j, where, key, INT32_MIN, INT32_MAX)); }
  float f32(const json& v, const std::string& where) const {
    if (!v.is_number()) bad(what, where + " must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > double(FLT_MAX)) bad(what, where + " is not a finite float");
    return float(d);
  }
  float f32(const json& j, const std::string& where, const char* key) const { return f32(at(j, where, key), where + ": field '" + key + "'"); }
  std::string str(const json& j, const std::string& where, const char* key) const {
    const json& v = at(j, where, key);
    if (!v.is_string()) bad(what, where + ": field '" + key + "' must be a string");
    return v.get<std::string>();
  }
  bool boolean(const json& j, const std::string& where, const char* key) const {
    const json& v = at(j, where, key);
    if (!v.is_boolean()) bad(what, where + ": field '" + key + "' must be true or false");
    return v.get<bool>();
  }
  QTensor qt(const json& j, const std::string& where) const {
    QTensor t;
    t.bits = i32(j, where, "bits");
    t.scale = f32(j, where, "scale");
    t.zp = i32(j, where, "zp");
    return t;
  }
  template <class T>
  std::vector<T> tensor(const SafeTensorsFile& f, const std::string& name, const char* dtype, int64_t expect) const {
    auto it = f.tensors.find(name);
    if (it == f.tensors.end()) bad(what, "missing tensor '" + name + "'");
    const SafeTensor& t = it->second;
    if (t.dtype != dtype) bad(what, "tensor '" + name + "' must be " + dtype + ", is " + t.dtype);
    if (t.shape.size() != 1 || t.shape[0] != expect)
      bad(what, "tensor '" + name + "' must have shape (" + s(expect) + "), has " + s(int64_t(t.shape.size())) + " dimension(s)" +
                    (t.shape.size() == 1 ? " of " + s(t.shape[0]) : std::string()));
    if (int64_t(t.bytes.size()) != expect * int64_t(sizeof(T)))
      bad(what, "tensor '" + name + "' holds " + s(int64_t(t.bytes.size())) + " bytes, expected " + s(expect * int64_t(sizeof(T))));
    std::vector<T> v(static_cast<size_t>(expect));
    if (expect) std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
  }
};

QOp qop_from(const std::string& what, const std::string& where, const std::string& op) {
  if (op == "conv") return QOp::Conv;
  if (op == "avgpool") return QOp::AvgPool;
  if (op == "modality_conv") return QOp::ModalityConv;
  if (op == "linear") return QOp::Linear;
  if (op == "attn_in_proj") return QOp::AttnInProj;
  if (op == "attention") return QOp::Attention;
  if (op == "layer_norm") return QOp::LayerNorm;
  bad(what, where + ": unknown op '" + op + "' (expected conv, avgpool, modality_conv, linear, attn_in_proj, attention or layer_norm)");
}

QuantModel quant_model_from(const SafeTensorsFile& f, const std::string& what) {
  auto it = f.metadata.find("pulsekd.quant");
  if (it == f.metadata.end()) bad(what, "no 'pulsekd.quant' metadata (not written by pulsekd quantize?)");
  json m;
  try {
    m = json::parse(it->second);
  } catch (const json::exception& e) {
    bad(what, std::string("'pulsekd.quant' metadata is not JSON (") + e.what() + ")");
  }
  const Reader rd{what};
  const std::string top = "metadata";
  if (rd.str(m, top, "format") != "pulsekd-quant-1") bad(what, "format is not 'pulsekd-quant-1'");
  QuantModel q;
  q.arch = rd.str(m, top, "arch");
  q.calib = rd.str(m, top, "calib");
  q.source = rd.str(m, top, "source");
  q.input = rd.qt(rd.at(m, top, "input"), "input");
  q.rows = int(rd.i64(m, top, "rows", 1, 16));
  q.row_layers = int(rd.i64(m, top, "row_layers", 1, kMaxLayers));
  q.out_scale = rd.f32(m, top, "out_scale");
  if (m.contains("norm_mean") || m.contains("norm_std")) {
    const json& mu = rd.at(m, top, "norm_mean");
    const json& sd = rd.at(m, top, "norm_std");
    if (!mu.is_array() || !sd.is_array() || mu.size() != 4 || sd.size() != 4) bad(what, "norm_mean and norm_std must be arrays of 4 numbers");
    q.norm.present = true;
    for (size_t r = 0; r < 4; ++r) {
      q.norm.mean[r] = rd.f32(mu[r], "norm_mean[" + s(int64_t(r)) + "]");
      q.norm.std[r] = rd.f32(sd[r], "norm_std[" + s(int64_t(r)) + "]");
    }
  }
  const json& layers = rd.at(m, top, "layers");
  if (!layers.is_array() || layers.empty() || layers.size() > size_t(kMaxLayers))
    bad(what, "'layers' must be an array of 1.." + s(kMaxLayers) + " layers");
  std::set<std::string> used;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& j = layers[i];
    const std::string where = "layer " + s(int64_t(i));
    QLayer L;
    L.name = rd.str(j, where, "name");
    if (!is_c_identifier(L.name)) bad(what, where + ": name must be a C identifier of at most 64 characters");
    const std::string wl = where + " ('" + L.name + "')";
    L.op = qop_from(what, wl, rd.str(j, wl, "op"));
    L.c_in = int(rd.i64(j, wl, "c_in", 1, kMaxDim));
    L.c_out = int(rd.i64(j, wl, "c_out", 1, kMaxDim));
    L.kernel = int(rd.i64(j, wl, "kernel", 1, kMaxKernel));
    L.dilation = int(rd.i64(j, wl, "dilation", 1, kMaxDim));
    L.pad = int(rd.i64(j, wl, "pad", 0, kMaxDim));
    L.pool = int(rd.i64(j, wl, "pool", 1, kMaxDim));
    L.rows = int(rd.i64(j, wl, "rows", 1, 16));
    L.t_in = int(rd.i64(j, wl, "t_in", 1, kMaxDim));
    L.relu = rd.boolean(j, wl, "relu");
    L.in = rd.qt(rd.at(j, wl, "in"), wl + " input");
    L.out = rd.qt(rd.at(j, wl, "out"), wl + " output");
    L.act_min = rd.i32(j, wl, "act_min");
    L.act_max = rd.i32(j, wl, "act_max");
    if (L.op == QOp::Attention) L.heads = int(rd.i64(j, wl, "heads", 1, kMaxDim));
    if (L.op == QOp::LayerNorm) L.norm_eps = rd.i64(j, wl, "eps_q", 1, int64_t(1) << 62);
    const int64_t per_co = L.weights_per_channel();
    if (per_co >= 0) {
      const int64_t nw = int64_t(L.c_out) * per_co;
      if (nw > kMaxElems) bad(what, wl + ": weight tensor of " + s(nw) + " values is too large");
      L.w = rd.tensor<int8_t>(f, L.name + ".weight", "I8", nw);
      L.bias = rd.tensor<int32_t>(f, L.name + ".bias_folded", "I32", L.c_out);
      L.w_scale = rd.tensor<float>(f, L.name + ".weight_scale", "F32", L.c_out);
      used.insert({L.name + ".weight", L.name + ".bias_folded", L.name + ".weight_scale"});
    }
    const int64_t nm = int64_t(L.requant_channels());
    if (nm > 0) {
      L.mult = rd.tensor<int32_t>(f, L.name + ".multiplier", "I32", nm);
      L.shift = rd.tensor<int32_t>(f, L.name + ".shift", "I32", nm);
      used.insert({L.name + ".multiplier", L.name + ".shift"});
    }
    q.layers.push_back(std::move(L));
  }
  for (auto& kv : f.tensors)
    if (!used.count(kv.first)) bad(what, "unexpected tensor '" + kv.first + "' (no layer uses it)");
  validate_quant_model(q, what);
  return q;
}

}  // namespace

QuantModel parse_quant_model(const uint8_t* data, size_t size, const std::string& what) {
  return quant_model_from(parse_safetensors(data, size, what), what);
}

QuantModel load_quant_model(const std::string& path) { return quant_model_from(load_safetensors(path), path); }

}  // namespace pulsekd::deploy
