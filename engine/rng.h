// Seeded, platform-independent random numbers: the project's one generator. BasicRng holds the
// distributions (uniform, standard normal by Box-Muller, bounded integers), written out because
// the standard library's distributions differ between implementations; these do not. The bit
// source is xoshiro256** seeded by SplitMix64 (Rng) everywhere but the synthetic dataset and the
// batch shuffle, which draw from std::mt19937_64 (Mt64Rng; bit-exact by the standard) so that
// the data and orders every recorded result was computed on stay the same.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

namespace pulsekd {

// SplitMix64: a well-mixed 64-bit value of x (seeds derived from seeds).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// xoshiro256** (Blackman and Vigna); state word i = splitmix64(seed + i·0x9E3779B97F4A7C15).
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(uint64_t seed) {
    for (int i = 0; i < 4; ++i) s_[i] = splitmix64(seed + uint64_t(i) * 0x9E3779B97F4A7C15ull);
  }
  uint64_t operator()() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }

 private:
  uint64_t s_[4];
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
};

template <class Bits>
class BasicRng {
 public:
  explicit BasicRng(uint64_t seed = 0) : bits_(seed) {}
  void reseed(uint64_t seed) {
    bits_ = Bits(seed);
    has_spare_ = false;
  }
  uint64_t next_u64() { return bits_(); }
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }  // bias < 2^-40 for our n
  double normal() {  // Box-Muller, standard normal
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1;
    do u1 = uniform(); while (u1 <= 0.0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    has_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }

 private:
  Bits bits_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// A class, not an alias, so headers can forward-declare it.
class Rng : public BasicRng<Xoshiro256ss> {
 public:
  using BasicRng::BasicRng;
};
using Mt64Rng = BasicRng<std::mt19937_64>;

}  // namespace pulsekd
