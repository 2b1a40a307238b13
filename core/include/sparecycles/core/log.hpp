// A small leveled logger writing one line per call to stderr. Thread-safe.
// Usage: SC_LOG(Info) << "peer " << id << " joined";
#pragma once

#include <atomic>
#include <sstream>
#include <string_view>

namespace sparecycles {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// Parses "debug", "info", "warn", "error", "off".
bool ParseLogLevel(std::string_view text, LogLevel& out);
/// A name that prefixes every line, e.g. "coordinator".
void SetLogComponent(std::string_view name);

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  LogLine& self() { return *this; }
  template <class T>
  LogLine& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

struct LogVoidify {
  void operator&(const LogLine&) {}
};

}  // namespace sparecycles

#define SC_LOG(level)                                                  \
  !(::sparecycles::LogLevel::k##level >= ::sparecycles::GetLogLevel()) \
      ? (void)0                                                        \
      : ::sparecycles::LogVoidify() &                                  \
            ::sparecycles::LogLine(::sparecycles::LogLevel::k##level, __FILE__, __LINE__)
