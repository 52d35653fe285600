// Loss modules (torch.nn.CrossEntropyLoss and friends): thin holders of the
// loss options around graft::F. They take (input, target), so they are not
// Modules with a one-tensor forward.
#pragma once

#include <cstdint>

#include "core/ops_nn.h"

namespace graft::nn {

class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(F::Reduction reduction = F::Reduction::Mean,
                            int64_t ignore_index = -100, double label_smoothing = 0.0)
      : reduction_(reduction), ignore_index_(ignore_index), label_smoothing_(label_smoothing) {}
  // logits [N, C], target [N] int64 class indices.
  Tensor operator()(const Tensor& logits, const Tensor& target) const {
    return F::cross_entropy(logits, target, reduction_, ignore_index_, label_smoothing_);
  }

 private:
  F::Reduction reduction_;
  int64_t ignore_index_;
  double label_smoothing_;
};

class NLLLoss {
 public:
  explicit NLLLoss(F::Reduction reduction = F::Reduction::Mean, int64_t ignore_index = -100)
      : reduction_(reduction), ignore_index_(ignore_index) {}
  Tensor operator()(const Tensor& log_probs, const Tensor& target) const {
    return F::nll_loss(log_probs, target, reduction_, ignore_index_);
  }

 private:
  F::Reduction reduction_;
  int64_t ignore_index_;
};

}  // namespace graft::nn
