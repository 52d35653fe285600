// Parameter initialisation, with the formulas of torch.nn.init. Every
// function fills in place without recording autograd history and draws from
// `gen` (graft::default_generator() when null).
#pragma once

#include <string>
#include <utility>

#include "core/generator.h"
#include "core/tensor.h"

namespace graft::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, ReLU, LeakyReLU, SELU };

// {fan_in, fan_out} of a weight with at least 2 dims:
// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);
// torch.nn.init.calculate_gain; `param` is leaky_relu's negative slope
// (0.01 when negative, matching PyTorch's default of None).
double calculate_gain(Nonlinearity nonlinearity, double param = -1);

Tensor& uniform_(Tensor& t, double a = 0, double b = 1, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0, double std = 1, Generator* gen = nullptr);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);

// std = gain / sqrt(fan); uniform bound = sqrt(3) * std. `a` is the negative
// slope for leaky_relu (PyTorch's default a=0 with leaky_relu gives sqrt(2)).
Tensor& kaiming_uniform_(Tensor& t, double a = 0, FanMode mode = FanMode::FanIn,
                         Nonlinearity nonlinearity = Nonlinearity::LeakyReLU,
                         Generator* gen = nullptr);
Tensor& kaiming_normal_(Tensor& t, double a = 0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyReLU,
                        Generator* gen = nullptr);
// std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& t, double gain = 1, Generator* gen = nullptr);
Tensor& xavier_normal_(Tensor& t, double gain = 1, Generator* gen = nullptr);

// nn.Linear / nn.Conv2d reset_parameters(): weight kaiming_uniform_(a=sqrt(5)),
// bias (when defined) uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_reset(Tensor& weight, Tensor& bias, Generator* gen = nullptr);

}  // namespace graft::nn::init
