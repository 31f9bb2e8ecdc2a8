// Small file and text helpers shared by kd/ and the CLI.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "engine/atomic_file.h"  // write_file_atomic, used by every kd/ writer

namespace pulsekd::kd {

// Creates dir (and parents); throws naming it if that fails or it is not a directory.
void ensure_dir(const std::string& dir, const std::string& flag);
// The directories a run creates, removed again when the run fails before writing into them: the
// destructor, reached by an exception (a late bad flag, a missing teacher, Ctrl-C), removes each
// directory this object created (never one that existed before), deepest first, and only while
// it is empty. A successful run, or one that wrote something, keeps them.
class CreatedDirs {
 public:
  CreatedDirs();
  ~CreatedDirs();
  CreatedDirs(const CreatedDirs&) = delete;
  CreatedDirs& operator=(const CreatedDirs&) = delete;
  // ensure_dir, remembering dir and each parent that did not exist before.
  void ensure(const std::string& dir, const std::string& flag);

 private:
  std::vector<std::string> made_;  // in creation order: parents first
  int exceptions_;                 // std::uncaught_exceptions() at construction
};
// Appends one line to a file (JSON-lines logs), through the checked atomic write
// (engine/atomic_file.h append_file_atomic): a failure names the file and keeps the lines logged.
void append_line(const std::string& path, const std::string& line);
// A duration for progress lines, rounded to the second: "42s", "3m07s", "2h05m"; "?" when
// negative or not finite.
std::string format_duration(double seconds);
// Seconds elapsed since t0 (steady clock).
double seconds_since(std::chrono::steady_clock::time_point t0);
// "a,b,,c" -> {"a", "b", "c"}: a comma-separated list, empty items dropped.
std::vector<std::string> split_list(const std::string& csv);

}  // namespace pulsekd::kd
