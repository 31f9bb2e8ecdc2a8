// libFuzzer target: the pickle VM, then the numpy decoder on every value it built.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "formats/pickle.h"
#include "formats/pickle_numpy.h"

using namespace pulsekd::data;

namespace {
void walk(const PyRef& v, int depth) {
  if (!v || depth > 600) return;
  try {
    numpy_array(v, "fuzz", "value").to_doubles();
  } catch (const std::exception&) {
  }
  v->type_name();
  for (const auto& c : v->items) walk(c, depth + 1);
  for (const auto& c : v->keys) walk(c, depth + 1);
  walk(v->args, depth + 1);
  walk(v->state, depth + 1);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PickleOptions opt;
  // Any global may appear here, so REDUCE/BUILD/NEWOBJ paths are reachable.
  opt.allow_global = [](const std::string&, const std::string&) { return true; };
  try {
    walk(unpickle(data, size, "fuzz", opt), 0);
  } catch (const std::exception&) {
  }
  return 0;
}
