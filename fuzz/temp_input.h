// For fuzz targets whose parser reads from a path (libmatio, load_checkpoint): writes the input
// to a per-process temporary file named `name` and returns its path ("" if it cannot be written).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

inline std::string write_temp_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/pulsekd_fuzz_" + std::to_string(::getpid()) + "_" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return "";
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}
