// core/json.hpp, the one JSON writer: both escaping styles byte for byte, the quoted form, and
// both number forms (display and shortest round trip), including non-finite values.
#include "sparecycles/core/json.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "sparecycles/core/http.hpp"

using namespace sparecycles;

TEST_CASE("JsonEscape (plain): quotes, backslashes and control characters; other bytes pass") {
  CHECK(JsonEscape("plain text") == "plain text");
  CHECK(JsonEscape("a\"b\\c") == "a\\\"b\\\\c");
  CHECK(JsonEscape("\n\r\t") == "\\n\\r\\t");
  CHECK(JsonEscape(std::string("\x00\x01\x1f", 3)) == "\\u0000\\u0001\\u001f");
  CHECK(JsonEscape("\x7f<b>") == "\x7f<b>");
  CHECK(JsonEscape("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 unchanged
  CHECK(JsonString("a\"b") == "\"a\\\"b\"");
  CHECK(JsonString("") == "\"\"");
}

TEST_CASE("JsonEscape (HTML-safe): also DEL and <, so a page's <script> is never closed") {
  CHECK(JsonEscape("</script>\x7f", JsonStyle::kHtmlSafe) == "\\u003c/script>\\u007f");
  CHECK(JsonString("a\"b\\c\n\x01", JsonStyle::kHtmlSafe) == "\"a\\\"b\\\\c\\n\\u0001\"");
  // The web side's JsonString is this style.
  CHECK(http::JsonString("<x>") == JsonString("<x>", JsonStyle::kHtmlSafe));
}

TEST_CASE("JsonNumber: integers exactly below 1e15, else 12 digits; non-finite is null") {
  CHECK(JsonNumber(0) == "0");
  CHECK(JsonNumber(-42) == "-42");
  CHECK(JsonNumber(123456789012345.0) == "123456789012345");
  CHECK(JsonNumber(1e15) == "1e+15");
  CHECK(JsonNumber(0.1) == "0.1");
  CHECK(JsonNumber(1.0 / 3) == "0.333333333333");
  CHECK(JsonNumber(std::nan("")) == "null");
  CHECK(JsonNumber(std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("JsonDouble: the shortest text that reads back exactly; non-finite is null") {
  for (double v : {0.1, 1.0 / 3, -2.5e-300, 6.02214076e23, 1.0, 0.0}) {
    const std::string text = JsonDouble(v);
    CHECK(std::strtod(text.c_str(), nullptr) == v);
  }
  CHECK(JsonDouble(0.1) == "0.1");
  CHECK(JsonDouble(1.0 / 3) == "0.3333333333333333");
  CHECK(JsonDouble(-std::numeric_limits<double>::infinity()) == "null");
  CHECK(JsonDouble(std::nan("")) == "null");
}
