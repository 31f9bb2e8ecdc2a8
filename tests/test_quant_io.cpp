// The quantised-model file is user input: crafted bad files must raise a clear
// std::runtime_error naming the file and what was expected, never crash (models/quantize_io.cpp).
// Uses a tiny synthetic model (conv -> pool per row, modality conv, dense), so it runs in well
// under a second and needs no data.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <unistd.h>

#include "engine/safetensors.h"
#include "models/quantize.h"

using namespace pulsekd;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

models::QuantModel tiny_model() {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
  models::QuantModel q;
  q.calib = "minmax";
  q.source = "tiny";
  q.input = {16, 1e-3f, 0};
  q.rows = 4;
  q.row_layers = 2;
  q.out_scale = 0.01f;
  auto params = [&](models::QLayer& L, int per_co, bool requant) {
    L.w.resize(size_t(L.c_out) * size_t(per_co));
    for (auto& w : L.w) w = int8_t(wd(rng));
    for (int co = 0; co < L.c_out; ++co) {
      L.bias.push_back(bd(rng));
      L.w_scale.push_back(0.01f);
      if (requant) {
        L.mult.push_back((1 << 30) + co * 12345);
        L.shift.push_back(-9 - co % 3);
      }
    }
  };
  models::QLayer c;
  c.name = "conv1";
  c.op = models::QOp::Conv;
  c.c_in = 1, c.c_out = 4, c.kernel = 3, c.pad = 1, c.t_in = 256, c.relu = true;
  c.in = q.input;
  c.out = {16, 2e-3f, 0};
  c.act_min = 0, c.act_max = 32767;
  params(c, 3, true);
  models::QLayer p;
  p.name = "pool1";
  p.op = models::QOp::AvgPool;
  p.c_in = p.c_out = 4, p.pool = 4, p.t_in = 256;
  p.in = p.out = c.out;
  p.act_min = -32768, p.act_max = 32767;
  models::QLayer m;
  m.name = "conv4";
  m.op = models::QOp::ModalityConv;
  m.c_in = 4, m.c_out = 2, m.rows = 4, m.t_in = 64, m.relu = true;
  m.in = c.out;
  m.out = {8, 0.05f, -128};
  m.act_min = -128, m.act_max = 127;
  params(m, 16, true);
  models::QLayer d;
  d.name = "out";
  d.op = models::QOp::Linear;
  d.c_in = 128, d.c_out = 1, d.t_in = 1;
  d.in = m.out;
  d.out = {32, 1.f, 0};
  d.act_min = INT32_MIN, d.act_max = INT32_MAX;
  params(d, 128, false);
  q.layers = {c, p, m, d};
  return q;
}

// A tiny teacher-like model: conv -> pool per row (16 steps, 4 channels), then the attention
// part (attn_in_proj, attention with 4 heads over 12 keys, per-token out-projection, layer_norm)
// and the output layer over the flattened 4 x 16 tokens.
models::QuantModel tiny_teacher() {
  models::QuantModel q = tiny_model();
  q.arch = "teacher";
  q.layers.resize(2);
  q.layers[1].pool = q.layers[1].kernel = 16;
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
  auto layer = [&](const char* name, models::QOp op, int t_in, int c_in, int c_out, models::QTensor in, models::QTensor out) {
    models::QLayer L;
    L.name = name;
    L.op = op;
    L.rows = 4;
    L.t_in = t_in, L.c_in = c_in, L.c_out = c_out;
    L.in = in, L.out = out;
    L.act_min = out.qmin(), L.act_max = out.qmax();
    const int64_t per = L.weights_per_channel();
    for (int64_t i = 0; per >= 0 && i < int64_t(c_out) * per; ++i) L.w.push_back(int8_t(wd(rng)));
    for (int co = 0; per >= 0 && co < c_out; ++co) L.bias.push_back(bd(rng)), L.w_scale.push_back(0.01f);
    for (size_t co = 0; co < L.requant_channels(); ++co) L.mult.push_back((1 << 30) + int(co) * 4321), L.shift.push_back(-8 - int(co % 3));
    return L;
  };
  const models::QTensor i16{16, 1e-3f, 0}, i32{32, 1e-4f, 0};
  models::QLayer p = layer("attn_in_proj", models::QOp::AttnInProj, 16, 4, 48, q.layers[1].out, i32);
  p.act_min = -8388607, p.act_max = 8388607;
  models::QLayer a = layer("attention", models::QOp::Attention, 4, 16, 16, i32, i16);
  a.heads = 4;
  models::QLayer o = layer("attn_out_proj", models::QOp::Linear, 4, 16, 16, i16, i16);
  models::QLayer n = layer("layer_norm", models::QOp::LayerNorm, 4, 16, 16, i16, {8, 0.02f, -5});
  n.norm_eps = 123456;
  models::QLayer d = layer("out", models::QOp::Linear, 1, 64, 1, n.out, {32, 1.f, 0});
  q.layers.insert(q.layers.end(), {p, a, o, n, d});
  return q;
}

std::vector<uint8_t> tiny_bytes(const models::QuantModel& model = tiny_model()) {
  const fs::path path = fs::temp_directory_path() / ("pulsekd_tiny_q_" + std::to_string(::getpid()) + ".safetensors");
  models::save_quant_model(path.string(), model);
  const SafeTensorsFile f = load_safetensors(path.string());
  fs::remove(path);
  return serialize_safetensors(f);
}

// Applies `edit` to the metadata JSON and/or tensors of the tiny model, then parses it; returns
// the error message ("" if it parsed).
template <class Edit>
std::string parse_edited(Edit edit, const models::QuantModel& model = tiny_model()) {
  const std::vector<uint8_t> good = tiny_bytes(model);
  SafeTensorsFile f = parse_safetensors(good.data(), good.size(), "tiny");
  json m = json::parse(f.metadata.at("pulsekd.quant"));
  edit(m, f);
  if (!m.is_null()) f.metadata["pulsekd.quant"] = m.dump();
  const std::vector<uint8_t> b = serialize_safetensors(f);
  try {
    models::parse_quant_model(b.data(), b.size(), "bad.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

#define CHECK_REJECTS(expected, ...)                                           \
  do {                                                                         \
    const std::string msg = parse_edited(__VA_ARGS__);                         \
    INFO("message: " << msg);                                                  \
    CHECK(msg.find("bad.safetensors") != std::string::npos);                   \
    CHECK(msg.find(expected) != std::string::npos);                            \
  } while (0)

// validate_quant_model's message for `model` after `edit` ("" if it validates).
template <class Edit>
std::string validation_error(models::QuantModel model, Edit edit) {
  edit(model);
  try {
    models::validate_quant_model(model, "mem");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

template <class T>
void set_value(SafeTensorsFile& f, const std::string& name, size_t i, T v) {
  std::memcpy(f.tensors.at(name).bytes.data() + i * sizeof(T), &v, sizeof(T));
}

}  // namespace

TEST_CASE("quantised model: the tiny model round-trips and simulates identically") {
  const models::QuantModel q = tiny_model();
  CHECK_NOTHROW(models::validate_quant_model(q, "tiny"));
  const std::vector<uint8_t> b = tiny_bytes();
  const models::QuantModel r = models::parse_quant_model(b.data(), b.size(), "tiny");
  REQUIRE(r.layers.size() == q.layers.size());
  for (size_t i = 0; i < q.layers.size(); ++i) {
    CHECK(r.layers[i].w == q.layers[i].w);
    CHECK(r.layers[i].bias == q.layers[i].bias);
    CHECK(r.layers[i].mult == q.layers[i].mult);
    CHECK(r.layers[i].shift == q.layers[i].shift);
  }
  std::vector<int16_t> x(2 * 1024);
  std::mt19937 rng(1);
  for (auto& v : x) v = int16_t(int(rng() % 65536) - 32768);
  CHECK(models::simulate(q, x.data(), 2) == models::simulate(r, x.data(), 2));
}

TEST_CASE("quantised model: crafted bad files raise clear errors naming the file") {
  using F = SafeTensorsFile;
  CHECK_REJECTS("no 'pulsekd.quant'", [](json& m, F& f) { m = nullptr, f.metadata.clear(); });
  CHECK_REJECTS("not JSON", [](json& m, F& f) { m = nullptr, f.metadata["pulsekd.quant"] = "{\"layers\": ["; });
  CHECK_REJECTS("must be a JSON object", [](json& m, F&) { m = json::array(); });
  CHECK_REJECTS("format", [](json& m, F&) { m["format"] = "pulsekd-quant-2"; });
  CHECK_REJECTS("missing field 'kernel'", [](json& m, F&) { m["layers"][0].erase("kernel"); });
  CHECK_REJECTS("'c_in' must be an integer", [](json& m, F&) { m["layers"][0]["c_in"] = 1e30; });
  CHECK_REJECTS("expected 1..4096", [](json& m, F&) { m["layers"][0]["c_out"] = int64_t(1) << 40; });
  CHECK_REJECTS("expected 1..4096", [](json& m, F&) { m["layers"][0]["t_in"] = uint64_t(1) << 63; });
  CHECK_REJECTS("must be a string", [](json& m, F&) { m["layers"][1]["op"] = 3; });
  CHECK_REJECTS("unknown op 'softmax'", [](json& m, F&) { m["layers"][1]["op"] = "softmax"; });
  CHECK_REJECTS("must be true or false", [](json& m, F&) { m["layers"][0]["relu"] = 1; });
  CHECK_REJECTS("bits is 12", [](json& m, F&) { m["layers"][0]["out"]["bits"] = 12; });
  CHECK_REJECTS("input: bits is 32, expected 8 or 16", [](json& m, F&) { m["input"]["bits"] = 32; });
  CHECK_REJECTS("zero point 300", [](json& m, F&) { m["layers"][2]["out"]["zp"] = 300; });
  CHECK_REJECTS("zero point must be 0", [](json& m, F&) { m["layers"][0]["out"]["zp"] = 5; });
  CHECK_REJECTS("scale must be finite and > 0", [](json& m, F&) { m["layers"][0]["out"]["scale"] = -1.0; });
  CHECK_REJECTS("not a finite float", [](json& m, F&) { m["out_scale"] = 1e300; });
  CHECK_REJECTS("out_scale must be finite and > 0", [](json& m, F&) { m["out_scale"] = 0.0; });
  CHECK_REJECTS("rows is 8, expected 4", [](json& m, F&) { m["rows"] = 8; });
  CHECK_REJECTS("row_layers is 4", [](json& m, F&) { m["row_layers"] = 4; });
  CHECK_REJECTS("must be a modality_conv", [](json& m, F&) { m["row_layers"] = 1; });
  CHECK_REJECTS("tensor 'conv1.weight' must have shape (4)", [](json& m, F&) { m["layers"][0]["op"] = "modality_conv"; });
  CHECK_REJECTS("missing tensor 'out.multiplier'", [](json& m, F&) { m["layers"][3]["out"] = {{"bits", 8}, {"scale", 1.0}, {"zp", 0}}; });
  CHECK_REJECTS("unexpected tensor 'conv4.multiplier'", [](json& m, F&) {
    m["layers"][2]["out"] = {{"bits", 32}, {"scale", 1.0}, {"zp", 0}};
  });
  CHECK_REJECTS("expected int16 zp 0 (the previous tensor)", [](json& m, F&) { m["layers"][2]["in"] = {{"bits", 8}, {"scale", 1.0}, {"zp", 0}}; });
  CHECK_REJECTS("the previous tensor is (t 64, c 4)", [](json& m, F& f) {
    m["layers"][2]["c_in"] = 5;
    f.tensors["conv4.weight"].shape = {2 * 4 * 5};
    f.tensors["conv4.weight"].bytes.resize(40);
  });
  CHECK_REJECTS("linear expects t_in 1 and c_in 128", [](json& m, F& f) {
    m["layers"][3]["c_in"] = 64;
    f.tensors["out.weight"].shape = {64};
    f.tensors["out.weight"].bytes.resize(64);
  });
  CHECK_REJECTS("exceeds the padded input", [](json& m, F&) { m["layers"][0]["dilation"] = 4096; });
  CHECK_REJECTS("avgpool c_out 8 must equal c_in 4", [](json& m, F&) { m["layers"][1]["c_out"] = 8; });
  CHECK_REJECTS("act_min/act_max", [](json& m, F&) { m["layers"][0]["act_min"] = 40000; });
  CHECK_REJECTS("act_min/act_max", [](json& m, F&) { m["layers"][2]["act_max"] = 200; });
  CHECK_REJECTS("duplicate layer name", [](json& m, F&) { m["layers"][1]["name"] = "conv1"; });
  CHECK_REJECTS("C identifier", [](json& m, F&) { m["layers"][1]["name"] = "x}; evil(); //"; });
  CHECK_REJECTS("reserved", [](json& m, F&) { m["layers"][1]["name"] = "rows"; });
  CHECK_REJECTS("norm_mean and norm_std must be arrays of 4", [](json& m, F&) { m["norm_mean"] = {0, 0, 0}, m["norm_std"] = {1, 1, 1}; });
  CHECK_REJECTS("std finite and > 0", [](json& m, F&) {
    m["norm_mean"] = {0, 0, 0, 0};
    m["norm_std"] = {1, 1, 0, 1};
  });
  // Tensors.
  CHECK_REJECTS("missing tensor 'conv1.bias_folded'", [](json&, F& f) { f.tensors.erase("conv1.bias_folded"); });
  CHECK_REJECTS("tensor 'conv4.weight' must be I8, is U8", [](json&, F& f) { f.tensors["conv4.weight"].dtype = "U8"; });
  CHECK_REJECTS("must have shape (12)", [](json&, F& f) { f.tensors["conv1.weight"].shape = {3, 4}; });
  CHECK_REJECTS("must have shape (2)", [](json&, F& f) {
    f.tensors["conv4.shift"].shape = {1};
    f.tensors["conv4.shift"].bytes.resize(4);
  });
  CHECK_REJECTS("unexpected tensor 'pool1.weight'", [](json&, F& f) { f.tensors["pool1.weight"] = f.tensors["conv1.weight"]; });
  CHECK_REJECTS("shift of channel 1 is 31", [](json&, F& f) { set_value<int32_t>(f, "conv1.shift", 1, 31); });
  CHECK_REJECTS("shift of channel 0 is -40", [](json&, F& f) { set_value<int32_t>(f, "conv4.shift", 0, -40); });
  CHECK_REJECTS("multiplier of channel 2 is 5", [](json&, F& f) { set_value<int32_t>(f, "conv1.multiplier", 2, 5); });
  CHECK_REJECTS("multiplier of channel 0 is -1073741824", [](json&, F& f) { set_value<int32_t>(f, "conv1.multiplier", 0, INT32_MIN / 2); });
  CHECK_REJECTS("weight -128", [](json&, F& f) { set_value<int8_t>(f, "out.weight", 7, -128); });
  CHECK_REJECTS("can overflow the int32 accumulator", [](json&, F& f) { set_value<int32_t>(f, "conv1.bias_folded", 3, INT32_MAX - 1000); });
  CHECK_REJECTS("can overflow the int32 accumulator", [](json&, F& f) { set_value<int32_t>(f, "out.bias_folded", 0, INT32_MIN); });
  CHECK_REJECTS("weight_scale of channel 0 is not finite", [](json&, F& f) { set_value<float>(f, "conv4.weight_scale", 0, INFINITY); });
}

TEST_CASE("quantised model: validate_quant_model checks models built in memory") {
  auto msg = [](auto edit) { return validation_error(tiny_model(), edit); };
  using Q = models::QuantModel;
  CHECK(msg([](Q& q) { q.layers[3].out = {8, 1.f, 0}; }).find("last layer must output the raw int32") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].out = {32, 1.f, 0}; }).find("output: bits is 32, expected 8 or 16") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[0].op = models::QOp::ModalityConv; }).find("only be the first layer after") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[1].w = {1}; }).find("avgpool has no parameters") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].mult.pop_back(); }).find("expected 2 multipliers and shifts") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[3].c_out = 2; }).find("must have one output value, has 2") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].w.pop_back(); }).find("sizes do not match") != std::string::npos);
  CHECK(msg([](Q& q) { q.arch = "teacher"; }).find("must be a attn_in_proj (arch teacher)") != std::string::npos);
  CHECK(msg([](Q& q) { q.arch = "resnet"; }).find("expected 'student' or 'teacher'") != std::string::npos);
  CHECK(msg([](Q&) {}).empty());
}

TEST_CASE("quantised model: the tiny teacher round-trips, simulates identically, and its crafted bad files are rejected") {
  const models::QuantModel q = tiny_teacher();
  CHECK_NOTHROW(models::validate_quant_model(q, "tiny teacher"));
  const std::vector<uint8_t> b = tiny_bytes(q);
  const models::QuantModel r = models::parse_quant_model(b.data(), b.size(), "tiny teacher");
  REQUIRE(r.layers.size() == q.layers.size());
  CHECK(r.layers[3].heads == 4);
  CHECK(r.layers[5].norm_eps == 123456);
  std::vector<int16_t> x(2 * 1024);
  std::mt19937 rng(2);
  for (auto& v : x) v = int16_t(int(rng() % 65536) - 32768);
  const std::vector<int32_t> y = models::simulate(q, x.data(), 2);
  CHECK(y == models::simulate(r, x.data(), 2));
  CHECK(y[0] != y[1]);

  using F = SafeTensorsFile;
  // layers: 0 conv1, 1 pool1, 2 attn_in_proj, 3 attention, 4 attn_out_proj, 5 layer_norm, 6 out
  CHECK_REJECTS("must be a modality_conv (arch student)", [](json& m, F&) { m["arch"] = "student"; }, q);
  CHECK_REJECTS("unknown op 'mha'", [](json& m, F&) { m["layers"][3]["op"] = "mha"; }, q);
  CHECK_REJECTS("missing field 'heads'", [](json& m, F&) { m["layers"][3].erase("heads"); }, q);
  CHECK_REJECTS("heads 3 must divide the embedding 16", [](json& m, F&) { m["layers"][3]["heads"] = 3; }, q);
  CHECK_REJECTS("field 'heads' is 0", [](json& m, F&) { m["layers"][3]["heads"] = 0; }, q);
  CHECK_REJECTS("missing field 'eps_q'", [](json& m, F&) { m["layers"][5].erase("eps_q"); }, q);
  CHECK_REJECTS("field 'eps_q' is 0", [](json& m, F&) { m["layers"][5]["eps_q"] = 0; }, q);
  CHECK_REJECTS("'eps_q' must be an integer", [](json& m, F&) { m["layers"][5]["eps_q"] = 0.5; }, q);
  CHECK_REJECTS("attention must have t_in 4", [](json& m, F&) { m["layers"][3]["t_in"] = 5; }, q);
  CHECK_REJECTS("attention must have t_in 4", [](json& m, F&) { m["layers"][3]["rows"] = 3; }, q);
  CHECK_REJECTS("lets scores or P.V sums overflow int32", [](json& m, F&) {
    m["layers"][2]["act_min"] = -16777216, m["layers"][2]["act_max"] = 16777216;
  }, q);
  CHECK_REJECTS("attention input must be int32 and its output int16", [](json& m, F&) {
    m["layers"][3]["out"] = {{"bits", 8}, {"scale", 1.0}, {"zp", 0}};
    m["layers"][4]["in"] = m["layers"][3]["out"];
    m["layers"][3]["act_min"] = -128, m["layers"][3]["act_max"] = 127;
  }, q);
  CHECK_REJECTS("attn_in_proj output must be int32", [](json& m, F&) {
    m["layers"][2]["out"] = {{"bits", 16}, {"scale", 1.0}, {"zp", 0}};
    m["layers"][3]["in"] = m["layers"][2]["out"];
    m["layers"][2]["act_min"] = -100, m["layers"][2]["act_max"] = 100;
  }, q);
  CHECK_REJECTS("input: bits is 32, expected 8 or 16", [](json& m, F&) {  // int32 only into the attention
    m["layers"][4]["in"] = {{"bits", 32}, {"scale", 1.0}, {"zp", 0}};
  }, q);
  CHECK_REJECTS("c_out 47 must be 3 x the embedding", [](json& m, F& f) {
    m["layers"][2]["c_out"] = 47;
    for (const char* t : {"weight", "bias_folded", "weight_scale", "multiplier", "shift"}) {
      SafeTensor& s = f.tensors[std::string("attn_in_proj.") + t];
      const int64_t per = s.shape[0] / 48;
      s.shape = {per * 47};
      s.bytes.resize(s.bytes.size() / 48 * 47);
    }
  }, q);
  // structure, in memory (a changed op in a file first fails on its tensors' shapes)
  auto validate_msg = [&q](auto change) { return validation_error(q, change); };
  using Q = models::QuantModel;
  CHECK(validate_msg([](Q& b) { b.layers[3].op = models::QOp::LayerNorm; }).find("attn_in_proj must be followed by an attention layer") != std::string::npos);
  CHECK(validate_msg([](Q& b) { b.layers[4].op = models::QOp::AttnInProj; }).find("attn_in_proj may only be the first layer after") != std::string::npos);
  CHECK(validate_msg([](Q& b) { std::swap(b.layers[2], b.layers[3]); }).find("must be a attn_in_proj (arch teacher)") != std::string::npos);
  CHECK(validate_msg([](Q& b) { b.layers[3].w = {1}; }).find("attention has no weights or biases") != std::string::npos);
  CHECK(validate_msg([](Q& b) { b.layers[5].norm_eps = INT64_MAX; }).find("eps_q") != std::string::npos);
  CHECK(validate_msg([](Q&) {}).empty());
  CHECK_REJECTS("missing tensor 'attention.multiplier'", [](json&, F& f) { f.tensors.erase("attention.multiplier"); }, q);
  CHECK_REJECTS("tensor 'attention.shift' must have shape (2)", [](json&, F& f) {
    f.tensors["attention.shift"].shape = {16};
    f.tensors["attention.shift"].bytes.resize(64);
  }, q);
  CHECK_REJECTS("unexpected tensor 'attention.weight'", [](json&, F& f) { f.tensors["attention.weight"] = f.tensors["layer_norm.weight"]; }, q);
  CHECK_REJECTS("multiplier 1 is 7", [](json&, F& f) { set_value<int32_t>(f, "attention.multiplier", 1, 7); }, q);
  CHECK_REJECTS("shift 0 is 31", [](json&, F& f) { set_value<int32_t>(f, "attention.shift", 0, 31); }, q);
  CHECK_REJECTS("layer_norm c_out 8 must equal c_in 16", [](json& m, F& f) {
    m["layers"][5]["c_out"] = 8;
    for (const char* t : {"weight", "bias_folded", "weight_scale", "multiplier", "shift"}) {
      SafeTensor& s = f.tensors[std::string("layer_norm.") + t];
      s.shape = {8};
      s.bytes.resize(s.bytes.size() / 2);
    }
  }, q);
  CHECK_REJECTS("can overflow the int32 accumulator", [](json&, F& f) { set_value<int32_t>(f, "layer_norm.bias_folded", 2, INT32_MAX - 100); }, q);
  CHECK_REJECTS("linear expects t_in 1 and c_in 64 (flattened) or t_in 4 and c_in 16", [](json& m, F&) { m["layers"][4]["t_in"] = 2; }, q);
}

TEST_CASE("quantised model: load_quant_model names the path; truncated and missing files fail cleanly") {
  const std::vector<uint8_t> b = tiny_bytes();
  const fs::path dir = fs::temp_directory_path() / ("pulsekd_qio_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "cut.safetensors").string();
  {
    std::ofstream o(path, std::ios::binary);
    o.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size() / 2));
  }
  try {
    models::load_quant_model(path);
    FAIL("a truncated file loaded");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  CHECK_THROWS_AS(models::load_quant_model((dir / "none.safetensors").string()), std::runtime_error);
  fs::remove_all(dir);
}

TEST_CASE("quantised model: random byte mutations are rejected or give a model that validates and runs") {
  for (const bool teacher : {false, true}) {
    CAPTURE(teacher);
    const std::vector<uint8_t> good = tiny_bytes(teacher ? tiny_teacher() : tiny_model());
    std::mt19937 rng(3);
    std::vector<int16_t> x(1024);
    for (auto& v : x) v = int16_t(int(rng() % 65536) - 32768);
    int accepted = 0;
    for (int it = 0; it < 400; ++it) {
      std::vector<uint8_t> b = good;
      const int edits = 1 + int(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % b.size();
        b[at] = rng() % 3 == 0 ? uint8_t(b[at] ^ (1u << (rng() % 8))) : uint8_t(rng());
      }
      if (rng() % 8 == 0) b.resize(rng() % b.size());
      try {
        const models::QuantModel q = models::parse_quant_model(b.data(), b.size(), "mutant");
        models::simulate(q, x.data(), 1);
        ++accepted;
      } catch (const std::runtime_error&) {
      }
    }
    MESSAGE((teacher ? "teacher-like: " : "student-like: ") << accepted << " of 400 mutants parsed (weight/bias byte changes) and ran");
  }
}

// PULSEKD_WRITE_QUANT_SEEDS=DIR writes the fuzz seeds (fuzz/corpus/quant_model/) and passes.
TEST_CASE("quantised model: fuzz seed writer (only with PULSEKD_WRITE_QUANT_SEEDS)") {
  const char* dir = std::getenv("PULSEKD_WRITE_QUANT_SEEDS");
  if (!dir) return;
  models::QuantModel q = tiny_model();
  models::save_quant_model(std::string(dir) + "/tiny_int16.safetensors", q);
  // int8 input and an int8 per-row path, with a normalisation block
  q.input = {8, 0.02f, -3};
  q.layers[0].in = q.input;
  q.layers[0].out = {8, 0.03f, -128};
  q.layers[0].act_min = -128, q.layers[0].act_max = 127;
  q.layers[1].in = q.layers[1].out = q.layers[0].out;
  q.layers[1].act_min = -128, q.layers[1].act_max = 127;
  q.layers[2].in = q.layers[0].out;
  q.norm.present = true;
  models::save_quant_model(std::string(dir) + "/tiny_int8_norm.safetensors", q);
  models::save_quant_model(std::string(dir) + "/tiny_teacher.safetensors", tiny_teacher());
}

// PULSEKD_WRITE_ANCHOR_DIR=DIR writes anchor_s8.safetensors / anchor_s16.safetensors: a model whose
// second layer is the CMSIS-NN anchor layer of ../shared/docs/MCU.md (256 steps, conv k=5,
// 32 -> 32, 'same' padding, stride 1) with int8 or int16 activations, for `pulsekd mcu-report`.
TEST_CASE("quantised model: CMSIS-NN anchor-layer models (only with PULSEKD_WRITE_ANCHOR_DIR)") {
  const char* dir = std::getenv("PULSEKD_WRITE_ANCHOR_DIR");
  if (!dir) return;
  for (const int bits : {8, 16}) {
    std::mt19937 rng(9);
    std::uniform_int_distribution<int> wd(-127, 127), bd(-2000, 2000);
    const models::QTensor act = bits == 8 ? models::QTensor{8, 0.02f, -3} : models::QTensor{16, 1e-3f, 0};
    const int32_t amin = bits == 8 ? -128 : -32768, amax = bits == 8 ? 127 : 32767;
    auto layer = [&](const char* name, models::QOp op, int cin, int cout, int K, int pad, int t, int per_co_rows) {
      models::QLayer L;
      L.name = name, L.op = op, L.c_in = cin, L.c_out = cout, L.kernel = K, L.pad = pad, L.t_in = t, L.rows = per_co_rows;
      L.in = L.out = act;
      L.act_min = amin, L.act_max = amax;
      if (op == models::QOp::AvgPool) return L;
      const int per_co = cin * (op == models::QOp::Conv ? K : op == models::QOp::ModalityConv ? per_co_rows : 1);
      for (int i = 0; i < cout * per_co; ++i) L.w.push_back(int8_t(wd(rng)));
      for (int co = 0; co < cout; ++co) {
        L.bias.push_back(bd(rng));
        L.w_scale.push_back(0.01f);
        L.mult.push_back((1 << 30) + co * 4567);
        L.shift.push_back(-14);
      }
      return L;
    };
    models::QuantModel q;
    q.calib = "none";
    q.source = "cmsis-nn anchor layer";
    q.input = act;
    q.rows = 4;
    q.row_layers = 3;
    q.out_scale = 1.f;
    q.layers.push_back(layer("stem", models::QOp::Conv, 1, 32, 1, 0, 256, 1));
    q.layers.push_back(layer("anchor", models::QOp::Conv, 32, 32, 5, 2, 256, 1));
    models::QLayer pool = layer("pool", models::QOp::AvgPool, 32, 32, 1, 0, 256, 1);
    pool.pool = 4;
    q.layers.push_back(pool);
    models::QLayer mc = layer("mod", models::QOp::ModalityConv, 32, 4, 1, 0, 64, 4);
    mc.out = {8, 0.05f, 0};
    mc.act_min = -128, mc.act_max = 127;
    q.layers.push_back(mc);
    models::QLayer out = layer("out", models::QOp::Linear, 256, 1, 1, 0, 1, 1);
    out.in = mc.out;
    out.out = {32, 1.f, 0};
    out.act_min = INT32_MIN, out.act_max = INT32_MAX;
    out.mult.clear(), out.shift.clear();
    q.layers.push_back(out);
    models::save_quant_model(std::string(dir) + "/anchor_s" + std::to_string(bits) + ".safetensors", q);
  }
}
