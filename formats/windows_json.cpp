#include "formats/windows_json.h"

#include <cmath>
#include <stdexcept>

namespace pulsekd::formats {

std::pair<std::vector<int64_t>, std::vector<float>> parse_windows_json(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("input_shape") || !j.contains("input"))
    throw std::runtime_error(what + ": expected keys 'input_shape' and 'input'");
  const nlohmann::json& js = j["input_shape"];
  const nlohmann::json& jx = j["input"];
  if (!js.is_array() || js.size() != 4) throw std::runtime_error(what + ": input_shape must be [B, 1, 4, 256]");
  std::vector<int64_t> shape;
  for (const nlohmann::json& v : js) {
    if (!v.is_number_integer()) throw std::runtime_error(what + ": input_shape must hold 4 integers, got " + v.dump());
    shape.push_back(v.get<int64_t>());
  }
  constexpr int64_t kMaxWindows = int64_t(1) << 22;  // 16 GB of float windows: far beyond any request
  if (shape[0] < 1 || shape[0] > kMaxWindows || shape[1] != 1 || shape[2] != 4 || shape[3] != 256)
    throw std::runtime_error(what + ": input_shape must be [B, 1, 4, 256] with 1 <= B <= " + std::to_string(kMaxWindows));
  if (!jx.is_array()) throw std::runtime_error(what + ": 'input' must be an array of numbers");
  const int64_t need = shape[0] * 4 * 256;
  if (int64_t(jx.size()) != need)
    throw std::runtime_error(what + ": 'input' has " + std::to_string(jx.size()) + " values, input_shape needs " + std::to_string(need));
  std::vector<float> x;
  x.reserve(size_t(need));
  for (const nlohmann::json& v : jx) {
    if (!v.is_number()) throw std::runtime_error(what + ": 'input' must hold numbers only, got " + v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 1e30) throw std::runtime_error(what + ": 'input' contains NaN, infinity or a value beyond 1e30");
    x.push_back(float(d));
  }
  return {shape, x};
}

std::pair<std::vector<int64_t>, std::vector<float>> parse_windows_json_text(const std::string& text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": not valid JSON (" + e.what() + ")");
  }
  return parse_windows_json(j, what);
}

}  // namespace pulsekd::formats
