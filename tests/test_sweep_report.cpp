// The sweep report (`pulsekd sweep-report`, kd::write_sweep_report) on a hand-written sweep
// directory: the tables and report.json entries that do not depend on the fit's optimiser are
// pinned byte for byte, so a change to how the report is assembled cannot go unnoticed.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "kd/scaling.h"

using namespace pulsekd;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_json(const fs::path& p, const json& j) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << j.dump(1) << "\n";
}

// 3 students × (none, hard ← 2 teachers) × folds 1, 2; one teacher result missing (tiny-t has
// parameters from the points only), one student size without a "hard ← tiny-t" point.
void write_sweep(const fs::path& dir) {
  const char* students[] = {"s-small", "s-mid", "s-large"};
  const int64_t s_params[] = {100, 200, 400};
  const double none_mae[] = {12.0, 10.0, 9.0};
  for (int si = 0; si < 3; ++si)
    for (const char* teacher : {"", "tiny-t", "big-t"})
      for (int fold : {1, 2}) {
        const std::string t = teacher;
        if (t == "tiny-t" && si == 1) continue;
        const double gain = t.empty() ? 0 : t == "tiny-t" ? 0.5 : 1.25;
        const double mae = none_mae[si] - gain + 0.25 * fold;
        const json tj = t.empty() ? json(nullptr) : json{{"id", t}, {"parameters", t == "tiny-t" ? 1000 : 4000}};
        const std::string strategy = t.empty() ? "none" : "hard";
        const std::string id = std::string(students[si]) + "__" + strategy + "__" + (t.empty() ? "alone" : t) + "__fold" + std::to_string(fold);
        write_json(dir / "points" / (id + ".json"),
                   {{"strategy", strategy}, {"student", {{"id", students[si]}, {"parameters", s_params[si]}, {"macs_per_window", 10 * s_params[si]}}},
                    {"teacher", tj}, {"fold", fold}, {"seed", 0}, {"mae", mae}, {"mae_post", mae - 1}, {"data", "synth:4"}, {"seconds", 1.5}});
      }
  for (int fold : {1, 2})
    write_json(dir / "teachers" / "big-t" / ("seed0-fold" + std::to_string(fold) + ".json"),
               {{"id", "big-t"}, {"parameters", 4000}, {"macs_per_window", 90000}, {"mae", 6.0 + fold}});
}

// The Markdown without the fits section (its numbers come from the optimiser).
std::string without_fits(const std::string& md) {
  const size_t a = md.find("\n## Scaling fits"), b = md.find("\n## Best strategy");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  return md.substr(0, a) + md.substr(b);
}

const char* const kExpectedMarkdown = R"md(# Capacity sweep: MAE against student size per distillation strategy

Sweep directory `pinned`, data `synth:4`, 16 points, folds 1 2, seeds 0. MAE is the test subject's mean absolute error in BPM (raw model output), averaged over the seeds of a fold and then over folds (± is the standard deviation over all fold × seed runs). The study design follows Arora, Narayanswamy, Patel, Li (2025), "Towards Characterizing Knowledge Distillation of PPG Heart Rate Estimation Models" and ../shared/docs/KD-STRATEGIES.md §7.

## Teachers

| teacher | parameters | MACs/window | MAE | runs |
|---|---:|---:|---:|---:|
| tiny-t | 1000 | 0 | – | 0 |
| big-t | 4000 | 90000 | 7.50 ± 0.71 | 2 |

## MAE against student parameters

| student | parameters | MACs/window | none (student alone) | hard ← tiny-t | hard ← big-t |
|---|---:|---:|---:|---:|---:|
| s-small | 100 | 1000 | 12.38 ± 0.18 | 11.88 ± 0.18 | 11.12 ± 0.18 |
| s-mid | 200 | 2000 | 10.38 ± 0.18 | – | 9.12 ± 0.18 |
| s-large | 400 | 4000 | 9.38 ± 0.18 | 8.88 ± 0.18 | 8.12 ± 0.18 |

## Best strategy at each student budget

| student | parameters | best | MAE | student alone | gain over alone |
|---|---:|---|---:|---:|---:|
| s-small | 100 | hard ← big-t | 11.12 | 12.38 | 1.25 |
| s-mid | 200 | hard ← big-t | 9.12 | 10.38 | 1.25 |
| s-large | 400 | hard ← big-t | 8.12 | 9.38 | 1.25 |

## Does a bigger teacher help?

MAE per teacher (columns, smallest first); "bigger helps" when the largest teacher gives a lower MAE than the smallest.

| strategy | student | tiny-t | big-t | largest − smallest | bigger helps |
|---|---|---:|---:|---:|---|
| hard | s-small | 11.88 | 11.12 | -0.75 | yes |
| hard | s-large | 8.88 | 8.12 | -0.75 | yes |

The largest teacher gave a lower MAE than the smallest in 2 of 2 (strategy, student) pairs.

## Plots

![mae_vs_params_tiny-t.svg](mae_vs_params_tiny-t.svg)

![mae_vs_params_big-t.svg](mae_vs_params_big-t.svg)

![mae_vs_teacher.svg](mae_vs_teacher.svg)

)md";

}  // namespace

TEST_CASE("sweep-report: tables, best strategy, teacher effect and plots of a hand-written sweep are pinned") {
  const fs::path root = fs::temp_directory_path() / ("pulsekd_sweep_report_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const fs::path dir = root / "pinned";
  write_sweep(dir);
  const std::string md = kd::write_sweep_report(dir.string(), 20);
  std::ifstream f(dir / "REPORT.md");
  const std::string written((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(written == md);
  CHECK(without_fits(md) == kExpectedMarkdown);
  std::ifstream jf(dir / "report.json");
  json rj = json::parse(jf);
  CHECK(rj.at("fits").size() == 3);
  rj.erase("fits");
  CHECK(rj.dump() == R"js({"best":[{"mae":11.125,"mae_alone":12.375,"parameters":100,"strategy":"hard","student":"s-small","teacher":"big-t"},{"mae":9.125,"mae_alone":10.375,"parameters":200,"strategy":"hard","student":"s-mid","teacher":"big-t"},{"mae":8.125,"mae_alone":9.375,"parameters":400,"strategy":"hard","student":"s-large","teacher":"big-t"}],"bigger_teacher_helps":{"helps":2,"pairs":2},"data":"synth:4","folds":[1,2],"plots":["mae_vs_params_tiny-t.svg","mae_vs_params_big-t.svg","mae_vs_teacher.svg"],"points":16,"seeds":[0],"table":[{"macs_per_window":1000,"mae":12.375,"mae_per_fold":[12.25,12.5],"mae_post":11.375,"mae_sd":0.1767766952966369,"parameters":100,"runs":2,"strategy":"none","student":"s-small","teacher":null},{"macs_per_window":1000,"mae":11.875,"mae_per_fold":[11.75,12.0],"mae_post":10.875,"mae_sd":0.1767766952966369,"parameters":100,"runs":2,"strategy":"hard","student":"s-small","teacher":"tiny-t"},{"macs_per_window":1000,"mae":11.125,"mae_per_fold":[11.0,11.25],"mae_post":10.125,"mae_sd":0.1767766952966369,"parameters":100,"runs":2,"strategy":"hard","student":"s-small","teacher":"big-t"},{"macs_per_window":2000,"mae":10.375,"mae_per_fold":[10.25,10.5],"mae_post":9.375,"mae_sd":0.1767766952966369,"parameters":200,"runs":2,"strategy":"none","student":"s-mid","teacher":null},{"macs_per_window":2000,"mae":9.125,"mae_per_fold":[9.0,9.25],"mae_post":8.125,"mae_sd":0.1767766952966369,"parameters":200,"runs":2,"strategy":"hard","student":"s-mid","teacher":"big-t"},{"macs_per_window":4000,"mae":9.375,"mae_per_fold":[9.25,9.5],"mae_post":8.375,"mae_sd":0.1767766952966369,"parameters":400,"runs":2,"strategy":"none","student":"s-large","teacher":null},{"macs_per_window":4000,"mae":8.875,"mae_per_fold":[8.75,9.0],"mae_post":7.875,"mae_sd":0.1767766952966369,"parameters":400,"runs":2,"strategy":"hard","student":"s-large","teacher":"tiny-t"},{"macs_per_window":4000,"mae":8.125,"mae_per_fold":[8.0,8.25],"mae_post":7.125,"mae_sd":0.1767766952966369,"parameters":400,"runs":2,"strategy":"hard","student":"s-large","teacher":"big-t"}],"teacher_effect":[{"largest_minus_smallest":-0.75,"mae_per_teacher":[11.875,11.125],"strategy":"hard","student":"s-small"},{"largest_minus_smallest":-0.75,"mae_per_teacher":[8.875,8.125],"strategy":"hard","student":"s-large"}],"teachers":[{"id":"tiny-t","macs_per_window":0,"mae":null,"parameters":1000,"runs":0},{"id":"big-t","macs_per_window":90000,"mae":7.5,"parameters":4000,"runs":2}]})js");
  for (const char* svg : {"mae_vs_params_tiny-t.svg", "mae_vs_params_big-t.svg", "mae_vs_teacher.svg"}) CHECK(fs::exists(dir / svg));
  fs::remove_all(root);
}

TEST_CASE("sweep-report: a point or teacher result with a value of the wrong type or shape is an error naming the file and the key") {
  const fs::path root = fs::temp_directory_path() / ("pulsekd_sweep_report_bad_" + std::to_string(::getpid()));
  const fs::path point = root / "points" / "s-small__none__alone__fold1.json";
  const fs::path teacher = root / "teachers" / "big-t" / "seed0-fold1.json";
  // One bad value in one file of the pinned sweep; the message expected in the error.
  const auto report_error = [&](const fs::path& file, const std::string& key, const json& value) {
    fs::remove_all(root);
    write_sweep(root);
    std::ifstream f(file);
    json j = json::parse(f);
    f.close();
    json* at = &j;
    for (size_t a = 0, b; a <= key.size(); a = b + 1) {  // "student.parameters" -> j["student"]["parameters"]
      b = std::min(key.find('.', a), key.size());
      at = &(*at)[key.substr(a, b - a)];
    }
    *at = value;
    write_json(file, j);
    try {
      kd::write_sweep_report(root.string(), 20);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  const std::string p = "'" + point.string() + "': ", t = "'" + teacher.string() + "': ";
  // 1e30 used to be cast to int (undefined behaviour), 2^64 - 1 read as int64 wrapped to -1
  CHECK(report_error(point, "fold", json::parse("1e30")) == p + "fold must be an integer in 1..100000, got 1e+30");
  CHECK(report_error(point, "fold", 1.5) == p + "fold must be an integer in 1..100000, got 1.5");
  CHECK(report_error(point, "student.parameters", json::parse("18446744073709551615")) ==
        p + "student.parameters must be an integer in 0..9223372036854775807, got 18446744073709551615");
  CHECK(report_error(point, "student.macs_per_window", "10").find(p + "student.macs_per_window must be an integer") == 0);
  CHECK(report_error(point, "seed", -1) == p + "seed must be an integer >= 0, got -1");
  CHECK(report_error(point, "mae", "9.5") == p + "mae must be a number, got \"9.5\"");
  CHECK(report_error(teacher, "parameters", json::parse("1e30")) == t + "parameters must be an integer in 0..9223372036854775807, got 1e+30");
  CHECK(report_error(teacher, "mae", true) == t + "mae must be a number, got true");
  CHECK(report_error(teacher, "id", 7).find(t + "not a sweep teacher result") == 0);
  CHECK(report_error(point, "seed", 0) == "(accepted)");
  fs::remove_all(root);
}
