// The safetensors format: an 8-byte little-endian header length, a JSON header
//   {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// and the raw little-endian tensor bytes after it (offsets are relative to the end of the
// header). Files we write are readable by Python's `safetensors` package: the header is
// padded with spaces to 8-byte alignment and the data of the tensors, sorted by name,
// is contiguous.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace pulsekd {

// Every malformed-file problem; the message names the file, the byte offset and what was
// expected.
class SafeTensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SafeTensor {
  std::string dtype;            // "F32", "F64", "I32", "I16", "I8", "U8", "I64" (also F16, BF16, BOOL, U16, U32, U64)
  std::vector<int64_t> shape;   // (ndim); empty = scalar
  std::vector<uint8_t> bytes;   // (numel * dtype size) little-endian, row-major

  // Copies numel(shape) floats from `data` (row-major) into an F32 tensor.
  static SafeTensor from_floats(std::vector<int64_t> shape, const float* data);
  // F32 only; any other dtype throws (no silent conversions).
  std::vector<float> to_floats() const;
  int64_t numel() const;
};

struct SafeTensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensor> tensors;
};

// Bytes per element of a dtype name; 0 for an unknown name.
size_t safetensors_dtype_size(const std::string& dtype);

// `what` names the source (a file name) in error messages.
SafeTensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& what);
SafeTensorsFile load_safetensors(const std::string& path);
// Serialises to bytes exactly as save_safetensors writes them.
std::vector<uint8_t> serialize_safetensors(const SafeTensorsFile& file);
// Atomic (engine/atomic_file.h): writes `path.tmp.<pid>`, fsyncs it, renames it over `path`,
// fsyncs the directory; on any failure the temporary is removed and an existing `path` is left
// untouched (the error is a SafeTensorsError).
void save_safetensors(const std::string& path, const SafeTensorsFile& file);

}  // namespace pulsekd
