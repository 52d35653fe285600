// Every backward formula in graft, in the order of the forward ops
// (core/ops.h, then core/ops_nn.h). Each function records a FunctionNode on
// `out` whose lambda maps the output gradient to one gradient per input;
// inputs that need no gradient (self.needs_grad(i) == false) are skipped.
#include "core/derivatives.h"

#include <cmath>

namespace graft::derivatives {

using autograd::FunctionNode;

void record(const char* name, const Tensor& out, const std::vector<Tensor>& inputs,
            const std::vector<Tensor>& saved, FunctionNode::Backward fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->saved_tensors.reserve(saved.size());
  for (const Tensor& t : saved) node->saved_tensors.emplace_back(t);
  autograd::set_history(out, node, inputs);
}

// ============================================================ views

void view(const Tensor& self, const Tensor& out) {
  record("ViewBackward", out, {self}, {}, [shape = self.sizes()](FunctionNode&, const Tensor& g) {
    return std::vector<Tensor>{g.reshape(shape)};
  });
}

void permute(const Tensor& self, const Shape& dims, const Tensor& out) {
  Shape inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[dims[i]] = static_cast<int64_t>(i);
  record("PermuteBackward", out, {self}, {}, [inverse](FunctionNode&, const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

void slice(const Tensor& self, int64_t dim, int64_t start, int64_t step, const Tensor& out) {
  record("SliceBackward", out, {self}, {},
         [shape = self.sizes(), dim, start, step](FunctionNode&, const Tensor& g) {
           Tensor gi = zeros(shape, opts(g.dtype(), g.device()));
           Tensor window = gi.slice(dim, start, start + g.size(dim) * step, step);
           copy_(window, g);
           return std::vector<Tensor>{gi};
         });
}

void select(const Tensor& self, int64_t dim, int64_t index, const Tensor& out) {
  record("SelectBackward", out, {self}, {},
         [shape = self.sizes(), dim, index](FunctionNode&, const Tensor& g) {
           Tensor gi = zeros(shape, opts(g.dtype(), g.device()));
           Tensor window = gi.select(dim, index);
           copy_(window, g);
           return std::vector<Tensor>{gi};
         });
}

void expand(const Tensor& self, const Tensor& out) {
  record("ExpandBackward", out, {self}, {}, [shape = self.sizes()](FunctionNode&, const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, shape)};
  });
}

void to_dtype(const Tensor& self, const Tensor& out) {
  record("ToCopyBackward", out, {self}, {}, [t = self.dtype()](FunctionNode&, const Tensor& g) {
    return std::vector<Tensor>{g.to(t)};
  });
}

void to_device(const Tensor& self, const Tensor& out) {
  record("ToDeviceBackward", out, {self}, {}, [d = self.device()](FunctionNode&, const Tensor& g) {
    return std::vector<Tensor>{g.to(d)};
  });
}

void clone(const Tensor& self, const Tensor& out) {
  record("CloneBackward", out, {self}, {},
         [](FunctionNode&, const Tensor& g) { return std::vector<Tensor>{g}; });
}

// ============================================================ element-wise

namespace {
// grad_in = op(grad, saved) through a *Backward kernel of the binary table
// (one pass, no graph: these backward formulas are not differentiated again).
Tensor backward_kernel(BinaryOp op, const Tensor& g, const Tensor& saved) {
  Tensor r = empty_like(g);
  kernel::binary(g.device())(op, g, saved, r);
  return r;
}
}  // namespace

void unary(UnaryOp op, const Tensor& self, const Tensor& out) {
  // The table (core/op_tables.h) says which ops' formulas use the output.
  // A node that saves its own output must not keep it alive through a cycle;
  // save a detached alias (same storage and version counter).
  const Tensor saved = unary_saves(op) == OpSaves::Output ? out.detach() : self;
  record(unary_op_name(op), out, {self}, {saved}, [op](FunctionNode& n, const Tensor& g) {
    const Tensor s = n.saved(0);  // input, or output where the table says so
    Tensor r;
    switch (op) {
      case UnaryOp::Neg:
        r = neg(g);
        break;
      case UnaryOp::Abs:
        r = mul(g, sign(s));
        break;
      case UnaryOp::Exp:
        r = mul(g, s);
        break;
      case UnaryOp::Log:
        r = div(g, s);
        break;
      case UnaryOp::Sqrt:
        r = div(g, mul(s, 2.0));
        break;
      case UnaryOp::Rsqrt:
        r = mul(g, mul(pow(s, 3.0), -0.5));
        break;
      case UnaryOp::Sin:
        r = mul(g, cos(s));
        break;
      case UnaryOp::Cos:
        r = mul(g, neg(sin(s)));
        break;
      case UnaryOp::Tanh:
        r = mul(g, rsub(square(s), 1.0));
        break;
      case UnaryOp::Sigmoid:
        r = mul(g, mul(s, rsub(s, 1.0)));
        break;
      case UnaryOp::Relu:
        r = backward_kernel(BinaryOp::ReluBackward, g, s);
        break;
      case UnaryOp::Gelu:
        r = backward_kernel(BinaryOp::GeluBackward, g, s);
        break;
      case UnaryOp::GeluTanh:
        r = backward_kernel(BinaryOp::GeluTanhBackward, g, s);
        break;
      case UnaryOp::Reciprocal:
        r = mul(g, neg(square(s)));
        break;
      case UnaryOp::Square:
        r = mul(g, mul(s, 2.0));
        break;
      case UnaryOp::Log1p:
        r = div(g, add(s, 1.0));
        break;
      case UnaryOp::Expm1:
        r = mul(g, add(s, 1.0));
        break;
      case UnaryOp::Sign:
      case UnaryOp::Floor:
      case UnaryOp::Ceil:
      case UnaryOp::Round:
        r = zeros_like(g);
        break;
      case UnaryOp::LogicalNot:
        GRAFT_FAIL("logical_not is not differentiable");
    }
    return std::vector<Tensor>{r};
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  std::vector<Tensor> saved;
  if (binary_saves(op) != OpSaves::Nothing) saved = {a, b};
  if (binary_saves(op) == OpSaves::InputsAndOutput) saved.push_back(out.detach());
  record(binary_op_name(op), out, {a, b}, saved,
         [op, sa = a.sizes(), sb = b.sizes()](FunctionNode& n, const Tensor& g) {
           Tensor ga, gb;
           switch (op) {
             case BinaryOp::Add:
               if (n.needs_grad(0)) ga = g;
               if (n.needs_grad(1)) gb = g;
               break;
             case BinaryOp::Sub:
               if (n.needs_grad(0)) ga = g;
               if (n.needs_grad(1)) gb = neg(g);
               break;
             case BinaryOp::Mul:
               if (n.needs_grad(0)) ga = mul(g, n.saved(1));
               if (n.needs_grad(1)) gb = mul(g, n.saved(0));
               break;
             case BinaryOp::Div: {
               const Tensor bv = n.saved(1);
               if (n.needs_grad(0)) ga = div(g, bv);
               if (n.needs_grad(1)) gb = neg(div(mul(g, n.saved(0)), mul(bv, bv)));
               break;
             }
             case BinaryOp::Pow: {
               const Tensor av = n.saved(0), bv = n.saved(1), o = n.saved(2);
               if (n.needs_grad(0)) ga = mul(g, mul(bv, pow(av, sub(bv, 1.0))));
               if (n.needs_grad(1)) {
                 // d/db a^b = a^b log a, taken as 0 where a == 0 (torch's convention)
                 Tensor la = where(eq(av, 0.0), zeros_like(av), log(av));
                 gb = mul(g, mul(o, la));
               }
               break;
             }
             case BinaryOp::Maximum:
             case BinaryOp::Minimum: {
               // Ties split the gradient evenly, as torch does.
               const Tensor av = n.saved(0), bv = n.saved(1);
               Tensor a_wins = op == BinaryOp::Maximum ? gt(av, bv) : lt(av, bv);
               Tensor tie = eq(av, bv);
               Tensor wa = add(a_wins.to(g.dtype()), mul(tie.to(g.dtype()), 0.5));
               if (n.needs_grad(0)) ga = mul(g, wa);
               if (n.needs_grad(1)) gb = mul(g, rsub(wa, 1.0));
               break;
             }
             default:
               GRAFT_FAIL(binary_op_name(op), " is not differentiable");
           }
           return std::vector<Tensor>{ga.defined() ? sum_to(ga, sa) : ga,
                                      gb.defined() ? sum_to(gb, sb) : gb};
         });
}

void binary_scalar(BinaryOp op, const Tensor& a, double s, bool scalar_first, const Tensor& out) {
  std::vector<Tensor> saved;
  if (op != BinaryOp::Add && op != BinaryOp::Sub && op != BinaryOp::Mul) saved = {a};
  if (op == BinaryOp::Pow && scalar_first) saved.push_back(out.detach());  // s^a
  record(binary_op_name(op), out, {a}, saved,
         [op, s, scalar_first](FunctionNode& n, const Tensor& g) {
           Tensor r;
           switch (op) {
             case BinaryOp::Add:
               r = g;
               break;
             case BinaryOp::Sub:
               r = scalar_first ? neg(g) : g;
               break;
             case BinaryOp::Mul:
               r = mul(g, s);
               break;
             case BinaryOp::Div: {
               const Tensor av = n.saved(0);
               r = scalar_first ? neg(div(mul(g, s), square(av))) : div(g, s);
               break;
             }
             case BinaryOp::Pow: {
               const Tensor av = n.saved(0);
               if (scalar_first) {  // d/da s^a = s^a log s
                 r = mul(g, mul(n.saved(1), std::log(s)));
               } else if (s == 0) {
                 r = zeros_like(g);
               } else {
                 r = mul(g, mul(pow(av, s - 1), s));
               }
               break;
             }
             case BinaryOp::Maximum:
             case BinaryOp::Minimum: {
               const Tensor av = n.saved(0);
               Tensor wins = op == BinaryOp::Maximum ? gt(av, s) : lt(av, s);
               Tensor w = add(wins.to(g.dtype()), mul(eq(av, s).to(g.dtype()), 0.5));
               r = mul(g, w);
               break;
             }
             default:
               GRAFT_FAIL(binary_op_name(op), " is not differentiable");
           }
           return std::vector<Tensor>{r};
         });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  record("WhereBackward", out, {a, b}, {cond},
         [sa = a.sizes(), sb = b.sizes()](FunctionNode& n, const Tensor& g) {
           const Tensor c = n.saved(0);
           Tensor z = zeros_like(g);
           Tensor ga, gb;
           if (n.needs_grad(0)) ga = sum_to(where(c, g, z), sa);
           if (n.needs_grad(1)) gb = sum_to(where(c, z, g), sb);
           return std::vector<Tensor>{ga, gb};
         });
}

void clamp(const Tensor& self, std::optional<double> lo, std::optional<double> hi,
           const Tensor& out) {
  record("ClampBackward", out, {self}, {self}, [lo, hi](FunctionNode& n, const Tensor& g) {
    const Tensor x = n.saved(0);
    Tensor keep = ones_like(x).to(DType::Bool);
    if (lo) keep = logical_and(keep, ge(x, *lo));
    if (hi) keep = logical_and(keep, le(x, *hi));
    return std::vector<Tensor>{where(keep, g, zeros_like(g))};
  });
}

// ============================================================ reductions
namespace {
// Re-inserts reduced dims (size 1) into a gradient computed without keepdim.
Tensor unsqueeze_dims(const Tensor& g, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return g;
  Tensor r = g;
  for (int64_t d : dims) r = r.unsqueeze(d);  // dims are sorted ascending
  return r;
}
int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[d];
  return n;
}
}  // namespace

void sum(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out) {
  record("SumBackward", out, {self}, {},
         [shape = self.sizes(), dims, keepdim](FunctionNode&, const Tensor& g) {
           return std::vector<Tensor>{unsqueeze_dims(g, dims, keepdim).expand(shape).contiguous()};
         });
}

void mean(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out) {
  record("MeanBackward", out, {self}, {},
         [shape = self.sizes(), dims, keepdim](FunctionNode&, const Tensor& g) {
           const double n = static_cast<double>(reduced_count(shape, dims));
           return std::vector<Tensor>{div(unsqueeze_dims(g, dims, keepdim).expand(shape), n)};
         });
}

void prod(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim, const Tensor& out) {
  // d/dx_i prod = prod / x_i (inputs with zeros are not special-cased).
  record("ProdBackward", out, {self}, {self, out.detach()},
         [dims, keepdim](FunctionNode& n, const Tensor& g) {
           const Tensor x = n.saved(0), p = n.saved(1);
           Tensor gp = mul(unsqueeze_dims(g, dims, keepdim), unsqueeze_dims(p, dims, keepdim));
           return std::vector<Tensor>{div(gp, x)};
         });
}

void amax_amin(const Tensor& self, const std::vector<int64_t>& dims, bool keepdim,
               const Tensor& out) {
  record("AmaxAminBackward", out, {self}, {self, out.detach()},
         [dims, keepdim](FunctionNode& n, const Tensor& g) {
           const Tensor x = n.saved(0);
           const Tensor best = unsqueeze_dims(n.saved(1), dims, keepdim);
           Tensor mask = eq(x, best).to(g.dtype());
           Tensor count = sum(mask, dims, true);
           return std::vector<Tensor>{mul(div(unsqueeze_dims(g, dims, keepdim), count), mask)};
         });
}

// REDUCTION-DERIVATIVES (var, max/min with indices) continue here.

void var(const Tensor& self, const std::vector<int64_t>& dims, double correction, bool keepdim,
         const Tensor& out) {
  // d var / dx = 2 (x - mean) / (N - correction)
  record("VarBackward", out, {self}, {self},
         [dims, correction, keepdim](FunctionNode& n, const Tensor& g) {
           const Tensor x = n.saved(0);
           if (x.dim() == 0) return std::vector<Tensor>{zeros_like(x)};  // var of one value
           const double count = static_cast<double>(reduced_count(x.sizes(), dims));
           Tensor centered = sub(x, mean(x, dims, true));
           Tensor scale = div(unsqueeze_dims(g, dims, keepdim), (count - correction) / 2.0);
           return std::vector<Tensor>{mul(scale, centered)};
         });
}

void max_min_dim(const Tensor& self, int64_t dim, bool keepdim, const Tensor& indices,
                 const Tensor& values) {
  // The whole gradient goes to the element whose index was returned.
  record("MaxMinDimBackward", values, {self}, {indices},
         [shape = self.sizes(), dim, keepdim](FunctionNode& n, const Tensor& g) {
           if (shape.empty()) return std::vector<Tensor>{g};
           Tensor idx = n.saved(0);
           Tensor gk = g;
           if (!keepdim) {
             idx = idx.unsqueeze(dim);
             gk = gk.unsqueeze(dim);
           }
           return std::vector<Tensor>{
               scatter_add(zeros(shape, opts(g.dtype(), g.device())), dim, idx, gk)};
         });
}

// ============================================================ linear algebra, joining, indexing

void bmm(const Tensor& a, const Tensor& b, const Tensor& out) {
  // dA = dC B^T, dB = A^T dC; each operand is saved only when the other needs it.
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  record("BmmBackward", out, {a, b}, {need_b ? a : Tensor(), need_a ? b : Tensor()},
         [](FunctionNode& n, const Tensor& g) {
           Tensor ga, gb;
           if (n.needs_grad(0)) ga = graft::bmm(g, n.saved(1).transpose(1, 2));
           if (n.needs_grad(1)) gb = graft::bmm(n.saved(0).transpose(1, 2), g);
           return std::vector<Tensor>{ga, gb};
         });
}

void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out) {
  std::vector<int64_t> lengths;
  std::vector<DType> dtypes;
  for (const Tensor& t : inputs) {
    lengths.push_back(t.size(dim));
    dtypes.push_back(t.dtype());
  }
  record("CatBackward", out, inputs, {}, [dim, lengths, dtypes](FunctionNode& n, const Tensor& g) {
    std::vector<Tensor> grads(lengths.size());
    int64_t offset = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      if (n.needs_grad(i)) grads[i] = g.narrow(dim, offset, lengths[i]).to(dtypes[i]);
      offset += lengths[i];
    }
    return grads;
  });
}

void index_select(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& out) {
  record("IndexSelectBackward", out, {self}, {index},
         [shape = self.sizes(), dim](FunctionNode& n, const Tensor& g) {
           Tensor gi = zeros(shape, opts(g.dtype(), g.device()));
           kernel::index_add(g.device())(gi, dim, n.saved(0), g);
           return std::vector<Tensor>{gi};
         });
}

void gather(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& out) {
  record("GatherBackward", out, {self}, {index},
         [shape = self.sizes(), dim](FunctionNode& n, const Tensor& g) {
           Tensor gi = zeros(shape, opts(g.dtype(), g.device()));
           kernel::scatter_add(g.device())(gi, dim, n.saved(0), g);
           return std::vector<Tensor>{gi};
         });
}

void scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src,
                 const Tensor& out) {
  record("ScatterAddBackward", out, {self, src}, {index},
         [src_shape = src.sizes(), dim](FunctionNode& n, const Tensor& g) {
           Tensor gs;
           if (n.needs_grad(1)) {
             const Tensor idx = n.saved(0);
             gs = graft::gather(g, dim, idx);
             if (idx.sizes() != src_shape) {
               // Only the part of src covered by idx was used; the rest gets zero.
               Tensor full_g = zeros(src_shape, opts(g.dtype(), g.device()));
               Tensor window = full_g;
               for (int64_t d = 0; d < idx.dim(); ++d) window = window.narrow(d, 0, idx.size(d));
               copy_(window, gs);
               gs = full_g;
             }
           }
           return std::vector<Tensor>{n.needs_grad(0) ? g : Tensor(), gs};
         });
}

// ============================================================ nn ops

namespace {
// Gradients arrive in any layout; nn kernels take contiguous tensors.
Tensor contiguous_grad(const Tensor& g) {
  NoGradGuard guard;
  return g.contiguous();
}
Tensor empty_as(const Tensor& t) { return empty(t.sizes(), opts(t.dtype(), t.device())); }
}  // namespace

void conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Tensor& input_c,
            const Tensor& weight_c, const F::Conv2dParams& p, const Tensor& out) {
  // Only the gradients whose inputs need them are computed: a frozen layer
  // (weight not requiring grad) skips the weight GEMMs entirely.
  record("ConvolutionBackward", out, {input, weight, bias}, {input_c, weight_c},
         [p](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           Tensor gi, gw, gb;
           if (n.needs_grad(0)) {
             const Tensor w = n.saved(1);
             gi = empty(n.saved(0).sizes(), opts(g.dtype(), g.device()));
             kernel::conv2d_backward_input(g.device())(g, w, p, gi);
           }
           if (n.needs_grad(1)) {
             const Tensor x = n.saved(0);
             gw = empty_as(n.saved(1));
             kernel::conv2d_backward_weight(g.device())(g, x, p, gw);
           }
           if (n.needs_grad(2)) {
             gb = empty({g.size(1)}, opts(g.dtype(), g.device()));
             kernel::bias_backward(g.device())(g, gb);
           }
           return std::vector<Tensor>{gi, gw, gb};
         });
}

void batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias,
                const Tensor& input_c, const Tensor& weight_c, const Tensor& mean,
                const Tensor& invstd, bool training, double eps, const Tensor& out) {
  record("NativeBatchNormBackward", out, {input, weight, bias}, {input_c, weight_c, mean, invstd},
         [training, eps](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           const Tensor x = n.saved(0), w = n.saved(1);
           const int64_t C = x.size(1);
           Tensor gi, gw, gb;
           if (n.needs_grad(0)) gi = empty_as(x);
           if (n.needs_grad(1)) gw = empty({C}, opts(g.dtype(), g.device()));
           if (n.needs_grad(2)) gb = empty({C}, opts(g.dtype(), g.device()));
           kernel::batch_norm_backward(g.device())(g, x, w, n.saved(2), n.saved(3), training, eps,
                                                   gi, gw, gb);
           return std::vector<Tensor>{gi, gw, gb};
         });
}

void max_pool2d(const Tensor& input, const Tensor& indices, const Tensor& out) {
  record("MaxPool2DWithIndicesBackward", out, {input}, {indices},
         [shape = input.sizes()](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           Tensor gi = empty(shape, opts(g.dtype(), g.device()));
           kernel::max_pool2d_backward(g.device())(g, n.saved(0), gi);
           return std::vector<Tensor>{gi};
         });
}

void adaptive_avg_pool2d(const Tensor& input, const Tensor& out) {
  record("AdaptiveAvgPool2DBackward", out, {input}, {},
         [shape = input.sizes()](FunctionNode&, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           Tensor gi = empty(shape, opts(g.dtype(), g.device()));
           kernel::adaptive_avg_pool2d_backward(g.device())(g, gi);
           return std::vector<Tensor>{gi};
         });
}

void linear(const Tensor& input, const Tensor& weight, const Tensor& bias, const Tensor& input_c,
            const Tensor& weight_c, const Tensor& out) {
  record("AddmmBackward", out, {input, weight, bias}, {input_c, weight_c},
         [](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           Tensor gi, gw, gb;
           if (n.needs_grad(0)) {
             gi = empty_as(n.saved(0));
             kernel::linear_backward_input(g.device())(g, n.saved(1), gi);
           }
           if (n.needs_grad(1)) {
             gw = empty_as(n.saved(1));
             kernel::linear_backward_weight(g.device())(g, n.saved(0), gw);
           }
           if (n.needs_grad(2)) {
             gb = empty({g.size(1)}, opts(g.dtype(), g.device()));
             kernel::bias_backward(g.device())(g, gb);
           }
           return std::vector<Tensor>{gi, gw, gb};
         });
}

void softmax(const Tensor& input, int64_t dim, bool log, const Tensor& out) {
  record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", out, {input}, {out.detach()},
         [dim, log](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           const Tensor y = n.saved(0);
           Tensor gi = empty_as(y);
           kernel::softmax_backward(g.device())(g, y, dim, log, gi);
           return std::vector<Tensor>{gi};
         });
}

void nll_loss(const Tensor& log_probs, const Tensor& target, int reduction, int64_t ignore_index,
              const Tensor& out) {
  record("NllLossBackward", out, {log_probs}, {target},
         [reduction, ignore_index, shape = log_probs.sizes()](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           Tensor gi = empty(shape, opts(g.dtype(), g.device()));
           kernel::nll_loss_backward(g.device())(g, n.saved(0), reduction, ignore_index, gi);
           return std::vector<Tensor>{gi};
         });
}

void cross_entropy(const Tensor& logits, const Tensor& target, int reduction, int64_t ignore_index,
                   double label_smoothing, const Tensor& log_probs, const Tensor& out) {
  record("CrossEntropyBackward", out, {logits}, {log_probs, target},
         [reduction, ignore_index, label_smoothing](FunctionNode& n, const Tensor& grad) {
           const Tensor g = contiguous_grad(grad);
           const Tensor lp = n.saved(0);
           Tensor gi = empty_as(lp);
           kernel::cross_entropy_backward(g.device())(g, lp, n.saved(1), reduction, ignore_index,
                                                      label_smoothing, gi);
           return std::vector<Tensor>{gi};
         });
}

}  // namespace graft::derivatives
