// A tiny ZIP writer for tests: stored (0) and raw-deflated (8) entries, optional ZIP64
// records, an archive comment. Shared by test_zip.cpp and test_torch_import.cpp.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace pulsekd::testing {

struct Item { std::string name, data; int method; };

inline void le(std::string& o, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) o += char((v >> (8 * i)) & 0xFF);
}

inline std::string deflate_raw(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  std::string out(deflateBound(&zs, uLong(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
  zs.avail_out = uInt(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// zip64: write the ZIP64 EOCD record + locator, and 0xFFFFFFFF in the central sizes/offset
// with the real values in a ZIP64 extra field (as large torch.save archives do).
inline std::string make_zip(const std::vector<Item>& items, bool zip64 = false, const std::string& comment = "") {
  std::string out, central;
  for (const Item& it : items) {
    const std::string body = it.method == 8 ? deflate_raw(it.data) : it.data;
    const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(it.data.data()), uInt(it.data.size())));
    const uint64_t local = out.size();
    le(out, 0x04034b50, 4); le(out, 20, 2); le(out, 0, 2); le(out, uint64_t(it.method), 2);
    le(out, 0, 4); le(out, crc, 4); le(out, body.size(), 4); le(out, it.data.size(), 4);
    le(out, it.name.size(), 2); le(out, 0, 2);
    out += it.name + body;
    le(central, 0x02014b50, 4); le(central, 45, 2); le(central, 45, 2); le(central, 0, 2);
    le(central, uint64_t(it.method), 2); le(central, 0, 4); le(central, crc, 4);
    le(central, zip64 ? 0xFFFFFFFF : body.size(), 4); le(central, zip64 ? 0xFFFFFFFF : it.data.size(), 4);
    le(central, it.name.size(), 2); le(central, zip64 ? 28 : 0, 2); le(central, 0, 2);
    le(central, 0, 2); le(central, 0, 2); le(central, 0, 4); le(central, zip64 ? 0xFFFFFFFF : local, 4);
    central += it.name;
    if (zip64) {
      le(central, 1, 2); le(central, 24, 2);
      le(central, it.data.size(), 8); le(central, body.size(), 8); le(central, local, 8);
    }
  }
  const uint64_t cd_off = out.size();
  out += central;
  if (zip64) {
    const uint64_t z64 = out.size();
    le(out, 0x06064b50, 4); le(out, 44, 8); le(out, 45, 2); le(out, 45, 2); le(out, 0, 4); le(out, 0, 4);
    le(out, items.size(), 8); le(out, items.size(), 8); le(out, central.size(), 8); le(out, cd_off, 8);
    le(out, 0x07064b50, 4); le(out, 0, 4); le(out, z64, 8); le(out, 1, 4);
  }
  le(out, 0x06054b50, 4); le(out, 0, 2); le(out, 0, 2);
  le(out, zip64 ? 0xFFFF : items.size(), 2); le(out, zip64 ? 0xFFFF : items.size(), 2);
  le(out, zip64 ? 0xFFFFFFFF : central.size(), 4); le(out, zip64 ? 0xFFFFFFFF : cd_off, 4);
  le(out, comment.size(), 2);
  return out + comment;
}

}  // namespace pulsekd::testing
