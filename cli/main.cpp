// pulsekd: train, distil, evaluate and deploy wrist heart-rate models.
//
// Exit codes: 0 success (and --help, --version); 1 the command failed (a bad file, a failed
// run, output that could not be written, standard output included); 2 a usage error (unknown command or flag, a bad flag value) — each printed as one line
// `pulsekd: error: ...` on stderr; 130 interrupted (Ctrl-C / SIGTERM during training: the
// message says from which epoch the same command resumes).
//
// Under mpirun / srun (dist/dist.h, docs/DISTRIBUTED.md) train, distill and sweep share their
// work among the ranks; rank 0 alone prints usage errors, and a failure on any rank prints its
// error and ends every rank (MPI_Abort) with the same exit code.
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
#include "dist/dist.h"
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
  // Every rank got the same arguments (checked first), so every rank finds the same usage error.
  if (pulsekd::dist::rank() != 0) return 2;
  std::fprintf(stderr, "pulsekd: error: %s\nRun 'pulsekd --help' for the commands, 'pulsekd COMMAND --help' for their flags.\n",
               message.c_str());
  return 2;
}

// A failure while running: said once per failing rank; under MPI every rank is then ended, since
// the others may be waiting for this one.
int run_error(const std::string& message, int code) {
  namespace dist = pulsekd::dist;
  if (dist::size() == 1) {
    std::fprintf(stderr, "pulsekd: %s\n", message.c_str());
    return code;
  }
  std::fprintf(stderr, "pulsekd: (rank %d of %d) %s\n", dist::rank(), dist::size(), message.c_str());
  dist::abort_all(code);
}

// Under MPI with several ranks: the same command line on every rank, and a command that
// shares its work. An exit code, or -1 to go on.
int check_ranks(int argc, char** argv) {
  namespace dist = pulsekd::dist;
  if (dist::size() == 1) return -1;
  const std::string mismatch = dist::argument_mismatch(std::vector<std::string>(argv + 1, argv + argc));
  if (!mismatch.empty()) return usage_error(mismatch);
  const std::vector<std::string> shared = {"train", "distill", "sweep"};
  const std::string command = argc > 1 ? argv[1] : "";
  if (std::find(shared.begin(), shared.end(), command) == shared.end())
    return usage_error("'" + command + "' does not run on " + std::to_string(dist::size()) +
                       " MPI ranks: only train, distill and sweep share their work among ranks; run it without mpirun or srun");
  return -1;
}

int run_command(int argc, char** argv) {
  if (const int code = check_ranks(argc, argv); code >= 0) return code;
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
    return pulsekd::dist::rank() == 0 ? app.exit(e) : 0;
  } catch (const CLI::CallForAllHelp& e) {
    return pulsekd::dist::rank() == 0 ? app.exit(e) : 0;
  } catch (const CLI::CallForVersion& e) {
    return pulsekd::dist::rank() == 0 ? app.exit(e) : 0;
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
    return run_error(e.what(), 130);  // the shell's code for a command ended by SIGINT
  } catch (const std::exception& e) {
    // Subcommand callbacks run inside parse(); their failures are user-facing errors.
    return run_error(std::string("error: ") + e.what(), 1);
  }
  // What the command printed must have arrived: a full disk or device behind stdout is a failure.
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "pulsekd: error: standard output: write failed: %s\n", std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pulsekd::dist::init(&argc, &argv);  // joins the MPI job when mpirun or srun started this process
  const int code = run_command(argc, argv);
  pulsekd::dist::finalize();
  return code;
}
