/* QEMU TCG plugin: counts executed guest instructions and writes the running count at every
 * entry of the firmware's marker function pk_mark (mcu/runtime/pk_model.h), one line per call:
 *   mark <running instruction count>
 * The host side (`pulsekd mcu-report`) turns the differences into per-layer counts, knowing the
 * marker sequence. Symbols come from the ELF QEMU loaded, so no addresses are needed.
 * Build: cc -shared -fPIC -O2 -o libpk_count.so pk_count.c
 * Use:   qemu-system-arm ... -plugin ./libpk_count.so,out=marks.txt[,marker=pk_mark]
 * Counts include the marker's own instructions and are identical from run to run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t g_insns;   /* incremented inline before every executed instruction */
static FILE* g_out;
static char g_marker[128] = "pk_mark";
static uint64_t g_marker_addr = UINT64_MAX; /* lowest address seen with the marker's symbol */

static void on_mark(unsigned int vcpu, void* udata) {
  (void)vcpu;
  (void)udata;
  if (g_out) fprintf(g_out, "mark %llu\n", (unsigned long long)g_insns);
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_insns, 1);
    /* A call enters a function at its first instruction, which starts a translation block. */
    if (i == 0) {
      const char* sym = qemu_plugin_insn_symbol(insn);
      if (sym && strcmp(sym, g_marker) == 0) {
        const uint64_t a = qemu_plugin_insn_vaddr(insn);
        if (a <= g_marker_addr) {
          g_marker_addr = a;
          qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
      }
    }
  }
}

static void on_exit_cb(qemu_plugin_id_t id, void* udata) {
  (void)id;
  (void)udata;
  if (g_out) {
    fprintf(g_out, "total %llu\n", (unsigned long long)g_insns);
    fclose(g_out);
    g_out = NULL;
  }
}
static void flush_at_exit(void) { on_exit_cb(0, NULL); }

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                                              char** argv) {
  (void)info;
  const char* out = "pk_count.txt";
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "out=", 4) == 0) out = argv[i] + 4;
    else if (strncmp(argv[i], "marker=", 7) == 0 && strlen(argv[i] + 7) < sizeof g_marker) strcpy(g_marker, argv[i] + 7);
  }
  g_out = fopen(out, "w");
  if (!g_out) {
    fprintf(stderr, "pk_count: cannot write %s\n", out);
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
  qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
  atexit(flush_at_exit); /* semihosting exit may bypass QEMU's plugin atexit hook */
  return 0;
}
