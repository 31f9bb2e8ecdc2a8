#include "formats/pickle.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_set>

namespace pulsekd::data {

using Kind = PyObject::Kind;

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

  std::string unescape_string(const std::string& raw);
  std::string raw_unicode_escape(const std::string& raw);
  void check_graph();
};

std::string Machine::unescape_string(const std::string& raw) {
  // STRING argument: a Python repr, quoted with ' or ", with backslash escapes.
  if (raw.size() < 2 || (raw[0] != '\'' && raw[0] != '"') || raw.back() != raw[0])
    fail("STRING argument is not a quoted string");
  const std::string s = raw.substr(1, raw.size() - 2);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') { out += s[i]; continue; }
    if (++i >= s.size()) fail("STRING ends in a lone backslash");
    const char c = s[i];
    auto hexv = [](char h) { return h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1; };
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\\': case '\'': case '"': out += c; break;
      case '\n': break;
      case 'x': {
        if (i + 2 >= s.size() + 0 || hexv(s[i + 1]) < 0 || hexv(s[i + 2]) < 0) fail("bad \\x escape in STRING");
        out += char(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
        i += 2;
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          int v = 0, k = 0;
          while (k < 3 && i < s.size() && s[i] >= '0' && s[i] <= '7') { v = v * 8 + (s[i] - '0'); ++i; ++k; }
          --i;
          out += char(v & 0xFF);
        } else {
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

std::string Machine::raw_unicode_escape(const std::string& raw) {
  // UNICODE argument: latin-1 characters plus \uXXXX and \UXXXXXXXX escapes.
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    const uint8_t c = uint8_t(raw[i]);
    if (c == '\\' && i + 1 < raw.size() && (raw[i + 1] == 'u' || raw[i + 1] == 'U')) {
      const size_t nd = raw[i + 1] == 'u' ? 4 : 8;
      if (raw.size() - i - 2 < nd) fail("truncated \\u escape in UNICODE");
      uint32_t cp = 0;
      for (size_t k = 0; k < nd; ++k) {
        const char h = raw[i + 2 + k];
        const int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (v < 0) fail("bad \\u escape in UNICODE");
        cp = cp * 16 + uint32_t(v);
      }
      if (cp > 0x10FFFF) fail("\\U escape beyond U+10FFFF in UNICODE");
      append_utf8(cp, out);
      i += 1 + nd;
    } else {
      append_utf8(c, out);
    }
  }
  return out;
}

// Refuses cycles (Python can pickle them; no format we read has them) and deep nesting.
void Machine::check_graph() {
  std::unordered_map<const PyObject*, size_t> depth;  // 0 = on the DFS path, >0 = finished
  struct Frame { const PyObject* o; size_t child; size_t best; };
  auto children = [](const PyObject* o, size_t k) -> const PyObject* {
    const size_t ni = o->items.size(), nk = o->keys.size();
    if (k < ni) return o->items[k].get();
    if (k < ni + nk) return o->keys[k - ni].get();
    const PyObject* extra[4] = {o->callable.get(), o->args.get(), o->kwargs.get(), o->state.get()};
    return k < ni + nk + 4 ? extra[k - ni - nk] : reinterpret_cast<const PyObject*>(1);
  };
  for (const auto& root : made_) {
    if (depth.count(root.get())) continue;
    std::vector<Frame> path{{root.get(), 0, 0}};
    depth[root.get()] = 0;
    while (!path.empty()) {
      Frame& f = path.back();
      const PyObject* c = children(f.o, f.child++);
      if (c == reinterpret_cast<const PyObject*>(1)) {
        const size_t d = f.best + 1;  // height: the longest chain below, counting itself
        if (d > opt_.max_depth)
          fail("values nested deeper than " + std::to_string(opt_.max_depth) + " levels", f.o->offset);
        depth[f.o] = d;
        path.pop_back();
        if (!path.empty()) path.back().best = std::max(path.back().best, d);
        continue;
      }
      if (!c) continue;
      auto it = depth.find(c);
      if (it != depth.end()) {
        if (it->second == 0) fail("recursive structure (an object contains itself) is not supported", c->offset);
        f.best = std::max(f.best, it->second);
        continue;
      }
      if (c->kind != Kind::Tuple && c->kind != Kind::List && c->kind != Kind::Dict &&
          c->kind != Kind::Object && c->kind != Kind::PersistentId)
        continue;  // scalars have no children
      if (path.size() >= opt_.max_depth)
        fail("values nested deeper than " + std::to_string(opt_.max_depth) + " levels", c->offset);
      depth[c] = 0;
      path.push_back({c, 0, 0});
    }
  }
}

PyRef Machine::run() {
  while (true) {
    if (pos_ >= n_) fail("pickle truncated: expected an opcode (no STOP)", pos_);
    op_off_ = pos_;
    const uint8_t op = d_[pos_++];
    switch (op) {
      case 0x80: {  // PROTO
        proto_ = int(le(1, "protocol number"));
        if (proto_ > 5) fail("unsupported pickle protocol " + std::to_string(proto_) + " (expected 0-5)");
        break;
      }
      case 0x95: {  // FRAME: only a length hint; check it, then read on
        const uint64_t len = le(8, "frame length");
        if (len > n_ - pos_) fail("FRAME of " + std::to_string(len) + " bytes runs past the end of the pickle (" + std::to_string(n_ - pos_) + " bytes remain)");
        break;
      }
      case '.': {  // STOP
        PyRef result = pop();
        check_graph();
        keep_ = true;
        return result;
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'c': {  // GLOBAL
        std::string m = line();
        std::string n = line();
        push(global(std::move(m), std::move(n)));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PyRef n = pop(), m = pop();
        if (m->kind != Kind::Str || n->kind != Kind::Str) fail("STACK_GLOBAL expects two str, got " + m->type_name() + " and " + n->type_name());
        push(global(m->s, n->s));
        break;
      }
      case 'q': put(le(1, "memo index")); break;
      case 'r': put(le(4, "memo index")); break;
      case 'p': put(int_line(line(), "memo index")); break;
      case 0x94: { const uint64_t idx = memo_.size(); put(idx); break; }  // MEMOIZE
      case 'h': push(get(le(1, "memo index"))); break;
      case 'j': push(get(le(4, "memo index"))); break;
      case 'g': push(get(int_line(line(), "memo index"))); break;
      case ')': push(make(Kind::Tuple)); break;
      case 't': push(tuple_of(pop_mark())); break;
      case 0x85: { PyRef a = pop(); push(tuple_of({a})); break; }
      case 0x86: { PyRef b = pop(), a = pop(); push(tuple_of({a, b})); break; }
      case 0x87: { PyRef c = pop(), b = pop(), a = pop(); push(tuple_of({a, b, c})); break; }
      case ']': push(make(Kind::List)); break;
      case 'l': { auto l = make(Kind::List); l->items = pop_mark(); push(l); break; }
      case 'a': { PyRef v = pop(); append_to(*top(), {v}); break; }
      case 'e': { auto v = pop_mark(); append_to(*top(), std::move(v)); break; }
      case '}': push(make(Kind::Dict)); break;
      case 'd': {  // DICT
        auto v = pop_mark();
        if (v.size() % 2) fail("DICT needs key/value pairs, got an odd number of items");
        auto dct = make(Kind::Dict);
        for (size_t k = 0; k < v.size(); k += 2) set_item(*dct, v[k], v[k + 1]);
        push(dct);
        break;
      }
      case 's': { PyRef v = pop(), k = pop(); set_item(*top(), k, v); break; }
      case 'u': {  // SETITEMS
        auto v = pop_mark();
        if (v.size() % 2) fail("SETITEMS needs key/value pairs, got an odd number of items");
        PyRef& dct = top();
        for (size_t k = 0; k < v.size(); k += 2) set_item(*dct, v[k], v[k + 1]);
        break;
      }
      case 0x8f: push(make(Kind::List)); break;  // EMPTY_SET (sets become lists)
      case 0x90: { auto v = pop_mark(); append_to(*top(), std::move(v)); break; }  // ADDITEMS
      case 0x91: { auto l = make(Kind::List); l->items = pop_mark(); push(l); break; }  // FROZENSET
      case 'N': push(make(Kind::None)); break;
      case 0x88: case 0x89: { auto o = make(Kind::Bool); o->b = op == 0x88; push(o); break; }
      case 'J': push(make_int(int32_t(uint32_t(le(4, "int32"))))); break;
      case 'K': push(make_int(int64_t(le(1, "uint8")))); break;
      case 'M': push(make_int(int64_t(le(2, "uint16")))); break;
      case 'I': {  // INT (text); I00/I01 are protocol-0 booleans
        const std::string s = line();
        if (s == "00" || s == "01") { auto o = make(Kind::Bool); o->b = s == "01"; push(o); }
        else push(make_int(signed_line(s)));
        break;
      }
      case 'L': push(make_int(signed_line(line()))); break;
      case 0x8a: case 0x8b: {  // LONG1 / LONG4: little-endian two's complement
        const uint64_t n = le(op == 0x8a ? 1 : 4, "length");
        need(n, "long bytes");
        const uint8_t* b = d_ + pos_;
        // Strip redundant sign-extension bytes, then require it to fit in 8 bytes.
        uint64_t len = n;
        while (len > 8 && ((b[len - 1] == 0x00 && (b[len - 2] & 0x80) == 0) || (b[len - 1] == 0xFF && (b[len - 2] & 0x80))))
          --len;
        if (len > 8) fail("LONG of " + std::to_string(n) + " bytes does not fit in 64 bits");
        uint64_t v = 0;
        for (uint64_t k = len; k-- > 0;) v = (v << 8) | b[k];
        if (len > 0 && len < 8 && (b[len - 1] & 0x80)) v |= ~uint64_t(0) << (8 * len);  // sign-extend
        pos_ += n;
        push(make_int(int64_t(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        need(8, "double");
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | d_[pos_ + k];
        pos_ += 8;
        auto o = make(Kind::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        break;
      }
      case 'F': {  // FLOAT (text)
        const std::string s = line();
        char* end = nullptr;
        auto o = make(Kind::Float);
        o->f = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size()) fail("FLOAT argument \"" + s + "\" is not a number");
        push(o);
        break;
      }
      case 'X': push(make_str(take(le(4, "length"), "UTF-8 string"))); break;
      case 0x8c: push(make_str(take(le(1, "length"), "UTF-8 string"))); break;
      case 0x8d: push(make_str(take(le(8, "length"), "UTF-8 string"))); break;
      case 'V': push(make_text(Kind::Str, raw_unicode_escape(line()))); break;
      case 'T': {  // BINSTRING: signed 4-byte length
        const int64_t n = int32_t(uint32_t(le(4, "length")));
        if (n < 0) fail("BINSTRING with negative length " + std::to_string(n));
        push(make_text(Kind::Bytes, take(uint64_t(n), "byte string")));
        break;
      }
      case 'U': push(make_text(Kind::Bytes, take(le(1, "length"), "byte string"))); break;
      case 'S': push(make_text(Kind::Bytes, unescape_string(line()))); break;
      case 'B': push(make_text(Kind::Bytes, take(le(4, "length"), "bytes"))); break;
      case 'C': push(make_text(Kind::Bytes, take(le(1, "length"), "bytes"))); break;
      case 0x8e: push(make_text(Kind::Bytes, take(le(8, "length"), "bytes"))); break;
      case 0x96: push(make_text(Kind::Bytes, take(le(8, "length"), "bytearray"))); break;
      case 'R': { PyRef args = pop(), fn = pop(); push(call(fn, args, false)); break; }
      case 0x81: { PyRef args = pop(), cls = pop(); push(call(cls, args, true)); break; }  // NEWOBJ
      case 0x92: {  // NEWOBJ_EX
        PyRef kw = pop(), args = pop(), cls = pop();
        if (kw->kind != Kind::Dict) fail("NEWOBJ_EX expects a kwargs dict, got " + kw->type_name());
        PyRef o = call(cls, args, true);
        if (o->kind == Kind::Object) o->kwargs = kw;
        push(o);
        break;
      }
      case 'i': {  // INST: module\nname\n, args from the mark
        std::string m = line();
        std::string n = line();
        PyRef cls = global(std::move(m), std::move(n));
        push(call(cls, tuple_of(pop_mark()), false));
        break;
      }
      case 'o': {  // OBJ: cls and args from the mark
        auto v = pop_mark();
        if (v.empty()) fail("OBJ needs a class after the MARK");
        PyRef cls = v[0];
        v.erase(v.begin());
        push(call(cls, tuple_of(std::move(v)), true));
        break;
      }
      case 'b': {  // BUILD
        PyRef st = pop();
        PyRef& obj = top();
        if (obj->kind == Kind::Object) obj->state = st;
        // A dict subclass's attributes (e.g. a state_dict's _metadata) carry no values.
        else if (obj->kind != Kind::Dict) fail("BUILD on a " + obj->type_name() + " (expected an object)");
        break;
      }
      case 'Q': { auto p = make(Kind::PersistentId); p->args = pop(); push(p); break; }
      case 'P': { auto p = make(Kind::PersistentId); p->args = make_text(Kind::Str, line()); push(p); break; }
      case 0x82: case 0x83: case 0x84:
        fail("extension registry opcode " + op_text() + " is not supported");
      case 0x97: case 0x98:
        fail("out-of-band buffer opcode " + op_text() + " is not supported");
      default: {
        char buf[96];
        std::snprintf(buf, sizeof buf, "unknown opcode 0x%02x", op);
        fail(buf);
      }
    }
  }
}

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO"; case 0x95: return "FRAME"; case '.': return "STOP"; case '(': return "MARK";
    case '0': return "POP"; case '1': return "POP_MARK"; case '2': return "DUP"; case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL"; case 'q': return "BINPUT"; case 'r': return "LONG_BINPUT";
    case 'p': return "PUT"; case 0x94: return "MEMOIZE"; case 'h': return "BINGET"; case 'j': return "LONG_BINGET";
    case 'g': return "GET"; case ')': return "EMPTY_TUPLE"; case 't': return "TUPLE"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case ']': return "EMPTY_LIST"; case 'l': return "LIST";
    case 'a': return "APPEND"; case 'e': return "APPENDS"; case '}': return "EMPTY_DICT"; case 'd': return "DICT";
    case 's': return "SETITEM"; case 'u': return "SETITEMS"; case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET"; case 'N': return "NONE"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 'J': return "BININT"; case 'K': return "BININT1"; case 'M': return "BININT2"; case 'I': return "INT";
    case 'L': return "LONG"; case 0x8a: return "LONG1"; case 0x8b: return "LONG4"; case 'G': return "BINFLOAT";
    case 'F': return "FLOAT"; case 'X': return "BINUNICODE"; case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8"; case 'V': return "UNICODE"; case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING"; case 'S': return "STRING"; case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES"; case 0x8e: return "BINBYTES8"; case 0x96: return "BYTEARRAY8";
    case 'R': return "REDUCE"; case 0x81: return "NEWOBJ"; case 0x92: return "NEWOBJ_EX"; case 'i': return "INST";
    case 'o': return "OBJ"; case 'b': return "BUILD"; case 'Q': return "BINPERSID"; case 'P': return "PERSID";
    case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4";
    case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    default: return "opcode";
  }
}

}  // namespace

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
