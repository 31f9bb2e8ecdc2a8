// The JSON windows of `pulsekd predict --windows FILE`:
//   {"input_shape": [B, 1, 4, 256], "input": [B*1024 numbers]}
// (the layout of ../shared/reference/kd_pulse_fold1.json). Strict: integers only in the shape
// (no 2.5, no true), numbers only in the input, B bounded so nothing overflows, every value
// finite. Parsing is fuzzed (fuzz/fuzz_windows_json.cpp).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace pulsekd::formats {

// Returns the shape (4) and the windows (B, 4, 256); throws std::runtime_error starting with
// `what` (e.g. "--windows 'in.json'") and saying what was expected.
std::pair<std::vector<int64_t>, std::vector<float>> parse_windows_json(const nlohmann::json& j, const std::string& what);
// The same from the file's text (not valid JSON: an error naming `what`).
std::pair<std::vector<int64_t>, std::vector<float>> parse_windows_json_text(const std::string& text, const std::string& what);

}  // namespace pulsekd::formats
