// libFuzzer target: a sweep configuration as `pulsekd sweep --config` reads it
// (kd::SweepConfig::parse). A rejected config must throw std::invalid_argument (whose message
// names the key); anything else escaping is a finding. An accepted one must plan its grid and
// parse again from its own JSON to the same settings.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kd/sweep.h"

using namespace pulsekd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  kd::SweepConfig c;
  try {
    c = kd::SweepConfig::parse(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  // Bounded work: plan only grids of up to 100,000 points.
  const std::vector<int> folds = c.folds.empty() ? std::vector<int>{1} : c.folds;
  const double grid = double(c.students.size()) * double(c.strategies.size()) * double(c.teachers.size() + 1) *
                      double(folds.size()) * double(c.seeds.size());
  if (grid <= 1e5) kd::plan_points(c, folds);
  const kd::SweepConfig again = kd::SweepConfig::parse(c.raw.dump());
  if (again.settings != c.settings || again.students.size() != c.students.size() || again.seeds != c.seeds) std::abort();
  return 0;
}
