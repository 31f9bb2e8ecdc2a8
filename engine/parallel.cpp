#include "engine/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/blas.h"

namespace pulsekd {

namespace {

// A fixed pool: worker i runs range i of the current job; the caller runs range 0.
class Pool {
 public:
  ~Pool() { resize(1); }
  int size() const { return int(workers_.size()) + 1; }
  void resize(int n) {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    const int parts = size();
    {
      std::lock_guard<std::mutex> l(m_);
      job_ = &fn;
      n_ = n;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      range(0, parts, fn);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock<std::mutex> l(m_);
    done_cv_.wait(l, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void range(int i, int parts, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t b = n_ * i / parts, e = n_ * (i + 1) / parts;
    if (b < e) fn(b, e);
  }
  void loop(int i) {
    set_blas_threads(1);
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t, int64_t)>* job;
      {
        std::unique_lock<std::mutex> l(m_);
        cv_.wait(l, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      if (!job) continue;
      try {
        range(i, size(), *job);
      } catch (...) {
        std::lock_guard<std::mutex> l(m_);
        if (!error_) error_ = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> l(m_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_num_threads(int n) {
  n = std::max(1, n);
  set_blas_threads(1);  // our workers are the parallelism; nested BLAS threads would fight them
  if (pool().size() != n) pool().resize(n);
}

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_thread) {
  if (n <= 0) return;
  if (num_threads() == 1 || n < 2 * min_per_thread) {
    fn(0, n);
    return;
  }
  pool().run(n, fn);
}

}  // namespace pulsekd
