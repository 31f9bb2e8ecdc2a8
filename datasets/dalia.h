// PPG-DaLiA (Reiss, Indlekofer, Schmidt, Van Laerhoven, "Deep PPG: Large-scale heart rate
// estimation with convolutional neural networks", Sensors 19(14):3079, 2019):
// DIR/S{i}/S{i}.pkl, i = 1..15, a Python-2 pickle of
//   {'signal': {'wrist': {'ACC' (N,3) 32 Hz in 1/64 g, 'BVP' (M,1) 64 Hz, ...}, 'chest': {...}},
//    'label': (W,) heart rate per 8 s window with 2 s shift, ...}
// read through the pickle VM (numpy arrays decoded, nothing executed).
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "formats/pickle.h"

namespace pulsekd::data {

class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DaliaOptions {
  // false = the authors' every-second-sample BVP decimation (default, so published numbers
  // reproduce); true = anti-aliasing polyphase resampler (resample_poly(bvp, 1, 2)).
  bool antialias_bvp = false;
  std::vector<int> subjects;  // empty = all of S1..S15 found
};

// Rows [PPG, accX, accY, accZ] at 32 Hz, 256-sample windows, 64-sample shift. Window k covers
// ACC samples [64k, 64k+256) and BVP [128k, 128k+512); label[k] as shipped; the number of
// windows is min(label count, windows that fit). ACC stays in raw units (1/64 g).
WindowSet load_dalia(const std::string& dir, const DaliaOptions& options = {});

// ---- shared with the WESAD reader (same wrist device, same pickle style)
namespace wrist {

// Unpickles a subject file with the numpy globals allowed; errors name `path`.
PyRef load_pickle_file(const std::string& path);
// root[k0][k1]... as a dict value; throws naming the file and the missing key path.
PyRef lookup(const PyRef& root, const std::vector<std::string>& keys, const std::string& path);
// A numeric numpy array of shape (n) or (n, cols), as float, every sample finite.
std::vector<float> signal(const PyRef& v, int cols, const std::string& path, const std::string& key,
                          size_t* rows);

struct Signals {
  std::vector<float> bvp;  // (n_bvp) 64 Hz
  std::vector<float> acc;  // (n_acc, 3) 32 Hz, row-major
  size_t n_bvp = 0, n_acc = 0;
};
Signals read(const PyRef& root, const std::string& path);
// Windows that fit in both signals.
int64_t windows_that_fit(const Signals& s);
// Appends windows 0..labels.size()-1 of one subject to `out` and its SubjectInfo.
void append(WindowSet& out, const Signals& s, bool antialias_bvp, const std::vector<float>& labels,
            SubjectInfo info);
// Subjects to read: `requested` (each must be in `valid` and exist) or every one of `valid`
// whose DIR/S{i}/S{i}.pkl exists; none found is an error naming `dir` and the layout.
std::vector<int> subjects(const std::string& dir, const std::vector<int>& valid,
                          const std::vector<int>& requested, const std::string& dataset);
std::string subject_path(const std::string& dir, int i);
// One label per window 0..n-1 (n <= windows_that_fit) from a subject's pickle.
using LabelFn = std::function<std::vector<float>(const PyRef& root, const std::string& path, const Signals& s)>;
// Reads the selected subjects of a dataset in subject order.
WindowSet load_all(const std::string& dir, const std::vector<int>& valid, const std::vector<int>& requested,
                   const std::string& dataset, const std::string& source, bool antialias_bvp,
                   const std::string& rates, const LabelFn& labels);

}  // namespace wrist
}  // namespace pulsekd::data
