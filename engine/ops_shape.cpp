// Shape ops: reshape, flatten, slice, concat, transpose. Each copies (no views), so every
// node's memory is its own; backward adds the output gradient back at the source positions.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.h"
#include "engine/op_util.h"

namespace pulsekd {

using detail::add_into;
using detail::fail;
using detail::graph_of;
using detail::norm_axis;
using detail::split_axis;

Var reshape(Var x, const Shape& s) {
  Graph& g = graph_of("reshape", {x});
  if (s.numel() != x.shape().numel())
    fail("reshape", "cannot reshape " + x.shape().str() + " into " + s.str());
  // A view would alias the input; a copy keeps every node's memory its own (cheap here).
  Tensor out = g.new_tensor(s);
  std::memcpy(out.data, x.data(), sizeof(real) * out.numel());
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    add_into(g.grad(xid).data, go.data, go.numel());
  }, "reshape");
}

Var flatten(Var x, int start_dim) {
  const Shape xs = x.shape();
  const int sd = norm_axis("flatten", start_dim, xs.ndim);
  Shape s;
  for (int i = 0; i < sd; ++i) s.d[s.ndim++] = xs[i];
  int64_t rest = 1;
  for (int i = sd; i < xs.ndim; ++i) rest *= xs[i];
  s.d[s.ndim++] = rest;
  return reshape(x, s);
}

Var slice(Var x, int axis, int64_t start, int64_t end) {
  const char* op = "slice";
  Graph& g = graph_of(op, {x});
  const int a = norm_axis(op, axis, x.shape().ndim);
  int64_t outer, len, inner;
  split_axis(x.shape(), a, outer, len, inner);
  if (start < 0 || end > len || start >= end)
    fail(op, "range [" + std::to_string(start) + ", " + std::to_string(end) + ") outside axis " + std::to_string(axis) + " of " + x.shape().str());
  Shape os = x.shape();
  os[a] = end - start;
  Tensor out = g.new_tensor(os);
  const int64_t w = (end - start) * inner;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data + o * w, x.data() + (o * len + start) * inner, sizeof(real) * w);
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    real* dx = g.grad(xid).data;
    for (int64_t o = 0; o < outer; ++o) add_into(dx + (o * len + start) * inner, go.data + o * w, w);
  }, op);
}

Var concat(const std::vector<Var>& xs, int axis) {
  const char* op = "concat";
  if (xs.empty()) fail(op, "no inputs");
  Graph& g = graph_of(op, {xs[0]});
  const Shape s0 = xs[0].shape();
  const int a = norm_axis(op, axis, s0.ndim);
  int64_t total = 0;
  for (const Var& v : xs) {
    if (v.g != &g) fail(op, "inputs belong to different graphs");
    Shape s = v.shape();
    if (s.ndim != s0.ndim) fail(op, "ranks differ: " + s0.str() + " vs " + s.str());
    for (int i = 0; i < s.ndim; ++i)
      if (i != a && s[i] != s0[i]) fail(op, "shapes differ off the concat axis: " + s0.str() + " vs " + s.str());
    total += s[a];
  }
  Shape os = s0;
  os[a] = total;
  Tensor out = g.new_tensor(os);
  int64_t outer, len, inner;
  split_axis(os, a, outer, len, inner);
  std::vector<int> ids;
  std::vector<int64_t> lens;
  bool rg = false;
  int64_t off = 0;
  for (const Var& v : xs) {
    const int64_t l = v.shape()[a];
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out.data + (o * len + off) * inner, v.data() + o * l * inner, sizeof(real) * l * inner);
    off += l;
    ids.push_back(v.requires_grad() ? v.id : -1);
    lens.push_back(l);
    rg = rg || v.requires_grad();
  }
  return g.record(out, rg, [=, &g](const Tensor& go) {
    int64_t off2 = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      const int64_t l = lens[j];
      if (ids[j] >= 0) {
        real* dx = g.grad(ids[j]).data;
        for (int64_t o = 0; o < outer; ++o) add_into(dx + o * l * inner, go.data + (o * len + off2) * inner, l * inner);
      }
      off2 += l;
    }
  }, op);
}

Var transpose(Var x, int a, int b) {
  const char* op = "transpose";
  Graph& g = graph_of(op, {x});
  const Shape xs = x.shape();
  const int ia = norm_axis(op, a, xs.ndim), ib = norm_axis(op, b, xs.ndim);
  if (ia == ib) return x;
  Shape os = xs;
  std::swap(os.d[ia], os.d[ib]);
  Tensor out = g.new_tensor(os);
  // Pad to 4-D; out index (i0,i1,i2,i3) reads x at the index with axes a and b swapped.
  int64_t od[4] = {1, 1, 1, 1}, xstride[4] = {0, 0, 0, 0};
  for (int i = 0; i < os.ndim; ++i) od[i] = os[i];
  int64_t st = 1;
  for (int i = xs.ndim - 1; i >= 0; --i) {
    xstride[i] = st;
    st *= xs[i];
  }
  std::swap(xstride[ia], xstride[ib]);  // stride of out's axis i in x's memory
  const real* xd = x.data();
  int64_t idx = 0;
  for (int64_t i0 = 0; i0 < od[0]; ++i0)
    for (int64_t i1 = 0; i1 < od[1]; ++i1)
      for (int64_t i2 = 0; i2 < od[2]; ++i2)
        for (int64_t i3 = 0; i3 < od[3]; ++i3)
          out.data[idx++] = xd[i0 * xstride[0] + i1 * xstride[1] + i2 * xstride[2] + i3 * xstride[3]];
  const int xid = x.id;
  return g.record(out, x.requires_grad(), [=, &g](const Tensor& go) {
    real* dx = g.grad(xid).data;
    int64_t j = 0;
    for (int64_t i0 = 0; i0 < od[0]; ++i0)
      for (int64_t i1 = 0; i1 < od[1]; ++i1)
        for (int64_t i2 = 0; i2 < od[2]; ++i2)
          for (int64_t i3 = 0; i3 < od[3]; ++i3)
            dx[i0 * xstride[0] + i1 * xstride[1] + i2 * xstride[2] + i3 * xstride[3]] += go.data[j++];
  }, op);
}

}  // namespace pulsekd
