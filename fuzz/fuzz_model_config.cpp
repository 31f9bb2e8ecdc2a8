// libFuzzer target: a model configuration, the JSON every pulsekd checkpoint carries in its
// "pulsekd.config" metadata (models::ModelConfig::from_json). A rejected config must throw
// std::invalid_argument; an accepted one must survive to_json -> from_json unchanged.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "models/pulse.h"

using namespace pulsekd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  models::ModelConfig c;
  try {
    c = models::ModelConfig::from_json(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const std::string once = c.to_json();
  if (models::ModelConfig::from_json(once).to_json() != once) std::abort();
  return 0;
}
