// libFuzzer target: safetensors parsing; whatever parses must serialise and parse back equal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>

#include "engine/safetensors.h"

using namespace pulsekd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafeTensorsFile f;
  try {
    f = parse_safetensors(data, size, "fuzz");
  } catch (const std::exception&) {
    return 0;
  }
  for (auto& kv : f.tensors) {
    try {
      kv.second.to_floats();
    } catch (const std::exception&) {
    }
  }
  const std::vector<uint8_t> again = serialize_safetensors(f);
  const SafeTensorsFile g = parse_safetensors(again.data(), again.size(), "fuzz-roundtrip");
  if (g.metadata != f.metadata || g.tensors.size() != f.tensors.size()) std::abort();
  for (const auto& kv : f.tensors) {
    const SafeTensor& t = g.tensors.at(kv.first);
    if (t.dtype != kv.second.dtype || t.shape != kv.second.shape || t.bytes != kv.second.bytes) std::abort();
  }
  return 0;
}
