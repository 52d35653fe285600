// Tensor::str() and operator<<: torch's printed form, e.g.
//   tensor([[1.0000, 2.5000],
//           [3.0000, 4.0000]], dtype=float64, requires_grad=True)
// Tensors with more than 1000 elements print the first and last 3 entries of
// every dim with "..." between them. Floats share one format per tensor,
// chosen like torch: integral values print as "3.", moderate ranges as fixed
// with 4 decimals, wide ranges in scientific notation.
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace graft {

namespace {

constexpr int64_t kThreshold = 1000;  // more elements than this: summarise
constexpr int64_t kEdgeItems = 3;

enum class FloatMode { Integral, Fixed, Scientific };

struct Formatter {
  DType dtype;
  FloatMode mode = FloatMode::Fixed;
  size_t width = 1;

  // `v` for floating dtypes, `iv` (exact) for integer and bool dtypes.
  std::string format(double v, int64_t iv) const {
    char buf[64];
    if (dtype == DType::Bool) return iv != 0 ? "True" : "False";
    if (!is_floating(dtype)) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(iv));
    } else if (std::isnan(v)) {
      return "nan";
    } else if (std::isinf(v)) {
      return v > 0 ? "inf" : "-inf";
    } else if (mode == FloatMode::Integral) {
      std::snprintf(buf, sizeof buf, "%.0f.", v);
    } else if (mode == FloatMode::Scientific) {
      std::snprintf(buf, sizeof buf, "%.4e", v);
    } else {
      std::snprintf(buf, sizeof buf, "%.4f", v);
    }
    return buf;
  }
  std::string padded(double v, int64_t iv) const {
    std::string s = format(v, iv);
    return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
  }
};

// Element values of a CPU tensor: as double for floats, exactly as int64 otherwise.
struct Values {
  std::vector<double> f;
  std::vector<int64_t> i;
  explicit Values(const Tensor& t) {
    if (is_floating(t.dtype())) {
      f = t.to_vector<double>();
      i.assign(f.size(), 0);
    } else {
      i = t.to_vector<int64_t>();
      f.assign(i.size(), 0.0);
    }
  }
};

// The elements that will be shown (all, or the summarised edges).
Tensor shown_values(const Tensor& t, bool summarize) {
  if (!summarize || t.dim() == 0) return t;
  Tensor r = t;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (r.size(d) > 2 * kEdgeItems) {
      r = cat({r.narrow(d, 0, kEdgeItems), r.narrow(d, r.size(d) - kEdgeItems, kEdgeItems)}, d);
    }
  }
  return r;
}

Formatter make_formatter(const Tensor& shown) {
  Formatter f{shown.dtype()};
  const Values vals(shown);
  const std::vector<double>& v = vals.f;
  if (is_floating(shown.dtype())) {
    bool integral = true;
    double amax = 0, amin = INFINITY;
    for (double x : v) {
      if (!std::isfinite(x)) continue;
      if (x != std::nearbyint(x)) integral = false;
      const double a = std::fabs(x);
      amax = std::max(amax, a);
      if (a > 0) amin = std::min(amin, a);
    }
    if (integral) {
      f.mode = amax > 1e8 ? FloatMode::Scientific : FloatMode::Integral;
    } else {
      f.mode = (amax > 1e8 || (amin < INFINITY && (amin < 1e-4 || amax / amin > 1000)))
                   ? FloatMode::Scientific
                   : FloatMode::Fixed;
    }
  }
  for (size_t k = 0; k < v.size(); ++k)
    f.width = std::max(f.width, f.format(v[k], vals.i[k]).size());
  return f;
}

// Recursively prints `t` (already on the CPU) with its first '[' at column `indent`.
void print_rec(std::ostringstream& os, const Tensor& t, const Formatter& f, size_t indent,
               bool summarize) {
  if (t.dim() == 0) {
    const Values v(t);
    os << f.padded(v.f[0], v.i[0]);
    return;
  }
  const int64_t n = t.size(0);
  const bool cut = summarize && n > 2 * kEdgeItems;
  os << '[';
  if (t.dim() == 1) {
    // Rows wrap at about 80 columns, like torch's linewidth.
    const size_t per_line = std::max<size_t>(1, (80 - indent) / (f.width + 2));
    const Values v(t);
    size_t on_line = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (cut && i == kEdgeItems) {
        os << "  ...,";  // torch joins " ..." like an element
        i = n - kEdgeItems;
      }
      if (i > 0) {
        if (on_line == per_line) {
          os << '\n' << std::string(indent + 1, ' ');
          on_line = 0;
        } else {
          os << ' ';
        }
      }
      os << f.padded(v.f[static_cast<size_t>(i)], v.i[static_cast<size_t>(i)]);
      ++on_line;
      if (i + 1 < n) os << ',';
    }
  } else {
    const std::string newlines(static_cast<size_t>(t.dim() - 1), '\n');
    for (int64_t i = 0; i < n; ++i) {
      if (cut && i == kEdgeItems) {
        os << "...," << newlines << std::string(indent + 1, ' ');
        i = n - kEdgeItems;
      }
      print_rec(os, t.select(0, i), f, indent + 1, summarize);
      if (i + 1 < n) os << ',' << newlines << std::string(indent + 1, ' ');
    }
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  NoGradGuard g;
  const Tensor cpu_t = detach().to(Device::cpu());
  const bool summarize = numel() > kThreshold;
  const std::string prefix = "tensor(";
  std::ostringstream os;
  os << prefix;
  if (numel() == 0) {
    os << "[]";
  } else {
    const Tensor shown = shown_values(cpu_t, summarize);
    const Formatter f = make_formatter(shown);
    print_rec(os, cpu_t, f, prefix.size(), summarize);
  }
  // Like torch: float32 and int64 (and bool) are the defaults and not named.
  if (numel() == 0 && dim() != 1) os << ", size=" << shape_str(sizes());
  if (!device().is_cpu()) os << ", device='" << device().str() << "'";
  if (dtype() != DType::Float32 && dtype() != DType::Int64 && dtype() != DType::Bool)
    os << ", dtype=" << dtype_name(dtype());
  if (grad_fn())
    os << ", grad_fn=<" << grad_fn()->name() << ">";
  else if (requires_grad())
    os << ", requires_grad=True";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace graft
