// Threads of the engine: ops split their batch over a small pool of persistent workers. The
// split is static (contiguous ranges, fixed by the thread count), so results are deterministic
// for a given thread count.
#pragma once
#include <cstdint>
#include <functional>

namespace pulsekd {

void set_num_threads(int n);  // also sets OpenBLAS to 1 thread inside our workers
int num_threads();
// Runs fn(begin, end) over [0, n) split into num_threads() contiguous ranges; returns when all
// are done. Runs inline when n is small or one thread is configured.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_thread = 1);

}  // namespace pulsekd
