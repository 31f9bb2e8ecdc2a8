// Firmware entry: reads quantised input windows from the host file "input.bin" (int16
// little-endian, (n, rows, 256)), runs the model on each, writes the raw int32 outputs to
// "output.bin" and the measured peak stack to "stack.txt"; exits 0 on success, 2.. on an I/O error.
// Exported with --hmm-forward (model_data.h defines PK_HMM_STATES) it also runs the HMM forward
// filter on each output (pk_hmm.h) and writes the filtered heart rates (float32) to "hmm.bin".
#include "model_data.h"
#include "pk_model.h"
#include "semihost.h"
#ifdef PK_HMM_STATES
#include "pk_hmm.h"
static float pk_belief[PK_HMM_STATES];       // (S) the filter's state across windows
static float pk_hmm_scratch[PK_HMM_STATES];  // (S)
#endif

extern "C" uint32_t pk_stack_peak_bytes(void);  // startup.c: painted-stack watermark

// Input samples come straight from the host file into the model's arena (pk_infer_stream),
// so the firmware holds no window buffer.
struct file_reader {
  int32_t fd;
  int32_t failed;
};
static int32_t read_file(int16_t* dst, int32_t n, void* ctx) {
  file_reader* f = static_cast<file_reader*>(ctx);
  if (sh_read(f->fd, dst, (uint32_t)n * 2u) != 0) f->failed = 1;
  return f->failed;
}

static void put_u32(char* s, uint32_t v) {
  char tmp[12];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (int i = 0; i < n; ++i) s[i] = tmp[n - 1 - i];
  s[n] = 0;
}

extern "C" int main(void) {
  const int32_t fin = sh_open("input.bin", 1);
  if (fin < 0) {
    sh_puts("pk: cannot open input.bin\n");
    sh_exit(2);
  }
  const int32_t len = sh_flen(fin);
  const uint32_t per = (uint32_t)pk_the_model.rows * 256u * 2u;
  if (len <= 0 || (uint32_t)len % per != 0) {
    sh_puts("pk: input.bin size is not a multiple of one window\n");
    sh_exit(3);
  }
  const int32_t fout = sh_open("output.bin", 5);
  if (fout < 0) {
    sh_puts("pk: cannot open output.bin\n");
    sh_exit(4);
  }
#ifdef PK_HMM_STATES
  const int32_t fhmm = sh_open("hmm.bin", 5);
  if (fhmm < 0) {
    sh_puts("pk: cannot open hmm.bin\n");
    sh_exit(4);
  }
#endif
  const uint32_t n = (uint32_t)len / per;
  for (uint32_t i = 0; i < n; ++i) {
    file_reader fr = {fin, 0};
    const int32_t y = pk_infer_stream(read_file, &fr);
    if (fr.failed) sh_exit(5);
    if (sh_write(fout, &y, 4) != 0) sh_exit(6);
#ifdef PK_HMM_STATES
    const float hr = pk_hmm_step(&pk_the_hmm, y, pk_belief, pk_hmm_scratch, i == 0);
    pk_mark(pk_the_model.n_layers + 1);  // mcu-report counts the filter step up to here
    if (sh_write(fhmm, &hr, 4) != 0) sh_exit(6);
#endif
  }
  sh_close(fin);
  sh_close(fout);
#ifdef PK_HMM_STATES
  sh_close(fhmm);
#endif
  char msg[64] = "pk: windows ";
  put_u32(msg + 12, n);
  sh_puts(msg);
  sh_puts("\n");
  const int32_t fs = sh_open("stack.txt", 4);
  if (fs >= 0) {
    char s[16];
    put_u32(s, pk_stack_peak_bytes());
    sh_write(fs, s, sh_strlen(s));
    sh_close(fs);
  }
  sh_exit(0);
  return 0;
}
