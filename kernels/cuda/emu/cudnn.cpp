// Reference cuDNN for the emulated device. Every call validates its
// descriptors (shapes consistent with the convolution, data types equal,
// NCHW only), its pointers (device memory of the handle's device, large
// enough for the descriptor) and its workspace (at least what the chosen
// algorithm asked for), then queues a naive double-precision computation on
// the handle's stream. Failures print the reason to stderr and return
// CUDNN_STATUS_BAD_PARAM (CUDNN_STATUS_NOT_SUPPORTED for unsupported modes).
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cudnn.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
  int device = 0;
  std::thread::id owner = std::this_thread::get_id();
};
struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int ph = 0, pw = 0, sh = 1, sw = 1, dh = 1, dw = 1, groups = 1;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using graft::cuda::emu::is_device_range;

#define GRAFT_CUDNN_TRY(call)                              \
  do {                                                     \
    const cudnnStatus_t graft_s_ = (call);                 \
    if (graft_s_ != CUDNN_STATUS_SUCCESS) return graft_s_; \
  } while (0)

cudnnStatus_t bad(const std::string& why) {
  std::fprintf(stderr, "graft emulated cuDNN: %s\n", why.c_str());
  return CUDNN_STATUS_BAD_PARAM;
}

size_t elem(cudnnDataType_t t) {
  return t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_FLOAT ? 4 : 2;
}
size_t count(const cudnnTensorStruct* t) { return static_cast<size_t>(t->n) * t->c * t->h * t->w; }
size_t count(const cudnnFilterStruct* f) { return static_cast<size_t>(f->k) * f->c * f->h * f->w; }

// Algorithm 0 of every direction asks for this much workspace, 1 for none.
constexpr size_t kAlgo0Workspace = 4096;
size_t workspace_for(int algo) { return algo == 0 ? kAlgo0Workspace : 0; }

double load(cudnnDataType_t t, const void* p, size_t i) {
  return t == CUDNN_DATA_DOUBLE ? static_cast<const double*>(p)[i]
                                : static_cast<double>(static_cast<const float*>(p)[i]);
}
void store(cudnnDataType_t t, void* p, size_t i, double v) {
  if (t == CUDNN_DATA_DOUBLE)
    static_cast<double*>(p)[i] = v;
  else
    static_cast<float*>(p)[i] = static_cast<float>(v);
}
double scalar(cudnnDataType_t t, const void* p) {
  return t == CUDNN_DATA_DOUBLE ? *static_cast<const double*>(p)
                                : static_cast<double>(*static_cast<const float*>(p));
}
// y = alpha * v + beta * y; beta == 0 never reads y (it may hold NaN).
void blend(cudnnDataType_t t, void* p, size_t i, double v, double alpha, double beta) {
  store(t, p, i, alpha * v + (beta == 0 ? 0.0 : beta * load(t, p, i)));
}

// cuDNN handles must not be shared between host threads.
cudnnStatus_t check_handle(cudnnHandle_t h) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (h->owner != std::this_thread::get_id())
    return bad("a cuDNN handle is used by a host thread other than the one that created it");
  return CUDNN_STATUS_SUCCESS;
}

// Checks x/w/y against the convolution and each other.
cudnnStatus_t check_conv(cudnnHandle_t h, const cudnnTensorStruct* x, const cudnnFilterStruct* w,
                         const cudnnConvolutionStruct* c, const cudnnTensorStruct* y) {
  GRAFT_CUDNN_TRY(check_handle(h));
  if (!x || !w || !c || !y || !x->set || !w->set || !c->set || !y->set)
    return bad("convolution: a descriptor is null or was never set");
  if (x->type != w->type || x->type != y->type || c->compute != x->type)
    return bad("convolution: data types of x, w, y and the compute type differ");
  if (x->c != w->c * c->groups || w->k % c->groups != 0)
    return bad("convolution: x has " + std::to_string(x->c) + " channels, filter " +
               std::to_string(w->c) + " x " + std::to_string(c->groups) + " groups");
  const int oh = (x->h + 2 * c->ph - c->dh * (w->h - 1) - 1) / c->sh + 1;
  const int ow = (x->w + 2 * c->pw - c->dw * (w->w - 1) - 1) / c->sw + 1;
  if (y->n != x->n || y->c != w->k || y->h != oh || y->w != ow)
    return bad("convolution: output descriptor " + std::to_string(y->n) + "x" +
               std::to_string(y->c) + "x" + std::to_string(y->h) + "x" + std::to_string(y->w) +
               " but the convolution gives " + std::to_string(x->n) + "x" + std::to_string(w->k) +
               "x" + std::to_string(oh) + "x" + std::to_string(ow));
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t check_ptr(cudnnHandle_t h, const void* p, size_t bytes, const char* what) {
  if (bytes == 0) return CUDNN_STATUS_SUCCESS;
  if (!p || !is_device_range(p, bytes, h->device))
    return bad(std::string(what) + ": not " + std::to_string(bytes) +
               " bytes of device memory on the handle's device");
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t check_ws(cudnnHandle_t h, int algo, void* ws, size_t ws_size) {
  if (algo < 0 || algo > 1) return bad("unknown algorithm " + std::to_string(algo));
  if (ws_size < workspace_for(algo))
    return bad("workspace of " + std::to_string(ws_size) + " bytes, algorithm " +
               std::to_string(algo) + " needs " + std::to_string(workspace_for(algo)));
  return check_ptr(h, ws, ws_size, "workspace");
}

// Visits every (output, input, weight) index triple of the convolution.
template <typename F>
void for_each_tap(const cudnnTensorStruct& x, const cudnnFilterStruct& w,
                  const cudnnConvolutionStruct& c, const cudnnTensorStruct& y, F f) {
  const int og = w.k / c.groups;
  for (int n = 0; n < y.n; ++n)
    for (int o = 0; o < y.c; ++o) {
      const int g = o / og;
      for (int oh = 0; oh < y.h; ++oh)
        for (int ow = 0; ow < y.w; ++ow) {
          const size_t yi = ((static_cast<size_t>(n) * y.c + o) * y.h + oh) * y.w + ow;
          for (int ci = 0; ci < w.c; ++ci)
            for (int kh = 0; kh < w.h; ++kh) {
              const int ih = oh * c.sh - c.ph + kh * c.dh;
              if (ih < 0 || ih >= x.h) continue;
              for (int kw = 0; kw < w.w; ++kw) {
                const int iw = ow * c.sw - c.pw + kw * c.dw;
                if (iw < 0 || iw >= x.w) continue;
                const size_t xi =
                    ((static_cast<size_t>(n) * x.c + g * w.c + ci) * x.h + ih) * x.w + iw;
                const size_t wi = ((static_cast<size_t>(o) * w.c + ci) * w.h + kh) * w.w + kw;
                f(yi, xi, wi);
              }
            }
        }
    }
}

template <typename Perf, typename Algo>
void fill_perf(int requested, int* returned, Perf* perf, cudnnMathType_t math) {
  const int n = requested < 2 ? requested : 2;
  for (int i = 0; i < n; ++i)
    perf[i] = Perf{static_cast<Algo>(i), CUDNN_STATUS_SUCCESS, 0.f,
                   workspace_for(i),     CUDNN_DETERMINISTIC,  math};
  *returned = n;
}

cudnnStatus_t enqueue(cudnnHandle_t h, std::function<void()> work) {
  return graft::cuda::emu::enqueue(h->stream, std::move(work)) == cudaSuccess
             ? CUDNN_STATUS_SUCCESS
             : CUDNN_STATUS_EXECUTION_FAILED;
}

// The eps each forward-training call used, keyed by its save_mean pointer:
// cuDNN requires the backward to pass the same value.
std::mutex g_eps_mutex;
std::map<const void*, double> g_forward_eps;

}  // namespace

const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM (emulated cuDNN; the reason is on stderr)";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  int device = 0;
  (void)cudaGetDevice(&device);
  *handle = new cudnnContext{nullptr, device};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t stream) {
  if (!h) return CUDNN_STATUS_NOT_INITIALIZED;
  if (graft::cuda::emu::stream_device(stream) != h->device)
    return bad("cudnnSetStream: stream of another device than the handle");
  h->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
  *d = new cudnnTensorStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w) {
  if (format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    return bad("cudnnSetTensor4dDescriptor: dimensions must be positive");
  *d = {true, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
  *d = new cudnnFilterStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
    return bad("cudnnSetFilter4dDescriptor: dimensions must be positive");
  *d = {true, type, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
  *d = new cudnnConvolutionStruct;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u,
                                              int v, int dh, int dw, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0)
    return bad("cudnnSetConvolution2dDescriptor: negative padding or non-positive stride/dilation");
  if (mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_NOT_SUPPORTED;
  d->set = true;
  d->ph = ph, d->pw = pw, d->sh = u, d->sw = v, d->dh = dh, d->dw = dw;
  d->compute = compute;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (groups <= 0) return bad("cudnnSetConvolutionGroupCount: groups must be positive");
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math) {
  d->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w,
                                                     cudnnConvolutionDescriptor_t c,
                                                     cudnnTensorDescriptor_t y, int requested,
                                                     int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  GRAFT_CUDNN_TRY(check_conv(h, x, w, c, y));
  fill_perf<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(requested, returned, perf,
                                                                      c->math);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, int requested, int* returned,
    cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  GRAFT_CUDNN_TRY(check_conv(h, dx, w, c, dy));
  fill_perf<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(requested, returned,
                                                                              perf, c->math);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, int requested, int* returned,
    cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  GRAFT_CUDNN_TRY(check_conv(h, x, dw, c, dy));
  fill_perf<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      requested, returned, perf, c->math);
  return CUDNN_STATUS_SUCCESS;
}

// Find*Ex: validates like the run itself, and scribbles NaN over the output
// (the real one runs every algorithm into it), so that callers that rely on
// its contents are caught.
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp, cudnnFilterDescriptor_t w,
    const void* wp, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, void* yp,
    int requested, int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, size_t ws_size) {
  GRAFT_CUDNN_TRY(check_conv(h, x, w, c, y));
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "find forward x"));
  GRAFT_CUDNN_TRY(check_ptr(h, wp, count(w) * elem(w->type), "find forward w"));
  GRAFT_CUDNN_TRY(check_ptr(h, yp, count(y) * elem(y->type), "find forward y"));
  GRAFT_CUDNN_TRY(check_ptr(h, ws, ws_size, "find forward workspace"));
  fill_perf<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(requested, returned, perf,
                                                                      c->math);
  const size_t bytes = count(y) * elem(y->type);
  return enqueue(h, [yp, bytes] { std::memset(yp, 0xFF, bytes); });
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t h, cudnnFilterDescriptor_t w, const void* wp, cudnnTensorDescriptor_t dy,
    const void* dyp, cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t dx, void* dxp,
    int requested, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws,
    size_t ws_size) {
  GRAFT_CUDNN_TRY(check_conv(h, dx, w, c, dy));
  GRAFT_CUDNN_TRY(check_ptr(h, wp, count(w) * elem(w->type), "find backward-data w"));
  GRAFT_CUDNN_TRY(check_ptr(h, dyp, count(dy) * elem(dy->type), "find backward-data dy"));
  GRAFT_CUDNN_TRY(check_ptr(h, dxp, count(dx) * elem(dx->type), "find backward-data dx"));
  GRAFT_CUDNN_TRY(check_ptr(h, ws, ws_size, "find backward-data workspace"));
  fill_perf<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(requested, returned,
                                                                              perf, c->math);
  const size_t bytes = count(dx) * elem(dx->type);
  return enqueue(h, [dxp, bytes] { std::memset(dxp, 0xFF, bytes); });
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t h, cudnnTensorDescriptor_t x, const void* xp, cudnnTensorDescriptor_t dy,
    const void* dyp, cudnnConvolutionDescriptor_t c, cudnnFilterDescriptor_t dw, void* dwp,
    int requested, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* ws,
    size_t ws_size) {
  GRAFT_CUDNN_TRY(check_conv(h, x, dw, c, dy));
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "find backward-filter x"));
  GRAFT_CUDNN_TRY(check_ptr(h, dyp, count(dy) * elem(dy->type), "find backward-filter dy"));
  GRAFT_CUDNN_TRY(check_ptr(h, dwp, count(dw) * elem(dw->type), "find backward-filter dw"));
  GRAFT_CUDNN_TRY(check_ptr(h, ws, ws_size, "find backward-filter workspace"));
  fill_perf<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      requested, returned, perf, c->math);
  const size_t bytes = count(dw) * elem(dw->type);
  return enqueue(h, [dwp, bytes] { std::memset(dwp, 0xFF, bytes); });
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t x,
                                      const void* xp, cudnnFilterDescriptor_t w, const void* wp,
                                      cudnnConvolutionDescriptor_t c,
                                      cudnnConvolutionFwdAlgo_t algo, void* ws, size_t ws_size,
                                      const void* beta, cudnnTensorDescriptor_t y, void* yp) {
  GRAFT_CUDNN_TRY(check_conv(h, x, w, c, y));
  GRAFT_CUDNN_TRY(check_ws(h, algo, ws, ws_size));
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "forward x"));
  GRAFT_CUDNN_TRY(check_ptr(h, wp, count(w) * elem(w->type), "forward w"));
  GRAFT_CUDNN_TRY(check_ptr(h, yp, count(y) * elem(y->type), "forward y"));
  const cudnnDataType_t t = x->type;
  const double a = scalar(t, alpha), b = scalar(t, beta);
  return enqueue(h, [=, xs = *x, ws_ = *w, cs = *c, ys = *y] {
    std::vector<double> acc(count(&ys), 0.0);
    for_each_tap(xs, ws_, cs, ys, [&](size_t yi, size_t xi, size_t wi) {
      acc[yi] += load(t, xp, xi) * load(t, wp, wi);
    });
    for (size_t i = 0; i < acc.size(); ++i) blend(t, yp, i, acc[i], a, b);
  });
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha,
                                           cudnnFilterDescriptor_t w, const void* wp,
                                           cudnnTensorDescriptor_t dy, const void* dyp,
                                           cudnnConvolutionDescriptor_t c,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* ws,
                                           size_t ws_size, const void* beta,
                                           cudnnTensorDescriptor_t dx, void* dxp) {
  GRAFT_CUDNN_TRY(check_conv(h, dx, w, c, dy));
  GRAFT_CUDNN_TRY(check_ws(h, algo, ws, ws_size));
  GRAFT_CUDNN_TRY(check_ptr(h, wp, count(w) * elem(w->type), "backward-data w"));
  GRAFT_CUDNN_TRY(check_ptr(h, dyp, count(dy) * elem(dy->type), "backward-data dy"));
  GRAFT_CUDNN_TRY(check_ptr(h, dxp, count(dx) * elem(dx->type), "backward-data dx"));
  const cudnnDataType_t t = dx->type;
  const double a = scalar(t, alpha), b = scalar(t, beta);
  return enqueue(h, [=, xs = *dx, ws_ = *w, cs = *c, ys = *dy] {
    std::vector<double> acc(count(&xs), 0.0);
    for_each_tap(xs, ws_, cs, ys, [&](size_t yi, size_t xi, size_t wi) {
      acc[xi] += load(t, dyp, yi) * load(t, wp, wi);
    });
    for (size_t i = 0; i < acc.size(); ++i) blend(t, dxp, i, acc[i], a, b);
  });
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha,
                                             cudnnTensorDescriptor_t x, const void* xp,
                                             cudnnTensorDescriptor_t dy, const void* dyp,
                                             cudnnConvolutionDescriptor_t c,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws,
                                             size_t ws_size, const void* beta,
                                             cudnnFilterDescriptor_t dw, void* dwp) {
  GRAFT_CUDNN_TRY(check_conv(h, x, dw, c, dy));
  GRAFT_CUDNN_TRY(check_ws(h, algo, ws, ws_size));
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "backward-filter x"));
  GRAFT_CUDNN_TRY(check_ptr(h, dyp, count(dy) * elem(dy->type), "backward-filter dy"));
  GRAFT_CUDNN_TRY(check_ptr(h, dwp, count(dw) * elem(dw->type), "backward-filter dw"));
  const cudnnDataType_t t = x->type;
  const double a = scalar(t, alpha), b = scalar(t, beta);
  return enqueue(h, [=, xs = *x, ws_ = *dw, cs = *c, ys = *dy] {
    std::vector<double> acc(count(&ws_), 0.0);
    for_each_tap(xs, ws_, cs, ys, [&](size_t yi, size_t xi, size_t wi) {
      acc[wi] += load(t, dyp, yi) * load(t, xp, xi);
    });
    for (size_t i = 0; i < acc.size(); ++i) blend(t, dwp, i, acc[i], a, b);
  });
}

// C = alpha * A + beta * C, A broadcast over C where its dims are 1.
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void* alpha, cudnnTensorDescriptor_t a,
                             const void* ap, const void* beta, cudnnTensorDescriptor_t c,
                             void* cp) {
  GRAFT_CUDNN_TRY(check_handle(h));
  if (!a || !c || !a->set || !c->set || a->type != c->type)
    return bad("cudnnAddTensor: descriptors unset or of different types");
  for (auto [da, dc] : {std::pair{a->n, c->n}, {a->c, c->c}, {a->h, c->h}, {a->w, c->w}})
    if (da != 1 && da != dc) return bad("cudnnAddTensor: A does not broadcast to C");
  GRAFT_CUDNN_TRY(check_ptr(h, ap, count(a) * elem(a->type), "add-tensor A"));
  GRAFT_CUDNN_TRY(check_ptr(h, cp, count(c) * elem(c->type), "add-tensor C"));
  const cudnnDataType_t t = c->type;
  const double al = scalar(t, alpha), be = scalar(t, beta);
  return enqueue(h, [=, as = *a, cs = *c] {
    for (int n = 0; n < cs.n; ++n)
      for (int ch = 0; ch < cs.c; ++ch)
        for (int y = 0; y < cs.h; ++y)
          for (int x = 0; x < cs.w; ++x) {
            const size_t ci = ((static_cast<size_t>(n) * cs.c + ch) * cs.h + y) * cs.w + x;
            const size_t ai =
                ((static_cast<size_t>(as.n > 1 ? n : 0) * as.c + (as.c > 1 ? ch : 0)) * as.h +
                 (as.h > 1 ? y : 0)) *
                    as.w +
                (as.w > 1 ? x : 0);
            blend(t, cp, ci, load(t, ap, ai), al, be);
          }
  });
}

cudnnStatus_t cudnnDeriveBNTensorDescriptor(cudnnTensorDescriptor_t d, cudnnTensorDescriptor_t x,
                                            cudnnBatchNormMode_t mode) {
  if (!x || !x->set) return bad("cudnnDeriveBNTensorDescriptor: x unset");
  if (mode != CUDNN_BATCHNORM_SPATIAL) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = {true, x->type, 1, x->c, 1, 1};
  return CUDNN_STATUS_SUCCESS;
}

namespace {
cudnnStatus_t check_bn(cudnnHandle_t h, cudnnBatchNormMode_t mode, const cudnnTensorStruct* x,
                       const cudnnTensorStruct* y, const cudnnTensorStruct* bn, double eps) {
  GRAFT_CUDNN_TRY(check_handle(h));
  if (mode != CUDNN_BATCHNORM_SPATIAL) return CUDNN_STATUS_NOT_SUPPORTED;
  if (!x || !y || !bn || !x->set || !y->set || !bn->set)
    return bad("batch norm: a descriptor is null or unset");
  if (x->n != y->n || x->c != y->c || x->h != y->h || x->w != y->w || x->type != y->type)
    return bad("batch norm: x and y descriptors differ");
  if (bn->n != 1 || bn->c != x->c || bn->h != 1 || bn->w != 1 || bn->type != x->type)
    return bad("batch norm: the parameter descriptor is not 1xCx1x1 of x's type");
  if (!(eps >= CUDNN_BN_MIN_EPSILON)) return bad("batch norm: epsilon below CUDNN_BN_MIN_EPSILON");
  return CUDNN_STATUS_SUCCESS;
}
}  // namespace

cudnnStatus_t cudnnBatchNormalizationForwardTraining(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
    cudnnTensorDescriptor_t x, const void* xp, cudnnTensorDescriptor_t y, void* yp,
    cudnnTensorDescriptor_t bn, const void* scale, const void* bias, double factor, void* rm,
    void* rv, double eps, void* save_mean, void* save_invvar) {
  GRAFT_CUDNN_TRY(check_bn(h, mode, x, y, bn, eps));
  const size_t cb = static_cast<size_t>(x->c) * elem(x->type);
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "bn x"));
  GRAFT_CUDNN_TRY(check_ptr(h, yp, count(y) * elem(y->type), "bn y"));
  GRAFT_CUDNN_TRY(check_ptr(h, scale, cb, "bn scale"));
  GRAFT_CUDNN_TRY(check_ptr(h, bias, cb, "bn bias"));
  if ((rm == nullptr) != (rv == nullptr)) return bad("bn: running mean and var must both be given");
  if (rm) GRAFT_CUDNN_TRY(check_ptr(h, rm, cb, "bn running mean"));
  if (rv) GRAFT_CUDNN_TRY(check_ptr(h, rv, cb, "bn running var"));
  if ((save_mean == nullptr) != (save_invvar == nullptr))
    return bad("bn: saved mean and inverse variance must both be given");
  if (save_mean) {
    GRAFT_CUDNN_TRY(check_ptr(h, save_mean, cb, "bn saved mean"));
    GRAFT_CUDNN_TRY(check_ptr(h, save_invvar, cb, "bn saved inverse variance"));
    std::lock_guard<std::mutex> lock(g_eps_mutex);
    g_forward_eps[save_mean] = eps;
  }
  const cudnnDataType_t t = x->type;
  const double a = scalar(t, alpha), b = scalar(t, beta);
  return enqueue(h, [=, xs = *x] {
    const size_t S = static_cast<size_t>(xs.h) * xs.w, M = S * xs.n;
    for (int c = 0; c < xs.c; ++c) {
      auto at = [&](size_t i) { return (i / S * xs.c + c) * S + i % S; };
      double mean = 0, sq = 0;
      for (size_t i = 0; i < M; ++i) mean += load(t, xp, at(i));
      mean /= static_cast<double>(M);
      for (size_t i = 0; i < M; ++i) sq += std::pow(load(t, xp, at(i)) - mean, 2);
      const double invstd = 1.0 / std::sqrt(sq / static_cast<double>(M) + eps);
      const double sc = load(t, scale, c), bi = load(t, bias, c);
      for (size_t i = 0; i < M; ++i)
        blend(t, yp, at(i), (load(t, xp, at(i)) - mean) * invstd * sc + bi, a, b);
      if (rm) {
        store(t, rm, c, (1 - factor) * load(t, rm, c) + factor * mean);
        const double unbiased = M > 1 ? sq / static_cast<double>(M - 1) : 0.0;
        store(t, rv, c, (1 - factor) * load(t, rv, c) + factor * unbiased);
      }
      if (save_mean) {
        store(t, save_mean, c, mean);
        store(t, save_invvar, c, invstd);
      }
    }
  });
}

cudnnStatus_t cudnnBatchNormalizationForwardInference(cudnnHandle_t h, cudnnBatchNormMode_t mode,
                                                      const void* alpha, const void* beta,
                                                      cudnnTensorDescriptor_t x, const void* xp,
                                                      cudnnTensorDescriptor_t y, void* yp,
                                                      cudnnTensorDescriptor_t bn, const void* scale,
                                                      const void* bias, const void* mean,
                                                      const void* var, double eps) {
  GRAFT_CUDNN_TRY(check_bn(h, mode, x, y, bn, eps));
  const size_t cb = static_cast<size_t>(x->c) * elem(x->type);
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "bn x"));
  GRAFT_CUDNN_TRY(check_ptr(h, yp, count(y) * elem(y->type), "bn y"));
  for (const void* p : {scale, bias, mean, var}) GRAFT_CUDNN_TRY(check_ptr(h, p, cb, "bn param"));
  const cudnnDataType_t t = x->type;
  const double a = scalar(t, alpha), b = scalar(t, beta);
  return enqueue(h, [=, xs = *x] {
    const size_t S = static_cast<size_t>(xs.h) * xs.w;
    for (size_t i = 0; i < count(&xs); ++i) {
      const int c = static_cast<int>(i / S % xs.c);
      const double v = (load(t, xp, i) - load(t, mean, c)) / std::sqrt(load(t, var, c) + eps) *
                           load(t, scale, c) +
                       load(t, bias, c);
      blend(t, yp, i, v, a, b);
    }
  });
}

cudnnStatus_t cudnnBatchNormalizationBackward(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, const void* alpha_data, const void* beta_data,
    const void* alpha_param, const void* beta_param, cudnnTensorDescriptor_t x, const void* xp,
    cudnnTensorDescriptor_t dy, const void* dyp, cudnnTensorDescriptor_t dx, void* dxp,
    cudnnTensorDescriptor_t bn, const void* scale, void* dscale, void* dbias, double eps,
    const void* saved_mean, const void* saved_invvar) {
  GRAFT_CUDNN_TRY(check_bn(h, mode, x, dy, bn, eps));
  GRAFT_CUDNN_TRY(check_bn(h, mode, x, dx, bn, eps));
  const size_t cb = static_cast<size_t>(x->c) * elem(x->type);
  GRAFT_CUDNN_TRY(check_ptr(h, xp, count(x) * elem(x->type), "bn backward x"));
  GRAFT_CUDNN_TRY(check_ptr(h, dyp, count(x) * elem(x->type), "bn backward dy"));
  GRAFT_CUDNN_TRY(check_ptr(h, dxp, count(x) * elem(x->type), "bn backward dx"));
  for (const void* p : {scale, static_cast<const void*>(dscale), static_cast<const void*>(dbias)})
    GRAFT_CUDNN_TRY(check_ptr(h, p, cb, "bn backward param"));
  if (!saved_mean || !saved_invvar)
    return bad("bn backward: the reference needs the saved mean and inverse variance");
  {
    std::lock_guard<std::mutex> lock(g_eps_mutex);
    auto it = g_forward_eps.find(saved_mean);
    if (it != g_forward_eps.end() && it->second != eps)
      return bad("bn backward: epsilon " + std::to_string(eps) + " differs from the forward's " +
                 std::to_string(it->second) + " (cuDNN requires the same value)");
  }
  const cudnnDataType_t t = x->type;
  const double ad = scalar(t, alpha_data), bd = scalar(t, beta_data);
  const double ap = scalar(t, alpha_param), bp = scalar(t, beta_param);
  return enqueue(h, [=, xs = *x] {
    const size_t S = static_cast<size_t>(xs.h) * xs.w, M = S * xs.n;
    for (int c = 0; c < xs.c; ++c) {
      auto at = [&](size_t i) { return (i / S * xs.c + c) * S + i % S; };
      const double m = load(t, saved_mean, c), is = load(t, saved_invvar, c);
      double sdy = 0, sdyx = 0;
      for (size_t i = 0; i < M; ++i) {
        const double g = load(t, dyp, at(i));
        sdy += g;
        sdyx += g * (load(t, xp, at(i)) - m) * is;
      }
      const double w = load(t, scale, c);
      for (size_t i = 0; i < M; ++i) {
        const double xhat = (load(t, xp, at(i)) - m) * is;
        const double v = w * is *
                         (load(t, dyp, at(i)) - sdy / static_cast<double>(M) -
                          xhat * sdyx / static_cast<double>(M));
        blend(t, dxp, at(i), v, ad, bd);
      }
      blend(t, dscale, c, sdyx, ap, bp);
      blend(t, dbias, c, sdy, ap, bp);
    }
  });
}
