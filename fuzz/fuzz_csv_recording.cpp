// libFuzzer target: arbitrary bytes as a user's CSV recording (`pulsekd predict --recording
// FILE.csv --rate HZ`, datasets/recording.h) and as a label file. The first byte picks the rate
// (16..79 Hz) and whether PPG1 and PPG2 are averaged; the rest is the file. Accepted recordings
// are cut into windows (resampling included). Every failure must be a std::exception.
#include <cstdint>
#include <exception>
#include <string>

#include "datasets/recording.h"
#include "fuzz/temp_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int rate = 16 + data[0] % 64;
  const bool mean_ppg = (data[0] & 64) != 0;
  const std::string path = write_temp_input("input.csv", data + 1, size - 1);
  if (path.empty()) return 0;
  using namespace pulsekd::data;
  try {
    const RawSignals rec = read_csv_recording(path, rate, mean_ppg);
    WindowSet ws;
    append_windows(ws, rec, "fuzz");
    if (ws.size() < 1 || ws.x.size() != static_cast<size_t>(ws.size()) * kWindowValues) __builtin_trap();
  } catch (const std::exception&) {
  }
  // The same bytes as labels of a valid 20 s recording (7 windows).
  static const std::string valid = [] {
    std::string csv = "ppg,acc_x,acc_y,acc_z\n";
    for (int i = 0; i < 20 * 16; ++i) csv += std::to_string(i % 7) + ",0,0,1\n";
    return write_temp_input("valid.csv", reinterpret_cast<const uint8_t*>(csv.data()), csv.size());
  }();
  if (valid.empty()) return 0;
  try {
    RecordingOptions opt;
    opt.path = valid;
    opt.rate_hz = 16;
    opt.labels = write_temp_input("labels.txt", data + 1, size - 1);
    read_recording(opt);
  } catch (const std::exception&) {
  }
  return 0;
}
