// The element-wise op tables: every unary, binary and comparison op is declared
// here once. Each row is X(Enum, name, result, saves):
//  - Enum: the UnaryOp/BinaryOp entry, and the name of its scalar formula in
//    core/elementwise_formulas.h (used by the CPU and CUDA kernels);
//  - name: the op's name in errors and autograd, and (unary, compare) the name
//    of its front end in core/ops.h;
//  - result: Same (computes in the promoted input dtype, integers included),
//    Float (integer inputs compute in float32, as torch does; the kernels only
//    see floating dtypes) or Bool (inputs are converted to bool; bool result);
//  - saves: what backward keeps (core/derivatives.cpp): the Input(s), the
//    Output, InputsAndOutput, or Nothing.
// Everything else (the enums, the name arrays, the front ends, the tensor
// methods, the kernels' dispatch) is generated from these rows.
//
// Adding a unary op: a row here, its formula in core/elementwise_formulas.h,
// its backward in core/derivatives.cpp (and a module, if it is a layer, in
// nn/layers.h). GELU was added so: those four files.
#pragma once

#include <cstdint>

// clang-format off
#define GRAFT_UNARY_OPS(X)                               \
  X(Neg,        neg,         Same,  Input)               \
  X(Abs,        abs,         Same,  Input)               \
  X(Exp,        exp,         Float, Output)              \
  X(Log,        log,         Float, Input)               \
  X(Sqrt,       sqrt,        Float, Output)              \
  X(Rsqrt,      rsqrt,       Float, Output)              \
  X(Sin,        sin,         Float, Input)               \
  X(Cos,        cos,         Float, Input)               \
  X(Tanh,       tanh,        Float, Output)              \
  X(Sigmoid,    sigmoid,     Float, Output)              \
  X(Relu,       relu,        Same,  Output)              \
  X(Sign,       sign,        Same,  Input)               \
  X(Reciprocal, reciprocal,  Float, Output)              \
  X(Square,     square,      Same,  Input)               \
  X(Floor,      floor,       Same,  Input)               \
  X(Ceil,       ceil,        Same,  Input)               \
  X(Round,      round,       Same,  Input)               \
  X(Log1p,      log1p,       Float, Input)               \
  X(Expm1,      expm1,       Float, Output)              \
  X(LogicalNot, logical_not, Bool,  Nothing)             \
  X(Gelu,       gelu,        Float, Input)               \
  X(GeluTanh,   gelu_tanh,   Float, Input)

// Arithmetic and logical binary ops. The *Backward rows have no front end:
// core/derivatives.cpp calls the kernel with (grad, saved tensor).
#define GRAFT_BINARY_OPS(X)                                       \
  X(Add,              add,                Same,  Nothing)         \
  X(Sub,              sub,                Same,  Nothing)         \
  X(Mul,              mul,                Same,  Input)           \
  X(Div,              div,                Float, Input)           \
  X(Pow,              pow,                Same,  InputsAndOutput) \
  X(Maximum,          maximum,            Same,  Input)           \
  X(Minimum,          minimum,            Same,  Input)           \
  X(LogicalAnd,       logical_and,        Bool,  Nothing)         \
  X(LogicalOr,        logical_or,         Bool,  Nothing)         \
  X(ReluBackward,     relu_backward,      Same,  Nothing)         \
  X(GeluBackward,     gelu_backward,      Float, Nothing)         \
  X(GeluTanhBackward, gelu_tanh_backward, Float, Nothing)

// Comparisons: inputs promoted to one dtype, bool result, not differentiable.
// Each has a tensor and a scalar front end.
#define GRAFT_COMPARE_OPS(X) \
  X(Eq, eq, Same, Nothing)   \
  X(Ne, ne, Same, Nothing)   \
  X(Lt, lt, Same, Nothing)   \
  X(Le, le, Same, Nothing)   \
  X(Gt, gt, Same, Nothing)   \
  X(Ge, ge, Same, Nothing)
// clang-format on

namespace graft {

enum class OpResult : uint8_t { Same, Float, Bool };
enum class OpSaves : uint8_t { Nothing, Input, Output, InputsAndOutput };

#define GRAFT_OP_ENUM_ENTRY(Op, name, result, saves) Op,
enum class UnaryOp : uint8_t { GRAFT_UNARY_OPS(GRAFT_OP_ENUM_ENTRY) };
// Comparisons share BinaryOp (one binary kernel) and come last.
enum class BinaryOp : uint8_t {
  GRAFT_BINARY_OPS(GRAFT_OP_ENUM_ENTRY) GRAFT_COMPARE_OPS(GRAFT_OP_ENUM_ENTRY)
};
#undef GRAFT_OP_ENUM_ENTRY

#define GRAFT_OP_COUNT(Op, name, result, saves) +1
inline constexpr int kNumUnaryOps = 0 GRAFT_UNARY_OPS(GRAFT_OP_COUNT);
inline constexpr int kNumCompareOps = 0 GRAFT_COMPARE_OPS(GRAFT_OP_COUNT);
inline constexpr int kNumBinaryOps = 0 GRAFT_BINARY_OPS(GRAFT_OP_COUNT) + kNumCompareOps;
#undef GRAFT_OP_COUNT

namespace op_table_detail {
#define GRAFT_OP_NAME(Op, name, result, saves) #name,
inline constexpr const char* kUnaryNames[] = {GRAFT_UNARY_OPS(GRAFT_OP_NAME)};
inline constexpr const char* kBinaryNames[] = {GRAFT_BINARY_OPS(GRAFT_OP_NAME)
                                                   GRAFT_COMPARE_OPS(GRAFT_OP_NAME)};
#undef GRAFT_OP_NAME
#define GRAFT_OP_RESULT(Op, name, result, saves) OpResult::result,
inline constexpr OpResult kUnaryResults[] = {GRAFT_UNARY_OPS(GRAFT_OP_RESULT)};
inline constexpr OpResult kBinaryResults[] = {GRAFT_BINARY_OPS(GRAFT_OP_RESULT)
                                                  GRAFT_COMPARE_OPS(GRAFT_OP_RESULT)};
#undef GRAFT_OP_RESULT
#define GRAFT_OP_SAVES(Op, name, result, saves) OpSaves::saves,
inline constexpr OpSaves kUnarySaves[] = {GRAFT_UNARY_OPS(GRAFT_OP_SAVES)};
inline constexpr OpSaves kBinarySaves[] = {GRAFT_BINARY_OPS(GRAFT_OP_SAVES)
                                               GRAFT_COMPARE_OPS(GRAFT_OP_SAVES)};
#undef GRAFT_OP_SAVES
static_assert(sizeof(kUnaryNames) / sizeof(kUnaryNames[0]) == kNumUnaryOps);
static_assert(sizeof(kBinaryNames) / sizeof(kBinaryNames[0]) == kNumBinaryOps);
static_assert(sizeof(kUnaryResults) / sizeof(kUnaryResults[0]) == kNumUnaryOps);
static_assert(sizeof(kBinaryResults) / sizeof(kBinaryResults[0]) == kNumBinaryOps);
static_assert(sizeof(kUnarySaves) / sizeof(kUnarySaves[0]) == kNumUnaryOps);
static_assert(sizeof(kBinarySaves) / sizeof(kBinarySaves[0]) == kNumBinaryOps);
}  // namespace op_table_detail

// A value outside the enum (a corrupt op) names itself as such.
constexpr const char* unary_op_name(UnaryOp op) {
  const int i = static_cast<int>(op);
  return i < kNumUnaryOps ? op_table_detail::kUnaryNames[i] : "<invalid unary op>";
}
constexpr const char* binary_op_name(BinaryOp op) {
  const int i = static_cast<int>(op);
  return i < kNumBinaryOps ? op_table_detail::kBinaryNames[i] : "<invalid binary op>";
}
constexpr OpResult unary_result(UnaryOp op) {
  return op_table_detail::kUnaryResults[static_cast<int>(op)];
}
constexpr OpResult binary_result(BinaryOp op) {
  return op_table_detail::kBinaryResults[static_cast<int>(op)];
}
constexpr OpSaves unary_saves(UnaryOp op) {
  return op_table_detail::kUnarySaves[static_cast<int>(op)];
}
constexpr OpSaves binary_saves(BinaryOp op) {
  return op_table_detail::kBinarySaves[static_cast<int>(op)];
}
// Result dtype is bool, inputs keep their promoted dtype.
constexpr bool is_comparison(BinaryOp op) {
  return static_cast<int>(op) >= kNumBinaryOps - kNumCompareOps;
}

}  // namespace graft
