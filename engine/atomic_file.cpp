#include "engine/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

namespace pulsekd {

namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// Writes all of [bytes, bytes + size) to fd, retrying short writes and EINTR. Returns the bytes
// written before a failure (errno set), or size.
size_t write_all(int fd, const uint8_t* bytes, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, bytes + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return done;
    }
    done += static_cast<size_t>(w);
  }
  return size;
}

// The bytes of a file; missing_ok: a missing file reads as empty. Throws naming the file.
std::string read_whole(const std::string& path, bool missing_ok) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (missing_ok && errno == ENOENT) return "";
    throw AtomicWriteError("cannot read '" + path + "': " + std::strerror(errno));
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw AtomicWriteError("cannot read '" + path + "'");
  return text;
}

// Removes the temporaries of `target` (NAME.tmp.<pid>) left by processes that no longer exist:
// a write killed between creating its temporary and renaming it (kill -9, a crash, a power
// cut). Those of this process and of live processes (a concurrent writer) are left alone.
void remove_stale_temporaries(const std::string& dir, const std::string& target) {
  const size_t slash = target.rfind('/');
  const std::string prefix = (slash == std::string::npos ? target : target.substr(slash + 1)) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() - prefix.size() > 9) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = pid_t(std::stol(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

}  // namespace

std::string output_target(const std::string& path) {
  if (path.empty()) throw AtomicWriteError("an output path is empty");
  struct stat ls;
  if (::lstat(path.c_str(), &ls) != 0) return path;  // missing: created; other errors surface at open
  if (S_ISREG(ls.st_mode)) return path;
  if (!S_ISLNK(ls.st_mode))
    throw AtomicWriteError("'" + path + "' is " + file_kind(ls.st_mode) + ", not a regular file: refusing to replace it");
  // A symbolic link: write through to the regular file it names, keeping the link.
  char resolved[PATH_MAX];
  struct stat ts;
  if (::realpath(path.c_str(), resolved) == nullptr || ::stat(resolved, &ts) != 0)
    throw AtomicWriteError("'" + path + "' is a symbolic link to a missing file: refusing to write through it");
  if (!S_ISREG(ts.st_mode))
    throw AtomicWriteError("'" + path + "' is a symbolic link to " + file_kind(ts.st_mode) + " ('" + resolved +
                           "'): refusing to replace it");
  return resolved;
}

void write_file_atomic(const std::string& path, const void* data, size_t size, mode_t mode) {
  const std::string target = output_target(path);
  const std::string tmp = target + ".tmp." + std::to_string(::getpid());
  const std::string via = target == path ? "" : " (through the link '" + path + "')";
  struct stat old;
  const bool replacing = ::stat(target.c_str(), &old) == 0;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    throw AtomicWriteError(target + via + ": cannot create the temporary " + tmp + ": " + std::strerror(errno) + " (" +
                           target + " left unchanged)");
  auto abandon = [&](const std::string& msg) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw AtomicWriteError(target + via + ": " + msg + " (temporary " + tmp + "): " + std::strerror(err) + " (" + target +
                           " left unchanged)");
  };
  if (replacing && ::fchmod(fd, old.st_mode & 07777) != 0) abandon("cannot keep the file's permissions");
  const size_t done = write_all(fd, static_cast<const uint8_t*>(data), size);  // data: (size) bytes
  if (done < size) abandon("write failed at byte " + std::to_string(done) + " of " + std::to_string(size));
  if (::fsync(fd) != 0) abandon("fsync failed");
  if (::close(fd) != 0) { fd = -1; abandon("close failed"); }
  fd = -1;
  if (::rename(tmp.c_str(), target.c_str()) != 0) abandon("rename over the file failed");
  // Make the rename itself durable.
  const size_t slash = target.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  remove_stale_temporaries(dir, target);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { ::fsync(dfd); ::close(dfd); }
}

void copy_file_atomic(const std::string& from, const std::string& to, mode_t mode) {
  write_file_atomic(to, read_whole(from, false), mode);
}

void append_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, read_whole(output_target(path), true) + text);
}

void write_output(const std::string& path, const std::string& content) {
  if (!is_stdout_path(path)) return write_file_atomic(path, content);
  // What the program printed before goes first, then the content, unbuffered and checked.
  std::cout.flush();
  if (std::fflush(stdout) != 0 || !std::cout)
    throw AtomicWriteError(std::string("standard output: write failed: ") + std::strerror(errno));
  const size_t done = write_all(STDOUT_FILENO, reinterpret_cast<const uint8_t*>(content.data()), content.size());
  if (done < content.size())
    throw AtomicWriteError("standard output: write failed at byte " + std::to_string(done) + " of " +
                           std::to_string(content.size()) + ": " + std::strerror(errno));
}

}  // namespace pulsekd
