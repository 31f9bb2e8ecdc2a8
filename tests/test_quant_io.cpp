// The quantised-model file is user input: crafted bad files must raise a clear
// std::runtime_error naming the file and what was expected, never crash (deploy/quant_format.cpp, deploy/quant_model.cpp).
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
#include "deploy/host_runtime.h"
#include "deploy/quant_format.h"
#include "tests/quant_fixtures.h"

using namespace pulsekd;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using pulsekd::testing::tiny_model;
using pulsekd::testing::tiny_teacher;

std::vector<uint8_t> tiny_bytes(const deploy::QuantModel& model = tiny_model()) {
  const fs::path path = fs::temp_directory_path() / ("pulsekd_tiny_q_" + std::to_string(::getpid()) + ".safetensors");
  deploy::save_quant_model(path.string(), model);
  const SafeTensorsFile f = load_safetensors(path.string());
  fs::remove(path);
  return serialize_safetensors(f);
}

// Applies `edit` to the metadata JSON and/or tensors of the tiny model, then parses it; returns
// the error message ("" if it parsed).
template <class Edit>
std::string parse_edited(Edit edit, const deploy::QuantModel& model = tiny_model()) {
  const std::vector<uint8_t> good = tiny_bytes(model);
  SafeTensorsFile f = parse_safetensors(good.data(), good.size(), "tiny");
  json m = json::parse(f.metadata.at("pulsekd.quant"));
  edit(m, f);
  if (!m.is_null()) f.metadata["pulsekd.quant"] = m.dump();
  const std::vector<uint8_t> b = serialize_safetensors(f);
  try {
    deploy::parse_quant_model(b.data(), b.size(), "bad.safetensors");
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
std::string validation_error(deploy::QuantModel model, Edit edit) {
  edit(model);
  try {
    deploy::validate_quant_model(model, "mem");
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
  const deploy::QuantModel q = tiny_model();
  CHECK_NOTHROW(deploy::validate_quant_model(q, "tiny"));
  const std::vector<uint8_t> b = tiny_bytes();
  const deploy::QuantModel r = deploy::parse_quant_model(b.data(), b.size(), "tiny");
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
  CHECK(deploy::HostModel(q).infer(x.data(), 2) == deploy::HostModel(r).infer(x.data(), 2));
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
  using Q = deploy::QuantModel;
  CHECK(msg([](Q& q) { q.layers[3].out = {8, 1.f, 0}; }).find("last layer must output the raw int32") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].out = {32, 1.f, 0}; }).find("output: bits is 32, expected 8 or 16") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[0].op = deploy::QOp::ModalityConv; }).find("only be the first layer after") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[1].w = {1}; }).find("avgpool has no parameters") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].mult.pop_back(); }).find("expected 2 multipliers and shifts") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[3].c_out = 2; }).find("must have one output value, has 2") != std::string::npos);
  CHECK(msg([](Q& q) { q.layers[2].w.pop_back(); }).find("sizes do not match") != std::string::npos);
  CHECK(msg([](Q& q) { q.arch = "teacher"; }).find("must be a attn_in_proj (arch teacher)") != std::string::npos);
  CHECK(msg([](Q& q) { q.arch = "resnet"; }).find("expected 'student' or 'teacher'") != std::string::npos);
  CHECK(msg([](Q&) {}).empty());
}

TEST_CASE("quantised model: the tiny teacher round-trips, simulates identically, and its crafted bad files are rejected") {
  const deploy::QuantModel q = tiny_teacher();
  CHECK_NOTHROW(deploy::validate_quant_model(q, "tiny teacher"));
  const std::vector<uint8_t> b = tiny_bytes(q);
  const deploy::QuantModel r = deploy::parse_quant_model(b.data(), b.size(), "tiny teacher");
  REQUIRE(r.layers.size() == q.layers.size());
  CHECK(r.layers[3].heads == 4);
  CHECK(r.layers[5].norm_eps == 123456);
  std::vector<int16_t> x(2 * 1024);
  std::mt19937 rng(2);
  for (auto& v : x) v = int16_t(int(rng() % 65536) - 32768);
  const std::vector<int32_t> y = deploy::HostModel(q).infer(x.data(), 2);
  CHECK(y == deploy::HostModel(r).infer(x.data(), 2));
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
  using Q = deploy::QuantModel;
  CHECK(validate_msg([](Q& b) { b.layers[3].op = deploy::QOp::LayerNorm; }).find("attn_in_proj must be followed by an attention layer") != std::string::npos);
  CHECK(validate_msg([](Q& b) { b.layers[4].op = deploy::QOp::AttnInProj; }).find("attn_in_proj may only be the first layer after") != std::string::npos);
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
    deploy::load_quant_model(path);
    FAIL("a truncated file loaded");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  CHECK_THROWS_AS(deploy::load_quant_model((dir / "none.safetensors").string()), std::runtime_error);
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
        const deploy::QuantModel q = deploy::parse_quant_model(b.data(), b.size(), "mutant");
        deploy::HostModel(q).infer(x.data(), 1);
        ++accepted;
      } catch (const std::runtime_error&) {
      }
    }
    MESSAGE((teacher ? "teacher-like: " : "student-like: ") << accepted << " of 400 mutants parsed (weight/bias byte changes) and ran");
  }
}
