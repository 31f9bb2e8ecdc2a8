// numpy arrays as pickled by numpy (any version): ndarray.__reduce__ gives
//   numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + BUILD state
//   (version, shape, dtype, is_fortran, rawdata)
// with dtype = numpy.dtype('f8', False, True) + BUILD state (3, '<', ...); protocol-5 pickles
// use numpy.core.numeric._frombuffer(buffer, dtype, shape, order). numpy 2 spells the module
// numpy._core. Decoded without executing anything.
#pragma once
#include <string>
#include <vector>

#include "formats/pickle.h"

namespace pulsekd::data {

struct NumpyArray {
  char kind = 'f';                 // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  int itemsize = 8;                // bytes per element
  bool little_endian = true;
  std::vector<int64_t> shape;      // (ndim)
  bool fortran = false;            // column-major raw data
  std::string raw;                 // (numel * itemsize) the array's bytes as pickled
  std::string dtype_text() const;  // "<f8", "|u1", ...
  int64_t numel() const;          // -1 when negative or overflowing int64
  // Values in row-major (C) order, whatever the stored order and byte order.
  std::vector<double> to_doubles() const;
};

// The globals a numpy pickle may contain (for PickleOptions::allow_global).
bool numpy_global_allowed(const std::string& module, const std::string& name);

// Decodes `v` as a numpy array; throws PickleError("<what>: <context>: expected ...").
NumpyArray numpy_array(const PyRef& v, const std::string& what, const std::string& context);

}  // namespace pulsekd::data
