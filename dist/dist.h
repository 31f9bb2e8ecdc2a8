// The processes of one pulsekd run: a single process, or the ranks of an MPI job started by
// mpirun or Slurm's srun (docs/DISTRIBUTED.md). dist/dist.cpp is the only file that includes
// mpi.h. Built without MPI (PULSEKD_HAVE_MPI unset), or started without an MPI launcher, there
// is one rank and every call below does exactly what the single process did before: no MPI
// library call at all.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pulsekd::dist {

// True when this build has MPI (Open MPI found at configure time).
bool compiled_with_mpi();
// Joins the MPI job when an MPI launcher started this process (its environment says so), else
// does nothing. Call once, first in main, before any thread starts.
void init(int* argc, char*** argv);
// Leaves the MPI job: waits for every rank (sleeping, not spinning a core), then finalises.
// Does nothing with one rank or without init.
void finalize();
// Ends every rank of the job at once with this exit code (MPI_Abort), or exits the single process.
[[noreturn]] void abort_all(int code);
int rank();  // 0 .. size() - 1
int size();  // 1 without MPI

// FNV-1a over bytes, continuing from h: the same 64 bits on every node.
uint64_t hash_bytes(const void* data, size_t n, uint64_t h = 1469598103934665603ull);

// Collective: compares `value` on all ranks (its 64-bit hash, gathered on every rank). rank -1
// when every rank has the same; otherwise the first rank that differs, and on rank 0 its own
// `shown` and that rank's (a short description of the value, for the message).
struct Disagreement {
  int rank = -1;
  std::string mine, theirs;  // filled on rank 0 only
};
Disagreement compare_ranks(const std::string& value, const std::string& shown);
// Collective: "" when every rank got the same command line. Otherwise rank 0 gets a message
// naming the first rank that differs and both command lines; the other ranks a placeholder.
std::string argument_mismatch(const std::vector<std::string>& args);

struct Job {
  int id = 0;              // passed to run(); unique within the list
  std::vector<int> after;  // ids of jobs that must finish first (ids not in the list count as done)
};

// Runs jobs across the ranks. Collective: every rank calls it, and only rank 0's list is read.
// Rank 0 hands the first job of the list whose `after` jobs are done to the rank that asks (a
// rank asks when it starts and each time it finishes one), so fast ranks take more jobs; rank 0
// works too, on a second thread, while its main thread hands out jobs. run(id) does one job and
// returns its result bytes, which travel to rank 0, where done(id, result) is called on the main
// thread as each job finishes. With one rank, or when called from inside a job (a nested run),
// the jobs run here one after the other in list order (as far as `after` allows), done() after
// each. Every rank returns once all jobs are done (a barrier, sleeping), so successive queues do
// not mix. Returns true where done() was called for every job (rank 0, or a local run). A job that
// throws on rank 0 rethrows here; on another rank the exception leaves that rank's call, and the
// caller must end the job (abort_all), since the others wait for it.
bool run_queue(const std::vector<Job>& jobs, const std::function<std::string(int id)>& run,
               const std::function<void(int id, const std::string& result)>& done);

}  // namespace pulsekd::dist
