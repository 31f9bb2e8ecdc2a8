// The PULSE layer plan (models/pulse_plan.h): the published geometry of the teacher and the
// student (PULSE.md sections 2, 3), its width/depth variants, and that the model's parameters,
// forward features, MAC counts, checkpoint layouts and the quantiser's checks follow it.
#include <doctest/doctest.h>

#include <stdexcept>

#include "deploy/float_reference.h"
#include "engine/graph.h"
#include "models/checkpoint.h"
#include "models/pulse_plan.h"

using namespace pulsekd;

namespace {

models::ModelConfig config(const std::string& arch, double width = 1.0, int depth = 3, const std::string& head = "regression") {
  models::ModelConfig c;
  c.arch = arch;
  c.width = width;
  c.convs_per_block = depth;
  c.head = head;
  return c;
}

std::vector<int> dilations(const models::PulsePlan& p) {
  std::vector<int> d;
  for (const auto& c : p.convs) d.push_back(c.dilation);
  return d;
}

// Each pooling as {size, t_in, t_out}.
std::vector<std::vector<int>> pools(const models::PulsePlan& p) {
  std::vector<std::vector<int>> o;
  for (const auto& q : p.pools) o.push_back({q.size, q.t_in, q.t_out});
  return o;
}

}  // namespace

TEST_CASE("student plan: kernel 3, dilations 2/3/4 with same padding, pools 4/4/2, 8 steps of 32 channels") {
  const models::PulsePlan p = models::pulse_plan(config("student"));
  CHECK_FALSE(p.teacher);
  REQUIRE(p.convs.size() == 9);
  CHECK(p.convs[0].name == "conv11");
  CHECK(p.convs[5].name == "conv23");
  CHECK(p.convs[8].name == "conv33");
  CHECK(dilations(p) == std::vector<int>{2, 2, 2, 3, 3, 3, 4, 4, 4});
  for (const auto& c : p.convs) {
    CHECK(c.kernel == 3);
    CHECK(c.pad == c.dilation);  // "same" length for K = 3
  }
  CHECK(p.convs[0].c_in == 1);
  CHECK(p.convs[3].c_in == 16);
  CHECK(p.convs[3].c_out == 24);
  CHECK(p.convs[3].t_in == 64);
  CHECK(p.convs[6].t_in == 16);
  CHECK(p.block_end == std::vector<int>{2, 5, 8});
  CHECK(p.block_channels == std::vector<int>{16, 24, 32});
  CHECK(pools(p) == std::vector<std::vector<int>>{{4, 256, 64}, {4, 64, 16}, {2, 16, 8}});
  CHECK(p.pools[0].name == "pool1");
  CHECK(p.pools[2].name == "pool3");
  CHECK((p.c3 == 32 && p.t_final == 8 && p.flat == 256));
  CHECK((p.dense == 32 && p.outputs == 1 && p.dropout == 0.1));
}

TEST_CASE("teacher plan: kernel 5, dilation 2 (pad 4), pools 4/2/2, a 16-step embedding over 4 heads") {
  const models::PulsePlan p = models::pulse_plan(config("teacher"));
  CHECK(p.teacher);
  CHECK(dilations(p) == std::vector<int>(9, 2));
  for (const auto& c : p.convs) {
    CHECK(c.kernel == 5);
    CHECK(c.pad == 4);
  }
  CHECK(p.block_channels == std::vector<int>{32, 48, 64});
  CHECK(pools(p) == std::vector<std::vector<int>>{{4, 256, 64}, {2, 64, 32}, {2, 32, 16}});
  CHECK((p.c3 == 64 && p.t_final == 16 && p.heads == 4 && p.flat == 1024));
  CHECK(p.dropout == 0.5);
}

TEST_CASE("width, depth and head change the plan: rounded channels, block ends, outputs") {
  models::ModelConfig c = config("student", 0.5, 2, "binned");
  c.bins = 20;
  c.dropout = 0.25;
  const models::PulsePlan p = models::pulse_plan(c);
  CHECK(p.convs.size() == 6);
  CHECK(p.convs[2].name == "conv21");
  CHECK(p.block_end == std::vector<int>{1, 3, 5});
  CHECK(p.block_channels == std::vector<int>{8, 12, 16});
  CHECK(p.outputs == 20);
  CHECK(p.dropout == 0.25);
  CHECK(models::pulse_plan(config("teacher", 1.7, 1)).block_channels == std::vector<int>{54, 82, 109});
  CHECK_THROWS_WITH_AS(models::pulse_plan(config("resnet")), doctest::Contains("arch must be 'teacher' or 'student'"),
                       std::invalid_argument);
  CHECK_THROWS_AS(models::pulse_plan(config("student", 0)), std::invalid_argument);  // validated
}

TEST_CASE("the model follows its plan: parameter shapes, forward features, MACs, checkpoint layouts") {
  for (const char* arch : {"student", "teacher"}) {
    CAPTURE(arch);
    models::PulseModel m(config(arch, 0.75, 2));
    const models::PulsePlan& p = m.plan();
    int64_t conv_macs = 0;
    for (const auto& c : p.convs) {
      const Parameter* w = m.find(c.name + ".weight");
      REQUIRE(w);
      CHECK(w->shape.vec() == std::vector<int64_t>{c.c_out, c.kernel, c.c_in});
      CHECK(models::torch_shape(m, c.name + ".weight", *w) == std::vector<int64_t>{c.c_out, c.c_in, 1, c.kernel});
      conv_macs += int64_t(p.rows) * c.t_in * c.c_out * c.c_in * c.kernel;
    }
    CHECK(m.find("dense.weight")->shape.vec() == std::vector<int64_t>{p.dense, p.flat});
    const Parameter* dw = m.find("dense.weight");
    CHECK(models::torch_shape(m, "dense.weight", *dw) == std::vector<int64_t>{p.dense, p.flat});
    if (!p.teacher) {
      const Parameter* w4 = m.find("conv4.weight");
      CHECK(models::torch_shape(m, "conv4.weight", *w4) == std::vector<int64_t>{p.c3, p.c3, p.rows, 1});
    }
    int64_t from_layers = 0;
    for (const auto& l : m.layers())
      if (l.name.rfind("conv", 0) == 0 && l.name != "conv4") from_layers += l.macs;
    CHECK(from_layers == conv_macs);
    CHECK(m.block_channels() == p.block_channels);

    Graph g;
    Rng rng(1);
    std::vector<real> x(size_t(2) * 4 * 256, real(0.1));
    const models::ModelOutput o = m.forward(g, g.input({2, 4, 256, 1}, x.data()), rng);
    REQUIRE(o.features.size() == 4);
    for (size_t b = 0; b < 3; ++b) {
      CHECK(o.features[b].shape()[0] == 2 * p.rows);
      CHECK(o.features[b].shape()[1] == p.pools[b].t_out);
      CHECK(o.features[b].shape()[2] == p.block_channels[b]);
    }
  }
  models::PulseModel r(config("resnet"));
  CHECK_THROWS_AS(r.plan(), std::logic_error);
}

TEST_CASE("quantizable_plan: PULSE regression models whose attention the integer kernels run") {
  models::PulseModel s(config("student"));
  CHECK(&deploy::quantizable_plan(s) == &s.plan());
  models::PulseModel ok(config("teacher", 1.3));  // 3 x 83 = 249 keys
  CHECK(deploy::quantizable_plan(ok).c3 == 83);
  models::PulseModel wide(config("teacher", 1.35));  // 3 x 86 = 258 keys > kSoftmaxMaxKeys
  CHECK_THROWS_WITH(deploy::quantizable_plan(wide), doctest::Contains("divisible by 4 heads and at most 256 keys"));
  models::PulseModel binned(config("student", 1.0, 3, "binned"));
  CHECK_THROWS_WITH(deploy::quantizable_plan(binned), doctest::Contains("only the regression head"));
  models::PulseModel r(config("resnet"));
  CHECK_THROWS_WITH(deploy::quantizable_plan(r), doctest::Contains("only the PULSE student and teacher"));
}
