#include "engine/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/tensor.h"

namespace pulsekd {
namespace {

// The Rust reference implementation refuses larger headers; so do we (bounds memory).
constexpr uint64_t kMaxHeaderBytes = 100u * 1024u * 1024u;

[[noreturn]] void fail(const std::string& what, uint64_t offset, const std::string& msg) {
  std::ostringstream os;
  os << what << ": byte " << offset << ": " << msg;
  throw SafeTensorsError(os.str());
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

size_t safetensors_dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

int64_t SafeTensor::numel() const {
  int64_t n = checked_numel(shape);
  if (n < 0) throw SafeTensorsError("safetensors: invalid shape " + shape_text(shape));
  return n;
}

SafeTensor SafeTensor::from_floats(std::vector<int64_t> shape, const float* data) {
  SafeTensor t;
  t.dtype = "F32";
  t.shape = std::move(shape);
  const int64_t n = t.numel();
  t.bytes.resize(static_cast<size_t>(n) * 4);  // (n * 4) little-endian float32
  // Host is little-endian (x86-64 / AArch64 Linux), the file format is too: a plain copy.
  if (n > 0) std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

std::vector<float> SafeTensor::to_floats() const {
  if (dtype != "F32")
    throw SafeTensorsError("safetensors: tensor has dtype " + dtype + ", expected F32");
  const int64_t n = numel();
  if (bytes.size() != static_cast<size_t>(n) * 4)
    throw SafeTensorsError("safetensors: tensor of shape " + shape_text(shape) + " holds " +
                           std::to_string(bytes.size()) + " bytes, expected " +
                           std::to_string(n * 4));
  std::vector<float> out(static_cast<size_t>(n));  // (numel) row-major
  if (n > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

SafeTensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 8) fail(what, size, "file truncated: expected an 8-byte header length, file has " +
                                     std::to_string(size) + " bytes");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | data[i];
  if (hlen > kMaxHeaderBytes) fail(what, 0, "header length " + std::to_string(hlen) +
                                               " exceeds the 100 MiB limit");
  if (hlen > size - 8)
    fail(what, 0, "header length " + std::to_string(hlen) + " reaches beyond the end of the file (" +
                      std::to_string(size) + " bytes)");
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = size - data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + data_start);
  } catch (const nlohmann::json::parse_error& e) {
    fail(what, 8 + (e.byte > 0 ? e.byte - 1 : 0), std::string("bad JSON header: ") + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number beyond double (1e999): out_of_range
    fail(what, 8, std::string("bad JSON header: ") + e.what());
  }
  if (!header.is_object()) fail(what, 8, "JSON header is not an object");

  SafeTensorsFile out;
  struct Span { uint64_t begin, end; std::string name; };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(what, 8, "__metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(what, 8, "__metadata__ value of \"" + m.key() + "\" is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\": ";
    if (!v.is_object()) fail(what, 8, where + "entry is not an object");
    auto dt = v.find("dtype"), sh = v.find("shape"), off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail(what, 8, where + "missing string \"dtype\"");
    if (sh == v.end() || !sh->is_array()) fail(what, 8, where + "missing array \"shape\"");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      fail(what, 8, where + "missing \"data_offsets\" [begin, end]");
    SafeTensor t;
    t.dtype = dt->get<std::string>();
    const size_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) fail(what, 8, where + "unknown dtype \"" + t.dtype +
                                      "\" (expected F64, F32, F16, BF16, I64, I32, I16, I8, U64, "
                                      "U32, U16, U8 or BOOL)");
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail(what, 8, where + "shape entries must be non-negative integers");
      t.shape.push_back(d.get<int64_t>());
    }
    for (const auto& o : *off)
      if (!o.is_number_unsigned()) fail(what, 8, where + "data_offsets must be non-negative integers");
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end) fail(what, data_start, where + "data_offsets [" + std::to_string(begin) + ", " +
                                                std::to_string(end) + "] are reversed");
    if (end > data_size)
      fail(what, data_start, where + "data_offsets end " + std::to_string(end) +
                                 " reaches beyond the data section (" + std::to_string(data_size) +
                                 " bytes)");
    const int64_t n = checked_numel(t.shape);
    if (n < 0 || static_cast<uint64_t>(n) > data_size / esize ||
        static_cast<uint64_t>(n) * esize != end - begin)
      fail(what, data_start + begin,
           where + "shape " + shape_text(t.shape) + " of " + t.dtype + " needs " +
               (n < 0 ? std::string("more than 2^63") : std::to_string(n)) + " x " +
               std::to_string(esize) + " bytes, data_offsets span " + std::to_string(end - begin));
    t.bytes.assign(data + data_start + begin, data + data_start + end);  // (numel * esize)
    spans.push_back({begin, end, name});
    out.tensors.emplace(name, std::move(t));
  }
  // Two tensors must never share bytes.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& a = spans[i - 1];
    const Span& b = spans[i];
    if (a.begin != a.end && b.begin != b.end && b.begin < a.end)
      fail(what, data_start + b.begin,
           "tensors \"" + a.name + "\" and \"" + b.name + "\" have overlapping data_offsets");
  }
  return out;
}

SafeTensorsFile load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw SafeTensorsError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw SafeTensorsError(path + ": read error");
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> serialize_safetensors(const SafeTensorsFile& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {  // std::map: sorted by name
    if (name == "__metadata__") throw SafeTensorsError("safetensors: tensor name __metadata__ is reserved");
    const size_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) throw SafeTensorsError("safetensors: tensor \"" + name + "\": unknown dtype " + t.dtype);
    const int64_t n = t.numel();
    if (t.bytes.size() != static_cast<size_t>(n) * esize)
      throw SafeTensorsError("safetensors: tensor \"" + name + "\": shape " + shape_text(t.shape) +
                             " needs " + std::to_string(n * static_cast<int64_t>(esize)) +
                             " bytes, has " + std::to_string(t.bytes.size()));
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as Python writes it
  std::vector<uint8_t> out;  // (8 + header + data)
  out.reserve(8 + h.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(uint64_t(h.size()) >> (8 * i)));
  out.insert(out.end(), h.begin(), h.end());
  for (const auto& kv : file.tensors) out.insert(out.end(), kv.second.bytes.begin(), kv.second.bytes.end());
  return out;
}

void save_safetensors(const std::string& path, const SafeTensorsFile& file) {
  const std::vector<uint8_t> bytes = serialize_safetensors(file);  // fail before touching disk
  try {
    write_file_atomic(path, bytes.data(), bytes.size());
  } catch (const AtomicWriteError& e) {
    throw SafeTensorsError(e.what());
  }
}

}  // namespace pulsekd
