// Dependency-free SVG line charts for training curves (loss and accuracy per
// epoch), the kind the seed tutorials show. One chart holds several series.
#pragma once

#include <string>
#include <vector>

namespace graft::train {

struct Series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;
};

struct Chart {
  std::string title;
  std::string x_label = "epoch";
  std::string y_label;
  std::vector<Series> series;
};

// Renders charts side by side into one SVG document.
std::string render_svg(const std::vector<Chart>& charts, int chart_width = 520,
                       int chart_height = 360);
// Writes the SVG atomically (temp file + rename).
void write_svg(const std::string& path, const std::vector<Chart>& charts);

}  // namespace graft::train
