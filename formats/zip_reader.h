// Read-only ZIP archives (PKWARE APPNOTE 6.3): end-of-central-directory record (found by
// scanning back over an archive comment), ZIP64 end-of-central-directory locator/record and
// ZIP64 extra fields, central directory, local headers; entries stored (method 0) or
// deflated (method 8, raw inflate through zlib); CRC-32 checked on every read.
// Enough for PyTorch's torch.save archives and for ordinary zip files.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace pulsekd::data {

class ZipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ZipArchive {
 public:
  static ZipArchive open(const std::string& path);
  // `what` names the archive in error messages.
  static ZipArchive from_memory(std::vector<uint8_t> bytes, const std::string& what);

  std::vector<std::string> names() const;  // central-directory order
  bool contains(const std::string& name) const;
  // Uncompressed contents; throws on a missing entry, an unsupported method, corrupt data or
  // a CRC mismatch.
  std::vector<uint8_t> read(const std::string& name) const;
  // Uncompressed size as the central directory declares it (no read).
  uint64_t size_of(const std::string& name) const;
  const std::string& what() const { return what_; }

 private:
  struct Entry {
    std::string name;
    uint16_t method = 0;
    uint16_t flags = 0;
    uint32_t crc = 0;
    uint64_t comp_size = 0;
    uint64_t uncomp_size = 0;
    uint64_t local_offset = 0;   // offset of the local file header
    uint64_t central_offset = 0; // offset of its central-directory record (for messages)
  };
  std::string what_;
  std::vector<uint8_t> bytes_;  // (archive size) the whole archive
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;  // name -> entries_ index
  void parse();
  const Entry& find(const std::string& name) const;
};

}  // namespace pulsekd::data
