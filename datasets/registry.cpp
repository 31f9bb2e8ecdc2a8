#include "datasets/registry.h"

#include <stdexcept>

#include "datasets/dalia.h"
#include "datasets/spc2015.h"
#include "datasets/synth.h"
#include "datasets/wesad.h"

namespace pulsekd::data {

const char* dataset_spec_help() {
  return "synth[:SEED] | spc2015:DIR | dalia:DIR | wesad:DIR";
}

WindowSet load_dataset(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const auto need_dir = [&] {
    if (arg.empty())
      throw std::runtime_error("dataset spec '" + spec + "': " + kind + " needs a directory (" + kind + ":DIR)");
  };
  if (kind == "synth") {
    SynthOptions opt;
    if (colon != std::string::npos) {
      size_t used = 0;
      unsigned long long seed = 0;
      try {
        seed = std::stoull(arg, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (arg.empty() || used != arg.size() || arg[0] == '-')
        throw std::runtime_error("dataset spec '" + spec + "': the seed after synth: must be a non-negative integer");
      opt.seed = seed;
    }
    return make_synthetic(opt);
  }
  if (kind == "spc2015") {
    need_dir();
    return load_spc2015(arg);
  }
  if (kind == "dalia") {
    need_dir();
    WindowSet ws = load_dalia(arg, DaliaOptions{});
    ws.source = "dalia:" + arg;  // loso_folds(..., "auto") keys on this prefix
    return ws;
  }
  if (kind == "wesad") {
    need_dir();
    WindowSet ws = load_wesad(arg, WesadOptions{});
    ws.source = "wesad:" + arg;
    return ws;
  }
  throw std::runtime_error("unknown dataset spec '" + spec + "': expected one of " + dataset_spec_help());
}

}  // namespace pulsekd::data
