// Command packages: splitting, unit and output encodings, canonicalization, and the unit runner.
#include "sparecycles/package/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "bytes.hpp"

namespace sparecycles::package {
namespace fs = std::filesystem;
using internal::Reader;
using internal::Writer;

namespace {

Status NotCommand(const Manifest& m, SplitMode want) {
  if (m.kind != Kind::kCommand) return InvalidArgument(m.name + " is not a command package");
  if (m.command.split.mode != want)
    return InvalidArgument(m.name + " splits by " +
                           std::string(SplitModeName(m.command.split.mode)) + ", not by " +
                           std::string(SplitModeName(want)));
  return OkStatus();
}

std::string ReadWhole(const fs::path& p, std::uint64_t max, Status& status) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) {
    status = NotFound("cannot read " + p.string() + ": " + ec.message());
    return {};
  }
  if (size > max) {
    status = ResourceExhausted(p.string() + " is larger than " + std::to_string(max) + " bytes");
    return {};
  }
  std::ifstream in(p, std::ios::binary);
  std::string data(size, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(size)))
    status = DataLoss("short read from " + p.string());
  return data;
}

}  // namespace

Result<std::vector<CommandUnit>> SplitLines(const Manifest& m, std::string_view input) {
  SC_RETURN_IF_ERROR(NotCommand(m, SplitMode::kLines));
  const std::uint64_t per = m.command.split.lines_per_unit;
  std::vector<CommandUnit> units;
  std::size_t pos = 0;
  while (pos < input.size()) {
    std::size_t end = pos;
    for (std::uint64_t n = 0; n < per && end < input.size(); ++n) {
      const auto nl = input.find('\n', end);
      end = nl == std::string_view::npos ? input.size() : nl + 1;
    }
    if (end - pos > kMaxUnitInputBytes) return ResourceExhausted("a unit's lines exceed 64 MiB");
    if (units.size() >= kMaxUnits) return ResourceExhausted("the input makes more than 10^7 units");
    CommandUnit u;
    u.index = units.size();
    u.has_input = true;
    u.input_name = "input";
    u.input = std::string(input.substr(pos, end - pos));
    units.push_back(std::move(u));
    pos = end;
  }
  if (units.empty()) return InvalidArgument("the input file has no lines");
  return units;
}

Result<std::vector<CommandUnit>> SplitFiles(const Manifest& m, const std::string& input_dir,
                                            std::uint64_t max_total_bytes) {
  SC_RETURN_IF_ERROR(NotCommand(m, SplitMode::kFiles));
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(input_dir, ec)) {
    const auto st = e.symlink_status(ec);
    if (fs::is_directory(st)) continue;
    const std::string name = e.path().filename().string();
    if (!fs::is_regular_file(st))
      return InvalidArgument("input '" + name + "' is not a regular file (links are not followed)");
    if (Status s = ValidatePackagePath(name); !s.ok())
      return InvalidArgument("input '" + name + "': " + s.message());
    if (names.size() >= kMaxUnits)
      return ResourceExhausted("the input directory makes more than 10^7 units");
    names.push_back(name);
  }
  if (ec) return NotFound("cannot list " + input_dir + ": " + ec.message());
  if (names.empty()) return InvalidArgument("the input directory " + input_dir + " holds no files");
  std::sort(names.begin(), names.end());
  std::vector<CommandUnit> units;
  std::uint64_t total = 0;
  for (const auto& name : names) {
    Status s;
    CommandUnit u;
    u.index = units.size();
    u.has_input = true;
    u.input_name = name;
    u.input = ReadWhole(fs::path(input_dir) / name, kMaxUnitInputBytes, s);
    SC_RETURN_IF_ERROR(s);
    total += u.input.size();
    if (total > max_total_bytes)
      return ResourceExhausted("the input directory holds more than " +
                               std::to_string(max_total_bytes) + " bytes");
    units.push_back(std::move(u));
  }
  return units;
}

Result<std::vector<CommandUnit>> SplitSweep(const Manifest& m) {
  SC_RETURN_IF_ERROR(NotCommand(m, SplitMode::kSweep));
  SC_RETURN_IF_ERROR(ValidateManifest(m));  // bounds the product
  const auto& sweep = m.command.split.sweep;
  std::uint64_t total = 1;
  for (const auto& p : sweep) total *= p.Count();
  std::vector<CommandUnit> units;
  units.reserve(static_cast<std::size_t>(total));
  for (std::uint64_t i = 0; i < total; ++i) {
    CommandUnit u;
    u.index = i;
    // Mixed radix with the first parameter as the most significant digit (varies slowest).
    std::uint64_t rest = i;
    for (std::size_t k = sweep.size(); k-- > 0;) {
      const std::uint64_t n = sweep[k].Count();
      u.values[sweep[k].name] = sweep[k].Value(rest % n);
      rest /= n;
    }
    units.push_back(std::move(u));
  }
  return units;
}

std::string EncodeCommandUnit(const CommandUnit& u) {
  Writer w;
  w.U64(u.index);
  w.U32(static_cast<std::uint32_t>(u.values.size()));
  for (const auto& [k, v] : u.values) {
    w.Str(k);
    w.Str(v);
  }
  w.U8(u.has_input ? 1 : 0);
  if (u.has_input) {
    w.Str(u.input_name);
    w.Str(u.input);
  }
  return std::move(w.out());
}

Result<CommandUnit> DecodeCommandUnit(std::string_view bytes) {
  Reader r(bytes);
  CommandUnit u;
  u.index = r.U64("unit index");
  const std::uint32_t n = r.Count("unit values", kMaxSweepParams);
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string k = r.Str("value name", kMaxNameLength);
    std::string v = r.Str("value", kMaxTextLength);
    if (r.ok() && !u.values.emplace(std::move(k), std::move(v)).second)
      r.Fail("a value is named twice");
  }
  const std::uint8_t has = r.U8("input flag");
  if (r.ok() && has > 1) r.Fail("input flag is neither 0 nor 1");
  u.has_input = has == 1;
  if (u.has_input) {
    u.input_name = r.Str("input name", kMaxPathComponent);
    u.input = r.Str("input", kMaxUnitInputBytes);
    if (r.ok() &&
        (u.input_name.find('/') != std::string::npos || !ValidatePackagePath(u.input_name).ok()))
      r.Fail("input name is not a plain file name");
  }
  if (!r.ok()) return r.status();
  if (r.remaining() != 0) return DataLoss("trailing bytes after the unit");
  return u;
}

std::string EncodeOutputs(OutputFiles files) {
  std::sort(files.begin(), files.end());
  Writer w;
  w.U32(static_cast<std::uint32_t>(files.size()));
  for (const auto& [name, data] : files) {
    w.Str(name);
    w.U64(data.size());
    w.Bytes(data.data(), data.size());
  }
  return std::move(w.out());
}

Result<OutputFiles> DecodeOutputs(std::string_view bytes) {
  Reader r(bytes);
  OutputFiles files;
  const std::uint32_t n = r.Count("output count", kMaxOutputs);
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string name = r.Str("output name", kMaxPathLength);
    const std::uint64_t size = r.U64("output size");
    if (r.ok() && size > r.remaining()) {
      r.Fail("output runs past the end");
      break;
    }
    std::string data(r.View(static_cast<std::size_t>(size), "output"));
    if (r.ok() && !files.empty() && !(files.back().first < name))
      r.Fail("outputs not sorted or duplicated");
    files.emplace_back(std::move(name), std::move(data));
  }
  if (!r.ok()) return r.status();
  if (r.remaining() != 0) return DataLoss("trailing bytes after the outputs");
  return files;
}

bool GlobMatch(std::string_view p, std::string_view t) {
  // The classic iterative matcher: on a mismatch, retry from the last '*' one byte further.
  // O(|p| * |t|) at worst, no recursion, so a hostile pattern cannot blow the stack.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.';
}

std::string RoundNumbers(std::string_view s, int digits) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const bool boundary = i == 0 || !IsWordChar(s[i - 1]);
    std::size_t j = i;
    if (boundary && (s[j] == '-' || s[j] == '+')) ++j;
    const std::size_t int_begin = j;
    while (j < s.size() && IsDigit(s[j])) ++j;
    bool frac = false, expo = false;
    std::size_t digits_seen = j - int_begin;
    if (j < s.size() && s[j] == '.') {
      std::size_t k = j + 1;
      while (k < s.size() && IsDigit(s[k])) ++k;
      if (k - j - 1 > 0 && digits_seen + (k - j - 1) > 0) {
        frac = true;
        digits_seen += k - j - 1;
        j = k;
      }
    }
    if (digits_seen > 0 && j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
      std::size_t k = j + 1;
      if (k < s.size() && (s[k] == '-' || s[k] == '+')) ++k;
      const std::size_t exp_begin = k;
      while (k < s.size() && IsDigit(s[k])) ++k;
      if (k > exp_begin) {
        expo = true;
        j = k;
      }
    }
    if (!boundary || digits_seen == 0 || (!frac && !expo)) {
      // Not a decimal fraction here: copy through the end of this run of digits, if any.
      const std::size_t stop = std::max(int_begin + (j > int_begin ? j - int_begin : 0), i + 1);
      out.append(s.substr(i, stop - i));
      i = stop;
      continue;
    }
    const std::string token(s.substr(i, j - i));
    const double v = std::strtod(token.c_str(), nullptr);
    if (std::isfinite(v)) {
      char buf[320];  // %.17g of any double fits; the size only quiets -Wformat-truncation
      std::snprintf(buf, sizeof(buf), "%.*g", digits, v == 0 ? 0.0 : v);  // -0 and 0 agree
      out += buf;
    } else {
      out += token;
    }
    i = j;
  }
  return out;
}

}  // namespace

std::string CanonicalizeOutput(const Canonicalizer& c, std::string_view content) {
  std::string kept;
  if (c.drop_lines.empty()) {
    kept = std::string(content);
  } else {
    kept.reserve(content.size());
    std::size_t pos = 0;
    while (pos < content.size()) {
      const auto nl = content.find('\n', pos);
      const std::size_t end = nl == std::string_view::npos ? content.size() : nl;
      const std::string_view line = content.substr(pos, end - pos);
      const bool drop = std::any_of(c.drop_lines.begin(), c.drop_lines.end(),
                                    [&](const std::string& p) { return GlobMatch(p, line); });
      if (!drop)
        kept.append(content.substr(pos, (nl == std::string_view::npos ? end : end + 1) - pos));
      pos = nl == std::string_view::npos ? content.size() : nl + 1;
    }
  }
  if (c.round_digits == 0) return kept;
  return RoundNumbers(kept, c.round_digits);
}

Hash256 CanonicalOutputsHash(const Canonicalizer& c, const OutputFiles& files) {
  OutputFiles canonical;
  canonical.reserve(files.size());
  for (const auto& [name, data] : files) canonical.emplace_back(name, CanonicalizeOutput(c, data));
  return Blake2b256(EncodeOutputs(std::move(canonical)));
}

Result<std::string> ExpandArgument(std::string_view token,
                                   const std::map<std::string, std::string>& vars) {
  std::string out;
  for (std::size_t i = 0; i < token.size(); ++i) {
    const char ch = token[i];
    if ((ch == '{' || ch == '}') && i + 1 < token.size() && token[i + 1] == ch) {
      out.push_back(ch);
      ++i;
      continue;
    }
    if (ch == '}') return InvalidArgument("lone '}' in argument '" + std::string(token) + "'");
    if (ch != '{') {
      out.push_back(ch);
      continue;
    }
    const auto close = token.find('}', i + 1);
    if (close == std::string_view::npos)
      return InvalidArgument("unclosed '{' in argument '" + std::string(token) + "'");
    const std::string name(token.substr(i + 1, close - i - 1));
    auto it = vars.find(name);
    if (it == vars.end()) return InvalidArgument("'{" + name + "}' has no value for this unit");
    out += it->second;
    i = close;
  }
  return out;
}

namespace {

Status WriteFile(const fs::path& p, std::string_view data, mode_t mode) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Unavailable("cannot create " + p.string() + ": " + std::strerror(errno));
  std::string_view rest = data;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Unavailable("cannot write " + p.string() + ": " + std::strerror(errno));
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(fd);
  return OkStatus();
}

std::string Tail(const fs::path& p, std::size_t max) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const auto size = static_cast<std::size_t>(in.tellg());
  const std::size_t n = std::min(size, max);
  in.seekg(static_cast<std::streamoff>(size - n));
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return (size > max ? "..." : "") + s;
}

// Reads a declared output without following a link anywhere: every component of the name is
// opened with O_NOFOLLOW below the run directory.
Result<std::string> ReadOutput(const fs::path& run_dir, const std::string& name,
                               std::uint64_t max) {
  int dir = ::open(run_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Internal("cannot open the unit directory");
  std::string_view rest = name;
  while (true) {
    const auto slash = rest.find('/');
    const std::string part(rest.substr(0, slash));
    const bool leaf = slash == std::string_view::npos;
    const int fd = ::openat(dir, part.c_str(),
                            (leaf ? O_RDONLY : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    const int err = errno;
    ::close(dir);
    if (fd < 0) {
      if (err == ELOOP || err == ENOTDIR)
        return FailedPrecondition("declared output '" + name +
                                  "' is a symbolic link; it is not collected");
      return FailedPrecondition("the program did not write its declared output '" + name + "'");
    }
    if (!leaf) {
      dir = fd;
      rest = rest.substr(slash + 1);
      continue;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return FailedPrecondition("declared output '" + name + "' is not a regular file");
    }
    if (static_cast<std::uint64_t>(st.st_size) > max) {
      ::close(fd);
      return ResourceExhausted("the outputs of the unit exceed " +
                               std::to_string(kMaxUnitOutputBytes) + " bytes");
    }
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    data.resize(got);
    return data;
  }
}

double ReadFraction(const fs::path& p) {
  std::ifstream in(p);
  double f = -1;
  if (!(in >> f) || !std::isfinite(f)) return -1;
  return std::clamp(f, 0.0, 1.0);
}

}  // namespace

Result<UnitRun> RunCommandUnit(const Manifest& m, const CommandUnit& unit, const RunOptions& o) {
  if (m.kind != Kind::kCommand) return InvalidArgument(m.name + " is not a command package");
  const CommandSpec& c = m.command;
  for (const auto& p : c.required_programs)
    if (::access(p.c_str(), X_OK) != 0)
      return FailedPrecondition(
          "required program " + p +
          " is missing on this peer (install the distribution package that provides it)");
  const std::string program = m.entry.front() == '/' ? m.entry : o.package_dir + "/" + m.entry;
  if (::access(program.c_str(), X_OK) != 0)
    return FailedPrecondition("the entry program " + program + " is not executable");

  const fs::path unit_dir = fs::path(o.work_dir) / ("unit-" + std::to_string(unit.index) + "-" +
                                                    std::to_string(::getpid()));
  const fs::path run_dir = unit_dir / "run", tmp_dir = unit_dir / "tmp",
                 err_path = unit_dir / "stderr";
  std::error_code ec;
  if (fs::exists(unit_dir, ec)) fs::remove_all(unit_dir, ec);
  if (!fs::create_directories(run_dir, ec) || !fs::create_directories(tmp_dir, ec))
    return Unavailable("cannot create the unit directory under " + o.work_dir);
  struct Cleanup {
    fs::path dir;
    bool keep;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(dir, e);
    }
  } cleanup{unit_dir, o.keep_work_dir};

  std::map<std::string, std::string> vars = unit.values;
  vars["unit"] = std::to_string(unit.index);
  vars["pkg"] = o.package_dir;
  if (unit.has_input) {
    if (!ValidatePackagePath(unit.input_name).ok() ||
        unit.input_name.find('/') != std::string::npos)
      return InvalidArgument("unit input name '" + unit.input_name + "' is not a plain file name");
    SC_RETURN_IF_ERROR(WriteFile(run_dir / unit.input_name, unit.input, 0600));
    vars["input"] = (run_dir / unit.input_name).string();
    vars["input_name"] = unit.input_name;
  }
  std::vector<std::string> argv = {program};
  for (const auto& a : c.args) {
    auto expanded = ExpandArgument(a, vars);
    if (!expanded.ok()) return expanded.status();
    argv.push_back(std::move(expanded).value());
  }
  // Outputs may live in subdirectories: create them so the program can simply write.
  for (const auto& out : c.outputs)
    if (const auto parent = fs::path(out).parent_path(); !parent.empty())
      fs::create_directories(run_dir / parent, ec);

  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + run_dir.string(),
                                  "TMPDIR=" + tmp_dir.string(),
                                  "SPARECYCLES_UNIT=" + std::to_string(unit.index)};
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  const std::string out_path =
      c.stdout_file.empty() ? std::string("/dev/null") : (run_dir / c.stdout_file).string();
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addchdir_np(&fa, run_dir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a timeout or cancel ends the program and everything it started.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return FailedPrecondition("cannot start " + program + ": " + std::strerror(rc));

  const double expected = std::max<double>(m.resources.expected_seconds, 1);
  const double timeout = o.timeout_seconds > 0 ? o.timeout_seconds : 10 * expected;
  int status = 0;
  std::string stopped;
  auto last_progress = start;
  // The program's exit wakes the wait at once through a pidfd (Linux 5.3); without one, the wait
  // sleeps in short steps. Either way it looks up every 50 ms at most for a stop or progress.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  while (true) {
    // WNOWAIT: see the exit without reaping, so the pid (and with it the process group id)
    // stays ours until the group has been killed below; a reaped id could be reused.
    siginfo_t info{};
    const int r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (r < 0 && errno != EINTR)
      return Internal("waitid failed: " + std::string(std::strerror(errno)));
    if (r == 0 && info.si_pid == pid) break;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (stopped.empty() && elapsed > timeout) stopped = "timeout";
    if (stopped.empty() && o.stop && o.stop()) stopped = "cancelled";
    if (!stopped.empty()) break;
    if (o.progress && now - last_progress > std::chrono::milliseconds(200)) {
      last_progress = now;
      double f = c.progress_file.empty() ? -1 : ReadFraction(run_dir / c.progress_file);
      if (f < 0) f = std::min(0.99, elapsed / expected);
      o.progress(f);
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      (void)::poll(&p, 1, 50);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(elapsed < 0.1 ? 1 : 10));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  // Whatever the program left running in its group ends with it (the leader is not reaped
  // yet, so the group id cannot belong to anyone else), then the leader is reaped.
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (stopped == "timeout")
    return DeadlineExceeded("the program ran longer than " +
                            std::to_string(static_cast<long>(timeout)) + " s and was killed");
  if (stopped == "cancelled") return Cancelled("the unit was cancelled");
  if (WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFSIGNALED(status)
                                ? "was killed by signal " + std::to_string(WTERMSIG(status)) +
                                      " (" + std::string(strsignal(WTERMSIG(status))) + ")"
                                : "exited with status " + std::to_string(WEXITSTATUS(status));
    const std::string tail = Tail(err_path, kStderrTailBytes);
    return Internal(fs::path(program).filename().string() + " " + how +
                    (tail.empty() ? "" : "; stderr: " + tail));
  }
  UnitRun run;
  run.seconds = seconds;
  std::uint64_t total = 0;
  for (const auto& name : c.outputs) {
    auto data = ReadOutput(run_dir, name, kMaxUnitOutputBytes - total);
    if (!data.ok()) return data.status();
    total += data->size();
    run.outputs.emplace_back(name, std::move(data).value());
  }
  std::sort(run.outputs.begin(), run.outputs.end());
  run.result = EncodeOutputs(run.outputs);
  run.canonical_hash = CanonicalOutputsHash(c.canonicalizer, run.outputs);
  if (o.progress) o.progress(1.0);
  return run;
}

}  // namespace sparecycles::package
