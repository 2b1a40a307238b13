// The integer syntax of every command line, config file and task parameter: "123", "-7", "1e9"
// and the decimal suffixes k/K, M, G, T ("4M" = 4000000). Header-only and needing status.hpp
// alone, because the task API (installed header-only for plugin authors) uses it as well as
// core's Options. Stateless; thread-safe.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sparecycles/core/status.hpp"

namespace sparecycles {

/// Parses `text` as above. Errors: InvalidArgument ("empty number", "'X' is not a number",
/// "'X' is not an integer", "'X' is out of range").
inline Result<std::int64_t> ParseInt(std::string_view text) {
  std::string s(text);
  if (s.empty()) return InvalidArgument("empty number");
  double mult = 1;
  switch (s.back()) {
    case 'k':
    case 'K':
      mult = 1e3;
      s.pop_back();
      break;
    case 'M':
      mult = 1e6;
      s.pop_back();
      break;
    case 'G':
      mult = 1e9;
      s.pop_back();
      break;
    case 'T':
      mult = 1e12;
      s.pop_back();
      break;
    default:
      break;
  }
  if (s.empty()) return InvalidArgument("'" + std::string(text) + "' is not a number");
  char* end = nullptr;
  errno = 0;
  if (mult == 1 && s.find_first_of(".eE") == std::string::npos) {
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || errno != 0)
      return InvalidArgument("'" + std::string(text) + "' is not an integer");
    return static_cast<std::int64_t>(v);
  }
  long double v = std::strtold(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno != 0 || !std::isfinite(static_cast<double>(v)))
    return InvalidArgument("'" + std::string(text) + "' is not a number");
  v *= mult;
  if (v != std::floor(v)) return InvalidArgument("'" + std::string(text) + "' is not an integer");
  if (v > 9.2e18L || v < -9.2e18L)
    return InvalidArgument("'" + std::string(text) + "' is out of range");
  return static_cast<std::int64_t>(v);
}

}  // namespace sparecycles
