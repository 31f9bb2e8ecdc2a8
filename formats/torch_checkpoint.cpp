#include "formats/torch_checkpoint.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "formats/pickle.h"
#include "formats/zip_reader.h"

namespace pulsekd {
namespace {

using data::PickleError;
using data::PyObject;
using data::PyRef;
using Kind = PyObject::Kind;

[[noreturn]] void fail(const std::string& what, const std::string& msg) {
  throw TorchCheckpointError(what + ": " + msg);
}

struct StorageType { const char* name; int size; char kind; };  // kind: f float, h half, B bf16, i int, u uint, b bool
const StorageType* storage_type(const std::string& name) {
  static const StorageType kTypes[] = {
      {"FloatStorage", 4, 'f'}, {"DoubleStorage", 8, 'f'}, {"HalfStorage", 2, 'h'},
      {"BFloat16Storage", 2, 'B'}, {"LongStorage", 8, 'i'}, {"IntStorage", 4, 'i'},
      {"ShortStorage", 2, 'i'}, {"CharStorage", 1, 'i'}, {"ByteStorage", 1, 'u'},
      {"BoolStorage", 1, 'b'}};
  for (const auto& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

float half_to_float(uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const float sgn = (h & 0x8000) ? -1.f : 1.f;
  if (e == 0) return sgn * std::ldexp(float(m), -24);
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : sgn * std::numeric_limits<float>::infinity();
  return sgn * std::ldexp(float(m | 0x400), e - 25);
}

// Element k of a storage as float (little-endian bytes).
float element(const std::vector<uint8_t>& s, const StorageType& t, uint64_t k) {
  const uint8_t* p = s.data() + k * uint64_t(t.size);
  uint64_t u = 0;
  for (int j = t.size - 1; j >= 0; --j) u = (u << 8) | p[j];
  switch (t.kind) {
    case 'f':
      if (t.size == 4) { float f; uint32_t v = uint32_t(u); std::memcpy(&f, &v, 4); return f; }
      else { double d; std::memcpy(&d, &u, 8); return float(d); }
    case 'h': return half_to_float(uint16_t(u));
    case 'B': { float f; uint32_t v = uint32_t(u) << 16; std::memcpy(&f, &v, 4); return f; }
    case 'i': { const int sh = 64 - 8 * t.size; return float(int64_t(u << sh) >> sh); }
    default: return float(u);
  }
}

bool torch_global_allowed(const std::string& m, const std::string& n) {
  if (m == "torch._utils" && (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor" || n == "_rebuild_parameter"))
    return true;
  if (m == "torch" && storage_type(n)) return true;
  return false;
}

struct Loader {
  const data::ZipArchive& zip;
  std::string prefix;  // "archive/"
  const std::string& what;
  std::map<std::string, std::vector<uint8_t>> storages;  // key -> (entry bytes)

  const std::vector<uint8_t>& storage(const std::string& key, const std::string& tname) {
    auto it = storages.find(key);
    if (it != storages.end()) return it->second;
    const std::string entry = prefix + "data/" + key;
    if (!zip.contains(entry))
      fail(what, "tensor \"" + tname + "\": storage entry \"" + entry + "\" is missing from the archive");
    return storages.emplace(key, zip.read(entry)).first->second;
  }

  TorchTensor tensor(const PyRef& v, const std::string& name) {
    PyRef t = v;
    // nn.Parameter wraps the tensor: _rebuild_parameter(tensor, requires_grad, hooks).
    if (t->is_call_of("torch._utils", "_rebuild_parameter")) {
      if (!t->args || t->args->items.empty()) fail(what, "tensor \"" + name + "\": _rebuild_parameter without arguments");
      t = t->args->items[0];
    }
    const bool v2 = t->is_call_of("torch._utils", "_rebuild_tensor_v2");
    if (!v2 && !t->is_call_of("torch._utils", "_rebuild_tensor"))
      fail(what, "value of \"" + name + "\" is a " + t->type_name() + ", expected a tensor (torch._utils._rebuild_tensor_v2)");
    const auto& a = t->args->items;
    if (a.size() < 4)
      fail(what, "tensor \"" + name + "\": expected (storage, storage_offset, size, stride, ...), got " +
                     std::to_string(a.size()) + " arguments");
    const PyRef& pid = a[0];
    if (pid->kind != Kind::PersistentId || !pid->args || pid->args->kind != Kind::Tuple || pid->args->items.size() < 5)
      fail(what, "tensor \"" + name + "\": storage is not a persistent id ('storage', type, key, location, numel)");
    const auto& p = pid->args->items;
    if (!p[0]->is_text() || p[0]->s != "storage")
      fail(what, "tensor \"" + name + "\": persistent id does not start with 'storage'");
    if (p[1]->kind != Kind::Global || p[1]->s != "torch" || !storage_type(p[1]->name))
      fail(what, "tensor \"" + name + "\": unsupported storage type " + p[1]->type_name());
    const StorageType& st = *storage_type(p[1]->name);
    const std::string key = data::pickle_text(p[2], what, "tensor \"" + name + "\" storage key");
    const int64_t numel_decl = data::pickle_int(p[4], what, "tensor \"" + name + "\" storage numel");
    const std::vector<uint8_t>& bytes = storage(key, name);
    if (numel_decl < 0 || uint64_t(numel_decl) > bytes.size() / uint64_t(st.size))
      fail(what, "tensor \"" + name + "\": storage \"" + key + "\" has " + std::to_string(bytes.size()) +
                     " bytes, smaller than its declared " + std::to_string(numel_decl) + " x " +
                     std::to_string(st.size) + " bytes");
    const int64_t offset = data::pickle_int(a[1], what, "tensor \"" + name + "\" storage_offset");
    if (a[2]->kind != Kind::Tuple || a[3]->kind != Kind::Tuple || a[2]->items.size() != a[3]->items.size())
      fail(what, "tensor \"" + name + "\": size and stride must be tuples of the same length");
    TorchTensor out;
    std::vector<int64_t> stride;
    int64_t numel = 1;
    bool empty = false;
    // Highest storage element the view reaches; all arithmetic is checked against overflow.
    int64_t last = offset;
    if (offset < 0) fail(what, "tensor \"" + name + "\": negative storage_offset " + std::to_string(offset));
    for (size_t d = 0; d < a[2]->items.size(); ++d) {
      const int64_t sz = data::pickle_int(a[2]->items[d], what, "tensor \"" + name + "\" size");
      const int64_t sd = data::pickle_int(a[3]->items[d], what, "tensor \"" + name + "\" stride");
      if (sz < 0 || sd < 0) fail(what, "tensor \"" + name + "\": negative size or stride");
      out.shape.push_back(sz);
      stride.push_back(sd);
      if (sz == 0) empty = true;
    }
    for (size_t d = 0; d < out.shape.size() && !empty; ++d) {
      const int64_t sz = out.shape[d], sd = stride[d];
      if (numel > numel_decl / sz + 1 || (sz - 1 > 0 && sd > (std::numeric_limits<int64_t>::max() - last) / (sz - 1)))
        fail(what, "tensor \"" + name + "\": shape/stride reach beyond storage \"" + key + "\" of " +
                       std::to_string(numel_decl) + " elements");
      numel *= sz;
      last += (sz - 1) * sd;
    }
    if (empty) return out;
    if (last >= numel_decl)
      fail(what, "tensor \"" + name + "\": offset " + std::to_string(offset) + " with shape/stride reaches element " +
                     std::to_string(last) + " of storage \"" + key + "\", which has " + std::to_string(numel_decl) +
                     " elements");
    // Views of a storage never need more elements than it has, except expanded (stride-0)
    // tensors, which state_dicts do not contain; refusing them bounds memory.
    if (numel > numel_decl)
      fail(what, "tensor \"" + name + "\": " + std::to_string(numel) + " elements from a storage of " +
                     std::to_string(numel_decl) + " (expanded tensors are not supported)");
    out.data.resize(size_t(numel));  // (numel) row-major
    std::vector<int64_t> idx(out.shape.size(), 0);
    int64_t src = offset;
    for (int64_t k = 0; k < numel; ++k) {
      out.data[size_t(k)] = element(bytes, st, uint64_t(src));
      for (size_t d = out.shape.size(); d-- > 0;) {  // next row-major index
        src += stride[d];
        if (++idx[d] < out.shape[d]) break;
        src -= stride[d] * out.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }
};

}  // namespace

std::vector<std::pair<std::string, TorchTensor>> parse_torch_state_dict(std::vector<uint8_t> archive,
                                                                        const std::string& what) {
  try {
    if (archive.size() >= 2 && archive[0] == 0x80)
      fail(what, "legacy (pre-1.6, non-ZIP) torch.save format is not supported; re-save with a current PyTorch");
    const data::ZipArchive zip = data::ZipArchive::from_memory(std::move(archive), what);
    // The pickle is <top folder>/data.pkl; the folder name varies ("archive", the file stem).
    std::string prefix;
    for (const auto& n : zip.names()) {
      const size_t slash = n.find('/');
      if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
        prefix = n.substr(0, slash + 1);
        break;
      }
    }
    if (prefix.empty()) fail(what, "no <folder>/data.pkl entry: not a torch.save archive");
    if (zip.contains(prefix + "byteorder")) {
      const auto bo = zip.read(prefix + "byteorder");
      if (std::string(bo.begin(), bo.end()) != "little")
        fail(what, "storages are big-endian (" + prefix + "byteorder); only little-endian is supported");
    }
    const std::vector<uint8_t> pkl = zip.read(prefix + "data.pkl");  // (pickle bytes)
    data::PickleOptions opt;
    opt.allow_global = torch_global_allowed;
    const std::string pkl_what = what + ":" + prefix + "data.pkl";
    PyRef root = data::unpickle(pkl.data(), pkl.size(), pkl_what, opt);
    if (root->kind != Kind::Dict)
      fail(what, "data.pkl holds a " + root->type_name() + ", expected a state_dict (OrderedDict of tensors)");
    Loader loader{zip, prefix, what, {}};
    std::vector<std::pair<std::string, TorchTensor>> out;
    for (size_t k = 0; k < root->keys.size(); ++k) {
      if (root->keys[k]->kind != Kind::Str)
        fail(what, "state_dict key " + std::to_string(k) + " is a " + root->keys[k]->type_name() + ", expected str");
      const std::string& name = root->keys[k]->s;
      out.emplace_back(name, loader.tensor(root->items[k], name));
    }
    return out;
  } catch (const TorchCheckpointError&) {
    throw;
  } catch (const std::runtime_error& e) {  // zip and pickle errors already name file and offset
    throw TorchCheckpointError(e.what());
  }
}

std::vector<std::pair<std::string, TorchTensor>> load_torch_state_dict(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw TorchCheckpointError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw TorchCheckpointError(path + ": read error");
  return parse_torch_state_dict(std::move(bytes), path);
}

}  // namespace pulsekd
