#include "formats/pickle_numpy.h"

#include <cstring>

#include "engine/tensor.h"

namespace pulsekd::data {
namespace {

using Kind = PyObject::Kind;

bool is_numpy_module(const std::string& m, const char* sub) {
  return m == std::string("numpy.core.") + sub || m == std::string("numpy._core.") + sub;
}

bool callable_is(const PyRef& v, const char* sub, const char* name) {
  return v && v->kind == Kind::Object && v->callable && v->callable->kind == Kind::Global &&
         is_numpy_module(v->callable->s, sub) && v->callable->name == name;
}

[[noreturn]] void bad(const std::string& what, const std::string& context, const std::string& msg) {
  throw PickleError(what + ": " + context + ": " + msg);
}

void parse_dtype(const PyRef& dt, NumpyArray& a, const std::string& what, const std::string& ctx) {
  if (!dt || dt->kind != Kind::Object || !dt->callable || !dt->callable->is_global("numpy", "dtype"))
    bad(what, ctx, "expected a numpy.dtype, got " + (dt ? dt->type_name() : std::string("nothing")));
  if (!dt->args || dt->args->kind != Kind::Tuple || dt->args->items.empty() || !dt->args->items[0]->is_text())
    bad(what, ctx, "numpy.dtype without a type string");
  const std::string t = dt->args->items[0]->s;
  std::string order = "=";
  if (dt->state && dt->state->kind == Kind::Tuple && dt->state->items.size() >= 2 &&
      dt->state->items[1]->is_text())
    order = dt->state->items[1]->s;
  std::string code = t;
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    order = code.substr(0, 1);
    code = code.substr(1);
  }
  const bool ok_code = code == "f4" || code == "f8" || code == "i1" || code == "i2" || code == "i4" ||
                       code == "i8" || code == "u1" || code == "u2" || code == "u4" || code == "u8" ||
                       code == "b1";
  if (!ok_code)
    bad(what, ctx, "unsupported numpy dtype '" + t + "' (expected a real number type: f4, f8, i1-i8, u1-u8 or b1)");
  if (order != "<" && order != ">" && order != "|" && order != "=")
    bad(what, ctx, "numpy dtype byte order '" + order + "' (expected <, >, | or =)");
  a.kind = code[0];
  a.itemsize = code[1] - '0';
  a.little_endian = order != ">";
}

void parse_shape(const PyRef& s, NumpyArray& a, const std::string& what, const std::string& ctx) {
  if (!s || s->kind != Kind::Tuple) bad(what, ctx, "numpy shape is not a tuple");
  a.shape.clear();
  for (const auto& d : s->items) {
    if (d->kind != Kind::Int || d->i < 0) bad(what, ctx, "numpy shape entries must be non-negative ints");
    a.shape.push_back(d->i);
  }
}

void check_size(const NumpyArray& a, const std::string& what, const std::string& ctx) {
  const int64_t n = a.numel();
  if (n < 0 || uint64_t(n) > a.raw.size() / uint64_t(a.itemsize) ||
      uint64_t(n) * uint64_t(a.itemsize) != a.raw.size()) {
    std::string sh = "(";
    for (size_t k = 0; k < a.shape.size(); ++k) sh += (k ? "," : "") + std::to_string(a.shape[k]);
    bad(what, ctx, "numpy array of shape " + sh + ") and dtype " + a.dtype_text() + " needs " +
                       (n < 0 ? std::string("more than 2^63 elements") : std::to_string(n * a.itemsize) + " bytes") +
                       ", data has " + std::to_string(a.raw.size()));
  }
}

}  // namespace

std::string NumpyArray::dtype_text() const {
  return std::string(itemsize == 1 ? "|" : little_endian ? "<" : ">") + kind + std::to_string(itemsize);
}

int64_t NumpyArray::numel() const { return checked_numel(shape); }

std::vector<double> NumpyArray::to_doubles() const {
  const int64_t n = numel();
  if (n < 0 || uint64_t(n) * uint64_t(itemsize) != raw.size())
    throw PickleError("numpy array: data size does not match shape");
  std::vector<double> out(static_cast<size_t>(n));  // (numel) row-major
  const uint8_t* p = reinterpret_cast<const uint8_t*>(raw.data());
  for (int64_t k = 0; k < n; ++k) {
    uint8_t b[8];
    for (int j = 0; j < itemsize; ++j) b[j] = p[k * itemsize + (little_endian ? j : itemsize - 1 - j)];
    double v = 0;
    uint64_t u = 0;
    for (int j = itemsize - 1; j >= 0; --j) u = (u << 8) | b[j];
    switch (kind) {
      case 'f':
        if (itemsize == 4) { float f; uint32_t u32 = uint32_t(u); std::memcpy(&f, &u32, 4); v = f; }
        else std::memcpy(&v, &u, 8);
        break;
      case 'i': {
        const int sh = 64 - 8 * itemsize;  // sign-extend
        v = double(int64_t(u << sh) >> sh);
        break;
      }
      default: v = double(u); break;  // 'u', 'b'
    }
    out[size_t(k)] = v;
  }
  if (fortran && shape.size() > 1 && n > 0) {
    // Column-major data: element (i0..ik) sits at sum(i_d * prod(shape[<d])).
    std::vector<double> c(out.size());  // (numel) row-major
    std::vector<int64_t> idx(shape.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
      int64_t off = 0, mul = 1;
      for (size_t d = 0; d < shape.size(); ++d) { off += idx[d] * mul; mul *= shape[d]; }
      c[size_t(k)] = out[size_t(off)];
      for (size_t d = shape.size(); d-- > 0;) {  // next row-major index
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
    out.swap(c);
  }
  return out;
}

bool numpy_global_allowed(const std::string& m, const std::string& n) {
  if (m == "numpy" && (n == "ndarray" || n == "dtype")) return true;
  if (is_numpy_module(m, "multiarray") && (n == "_reconstruct" || n == "scalar")) return true;
  if (is_numpy_module(m, "numeric") && n == "_frombuffer") return true;
  return false;
}

NumpyArray numpy_array(const PyRef& v, const std::string& what, const std::string& ctx) {
  NumpyArray a;
  if (callable_is(v, "multiarray", "_reconstruct")) {
    const PyRef& st = v->state;
    if (!st || st->kind != Kind::Tuple || (st->items.size() != 5 && st->items.size() != 4))
      bad(what, ctx, "numpy array without its (version, shape, dtype, is_fortran, data) state");
    const size_t o = st->items.size() == 5 ? 1 : 0;
    parse_shape(st->items[o], a, what, ctx);
    parse_dtype(st->items[o + 1], a, what, ctx);
    a.fortran = pickle_int(st->items[o + 2], what, ctx + ": is_fortran") != 0;
    const PyRef& raw = st->items[o + 3];
    if (raw->kind != Kind::Bytes)
      bad(what, ctx, "numpy array data is a " + raw->type_name() + " (expected raw bytes; object arrays are not supported)");
    a.raw = raw->s;
  } else if (callable_is(v, "numeric", "_frombuffer")) {
    const PyRef& args = v->args;
    if (!args || args->kind != Kind::Tuple || args->items.size() != 4)
      bad(what, ctx, "numpy _frombuffer expects (buffer, dtype, shape, order)");
    if (args->items[0]->kind != Kind::Bytes) bad(what, ctx, "numpy _frombuffer buffer is not bytes");
    a.raw = args->items[0]->s;
    parse_dtype(args->items[1], a, what, ctx);
    parse_shape(args->items[2], a, what, ctx);
    a.fortran = pickle_text(args->items[3], what, ctx + ": order") == "F";
  } else {
    bad(what, ctx, "expected a numpy array, got " + (v ? v->type_name() : std::string("nothing")));
  }
  check_size(a, what, ctx);
  return a;
}

}  // namespace pulsekd::data
