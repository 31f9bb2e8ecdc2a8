// The pickle virtual machine's opcode loop and its text decoders (formats/pickle_machine.h).
#include <algorithm>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/pickle_machine.h"

namespace pulsekd::data::pickle_detail {

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

// None, booleans, numbers, strings and bytes: pushes the value and returns true, or returns
// false when op is not one of these opcodes.
bool Machine::scalar_op(uint8_t op) {
  switch (op) {
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
    default: return false;
  }
  return true;
}

// Calls, objects and persistent ids (REDUCE, NEWOBJ(_EX), INST, OBJ, BUILD, (BIN)PERSID):
// returns false when op is not one of these opcodes.
bool Machine::object_op(uint8_t op) {
  switch (op) {
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
    default: return false;
  }
  return true;
}

// Protocol framing, stack, memo, containers and globals here; values in scalar_op, calls and
// objects in object_op.
PyRef Machine::run() {
  while (true) {
    if (pos_ >= n_) fail("pickle truncated: expected an opcode (no STOP)", pos_);
    op_off_ = pos_;
    const uint8_t op = d_[pos_++];
    if (scalar_op(op) || object_op(op)) continue;
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

}  // namespace pulsekd::data::pickle_detail
