// The manifest's rules, canonical encoding and authoring text format (docs/packages.md).
#include "sparecycles/package/manifest.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "bytes.hpp"
#include "sparecycles/core/options.hpp"

namespace sparecycles::package {
namespace {

using internal::Reader;
using internal::Writer;
// GCC/Clang 128-bit integers; __extension__ keeps -Wpedantic quiet about them.
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 Uint128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool ValidIdentifier(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '_'; });
}

Status Field(std::string_view field, std::string_view what) {
  return InvalidArgument("manifest " + std::string(field) + ": " + std::string(what));
}

Status ValidateAbsoluteProgram(std::string_view p) {
  if (p.empty() || p.front() != '/')
    return Field("require", "'" + std::string(p) + "' is not an absolute path");
  if (p.size() > kMaxTextLength || HasControl(p))
    return Field("require", "path too long or has control characters");
  if (Status s = ValidatePackagePath(p.substr(1)); !s.ok())
    return Field("require", "'" + std::string(p) + "': " + s.message());
  return OkStatus();
}

std::string_view StripSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNative:
      return "native";
    case Kind::kCommand:
      return "command";
  }
  return "unknown";
}

std::string_view SplitModeName(SplitMode mode) {
  switch (mode) {
    case SplitMode::kNone:
      return "none";
    case SplitMode::kLines:
      return "lines";
    case SplitMode::kFiles:
      return "files";
    case SplitMode::kSweep:
      return "sweep";
  }
  return "unknown";
}

std::uint64_t SweepParam::Count() const {
  if (!is_range) return values.size();
  if (step <= 0 || to < from) return 0;
  const Uint128 span = static_cast<Uint128>(static_cast<Int128>(to) - static_cast<Int128>(from));
  const Uint128 n = span / static_cast<Uint128>(step) + 1;
  return n > kMaxUnits ? kMaxUnits + 1 : static_cast<std::uint64_t>(n);
}

std::string SweepParam::Value(std::uint64_t i) const {
  if (!is_range) return values[i];
  const Int128 v = static_cast<Int128>(from) + static_cast<Int128>(step) * static_cast<Int128>(i);
  return std::to_string(static_cast<std::int64_t>(v));
}

Status ValidatePackagePath(std::string_view path) {
  if (path.empty()) return InvalidArgument("empty file name");
  if (path.size() > kMaxPathLength)
    return InvalidArgument("file name longer than " + std::to_string(kMaxPathLength) + " bytes");
  if (path.front() == '/') return InvalidArgument("absolute file name '" + std::string(path) + "'");
  std::size_t depth = 0;
  std::string_view rest = path;
  while (true) {
    const auto slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (part.empty()) return InvalidArgument("empty component in '" + std::string(path) + "'");
    if (part == "." || part == "..")
      return InvalidArgument("'" + std::string(part) + "' component in '" + std::string(path) +
                             "'");
    if (part.size() > kMaxPathComponent)
      return InvalidArgument("component longer than 255 bytes in a file name");
    if (++depth > kMaxPathDepth)
      return InvalidArgument("file name deeper than " + std::to_string(kMaxPathDepth) +
                             " directories");
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return InvalidArgument("control character in a file name");
    if (c == '\\') return InvalidArgument("backslash in file name '" + std::string(path) + "'");
  }
  return OkStatus();
}

Result<std::vector<std::string>> TemplatePlaceholders(std::string_view token) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '{') {
      if (i + 1 < token.size() && token[i + 1] == '{') {
        ++i;
        continue;
      }
      const auto close = token.find('}', i + 1);
      if (close == std::string_view::npos)
        return InvalidArgument("unclosed '{' in argument '" + std::string(token) + "'");
      std::string name(token.substr(i + 1, close - i - 1));
      if (!ValidIdentifier(name))
        return InvalidArgument("'{" + name + "}' in argument '" + std::string(token) +
                               "' is not a placeholder name ([a-z_][a-z0-9_]*)");
      names.push_back(std::move(name));
      i = close;
    } else if (token[i] == '}') {
      if (i + 1 < token.size() && token[i + 1] == '}') {
        ++i;
        continue;
      }
      return InvalidArgument("lone '}' in argument '" + std::string(token) + "' (write '}}')");
    }
  }
  return names;
}

Status ValidateManifest(const Manifest& m) {
  if (m.name.empty() || m.name.size() > kMaxNameLength || !IsLowerAlnum(m.name[0]) ||
      !std::all_of(m.name.begin(), m.name.end(),
                   [](char c) { return IsLowerAlnum(c) || c == '.' || c == '_' || c == '-'; }))
    return Field("name",
                 "'" + m.name + "' must be 1-64 of [a-z0-9._-], starting with a letter or digit");
  if (m.version.empty() || m.version.size() > kMaxVersionLength ||
      !std::all_of(m.version.begin(), m.version.end(),
                   [](char c) { return IsAlnum(c) || c == '.' || c == '+' || c == '-'; }))
    return Field("version", "'" + m.version + "' must be 1-32 of [0-9A-Za-z.+-]");
  if (m.summary.size() > kMaxSummaryLength || HasControl(m.summary))
    return Field("summary", "at most 256 printable bytes");
  if (m.kind != Kind::kNative && m.kind != Kind::kCommand)
    return Field("kind", "must be native or command");
  for (const auto* p : {&m.platform, &m.arch})
    if (p->empty() || p->size() > kMaxPlatformLength ||
        !std::all_of(p->begin(), p->end(), [](char c) { return IsLowerAlnum(c) || c == '_'; }))
      return Field(p == &m.platform ? "platform" : "arch",
                   "'" + *p + "' must be 1-32 of [a-z0-9_]");
  if (m.resources.memory_bytes == 0 || m.resources.memory_bytes > kMaxUnitMemory)
    return Field("memory", "must be between 1 byte and 1 TiB");
  if (m.resources.expected_seconds == 0 || m.resources.expected_seconds > kMaxExpectedSeconds)
    return Field("expected-time", "must be between 1 s and 7 days");

  if (m.files.size() > kMaxFiles)
    return Field("files", "more than " + std::to_string(kMaxFiles) + " files");
  for (std::size_t i = 0; i < m.files.size(); ++i) {
    const std::string& p = m.files[i].path;
    if (Status s = ValidatePackagePath(p); !s.ok()) return Field("file", s.message());
    if (i > 0) {
      const std::string& prev = m.files[i - 1].path;
      if (!(prev < p))
        return Field("files", "not sorted or duplicate: '" + prev + "', '" + p + "'");
    }
  }
  // A name may not be both a file and a directory ("a" and "a/b"): extraction would fail.
  for (std::size_t i = 0; i < m.files.size(); ++i)
    for (std::size_t j = i + 1; j < m.files.size(); ++j) {
      const std::string& a = m.files[i].path;
      const std::string& b = m.files[j].path;
      if (b.size() > a.size() && b.compare(0, a.size(), a) == 0 && b[a.size()] == '/')
        return Field("files", "'" + a + "' is a file and a directory of '" + b + "'");
      if (b.compare(0, a.size(), a) != 0) break;  // sorted: no later name starts with a
    }
  auto has_file = [&](std::string_view p) {
    return std::binary_search(m.files.begin(), m.files.end(), p, [](const auto& x, const auto& y) {
      if constexpr (std::is_same_v<std::decay_t<decltype(x)>, FileEntry>)
        return std::string_view(x.path) < std::string_view(y);
      else
        return std::string_view(x) < std::string_view(y.path);
    });
  };
  if (m.entry.empty() || m.entry.size() > kMaxTextLength) return Field("entry", "missing");

  if (m.kind == Kind::kNative) {
    if (!has_file(m.entry)) return Field("entry", "'" + m.entry + "' is not a file of the package");
    if (m.abi_version == 0)
      return Field("abi", "a native package names the task ABI version it exports");
    if (!(m.command == CommandSpec{})) return Field("kind", "command settings in a native package");
    if (m.arch == "any")
      return Field("arch", "a native package holds machine code: name its architecture");
    return OkStatus();
  }

  const CommandSpec& c = m.command;
  if (m.abi_version != 0) return Field("abi", "only native packages have an ABI version");
  if (c.required_programs.size() > kMaxPrograms) return Field("require", "more than 32 programs");
  std::set<std::string> programs;
  for (const auto& p : c.required_programs) {
    SC_RETURN_IF_ERROR(ValidateAbsoluteProgram(p));
    if (!programs.insert(p).second) return Field("require", "'" + p + "' listed twice");
  }
  if (m.entry.front() == '/') {
    if (!programs.count(m.entry))
      return Field("entry", "'" + m.entry + "' is an absolute path but not listed in require");
  } else if (!has_file(m.entry)) {
    return Field("entry",
                 "'" + m.entry + "' is neither a file of the package nor a required program");
  }

  std::set<std::string> known = {"unit", "pkg"};
  const SplitSpec& sp = c.split;
  switch (sp.mode) {
    case SplitMode::kNone:
    case SplitMode::kFiles:
      if (sp.lines_per_unit != 0 || !sp.sweep.empty())
        return Field("split", "lines or sweep settings without that split");
      break;
    case SplitMode::kLines:
      if (sp.lines_per_unit == 0 || sp.lines_per_unit > kMaxLinesPerUnit)
        return Field("split", "lines per unit must be between 1 and 10^9");
      if (!sp.sweep.empty()) return Field("split", "sweep parameters with a line split");
      break;
    case SplitMode::kSweep: {
      if (sp.lines_per_unit != 0) return Field("split", "lines per unit with a sweep");
      if (sp.sweep.empty() || sp.sweep.size() > kMaxSweepParams)
        return Field("sweep", "1 to 16 parameters");
      std::uint64_t product = 1;
      for (const auto& p : sp.sweep) {
        if (!ValidIdentifier(p.name) || p.name == "unit" || p.name == "pkg" || p.name == "input" ||
            p.name == "input_name")
          return Field("sweep", "'" + p.name + "' is not a usable parameter name");
        if (!known.insert(p.name).second) return Field("sweep", "'" + p.name + "' swept twice");
        if (p.is_range) {
          if (!p.values.empty()) return Field("sweep", "a range with listed values");
          if (p.step <= 0 || p.to < p.from)
            return Field("sweep", p.name + ": a range needs from <= to and step >= 1");
        } else {
          if (p.from != 0 || p.to != 0 || p.step != 1)
            return Field("sweep", "a list with range bounds");
          if (p.values.empty() || p.values.size() > kMaxSweepValues)
            return Field("sweep", p.name + ": 1 to 100000 values");
          for (const auto& v : p.values)
            if (v.size() > kMaxTextLength || HasControl(v))
              return Field("sweep", p.name + ": a value is too long or has control characters");
        }
        const std::uint64_t n = p.Count();
        if (n == 0 || n > kMaxUnits || product > kMaxUnits / n)
          return Field("sweep", "more than " + std::to_string(kMaxUnits) + " units");
        product *= n;
      }
      break;
    }
    default:
      return Field("split", "unknown split mode");
  }
  if (sp.mode == SplitMode::kLines || sp.mode == SplitMode::kFiles) {
    known.insert("input");
    known.insert("input_name");
  }
  if (c.args.size() > kMaxArgs) return Field("arg", "more than 256 arguments");
  for (const auto& a : c.args) {
    if (a.size() > kMaxTextLength || a.find('\0') != std::string::npos)
      return Field("arg", "an argument is too long or holds NUL");
    auto names = TemplatePlaceholders(a);
    if (!names.ok()) return Field("arg", names.status().message());
    for (const auto& n : *names)
      if (!known.count(n))
        return Field("arg", "'{" + n + "}' is not a placeholder of this package (split " +
                                std::string(SplitModeName(sp.mode)) + ")");
  }
  if (c.outputs.empty() || c.outputs.size() > kMaxOutputs)
    return Field("output", "a command package declares 1 to 256 output files");
  std::set<std::string> outs;
  for (const auto& o : c.outputs) {
    if (Status s = ValidatePackagePath(o); !s.ok()) return Field("output", s.message());
    if (!outs.insert(o).second) return Field("output", "'" + o + "' declared twice");
  }
  if (!c.stdout_file.empty() && !outs.count(c.stdout_file))
    return Field("stdout", "'" + c.stdout_file + "' is not a declared output");
  if (!c.progress_file.empty()) {
    if (Status s = ValidatePackagePath(c.progress_file); !s.ok())
      return Field("progress-file", s.message());
    if (outs.count(c.progress_file))
      return Field("progress-file", "the progress file cannot also be an output");
  }
  if (c.canonicalizer.drop_lines.size() > kMaxDropPatterns)
    return Field("drop-lines", "more than 64 patterns");
  for (const auto& p : c.canonicalizer.drop_lines)
    if (p.empty() || p.size() > kMaxPatternLength || HasControl(p))
      return Field("drop-lines", "a pattern is 1-256 printable bytes");
  if (c.canonicalizer.round_digits > kMaxRoundDigits) return Field("round-digits", "at most 17");
  return OkStatus();
}

// --- Canonical encoding (docs/packages.md, "Manifest") -------------------------------------------

std::string EncodeManifest(const Manifest& m) {
  Writer w;
  w.U32(kManifestVersion);
  w.Str(m.name);
  w.Str(m.version);
  w.Str(m.summary);
  w.U8(static_cast<std::uint8_t>(m.kind));
  w.Str(m.platform);
  w.Str(m.arch);
  w.Str(m.entry);
  w.U64(m.resources.memory_bytes);
  w.U32(m.resources.expected_seconds);
  w.U8(m.resources.network ? 1 : 0);
  w.U32(static_cast<std::uint32_t>(m.files.size()));
  for (const auto& f : m.files) {
    w.Str(f.path);
    w.U64(f.size);
    w.Bytes(f.blake2b.data(), f.blake2b.size());
    w.U8(f.executable ? 1 : 0);
  }
  if (m.kind == Kind::kNative) {
    w.U32(m.abi_version);
    return std::move(w.out());
  }
  const CommandSpec& c = m.command;
  auto list = [&w](const std::vector<std::string>& v) {
    w.U32(static_cast<std::uint32_t>(v.size()));
    for (const auto& s : v) w.Str(s);
  };
  list(c.args);
  list(c.required_programs);
  w.U8(static_cast<std::uint8_t>(c.split.mode));
  w.U64(c.split.lines_per_unit);
  w.U32(static_cast<std::uint32_t>(c.split.sweep.size()));
  for (const auto& p : c.split.sweep) {
    w.Str(p.name);
    w.U8(p.is_range ? 1 : 2);
    if (p.is_range) {
      w.I64(p.from);
      w.I64(p.to);
      w.I64(p.step);
    } else {
      list(p.values);
    }
  }
  list(c.outputs);
  w.Str(c.stdout_file);
  w.Str(c.progress_file);
  list(c.canonicalizer.drop_lines);
  w.U8(c.canonicalizer.round_digits);
  return std::move(w.out());
}

Result<Manifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() > kMaxManifestBytes) return DataLoss("manifest larger than 1 MiB");
  Reader r(bytes);
  Manifest m;
  const std::uint32_t version = r.U32("manifest version");
  if (r.ok() && version != kManifestVersion)
    return DataLoss("manifest version " + std::to_string(version) +
                    " is not supported (this build reads version " +
                    std::to_string(kManifestVersion) + ")");
  m.name = r.Str("name", kMaxNameLength);
  m.version = r.Str("version", kMaxVersionLength);
  m.summary = r.Str("summary", kMaxSummaryLength);
  const std::uint8_t kind = r.U8("kind");
  if (r.ok() && kind != 1 && kind != 2)
    return DataLoss("unknown package kind " + std::to_string(kind));
  m.kind = static_cast<Kind>(kind);
  m.platform = r.Str("platform", kMaxPlatformLength);
  m.arch = r.Str("arch", kMaxPlatformLength);
  m.entry = r.Str("entry", kMaxTextLength);
  m.resources.memory_bytes = r.U64("memory");
  m.resources.expected_seconds = r.U32("expected seconds");
  const std::uint8_t network = r.U8("network");
  if (r.ok() && network > 1) return DataLoss("network flag is neither 0 nor 1");
  m.resources.network = network == 1;
  const std::uint32_t files = r.Count("file count", kMaxFiles);
  m.files.reserve(files);
  for (std::uint32_t i = 0; i < files && r.ok(); ++i) {
    FileEntry f;
    f.path = r.Str("file name", kMaxPathLength);
    f.size = r.U64("file size");
    r.Raw(f.blake2b.data(), f.blake2b.size(), "file hash");
    const std::uint8_t flags = r.U8("file flags");
    if (r.ok() && flags > 1) return DataLoss("unknown file flags " + std::to_string(flags));
    f.executable = flags == 1;
    m.files.push_back(std::move(f));
  }
  if (m.kind == Kind::kNative) {
    m.abi_version = r.U32("abi version");
  } else {
    CommandSpec& c = m.command;
    auto list = [&r](std::vector<std::string>& v, const char* what, std::size_t max_count,
                     std::size_t max_len) {
      const std::uint32_t n = r.Count(what, max_count);
      for (std::uint32_t i = 0; i < n && r.ok(); ++i) v.push_back(r.Str(what, max_len));
    };
    list(c.args, "arguments", kMaxArgs, kMaxTextLength);
    list(c.required_programs, "required programs", kMaxPrograms, kMaxTextLength);
    const std::uint8_t mode = r.U8("split mode");
    if (r.ok() && mode > 3) return DataLoss("unknown split mode " + std::to_string(mode));
    c.split.mode = static_cast<SplitMode>(mode);
    c.split.lines_per_unit = r.U64("lines per unit");
    const std::uint32_t params = r.Count("sweep parameters", kMaxSweepParams);
    for (std::uint32_t i = 0; i < params && r.ok(); ++i) {
      SweepParam p;
      p.name = r.Str("sweep name", kMaxNameLength);
      const std::uint8_t type = r.U8("sweep type");
      if (r.ok() && type != 1 && type != 2)
        return DataLoss("unknown sweep type " + std::to_string(type));
      p.is_range = type == 1;
      if (p.is_range) {
        p.from = r.I64("range from");
        p.to = r.I64("range to");
        p.step = r.I64("range step");
      } else {
        list(p.values, "sweep values", kMaxSweepValues, kMaxTextLength);
      }
      c.split.sweep.push_back(std::move(p));
    }
    list(c.outputs, "outputs", kMaxOutputs, kMaxPathLength);
    c.stdout_file = r.Str("stdout file", kMaxPathLength);
    c.progress_file = r.Str("progress file", kMaxPathLength);
    list(c.canonicalizer.drop_lines, "drop patterns", kMaxDropPatterns, kMaxPatternLength);
    c.canonicalizer.round_digits = r.U8("round digits");
  }
  if (!r.ok()) return r.status();
  if (r.remaining() != 0) return DataLoss("trailing bytes after the manifest");
  if (Status s = ValidateManifest(m); !s.ok()) return DataLoss("invalid manifest: " + s.message());
  // One manifest, one encoding: what is signed is exactly what is read.
  if (EncodeManifest(m) != bytes) return DataLoss("manifest bytes are not canonical");
  return m;
}

// --- Authoring text format -----------------------------------------------------------------------

namespace {

Result<std::uint64_t> ParseMemory(std::string_view text) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p == text.data())
    return InvalidArgument("'" + std::string(text) + "' is not a size (e.g. 512M, 2G)");
  std::string_view unit(p, static_cast<std::size_t>(end - p));
  unit = StripSpace(unit);
  std::uint64_t mul = 1;
  if (unit.empty() || unit == "B")
    mul = 1;
  else if (unit == "K" || unit == "KiB")
    mul = 1ull << 10;
  else if (unit == "M" || unit == "MiB")
    mul = 1ull << 20;
  else if (unit == "G" || unit == "GiB")
    mul = 1ull << 30;
  else if (unit == "T" || unit == "TiB")
    mul = 1ull << 40;
  else
    return InvalidArgument("unknown size unit '" + std::string(unit) + "' (B, K, M, G, T; binary)");
  if (v > kMaxUnitMemory / mul) return InvalidArgument("size larger than 1 TiB");
  return v * mul;
}

Result<std::int64_t> ParseI64(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty())
    return InvalidArgument("'" + std::string(text) + "' is not an integer");
  return v;
}

Result<SweepParam> ParseSweep(std::string_view value) {
  const auto sp = value.find_first_of(" \t");
  if (sp == std::string_view::npos)
    return InvalidArgument("sweep = NAME FROM..TO[:STEP] or sweep = NAME V1,V2,...");
  SweepParam p;
  p.name = std::string(value.substr(0, sp));
  const std::string_view spec = StripSpace(value.substr(sp));
  if (const auto dots = spec.find("..");
      dots != std::string_view::npos && spec.find(',') == std::string_view::npos) {
    std::string_view to = spec.substr(dots + 2), step = "1";
    if (const auto colon = to.find(':'); colon != std::string_view::npos) {
      step = to.substr(colon + 1);
      to = to.substr(0, colon);
    }
    auto f = ParseI64(spec.substr(0, dots));
    auto t = ParseI64(to);
    auto s = ParseI64(step);
    for (const auto* r : {&f, &t, &s})
      if (!r->ok()) return InvalidArgument("sweep " + p.name + ": " + r->status().message());
    p.from = *f;
    p.to = *t;
    p.step = *s;
    return p;
  }
  p.is_range = false;
  std::string_view rest = spec;
  while (true) {
    const auto comma = rest.find(',');
    p.values.emplace_back(StripSpace(rest.substr(0, comma)));
    if (p.values.size() > kMaxSweepValues)
      return InvalidArgument("sweep " + p.name + ": more than 100000 values");
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return p;
}

}  // namespace

Result<ManifestText> ParseManifestText(std::string_view text) {
  if (text.size() > kMaxManifestBytes) return InvalidArgument("manifest text larger than 1 MiB");
  ManifestText out;
  Manifest& m = out.manifest;
  m.arch.clear();
  bool have_kind = false, have_split = false, have_abi = false;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    line = StripSpace(line);
    if (line.empty() || line.front() == '#') continue;
    const auto eq = line.find('=');
    auto err = [&](const std::string& what) {
      return InvalidArgument("manifest line " + std::to_string(line_no) + ": " + what);
    };
    if (eq == std::string_view::npos) return err("expected 'key = value'");
    const std::string key(StripSpace(line.substr(0, eq)));
    const std::string value(StripSpace(line.substr(eq + 1)));
    CommandSpec& c = m.command;
    if (key == "name")
      m.name = value;
    else if (key == "version")
      m.version = value;
    else if (key == "summary")
      m.summary = value;
    else if (key == "kind") {
      if (value == "native")
        m.kind = Kind::kNative;
      else if (value == "command")
        m.kind = Kind::kCommand;
      else
        return err("kind must be native or command");
      have_kind = true;
    } else if (key == "platform")
      m.platform = value;
    else if (key == "arch")
      m.arch = value;
    else if (key == "entry")
      m.entry = value;
    else if (key == "abi") {
      auto v = ParseI64(value);
      if (!v.ok() || *v < 1 || *v > 0xffff) return err("abi must be a small positive integer");
      m.abi_version = static_cast<std::uint32_t>(*v);
      have_abi = true;
    } else if (key == "memory") {
      auto v = ParseMemory(value);
      if (!v.ok()) return err(v.status().message());
      m.resources.memory_bytes = *v;
    } else if (key == "expected-time") {
      auto v = ParseSeconds(value);
      if (!v.ok() || *v < 1 || *v > kMaxExpectedSeconds)
        return err("expected-time must be between 1s and 7 days");
      m.resources.expected_seconds = static_cast<std::uint32_t>(std::lround(*v));
    } else if (key == "network") {
      if (value == "none")
        m.resources.network = false;
      else if (value == "needed")
        m.resources.network = true;
      else
        return err("network must be none or needed");
    } else if (key == "file") {
      if (m.files.size() >= kMaxFiles) return err("more than 4096 files");
      m.files.push_back(FileEntry{value, 0, {}, false});
      out.explicit_files = true;
    } else if (key == "arg") {
      if (c.args.size() >= kMaxArgs) return err("more than 256 arguments");
      c.args.push_back(value);
    } else if (key == "require") {
      if (c.required_programs.size() >= kMaxPrograms) return err("more than 32 programs");
      c.required_programs.push_back(value);
    } else if (key == "split") {
      have_split = true;
      if (value == "none")
        c.split.mode = SplitMode::kNone;
      else if (value == "files")
        c.split.mode = SplitMode::kFiles;
      else if (value == "sweep")
        c.split.mode = SplitMode::kSweep;
      else if (value.rfind("lines", 0) == 0) {
        c.split.mode = SplitMode::kLines;
        const std::string_view n = StripSpace(std::string_view(value).substr(5));
        auto v = n.empty() ? Result<std::int64_t>(1) : ParseI64(n);
        if (!v.ok() || *v < 1 || static_cast<std::uint64_t>(*v) > kMaxLinesPerUnit)
          return err("split = lines [N], N from 1 to 10^9");
        c.split.lines_per_unit = static_cast<std::uint64_t>(*v);
      } else {
        return err("split must be none, lines [N], files or sweep");
      }
    } else if (key == "sweep") {
      if (c.split.sweep.size() >= kMaxSweepParams) return err("more than 16 sweep parameters");
      auto p = ParseSweep(value);
      if (!p.ok()) return err(p.status().message());
      c.split.sweep.push_back(std::move(*p));
    } else if (key == "output") {
      if (c.outputs.size() >= kMaxOutputs) return err("more than 256 outputs");
      c.outputs.push_back(value);
    } else if (key == "stdout")
      c.stdout_file = value;
    else if (key == "progress-file")
      c.progress_file = value;
    else if (key == "drop-lines") {
      if (c.canonicalizer.drop_lines.size() >= kMaxDropPatterns)
        return err("more than 64 drop-lines patterns");
      c.canonicalizer.drop_lines.push_back(value);
    } else if (key == "round-digits") {
      auto v = ParseI64(value);
      if (!v.ok() || *v < 0 || *v > kMaxRoundDigits) return err("round-digits must be 0 to 17");
      c.canonicalizer.round_digits = static_cast<std::uint8_t>(*v);
    } else {
      return err("unknown key '" + key + "' (see docs/packages.md)");
    }
  }
  if (!have_kind)
    return InvalidArgument("manifest: 'kind = native' or 'kind = command' is required");
  if (m.arch.empty()) m.arch = m.kind == Kind::kNative ? std::string(HostArch()) : "any";
  if (m.kind == Kind::kNative && !have_abi) m.abi_version = 1;
  if (m.kind == Kind::kCommand) {
    if (!have_split && !m.command.split.sweep.empty()) m.command.split.mode = SplitMode::kSweep;
    // stdout captured into a file makes that file an output, declared or not.
    if (!m.command.stdout_file.empty() &&
        std::find(m.command.outputs.begin(), m.command.outputs.end(), m.command.stdout_file) ==
            m.command.outputs.end())
      m.command.outputs.push_back(m.command.stdout_file);
  }
  return out;
}

std::string_view HostPlatform() { return "linux"; }

std::string_view HostArch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__i386__)
  return "i686";
#elif defined(__arm__)
  return "armhf";
#else
  return "unknown";
#endif
}

}  // namespace sparecycles::package
