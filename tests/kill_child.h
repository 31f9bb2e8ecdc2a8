// The built pulsekd binary run as a child process and killed with SIGKILL, for the crash tests
// (tests/test_crash.cpp). Two ways to choose the moment, neither of which changes the program:
//  - kill_when: poll the filesystem (e.g. until a state file appears), then kill;
//  - run_traced: follow the child's main thread with ptrace and kill it on entering its k-th
//    rename(2). Every file pulsekd writes goes through write_file_atomic (engine/atomic_file.h),
//    whose last step is that rename: the kill then lands after the temporary was written and
//    fsynced, before it replaces the target, the same point in every run.
#pragma once
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "tests/run_pulsekd.h"

namespace pulsekd::testing {

struct ChildRun {
  bool killed = false;               // SIGKILL sent before the child ended on its own
  int exit_code = -1;                // the exit status when it ended on its own (-1: by a signal)
  std::vector<std::string> renamed;  // run_traced: the new path of each rename entered, in order
};

// Starts pulsekd ARGS with stdout and stderr appended to `log`. A traced child stops itself
// before exec for run_traced to attach its options; LeakSanitizer (sanitizer builds) cannot
// run in a traced process (it attaches with ptrace itself), so the traced child goes without it.
inline pid_t spawn_pulsekd(const std::vector<std::string>& args, const std::string& log, bool traced) {
  std::vector<std::string> argv_s = {pulsekd_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
    if (traced) {
      const char* asan = std::getenv("ASAN_OPTIONS");
      setenv("ASAN_OPTIONS", (std::string(asan ? asan : "") + ":detect_leaks=0").c_str(), 1);
      if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(125);
      raise(SIGSTOP);
    }
    std::vector<char*> argv;  // (args + 2) pointers into argv_s, null-terminated
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// waitpid without EINTR failures.
inline int wait_child(pid_t pid, int flags = 0) {
  int st = 0;
  pid_t w;
  while ((w = waitpid(pid, &st, flags)) < 0 && errno == EINTR) {
  }
  if (w < 0) FAIL("waitpid failed: " << std::strerror(errno));  // not REQUIRE: called at every traced stop
  return w == 0 ? -1 : st;  // -1: WNOHANG and still running
}

inline ChildRun finished(int st) {
  ChildRun r;
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline void kill_and_reap(pid_t pid, ChildRun& r) {
  REQUIRE(kill(pid, SIGKILL) == 0);
  const int st = wait_child(pid);
  CHECK((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
  r.killed = true;
}

// Runs pulsekd ARGS to its end; its exit status.
inline int run_to_end(const std::vector<std::string>& args, const std::string& log) {
  return finished(wait_child(spawn_pulsekd(args, log, false))).exit_code;
}

// Runs pulsekd ARGS, polling `ready` every millisecond; kills it as soon as `ready` holds.
inline ChildRun kill_when(const std::vector<std::string>& args, const std::string& log, const std::function<bool()>& ready) {
  const pid_t pid = spawn_pulsekd(args, log, false);
  for (;;) {
    const int st = wait_child(pid, WNOHANG);
    if (st != -1) return finished(st);
    if (ready()) break;
    usleep(1000);
  }
  ChildRun r;
  kill_and_reap(pid, r);
  return r;
}

// A NUL-terminated string at `addr` in the stopped tracee.
inline std::string tracee_string(pid_t pid, uint64_t addr) {
  std::string s;
  for (;;) {
    errno = 0;
    const long word = ptrace(PTRACE_PEEKDATA, pid, reinterpret_cast<void*>(addr + s.size()), nullptr);
    if (errno != 0) return s;
    for (size_t i = 0; i < sizeof word; ++i) {
      const char c = reinterpret_cast<const char*>(&word)[i];
      if (c == '\0' || s.size() > 4096) return s;
      s.push_back(c);
    }
  }
}

// Whether the call entered is a rename; if so `to` is its new path.
inline bool rename_target(pid_t pid, const __ptrace_syscall_info& in, std::string& to) {
#ifdef SYS_rename
  if (in.entry.nr == SYS_rename) {
    to = tracee_string(pid, in.entry.args[1]);
    return true;
  }
#endif
  if (in.entry.nr != SYS_renameat && in.entry.nr != SYS_renameat2) return false;
  to = tracee_string(pid, in.entry.args[3]);
  return true;
}

// Runs pulsekd ARGS under ptrace and kills it on entering its kill_at-th rename (1-based; 0:
// never), before the rename happens. Only the main thread is traced: pulsekd writes its files
// from it, and its worker threads run untraced.
inline ChildRun run_traced(const std::vector<std::string>& args, const std::string& log, size_t kill_at) {
  const pid_t pid = spawn_pulsekd(args, log, true);
  int st = wait_child(pid);  // stopped by its own SIGSTOP
  REQUIRE(WIFSTOPPED(st));
  REQUIRE(ptrace(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACEEXEC) == 0);
  ChildRun r;
  int deliver = 0;  // a signal stopped at, passed on when resuming
  for (;;) {
    if (ptrace(PTRACE_SYSCALL, pid, nullptr, reinterpret_cast<void*>(long(deliver))) != 0) FAIL("PTRACE_SYSCALL failed");
    deliver = 0;
    st = wait_child(pid);
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      const std::vector<std::string> seen = std::move(r.renamed);
      r = finished(st);
      r.renamed = seen;
      return r;
    }
    const int sig = WSTOPSIG(st);
    if (sig == (SIGTRAP | 0x80)) {  // a system call's entry or exit
      __ptrace_syscall_info in{};
      if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, reinterpret_cast<void*>(sizeof in), &in) <= 0) FAIL("PTRACE_GET_SYSCALL_INFO failed");
      std::string to;
      if (in.op == PTRACE_SYSCALL_INFO_ENTRY && rename_target(pid, in, to)) {
        r.renamed.push_back(to);
        if (r.renamed.size() == kill_at) {
          kill_and_reap(pid, r);
          return r;
        }
      }
    } else if (!(sig == SIGTRAP && (st >> 16) != 0)) {  // not a ptrace event (exec): a real signal
      deliver = sig;
    }
  }
}

}  // namespace pulsekd::testing
