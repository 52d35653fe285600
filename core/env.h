// Environment variables, read in one place for every layer (core, kernels,
// train, dist). A variable that is unset or set to the empty string counts as
// unset everywhere except env_set(). A malformed number is a graft::Error that
// names the variable, never a silent 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace graft {

// The value, or nullopt when unset or empty.
std::optional<std::string> env_string(const char* name);
// True when the variable exists at all, even empty (launcher markers such as
// OMPI_COMM_WORLD_SIZE, and switches documented as "set to enable").
bool env_set(const char* name);
// A two-way switch: true when the variable is `on_value` ("GRAFT_CONV=native"),
// false when it is unset, empty or `off_value`; any other value is refused
// (an Error naming both), so a typo cannot silently select the default.
bool env_flag(const char* name, const char* on_value, const char* off_value);
// One of `choices` (GRAFT_CONV_CPU=auto|gemm|winograd), as its index in the
// list; `fallback` when unset or empty. Any other value is refused (an Error
// naming the variable, its value and the choices).
size_t env_choice(const char* name, std::initializer_list<const char*> choices, size_t fallback);
// A whole decimal integer (surrounding spaces allowed); `fallback` when unset.
int64_t env_int(const char* name, int64_t fallback);
// A finite decimal number; `fallback` when unset.
double env_double(const char* name, double fallback);

}  // namespace graft
