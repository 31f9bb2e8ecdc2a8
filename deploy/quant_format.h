// Saving and loading quantised models (safetensors + JSON metadata 'pulsekd.quant'; docs/FORMATS.md).
// Loading is a parser of user input: every inconsistency throws std::runtime_error naming the
// file (`what`) and what was expected; a loaded model has passed validate_quant_model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "deploy/quant_model.h"

namespace pulsekd::deploy {

void save_quant_model(const std::string& path, const QuantModel& q);
QuantModel load_quant_model(const std::string& path);
QuantModel parse_quant_model(const uint8_t* data, size_t size, const std::string& what);
std::vector<uint8_t> serialize_quant_model(const QuantModel& q);  // the bytes save_quant_model writes

}  // namespace pulsekd::deploy
