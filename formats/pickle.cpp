#include "formats/pickle.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_set>

#include "formats/pickle_machine.h"

namespace pulsekd::data {

using Kind = PyObject::Kind;
using pickle_detail::key_into;
using pickle_detail::Machine;

bool PyObject::is_global(const char* m, const char* n) const {
  return kind == Kind::Global && s == m && name == n;
}

bool PyObject::is_call_of(const char* m, const char* n) const {
  return kind == Kind::Object && callable && callable->is_global(m, n);
}

PyRef PyObject::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  PyObject k;
  k.s = key;
  for (Kind kk : {Kind::Str, Kind::Bytes}) {
    k.kind = kk;
    auto it = key_index.find(pickle_key(k));
    if (it != key_index.end()) return items[it->second];
  }
  return nullptr;
}

std::string PyObject::type_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global " + s + "." + name;
    case Kind::Object:
      if (callable && callable->kind == Kind::Global) return callable->s + "." + callable->name + "(...)";
      return "object";
    case Kind::PersistentId: return "persistent id";
  }
  return "?";
}

namespace {

constexpr size_t kMaxKeyBytes = 1u << 16;  // bounds work on shared (DAG) tuple keys

}  // namespace

namespace pickle_detail {

void key_into(const PyObject& k, std::string& out) {
  if (out.size() > kMaxKeyBytes) throw PickleError("dict key larger than 64 KiB");
  switch (k.kind) {
    case Kind::None: out += "N"; return;
    case Kind::Bool: out += k.b ? "i1;" : "i0;"; return;
    case Kind::Int: out += "i" + std::to_string(k.i) + ";"; return;
    case Kind::Float:
      // Integral floats equal the int of the same value in Python dicts.
      if (std::isfinite(k.f) && k.f == std::floor(k.f) && std::fabs(k.f) < 9.2e18) {
        out += "i" + std::to_string(static_cast<int64_t>(k.f)) + ";";
      } else {
        uint64_t bits;
        std::memcpy(&bits, &k.f, 8);
        if (std::isnan(k.f)) bits = 0x7ff8000000000000ull;
        out += "f" + std::to_string(bits) + ";";
      }
      return;
    case Kind::Str:
    case Kind::Bytes:
      out += (k.kind == Kind::Str ? "s" : "b") + std::to_string(k.s.size()) + ":";
      if (out.size() + k.s.size() > kMaxKeyBytes) throw PickleError("dict key larger than 64 KiB");
      out += k.s;
      return;
    case Kind::Tuple:
      out += "(";
      for (const auto& e : k.items) key_into(*e, out);
      out += ")";
      return;
    case Kind::Global: out += "g" + std::to_string(k.s.size()) + ":" + k.s + "." + k.name; return;
    default: throw PickleError("unhashable " + k.type_name() + " used as a dict key");
  }
}

// Python decodes BINUNICODE with 'surrogatepass': any well-formed sequence up to U+10FFFF.
bool decode_utf8(const std::string& s, std::vector<uint32_t>* cps) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    uint32_t cp;
    int n;
    if (c < 0x80) { cp = c; n = 0; }
    else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; n = 1; }
    else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; n = 2; }
    else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; n = 3; }
    else return false;
    if (s.size() - i - 1 < size_t(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const uint8_t cc = uint8_t(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF) return false;  // overlong or out of range
    if (cps) cps->push_back(cp);
    i += n + 1;
  }
  return true;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) out += char(cp);
  else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace pickle_detail

std::string pickle_key(const PyObject& key) {
  std::string out;
  key_into(key, out);
  return out;
}

PyRef unpickle(const uint8_t* data, size_t size, const std::string& what, const PickleOptions& options) {
  Machine m(data, size, what, options);
  return m.run();
}

const std::string& pickle_text(const PyRef& v, const std::string& what, const std::string& context) {
  if (!v || !v->is_text())
    throw PickleError(what + ": " + context + ": expected a string, got " + (v ? v->type_name() : "nothing"));
  return v->s;
}

int64_t pickle_int(const PyRef& v, const std::string& what, const std::string& context) {
  if (v && v->kind == Kind::Int) return v->i;
  if (v && v->kind == Kind::Bool) return v->b ? 1 : 0;
  throw PickleError(what + ": " + context + ": expected an int, got " + (v ? v->type_name() : "nothing"));
}

}  // namespace pulsekd::data
