// Pickle VM: hand-assembled byte strings for each opcode family, and every error path.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "formats/pickle.h"
#include "formats/pickle_numpy.h"

using namespace pulsekd::data;
using Kind = PyObject::Kind;

namespace {

PyRef run(const std::string& bytes, const PickleOptions& opt = {}) {
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.pkl", opt);
}

std::string error_of(const std::string& bytes, const PickleOptions& opt = {}) {
  try {
    run(bytes, opt);
  } catch (const PickleError& e) {
    return e.what();
  }
  return "";
}

template <size_t N>
std::string B(const char (&b)[N]) { return std::string(b, N - 1); }
template <size_t N>
PyRef run(const char (&b)[N], const PickleOptions& opt = {}) { return run(std::string(b, N - 1), opt); }
template <size_t N>
std::string error_of(const char (&b)[N], const PickleOptions& opt = {}) { return error_of(std::string(b, N - 1), opt); }

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string S(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += char(c);
  return s;
}

}  // namespace

TEST_CASE("pickle: scalars of every protocol") {
  CHECK(run("N.")->kind == Kind::None);
  CHECK(run("\x80\x02\x88.")->b == true);
  CHECK(run("\x80\x02\x89.")->b == false);
  CHECK(run("K\xff.")->i == 255);
  CHECK(run(S({'M', 0x34, 0x12, '.'}))->i == 0x1234);
  CHECK(run(S({'J', 0xfe, 0xff, 0xff, 0xff, '.'}))->i == -2);
  CHECK(run("I-42\n.")->i == -42);
  CHECK(run("I01\n.")->kind == Kind::Bool);
  CHECK(run("L123456789012L\n.")->i == 123456789012LL);
  CHECK(run(S({0x8a, 2, 0x00, 0x80, '.'}))->i == -32768);       // LONG1 two's complement
  CHECK(run(S({0x8a, 1, 0xff, '.'}))->i == -1);
  CHECK(run(S({0x8a, 0, '.'}))->i == 0);
  CHECK(run(S({0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, '.'}))->i == 0x7f00000000000000LL);  // redundant 0 byte
  CHECK(run(S({0x8b, 2, 0, 0, 0, 0x01, 0x01, '.'}))->i == 257);  // LONG4
  CHECK(has(error_of(S({0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, '.'})), "does not fit in 64 bits"));
  CHECK(run(S({'G', 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, '.'}))->f == doctest::Approx(3.141592653589793));
  CHECK(run("F2.5\n.")->f == 2.5);
}

TEST_CASE("pickle: strings and bytes") {
  CHECK(run(S({'X', 3, 0, 0, 0, 'a', 'b', 'c', '.'}))->s == "abc");
  auto s = run(S({0x8c, 2, 0xc3, 0xa9, '.'}));
  CHECK(s->kind == Kind::Str);
  CHECK(s->s == "\xc3\xa9");
  CHECK(run(S({0x8d, 1, 0, 0, 0, 0, 0, 0, 0, 'z', '.'}))->s == "z");
  CHECK(run("V\\u00e9x\n.")->s == "\xc3\xa9x");  // raw-unicode-escape
  auto b = run(S({'U', 2, 0xe9, 0x00, '.'}));    // Python-2 str: stays bytes
  CHECK(b->kind == Kind::Bytes);
  CHECK(b->s == B("\xe9\x00"));
  CHECK(run(S({'T', 1, 0, 0, 0, 'q', '.'}))->s == "q");
  CHECK(run("S'a\\nb\\x41'\n.")->s == "a\nbA");
  CHECK(run(S({'B', 1, 0, 0, 0, 7, '.'}))->s == "\x07");
  CHECK(run(S({'C', 1, 8, '.'}))->s == "\x08");
  CHECK(run(S({0x8e, 1, 0, 0, 0, 0, 0, 0, 0, 9, '.'}))->kind == Kind::Bytes);
  CHECK(run(S({0x96, 1, 0, 0, 0, 0, 0, 0, 0, 9, '.'}))->kind == Kind::Bytes);  // BYTEARRAY8
  CHECK(has(error_of(S({0x8c, 1, 0xff, '.'})), "invalid UTF-8"));
  // Python 3 bytes at protocol 2: _codecs.encode('\xe9\x01', 'latin1')
  auto enc = run(B("\x80\x02" "c_codecs\nencode\n") + S({'X', 3, 0, 0, 0, 0xc3, 0xa9, 0x01}) +
                 B("X\x06\x00\x00\x00latin1\x86R."));
  REQUIRE(enc->kind == Kind::Bytes);
  CHECK(enc->s == "\xe9\x01");
  CHECK(has(error_of(B("c_codecs\nencode\n") + S({'X', 3, 0, 0, 0, 0xe2, 0x82, 0xac}) +
                     B("X\x06\x00\x00\x00latin1\x86R.")),
            "cannot be latin-1 encoded"));
}

TEST_CASE("pickle: containers, marks and memo") {
  auto t = run("(K\x01K\x02t.");
  REQUIRE(t->kind == Kind::Tuple);
  CHECK(t->items.size() == 2);
  CHECK(run(").")->items.empty());
  CHECK(run("K\x01\x85.")->items.size() == 1);
  CHECK(run("K\x01K\x02\x86.")->items.size() == 2);
  CHECK(run("K\x01K\x02K\x03\x87.")->items[2]->i == 3);
  auto l = run("]q\x00(K\x01K\x02" "eK\x03" "a.");
  REQUIRE(l->kind == Kind::List);
  CHECK(l->items.size() == 3);
  CHECK(run("(K\x01l.")->items.size() == 1);
  auto d = run("}q\x00(X\x01\x00\x00\x00" "aK\x01U\x01" "bK\x02uX\x01\x00\x00\x00" "cK\x03s.");
  REQUIRE(d->kind == Kind::Dict);
  CHECK(d->keys.size() == 3);
  CHECK(d->get("a")->i == 1);
  CHECK(d->get("b")->i == 2);  // a Python-2 bytes key found by its text
  CHECK(d->get("c")->i == 3);
  CHECK(!d->get("zz"));
  auto dd = run("(K\x01K\x02K\x01K\x03" "d.");  // DICT; the repeated key keeps its place
  CHECK(dd->keys.size() == 1);
  CHECK(dd->items[0]->i == 3);
  auto tk = run("}(K\x01K\x02\x86K\x09u.");  // tuple key
  CHECK(tk->keys[0]->kind == Kind::Tuple);
  CHECK(has(error_of("}]K\x01s."), "unhashable"));
  // memo: BINPUT/BINGET, LONG_BINPUT/LONG_BINGET, PUT/GET, MEMOIZE
  auto m = run("K\x07q\x05\x30h\x05.");
  CHECK(m->i == 7);
  CHECK(run("K\x07r\x00\x01\x00\x00\x30j\x00\x01\x00\x00.")->i == 7);
  CHECK(run("K\x07p12\n0g12\n.")->i == 7);
  CHECK(run("\x80\x04K\x08\x94\x30h\x00.")->i == 8);
  // DUP, POP, POP_MARK
  CHECK(run("K\x01\x32\x86.")->items.size() == 2);
  CHECK(run("K\x05(K\x01K\x02\x31.")->i == 5);
  // sets become lists
  auto st = run("\x80\x04\x8f(K\x01K\x02\x90.");
  CHECK(st->kind == Kind::List);
  CHECK(st->items.size() == 2);
  CHECK(run("\x80\x04(K\x01\x91.")->items.size() == 1);
  // protocol 4 framing
  CHECK(run(S({0x80, 4, 0x95, 3, 0, 0, 0, 0, 0, 0, 0, 'K', 1, '.'}))->i == 1);
  CHECK(has(error_of(S({0x80, 4, 0x95, 99, 0, 0, 0, 0, 0, 0, 0, 'K', 1, '.'})), "FRAME of 99 bytes"));
}

TEST_CASE("pickle: globals, reduce, build, newobj, persistent ids") {
  PickleOptions opt;
  opt.allow_global = [](const std::string& m, const std::string& n) { return m == "mod" && n == "Cls"; };
  auto o = run("cmod\nCls\nK\x01\x85R}(U\x01xK\x02ub.", opt);
  REQUIRE(o->kind == Kind::Object);
  CHECK(o->is_call_of("mod", "Cls"));
  CHECK(o->args->items[0]->i == 1);
  CHECK(o->state->get("x")->i == 2);
  auto sg = run("\x80\x04\x8c\x03mod\x8c\x03\x43ls\x93)\x81.", opt);  // STACK_GLOBAL + NEWOBJ
  CHECK(sg->newobj);
  CHECK(sg->is_call_of("mod", "Cls"));
  auto ex = run("\x80\x04\x8c\x03mod\x8c\x03\x43ls\x93)}\x92.", opt);  // NEWOBJ_EX
  CHECK(ex->kwargs->kind == Kind::Dict);
  CHECK(run("(cmod\nCls\nK\x01o.", opt)->args->items.size() == 1);  // OBJ
  CHECK(run("(K\x01imod\nCls\n.", opt)->is_call_of("mod", "Cls"));   // INST
  const std::string err = error_of("\x80\x02\x63os\nsystem\n.", opt);
  CHECK(has(err, "os.system"));
  CHECK(has(err, "byte 2"));
  // The reduce hook can turn a call into a value.
  opt.reduce = [](const PyRef& fn, const PyRef&, uint64_t) -> PyRef {
    if (!fn->is_global("mod", "Cls")) return nullptr;
    auto v = std::make_shared<PyObject>();
    v->kind = Kind::Int;
    v->i = 99;
    return v;
  };
  CHECK(run("cmod\nCls\n)R.", opt)->i == 99);
  // OrderedDict() then SETITEMS, as torch.save writes a state_dict
  auto od = run("\x80\x02\x63\x63ollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00" "aK\x01u.");
  REQUIRE(od->kind == Kind::Dict);
  CHECK(od->get("a")->i == 1);
  auto p = run("(X\x07\x00\x00\x00storageK\x01tQ.");
  REQUIRE(p->kind == Kind::PersistentId);
  CHECK(p->args->items[1]->i == 1);
  CHECK(run("Pkey1\n.")->args->s == "key1");
  CHECK(run("\x80\x02\x63__builtin__\nset\n]K\x01" "a\x85R.")->items.size() == 1);
}

TEST_CASE("pickle: errors name the opcode, the offset and the file") {
  std::string e = error_of("\x80\x02K\x01\xff.");
  CHECK(has(e, "t.pkl"));
  CHECK(has(e, "unknown opcode 0xff"));
  CHECK(has(e, "byte 4"));
  e = error_of("K\x01");
  CHECK(has(e, "truncated"));
  e = error_of("X\x10\x00\x00\x00" "abc.");  // declared length beyond the input
  CHECK(has(e, "truncated"));
  CHECK(has(e, "BINUNICODE"));
  e = error_of(S({0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'}));
  CHECK(has(e, "truncated"));
  e = error_of("h\x03.");
  CHECK(has(e, "memo miss"));
  CHECK(has(e, "index 3"));
  e = error_of("\x80\x02\x86.");
  CHECK(has(e, "stack underflow"));
  CHECK(has(e, "TUPLE2"));
  CHECK(has(e, "byte 2"));
  CHECK(has(error_of("(\x85."), "stack underflow"));  // a MARK fences the stack
  CHECK(has(error_of("t."), "no MARK"));
  CHECK(has(error_of("\x80\x06N."), "protocol 6"));
  CHECK(has(error_of("K\x01K\x02u."), "no MARK"));
  CHECK(has(error_of("K\x01(K\x02u."), "odd number"));
  CHECK(has(error_of("K\x01(K\x02K\x03u."), "expects a dict"));
  CHECK(has(error_of("\x82\x01."), "EXT1"));
  CHECK(has(error_of(""), "no STOP"));
  // A list that contains itself is refused (the VM builds acyclic trees only).
  CHECK(has(error_of("]q\x00h\x00" "a."), "recursive"));
  // Deep nesting is refused.
  std::string deep = "]";
  for (int i = 0; i < 600; ++i) deep += "\x85";
  CHECK(has(error_of(deep + "."), "nested deeper"));
}

TEST_CASE("pickle: numpy arrays (Python-2 and Python-3 styles)") {
  PickleOptions opt;
  opt.allow_global = numpy_global_allowed;
  // Python-2 style: _reconstruct + BUILD (1, (2,), dtype('<f8'), False, BINSTRING data)
  std::string raw(16, '\0');
  const double v0 = 1.5, v1 = -2.0;
  std::memcpy(&raw[0], &v0, 8);
  std::memcpy(&raw[8], &v1, 8);
  const std::string p2 = B("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\n"
                                     "K\x00\x85U\x01\x62\x87R" "(K\x01K\x02\x85" "cnumpy\ndtype\n"
                                     "U\x02\x66\x38K\x00K\x01\x87R" "(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                                     "\x89T\x10\x00\x00\x00") + raw + "tb.";
  const NumpyArray a = numpy_array(run(p2, opt), "t.pkl", "x");
  CHECK(a.dtype_text() == "<f8");
  REQUIRE(a.shape.size() == 1);
  auto d = a.to_doubles();
  CHECK(d[0] == 1.5);
  CHECK(d[1] == -2.0);
  // Big-endian int16 in Fortran order, (2, 2): [[1, 2], [3, 4]] stored column-major 1 3 2 4.
  const std::string p3 = B("\x80\x02" "cnumpy.core.multiarray\n_reconstruct\n" "cnumpy\nndarray\n"
                                     "K\x00\x85" "C\x01\x62\x87R" "(K\x01K\x02K\x02\x86" "cnumpy\ndtype\n"
                                     "X\x02\x00\x00\x00i2\x89\x88\x87R" "(K\x03X\x01\x00\x00\x00>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                                     "\x88" "C\x08\x00\x01\x00\x03\x00\x02\x00\x04" "tb.");
  const NumpyArray b = numpy_array(run(p3, opt), "t.pkl", "y");
  CHECK(b.dtype_text() == ">i2");
  auto e = b.to_doubles();
  CHECK(e == std::vector<double>{1, 2, 3, 4});
  // _frombuffer(buf, dtype, shape, order)
  const std::string pf4 = B("\x80\x02" "cnumpy.core.numeric\n_frombuffer\n(" "C\x02\x05\x06" "cnumpy\ndtype\n"
                                      "X\x02\x00\x00\x00u1\x89\x88\x87R" "(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                                      "K\x02\x85X\x01\x00\x00\x00\x43tR.");
  CHECK(numpy_array(run(pf4, opt), "t.pkl", "z").to_doubles() == std::vector<double>{5, 6});
  // Shape and data disagree.
  std::string bad = p2;
  bad.replace(bad.find("(K\x01K\x02\x85"), 6, "(K\x01K\x03\x85");
  CHECK_THROWS_WITH_AS(numpy_array(run(bad, opt), "t.pkl", "x"), doctest::Contains("needs 24 bytes"), PickleError);
}
