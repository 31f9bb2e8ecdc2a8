#include "datasets/spc2015.h"

#include "datasets/recording.h"

#include <matio.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>

#include "datasets/resample.h"

namespace pulsekd::data {
namespace fs = std::filesystem;
namespace {

// libmatio reports problems through a log callback (by default to stderr). Keep the last
// message so our exceptions can quote it instead of letting matio print.
thread_local std::string g_mat_last_message;
void mat_log(int /*level*/, char* message) { g_mat_last_message = message ? message : ""; }
void install_mat_logger() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("pulsekd", mat_log); });
}

struct MatCloser {
  void operator()(mat_t* m) const { Mat_Close(m); }
};
struct VarFreer {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};
using MatPtr = std::unique_ptr<mat_t, MatCloser>;
using VarPtr = std::unique_ptr<matvar_t, VarFreer>;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("spc2015: " + path + ": " + what);
}

// 2^25 doubles = 256 MB: 12 h of 6 rows at 125 Hz, far above any SPC recording (<= 41k
// samples), and low enough that a compressed "zip bomb" cannot exhaust memory.
constexpr size_t kMaxElements = size_t(1) << 25;

uint32_t le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }

// Header of one miMATRIX element (after decompression). libmatio trusts these sizes and
// allocates by them before any check of ours (a fuzzed file made it ask for 5 GB), so the
// structure is validated first: array flags, 2..16 dimensions, a short name, numeric class.
void check_matrix_header(const std::string& path, const unsigned char* b, size_t n) {
  if (n < 40) fail(path, "truncated MAT-file matrix header");
  if (le32(b) != 14) fail(path, "unexpected MAT-file element type " + std::to_string(le32(b)));
  if (le32(b + 8) != 6 || le32(b + 12) != 8) fail(path, "bad MAT-file array flags");
  const unsigned cls = b[16] & 0xFF;
  if (cls < 6 || cls > 15)  // cell, struct, object, char, sparse: never in these files
    fail(path, "MAT-file variable of class " + std::to_string(cls) + ", expected a numeric matrix");
  const uint32_t dt = le32(b + 24), dn = le32(b + 28);
  if (dt != 5 || dn < 8 || dn > 64 || dn % 4) fail(path, "bad MAT-file dimensions element");
  if (n >= 32 + dn + 8) {
    const uint32_t nt = le32(b + 32 + ((dn + 7) & ~7u));
    const uint32_t nl = (nt >> 16) ? (nt >> 16) : le32(b + 36 + ((dn + 7) & ~7u));
    if (nl > 4096) fail(path, "MAT-file variable name of " + std::to_string(nl) + " bytes");
  }
}

// Inflates one miCOMPRESSED element (at byte `off`, `n` compressed bytes) to its end and keeps
// its first 256 bytes in `head`. libmatio inflates without reporting zlib errors, so a damaged
// stream would be read as garbage samples; here a bad code, a wrong Adler-32 check value (zlib
// verifies it at the stream's end), a stream cut short, or more output than any accepted matrix
// is an error naming the file and the element.
void inflate_verified(const std::string& path, size_t off, const unsigned char* in, uint32_t n,
                      std::vector<unsigned char>& head) {
  const std::string where = "compressed MAT-file element at byte " + std::to_string(off);
  constexpr size_t kMaxInflated = kMaxElements * sizeof(double) + 4096;  // the data + headers
  std::vector<unsigned char> chunk(size_t(1) << 16);  // (64 KiB) output scratch
  z_stream z{};
  if (inflateInit(&z) != Z_OK) fail(path, "zlib init failed");
  z.next_in = const_cast<unsigned char*>(in);
  z.avail_in = n;
  size_t total = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = chunk.data();
    z.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&z, Z_NO_FLUSH);
    const size_t got = chunk.size() - z.avail_out;
    if (head.size() < 256) head.insert(head.end(), chunk.begin(), chunk.begin() + std::min(got, 256 - head.size()));
    total += got;
    if (total > kMaxInflated) rc = Z_MEM_ERROR;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // input exhausted before the end
  }
  const char* msg = z.msg;
  inflateEnd(&z);
  if (rc == Z_MEM_ERROR) fail(path, where + " inflates beyond " + std::to_string(kMaxInflated) + " bytes");
  if (rc != Z_STREAM_END)
    fail(path, where + " is damaged: " +
                   (rc == Z_DATA_ERROR ? std::string("zlib: ") + (msg ? msg : "data error") : std::string("the stream ends early")));
}

// Validates the element structure of a little-endian MAT-5 file before libmatio reads it.
void precheck_mat5(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<unsigned char> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (d.size() < 128 + 8) fail(path, "too short for a MAT-file (" + std::to_string(d.size()) + " bytes)");
  if (d[126] != 'I' || d[127] != 'M' || d[124] != 0x00 || d[125] != 0x01)
    fail(path, "not a little-endian MATLAB 5 MAT-file (v7.3/HDF5 and v4 files are not supported)");
  size_t off = 128;
  while (off + 8 <= d.size()) {
    const uint32_t type = le32(&d[off]), nbytes = le32(&d[off + 4]);
    if (nbytes > d.size() - off - 8)
      fail(path, "MAT-file element at byte " + std::to_string(off) + " claims " + std::to_string(nbytes) +
                     " bytes, beyond the end of the file");
    if (type == 15) {  // miCOMPRESSED: the matrix header is checked, the whole stream verified
      std::vector<unsigned char> head;
      inflate_verified(path, off, &d[off + 8], nbytes, head);
      check_matrix_header(path, head.data(), head.size());
      off += 8 + nbytes;
    } else if (type == 14) {
      check_matrix_header(path, &d[off], d.size() - off);
      off += 8 + ((static_cast<size_t>(nbytes) + 7) & ~size_t(7));
    } else {
      fail(path, "unexpected MAT-file top-level element type " + std::to_string(type));
    }
  }
}

}  // namespace

int64_t spc_expected_windows(int64_t n_samples) {
  if (n_samples < 1000) return 0;
  // Integer form of floor((N/125 - 8)/2) + 1 = floor((N - 1000)/250) + 1, no rounding issues.
  return (n_samples - 1000) / 250 + 1;
}

MatMatrix read_mat_double(const std::string& path, const std::string& var_in) {
  install_mat_logger();
  g_mat_last_message.clear();
  if (!fs::is_regular_file(path)) fail(path, "file not found");
  precheck_mat5(path);
  MatPtr mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY));
  if (!mat)
    fail(path, "not a readable MAT-file" +
                   (g_mat_last_message.empty() ? std::string() : " (" + g_mat_last_message + ")"));
  std::string var = var_in;
  if (var.empty()) {
    // Label files: "BPM0" or whatever the single variable is called.
    std::vector<std::string> names;
    while (true) {
      VarPtr info(Mat_VarReadNextInfo(mat.get()));
      if (!info) break;
      names.push_back(info->name ? info->name : "");
      if (names.size() > 64) break;
    }
    Mat_Rewind(mat.get());
    if (std::find(names.begin(), names.end(), "BPM0") != names.end()) var = "BPM0";
    else if (names.size() == 1 && !names[0].empty()) var = names[0];
    else
      fail(path, "expected a variable BPM0 or exactly one variable, found " +
                     std::to_string(names.size()));
  }
  VarPtr info(Mat_VarReadInfo(mat.get(), var.c_str()));
  if (!info) fail(path, "variable '" + var + "' not found");
  const std::string where = "variable '" + var + "'";
  if (info->class_type != MAT_C_DOUBLE) fail(path, where + " is not a double matrix");
  if (info->isComplex) fail(path, where + " is complex, expected real doubles");
  if (info->isLogical) fail(path, where + " is logical, expected doubles");
  if (info->rank != 2 || !info->dims) fail(path, where + " has rank " + std::to_string(info->rank) + ", expected a 2-D matrix");
  const size_t r = info->dims[0], c = info->dims[1];
  if (r == 0 || c == 0) fail(path, where + " is empty");
  if (r > kMaxElements || c > kMaxElements / r)
    fail(path, where + " is too large (" + std::to_string(r) + " x " + std::to_string(c) + ")");
  Mat_Rewind(mat.get());
  VarPtr v(Mat_VarRead(mat.get(), var.c_str()));
  if (!v || !v->data) fail(path, where + ": data could not be read (corrupt or truncated file)");
  if (v->class_type != MAT_C_DOUBLE || v->isComplex || v->rank != 2 || v->dims[0] != r ||
      v->dims[1] != c || v->data_size != sizeof(double) || v->nbytes < r * c * sizeof(double))
    fail(path, where + ": inconsistent header and data");
  MatMatrix m;
  m.rows = r;
  m.cols = c;
  const double* p = static_cast<const double*>(v->data);
  m.data.assign(p, p + r * c);
  for (size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      fail(path, where + " has a non-finite value at row " + std::to_string(i % r + 1) +
                     ", column " + std::to_string(i / r + 1));
  return m;
}

Spc2015Recording read_spc2015_recording(const std::string& signal_path,
                                        const std::string& label_path) {
  Spc2015Recording rec;
  rec.name = fs::path(signal_path).stem().string();
  rec.signal_path = signal_path;
  rec.label_path = label_path;
  const MatMatrix sig = read_mat_double(signal_path, "sig");
  if (sig.rows != 6 && sig.rows != 5)
    fail(signal_path, "variable 'sig' is " + std::to_string(sig.rows) + " x " +
                          std::to_string(sig.cols) +
                          ", expected 6 x N (ECG, PPG1, PPG2, ACCx, ACCy, ACCz) or 5 x N (no ECG)");
  const size_t n = sig.cols;
  const int64_t W = spc_expected_windows(static_cast<int64_t>(n));
  if (W < 1) fail(signal_path, "only " + std::to_string(n) + " samples, need >= 1000 (8 s at 125 Hz)");
  const size_t off = sig.rows == 6 ? 1 : 0;  // row index of PPG1
  const auto row = [&](size_t r) {
    std::vector<float> v(n);  // (N)
    for (size_t c = 0; c < n; ++c) v[c] = static_cast<float>(sig.at(r, c));
    return v;
  };
  if (off) rec.ecg = row(0);
  rec.ppg1 = row(off);
  rec.ppg2 = row(off + 1);
  for (int a = 0; a < 3; ++a) rec.acc[a] = row(off + 2 + a);

  if (label_path.empty()) return rec;  // unlabelled (pulsekd predict --recording)
  const MatMatrix lab = read_mat_double(label_path, "");
  if (lab.rows != 1 && lab.cols != 1)
    fail(label_path, "labels are " + std::to_string(lab.rows) + " x " + std::to_string(lab.cols) +
                         ", expected a W x 1 vector");
  if (static_cast<int64_t>(lab.data.size()) != W)
    fail(label_path, std::to_string(lab.data.size()) + " labels, expected W = floor((N/125 - 8)/2) + 1 = " +
                         std::to_string(W) + " for N = " + std::to_string(n) + " samples of " +
                         signal_path);
  rec.bpm.assign(lab.data.begin(), lab.data.end());
  for (size_t k = 0; k < rec.bpm.size(); ++k)
    if (!(rec.bpm[k] > 20 && rec.bpm[k] < 300))
      fail(label_path, "label " + std::to_string(k) + " = " + std::to_string(rec.bpm[k]) +
                           " BPM is outside 20..300");
  return rec;
}

namespace {

struct Pair {
  std::string name, signal, label;
};

// Recordings found directly in `folder` (see the header for the three naming patterns).
std::vector<Pair> scan_folder(const fs::path& folder, const Spc2015Options& opt) {
  static const std::regex train(R"(DATA_\d+_TYPE\d+\.mat)"), extra(R"(DATA_S\d+_T\d+\.mat)"),
      test(R"(TEST_S\d+_T\d+\.mat)");
  std::vector<Pair> out;
  for (const auto& e : fs::directory_iterator(folder)) {
    if (!e.is_regular_file()) continue;
    const std::string f = e.path().filename().string();
    const std::string stem = e.path().stem().string();
    fs::path label;
    if (std::regex_match(f, train)) {
      label = folder / (stem + "_BPMtrace.mat");
    } else if (std::regex_match(f, extra)) {
      if (!opt.include_extra) continue;
      label = folder / ("BPM_" + stem.substr(5) + ".mat");
    } else if (std::regex_match(f, test)) {
      const std::string lf = "True_" + stem.substr(5) + ".mat";
      label = folder / "TrueBPM" / lf;
      if (!fs::exists(label)) label = folder.parent_path() / "TrueBPM" / lf;
      if (!fs::exists(label)) label = folder / lf;
      if (!fs::exists(label))
        fail(e.path().string(), "no label file " + lf + " in TrueBPM/ beside or inside " +
                                    folder.string());
    } else {
      continue;
    }
    if (!fs::exists(label))
      fail(e.path().string(), "label file " + label.string() + " is missing");
    out.push_back({stem, e.path().string(), label.string()});
  }
  std::sort(out.begin(), out.end(), [](const Pair& a, const Pair& b) { return a.name < b.name; });
  return out;
}

}  // namespace

std::vector<Spc2015Recording> load_spc2015_raw(const std::string& dir, const Spc2015Options& opt) {
  const fs::path root(dir);
  if (!fs::is_directory(root))
    throw std::runtime_error("spc2015: directory '" + dir + "' does not exist");
  std::vector<Pair> pairs;
  if (fs::is_directory(root / "Training_data")) {
    pairs = scan_folder(root / "Training_data", opt);
    if (opt.include_extra && fs::is_directory(root / "Extra_TrainingData")) {
      auto extra = scan_folder(root / "Extra_TrainingData", opt);
      pairs.insert(pairs.end(), extra.begin(), extra.end());
    }
  } else {
    pairs = scan_folder(root, opt);
    if (pairs.empty() && fs::is_directory(root / "TestData")) pairs = scan_folder(root / "TestData", opt);
  }
  if (pairs.empty())
    throw std::runtime_error("spc2015: no recordings in '" + dir +
                             "' (expected Training_data/DATA_xx_TYPEyy.mat, DATA_Sxx_Tyy.mat or "
                             "TEST_Sxx_Tyy.mat files)");
  std::vector<Spc2015Recording> recs;
  for (const auto& p : pairs) recs.push_back(read_spc2015_recording(p.signal, p.label));
  return recs;
}

RawSignals spc_signals(const Spc2015Recording& r, const Spc2015Options& opt) {
  RawSignals s;
  s.name = r.name;
  s.rate_hz = static_cast<int>(kSpcRateHz);
  s.ppg = r.ppg1;
  if (opt.ppg == Spc2015Options::Mean12)
    for (size_t i = 0; i < s.ppg.size(); ++i) s.ppg[i] = 0.5f * (r.ppg1[i] + r.ppg2[i]);
  else if (opt.keep_ppg2)
    s.ppg2 = r.ppg2;
  for (int a = 0; a < 3; ++a) s.acc[a] = r.acc[a];
  s.bpm = r.bpm;
  return s;
}

WindowSet spc2015_windows(const std::vector<Spc2015Recording>& recs, const Spc2015Options& opt,
                          const std::string& source) {
  WindowSet ws;
  ws.source = source;
  for (const auto& r : recs) {
    if (!r.bpm.empty() && static_cast<int64_t>(r.bpm.size()) != spc_expected_windows(r.n()))
      fail(r.label_path, "labels do not match the recording's " + std::to_string(spc_expected_windows(r.n())) + " windows");
    append_windows(ws, spc_signals(r, opt), r.ecg.empty() ? "PPG, ACC 125 Hz" : "ECG, PPG, ACC 125 Hz");
  }
  return ws;
}

WindowSet load_spc2015(const std::string& dir, const Spc2015Options& opt) {
  return spc2015_windows(load_spc2015_raw(dir, opt), opt, "spc2015:" + dir);
}

}  // namespace pulsekd::data
