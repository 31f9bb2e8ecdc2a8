// The pickle virtual machine behind unpickle() (formats/pickle.h): its state, input reading,
// value making, stack, memo, globals and calls. Internal to formats/pickle*.cpp.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/pickle.h"

namespace pulsekd::data::pickle_detail {

using Kind = PyObject::Kind;

// Appends the canonical form of a hashable value (pickle_key); throws PickleError otherwise.
void key_into(const PyObject& k, std::string& out);
// Python decodes BINUNICODE with 'surrogatepass': any well-formed sequence up to U+10FFFF.
// Fills cps (when not null) with the code points.
bool decode_utf8(const std::string& s, std::vector<uint32_t>* cps);
void append_utf8(uint32_t cp, std::string& out);
// "PROTO", "GLOBAL", ... for messages.
const char* opcode_name(uint8_t op);

class Machine {
 public:
  Machine(const uint8_t* d, size_t n, const std::string& what, const PickleOptions& o)
      : d_(d), n_(n), what_(what), opt_(o) {}
  ~Machine() {
    // Break every reference between the containers we made, so that whatever was left
    // (cycles, on error) is freed without leaks and without deep recursion.
    if (!keep_) for (auto& o : made_) clear(*o);
  }
  PyRef run();

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  uint64_t op_off_ = 0;  // offset of the opcode being executed
  const std::string& what_;
  const PickleOptions& opt_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
  std::vector<PyRef> made_;  // every container made, for the final cycle/depth check
  bool keep_ = false;
  int proto_ = 0;

  static void clear(PyObject& o) {
    o.items.clear(); o.keys.clear(); o.key_index.clear();
    o.callable.reset(); o.args.reset(); o.kwargs.reset(); o.state.reset();
  }

  [[noreturn]] void fail(const std::string& msg, uint64_t at) const {
    std::ostringstream os;
    os << what_ << ": byte " << at << ": " << msg;
    throw PickleError(os.str());
  }
  [[noreturn]] void fail(const std::string& msg) const { fail(msg, op_off_); }
  std::string op_text() const {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s (0x%02x)", opcode_name(d_[op_off_]), d_[op_off_]);
    return buf;
  }

  // ---- input
  void need(uint64_t n, const char* expected) const {
    if (n > n_ - pos_)
      fail(std::string("pickle truncated: ") + op_text() + " expects " + expected + " of " +
               std::to_string(n) + " bytes, " + std::to_string(n_ - pos_) + " remain", pos_);
  }
  uint64_t le(int n, const char* expected) {
    need(n, expected);
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | d_[pos_ + k];
    pos_ += n;
    return v;
  }
  std::string take(uint64_t n, const char* expected) {
    need(n, expected);
    std::string s(reinterpret_cast<const char*>(d_ + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    const void* nl = std::memchr(d_ + pos_, '\n', n_ - pos_);
    if (!nl) fail("pickle truncated: " + op_text() + " expects a newline-terminated argument", n_);
    const size_t len = static_cast<const uint8_t*>(nl) - (d_ + pos_);
    std::string s(reinterpret_cast<const char*>(d_ + pos_), len);
    pos_ += len + 1;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }

  // ---- values
  PyRef make(Kind k) {
    auto o = std::make_shared<PyObject>();
    o->kind = k;
    o->offset = op_off_;
    if (k == Kind::Tuple || k == Kind::List || k == Kind::Dict || k == Kind::Object ||
        k == Kind::PersistentId)
      made_.push_back(o);
    return o;
  }
  PyRef make_int(int64_t v) { auto o = make(Kind::Int); o->i = v; return o; }
  PyRef make_text(Kind k, std::string s) { auto o = make(k); o->s = std::move(s); return o; }
  PyRef make_str(std::string s) {
    if (!decode_utf8(s, nullptr)) fail("invalid UTF-8 in " + op_text() + " string");
    return make_text(Kind::Str, std::move(s));
  }

  // ---- stack
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  PyRef pop() {
    if (stack_.size() <= floor()) fail("stack underflow: " + op_text() + " needs a value on the stack");
    PyRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyRef& top() {
    if (stack_.size() <= floor()) fail("stack underflow: " + op_text() + " needs a value on the stack");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack for " + op_text());
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> v(std::make_move_iterator(stack_.begin() + m), std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return v;
  }
  PyRef tuple_of(std::vector<PyRef> v) { auto t = make(Kind::Tuple); t->items = std::move(v); return t; }

  void set_item(PyObject& dict, PyRef k, PyRef v) {
    if (dict.kind != Kind::Dict) fail(op_text() + " expects a dict, found " + dict.type_name());
    std::string key;
    try {
      key_into(*k, key);
    } catch (const PickleError& e) {
      fail(e.what());
    }
    auto it = dict.key_index.find(key);
    if (it != dict.key_index.end()) { dict.items[it->second] = std::move(v); return; }
    dict.key_index.emplace(std::move(key), dict.items.size());
    dict.keys.push_back(std::move(k));
    dict.items.push_back(std::move(v));
  }
  void append_to(PyObject& list, std::vector<PyRef> v) {
    if (list.kind != Kind::List) fail(op_text() + " expects a list, found " + list.type_name());
    for (auto& e : v) list.items.push_back(std::move(e));
  }

  // ---- memo
  void put(uint64_t idx) { memo_[idx] = top(); }
  PyRef get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo miss: " + op_text() + " refers to memo index " + std::to_string(idx) + " that was never stored");
    return it->second;
  }

  // ---- globals and calls
  PyRef global(std::string module, std::string name) {
    const bool builtin =
        (module == "collections" && name == "OrderedDict") || (module == "_codecs" && name == "encode") ||
        ((module == "builtins" || module == "__builtin__") &&
         (name == "set" || name == "frozenset" || name == "bytearray" || name == "bytes"));
    if (!builtin && !(opt_.allow_global && opt_.allow_global(module, name)))
      fail("global " + module + "." + name + " is not allowed here (the reader does not know it)");
    auto g = make(Kind::Global);
    g->s = std::move(module);
    g->name = std::move(name);
    return g;
  }
  uint64_t int_line(const std::string& s, const char* what) {
    if (s.empty() || s.size() > 20) fail(std::string("expected a decimal ") + what + ", got \"" + s + "\"");
    uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') fail(std::string("expected a decimal ") + what + ", got \"" + s + "\"");
      const uint64_t dgt = uint64_t(c - '0');
      if (v > (UINT64_MAX - dgt) / 10) fail(std::string(what) + " \"" + s + "\" out of range");
      v = v * 10 + dgt;
    }
    return v;
  }
  int64_t signed_line(std::string s) {
    if (!s.empty() && s.back() == 'L') s.pop_back();  // Python-2 long suffix
    bool neg = false;
    size_t b = 0;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) { neg = s[0] == '-'; b = 1; }
    const uint64_t mag = int_line(s.substr(b), "integer");
    if (mag > uint64_t(INT64_MAX) + (neg ? 1 : 0)) fail("integer " + s + " does not fit in 64 bits");
    return neg ? int64_t(0 - mag) : int64_t(mag);
  }
  std::string latin1_from_str(const PyObject& s) {
    std::vector<uint32_t> cps;
    if (!decode_utf8(s.s, &cps)) fail("invalid UTF-8 in a string given to a latin-1 encode");
    std::string out;
    out.reserve(cps.size());
    for (uint32_t c : cps) {
      if (c > 0xFF) fail("character U+" + std::to_string(c) + " cannot be latin-1 encoded");
      out += char(c);
    }
    return out;
  }
  std::vector<PyRef> list_items(const PyRef& v, const char* who) {
    if (v->kind == Kind::List || v->kind == Kind::Tuple) return v->items;
    fail(std::string(who) + " expects a list or tuple argument, got " + v->type_name());
  }
  PyRef call(PyRef callable, PyRef args, bool newobj) {
    if (args->kind != Kind::Tuple) fail(op_text() + " expects an argument tuple, got " + args->type_name());
    const auto& a = args->items;
    if (callable->kind == Kind::Global) {
      const std::string& m = callable->s;
      const std::string& nm = callable->name;
      if (m == "collections" && nm == "OrderedDict") {
        auto d = make(Kind::Dict);
        if (!a.empty()) {  // OrderedDict([(k, v), ...])
          for (const auto& kv : list_items(a[0], "OrderedDict")) {
            if (kv->kind != Kind::Tuple && kv->kind != Kind::List) fail("OrderedDict item is not a pair");
            if (kv->items.size() != 2) fail("OrderedDict item is not a pair");
            set_item(*d, kv->items[0], kv->items[1]);
          }
        }
        return d;
      }
      if (m == "_codecs" && nm == "encode") {
        if (a.empty() || a[0]->kind != Kind::Str) fail("_codecs.encode expects (str, encoding)");
        std::string enc = a.size() > 1 && a[1]->is_text() ? a[1]->s : "utf-8";
        if (enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1" || enc == "iso8859-1")
          return make_text(Kind::Bytes, latin1_from_str(*a[0]));
        if (enc == "utf-8" || enc == "utf8") return make_text(Kind::Bytes, a[0]->s);
        fail("_codecs.encode with unsupported encoding \"" + enc + "\"");
      }
      if (m == "builtins" || m == "__builtin__") {
        if (nm == "set" || nm == "frozenset") {
          auto l = make(Kind::List);
          if (!a.empty()) l->items = list_items(a[0], nm.c_str());
          return l;
        }
        if (nm == "bytearray" || nm == "bytes") {
          if (a.empty()) return make_text(Kind::Bytes, "");
          if (a[0]->kind == Kind::Bytes) return make_text(Kind::Bytes, a[0]->s);
          if (a[0]->kind == Kind::Str) return make_text(Kind::Bytes, latin1_from_str(*a[0]));
          if (a[0]->kind == Kind::List) {
            std::string out;
            for (const auto& e : a[0]->items) {
              if (e->kind != Kind::Int || e->i < 0 || e->i > 255) fail(nm + " list element is not a byte");
              out += char(e->i);
            }
            return make_text(Kind::Bytes, out);
          }
          fail(nm + " argument must be bytes, str or a list of ints, got " + a[0]->type_name());
        }
      }
    }
    if (opt_.reduce) {
      PyRef r = opt_.reduce(callable, args, op_off_);
      if (r) {
        if (r->kind == Kind::Tuple || r->kind == Kind::List || r->kind == Kind::Dict ||
            r->kind == Kind::Object || r->kind == Kind::PersistentId)
          made_.push_back(r);
        return r;
      }
    }
    auto o = make(Kind::Object);
    o->callable = std::move(callable);
    o->args = std::move(args);
    o->newobj = newobj;
    return o;
  }

  bool scalar_op(uint8_t op);
  bool object_op(uint8_t op);
  std::string unescape_string(const std::string& raw);
  std::string raw_unicode_escape(const std::string& raw);
  void check_graph();
};

}  // namespace pulsekd::data::pickle_detail
