#include "kd/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace pulsekd::kd {

namespace svg {

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '&') o += "&amp;";
    else if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else if (ch == '\'') o += "&apos;";
    else o += ch;
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

void frame(std::ostringstream& o, const Canvas& c, const std::string& title, const std::string& xlabel,
           const std::string& ylabel, double y0, double y1) {
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << c.w << "' height='" << c.h << "' font-family='sans-serif' font-size='12'>\n";
  o << "<rect width='100%' height='100%' fill='white'/>\n";
  o << "<text x='" << c.w / 2 << "' y='22' text-anchor='middle' font-size='15'>" << esc(title) << "</text>\n";
  o << "<text x='" << (c.left + c.w - c.right) / 2 << "' y='" << c.h - 10 << "' text-anchor='middle'>" << esc(xlabel) << "</text>\n";
  o << "<text x='16' y='" << c.h / 2 << "' text-anchor='middle' transform='rotate(-90 16 " << c.h / 2 << ")'>" << esc(ylabel)
    << "</text>\n";
  o << "<rect x='" << c.left << "' y='" << c.top << "' width='" << c.w - c.left - c.right << "' height='"
    << c.h - c.top - c.bottom << "' fill='none' stroke='#444'/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = y0 + (y1 - y0) * i / 4, y = c.h - c.bottom - (c.h - c.top - c.bottom) * i / 4.0;
    o << "<line x1='" << c.left << "' x2='" << c.w - c.right << "' y1='" << y << "' y2='" << y << "' stroke='#ddd'/>\n";
    o << "<text x='" << c.left - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << num(v) << "</text>\n";
  }
}

}  // namespace svg

namespace {

using svg::esc;
using svg::num;

constexpr double kW = 720, kH = 400, kL = 70, kR = 160, kT = 40, kB = 50;
constexpr svg::Canvas kCanvas{kW, kH, kL, kR, kT, kB};

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"};

void legend(std::ostringstream& o, const std::vector<Series>& series) {
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string c = series[i].color.empty() ? kPalette[i % 7] : series[i].color;
    const double y = kT + 10 + 18 * double(i);
    o << "<rect x='" << kW - kR + 10 << "' y='" << y - 8 << "' width='12' height='10' fill='" << c << "'/>\n";
    o << "<text x='" << kW - kR + 28 << "' y='" << y + 1 << "'>" << esc(series[i].name) << "</text>\n";
  }
}

}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                           const std::vector<Series>& series) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  const double pad = (y1 - y0) * 0.05 + 1e-9;
  y0 -= pad;
  y1 += pad;
  std::ostringstream o;
  svg::frame(o, kCanvas, title, xlabel, ylabel, y0, y1);
  for (int i = 0; i <= 4; ++i) {
    const double v = x0 + (x1 - x0) * i / 4, x = kL + (kW - kL - kR) * i / 4.0;
    o << "<text x='" << x << "' y='" << kH - kB + 16 << "' text-anchor='middle'>" << num(v) << "</text>\n";
  }
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string c = s.color.empty() ? kPalette[k % 7] : s.color;
    o << "<polyline fill='none' stroke='" << c << "' stroke-width='1.5' points='";
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      const double px = kL + (s.x[i] - x0) / (x1 - x0) * (kW - kL - kR);
      const double py = kH - kB - (s.y[i] - y0) / (y1 - y0) * (kH - kT - kB);
      o << num(px) << "," << num(py) << " ";
    }
    o << "'/>\n";
  }
  legend(o, series);
  o << "</svg>\n";
  return o.str();
}

std::string svg_bar_chart(const std::string& title, const std::string& ylabel, const std::vector<std::string>& groups,
                          const std::vector<Series>& series) {
  double y1 = 0;
  for (auto& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) y1 = std::max(y1, v);
  y1 = y1 > 0 ? y1 * 1.1 : 1;
  std::ostringstream o;
  svg::frame(o, kCanvas, title, "", ylabel, 0, y1);
  const double gw = (kW - kL - kR) / std::max<double>(1, double(groups.size()));
  const double bw = gw * 0.8 / std::max<double>(1, double(series.size()));
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const double gx = kL + gw * double(gi);
    o << "<text x='" << gx + gw / 2 << "' y='" << kH - kB + 16 << "' text-anchor='middle' font-size='10'>" << esc(groups[gi]) << "</text>\n";
    for (size_t k = 0; k < series.size(); ++k) {
      if (gi >= series[k].y.size()) continue;
      const double v = series[k].y[gi], h = (kH - kT - kB) * v / y1;
      const std::string c = series[k].color.empty() ? kPalette[k % 7] : series[k].color;
      o << "<rect x='" << gx + gw * 0.1 + bw * double(k) << "' y='" << kH - kB - h << "' width='" << bw << "' height='" << h
        << "' fill='" << c << "'><title>" << esc(series[k].name) << ": " << num(v) << "</title></rect>\n";
    }
  }
  legend(o, series);
  o << "</svg>\n";
  return o.str();
}

}  // namespace pulsekd::kd
