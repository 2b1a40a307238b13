// A task package's manifest: what the package is, which files it holds (with BLAKE2b-256), what
// a unit needs, and for command packages how the program is run and the job's input split.
// Canonical binary encoding and the authoring text format: docs/packages.md. Decoding untrusted
// bytes is bounded by the limits below and never throws. Values are plain data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::package {

// --- Limits (docs/packages.md, "Limits") --------------------------------------------------------
inline constexpr std::uint32_t kManifestVersion = 1;
inline constexpr std::size_t kMaxFiles = 4096;
inline constexpr std::size_t kMaxPathLength = 1024;    // bytes, whole relative path
inline constexpr std::size_t kMaxPathComponent = 255;  // bytes, one name between slashes
inline constexpr std::size_t kMaxPathDepth = 32;       // components
inline constexpr std::size_t kMaxManifestBytes = 1u << 20;
inline constexpr std::size_t kMaxNameLength = 64;
inline constexpr std::size_t kMaxVersionLength = 32;
inline constexpr std::size_t kMaxSummaryLength = 256;
inline constexpr std::size_t kMaxPlatformLength = 32;
inline constexpr std::size_t kMaxTextLength = 4096;  // entry, argument tokens, program paths
inline constexpr std::size_t kMaxArgs = 256;
inline constexpr std::size_t kMaxPrograms = 32;
inline constexpr std::size_t kMaxOutputs = 256;
inline constexpr std::size_t kMaxSweepParams = 16;
inline constexpr std::size_t kMaxSweepValues = 100'000;  // values of one list parameter
inline constexpr std::uint64_t kMaxUnits = 10'000'000;   // units one sweep may define
inline constexpr std::size_t kMaxDropPatterns = 64;
inline constexpr std::size_t kMaxPatternLength = 256;
inline constexpr std::uint8_t kMaxRoundDigits = 17;
inline constexpr std::uint64_t kMaxLinesPerUnit = 1'000'000'000;
inline constexpr std::uint64_t kMaxUnitMemory = 1ull << 40;  // 1 TiB
inline constexpr std::uint32_t kMaxExpectedSeconds = 7 * 86400;

enum class Kind : std::uint8_t { kNative = 1, kCommand = 2 };
enum class SplitMode : std::uint8_t { kNone = 0, kLines = 1, kFiles = 2, kSweep = 3 };

std::string_view KindName(Kind kind);
std::string_view SplitModeName(SplitMode mode);

struct FileEntry {
  std::string path;  // relative, '/'-separated, validated by ValidatePackagePath
  std::uint64_t size = 0;
  Hash256 blake2b{};
  bool executable = false;
  bool operator==(const FileEntry&) const = default;
};

/// What one unit needs from the peer that runs it.
struct Resources {
  std::uint64_t memory_bytes = 256ull << 20;  // Default: 256 MiB.
  std::uint32_t expected_seconds = 60;        // Default: 60 s.
  bool network = false;                       // Default: no network.
  bool operator==(const Resources&) const = default;
};

/// One swept parameter: an inclusive integer range with a step, or a list of values.
struct SweepParam {
  std::string name;
  bool is_range = true;
  std::int64_t from = 0, to = 0, step = 1;  // is_range
  std::vector<std::string> values;          // !is_range
  /// How many values the parameter takes (saturating at kMaxUnits + 1).
  std::uint64_t Count() const;
  /// The i-th value as text (i < Count()).
  std::string Value(std::uint64_t i) const;
  bool operator==(const SweepParam&) const = default;
};

struct SplitSpec {
  SplitMode mode = SplitMode::kNone;
  std::uint64_t lines_per_unit = 0;  // SplitMode::kLines: >= 1; otherwise 0
  std::vector<SweepParam> sweep;     // SplitMode::kSweep: the product of all of them
  bool operator==(const SplitSpec&) const = default;
};

/// Makes outputs that differ between honest runs agree before they are hashed.
struct Canonicalizer {
  std::vector<std::string> drop_lines;  // glob patterns ('*', '?') matched against whole lines
  std::uint8_t round_digits = 0;        // 0 = leave numbers; else significant digits
  bool operator==(const Canonicalizer&) const = default;
};

struct CommandSpec {
  std::vector<std::string> args;               // argument template, one token per argument
  std::vector<std::string> required_programs;  // absolute paths the peer must already have
  SplitSpec split;
  std::vector<std::string> outputs;  // declared output files, relative to the unit dir
  std::string stdout_file;           // empty = stdout discarded; else one of outputs
  std::string progress_file;         // empty = none; the program may write a fraction
  Canonicalizer canonicalizer;
  bool operator==(const CommandSpec&) const = default;
};

struct Manifest {
  std::string name;     // [a-z0-9][a-z0-9._-]*
  std::string version;  // [0-9A-Za-z.+-]+
  std::string summary;
  Kind kind = Kind::kNative;
  std::string platform = "linux";
  std::string arch;   // "x86_64", "aarch64", ... or "any"
  std::string entry;  // native: the shared library; command: a file or required program
  Resources resources;
  std::vector<FileEntry> files;   // sorted by path (bytewise), no duplicates
  std::uint32_t abi_version = 0;  // native only: the task C ABI version the library exports
  CommandSpec command;            // command only
  bool operator==(const Manifest&) const = default;
};

/// Checks a file name in a package: relative, '/'-separated, no empty, "." or ".." component,
/// no backslash, control character or NUL, within the length and depth limits.
Status ValidatePackagePath(std::string_view path);

/// Checks every rule of docs/packages.md that the manifest alone can break.
Status ValidateManifest(const Manifest& m);

/// The canonical bytes of a manifest (the bytes that are hashed and signed).
std::string EncodeManifest(const Manifest& m);
/// Decodes and validates untrusted manifest bytes; non-canonical bytes are refused.
Result<Manifest> DecodeManifest(std::string_view bytes);

/// Parses the authoring text format (`key = value` lines). File entries get only their paths
/// (sizes and hashes are filled in by the builder). `explicit_files` tells whether the text
/// listed any `file =` lines.
struct ManifestText {
  Manifest manifest;
  bool explicit_files = false;
};
Result<ManifestText> ParseManifestText(std::string_view text);

/// The placeholders an argument template token refers to, e.g. {"input", "seed"}; an error when
/// a brace is unbalanced or a name is malformed. "{{" and "}}" stand for literal braces.
Result<std::vector<std::string>> TemplatePlaceholders(std::string_view token);

/// "linux" and this build's architecture ("x86_64", "aarch64", ...).
std::string_view HostPlatform();
std::string_view HostArch();

}  // namespace sparecycles::package
