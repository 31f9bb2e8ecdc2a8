#include "engine/tensor.h"

#include <cstring>
#include <limits>
#include <sstream>

namespace pulsekd {

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

Shape::Shape(std::initializer_list<int64_t> dims) {
  if (dims.size() > kMaxDims) throw ShapeError("tensor: more than 4 dimensions");
  for (int64_t v : dims) {
    if (v < 0) throw ShapeError("tensor: negative dimension");
    d[ndim++] = v;
  }
}

Shape Shape::of(const std::vector<int64_t>& dims) {
  if (dims.size() > kMaxDims)
    throw ShapeError("tensor: " + std::to_string(dims.size()) + " dimensions, at most 4 supported");
  Shape s;
  for (int64_t v : dims) {
    if (v < 0) throw ShapeError("tensor: negative dimension");
    s.d[s.ndim++] = v;
  }
  return s;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= d[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; ++i)
    if (d[i] != o.d[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < ndim; ++i) s << (i ? ", " : "") << d[i];
  s << "]";
  return s.str();
}

namespace {
constexpr size_t kAlignReals = 64 / sizeof(real);
size_t round_up(size_t n) { return (n + kAlignReals - 1) / kAlignReals * kAlignReals; }
}  // namespace

Arena::Arena(size_t initial_reals) { add_block(initial_reals); }

void Arena::add_block(size_t n) {
  Block b;
  // over-allocate to align the first element to 64 bytes
  b.mem.reset(new real[n + kAlignReals]);
  b.size = n;
  blocks_.push_back(std::move(b));
}

real* Arena::alloc(size_t n) {
  n = round_up(n ? n : 1);
  Block* b = &blocks_.back();
  if (b->used + n > b->size) {
    add_block(std::max(n, b->size * 2));
    b = &blocks_.back();
  }
  auto base = reinterpret_cast<uintptr_t>(b->mem.get());
  const uintptr_t aligned = (base + 63) & ~uintptr_t(63);
  real* p = reinterpret_cast<real*>(aligned) + b->used;
  b->used += n;
  return p;
}

real* Arena::alloc_zero(size_t n) {
  real* p = alloc(n);
  std::memset(p, 0, n * sizeof(real));
  return p;
}

Tensor Arena::tensor(const Shape& s) { return Tensor{alloc(s.numel()), s}; }
Tensor Arena::zeros(const Shape& s) { return Tensor{alloc_zero(s.numel()), s}; }

size_t Arena::used_reals() const {
  size_t u = 0;
  for (auto& b : blocks_) u += b.used;
  return u;
}

size_t Arena::capacity_reals() const {
  size_t u = 0;
  for (auto& b : blocks_) u += b.size;
  return u;
}

void Arena::reset() {
  if (blocks_.size() > 1) {
    const size_t total = capacity_reals();
    blocks_.clear();
    add_block(total);
  } else {
    blocks_.back().used = 0;
  }
}

}  // namespace pulsekd
