// Command-line options with environment variables and a config file behind them.
// Precedence: flag > environment variable > config file > default. Every option has help text and
// a default, so --help explains everything. Not thread-safe; parse once at start-up.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/parse_int.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles {

class Options {
 public:
  /// `program` names the binary in --help; `env_prefix` e.g. "SPARECYCLES_WORKER_".
  Options(std::string program, std::string summary, std::string env_prefix);

  /// Declares an option taking a value. `name` without dashes, e.g. "cores".
  void Add(std::string name, std::string default_value, std::string help);
  /// Declares a boolean switch (present = true).
  void AddFlag(std::string name, std::string help);

  /// Parses argv (argv[0] skipped). Also reads `--config FILE` when the option "config" exists.
  /// Positional arguments are kept in Positional(). Unknown flags are errors.
  Status Parse(int argc, const char* const* argv);
  /// Same as Parse for an argument list that does not include the program name.
  Status Parse(const std::vector<std::string>& args);

  bool HelpRequested() const { return help_; }
  std::string Help() const;

  std::string Get(const std::string& name) const;
  bool IsSet(const std::string& name) const;  // given by flag, env or config
  bool Flag(const std::string& name) const;
  Result<std::int64_t> GetInt(const std::string& name, std::int64_t min, std::int64_t max) const;
  Result<double> GetDouble(const std::string& name, double min, double max) const;
  /// A duration option (ParseSeconds: "500ms", "30s", "2m", "1h", "7d", bare seconds), in seconds
  /// or as a Duration. Errors: InvalidArgument "--NAME: ...".
  Result<double> GetSeconds(const std::string& name) const;
  Result<Duration> GetDuration(const std::string& name) const;
  const std::vector<std::string>& Positional() const { return positional_; }

  /// Options given after "--"-less unknown names are collected here when allowed (task params).
  void AllowExtra(bool allow) { allow_extra_ = allow; }
  const std::map<std::string, std::string>& Extra() const { return extra_; }

 private:
  struct Spec {
    std::string name, default_value, help;
    bool is_flag = false;
    std::optional<std::string> value;  // from flag/env/config
  };
  Spec* Find(const std::string& name);
  const Spec* Find(const std::string& name) const;
  Status LoadConfigFile(const std::string& path);
  std::string EnvName(const std::string& name) const;

  std::string program_, summary_, env_prefix_;
  std::vector<Spec> specs_;
  std::vector<std::string> positional_;
  std::map<std::string, std::string> extra_;
  bool allow_extra_ = false;
  bool help_ = false;
};

// ParseInt ("123", "1e9", "2k", "4M", "1G", "1T"): sparecycles/core/parse_int.hpp.
/// Parses a duration such as "500ms", "30s", "2m", "1h", "7d" or a bare number of seconds (not
/// negative): the one duration parser of every binary, config file and manifest.
Result<double> ParseSeconds(std::string_view text);
/// ParseSeconds for the value of option `name` taken from elsewhere than an Options (e.g. with a
/// profile's default in place of the built-in one); errors as Options::GetSeconds gives them.
Result<double> ParseOptionSeconds(const std::string& name, std::string_view text);

}  // namespace sparecycles
