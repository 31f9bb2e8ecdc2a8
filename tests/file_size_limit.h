// A file-size limit (RLIMIT_FSIZE) for the scope of one object: write() past `bytes` then fails
// with EFBIG, as on a full disk, even for root. SIGXFSZ is ignored meanwhile so the write
// returns the error instead of killing the process; both are restored on destruction.
#pragma once
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>

namespace pulsekd::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_) == 0);
    struct rlimit small = old_;
    small.rlim_cur = bytes;
    handler_ = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  struct rlimit old_;
  sighandler_t handler_;
};

}  // namespace pulsekd::testing
