#include "formats/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace pulsekd::data {
namespace {

constexpr uint32_t kSigLocal = 0x04034b50;
constexpr uint32_t kSigCentral = 0x02014b50;
constexpr uint32_t kSigEocd = 0x06054b50;
constexpr uint32_t kSigZip64Eocd = 0x06064b50;
constexpr uint32_t kSigZip64Locator = 0x07064b50;
// Deflate cannot expand data by more than ~1032:1; a larger declared ratio is a lie, and
// refusing it bounds the memory a hostile archive can make us allocate.
constexpr uint64_t kMaxDeflateRatio = 1032;

[[noreturn]] void fail(const std::string& what, uint64_t offset, const std::string& msg) {
  std::ostringstream os;
  os << what << ": byte " << offset << ": " << msg;
  throw ZipError(os.str());
}

// Bounds-checked little-endian reads from the archive image.
struct Reader {
  const std::vector<uint8_t>& b;
  const std::string& what;
  void need(uint64_t off, uint64_t n, const char* expected) const {
    if (off > b.size() || n > b.size() - off)
      fail(what, off, std::string("archive truncated: expected ") + expected + " (" +
                          std::to_string(n) + " bytes), archive has " + std::to_string(b.size()) +
                          " bytes");
  }
  uint16_t u16(uint64_t off) const { return uint16_t(b[off] | (b[off + 1] << 8)); }
  uint32_t u32(uint64_t off) const {
    return uint32_t(b[off]) | (uint32_t(b[off + 1]) << 8) | (uint32_t(b[off + 2]) << 16) |
           (uint32_t(b[off + 3]) << 24);
  }
  uint64_t u64(uint64_t off) const { return u32(off) | (uint64_t(u32(off + 4)) << 32); }
};

}  // namespace

ZipArchive ZipArchive::open(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ZipError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw ZipError(path + ": read error");
  return from_memory(std::move(bytes), path);
}

ZipArchive ZipArchive::from_memory(std::vector<uint8_t> bytes, const std::string& what) {
  ZipArchive z;
  z.what_ = what;
  z.bytes_ = std::move(bytes);
  z.parse();
  return z;
}

void ZipArchive::parse() {
  const Reader r{bytes_, what_};
  const uint64_t size = bytes_.size();
  if (size < 22) fail(what_, 0, "not a ZIP archive: expected at least the 22-byte end-of-central-directory record, archive has " + std::to_string(size) + " bytes");
  // The EOCD is the last 22 bytes plus an optional comment of up to 65535 bytes.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t p = size - 22 + 1; p-- > lowest;) {
    if (r.u32(p) == kSigEocd && p + 22 + r.u16(p + 20) == size) { eocd = p; break; }
  }
  if (eocd == UINT64_MAX)
    fail(what_, size, "not a ZIP archive or truncated: no end-of-central-directory record (signature PK\\5\\6) found");
  uint64_t n_entries = r.u16(eocd + 10);
  uint64_t cd_size = r.u32(eocd + 12);
  uint64_t cd_offset = r.u32(eocd + 16);
  // ZIP64: a locator sits just before the EOCD; it points at the ZIP64 EOCD record.
  if (eocd >= 20 && r.u32(eocd - 20) == kSigZip64Locator) {
    const uint64_t z64 = r.u64(eocd - 20 + 8);
    r.need(z64, 56, "ZIP64 end-of-central-directory record");
    if (r.u32(z64) != kSigZip64Eocd)
      fail(what_, z64, "expected ZIP64 end-of-central-directory signature PK\\6\\6");
    n_entries = r.u64(z64 + 32);
    cd_size = r.u64(z64 + 40);
    cd_offset = r.u64(z64 + 48);
  } else if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    fail(what_, eocd, "end-of-central-directory needs ZIP64 values but no ZIP64 locator precedes it");
  }
  r.need(cd_offset, cd_size, "central directory");
  // Every central record is at least 46 bytes: bounds the entry count before reserving.
  if (n_entries > cd_size / 46)
    fail(what_, eocd, "central directory of " + std::to_string(cd_size) + " bytes cannot hold " +
                          std::to_string(n_entries) + " entries");
  entries_.reserve(n_entries);
  uint64_t p = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < n_entries; ++i) {
    if (p > cd_end || cd_end - p < 46) fail(what_, p, "central directory truncated: expected record " + std::to_string(i));
    if (r.u32(p) != kSigCentral) fail(what_, p, "expected central-directory signature PK\\1\\2 for entry " + std::to_string(i));
    Entry e;
    e.central_offset = p;
    e.flags = r.u16(p + 8);
    e.method = r.u16(p + 10);
    e.crc = r.u32(p + 16);
    e.comp_size = r.u32(p + 20);
    e.uncomp_size = r.u32(p + 24);
    const uint16_t name_len = r.u16(p + 28), extra_len = r.u16(p + 30), comment_len = r.u16(p + 32);
    e.local_offset = r.u32(p + 42);
    const uint64_t rec_len = 46ull + name_len + extra_len + comment_len;
    if (cd_end - p < rec_len) fail(what_, p, "central-directory record " + std::to_string(i) + " runs past the directory end");
    e.name.assign(reinterpret_cast<const char*>(bytes_.data() + p + 46), name_len);
    // ZIP64 extra field (id 1): 8-byte values, in this order, only for fields set to 0xFFFFFFFF.
    uint64_t x = p + 46 + name_len;
    const uint64_t x_end = x + extra_len;
    while (x_end - x >= 4) {
      const uint16_t id = r.u16(x), len = r.u16(x + 2);
      if (x_end - x - 4 < len) fail(what_, x, "extra field of entry \"" + e.name + "\" runs past its record");
      if (id == 0x0001) {
        uint64_t q = x + 4;
        const uint64_t q_end = q + len;
        auto take = [&](uint64_t& field, const char* which) {
          if (q_end - q < 8) fail(what_, q, std::string("ZIP64 extra field of \"") + e.name + "\" lacks the " + which);
          field = r.u64(q);
          q += 8;
        };
        if (e.uncomp_size == 0xFFFFFFFF) take(e.uncomp_size, "uncompressed size");
        if (e.comp_size == 0xFFFFFFFF) take(e.comp_size, "compressed size");
        if (e.local_offset == 0xFFFFFFFF) take(e.local_offset, "local header offset");
      }
      x += 4ull + len;
    }
    if (e.flags & 1) fail(what_, p, "entry \"" + e.name + "\" is encrypted (not supported)");
    if (index_.count(e.name)) fail(what_, p, "duplicate entry name \"" + e.name + "\"");
    index_[e.name] = entries_.size();
    entries_.push_back(std::move(e));
    p += rec_len;
  }
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

bool ZipArchive::contains(const std::string& name) const { return index_.count(name) != 0; }

const ZipArchive::Entry& ZipArchive::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw ZipError(what_ + ": no entry named \"" + name + "\" in the archive");
  return entries_[it->second];
}

uint64_t ZipArchive::size_of(const std::string& name) const { return find(name).uncomp_size; }

std::vector<uint8_t> ZipArchive::read(const std::string& name) const {
  const Entry& e = find(name);
  const Reader r{bytes_, what_};
  r.need(e.local_offset, 30, ("local header of \"" + name + "\"").c_str());
  if (r.u32(e.local_offset) != kSigLocal)
    fail(what_, e.local_offset, "expected local-header signature PK\\3\\4 for \"" + name + "\"");
  // The local name/extra lengths may differ from the central ones (PyTorch pads with extra).
  const uint64_t data = e.local_offset + 30 + r.u16(e.local_offset + 26) + r.u16(e.local_offset + 28);
  r.need(data, e.comp_size, ("data of \"" + name + "\"").c_str());
  const uint8_t* src = bytes_.data() + data;
  std::vector<uint8_t> out;  // (uncomp_size)
  if (e.method == 0) {
    if (e.comp_size != e.uncomp_size)
      fail(what_, e.central_offset, "stored entry \"" + name + "\" declares compressed size " +
                                        std::to_string(e.comp_size) + " != uncompressed size " +
                                        std::to_string(e.uncomp_size));
    out.assign(src, src + e.comp_size);
  } else if (e.method == 8) {
    if (e.uncomp_size > e.comp_size * kMaxDeflateRatio + 64)
      fail(what_, e.central_offset, "deflated entry \"" + name + "\" declares an impossible size " +
                                        std::to_string(e.uncomp_size) + " for " +
                                        std::to_string(e.comp_size) + " compressed bytes");
    out.resize(e.uncomp_size);
    z_stream zs{};
    if (inflateInit2(&zs, -15) != Z_OK) throw ZipError(what_ + ": zlib inflateInit2 failed");
    // zlib counts in uInt; feed and drain in chunks so > 4 GiB entries work too.
    uint64_t in_done = 0, out_done = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt in_chunk = uInt(std::min<uint64_t>(e.comp_size - in_done, 1u << 30));
      const uInt out_chunk = uInt(std::min<uint64_t>(e.uncomp_size - out_done, 1u << 30));
      zs.next_in = const_cast<Bytef*>(src + in_done);
      zs.avail_in = in_chunk;
      zs.next_out = out.data() + out_done;
      zs.avail_out = out_chunk;
      if (in_chunk == 0 && out_chunk == 0) { rc = Z_BUF_ERROR; break; }
      rc = inflate(&zs, Z_NO_FLUSH);
      in_done += in_chunk - zs.avail_in;
      out_done += out_chunk - zs.avail_out;
      if (rc == Z_OK && zs.avail_in == in_chunk && zs.avail_out == out_chunk) { rc = Z_BUF_ERROR; break; }
    }
    const std::string msg = zs.msg ? zs.msg : "";
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_done != e.uncomp_size)
      fail(what_, data + in_done, "corrupt deflate data in \"" + name + "\" (zlib code " +
                                      std::to_string(rc) + (msg.empty() ? "" : ": " + msg) +
                                      "; inflated " + std::to_string(out_done) + " of " +
                                      std::to_string(e.uncomp_size) + " bytes)");
  } else {
    fail(what_, e.central_offset, "entry \"" + name + "\" uses unsupported compression method " +
                                      std::to_string(e.method) + " (only 0 stored and 8 deflate)");
  }
  // crc32 takes uInt lengths: checksum in chunks.
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t o = 0; o < out.size();) {
    const uInt n = uInt(std::min<uint64_t>(out.size() - o, 1u << 30));
    crc = crc32(crc, out.data() + o, n);
    o += n;
  }
  if (uint32_t(crc) != e.crc) {
    std::ostringstream os;
    os << "CRC-32 mismatch in \"" << name << "\": expected " << std::hex << e.crc << ", computed " << uint32_t(crc);
    fail(what_, data, os.str());
  }
  return out;
}

}  // namespace pulsekd::data
