// Dependency-free SVG charts for reports: line charts (HR over time, training curves) and
// bar charts (per-subject MAE), and the pieces every chart shares (kd/scaling.cpp's log-x chart
// too).
#pragma once
#include <sstream>
#include <string>
#include <vector>

namespace pulsekd::kd {

namespace svg {
// Text for SVG content and single-quoted attributes: & < > ' escaped.
std::string esc(const std::string& s);
// A coordinate or tick value: %.4g.
std::string num(double v);
// Canvas size and the plot box's margins, in pixels.
struct Canvas {
  double w, h, left, right, top, bottom;
};
// Opens the <svg> element: white background, title, axis labels, the plot box and five
// horizontal grid lines labelled y0 .. y1 from the bottom up. The caller draws and closes it.
void frame(std::ostringstream& o, const Canvas& c, const std::string& title, const std::string& xlabel,
           const std::string& ylabel, double y0, double y1);
}  // namespace svg

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
