// libFuzzer target: a whole torch.save archive (ZIP + pickle + storages + stride gather).
#include <cstddef>
#include <cstdint>
#include <exception>

#include "formats/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    pulsekd::parse_torch_state_dict(std::vector<uint8_t>(data, data + size), "fuzz");
  } catch (const std::exception&) {
  }
  return 0;
}
