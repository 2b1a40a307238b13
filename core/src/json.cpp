#include "sparecycles/core/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace sparecycles {
namespace {

void AppendEscaped(std::string& out, std::string_view s, JsonStyle style) {
  static constexpr char kHex[] = "0123456789abcdef";
  const bool html = style == JsonStyle::kHtmlSafe;
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || (html && c == 0x7f)) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else if (html && c == '<') {
          out += "\\u003c";
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

}  // namespace

std::string JsonEscape(std::string_view s, JsonStyle style) {
  std::string out;
  out.reserve(s.size());
  AppendEscaped(out, s, style);
  return out;
}

std::string JsonString(std::string_view s, JsonStyle style) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  AppendEscaped(out, s, style);
  out += '"';
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  else
    std::snprintf(buf, sizeof(buf), "%.12g", v);
  return buf;
}

std::string JsonDouble(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

}  // namespace sparecycles
