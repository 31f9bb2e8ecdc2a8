// ARM semihosting (bkpt 0xab; operation in r0, argument block in r1) for QEMU with
// -semihosting-config enable=on,target=native. Host file I/O is relative to QEMU's cwd.
#pragma once
#include <stdint.h>

static inline int32_t sh_call(int32_t op, const void* arg) {
  register int32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt #0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
static inline uint32_t sh_strlen(const char* s) {  // may compile to strlen (startup.c)
  uint32_t n = 0;
  while (s[n]) ++n;
  return n;
}
static inline void sh_puts(const char* s) { sh_call(0x04, s); }  // SYS_WRITE0
// mode 0 "r", 1 "rb", 4 "w", 5 "wb"
static inline int32_t sh_open(const char* path, int32_t mode) {
  const uint32_t a[3] = {(uint32_t)(uintptr_t)path, (uint32_t)mode, sh_strlen(path)};
  return sh_call(0x01, a);
}
static inline int32_t sh_close(int32_t fd) {
  const uint32_t a[1] = {(uint32_t)fd};
  return sh_call(0x02, a);
}
// returns the number of bytes NOT written / read
static inline int32_t sh_write(int32_t fd, const void* buf, uint32_t n) {
  const uint32_t a[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, n};
  return sh_call(0x05, a);
}
static inline int32_t sh_read(int32_t fd, void* buf, uint32_t n) {
  const uint32_t a[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, n};
  return sh_call(0x06, a);
}
static inline int32_t sh_flen(int32_t fd) {
  const uint32_t a[1] = {(uint32_t)fd};
  return sh_call(0x0C, a);
}
static inline void sh_exit(int32_t code) {  // SYS_EXIT_EXTENDED: QEMU exits with `code`
  const uint32_t a[2] = {0x20026u, (uint32_t)code};
  sh_call(0x20, a);
  for (;;) {
  }
}
