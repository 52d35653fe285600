// Cross-backend test of the CUDA kernels, in the style of ggml's
// test-backend-ops: a table of op cases, each run on the CPU and on CUDA from
// the same seeded random inputs (contiguous, non-contiguous and broadcast
// layouts), comparing forward outputs and, through autograd on each device,
// the input gradients. Every new CUDA allocation is poisoned with NaN bytes
// (cuda::set_poison_allocations), so an output element a kernel fails to
// write makes the comparison fail.
//
// Without a GPU every CUDA case is skipped with "CUDA not available: ...";
// the test that asking for CUDA then fails with a clear error runs everywhere.
// In the emulated build (cmake -DGRAFT_CUDA=EMULATE) a CUDA test that cannot
// run FAILS instead of skipping, and so does the whole binary when it is run
// unfiltered and some CUDA kernel-table entry was never called (the coverage
// list is printed at the end). GRAFT_REQUIRE_CUDA_TESTS=1 makes a GPU
// machine's run strict in the same way.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/autograd.h"
#include "core/generator.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "nn/models/resnet.h"
#include "optim/optimizer.h"
#include "test_util.h"
#ifdef GRAFT_HAVE_CUDA
#include <cstdlib>
#include <iostream>

#include "core/kernels.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/optim.h"
#include "optim/kernels.h"
#endif

namespace graft {
namespace {

// True where a CUDA test that cannot run must fail rather than skip.
bool cuda_tests_required() {
#ifdef GRAFT_CUDA_EMULATED
  return true;
#else
  const char* v = std::getenv("GRAFT_REQUIRE_CUDA_TESTS");
  return v && std::string(v) == "1";
#endif
}

#define GRAFT_REQUIRE_CUDA()                                                                  \
  do {                                                                                        \
    if (!cuda_available()) {                                                                  \
      if (cuda_tests_required()) GTEST_FAIL() << device_unavailable_reason(DeviceType::CUDA); \
      GTEST_SKIP() << device_unavailable_reason(DeviceType::CUDA);                            \
    }                                                                                         \
  } while (0)

// ---- runs everywhere ----
TEST(CudaAvailability, AskingForCudaWithoutGpuThrowsClearError) {
  if (cuda_available()) {
    // The other branch runs where no device is present (in the emulated build:
    // the ctest entry with GRAFT_EMULATED_DEVICES=0).
    EXPECT_EQ(device_unavailable_reason(DeviceType::CUDA), "");
    EXPECT_NO_THROW((void)zeros({2, 3}, opts(DType::Float32, Device::cuda())));
    return;
  }
  const std::string why = device_unavailable_reason(DeviceType::CUDA);
  EXPECT_NE(why.find("CUDA not available"), std::string::npos) << why;
#ifdef GRAFT_CUDA_EMULATED
  EXPECT_NE(why.find("GRAFT_EMULATED_DEVICES=0"), std::string::npos) << "says why: " << why;
#endif
  try {
    Tensor t = zeros({2, 3}, opts(DType::Float32, Device::cuda()));
    FAIL() << "allocating on CUDA without a device did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA not available"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ones({4}).to(Device::cuda()), Error);
  EXPECT_THROW(ones({4}).to(Device::parse("cuda:1")), Error);
}

#ifdef GRAFT_HAVE_CUDA
// Runs everywhere: the CUDA backend registered a kernel in every table.
TEST(CudaAvailability, EveryKernelTableHasACudaEntry) {
  const std::vector<std::pair<const char*, bool>> tables = {
#define GRAFT_T(name) {#name, kernel::name.has(DeviceType::CUDA)}
      GRAFT_T(unary),
      GRAFT_T(binary),
      GRAFT_T(binary_scalar),
      GRAFT_T(copy),
      GRAFT_T(fill),
      GRAFT_T(where),
      GRAFT_T(reduce),
      GRAFT_T(arg_reduce),
      GRAFT_T(var),
      GRAFT_T(bmm),
      GRAFT_T(index_select),
      GRAFT_T(index_add),
      GRAFT_T(gather),
      GRAFT_T(scatter_add),
      GRAFT_T(conv2d_forward),
      GRAFT_T(conv2d_backward_input),
      GRAFT_T(conv2d_backward_weight),
      GRAFT_T(batch_norm_forward_train),
      GRAFT_T(batch_norm_forward_eval),
      GRAFT_T(batch_norm_backward),
      GRAFT_T(max_pool2d_forward),
      GRAFT_T(max_pool2d_backward),
      GRAFT_T(adaptive_avg_pool2d_forward),
      GRAFT_T(adaptive_avg_pool2d_backward),
      GRAFT_T(softmax_forward),
      GRAFT_T(softmax_backward),
      GRAFT_T(nll_loss_forward),
      GRAFT_T(nll_loss_backward),
      GRAFT_T(cross_entropy_forward),
      GRAFT_T(cross_entropy_backward),
      GRAFT_T(linear_forward),
      GRAFT_T(linear_backward_input),
      GRAFT_T(linear_backward_weight),
      GRAFT_T(bias_backward),
      GRAFT_T(sgd_step),
      GRAFT_T(adam_step),
#undef GRAFT_T
  };
  for (const auto& [name, has] : tables) EXPECT_TRUE(has) << "no CUDA kernel for " << name;
}
#endif

// ---- the op table ----

// How an input is laid out: contiguous, a transposed view, or a strided slice.
enum class Layout { Contiguous, Transposed, Strided };

struct InputSpec {
  Shape shape;
  Layout layout = Layout::Contiguous;
  bool requires_grad = true;
  DType dtype = DType::Float32;
  // Values: 0 = randn, 1 = positive (rand + 0.5), 2 = int64 in [0, int_hi)
  int kind = 0;
  int64_t int_hi = 0;
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> fn;
  double tol = 1e-5;
  bool backward = true;
};

// The base tensor is generated contiguous on the CPU, then viewed; the CUDA
// input is the same base copied to the device and viewed the same way.
Tensor make_base(const InputSpec& s, Generator& gen) {
  Shape base = s.shape;
  if (s.layout == Layout::Transposed && base.size() >= 2) std::swap(base[0], base[1]);
  if (s.layout == Layout::Strided && !base.empty()) base.back() *= 2;
  if (s.kind == 2) return randint(0, s.int_hi, base, opts(DType::Int64), &gen);
  Tensor t = s.kind == 1 ? add(rand(base, opts(DType::Float64), &gen), 0.5)
                         : randn(base, opts(DType::Float64), &gen);
  return t.to(s.dtype);
}
Tensor view_as_spec(const Tensor& base, const InputSpec& s) {
  if (s.layout == Layout::Transposed && base.dim() >= 2) return base.transpose(0, 1);
  if (s.layout == Layout::Strided && base.dim() >= 1)
    return base.slice(base.dim() - 1, 0, base.size(-1), 2);
  return base;
}

::testing::AssertionResult all_close(const Tensor& cuda_out, const Tensor& cpu_out, double tol,
                                     const std::string& what) {
  if (cuda_out.sizes() != cpu_out.sizes())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(cuda_out.sizes())
                                         << " vs " << shape_str(cpu_out.sizes());
  if (cuda_out.dtype() != cpu_out.dtype())
    return ::testing::AssertionFailure() << what << ": dtype " << dtype_name(cuda_out.dtype())
                                         << " vs " << dtype_name(cpu_out.dtype());
  const std::vector<double> a = cuda_out.cpu().to_vector<double>();
  const std::vector<double> e = cpu_out.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool an = std::isnan(a[i]), en = std::isnan(e[i]);
    // |a - e| <= tol * max(1, |e|): relative for large values, absolute near 0.
    if (an != en || (!an && std::fabs(a[i] - e[i]) > tol * std::max(1.0, std::fabs(e[i]))))
      return ::testing::AssertionFailure() << what << ": element " << i << " CUDA " << a[i]
                                           << " vs CPU " << e[i] << " (tol " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

// Forward on both devices, then backward of sum(out_k * w_k) with the same
// random weights w_k on both devices, comparing every input gradient.
void run_case(const OpCase& c) {
  SCOPED_TRACE(c.name);
  Generator gen(1234);
  std::vector<Tensor> cpu_in, cuda_in;
  for (const InputSpec& s : c.inputs) {
    const Tensor base = make_base(s, gen);
    Tensor a = view_as_spec(base, s);
    Tensor b = view_as_spec(base.to(Device::cuda()), s);
    if (s.requires_grad && c.backward && is_floating(s.dtype)) {
      // Leaves: a view is not a leaf, so give each device its own leaf copy
      // with the same strides (detach keeps the view's layout).
      a = a.detach();
      b = b.detach();
      a.set_requires_grad(true);
      b.set_requires_grad(true);
    }
    cpu_in.push_back(a);
    cuda_in.push_back(b);
  }
  const std::vector<Tensor> cpu_out = c.fn(cpu_in);
  const std::vector<Tensor> cuda_out = c.fn(cuda_in);
  ASSERT_EQ(cpu_out.size(), cuda_out.size());
  for (size_t k = 0; k < cpu_out.size(); ++k) {
    EXPECT_TRUE(cuda_out[k].device().is_cuda()) << "output " << k;
    EXPECT_TRUE(all_close(cuda_out[k], cpu_out[k], c.tol, "output " + std::to_string(k)));
  }
  if (!c.backward) return;
  Tensor loss_cpu, loss_cuda;
  for (size_t k = 0; k < cpu_out.size(); ++k) {
    if (!cpu_out[k].requires_grad()) continue;
    const Tensor w = randn(cpu_out[k].sizes(), opts(cpu_out[k].dtype()), &gen);
    const Tensor lc = sum(mul(cpu_out[k], w));
    const Tensor lg = sum(mul(cuda_out[k], w.to(Device::cuda())));
    loss_cpu = loss_cpu.defined() ? add(loss_cpu, lc) : lc;
    loss_cuda = loss_cuda.defined() ? add(loss_cuda, lg) : lg;
  }
  ASSERT_TRUE(loss_cpu.defined()) << "backward requested but no output requires grad";
  loss_cpu.backward();
  loss_cuda.backward();
  for (size_t i = 0; i < cpu_in.size(); ++i) {
    if (!cpu_in[i].requires_grad()) continue;
    ASSERT_TRUE(cuda_in[i].grad().defined()) << "no CUDA gradient for input " << i;
    EXPECT_TRUE(cuda_in[i].grad().device().is_cuda());
    EXPECT_TRUE(all_close(cuda_in[i].grad(), cpu_in[i].grad(), c.tol,
                          "grad of input " + std::to_string(i)));
  }
}

using V = std::vector<Tensor>;
constexpr Layout kC = Layout::Contiguous, kT = Layout::Transposed, kS = Layout::Strided;
InputSpec f32(Shape s, Layout l = kC) { return {std::move(s), l}; }
InputSpec f64(Shape s, Layout l = kC) { return {std::move(s), l, true, DType::Float64}; }
InputSpec pos(Shape s, Layout l = kC) { return {std::move(s), l, true, DType::Float32, 1}; }
InputSpec idx(Shape s, int64_t hi) { return {std::move(s), kC, false, DType::Int64, 2, hi}; }
InputSpec nograd(InputSpec s) {
  s.requires_grad = false;
  return s;
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cases;
  auto add_case = [&](OpCase c) { cases.push_back(std::move(c)); };
  // ---- element-wise ----
  add_case(
      {"add_broadcast", {f32({4, 5}), f32({5})}, [](const V& x) { return V{add(x[0], x[1])}; }});
  add_case({"sub_transposed", {f32({6, 3}, kT), f32({6, 3})}, [](const V& x) {
              return V{sub(x[0], x[1], 0.5)};
            }});
  add_case({"mul_strided_broadcast", {f32({3, 1, 8}, kS), f32({4, 8})}, [](const V& x) {
              return V{mul(x[0], x[1])};
            }});
  add_case({"div", {f32({7, 9}), pos({7, 9}, kT)}, [](const V& x) { return V{div(x[0], x[1])}; }});
  add_case({"maximum_minimum", {f32({5, 6}), f32({6})}, [](const V& x) {
              return V{maximum(x[0], x[1]), minimum(x[0], x[1])};
            }});
  add_case({"pow_scalar", {pos({33})}, [](const V& x) { return V{pow(x[0], 2.5)}; }});
  add_case({"pow_tensor", {pos({4, 4}), f32({4, 4}, kT)}, [](const V& x) {
              return V{pow(x[0], x[1])};
            }});
  add_case({"scalar_ops", {f32({3, 10}, kS)}, [](const V& x) {
              return V{add(x[0], 2.0), mul(x[0], -3.0), rsub(x[0], 1.0),
                       rdiv(add(mul(x[0], x[0]), 1.0), 2.0)};
            }});
  add_case({"unary_float", {f32({5, 7}, kT)}, [](const V& x) {
              return V{exp(x[0]), tanh(x[0]), sigmoid(x[0]), relu(x[0]),  neg(x[0]),
                       sin(x[0]), cos(x[0]),  abs(x[0]),     square(x[0])};
            }});
  add_case({"unary_positive", {pos({1000})}, [](const V& x) {
              return V{log(x[0]),        sqrt(x[0]),  rsqrt(x[0]),
                       reciprocal(x[0]), log1p(x[0]), expm1(x[0])};
            }});
  add_case({"unary_float64", {f64({4, 6}, kS)}, [](const V& x) {
              return V{exp(x[0]), tanh(x[0]), sigmoid(x[0])};
            }});
  add_case({"gelu", {f32({5, 7}, kT)}, [](const V& x) { return V{gelu(x[0]), gelu_tanh(x[0])}; }});
  add_case({"gelu_float64", {f64({4, 6}, kS)}, [](const V& x) {
              return V{gelu(x[0]), gelu_tanh(x[0])};
            }});
  add_case({"rounding",
            {nograd(f32({50}))},
            [](const V& x) {
              const Tensor y = mul(x[0], 3.0);
              return V{floor(y), ceil(y), round(y), sign(y)};
            },
            1e-5,
            false});
  add_case(
      {"compare_where", {f32({4, 6}), f32({6})}, [](const V& x) {
         const Tensor c = gt(x[0], x[1]);
         return V{c.to(DType::Float32), le(x[0], 0.1).to(DType::Float32), where(c, x[0], x[1])};
       }});
  add_case({"clamp", {f32({8, 8}, kT)}, [](const V& x) { return V{clamp(x[0], -0.5, 0.7)}; }});
  add_case({"large_1d", {f32({1 << 20})}, [](const V& x) { return V{mul(add(x[0], 1.0), x[0])}; }});
  // ---- dtype conversion (copy kernel) ----
  add_case({"to_half_bf16_int",
            {nograd(f32({6, 5}, kT))},
            [](const V& x) {
              const Tensor y = mul(x[0], 100.0);
              return V{y.to(DType::Float16).to(DType::Float32),
                       y.to(DType::BFloat16).to(DType::Float32),
                       y.to(DType::Int32).to(DType::Float32),
                       y.to(DType::Int64).to(DType::Float64),
                       y.to(DType::Bool).to(DType::Float32),
                       y.to(DType::UInt8).to(DType::Float32),
                       y.to(DType::Float64)};
            },
            0,
            false});
  add_case({"contiguous_clone", {f32({3, 4, 5}, kT)}, [](const V& x) {
              return V{x[0].permute({2, 0, 1}).contiguous(), x[0].clone()};
            }});
  // ---- reductions ----
  add_case({"sum_mean_dims", {f32({4, 5, 6}, kT)}, [](const V& x) {
              return V{sum(x[0]), sum(x[0], {1}), mean(x[0], {0, 2}), sum(x[0], {2}, true)};
            }});
  add_case({"sum_long_rows", {f32({3, 5000})}, [](const V& x) {
              return V{sum(x[0], {1}), mean(x[0], {0})};
            }});
  // A full reduction split over many blocks (partials, then a second pass),
  // and reductions over leading dims read in place ([A, K, B] over A and B).
  add_case({"reduce_split_rows", {f32({70000})}, [](const V& x) {
              return V{sum(x[0]), mean(x[0]), amax(x[0], {0}), sum(x[0].view({2, 35000}), {1})};
            }});
  // > 1M elements: 64 partial blocks of 16449 elements (the last shorter),
  // then one block. Both devices sum in double, so float32 rounding of the
  // result is all that differs (tol 1e-5 relative to |sum| ~ 1e3).
  add_case({"reduce_full_1m", {f32({(1 << 20) + 4097})}, [](const V& x) {
              return V{sum(x[0]), mean(x[0])};
            }});
  add_case({"reduce_leading_dims_in_place", {f32({4, 3, 5, 5})}, [](const V& x) {
              return V{sum(x[0], {0, 2, 3}), mean(x[0], {0}), amin(x[0], {0, 1}),
                       sum(x[0].view({4, 75}), {0})};
            }});
  add_case({"prod_amax_amin", {pos({6, 7}, kS)}, [](const V& x) {
              return V{prod(x[0], {1}), amax(x[0], {0}), amin(x[0], {1})};
            }});
  add_case({"var_std", {f32({5, 300})}, [](const V& x) {
              return V{var(x[0], {1}), var(x[0], {0}, 0), std(x[0], {1})};
            }});
  add_case({"max_argmax", {f32({7, 9}, kT)}, [](const V& x) {
              const ValuesIndices m = max(x[0], 1);
              return V{m.values, m.indices, argmax(x[0], 0), argmin(x[0], 1), max(x[0]), min(x[0])};
            }});
  // ---- matmul ----
  add_case({"matmul_f32",
            {f32({17, 33}), f32({33, 9}, kT)},
            [](const V& x) { return V{matmul(x[0], x[1])}; },
            1e-4});
  add_case({"bmm_f64",
            {f64({3, 20, 70}), f64({3, 70, 12})},
            [](const V& x) { return V{bmm(x[0], x[1])}; },
            1e-10});
  add_case({"matmul_broadcast_batch",
            {f32({2, 3, 8, 16}), f32({16, 5})},
            [](const V& x) { return V{matmul(x[0], x[1])}; },
            1e-4});
  // ---- indexing ----
  add_case({"index_select", {f32({10, 4}), idx({7}, 10), idx({5}, 4)}, [](const V& x) {
              return V{index_select(x[0], 0, x[1]), index_select(x[0], 1, x[2])};
            }});
  add_case({"gather_scatter_add", {f32({5, 8}), idx({5, 3}, 8), f32({5, 3})}, [](const V& x) {
              return V{gather(x[0], 1, x[1]), scatter_add(x[0], 1, x[1], x[2])};
            }});
  // ---- nn ----
  add_case({"conv2d_3x3_pad",
            {f32({2, 3, 9, 9}), f32({4, 3, 3, 3}), f32({4})},
            [](const V& x) {
              return V{F::conv2d(x[0], x[1], x[2], {1, 1, 1, 1, 1, 1, 1})};
            },
            1e-3});
  add_case({"conv2d_stride_dilation",
            {f32({2, 4, 11, 10}), f32({6, 4, 3, 2}), f32({6})},
            [](const V& x) {
              return V{F::conv2d(x[0], x[1], x[2], {2, 1, 1, 0, 2, 1, 1})};
            },
            1e-3});
  add_case({"conv2d_groups_nobias",
            {f32({1, 4, 7, 7}), f32({8, 2, 1, 1})},
            [](const V& x) {
              return V{F::conv2d(x[0], x[1], Tensor(), {1, 1, 0, 0, 1, 1, 2})};
            },
            1e-3});
  add_case({"conv2d_7x7_s2_f64",
            {f64({1, 3, 20, 20}), f64({5, 3, 7, 7})},
            [](const V& x) {
              return V{F::conv2d(x[0], x[1], Tensor(), {2, 2, 3, 3, 1, 1, 1})};
            },
            1e-10});
  add_case({"batch_norm_train",
            {f32({4, 3, 5, 5}), f32({3}), f32({3})},
            [](const V& x) {
              Tensor rm = zeros({3}, opts(DType::Float32, x[0].device()));
              Tensor rv = ones({3}, opts(DType::Float32, x[0].device()));
              const Tensor y = F::batch_norm(x[0], x[1], x[2], rm, rv, true, 0.1, 1e-5);
              return V{y, rm, rv};
            },
            1e-4});
  add_case({"batch_norm_eval",
            {f32({3, 4, 2, 6}), f32({4}), f32({4})},
            [](const V& x) {
              const Tensor rm = full({4}, 0.2, opts(DType::Float32, x[0].device()));
              const Tensor rv = full({4}, 1.5, opts(DType::Float32, x[0].device()));
              return V{F::batch_norm(x[0], x[1], x[2], rm, rv, false, 0.1, 1e-5)};
            },
            1e-5});
  add_case({"max_pool2d", {f32({2, 3, 9, 8})}, [](const V& x) {
              return V{F::max_pool2d(x[0], 3, 2, 1)};
            }});
  add_case({"adaptive_avg_pool2d", {f32({2, 3, 7, 9})}, [](const V& x) {
              return V{F::adaptive_avg_pool2d(x[0], 1, 1), F::adaptive_avg_pool2d(x[0], 3, 4)};
            }});
  add_case({"linear",
            {f32({6, 10}), f32({4, 10}), f32({4})},
            [](const V& x) { return V{F::linear(x[0], x[1], x[2])}; },
            1e-4});
  add_case({"softmax", {f32({5, 11}), f32({2, 6, 3}), f32({3, 300})}, [](const V& x) {
              return V{F::softmax(x[0], 1), F::log_softmax(x[0], 1), F::softmax(x[1], 1),
                       F::log_softmax(x[2], 1), F::softmax(x[2], -1)};
            }});
  add_case({"cross_entropy", {f32({8, 10}), idx({8}, 10)}, [](const V& x) {
              return V{F::cross_entropy(x[0], x[1]),
                       F::cross_entropy(x[0], x[1], F::Reduction::Sum, 3, 0.1),
                       F::cross_entropy(x[0], x[1], F::Reduction::None)};
            }});
  // Softmax over a middle dim: a block per tile of neighbouring lines. inner
  // 37 (two tiles of 32 columns, the second mostly idle, len 40 > 8 rows of
  // threads), inner 3 over dim 0 (one tile, 64 rows of threads for len 300),
  // inner 8 with len 5 (fewer elements than rows of threads).
  add_case(
      {"softmax_middle_dim", {f32({2, 40, 37}), f32({300, 3}), f32({3, 5, 2, 4})}, [](const V& x) {
         return V{F::softmax(x[0], 1), F::log_softmax(x[0], 1), F::softmax(x[1], 0),
                  F::log_softmax(x[2], 1), F::softmax(x[2], 2)};
       }});
  // The loss reduction over more rows than one block's chunk (4096): two
  // partial blocks, then one; the mean's count (ignore_index) the same way.
  add_case({"cross_entropy_many_rows", {f32({5000, 3}), idx({5000}, 3)}, [](const V& x) {
              return V{F::cross_entropy(x[0], x[1]),
                       F::cross_entropy(x[0], x[1], F::Reduction::Mean, 1, 0.1),
                       F::cross_entropy(x[0], x[1], F::Reduction::Sum),
                       F::nll_loss(F::log_softmax(x[0], 1), x[1], F::Reduction::Mean, 2)};
            }});
  add_case({"cross_entropy_wide_rows", {f32({3, 100}), idx({3}, 100)}, [](const V& x) {
              return V{F::cross_entropy(x[0], x[1], F::Reduction::Mean, -100, 0.2)};
            }});
  add_case({"nll_loss", {f32({6, 5}), idx({6}, 5)}, [](const V& x) {
              return V{F::nll_loss(F::log_softmax(x[0], 1), x[1])};
            }});
  return cases;
}

// Runs on every machine: the CPU half of each case must work (valid shapes,
// differentiable outputs, finite values), so the table itself is checked even
// where no GPU can run the comparison.
TEST(CudaOpTable, EveryCaseRunsOnCpu) {
  for (const OpCase& c : op_cases()) {
    SCOPED_TRACE(c.name);
    Generator gen(1234);
    std::vector<Tensor> in;
    for (const InputSpec& s : c.inputs) {
      Tensor a = view_as_spec(make_base(s, gen), s);
      if (s.requires_grad && c.backward && is_floating(s.dtype)) {
        a = a.detach();
        a.set_requires_grad(true);
      }
      in.push_back(a);
    }
    std::vector<Tensor> out;
    ASSERT_NO_THROW(out = c.fn(in));
    ASSERT_FALSE(out.empty());
    Tensor loss;
    for (const Tensor& o : out) {
      for (double v : o.to_vector<double>()) ASSERT_TRUE(std::isfinite(v));
      if (o.requires_grad()) loss = loss.defined() ? add(loss, sum(o)) : sum(o);
    }
    if (!c.backward) continue;
    ASSERT_TRUE(loss.defined()) << "no output requires grad";
    ASSERT_NO_THROW(loss.backward());
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i].requires_grad()) {
        EXPECT_TRUE(in[i].grad().defined()) << "input " << i;
      }
    }
  }
}

class CudaOps : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    GRAFT_REQUIRE_CUDA();
#ifdef GRAFT_HAVE_CUDA
    cuda::set_poison_allocations(true);
#endif
  }
  void TearDown() override {
#ifdef GRAFT_HAVE_CUDA
    if (cuda_available()) cuda::set_poison_allocations(false);
#endif
  }
};

TEST_P(CudaOps, MatchesCpu) { run_case(op_cases()[GetParam()]); }

INSTANTIATE_TEST_SUITE_P(AllOps, CudaOps, ::testing::Range<size_t>(0, op_cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& param) {
                           return op_cases()[param.param].name;
                         });

#ifdef GRAFT_HAVE_CUDA
TEST(CudaRuntime, CachingAllocatorReusesBlocksAndEmptiesCache) {
  GRAFT_REQUIRE_CUDA();
  const char* cache = std::getenv("GRAFT_CUDA_CACHE");
  if (cache && std::string(cache) == "0") {
    // The memcheck run: every free returns the block at once.
    {
      Tensor a = empty({1 << 18}, opts(DType::Float32, Device::cuda()));
      EXPECT_GE(cuda::memory_stats().allocated, 1u << 20);
    }
    EXPECT_EQ(cuda::memory_stats().cached, 0u);
    return;
  }
  cuda::synchronize();
  cuda::empty_cache();
  const cuda::MemoryStats s0 = cuda::memory_stats();
  {
    Tensor a = empty({1 << 18}, opts(DType::Float32, Device::cuda()));  // 1 MiB
    const cuda::MemoryStats s1 = cuda::memory_stats();
    EXPECT_GE(s1.allocated, s0.allocated + (1u << 20));
    EXPECT_GE(s1.peak_allocated, s1.allocated);
  }
  const cuda::MemoryStats s2 = cuda::memory_stats();
  EXPECT_EQ(s2.allocated, s0.allocated);
  EXPECT_GE(s2.cached, 1u << 20);
  {
    Tensor b = empty({1 << 18}, opts(DType::Float32, Device::cuda()));
    EXPECT_EQ(cuda::memory_stats().num_cache_hits, s2.num_cache_hits + 1);
  }
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats().cached, 0u);
}

TEST(CudaRuntime, OutOfRangeIndexIsReportedAtReadBack) {
  GRAFT_REQUIRE_CUDA();
  const Tensor x = randn({4, 3}).to(Device::cuda());
  const Tensor bad = tensor<int64_t>({0, 9}).to(Device::cuda());
  EXPECT_THROW(
      {
        const Tensor y = index_select(x, 0, bad);
        (void)y.cpu();
      },
      Error);
  // The flag is cleared: later work succeeds.
  EXPECT_NO_THROW((void)sum(x).item());
}

TEST(CudaRuntime, CopiesRoundTripLargeBuffers) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(7);
  const Tensor x = randn({5 << 20}, opts(DType::Float32), &gen);  // 20 MiB: several staging chunks
  const Tensor back = x.to(Device::cuda()).cpu();
  EXPECT_TRUE(all_close(back, x, 0, "round trip"));
}

// Fused optimizer steps against a direct CPU evaluation of torch's formulas.
TEST(CudaOptim, FusedSgdAndAdamMatchReference) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(99);
  std::vector<Tensor> p_cpu, g_cpu;
  for (int64_t n : {5, 1000, 33, 70000}) {
    p_cpu.push_back(randn({n}, opts(DType::Float64), &gen));
    g_cpu.push_back(randn({n}, opts(DType::Float64), &gen));
  }
  auto to_cuda = [](const std::vector<Tensor>& v) {
    std::vector<Tensor> r;
    for (const Tensor& t : v) r.push_back(t.to(Device::cuda()));
    return r;
  };
  // SGD with momentum, nesterov and weight decay, two steps.
  {
    std::vector<Tensor> p = to_cuda(p_cpu), g = to_cuda(g_cpu), buf;
    for (const Tensor& t : p) buf.push_back(zeros(t.sizes(), opts(t.dtype(), t.device())));
    cuda::SgdStepParams h{0.1, 0.9, 0.0, 1e-2, true, false, true};
    cuda::sgd_step(p, g, buf, h);
    h.init_buffers = false;
    cuda::sgd_step(p, g, buf, h);
    for (size_t k = 0; k < p.size(); ++k) {
      const std::vector<double> p0 = p_cpu[k].to_vector<double>(),
                                gg = g_cpu[k].to_vector<double>();
      std::vector<double> ref(p0), b(p0.size());
      for (int step = 0; step < 2; ++step)
        for (size_t i = 0; i < ref.size(); ++i) {
          double d = gg[i] + 1e-2 * ref[i];
          b[i] = step == 0 ? d : b[i] * 0.9 + d;
          d = d + 0.9 * b[i];
          ref[i] = ref[i] - 0.1 * d;
        }
      EXPECT_TRUE(all_close(p[k], tensor<double>(ref, p_cpu[k].sizes()), 1e-12, "sgd"));
    }
  }
  // AdamW, three steps.
  {
    std::vector<Tensor> p = to_cuda(p_cpu), g = to_cuda(g_cpu), m, v;
    for (const Tensor& t : p) {
      m.push_back(zeros(t.sizes(), opts(t.dtype(), t.device())));
      v.push_back(zeros(t.sizes(), opts(t.dtype(), t.device())));
    }
    const cuda::AdamStepParams h{1e-3, 0.9, 0.999, 1e-8, 0.01, false, false, true};
    for (int64_t step = 1; step <= 3; ++step)
      cuda::adam_step(p, g, m, v, {}, std::vector<int64_t>(p.size(), step), h);
    for (size_t k = 0; k < p.size(); ++k) {
      std::vector<double> ref = p_cpu[k].to_vector<double>(), gg = g_cpu[k].to_vector<double>();
      std::vector<double> mm(ref.size()), vv(ref.size());
      for (int step = 1; step <= 3; ++step) {
        const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
        for (size_t i = 0; i < ref.size(); ++i) {
          ref[i] *= 1 - 1e-3 * 0.01;
          mm[i] = mm[i] * 0.9 + 0.1 * gg[i];
          vv[i] = vv[i] * 0.999 + 0.001 * gg[i] * gg[i];
          ref[i] -= (1e-3 / bc1) * mm[i] / (std::sqrt(vv[i]) / std::sqrt(bc2) + 1e-8);
        }
      }
      EXPECT_TRUE(all_close(p[k], tensor<double>(ref, p_cpu[k].sizes()), 1e-10, "adamw"));
    }
  }
}

// Runs fn on cpu and cuda copies of `in`; both must throw, or both agree exactly.
void expect_same_on_both(const std::vector<Tensor>& in,
                         const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                         const std::string& what) {
  SCOPED_TRACE(what);
  std::vector<Tensor> on_cuda;
  for (const Tensor& t : in) on_cuda.push_back(t.to(Device::cuda()));
  Tensor cpu_out, cuda_out;
  bool cpu_threw = false, cuda_threw = false;
  try {
    cpu_out = fn(in);
  } catch (const Error&) {
    cpu_threw = true;
  }
  try {
    cuda_out = fn(on_cuda);
    cuda::synchronize();  // an index error is reported at the next synchronisation
  } catch (const Error&) {
    cuda_threw = true;
  }
  ASSERT_EQ(cpu_threw, cuda_threw) << "one device threw, the other did not";
  if (!cpu_threw) {
    EXPECT_TRUE(all_close(cuda_out, cpu_out, 0, what));
  }
}

// Finding: float -> integer conversion wrapped on the CPU (x86 through int32)
// and saturated on CUDA. Both now convert through int64 (torch's rule).
TEST(CudaConvert, FloatToIntegerWrapsThroughInt64OnBothDevices) {
  GRAFT_REQUIRE_CUDA();
  const Tensor x = tensor<double>({300.7, -1.5, 1e10, -129.0, 70000.0, 255.9});
  const std::vector<std::pair<DType, std::vector<double>>> expected = {
      {DType::UInt8, {44, 255, 0, 127, 112, 255}},
      {DType::Int8, {44, -1, 0, 127, 112, -1}},
      {DType::Int16, {300, -1, -7168, -129, 4464, 255}},
      {DType::Int32, {300, -1, 1410065408, -129, 70000, 255}},
  };
  for (const auto& [dt, want] : expected) {
    const Tensor ref = tensor<double>(want);
    EXPECT_TRUE(
        all_close(x.to(dt).to(DType::Float64), ref, 0, std::string("cpu ") + dtype_name(dt)));
    EXPECT_TRUE(all_close(x.to(Device::cuda()).to(dt).to(DType::Float64).cpu(), ref, 0,
                          std::string("cuda ") + dtype_name(dt)));
  }
}

// index_add has no public op (it is index_select's backward): call the kernel.
Tensor index_add_copy(const std::vector<Tensor>& v) {
  Tensor out = v[0].clone();
  kernel::index_add(out.device())(out, 0, v[1], v[2]);
  return out;
}

// Findings: CUDA rejected negative indices the CPU accepts, read an
// uninitialised coordinate for 0-d operands, and lacked the 8/16-bit integer
// dtypes for index_add/scatter_add.
TEST(CudaIndex, NegativeIndicesZeroDimOperandsAndSmallIntegerDtypesMatchCpu) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(8);
  const Tensor x = randn({5, 4}, opts(DType::Float32), &gen);
  const Tensor neg = tensor<int64_t>({-1, 0, -5, 3});
  expect_same_on_both(
      {x, neg}, [](const V& v) { return index_select(v[0], 0, v[1]); }, "index_select negative");
  const Tensor gidx = tensor<int64_t>({-1, 0, -4, 2, 1, -2}, {2, 3});
  expect_same_on_both(
      {x, gidx}, [](const V& v) { return gather(v[0], 1, v[1]); }, "gather negative");
  for (DType dt : {DType::Int8, DType::Int16, DType::UInt8, DType::Int32, DType::Float64}) {
    const Tensor base = mul(ones({4, 3}, opts(DType::Float32)), 120.0).to(dt);
    const Tensor src = mul(ones({2, 3}, opts(DType::Float32)), 100.0).to(dt);
    const Tensor rows = tensor<int64_t>({-1, -1});  // both rows into the last: wraps for int8/uint8
    expect_same_on_both({base, rows, src}, index_add_copy,
                        std::string("index_add ") + dtype_name(dt));
    const Tensor sidx = tensor<int64_t>({0, -1, 1, 2, 2, -3}, {2, 3});
    expect_same_on_both(
        {base, sidx, src}, [](const V& v) { return scatter_add(v[0], 0, v[1], v[2]); },
        std::string("scatter_add ") + dtype_name(dt));
  }
  const Tensor scalar = tensor<float>({2.5f}).reshape({});
  const Tensor idx0 = tensor<int64_t>({0}).reshape({});
  expect_same_on_both(
      {scalar, idx0}, [](const V& v) { return gather(v[0], 0, v[1]); }, "gather 0-d");
  expect_same_on_both(
      {scalar, tensor<int64_t>({0})}, [](const V& v) { return index_select(v[0], 0, v[1]); },
      "index_select 0-d");
  expect_same_on_both({scalar, idx0, tensor<float>({1.5f}).reshape({})}, index_add_copy,
                      "index_add 0-d");
  expect_same_on_both(
      {scalar, idx0, tensor<float>({1.5f}).reshape({})},
      [](const V& v) { return scatter_add(v[0], 0, v[1], v[2]); }, "scatter_add 0-d");
}

// Finding: the fused optimizer threw on a model whose parameters mix float32
// and float64; it now launches once per dtype.
TEST(CudaOptim, FusedStepsAcceptMixedFloat32AndFloat64Parameters) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(5);
  const Tensor p32 = randn({7}, opts(DType::Float32), &gen),
               p64 = randn({5}, opts(DType::Float64), &gen);
  const Tensor g32 = randn({7}, opts(DType::Float32), &gen),
               g64 = randn({5}, opts(DType::Float64), &gen);
  for (const bool adam : {false, true}) {
    std::vector<std::pair<std::string, Tensor>> cpu_params, cuda_params;
    for (const auto& [name, p, g] : {std::tuple{"a", p32, g32}, std::tuple{"b", p64, g64}}) {
      Tensor pc = p.clone(), pg = p.to(Device::cuda());
      pc.set_requires_grad(true);
      pg.set_requires_grad(true);
      pc.set_grad(g.clone());
      pg.set_grad(g.to(Device::cuda()));
      cpu_params.emplace_back(name, pc);
      cuda_params.emplace_back(name, pg);
    }
    auto step = [&](const std::vector<std::pair<std::string, Tensor>>& ps) {
      if (adam) {
        optim::AdamW opt(ps, optim::AdamWOptions{});
        opt.step();
        opt.step();
      } else {
        optim::SGD opt(ps, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
        opt.step();
        opt.step();
      }
    };
    step(cpu_params);
    ASSERT_NO_THROW(step(cuda_params)) << (adam ? "adamw" : "sgd");
    for (size_t k = 0; k < cpu_params.size(); ++k)
      // Tolerance 0: optim.cu is compiled without FMA contraction, so the fused
      // steps are bit-identical to the CPU kernels (the rule in optim.cu).
      EXPECT_TRUE(all_close(cuda_params[k].second.detach(), cpu_params[k].second.detach(), 0,
                            std::string(adam ? "adamw " : "sgd ") + cpu_params[k].first));
  }
}

// One ResNet18 training step (forward, cross-entropy, backward, SGD with
// momentum) from the same weights on cuda and cpu, in float64. A batch of 2
// makes batch norm ill-conditioned (layer4 normalises over 2 values per
// channel) and the step's gradients reach ~30, so float32 round-off of
// differently ordered sums already moves weights by ~3%; in float64 the
// devices agree to ~1e-9 (measured 1.3e-9), so 1e-6 relative to max(1, |cpu|)
// leaves a wide margin while a wrong kernel is off by O(1).
TEST(CudaModels, ResNet18TrainingStepMatchesCpu) {
  GRAFT_REQUIRE_CUDA();
  manual_seed(11);
  auto cpu_model = nn::resnet18(10);
  manual_seed(11);
  auto cuda_model = nn::resnet18(10);
  cpu_model->to(DType::Float64);
  cuda_model->to(DType::Float64);
  cuda_model->to(Device::cuda());
  Generator gen(3);
  const Tensor x = randn({2, 3, 32, 32}, opts(DType::Float64), &gen);
  const Tensor y = tensor<int64_t>({3, 7});
  auto step = [&](nn::Module& m, const Device& d) {
    optim::SGD opt(m.named_parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
    m.train();
    const Tensor loss = F::cross_entropy(m(x.to(d)), y.to(d));
    loss.backward();
    opt.step();
    return loss.detach();
  };
  const Tensor loss_cpu = step(*cpu_model, Device::cpu());
  const Tensor loss_cuda = step(*cuda_model, Device::cuda());
  EXPECT_TRUE(all_close(loss_cuda, loss_cpu, 1e-6, "loss"));
  const auto cpu_sd = cpu_model->state_dict();
  const auto cuda_sd = cuda_model->state_dict();
  ASSERT_EQ(cpu_sd.size(), cuda_sd.size());
  for (size_t k = 0; k < cpu_sd.size(); ++k) {
    ASSERT_EQ(cpu_sd[k].first, cuda_sd[k].first);
    EXPECT_TRUE(cuda_sd[k].second.device().is_cuda()) << cuda_sd[k].first;
    EXPECT_TRUE(all_close(cuda_sd[k].second, cpu_sd[k].second, 1e-6, cuda_sd[k].first));
  }
}

// Finding: one cuDNN and one cuBLAS handle were shared by all host threads
// (cuDNN forbids it; the emulated libraries reject a handle used by another
// thread than its creator). Each thread now gets its own.
TEST(CudaRuntime, LibraryHandlesArePerHostThread) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(4);
  const Tensor x = randn({1, 2, 5, 5}, opts(DType::Float32), &gen);
  const Tensor w = randn({3, 2, 3, 3}, opts(DType::Float32), &gen);
  const Tensor a = randn({4, 6}, opts(DType::Float32), &gen);
  auto run = [&] {
    const Tensor y =
        F::conv2d(x.to(Device::cuda()), w.to(Device::cuda()), Tensor(), {1, 1, 1, 1, 1, 1, 1});
    const Tensor m = matmul(a.to(Device::cuda()), a.t().to(Device::cuda()));
    return std::vector<Tensor>{y.cpu(), m.cpu()};
  };
  const std::vector<Tensor> here = run();
  std::vector<Tensor> there;
  std::string error;
  std::thread t([&] {
    try {
      there = run();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  t.join();
  ASSERT_EQ(error, "");
  for (size_t k = 0; k < here.size(); ++k)
    EXPECT_TRUE(all_close(there[k], here[k], 0, "result " + std::to_string(k)));
}

// Finding: cuDNN benchmark mode ran cudnnFind* with a workspace of the full
// limit (1 GiB), which then stayed cached. Meaningful in the ctest entry that
// sets GRAFT_CUDNN_BENCHMARK=1; holds trivially otherwise.
TEST(CudaRuntime, CudnnBenchmarkModeKeepsNoLimitSizedWorkspace) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(6);
  const Tensor x = randn({2, 3, 8, 8}, opts(DType::Float32), &gen).to(Device::cuda());
  const Tensor w = randn({4, 3, 3, 3}, opts(DType::Float32), &gen).to(Device::cuda());
  (void)F::conv2d(x, w, Tensor(), {1, 1, 1, 1, 1, 1, 1}).cpu();
  EXPECT_LT(cuda::memory_stats().reserved, size_t{256} << 20);
}

// Copies between two devices (the emulated build runs this binary with
// GRAFT_EMULATED_DEVICES=2), through both staging directions and back.
TEST(CudaRuntime, TwoDeviceCopiesRoundTrip) {
  GRAFT_REQUIRE_CUDA();
  if (cuda::device_count() < 2) {
    if (cuda_tests_required()) GTEST_FAIL() << "needs 2 CUDA devices (GRAFT_EMULATED_DEVICES=2)";
    GTEST_SKIP() << "needs 2 CUDA devices";
  }
  Generator gen(21);
  const Tensor x = randn({3 << 20}, opts(DType::Float32), &gen);  // 12 MiB: two staging chunks
  const Tensor on0 = x.to(Device::cuda(0));
  const Tensor on1 = on0.to(Device::cuda(1));
  EXPECT_EQ(on1.device(), Device::cuda(1));
  // Work on device 1 right after the copy must see the copied values.
  const Tensor doubled = mul(on1, 2.0);
  const Tensor back = doubled.to(Device::cuda(0)).cpu();
  EXPECT_TRUE(all_close(back, mul(x, 2.0), 0, "cuda:0 -> cuda:1 -> cuda:0"));
  // Host -> cuda:1 through staging chunks last used for cuda:0: each chunk's
  // event must be one of cuda:1 (an event of cuda:0 cannot be recorded there,
  // and a chunk whose record failed was reused while its copy was in flight).
  const Tensor y = randn({3 << 20}, opts(DType::Float32), &gen);
  const Tensor y1 = y.to(Device::cuda(1));
  const Tensor z1 = x.to(Device::cuda(1));
  EXPECT_TRUE(all_close(y1.cpu(), y, 0, "host -> cuda:1 (y)"));
  EXPECT_TRUE(all_close(z1.cpu(), x, 0, "host -> cuda:1 (x)"));
}

// Prints which CUDA kernel-table entries the tests called; an unfiltered run
// of the emulated build fails when one was never called.
class CoverageReport : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!cuda_available()) return;
    std::cout << "CUDA kernel-table coverage (calls per entry):\n";
    int missed = 0;
    for (const cuda::KernelCoverage& c : cuda::kernel_coverage()) {
      std::cout << "  " << (c.calls ? "covered  " : "MISSED   ") << c.table << "  " << c.calls
                << "\n";
      missed += c.calls == 0;
    }
    if (cuda_tests_required() && ::testing::GTEST_FLAG(filter) == "*") {
      EXPECT_EQ(missed, 0) << "CUDA kernel-table entries the harness never called";
    }
  }
};
const auto* const g_coverage_report = ::testing::AddGlobalTestEnvironment(new CoverageReport);
#endif

}  // namespace
}  // namespace graft
