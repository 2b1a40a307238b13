// Command packages: the declarative split of a job's input into units, the unit bytes that
// travel to a peer, running the program once per unit (argument template, minimal environment,
// outputs collected, non-zero exit = failure with the tail of stderr), and the canonical hash of
// a unit's outputs that replicas must agree on. Rules: docs/packages.md, "Command packages".
// Functions are stateless and thread-safe; RunCommandUnit blocks until its program has ended.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/manifest.hpp"

namespace sparecycles::package {

inline constexpr std::uint64_t kMaxUnitInputBytes = 64ull << 20;   // one unit's input file
inline constexpr std::uint64_t kMaxUnitOutputBytes = 64ull << 20;  // all outputs of one unit
inline constexpr std::size_t kStderrTailBytes = 4096;

/// One unit of a command job.
struct CommandUnit {
  std::uint64_t index = 0;
  std::map<std::string, std::string> values;  // swept parameters for this unit
  bool has_input = false;
  std::string input_name;  // file name in the unit's working directory
  std::string input;       // its bytes
  bool operator==(const CommandUnit&) const = default;
};

/// Cuts a job into units as the manifest's split says. `input` is the job's input file's bytes
/// (split = lines); `input_dir` the job's input directory (split = files).
Result<std::vector<CommandUnit>> SplitLines(const Manifest& m, std::string_view input);
Result<std::vector<CommandUnit>> SplitFiles(const Manifest& m, const std::string& input_dir,
                                            std::uint64_t max_total_bytes = 1ull << 30);
Result<std::vector<CommandUnit>> SplitSweep(const Manifest& m);

/// Unit bytes (what a lease carries) and their bounded decoder.
std::string EncodeCommandUnit(const CommandUnit& u);
Result<CommandUnit> DecodeCommandUnit(std::string_view bytes);

/// A unit's outputs, sorted by name.
using OutputFiles = std::vector<std::pair<std::string, std::string>>;
/// u32 count, then (u32 name length, name, u64 size, bytes) per output, sorted by name.
std::string EncodeOutputs(OutputFiles files);
Result<OutputFiles> DecodeOutputs(std::string_view bytes);

/// Whole-string glob match: '*' any run of bytes, '?' any one byte, everything else literal.
bool GlobMatch(std::string_view pattern, std::string_view text);
/// Applies a canonicalizer to one output's bytes (drop lines, then round numbers).
std::string CanonicalizeOutput(const Canonicalizer& c, std::string_view content);
/// BLAKE2b-256 of EncodeOutputs() of the canonicalized outputs: what replicas compare.
Hash256 CanonicalOutputsHash(const Canonicalizer& c, const OutputFiles& files);

/// Expands one argument template token; unknown placeholders are an error.
Result<std::string> ExpandArgument(std::string_view token,
                                   const std::map<std::string, std::string>& vars);

struct RunOptions {
  std::string package_dir;  // the extracted package ({pkg}); absolute
  std::string work_dir;     // an existing directory; the unit gets a fresh subdirectory in it
  /// Kill the program after this long. Default (0): 10 x the manifest's expected time.
  double timeout_seconds = 0;
  /// Called with the fraction done (from the progress file, else elapsed / expected time).
  std::function<void(double)> progress;
  /// Polled while the program runs; true kills it and fails the unit as cancelled.
  std::function<bool()> stop;
  /// Keep the unit's directory afterwards (for debugging). Default: removed.
  bool keep_work_dir = false;
};

struct UnitRun {
  OutputFiles outputs;
  std::string result;  // EncodeOutputs(outputs)
  Hash256 canonical_hash{};
  double seconds = 0;
};

/// Runs the program once for `unit` and collects its declared outputs.
Result<UnitRun> RunCommandUnit(const Manifest& m, const CommandUnit& unit,
                               const RunOptions& options);

}  // namespace sparecycles::package
