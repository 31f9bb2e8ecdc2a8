// Helpers shared by the op implementations (engine/ops.cpp, engine/kd_losses.cpp).
#pragma once
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

}  // namespace pulsekd::detail
