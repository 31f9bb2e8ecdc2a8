// libFuzzer target: arbitrary bytes as the JSON windows of `pulsekd predict --windows`
// (formats/windows_json.h). Every failure must be a std::exception, never a crash, an overflow
// or an allocation beyond the input's own size.
#include <cstdint>
#include <exception>
#include <string>

#include "formats/windows_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto [shape, x] = pulsekd::formats::parse_windows_json_text(text, "fuzz");
    // Accepted: the shape says what the data holds.
    if (x.size() != static_cast<size_t>(shape[0]) * 4 * 256) __builtin_trap();
  } catch (const std::exception&) {
  }
  return 0;
}
