// Dependency-free SVG charts for reports: line charts (HR over time, training curves) and
// bar charts (per-subject MAE).
#pragma once
#include <string>
#include <vector>

namespace pulsekd::kd {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::string color;
};

std::string svg_line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                           const std::vector<Series>& series);
std::string svg_bar_chart(const std::string& title, const std::string& ylabel, const std::vector<std::string>& groups,
                          const std::vector<Series>& series);  // series[i].y[g]: value of group g

}  // namespace pulsekd::kd
