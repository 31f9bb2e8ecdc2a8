#include "engine/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace pulsekd {

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw AtomicWriteError(tmp + ": cannot create: " + std::strerror(errno));
  auto abandon = [&](const std::string& msg) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw AtomicWriteError(tmp + ": " + msg + ": " + std::strerror(err) + " (" + path + " left unchanged)");
  };
  const uint8_t* bytes = static_cast<const uint8_t*>(data);  // (size)
  size_t done = 0;
  while (done < size) {
    ssize_t w = ::write(fd, bytes + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) abandon("write failed at byte " + std::to_string(done));
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) abandon("fsync failed");
  if (::close(fd) != 0) { fd = -1; abandon("close failed"); }
  fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) abandon("rename to " + path + " failed");
  // Make the rename itself durable.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { ::fsync(dfd); ::close(dfd); }
}

}  // namespace pulsekd
