// The one atomic file write (checkpoints, training state, reports, sweep results): the bytes go
// to path.tmp.<pid>, which is fsynced, closed and renamed over path; then the directory is
// fsynced so the rename itself survives a crash. A reader sees the old file or the new one,
// never a partial one.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace pulsekd {

class AtomicWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// On failure the temporary is removed, an existing `path` is left unchanged, and
// AtomicWriteError names the temporary, the step that failed and the system's reason.
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, content.data(), content.size());
}

}  // namespace pulsekd
