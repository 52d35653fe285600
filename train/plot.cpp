#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace graft::train {

namespace {

// Colour-blind friendly palette (Okabe-Ito).
const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                          "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// "Nice" tick step for a range: 1, 2 or 5 times a power of ten.
double nice_step(double range, int target_ticks) {
  if (!(range > 0)) return 1;
  const double raw = range / target_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10;
  return step * mag;
}

std::string tick_label(double v, double step) {
  char buf[32];
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step)));
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void render_chart(std::ostringstream& os, const Chart& c, double ox, double oy, double w,
                  double h) {
  const double left = ox + 60, right = ox + w - 20, top = oy + 40, bottom = oy + h - 50;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : c.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  const double ystep = nice_step(ymax - ymin, 5);
  ymin = std::floor(ymin / ystep) * ystep;
  ymax = std::ceil(ymax / ystep) * ystep;
  const double xstep = std::max(1.0, nice_step(xmax - xmin, 8));
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ymin) / (ymax - ymin) * (bottom - top); };

  os << "<text x=\"" << fmt(ox + w / 2) << "\" y=\"" << fmt(oy + 22)
     << "\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" << escape(c.title)
     << "</text>\n";
  // grid and ticks
  for (double y = ymin; y <= ymax + ystep * 1e-9; y += ystep) {
    os << "<line x1=\"" << fmt(left) << "\" y1=\"" << fmt(py(y)) << "\" x2=\"" << fmt(right)
       << "\" y2=\"" << fmt(py(y)) << "\" stroke=\"#e5e5e5\"/>\n";
    os << "<text x=\"" << fmt(left - 6) << "\" y=\"" << fmt(py(y) + 4)
       << "\" text-anchor=\"end\" font-size=\"11\">" << tick_label(y, ystep) << "</text>\n";
  }
  for (double x = std::ceil(xmin / xstep) * xstep; x <= xmax + 1e-9; x += xstep) {
    os << "<line x1=\"" << fmt(px(x)) << "\" y1=\"" << fmt(bottom) << "\" x2=\"" << fmt(px(x))
       << "\" y2=\"" << fmt(bottom + 4) << "\" stroke=\"#333\"/>\n";
    os << "<text x=\"" << fmt(px(x)) << "\" y=\"" << fmt(bottom + 17)
       << "\" text-anchor=\"middle\" font-size=\"11\">" << tick_label(x, xstep) << "</text>\n";
  }
  os << "<rect x=\"" << fmt(left) << "\" y=\"" << fmt(top) << "\" width=\"" << fmt(right - left)
     << "\" height=\"" << fmt(bottom - top) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  os << "<text x=\"" << fmt((left + right) / 2) << "\" y=\"" << fmt(bottom + 36)
     << "\" text-anchor=\"middle\" font-size=\"12\">" << escape(c.x_label) << "</text>\n";
  os << "<text transform=\"translate(" << fmt(ox + 16) << "," << fmt((top + bottom) / 2)
     << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" << escape(c.y_label)
     << "</text>\n";
  // series
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const char* colour = kColours[k % (sizeof kColours / sizeof kColours[0])];
    std::string points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      points += fmt(px(s.x[i])) + "," + fmt(py(s.y[i])) + " ";
      // A marker per point keeps single-point series (and sparse curves) visible.
      os << "<circle cx=\"" << fmt(px(s.x[i])) << "\" cy=\"" << fmt(py(s.y[i]))
         << "\" r=\"2.5\" fill=\"" << colour << "\"/>\n";
    }
    os << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\""
       << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"" << points << "\"/>\n";
    // legend entry
    const double ly = top + 14 + 16 * static_cast<double>(k);
    os << "<line x1=\"" << fmt(right - 150) << "\" y1=\"" << fmt(ly - 4) << "\" x2=\""
       << fmt(right - 128) << "\" y2=\"" << fmt(ly - 4) << "\" stroke=\"" << colour
       << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>\n";
    os << "<text x=\"" << fmt(right - 122) << "\" y=\"" << fmt(ly) << "\" font-size=\"11\">"
       << escape(s.label) << "</text>\n";
  }
}

}  // namespace

std::string render_svg(const std::vector<Chart>& charts, int chart_width, int chart_height) {
  std::ostringstream os;
  const int n = std::max<int>(1, static_cast<int>(charts.size()));
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << chart_width * n << "\" height=\""
     << chart_height << "\" font-family=\"sans-serif\">\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < charts.size(); ++i)
    render_chart(os, charts[i], static_cast<double>(i) * chart_width, 0, chart_width, chart_height);
  os << "</svg>\n";
  return os.str();
}

void write_svg(const std::string& path, const std::vector<Chart>& charts) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    GRAFT_CHECK(f.good(), "cannot write plot '", path, "': the folder is not writable");
    f << render_svg(charts);
    GRAFT_CHECK(f.good(), "cannot write plot '", path, "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  GRAFT_CHECK(!ec, "cannot write plot '", path, "': ", ec.message());
}

}  // namespace graft::train
