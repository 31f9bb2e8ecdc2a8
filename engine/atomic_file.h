// The one output path for every file pulsekd writes (checkpoints, training state, logs, reports,
// plots, sweep results, generated firmware sources). The bytes go to a temporary beside the
// target (NAME.tmp.<pid>), which is written with every write checked, fsynced, closed and renamed
// over the target; then the directory is fsynced so the rename itself survives a crash. A reader
// sees the old file or the new one, never a partial one; a failure (full disk, EIO, a file-size
// limit) leaves the old file as it was. A process killed mid-write leaves its temporary behind:
// the next successful write of the same target removes the temporaries of processes that no
// longer exist. Policy on what the target may be: docs/RELIABILITY.md.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace pulsekd {

class AtomicWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The file a write to `path` replaces. A missing path is created as given; an existing regular
// file is replaced; a symbolic link to a regular file is written through (the file it names is
// replaced, the link is kept). Anything else (a directory, a device such as /dev/full, a FIFO, a
// socket, a link to one of these or to nothing) throws AtomicWriteError naming `path`: nothing
// is replaced.
std::string output_target(const std::string& path);

// On failure the temporary is removed, an existing target is left unchanged, and
// AtomicWriteError names `path`, the step that failed and the system's reason. A replaced file
// keeps its permission bits; a new one gets `mode` (less the umask).
void write_file_atomic(const std::string& path, const void* data, size_t size, mode_t mode = 0644);
inline void write_file_atomic(const std::string& path, const std::string& content, mode_t mode = 0644) {
  write_file_atomic(path, content.data(), content.size(), mode);
}

// Copies the file `from` to `to` through write_file_atomic (a read failure names `from`).
void copy_file_atomic(const std::string& from, const std::string& to, mode_t mode = 0644);
// Appends text to a file (created if missing) by rewriting it whole through write_file_atomic:
// for small logs (one line per epoch); a failure leaves the lines already there.
void append_file_atomic(const std::string& path, const std::string& text);

// A single output file given on the command line: "-" writes to standard output (each write
// checked: a full or closed stdout is an error naming it), any other path goes through
// write_file_atomic.
void write_output(const std::string& path, const std::string& content);
inline bool is_stdout_path(const std::string& path) { return path == "-"; }

}  // namespace pulsekd
