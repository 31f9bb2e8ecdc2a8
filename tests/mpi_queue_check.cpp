// dist::run_queue across real MPI ranks (CTest runs it under mpiexec -np 2 and -np 3; one rank
// without it). 12 jobs of 30 ms; job k >= 6 must start after job k - 6 has finished (as a sweep
// point waits for its teacher). Checks on rank 0: every job ran exactly once and its result
// arrived; no job started before the jobs it waits for had finished (each job writes a marker
// file when it ends and looks for its prerequisite's when it starts); every rank ran at least
// one job (the queue shares the work: the first jobs wait for each other, so each must have gone
// to another rank). Prints "N passed, M failed".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dist/dist.h"

namespace fs = std::filesystem;
using pulsekd::dist::Job;

int main(int argc, char** argv) {
  pulsekd::dist::init(&argc, &argv);
  const int rank = pulsekd::dist::rank(), size = pulsekd::dist::size();
  // One directory for all ranks: rank 0's pid, known to the others through the argument check.
  const std::string dir = (fs::temp_directory_path() / ("pulsekd_mpi_queue_" + std::string(argc > 1 ? argv[1] : "x"))).string();
  if (rank == 0) fs::remove_all(dir), fs::create_directories(dir);
  // Every rank must see the directory before a job runs: a round of the argument check is a barrier.
  if (!pulsekd::dist::argument_mismatch({"barrier"}).empty()) return 2;

  constexpr int kJobs = 12, kLag = 6;
  std::vector<Job> jobs;
  for (int k = 0; k < kJobs; ++k) jobs.push_back({100 + k, k >= kLag ? std::vector<int>{100 + k - kLag} : std::vector<int>{}});
  const auto run = [&](int id) {
    const int k = id - 100;
    const bool ready = k < kLag || fs::exists(dir + "/done" + std::to_string(k - kLag));
    // The first `size` jobs wait (up to 60 s) until all of them have started: a rank runs one job
    // at a time, so they can only all start if the queue gave each to another rank, however late
    // a rank starts on a loaded machine.
    std::ofstream(dir + "/start" + std::to_string(k)) << rank;
    for (int w = 0; k < size && w < 30000; ++w) {
      int started = 0;
      for (int j = 0; j < size; ++j) started += fs::exists(dir + "/start" + std::to_string(j));
      if (started == size) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::ofstream(dir + "/done" + std::to_string(k)) << rank;
    return std::to_string(rank) + (ready ? " ready" : " early");
  };
  std::vector<std::string> results(kJobs);
  std::vector<int> seen;  // ids in the order done() saw them
  const bool holds = pulsekd::dist::run_queue(jobs, run, [&](int id, const std::string& r) {
    results[size_t(id - 100)] = r;
    seen.push_back(id);
  });

  int passed = 0, failed = 0;
  const auto check = [&](bool ok, const std::string& what) {
    ok ? ++passed : ++failed;
    if (!ok) std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  };
  if (rank == 0) {
    check(holds, "rank 0 holds the results");
    check(seen.size() == size_t(kJobs) && std::set<int>(seen.begin(), seen.end()).size() == size_t(kJobs), "every job done exactly once");
    std::set<int> ranks;
    for (int k = 0; k < kJobs; ++k) {
      check(results[size_t(k)].find(" ready") != std::string::npos,
            "job " + std::to_string(k) + " started after its prerequisite: " + results[size_t(k)]);
      ranks.insert(std::stoi(results[size_t(k)]));
    }
    check(int(ranks.size()) == size, "every one of the " + std::to_string(size) + " ranks ran a job (" + std::to_string(ranks.size()) + " did)");
  } else {
    check(!holds, "a rank other than 0 does not hold the results");
  }
  // Nested: a queue inside a job (on whichever rank gets it) runs locally, prerequisites first.
  std::string inner;
  const auto outer = [](int) {
    std::string order;
    pulsekd::dist::run_queue({{2, {1}}, {1, {}}}, [](int) { return std::string(); },
                             [&](int id, const std::string&) { order += std::to_string(id); });
    return order;
  };
  pulsekd::dist::run_queue(rank == 0 ? std::vector<Job>{{0, {}}} : std::vector<Job>{}, outer,
                           [&](int, const std::string& r) { inner = r; });
  if (rank == 0) check(inner == "12", "a nested queue runs locally, prerequisites first (order " + inner + ")");
  if (rank == 0) {
    fs::remove_all(dir);
    std::printf("%d passed, %d failed\n", passed, failed);
  }
  pulsekd::dist::finalize();
  return failed == 0 ? 0 : 1;
}
