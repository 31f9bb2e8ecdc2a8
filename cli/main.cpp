// pulsekd: train, distil, evaluate and deploy wrist heart-rate models.
//
// Exit codes: 0 success (and --help, --version); 1 the command failed (a bad file, a failed
// run, output that could not be written, standard output included); 2 a usage error (unknown command or flag, a bad flag value) — each printed as one line
// `pulsekd: error: ...` on stderr; 130 interrupted (Ctrl-C / SIGTERM during training: the
// message says from which epoch the same command resumes).
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "kd/trainer.h"

#ifndef PULSEKD_VERSION
#define PULSEKD_VERSION "unknown"
#endif

namespace {

// Edit distance (insertions, deletions, substitutions, adjacent transpositions) between short words.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));  // (|a|+1, |b|+1)
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// SIGINT / SIGTERM: ask training to stop after its current batch (kd::request_stop); a second
// signal ends the process at once (the handler restores the default action).
extern "C" void on_stop_signal(int sig) {
  pulsekd::kd::request_stop();
  std::signal(sig, SIG_DFL);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "pulsekd: error: %s\nRun 'pulsekd --help' for the commands, 'pulsekd COMMAND --help' for their flags.\n",
               message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pulsekd: train, distil, evaluate and deploy PPG heart-rate models (PULSE)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  app.set_version_flag("--version", std::string("pulsekd ") + PULSEKD_VERSION);
  for (auto& reg : pulsekd::cli::registrations()) reg(app);

  // An unknown command is named, with the closest known one (CLI11 would only say that a
  // subcommand is required, or print the main help for `trian --help`).
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
    std::string best;
    size_t best_d = 3;  // suggest only within two edits
    for (const std::string& n : names) {
      const size_t d = edit_distance(argv[1], n);
      if (d < best_d) best_d = d, best = n;
    }
    return usage_error("unknown command '" + std::string(argv[1]) + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
  }
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RequiredError& e) {
    if (app.get_subcommands().empty()) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      return usage_error("a command is required: " + list);
    }
    return usage_error(e.what());
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  } catch (const pulsekd::kd::Interrupted& e) {
    std::fprintf(stderr, "pulsekd: %s\n", e.what());
    return 130;  // the shell's code for a command ended by SIGINT
  } catch (const std::exception& e) {
    // Subcommand callbacks run inside parse(); their failures are user-facing errors.
    std::fprintf(stderr, "pulsekd: error: %s\n", e.what());
    return 1;
  }
  // What the command printed must have arrived: a full disk or device behind stdout is a failure.
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "pulsekd: error: standard output: write failed: %s\n", std::strerror(errno));
    return 1;
  }
  return 0;
}
