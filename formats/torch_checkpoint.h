// PyTorch state_dict files written by torch.save (the ZIP format of PyTorch >= 1.6):
//   <prefix>/data.pkl   pickle of an OrderedDict name -> tensor, each tensor
//                       torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
//                       requires_grad, backward_hooks[, metadata]) with storage a persistent id
//                       ('storage', torch.FloatStorage, key, location, numel)
//   <prefix>/data/<key> raw little-endian storage bytes
// Tensors are gathered honouring offset and strides into contiguous row-major float32.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pulsekd {

class TorchCheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TorchTensor {
  std::vector<int64_t> shape;  // (ndim) PyTorch layout
  std::vector<float> data;     // (numel) row-major contiguous
};

// In file (insertion) order. Storages: Float, Double, Half, BFloat16, Long, Int, Short, Char,
// Byte, Bool (all converted to float32).
std::vector<std::pair<std::string, TorchTensor>> load_torch_state_dict(const std::string& path);
// The same from an archive image in memory; `what` names it in error messages.
std::vector<std::pair<std::string, TorchTensor>> parse_torch_state_dict(std::vector<uint8_t> archive,
                                                                        const std::string& what);

}  // namespace pulsekd
