// ZIP reader: archives built here (a tiny writer: stored and zlib-deflated entries,
// optional ZIP64 records), plus truncated and corrupt variants.
#include <doctest/doctest.h>

#include <string>

#include "formats/zip_reader.h"
#include "tests/test_zip_writer.h"

using namespace pulsekd::data;
using pulsekd::testing::make_zip;

namespace {

ZipArchive open_bytes(const std::string& s) {
  return ZipArchive::from_memory(std::vector<uint8_t>(s.begin(), s.end()), "t.zip");
}
std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const ZipError& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const std::string kLong = [] {
  std::string s;
  for (int i = 0; i < 2000; ++i) s += "pulse " + std::to_string(i % 17) + "\n";
  return s;
}();

}  // namespace

TEST_CASE("zip: stored and deflated entries, names, comment") {
  const std::string z = make_zip({{"archive/data.pkl", "hello", 0}, {"archive/data/0", kLong, 8}, {"empty", "", 0}},
                                 false, "a comment PK\x05\x06 that looks like a signature");
  const ZipArchive a = open_bytes(z);
  CHECK(a.names() == std::vector<std::string>{"archive/data.pkl", "archive/data/0", "empty"});
  CHECK(a.contains("archive/data/0"));
  CHECK(!a.contains("archive/data/1"));
  CHECK(text(a.read("archive/data.pkl")) == "hello");
  CHECK(text(a.read("archive/data/0")) == kLong);
  CHECK(a.read("empty").empty());
  CHECK(a.size_of("archive/data/0") == kLong.size());
}

TEST_CASE("zip: ZIP64 end-of-central-directory and extra fields") {
  const ZipArchive a = open_bytes(make_zip({{"x/a", "abc", 0}, {"x/b", kLong, 8}}, true));
  CHECK(a.names().size() == 2);
  CHECK(text(a.read("x/a")) == "abc");
  CHECK(text(a.read("x/b")) == kLong);
}

TEST_CASE("zip: clear errors") {
  const std::string good = make_zip({{"a", "hello world", 0}, {"b", kLong, 8}});
  // Truncated anywhere: no EOCD, or the data/directory runs off the end.
  for (size_t cut : {size_t(0), size_t(10), good.size() / 2, good.size() - 1}) {
    INFO("cut at " << cut);
    const std::string e = error_of([&] { open_bytes(good.substr(0, cut)).read("b"); });
    CHECK(has(e, "t.zip"));
    CHECK((has(e, "truncated") || has(e, "not a ZIP")));
  }
  const ZipArchive a = open_bytes(good);
  CHECK(has(error_of([&] { a.read("nope"); }), "no entry named \"nope\""));
  // CRC mismatch: flip a byte of the stored data.
  std::string bad = good;
  bad[30 + 1 + 3] ^= 0x20;
  std::string e = error_of([&] { open_bytes(bad).read("a"); });
  CHECK(has(e, "CRC-32 mismatch in \"a\""));
  // Corrupt deflate stream.
  bad = good;
  const size_t b_data = 30 + 1 + 11 + 30 + 1;
  for (size_t i = 0; i < 8; ++i) bad[b_data + i] = char(0xFF);
  e = error_of([&] { open_bytes(bad).read("b"); });
  CHECK((has(e, "corrupt deflate data in \"b\"") || has(e, "CRC-32")));
  // Unsupported method: patch the central record of "a" to method 12 (bzip2).
  bad = good;
  const size_t cd = bad.rfind(std::string("PK\x01\x02", 4), bad.size() - 22 - 47);
  REQUIRE(cd != std::string::npos);
  const size_t cd_a = bad.find(std::string("PK\x01\x02", 4));
  bad[cd_a + 10] = 12;
  e = error_of([&] { open_bytes(bad).read("a"); });
  CHECK(has(e, "unsupported compression method 12"));
  CHECK(has(e, "\"a\""));
  // Central directory offset pointing outside the archive.
  bad = good;
  bad[bad.size() - 22 + 16] = char(0x7F);
  bad[bad.size() - 22 + 19] = char(0x7F);
  CHECK(has(error_of([&] { open_bytes(bad); }), "central directory"));
  // Declared deflate size impossible for its input (a zip bomb declaration).
  bad = good;
  const size_t cd_b = bad.find(std::string("PK\x01\x02", 4), cd_a + 4);
  bad[cd_b + 27] = char(0x40);  // uncompressed size ~1 GiB
  CHECK(has(error_of([&] { open_bytes(bad).read("b"); }), "impossible size"));
  CHECK(has(error_of([] { ZipArchive::open("/nonexistent/x.zip"); }), "/nonexistent/x.zip"));
}
