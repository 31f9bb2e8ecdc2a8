// Tensor: a view of contiguous row-major `real` values, up to 4-D, whose memory belongs to
// an Arena (activations, reset every step) or to a Parameter (persistent).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pulsekd {

// The engine's scalar. The float32 build trains; a double build of the same sources
// (PULSEKD_REAL_DOUBLE) runs the finite-difference gradient checks.
#ifdef PULSEKD_REAL_DOUBLE
using real = double;
#else
using real = float;
#endif

constexpr int kMaxDims = 4;

struct Shape {
  int ndim = 0;
  int64_t d[kMaxDims] = {1, 1, 1, 1};
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  static Shape of(const std::vector<int64_t>& dims);
  int64_t numel() const;
  int64_t operator[](int i) const { return d[i]; }
  int64_t& operator[](int i) { return d[i]; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(d, d + ndim); }
  std::string str() const;  // "[2, 3, 4]"
};

// Elements of a shape read from a file (any rank): -1 when a dimension is negative or the
// product overflows int64.
int64_t checked_numel(const std::vector<int64_t>& shape);

struct Tensor {
  real* data = nullptr;
  Shape shape;
  int64_t numel() const { return shape.numel(); }
  int ndim() const { return shape.ndim; }
  int64_t dim(int i) const { return shape.d[i]; }
  bool defined() const { return data != nullptr; }
};

// Bump allocator. One big block in steady state: reset() merges the blocks of the last step
// so the next step makes no allocation at all.
class Arena {
 public:
  explicit Arena(size_t initial_reals = 1 << 20);
  real* alloc(size_t n);          // 64-byte aligned, uninitialised
  real* alloc_zero(size_t n);     // zero-filled
  Tensor tensor(const Shape& s);  // uninitialised
  Tensor zeros(const Shape& s);
  void reset();
  size_t used_reals() const;
  size_t capacity_reals() const;

 private:
  struct Block {
    std::unique_ptr<real[]> mem;
    size_t size = 0, used = 0;
  };
  std::vector<Block> blocks_;
  void add_block(size_t n);
};

// Thrown for shape errors and other misuse of ops; the message names the op and the shapes.
struct ShapeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace pulsekd
