// Helpers for implementing ops: shape errors, the graph of the inputs, axis arithmetic. Used by
// engine/ops*.cpp and by ops defined outside the engine on the same terms.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/graph.h"

namespace pulsekd::detail {

[[noreturn]] inline void fail(const char* op, const std::string& what) { throw ShapeError(std::string(op) + ": " + what); }

// The graph all defined inputs belong to. Optional inputs (biases) may be undefined Vars
// unless every input is required.
inline Graph& graph_of(const char* op, std::initializer_list<Var> vars, bool all_required = false) {
  Graph* g = nullptr;
  for (const Var& v : vars) {
    if (!v.defined()) {
      if (all_required) fail(op, "undefined input");
      continue;
    }
    if (g && v.g != g) fail(op, "inputs belong to different graphs");
    g = v.g;
  }
  if (!g) fail(op, "no defined input");
  return *g;
}

// `axis` with negative values counted from the end; throws when outside [0, ndim).
inline int norm_axis(const char* op, int axis, int ndim) {
  const int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) fail(op, "axis " + std::to_string(axis) + " out of range for " + std::to_string(ndim) + "-D");
  return a;
}

// (outer, len, inner) view of a shape around one axis.
inline void split_axis(const Shape& s, int axis, int64_t& outer, int64_t& len, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  len = s[axis];
  for (int i = axis + 1; i < s.ndim; ++i) inner *= s[i];
}

// dst (n) += src (n)
inline void add_into(real* dst, const real* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace pulsekd::detail
