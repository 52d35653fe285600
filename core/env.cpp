#include "core/env.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace graft {

std::optional<std::string> env_string(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

bool env_flag(const char* name, const char* on_value, const char* off_value) {
  const char* v = std::getenv(name);
  if (!v || !*v || std::strcmp(v, off_value) == 0) return false;
  GRAFT_CHECK(std::strcmp(v, on_value) == 0, name, "='", v, "': expected ", on_value, " or ",
              off_value);
  return true;
}

size_t env_choice(const char* name, std::initializer_list<const char*> choices, size_t fallback) {
  const auto v = env_string(name);
  if (!v) return fallback;
  std::string expected;
  size_t i = 0;
  for (const char* c : choices) {
    if (*v == c) return i;
    expected += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string(c);
    ++i;
  }
  GRAFT_FAIL(name, "=", *v, " is not a choice: expected ", expected);
}

namespace {
// True when only spaces follow `end`.
bool only_spaces(const char* end) {
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0';
}
}  // namespace

int64_t env_int(const char* name, int64_t fallback) {
  const auto v = env_string(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(v->c_str(), &end, 10);
  GRAFT_CHECK(end != v->c_str() && only_spaces(end) && errno != ERANGE, "environment variable ",
              name, "=\"", *v, "\" is not an integer");
  return static_cast<int64_t>(n);
}

double env_double(const char* name, double fallback) {
  const auto v = env_string(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v->c_str(), &end);
  GRAFT_CHECK(end != v->c_str() && only_spaces(end) && std::isfinite(d), "environment variable ",
              name, "=\"", *v, "\" is not a finite number");
  return d;
}

}  // namespace graft
