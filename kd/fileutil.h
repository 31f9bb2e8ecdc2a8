// Small file and text helpers shared by kd/ and the CLI.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "engine/atomic_file.h"  // write_file_atomic, used by every kd/ writer

namespace pulsekd::kd {

// Creates dir (and parents); throws naming it if that fails or it is not a directory.
void ensure_dir(const std::string& dir, const std::string& flag);
// Appends one line to a file (JSON-lines logs).
void append_line(const std::string& path, const std::string& line);
// A duration for progress lines, rounded to the second: "42s", "3m07s", "2h05m"; "?" when
// negative or not finite.
std::string format_duration(double seconds);
// Seconds elapsed since t0 (steady clock).
double seconds_since(std::chrono::steady_clock::time_point t0);
// "a,b,,c" -> {"a", "b", "c"}: a comma-separated list, empty items dropped.
std::vector<std::string> split_list(const std::string& csv);

}  // namespace pulsekd::kd
