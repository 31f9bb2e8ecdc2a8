// libFuzzer target: arbitrary bytes as a MAT-file through the SPC 2015 reading path
// (read_mat_double with a named variable, with "BPM0 or the only one", and the recording
// reader). Every failure must be a std::exception, never a crash or a leak.
#include <cstdint>
#include <exception>
#include <string>

#include "datasets/spc2015.h"
#include "fuzz/temp_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libmatio reads from a path only, so the input goes through a temp file.
  const std::string path = write_temp_input("input.mat", data, size);
  if (path.empty()) return 0;
  using namespace pulsekd::data;
  try {
    read_mat_double(path, "sig");
  } catch (const std::exception&) {
  }
  try {
    read_mat_double(path, "");
  } catch (const std::exception&) {
  }
  try {
    read_spc2015_recording(path, path);
  } catch (const std::exception&) {
  }
  return 0;
}
