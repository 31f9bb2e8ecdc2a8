// libFuzzer target: the quantised-model parser (deploy/quant_format.cpp). Whatever parses must
// pass validate_quant_model, run through the host integer simulation without a sanitizer report
// (no out-of-bounds access, no int32 overflow, no bad shift), and survive save -> parse.
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <vector>

#include "deploy/host_runtime.h"
#include "deploy/quant_format.h"

using namespace pulsekd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  deploy::QuantModel q;
  try {
    q = deploy::parse_quant_model(data, size, "fuzz");
  } catch (const std::runtime_error&) {
    return 0;
  }
  // Bounded work per input: simulate only models of up to ~4 M multiply-accumulates.
  int64_t macs = 0;
  for (size_t i = 0; i < q.layers.size(); ++i)
    macs += q.layers[i].macs_per_row() * (int(i) < q.row_layers ? q.rows : 1);
  if (macs <= (int64_t(1) << 22)) {
    std::vector<int16_t> x(1024);
    for (size_t i = 0; i < x.size(); ++i) {
      const int v = data[i % size] * 257 - 32768;
      x[i] = int16_t(q.input.bits == 8 ? v / 256 : v);
    }
    deploy::HostModel(q).infer(x.data(), 1);
  }
  // Round trip through the file format.
  const std::vector<uint8_t> bytes = deploy::serialize_quant_model(q);
  const deploy::QuantModel r = deploy::parse_quant_model(bytes.data(), bytes.size(), "fuzz-roundtrip");
  if (r.layers.size() != q.layers.size()) std::abort();
  for (size_t i = 0; i < q.layers.size(); ++i)
    if (r.layers[i].w != q.layers[i].w || r.layers[i].bias != q.layers[i].bias || r.layers[i].mult != q.layers[i].mult ||
        r.layers[i].shift != q.layers[i].shift || r.layers[i].t_in != q.layers[i].t_in)
      std::abort();
  return 0;
}
