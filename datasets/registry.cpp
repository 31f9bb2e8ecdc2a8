#include "datasets/registry.h"

#include <cmath>
#include <map>
#include <stdexcept>

#include "datasets/dalia.h"
#include "datasets/motion.h"
#include "datasets/spc2015.h"
#include "datasets/subsets.h"
#include "datasets/synth.h"
#include "datasets/wesad.h"

namespace pulsekd::data {

const char* dataset_spec_help() {
  return "synth[:SEED] | motion[:SEED] | spc2015:DIR | dalia:DIR | wesad:DIR, options after '?': "
         "synth?subjects=N&minutes=M, motion?seeds=N&gain=G&seconds=S, spc2015:DIR?extra=0&ppg=mean&ppg2=1, dalia:DIR?antialias=1; "
         "a subject filter on real sets: ?subjects=LIST (e.g. 1-9,12 or DATA_01_TYPE01), on any set: ?select=LIST";
}

namespace {

// "key=value&key=value" after a '?' at the end of a spec.
std::map<std::string, std::string> parse_options(const std::string& spec, const std::string& text) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    const size_t amp = text.find('&', pos);
    const std::string item = text.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::runtime_error("dataset spec '" + spec + "': option '" + item + "' must be key=value");
    out[item.substr(0, eq)] = item.substr(eq + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

double number_option(const std::string& spec, const std::string& key, const std::string& v, double lo, double hi) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || !(x >= lo && x <= hi))
    throw std::runtime_error("dataset spec '" + spec + "': option " + key + "=" + v + " must be a number in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

void reject_unknown(const std::string& spec, const std::map<std::string, std::string>& opts,
                    std::initializer_list<const char*> known) {
  for (auto& [k, v] : opts) {
    bool ok = false;
    for (const char* kk : known) ok = ok || k == kk;
    if (!ok) throw std::runtime_error("dataset spec '" + spec + "': unknown option '" + k + "'");
  }
}

WindowSet load_unfiltered(const std::string& full_spec, std::map<std::string, std::string> opts) {
  const std::string& spec = full_spec;
  const size_t q = full_spec.find('?');
  const std::string base = full_spec.substr(0, q);
  const size_t colon = base.find(':');
  const std::string kind = base.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : base.substr(colon + 1);
  const auto need_dir = [&] {
    if (arg.empty())
      throw std::runtime_error("dataset spec '" + spec + "': " + kind + " needs a directory (" + kind + ":DIR)");
  };
  const auto seed_arg = [&](uint64_t fallback) -> uint64_t {
    if (colon == std::string::npos) return fallback;
    size_t used = 0;
    unsigned long long seed = 0;
    try {
      seed = std::stoull(arg, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (arg.empty() || used != arg.size() || arg[0] == '-')
      throw std::runtime_error("dataset spec '" + spec + "': the seed after " + kind + ": must be a non-negative integer");
    return seed;
  };
  if (kind == "motion") {  // synthetic non-running motion (datasets/motion.h)
    MotionOptions opt;
    opt.first_seed = seed_arg(1);
    reject_unknown(spec, opts, {"seeds", "gain", "seconds"});
    if (opts.count("seeds")) {
      const double n = number_option(spec, "seeds", opts.at("seeds"), 1, 100);
      if (n != std::floor(n)) throw std::runtime_error("dataset spec '" + spec + "': option seeds must be a whole number");
      opt.seeds = int(n);
    }
    if (opts.count("gain")) opt.artefact_gain = number_option(spec, "gain", opts.at("gain"), 0, 10);
    if (opts.count("seconds")) opt.seconds = number_option(spec, "seconds", opts.at("seconds"), 8, 36000);
    WindowSet ws = make_motion_set(opt);
    ws.source = full_spec;
    return ws;
  }
  if (kind == "synth") {
    SynthOptions opt;
    opt.seed = seed_arg(opt.seed);
    reject_unknown(spec, opts, {"subjects", "minutes"});
    if (opts.count("subjects")) opt.subjects = int(number_option(spec, "subjects", opts.at("subjects"), 2, 1000));
    if (opts.count("minutes")) opt.minutes = number_option(spec, "minutes", opts.at("minutes"), 0.2, 600);
    WindowSet ws = make_synthetic(opt);
    ws.source = full_spec;
    return ws;
  }
  if (kind == "spc2015") {
    need_dir();
    reject_unknown(spec, opts, {"extra", "ppg", "ppg2"});
    Spc2015Options o;
    if (opts.count("extra")) o.include_extra = number_option(spec, "extra", opts.at("extra"), 0, 1) != 0;
    if (opts.count("ppg")) {
      if (opts.at("ppg") == "mean") o.ppg = Spc2015Options::Mean12;
      else if (opts.at("ppg") == "ppg1") o.ppg = Spc2015Options::Ppg1;
      else throw std::runtime_error("dataset spec '" + spec + "': ppg must be ppg1 or mean");
    }
    if (opts.count("ppg2")) o.keep_ppg2 = number_option(spec, "ppg2", opts.at("ppg2"), 0, 1) != 0;
    WindowSet ws = load_spc2015(arg, o);
    ws.source = full_spec;
    return ws;
  }
  if (kind == "dalia") {
    need_dir();
    reject_unknown(spec, opts, {"antialias"});
    DaliaOptions o;
    if (opts.count("antialias")) o.antialias_bvp = number_option(spec, "antialias", opts.at("antialias"), 0, 1) != 0;
    WindowSet ws = load_dalia(arg, o);
    ws.source = "dalia:" + arg;  // loso_folds(..., "auto") keys on this prefix (and the 15 subjects)
    return ws;
  }
  if (kind == "wesad") {
    need_dir();
    reject_unknown(spec, opts, {});
    WindowSet ws = load_wesad(arg, WesadOptions{});
    ws.source = "wesad:" + arg;
    return ws;
  }
  throw std::runtime_error("unknown dataset spec '" + spec + "': expected one of " + dataset_spec_help());
}

}  // namespace

WindowSet load_dataset(const std::string& full_spec) {
  const size_t q = full_spec.find('?');
  auto opts = q == std::string::npos ? std::map<std::string, std::string>{} : parse_options(full_spec, full_spec.substr(q + 1));
  // The subject filter applies after loading, whatever the kind: `select` anywhere, and
  // `subjects` on real sets (synth?subjects=N is the synthetic set's subject count).
  const bool synth = full_spec.rfind("synth", 0) == 0;  // (motion has no subjects= option of its own)
  std::string filter_key;
  for (const char* key : {"select", "subjects"})
    if (opts.count(key) && !(synth && std::string(key) == "subjects")) {
      if (!filter_key.empty())
        throw std::runtime_error("dataset spec '" + full_spec + "': give either subjects= or select=, not both");
      filter_key = key;
    }
  const std::string list = filter_key.empty() ? "" : opts.at(filter_key);
  if (!filter_key.empty()) opts.erase(filter_key);
  WindowSet ws = load_unfiltered(full_spec, opts);
  if (filter_key.empty()) return ws;
  const auto chosen = parse_subject_list(ws, list, "dataset spec '" + full_spec + "', " + filter_key + "=");
  WindowSet sub = select_subjects(ws, chosen);
  sub.source = full_spec;
  return sub;
}

}  // namespace pulsekd::data
