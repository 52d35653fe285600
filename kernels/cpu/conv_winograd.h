// Winograd F(2x2, 3x3) for CPU 3x3 stride-1 convolutions (groups 1, no
// dilation): each 2x2 block of outputs costs 16 multiplies per (input,
// output) channel pair instead of im2col's 36, so the GEMM part shrinks 2.25x.
//
// With the output split into 2x2 tiles and tile t reading the 4x4 input
// patch d_t that starts at (2*th - pad_h, 2*tw - pad_w):
//   U[k][o][c] = (G g_oc G^T)[k]      filter transform, once per call
//   V[k][c][t] = (B^T d_ct B)[k]      input transform
//   M[k]       = U[k] @ V[k]          16 GEMMs [O,C] @ [C,tiles]
//   y_ot       = A^T m_ot A           output transform (+ bias), clipped to OH x OW
// for k over the 16 points of the 4x4 transform domain.
//
// The same routine runs the input gradient of such a convolution: it is a 3x3
// stride-1 convolution of grad_out with pad 2 - pad and the kernel
// transposed over channels and flipped in both spatial axes
// (`flip_transpose`, read from the forward weight, no copy).
//
// Numerics: the transforms add and subtract (and halve) a few values, so the
// float32 rounding error per output is a small constant factor above the
// direct sum's; tests bound it against float64 (NnOps.Conv2dWinograd* in
// tests/test_nn_ops.cpp).
#pragma once

#include <cstdint>

namespace graft::cpu {

struct WinogradShape {
  int64_t N, C, H, W;  // input (grad_out when flip_transpose)
  int64_t O, OH, OW;   // output (grad_input when flip_transpose)
  int64_t pad_h, pad_w;
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
