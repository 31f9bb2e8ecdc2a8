// Reading the PyTorch reference files of ../shared/reference (grad_reference_fold1.safetensors):
// F64 tensors as doubles and the loss values kept as numbers in `__metadata__`.
#pragma once
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/safetensors.h"

namespace pulsekd::testing {

// The F64 tensor `name` of f, row-major, checked for its documented shape.
inline std::vector<double> f64_tensor(const SafeTensorsFile& f, const std::string& name,
                                      const std::vector<int64_t>& shape) {
  const auto it = f.tensors.find(name);
  REQUIRE_MESSAGE(it != f.tensors.end(), "no tensor " << name);
  REQUIRE(it->second.dtype == "F64");
  REQUIRE(it->second.shape == shape);
  std::vector<double> out(size_t(it->second.numel()));  // (shape)
  std::memcpy(out.data(), it->second.bytes.data(), out.size() * sizeof(double));
  return out;
}

inline double metadata_number(const SafeTensorsFile& f, const std::string& key) {
  const auto it = f.metadata.find(key);
  REQUIRE_MESSAGE(it != f.metadata.end(), "no metadata value " << key);
  return std::stod(it->second);
}

}  // namespace pulsekd::testing
