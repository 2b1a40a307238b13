// JSON text output: the one place strings are escaped and numbers are printed for every JSON the
// project writes (the CLI's --json, the tasks' ToJson, the dashboard's and the volunteer page's
// APIs). Stateless functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace sparecycles {

enum class JsonStyle {
  kPlain,     // escapes `"`, `\` and control characters (below 0x20); other bytes pass through
  kHtmlSafe,  // ...and also DEL (0x7f) and `<` (as \u003c), so the text can never close a
              // <script> when a page embeds it
};

/// `s` escaped for the inside of a JSON string literal (no quotes): `\"`, `\\`, `\n`, `\r`, `\t`,
/// other control characters as \u00XX (lower-case hex); bytes >= 0x80 pass through unchanged.
std::string JsonEscape(std::string_view s, JsonStyle style = JsonStyle::kPlain);
/// A JSON string literal: JsonEscape(s) between double quotes.
std::string JsonString(std::string_view s, JsonStyle style = JsonStyle::kPlain);
/// A number for display: integers below 1e15 exactly, others with 12 significant digits;
/// non-finite values become null.
std::string JsonNumber(double v);
/// The shortest decimal that reads back as exactly `v` (std::to_chars); non-finite values become
/// null.
std::string JsonDouble(double v);

}  // namespace sparecycles
