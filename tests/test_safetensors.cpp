// safetensors: round trip, layout Python can read, every malformed case, atomic save (and the
// atomic write it uses, engine/atomic_file.h, for text files as kd/ writes them).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/safetensors.h"
#include "tests/file_size_limit.h"

using namespace pulsekd;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(uint64_t(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}
std::string error_of(const std::vector<uint8_t>& f) {
  try {
    parse_safetensors(f.data(), f.size(), "m.safetensors");
  } catch (const SafeTensorsError& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
SafeTensorsFile sample() {
  SafeTensorsFile f;
  const float w[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
  f.tensors["layer.weight"] = SafeTensor::from_floats({2, 3}, w);
  const float b[1] = {0.25f};
  f.tensors["layer.bias"] = SafeTensor::from_floats({1}, b);
  SafeTensor i;
  i.dtype = "I32";
  i.shape = {};
  i.bytes = {7, 0, 0, 0};
  f.tensors["step"] = i;
  f.metadata["format"] = "pt";
  f.metadata["model"] = "pulse_student";
  return f;
}
const std::string kTmp = (fs::temp_directory_path() / ("pulsekd_st_" + std::to_string(::getpid()))).string();

}  // namespace

TEST_CASE("safetensors: round trip and the layout Python expects") {
  fs::create_directories(kTmp);
  const std::string path = kTmp + "/m.safetensors";
  save_safetensors(path, sample());
  const SafeTensorsFile g = load_safetensors(path);
  CHECK(g.metadata.at("model") == "pulse_student");
  CHECK(g.tensors.size() == 3);
  CHECK(g.tensors.at("layer.weight").shape == std::vector<int64_t>{2, 3});
  CHECK(g.tensors.at("layer.weight").to_floats() == std::vector<float>{1, -2, 3.5f, 4, 5, 6e-8f});
  CHECK(g.tensors.at("step").numel() == 1);
  CHECK_THROWS_WITH_AS(g.tensors.at("step").to_floats(), doctest::Contains("expected F32"), SafeTensorsError);
  // Header length is a multiple of 8, space padded, data contiguous in name order.
  const std::string bytes = slurp(path);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  CHECK(hlen % 8 == 0);
  const auto h = nlohmann::json::parse(bytes.substr(8, hlen));
  CHECK(h["layer.bias"]["data_offsets"] == nlohmann::json::array({0, 4}));
  CHECK(h["layer.weight"]["data_offsets"] == nlohmann::json::array({4, 28}));
  CHECK(h["step"]["data_offsets"] == nlohmann::json::array({28, 32}));
  CHECK(bytes.size() == 8 + hlen + 32);
  CHECK(!fs::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST_CASE("safetensors: malformed files give errors naming the file and tensor") {
  const std::vector<uint8_t> data(24, 0);
  auto hdr = [](const std::string& body) { return "{" + body + "}"; };
  const std::string ok = "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}";
  CHECK(error_of(raw_file(hdr(ok), data)).empty());
  std::string e = error_of({1, 2, 3});
  CHECK(has(e, "m.safetensors"));
  CHECK(has(e, "truncated"));
  auto whole = raw_file(hdr(ok), data);
  e = error_of(std::vector<uint8_t>(whole.begin(), whole.begin() + 20));
  CHECK(has(e, "reaches beyond the end of the file"));
  e = error_of(std::vector<uint8_t>(whole.begin(), whole.end() - 4));  // data cut short
  CHECK(has(e, "tensor \"w\""));
  CHECK(has(e, "beyond the data section"));
  e = error_of(raw_file("{\"w\": [", data));
  CHECK(has(e, "bad JSON"));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"Q7\",\"shape\":[2,3],\"data_offsets\":[0,24]}"), data));
  CHECK(has(e, "tensor \"w\""));
  CHECK(has(e, "unknown dtype \"Q7\""));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}"), data));
  CHECK(has(e, "shape [2,4] of F32 needs 8 x 4 bytes, data_offsets span 24"));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]},"
                            "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}"),
                        data));
  CHECK(has(e, "overlapping"));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[30,30]}"), data));
  CHECK(has(e, "beyond the data section"));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}"), data));
  CHECK(has(e, "reversed"));
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}"), data));
  CHECK(has(e, "more than 2^63"));
  e = error_of(raw_file(hdr("\"__metadata__\":{\"a\":1}"), data));
  CHECK(has(e, "not a string"));
  // A number beyond double is nlohmann's out_of_range, not a parse_error (found by fuzz_quant_model:
  // it escaped the reader; seed fuzz/corpus/quant_model/regression_header_number_overflow).
  e = error_of(raw_file(hdr("\"w\":{\"dtype\":\"F32\",\"shape\":[1680e1744],\"data_offsets\":[0,24]}"), data));
  CHECK(has(e, "m.safetensors"));
  CHECK(has(e, "bad JSON header"));
  CHECK_THROWS_WITH_AS(load_safetensors("/nonexistent/m.safetensors"), doctest::Contains("/nonexistent/m.safetensors"),
                       SafeTensorsError);
}

TEST_CASE("safetensors: a failed save leaves the old file untouched") {
  fs::create_directories(kTmp);
  const std::string path = kTmp + "/keep.safetensors";
  save_safetensors(path, sample());
  const std::string before = slurp(path);
  SafeTensorsFile big;
  std::vector<float> v(1 << 16, 1.0f);  // (65536) 256 kB of data
  big.tensors["big"] = SafeTensor::from_floats({int64_t(v.size())}, v.data());

  SUBCASE("the write fails (file size limit)") {
    // RLIMIT_FSIZE makes write() fail with EFBIG part way, even for root.
    std::string e;
    {
      pulsekd::testing::FileSizeLimit small(4096);
      try {
        save_safetensors(path, big);
      } catch (const SafeTensorsError& ex) {
        e = ex.what();
      }
    }
    CHECK(has(e, "write failed"));
    CHECK(has(e, "left unchanged"));
  }
  SUBCASE("the temporary cannot be created") {
    // A directory squatting on the temporary's name makes open() fail.
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    fs::create_directories(tmp);
    CHECK_THROWS_WITH_AS(save_safetensors(path, big), doctest::Contains("cannot create"), SafeTensorsError);
    fs::remove(tmp);
  }
  SUBCASE("the directory cannot be written") {
    const std::string ro = kTmp + "/ro";
    fs::create_directories(ro);
    save_safetensors(ro + "/m.safetensors", sample());
    if (::geteuid() != 0) {  // a read-only directory stops users, not root (CI runs as root)
      ::chmod(ro.c_str(), 0555);
      CHECK_THROWS_AS(save_safetensors(ro + "/m.safetensors", big), SafeTensorsError);
      ::chmod(ro.c_str(), 0755);
      CHECK(slurp(ro + "/m.safetensors") == before);
    }
    // A "directory" that is a regular file stops root too (ENOTDIR).
    CHECK_THROWS_WITH_AS(save_safetensors(ro + "/m.safetensors/x.safetensors", big), doctest::Contains("cannot create"),
                         SafeTensorsError);
    CHECK(slurp(ro + "/m.safetensors") == before);
  }
  SUBCASE("a directory holds the name") {
    // Refused before any temporary is made (engine/atomic_file.h output_target), for root too.
    const std::string taken = kTmp + "/taken.safetensors";
    fs::create_directories(taken + "/inside");
    CHECK_THROWS_WITH_AS(save_safetensors(taken, big), doctest::Contains("is a directory"), SafeTensorsError);
    CHECK(fs::is_directory(taken + "/inside"));
    CHECK(!fs::exists(taken + ".tmp." + std::to_string(::getpid())));
    fs::remove_all(taken);
  }
  CHECK(slurp(path) == before);
  CHECK(!fs::exists(path + ".tmp." + std::to_string(::getpid())));
  CHECK(load_safetensors(path).tensors.size() == 3);
}

TEST_CASE("write_file_atomic: text replaces the file whole; a failed write leaves it") {
  fs::create_directories(kTmp);
  const std::string path = kTmp + "/report.txt";
  write_file_atomic(path, std::string("first\n"));
  write_file_atomic(path, std::string("second, longer\n"));
  CHECK(slurp(path) == "second, longer\n");
  CHECK(!fs::exists(path + ".tmp." + std::to_string(::getpid())));
  // A directory at the path is refused by name (root too); no temporary is made.
  const std::string taken = kTmp + "/taken.txt";
  fs::create_directories(taken + "/inside");
  CHECK_THROWS_WITH_AS(write_file_atomic(taken, std::string("x")), doctest::Contains(("'" + taken + "' is a directory").c_str()), AtomicWriteError);
  CHECK(!fs::exists(taken + ".tmp." + std::to_string(::getpid())));
  fs::remove_all(taken);
  CHECK(slurp(path) == "second, longer\n");
}
