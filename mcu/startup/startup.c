// Reset and fault handling for QEMU mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7):
// vector table first in flash, copy .data, zero .bss, paint the stack (for the peak-stack
// measurement), enable the FPU, call main. Faults report through semihosting and exit 1xx.
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack, _sstack;
extern int main(void);

static inline int32_t sh_call_(int32_t op, const void* arg) {
  register int32_t r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt #0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
static void fail(const char* msg, uint32_t code) {
  sh_call_(0x04, msg);
  const uint32_t a[2] = {0x20026u, code};
  sh_call_(0x20, a);
  for (;;) {
  }
}

#define STACK_PAINT 0xC0FFEE11u

// Bytes of stack ever used since reset: the deepest word that lost its paint.
uint32_t pk_stack_peak_bytes(void) {
  const uint32_t* p = &_sstack;
  while (p < &_estack && *p == STACK_PAINT) ++p;
  return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

void Reset_Handler(void) {
  uint32_t* s = &_sidata;
  for (uint32_t* d = &_sdata; d < &_edata;) *d++ = *s++;
  for (uint32_t* d = &_sbss; d < &_ebss;) *d++ = 0;
  // paint the stack below the current frame
  uint32_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t* d = &_sstack; d < sp - 16; ++d) *d = STACK_PAINT;
  // FPU on (CPACR CP10/CP11 full access)
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");
  const int rc = main();
  const uint32_t a[2] = {0x20026u, (uint32_t)rc};
  sh_call_(0x20, a);
  for (;;) {
  }
}

void NMI_Handler(void) { fail("pk: NMI\n", 101); }
void HardFault_Handler(void) { fail("pk: HardFault\n", 102); }
void MemManage_Handler(void) { fail("pk: MemManage fault\n", 103); }
void BusFault_Handler(void) { fail("pk: BusFault\n", 104); }
void UsageFault_Handler(void) { fail("pk: UsageFault\n", 105); }
void Default_Handler(void) { fail("pk: unexpected interrupt\n", 106); }

__attribute__((section(".vectors"), used)) void (*const pk_vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, NMI_Handler, HardFault_Handler, MemManage_Handler,
    BusFault_Handler, UsageFault_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler};

// C++ support without the standard library
void* __dso_handle = 0;

// The few C library routines GCC may emit calls to (-nostdlib links no libc).
#define PK_NO_PATTERNS __attribute__((optimize("no-tree-loop-distribute-patterns")))
typedef __SIZE_TYPE__ pk_size_t;
PK_NO_PATTERNS void* memcpy(void* d, const void* s, pk_size_t n) {
  uint8_t* dd = (uint8_t*)d;
  const uint8_t* ss = (const uint8_t*)s;
  while (n--) *dd++ = *ss++;
  return d;
}
PK_NO_PATTERNS void* memmove(void* d, const void* s, pk_size_t n) {
  uint8_t* dd = (uint8_t*)d;
  const uint8_t* ss = (const uint8_t*)s;
  if (dd < ss) {
    while (n--) *dd++ = *ss++;
  } else {
    while (n--) dd[n] = ss[n];
  }
  return d;
}
PK_NO_PATTERNS void* memset(void* d, int c, pk_size_t n) {
  uint8_t* dd = (uint8_t*)d;
  while (n--) *dd++ = (uint8_t)c;
  return d;
}
PK_NO_PATTERNS pk_size_t strlen(const char* s) {
  pk_size_t n = 0;
  while (s[n]) ++n;
  return n;
}
