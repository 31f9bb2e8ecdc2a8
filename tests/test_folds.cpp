// Folds, normalisation, post-processing and batching.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "datasets/folds.h"

using namespace pulsekd::data;

namespace {
// A set with `s` subjects of `w` windows each, sample values encoding (window, row).
WindowSet make_set(int s, int w, const std::string& source, bool dalia_names) {
  WindowSet ws;
  ws.source = source;
  for (int i = 0; i < s; ++i) {
    SubjectInfo info;
    info.name = dalia_names ? "S" + std::to_string(i + 1) : "rec" + std::to_string(i);
    info.first_window = ws.size();
    info.num_windows = w;
    for (int k = 0; k < w; ++k) {
      const int64_t idx = ws.size();
      for (int r = 0; r < kRows; ++r)
        for (int t = 0; t < kWindow; ++t) ws.x.push_back(static_cast<float>(idx * 10 + r + (t % 2)));
      ws.hr.push_back(static_cast<float>(60 + idx));
      ws.subject.push_back(i);
    }
    ws.subjects.push_back(info);
  }
  return ws;
}
std::vector<int> idx(std::initializer_list<int> numbers) {  // S-numbers -> indices
  std::vector<int> v;
  for (int n : numbers) v.push_back(n - 1);
  return v;
}
}  // namespace

TEST_CASE("DaLiA: PULSE's fixed groups") {
  const WindowSet ws = make_set(15, 2, "dalia:/x", true);
  const auto folds = loso_folds(ws, "dalia");
  REQUIRE(folds.size() == 15);
  // Test S6 (group [5,6,7,8]): val 5,7,8; train all but 5..8.
  CHECK(folds[5].test == idx({6}));
  CHECK(folds[5].val == idx({5, 7, 8}));
  CHECK(folds[5].train == idx({1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15}));
  // Test S13 (group [13,14,15]).
  CHECK(folds[12].val == idx({14, 15}));
  CHECK(folds[12].train == idx({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  // Test S1 (group [1,2,3,4]).
  CHECK(folds[0].val == idx({2, 3, 4}));
  CHECK(folds[0].train == idx({5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  CHECK(loso_folds(ws, "auto")[5].val == folds[5].val);
  for (const auto& f : folds) CHECK(f.train.size() + f.val.size() + f.test.size() == 15);
  CHECK_THROWS(loso_folds(make_set(14, 2, "dalia:/x", true), "dalia"));
  CHECK_THROWS(loso_folds(make_set(15, 2, "x", false), "dalia"));
  CHECK_THROWS(loso_folds(ws, "nonsense"));
}

TEST_CASE("generalised grouping: 4 contiguous groups, larger first") {
  const WindowSet ws = make_set(13, 2, "spc2015:/x", false);  // groups 0-3, 4-6, 7-9, 10-12
  const auto folds = loso_folds(ws, "auto");
  REQUIRE(folds.size() == 13);
  CHECK(folds[2].val == std::vector<int>{0, 1, 3});
  CHECK(folds[5].val == std::vector<int>{4, 6});
  CHECK(folds[5].train == std::vector<int>{0, 1, 2, 3, 7, 8, 9, 10, 11, 12});
  CHECK(folds[12].val == std::vector<int>{10, 11});
  // 15 subjects: the same groups as PULSE's DaLiA ones.
  const auto g15 = loso_folds(make_set(15, 1, "x", false), "groups4");
  const auto d15 = loso_folds(make_set(15, 1, "dalia:/x", true), "dalia");
  for (int t = 0; t < 15; ++t) {
    CHECK(g15[t].val == d15[t].val);
    CHECK(g15[t].train == d15[t].train);
  }
  // 5 subjects: groups {0,1},{2},{3},{4}; singleton groups borrow the next group's first.
  const auto f5 = loso_folds(make_set(5, 1, "x", false), "groups4");
  CHECK(f5[2].val == std::vector<int>{3});
  CHECK(f5[2].train == std::vector<int>{0, 1, 4});
  CHECK(f5[4].val == std::vector<int>{0});
  CHECK(f5[4].train == std::vector<int>{1, 2, 3});
  for (const auto& f : f5) {
    std::set<int> all(f.train.begin(), f.train.end());
    for (int v : f.val) CHECK(all.insert(v).second);
    CHECK(all.insert(f.test[0]).second);
  }
  CHECK_THROWS(loso_folds(make_set(1, 1, "x", false), "groups4"));
}

TEST_CASE("normaliser uses training windows only") {
  const WindowSet ws = make_set(3, 4, "x", false);
  const auto train = windows_of(ws, {0});
  CHECK(train == std::vector<int64_t>{0, 1, 2, 3});
  const Normalizer nz = Normalizer::fit(ws, train);
  // Row r of window i holds i*10 + r + (t%2): mean over windows 0..3 = 15 + r + 0.5.
  for (int r = 0; r < kRows; ++r) CHECK(nz.mean[r] == doctest::Approx(15.5 + r));
  std::vector<float> x(ws.window(0), ws.window(0) + kRows * kWindow);
  nz.apply(x.data(), 1);
  CHECK(x[0] == doctest::Approx((0 - 15.5) / nz.std[0]));
  // A constant row gets the floor, not a division by zero.
  WindowSet flat = make_set(1, 1, "x", false);
  std::fill(flat.x.begin(), flat.x.end(), 3.0f);
  const Normalizer nf = Normalizer::fit(flat, {0});
  CHECK(nf.std[0] == doctest::Approx(1e-6));
  CHECK_THROWS(Normalizer::fit(ws, {}));
}

TEST_CASE("post-processing clamp on hand-made sequences") {
  std::vector<float> a(10, 100.0f);
  a.push_back(150.0f);  // > 110 -> 110
  a.push_back(50.0f);   // mean of previous 10 = (9*100+110)/10 = 101 -> 90.9
  const auto o = postprocess_clamp(a);
  for (int i = 0; i < 10; ++i) CHECK(o[i] == 100.0f);
  CHECK(o[10] == doctest::Approx(110.0));
  CHECK(o[11] == doctest::Approx(0.9 * 101.0));
  // First 10 untouched even if wild; inside the band untouched.
  std::vector<float> b = {10, 200, 30, 40, 50, 60, 70, 80, 90, 100, 70};
  const auto ob = postprocess_clamp(b);
  for (int i = 0; i < 10; ++i) CHECK(ob[i] == b[i]);
  CHECK(ob[10] == doctest::Approx(70.0));  // mean 73, band 65.7..80.3
  CHECK(postprocess_clamp({}).empty());
}

TEST_CASE("batch iterator: every index once per epoch, deterministic, drop_last") {
  const WindowSet ws = make_set(2, 50, "x", false);
  std::vector<int64_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = i;
  BatchIterator it(ws, ids, 32, 7, true, false);
  CHECK(it.batches_per_epoch() == 4);
  std::vector<int64_t> b, seen, first_epoch;
  int nb = 0;
  while (it.next(b)) {
    seen.insert(seen.end(), b.begin(), b.end());
    ++nb;
  }
  CHECK(nb == 4);
  CHECK(b.size() == 4);  // the last, short batch
  first_epoch = seen;
  std::sort(seen.begin(), seen.end());
  CHECK(seen == ids);
  CHECK(first_epoch != ids);  // shuffled

  BatchIterator same(ws, ids, 32, 7, true, false);
  std::vector<int64_t> again;
  while (same.next(b)) again.insert(again.end(), b.begin(), b.end());
  CHECK(again == first_epoch);
  same.reset_epoch(1);
  std::vector<int64_t> e1;
  while (same.next(b)) e1.insert(e1.end(), b.begin(), b.end());
  CHECK(e1 != first_epoch);
  it.reset_epoch(1);
  std::vector<int64_t> e1b;
  while (it.next(b)) e1b.insert(e1b.end(), b.begin(), b.end());
  CHECK(e1 == e1b);

  BatchIterator dl(ws, ids, 32, 7, true, true);
  CHECK(dl.batches_per_epoch() == 3);
  int n = 0;
  while (dl.next(b)) {
    CHECK(b.size() == 32);
    ++n;
  }
  CHECK(n == 3);
  BatchIterator ordered(ws, ids, 40, 0, false, false);
  REQUIRE(ordered.next(b));
  CHECK(b.front() == 0);
  CHECK(b.back() == 39);
  CHECK_THROWS(BatchIterator(ws, {100}, 4, 0, false, false));
  CHECK_THROWS(BatchIterator(ws, ids, 0, 0, false, false));
}

TEST_CASE("gather_batch copies and normalises") {
  const WindowSet ws = make_set(1, 3, "x", false);
  Normalizer nz;
  nz.mean[0] = 1.0f;
  nz.std[0] = 2.0f;
  std::vector<float> x(2 * kRows * kWindow), y(2);
  gather_batch(ws, {2, 0}, nz, x.data(), y.data());
  CHECK(y[0] == 62.0f);
  CHECK(y[1] == 60.0f);
  CHECK(x[0] == doctest::Approx((20 - 1.0) / 2.0));
  CHECK(x[kRows * kWindow] == doctest::Approx((0 - 1.0) / 2.0));
  CHECK(x[kWindow] == doctest::Approx(21.0));  // row 1: mean 0, std 1
}
