// Winograd F(mxm, 3x3) for CPU 3x3 stride-1 convolutions (groups 1, no
// dilation), m = 2 or 4. Each mxm block of outputs costs (m+2)^2 multiplies
// per (input, output) channel pair instead of im2col's 9 m^2: the GEMM part
// shrinks 2.25x with F(2x2,3x3) (16 for 36) and 4x with F(4x4,3x3) (36 for
// 144), before the waste of tiles that overhang the output.
//
// With the output split into mxm tiles and tile t reading the (m+2)^2 input
// patch d_t that starts at (m*th - pad_h, m*tw - pad_w):
//   U[k][o][c] = (G g_oc G^T)[k]      filter transform, once per call
//   V[k][c][t] = (B^T d_ct B)[k]      input transform
//   M[k]       = U[k] @ V[k]          (m+2)^2 GEMMs [O,C] @ [C,tiles]
//   y_ot       = A^T m_ot A           output transform (+ bias), clipped to OH x OW
// for k over the points of the (m+2)x(m+2) transform domain (Toom-Cook, as in
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016;
// F(2x2,3x3) on the points 0, 1, -1, inf, F(4x4,3x3) on 0, 1, -1, 1/2, -2,
// inf, which Barabasz et al., 2019, found better conditioned than 2, -2).
//
// The same routine runs the input gradient of such a convolution: it is a 3x3
// stride-1 convolution of grad_out with pad 2 - pad and the kernel
// transposed over channels and flipped in both spatial axes
// (`flip_transpose`, read from the forward weight, no copy).
//
// Numerics: F(2x2,3x3)'s transforms add and subtract (and halve) a few
// values, so its float32 rounding error per output is a small constant factor
// above the direct sum's. F(4x4,3x3)'s multiply by up to 8 and 16/15 and sum
// up to 6 terms per stage, so its error is larger (tests measure ~4x
// im2col's, ~7x F(2x2,3x3)'s; 2.5x less than on the points 2, -2); both are
// bounded against float64 (NnOps.Conv2dWinograd* in tests/test_nn_ops.cpp;
// tests/winograd_points.py derives the matrices). The weight gradient has
// F(2x2,3x3) only.
#pragma once

#include <cstdint>

namespace graft::cpu {

struct WinogradShape {
  int64_t N, C, H, W;  // input (grad_out when flip_transpose)
  int64_t O, OH, OW;   // output (grad_input when flip_transpose)
  int64_t pad_h, pad_w;
  int tile = 2;  // m: 2 or 4 (the weight gradient ignores it: F(2x2,3x3) only)
};

// out[N,O,OH,OW] = conv3x3(in[N,C,H,W], w) (+ bias[O] when not null), every
// element written. w is [O,C,3,3], or with flip_transpose the forward weight
// [C,O,3,3] of the convolution whose input gradient this is.
void winograd_conv3x3(const WinogradShape& s, const float* in, const float* w, bool flip_transpose,
                      const float* bias, float* out);
void winograd_conv3x3(const WinogradShape& s, const double* in, const double* w,
                      bool flip_transpose, const double* bias, double* out);

// gw[O,C,3,3] = the weight gradient of out = conv3x3(in, w) given
// gout[N,O,OH,OW] (overwritten, not accumulated).
void winograd_conv3x3_weight_grad(const WinogradShape& s, const float* in, const float* gout,
                                  float* gw);
void winograd_conv3x3_weight_grad(const WinogradShape& s, const double* in, const double* gout,
                                  double* gw);

}  // namespace graft::cpu
