// Ranks, the argument check and the job queue (dist/dist.h). Everything MPI is inside
// PULSEKD_HAVE_MPI; without it (or without a launcher) one rank runs every job locally.
#include "dist/dist.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#if PULSEKD_HAVE_MPI
// The C interface only: Open MPI's (deprecated) C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace pulsekd::dist {
namespace {

int g_rank = 0, g_size = 1;
#if PULSEKD_HAVE_MPI
bool g_mpi = false;  // MPI_Init_thread was called and MPI_Finalize not yet
#endif
thread_local bool t_in_job = false;  // inside run(): a nested run_queue runs locally

// Sets t_in_job for the duration of one job, also when it throws.
struct InJob {
  bool was = t_in_job;
  InJob() { t_in_job = true; }
  ~InJob() { t_in_job = was; }
};

// Which jobs of a list have been handed out and which have finished.
struct Queue {
  const std::vector<Job>& jobs;
  std::vector<char> started, finished;  // (jobs.size()) flags
  std::map<int, size_t> index_of;       // job id -> position in jobs

  explicit Queue(const std::vector<Job>& j) : jobs(j), started(j.size(), 0), finished(j.size(), 0) {
    for (size_t i = 0; i < j.size(); ++i)
      if (!index_of.emplace(j[i].id, i).second) throw std::logic_error("dist::run_queue: job id " + std::to_string(j[i].id) + " repeats");
  }
  bool ready(size_t i) const {
    for (int a : jobs[i].after) {
      const auto it = index_of.find(a);
      if (it != index_of.end() && !finished[it->second]) return false;
    }
    return true;
  }
  // The first job not yet handed out whose prerequisites are done, marked started; -1 if none.
  int take() {
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!started[i] && ready(i)) {
        started[i] = 1;
        return int(i);
      }
    return -1;
  }
  bool all_started() const {
    for (char s : started)
      if (!s) return false;
    return true;
  }
  void finish(int id) { finished[index_of.at(id)] = 1; }
};

bool run_local(const std::vector<Job>& jobs, const std::function<std::string(int)>& run,
               const std::function<void(int, const std::string&)>& done) {
  Queue q(jobs);
  for (int i = q.take(); i >= 0; i = q.take()) {
    std::string result;
    {
      InJob guard;
      result = run(jobs[size_t(i)].id);
    }
    q.finish(jobs[size_t(i)].id);
    done(jobs[size_t(i)].id, result);
  }
  if (!q.all_started()) throw std::logic_error("dist::run_queue: the jobs' 'after' lists form a cycle");
  return true;
}

#if PULSEKD_HAVE_MPI

uint64_t fnv1a(const std::string& s) { return hash_bytes(s.data(), s.size()); }

constexpr int kTagResult = 7101;  // worker -> rank 0: int32 id of the job finished (-1: none yet) + result bytes
constexpr int kTagJob = 7102;     // rank 0 -> worker: int32 id of the next job, kNoJob when there is none left
constexpr int kTagArgs = 7103;    // compare_ranks: the description of the first rank that differs, to rank 0
constexpr int kNoJob = -1;
constexpr int kNoResult = -1;

// Open MPI's blocking waits poll a core at 100 %; on a machine where every core trains that
// would halve a rank's speed. Every wait here tests and sleeps instead (2 ms, far below a job).
void pause() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }
void wait_sleeping(MPI_Request* req) {
  for (int flag = 0;;) {
    MPI_Test(req, &flag, MPI_STATUS_IGNORE);
    if (flag) return;
    pause();
  }
}
void send_bytes(int dest, int tag, const std::string& bytes) {
  MPI_Request r;
  MPI_Isend(bytes.data(), int(bytes.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD, &r);
  wait_sleeping(&r);
}
// Receives one message whose arrival MPI_Iprobe reported in st.
std::string recv_bytes(const MPI_Status& st) {
  int n = 0;
  MPI_Get_count(&st, MPI_BYTE, &n);
  std::string buf(size_t(n), '\0');  // (n) bytes
  MPI_Recv(buf.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return buf;
}
void send_job(int dest, int32_t id) {
  MPI_Request r;
  MPI_Isend(&id, 1, MPI_INT32_T, dest, kTagJob, MPI_COMM_WORLD, &r);
  wait_sleeping(&r);
}
std::string pack(int32_t id, const std::string& result) {
  std::string m(sizeof id, '\0');
  std::memcpy(m.data(), &id, sizeof id);
  return m + result;
}

// A rank other than 0: ask, run what rank 0 hands out, send the result with the next request.
void worker_loop(const std::function<std::string(int)>& run) {
  std::string message = pack(kNoResult, "");
  for (;;) {
    send_bytes(0, kTagResult, message);
    int32_t id = kNoJob;
    MPI_Request r;
    MPI_Irecv(&id, 1, MPI_INT32_T, 0, kTagJob, MPI_COMM_WORLD, &r);
    wait_sleeping(&r);
    if (id == kNoJob) return;
    InJob guard;
    message = pack(id, run(id));
  }
}

// Rank 0's own worker: a thread that takes jobs from the coordinator through this mailbox
// (the coordinator, on the main thread, is the only caller of MPI).
struct LocalWorker {
  std::mutex m;
  std::condition_variable cv;
  bool posted = false;   // a request (with the result of posted_id unless kNoResult) is waiting
  int32_t posted_id = kNoResult;
  std::string posted_result;
  std::exception_ptr error;
  bool assigned = false;  // the coordinator answered: assigned_id (kNoJob: stop)
  int32_t assigned_id = kNoJob;
  std::thread thread;

  void post(int32_t id, std::string result, std::exception_ptr e = nullptr) {
    std::lock_guard<std::mutex> lock(m);
    posted = true, posted_id = id, posted_result = std::move(result), error = e;
  }
  void loop(const std::function<std::string(int)>& run) {
    post(kNoResult, "");
    for (;;) {
      int32_t id;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [this] { return assigned; });
        assigned = false, id = assigned_id;
      }
      if (id == kNoJob) return;
      try {
        InJob guard;
        std::string r = run(id);
        post(id, std::move(r));
      } catch (...) {
        post(id, "", std::current_exception());
        return;
      }
    }
  }
  void assign(int32_t id) {
    {
      std::lock_guard<std::mutex> lock(m);
      assigned = true, assigned_id = id;
    }
    cv.notify_one();
  }
};

// Rank 0's main thread: collect requests and results, hand out ready jobs, release every rank
// once nothing is left to hand out.
void coordinate(Queue& q, LocalWorker& local, const std::function<void(int, const std::string&)>& done) {
  std::vector<int> waiting;  // ranks that asked and got no answer yet, in asking order
  int released = 0;
  const auto finished = [&](int32_t id, const std::string& result, int from) {
    if (id != kNoResult) {
      q.finish(id);
      done(id, result);
    }
    waiting.push_back(from);
  };
  while (released < g_size) {
    bool progress = false;
    {
      std::unique_lock<std::mutex> lock(local.m);
      if (local.posted) {
        local.posted = false;
        if (local.error) std::rethrow_exception(local.error);
        const int32_t id = local.posted_id;
        const std::string result = std::move(local.posted_result);
        lock.unlock();
        finished(id, result, 0);
        progress = true;
      }
    }
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagResult, MPI_COMM_WORLD, &flag, &st);
    if (flag) {
      const std::string m = recv_bytes(st);
      int32_t id = kNoResult;
      std::memcpy(&id, m.data(), sizeof id);
      finished(id, m.substr(sizeof id), st.MPI_SOURCE);
      progress = true;
    }
    while (!waiting.empty()) {
      const int i = q.take();
      const bool stop = i < 0 && q.all_started();
      if (i < 0 && !stop) break;  // jobs remain, waiting for running ones: the rank waits too
      const int32_t id = stop ? kNoJob : q.jobs[size_t(i)].id;
      const int to = waiting.front();
      waiting.erase(waiting.begin());
      if (to == 0) local.assign(id);
      else send_job(to, id);
      released += stop;
      progress = true;
    }
    if (int(waiting.size()) == g_size && !q.all_started())
      throw std::logic_error("dist::run_queue: the jobs' 'after' lists form a cycle");
    if (!progress) pause();
  }
}

// Every rank leaves a queue together: a rank released early must not send its first request of
// the next queue while rank 0 still collects this one's results (it would be taken for a
// request of this queue).
void barrier_sleeping() {
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  wait_sleeping(&r);
}

bool run_distributed(const std::vector<Job>& jobs, const std::function<std::string(int)>& run,
                     const std::function<void(int, const std::string&)>& done) {
  if (g_rank != 0) {
    worker_loop(run);
    barrier_sleeping();
    return false;
  }
  Queue q(jobs);
  LocalWorker local;
  local.thread = std::thread([&] { local.loop(run); });
  try {
    coordinate(q, local, done);
  } catch (...) {
    // The job ends here (the caller aborts every rank); a running job cannot be joined.
    local.thread.detach();
    throw;
  }
  local.thread.join();
  barrier_sleeping();
  return true;
}

#endif  // PULSEKD_HAVE_MPI

}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

bool compiled_with_mpi() {
#if PULSEKD_HAVE_MPI
  return true;
#else
  return false;
#endif
}

void init(int* argc, char*** argv) {
#if PULSEKD_HAVE_MPI
  // mpirun (Open MPI), srun with PMIx or PMI-2, and MPICH's hydra set one of these in each rank.
  const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
  bool launched = false;
  for (const char* v : vars) launched = launched || std::getenv(v) != nullptr;
  if (!launched || g_mpi) return;
  int provided = 0;
  // Only the main thread calls MPI (rank 0's worker thread talks to it through memory).
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
  (void)argc, (void)argv;
#endif
}

void finalize() {
#if PULSEKD_HAVE_MPI
  if (!g_mpi) return;
  barrier_sleeping();
  MPI_Finalize();
  g_mpi = false;
#endif
}

void abort_all(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#if PULSEKD_HAVE_MPI
  if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

int rank() { return g_rank; }
int size() { return g_size; }

Disagreement compare_ranks(const std::string& value, const std::string& shown) {
  Disagreement d;
  if (g_size == 1) return d;
#if PULSEKD_HAVE_MPI
  uint64_t h = fnv1a(value);
  std::vector<uint64_t> all(size_t(g_size), 0);  // (size) hashes, one per rank
  MPI_Allgather(&h, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  for (int r = 1; r < g_size && d.rank < 0; ++r)
    if (all[size_t(r)] != all[0]) d.rank = r;
  if (d.rank < 0) return d;
  if (g_rank == d.rank) send_bytes(0, kTagArgs, shown);
  if (g_rank != 0) return d;
  MPI_Status st;
  MPI_Probe(d.rank, kTagArgs, MPI_COMM_WORLD, &st);
  d.mine = shown;
  d.theirs = recv_bytes(st);
#else
  (void)value, (void)shown;
#endif
  return d;
}

std::string argument_mismatch(const std::vector<std::string>& args) {
  std::string joined, shown;  // NUL-separated for the hash; space-separated for the message
  for (const std::string& a : args) joined += a + '\0', shown += (shown.empty() ? "" : " ") + a;
  const Disagreement d = compare_ranks(joined, shown);
  if (d.rank < 0) return "";
  if (g_rank != 0) return "the ranks were started with different arguments (rank 0 reports them)";
  return "the " + std::to_string(g_size) + " ranks were started with different arguments: rank 0 runs 'pulsekd " + d.mine +
         "', rank " + std::to_string(d.rank) + " runs 'pulsekd " + d.theirs +
         "'; every rank must run the same command (check the mpirun or srun command line)";
}

bool run_queue(const std::vector<Job>& jobs, const std::function<std::string(int id)>& run,
               const std::function<void(int id, const std::string& result)>& done) {
#if PULSEKD_HAVE_MPI
  if (g_size > 1 && !t_in_job) return run_distributed(jobs, run, done);
#endif
  return run_local(jobs, run, done);
}

}  // namespace pulsekd::dist
