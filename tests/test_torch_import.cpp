// PyTorch .pt import: the released PULSE fold-1 checkpoints (../shared/reference), and
// malformed variants made here from the real file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <numeric>

#include "formats/torch_checkpoint.h"
#include "formats/zip_reader.h"
#include "tests/shared_data.h"
#include "tests/test_zip_writer.h"

using namespace pulsekd;
using data::ZipArchive;

namespace {

const std::string kRef = pulsekd::testing::shared_path("reference/");

std::vector<uint8_t> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
bool present(const std::string& p) { return pulsekd::testing::require_shared(p, "a released checkpoint"); }
int64_t numel(const std::vector<int64_t>& s) {
  return std::accumulate(s.begin(), s.end(), int64_t(1), std::multiplies<int64_t>());
}
const TorchTensor* find(const std::vector<std::pair<std::string, TorchTensor>>& sd, const std::string& n) {
  for (const auto& kv : sd)
    if (kv.first == n) return &kv.second;
  return nullptr;
}
float storage_float(const std::vector<uint8_t>& s, size_t k) {
  float f;
  std::memcpy(&f, s.data() + 4 * k, 4);
  return f;
}

// Rebuilds the archive with `edit` applied to its entries (all stored, fresh CRCs).
std::vector<uint8_t> rebuild(const std::string& pt, const std::function<void(std::vector<testing::Item>&)>& edit) {
  const ZipArchive z = ZipArchive::open(pt);
  std::vector<testing::Item> items;
  for (const auto& n : z.names()) {
    const auto d = z.read(n);
    items.push_back({n, std::string(d.begin(), d.end()), 0});
  }
  edit(items);
  const std::string s = testing::make_zip(items);
  return std::vector<uint8_t>(s.begin(), s.end());
}
std::string& entry(std::vector<testing::Item>& items, const std::string& name) {
  for (auto& it : items)
    if (it.name == name) return it.data;
  throw std::runtime_error("no entry " + name);
}
std::string error_of(std::vector<uint8_t> bytes) {
  try {
    parse_torch_state_dict(std::move(bytes), "edited.pt");
  } catch (const TorchCheckpointError& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("torch import: released PULSE teacher, fold 1") {
  const std::string pt = kRef + "pulse_teacher_fold1.pt";
  if (!present(pt)) return;
  const auto sd = load_torch_state_dict(pt);
  int64_t total = 0;
  for (const auto& kv : sd) {
    CHECK(int64_t(kv.second.data.size()) == numel(kv.second.shape));
    total += numel(kv.second.shape);
  }
  CHECK(total == 131825);
  CHECK(sd.front().first == "conv11.weight");
  CHECK(sd.back().first == "out.bias");
  const std::pair<const char*, std::vector<int64_t>> shapes[] = {
      {"conv11.weight", {32, 1, 1, 5}}, {"conv21.weight", {48, 32, 1, 5}}, {"conv33.weight", {64, 64, 1, 5}},
      {"conv33.bias", {64}}, {"multihead_attn.in_proj_weight", {48, 16}}, {"multihead_attn.in_proj_bias", {48}},
      {"multihead_attn.out_proj.weight", {16, 16}}, {"layer_norm.weight", {16}}, {"dense.weight", {32, 1024}},
      {"dense.bias", {32}}, {"out.weight", {1, 32}}, {"out.bias", {1}}};
  for (const auto& [name, shape] : shapes) {
    INFO(name);
    const TorchTensor* t = find(sd, name);
    REQUIRE(t);
    CHECK(t->shape == shape);
  }
}

TEST_CASE("torch import: released student, values match the storage bytes") {
  const std::string pt = kRef + "pulse_student_fold1.pt";
  if (!present(pt)) return;
  const auto sd = load_torch_state_dict(pt);
  int64_t total = 0;
  for (const auto& kv : sd) total += numel(kv.second.shape);
  CHECK(total == 27241);
  CHECK(find(sd, "conv11.weight")->shape == std::vector<int64_t>{16, 1, 1, 3});
  CHECK(find(sd, "conv4.weight")->shape == std::vector<int64_t>{32, 32, 4, 1});
  CHECK(find(sd, "dense.weight")->shape == std::vector<int64_t>{32, 256});
  // data.pkl names storage "0" for conv11.weight (48 floats, contiguous) and the storages
  // are in parameter order; spot-check first, middle and last elements.
  const ZipArchive z = ZipArchive::open(pt);
  const auto s0 = z.read("archive/data/0");
  const TorchTensor* w = find(sd, "conv11.weight");
  for (size_t k : {size_t(0), size_t(17), size_t(47)}) CHECK(w->data[k] == storage_float(s0, k));
  const auto s1 = z.read("archive/data/1");
  const TorchTensor* b = find(sd, "conv11.bias");
  CHECK(b->data[15] == storage_float(s1, 15));
}

TEST_CASE("torch import: strides and storage offsets are honoured") {
  // Hand-made: a [2, 3] view with stride (1, 2) at offset 1 of a 7-float storage, i.e. the
  // transpose of a [3, 2] block: element (i, j) = storage[1 + i + 2 j].
  const std::string pkl =
      std::string("\x80\x02\x63\x63ollections\nOrderedDict\n)R(X\x01\x00\x00\x00t", 36) +
      "ctorch._utils\n_rebuild_tensor_v2\n(" + std::string("(X\x07\x00\x00\x00storage", 13) +
      "ctorch\nFloatStorage\n" + std::string("X\x01\x00\x00\x00" "0" "X\x03\x00\x00\x00" "cpu", 14) +
      "K\x07tQK\x01K\x02K\x03\x86K\x01K\x02\x86\x89)tRu.";
  std::string storage;
  for (int k = 0; k < 7; ++k) {
    const float f = float(k * 10);
    storage.append(reinterpret_cast<const char*>(&f), 4);
  }
  const std::string z = testing::make_zip({{"m/data.pkl", pkl, 0}, {"m/data/0", storage, 8}, {"m/version", "3\n", 0}});
  const auto sd = parse_torch_state_dict(std::vector<uint8_t>(z.begin(), z.end()), "hand.pt");
  REQUIRE(sd.size() == 1);
  CHECK(sd[0].second.shape == std::vector<int64_t>{2, 3});
  CHECK(sd[0].second.data == std::vector<float>{10, 30, 50, 20, 40, 60});
}

TEST_CASE("torch import: malformed variants of the real file") {
  const std::string pt = kRef + "pulse_student_fold1.pt";
  if (!present(pt)) return;
  const std::vector<uint8_t> real = slurp(pt);

  std::string e = error_of(std::vector<uint8_t>(real.begin(), real.begin() + real.size() / 2));
  CHECK(has(e, "edited.pt"));
  CHECK((has(e, "truncated") || has(e, "not a ZIP")));

  // Byte 29 of data.pkl (EMPTY_TUPLE after GLOBAL collections.OrderedDict) -> 0xff.
  e = error_of(rebuild(pt, [](auto& items) { entry(items, "archive/data.pkl")[29] = char(0xff); }));
  CHECK(has(e, "archive/data.pkl"));
  CHECK(has(e, "unknown opcode 0xff"));
  CHECK(has(e, "byte 29"));

  e = error_of(rebuild(pt, [](auto& items) {
    items.erase(std::remove_if(items.begin(), items.end(), [](const auto& it) { return it.name == "archive/data/0"; }),
                items.end());
  }));
  CHECK(has(e, "storage entry \"archive/data/0\" is missing"));
  CHECK(has(e, "conv11.weight"));

  e = error_of(rebuild(pt, [](auto& items) { entry(items, "archive/data/0").resize(100); }));
  CHECK(has(e, "smaller than its declared 48 x 4 bytes"));

  // conv11.weight's stride (3, 3, 3, 1) -> (9, 3, 3, 1): reaches element 137 of 48.
  e = error_of(rebuild(pt, [](auto& items) {
    std::string& p = entry(items, "archive/data.pkl");
    const size_t at = p.find("(K\x03K\x03K\x03K\x01t");
    REQUIRE(at != std::string::npos);
    p[at + 2] = 9;
  }));
  CHECK(has(e, "conv11.weight"));
  CHECK(has(e, "reaches element 137"));

  // An unknown rebuild function is refused by name (globals are never executed).
  e = error_of(rebuild(pt, [](auto& items) {
    std::string& p = entry(items, "archive/data.pkl");
    const size_t at = p.find("_rebuild_tensor_v2");
    REQUIRE(at != std::string::npos);
    p[at + 1] = 'X';
  }));
  CHECK(has(e, "global torch._utils._Xebuild_tensor_v2 is not allowed"));
}
