// libFuzzer target: ZIP parsing and reading every entry.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "formats/zip_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto z = pulsekd::data::ZipArchive::from_memory(std::vector<uint8_t>(data, data + size), "fuzz");
    for (const auto& n : z.names()) {
      try {
        z.read(n);
      } catch (const std::exception&) {
      }
    }
  } catch (const std::exception&) {
  }
  return 0;
}
