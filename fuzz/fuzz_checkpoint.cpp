// libFuzzer target: a pulsekd model checkpoint as `eval`, `predict` and `--init` load it
// (models::load_checkpoint: safetensors, the "pulsekd.config" JSON, the normalisation JSON, every
// parameter's name, dtype and shape). A rejected file must throw std::runtime_error naming it;
// anything else escaping is a finding.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz/temp_input.h"
#include "models/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // load_checkpoint reads from a path, so the input goes through a temp file.
  const std::string path = write_temp_input("checkpoint.safetensors", data, size);
  if (path.empty()) return 0;
  try {
    pulsekd::models::load_checkpoint(path);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
