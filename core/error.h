// graft::Error and the GRAFT_CHECK macro: every user-facing failure in graft is
// a graft::Error whose message names the op, the shapes and the dtypes involved.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace graft {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace graft

#define GRAFT_CHECK(cond, ...)                                               \
  do {                                                                       \
    if (!(cond)) throw ::graft::Error(::graft::detail::concat(__VA_ARGS__)); \
  } while (0)

#define GRAFT_FAIL(...) throw ::graft::Error(::graft::detail::concat(__VA_ARGS__))
