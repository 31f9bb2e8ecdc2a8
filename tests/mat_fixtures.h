// Small MAT-5 files written with libmatio: what tests/test_spc2015.cpp reads back and
// tools/make_fuzz_seeds.cpp writes as fuzz seeds (fuzz/corpus/mat/).
#pragma once
#include <matio.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/spc2015.h"

namespace pulsekd::testing {

// Writes one double matrix `name` (rows x cols, column-major data) into a new MAT-5 file.
inline void write_mat(const std::filesystem::path& path, const char* name, size_t rows, size_t cols,
                      const std::vector<double>& data, bool compress = true, matio_classes cls = MAT_C_DOUBLE) {
  mat_t* m = Mat_CreateVer(path.string().c_str(), nullptr, MAT_FT_MAT5);
  if (!m) throw std::runtime_error(path.string() + ": cannot create the MAT-file");
  size_t dims[2] = {rows, cols};
  std::vector<float> f(data.begin(), data.end());
  matvar_t* v = cls == MAT_C_SINGLE
                    ? Mat_VarCreate(name, MAT_C_SINGLE, MAT_T_SINGLE, 2, dims, f.data(), 0)
                    : Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims,
                                    const_cast<double*>(data.data()), 0);
  const bool written = v && Mat_VarWrite(m, v, compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE) == 0;
  if (v) Mat_VarFree(v);
  Mat_Close(m);
  if (!written) throw std::runtime_error(path.string() + ": cannot write variable '" + name + "'");
}

// A tiny valid recording: `rows` x n signal (sines) and its W labels.
inline void write_recording(const std::filesystem::path& sig, const std::filesystem::path& lab, size_t rows, size_t n,
                            const char* label_var = "BPM0", long label_delta = 0) {
  std::vector<double> s(rows * n);
  for (size_t c = 0; c < n; ++c)
    for (size_t r = 0; r < rows; ++r) s[c * rows + r] = std::round(100 * std::sin(0.05 * (r + 1) * c));  // integers: small files
  write_mat(sig, "sig", rows, n, s);
  const size_t W = static_cast<size_t>(data::spc_expected_windows(static_cast<int64_t>(n)) + label_delta);
  write_mat(lab, label_var, W, 1, std::vector<double>(W, 80.0));
}

}  // namespace pulsekd::testing
