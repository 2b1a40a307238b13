// TEST-ONLY hostile task plugin for the sandbox test: each unit names one attack (read or write a
// path outside its directory, open a socket to loopback, fork-bomb, exec a shell, allocate
// 64 GiB, spin, write past the file size limit, ptrace or signal a pid, raise its rlimits) and
// returns "blocked: <errno text>" when the kernel refused it, "ESCAPED: ..." when it did not.
// Mode 0 is an honest unit (a sum). Built like an outside author's plugin.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/plugin.hpp"

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

// Unit bytes: u8 attack, str argument (a path, a port or a pid in decimal).
enum Attack : std::uint8_t {
  kHonest = 0,
  kRead = 1,
  kWrite = 2,
  kListDir = 3,
  kTcp = 4,
  kUdp = 5,
  kUnix = 6,
  kForkBomb = 7,
  kExecShell = 8,
  kAllocate = 9,
  kSpin = 10,
  kBigFile = 11,
  kSignal = 12,
  kPtrace = 13,
  kRaiseLimit = 14,
  kSymlinkOut = 15,
  kNow = 16,  // not an attack: CLOCK_MONOTONIC at the unit's first instruction (a benchmark)
};

std::string Blocked(const char* what) {
  return std::string("blocked: ") + what + ": " + std::strerror(errno);
}

std::string ReadPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Blocked("open");
  char buf[64];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  const int e = errno;
  ::close(fd);
  errno = e;
  if (n < 0) return Blocked("read");
  return "ESCAPED: read " + std::to_string(n) + " bytes of " + path;
}

std::string Attempt(std::uint8_t attack, const std::string& arg) {
  switch (attack) {
    case kRead:
      return ReadPath(arg);
    case kWrite: {
      const int fd = ::open(arg.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return Blocked("open for writing");
      const bool wrote = ::write(fd, "pwned", 5) == 5;
      ::close(fd);
      return wrote ? "ESCAPED: wrote " + arg : Blocked("write");
    }
    case kListDir: {
      const int fd = ::open(arg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return Blocked("open directory");
      ::close(fd);
      return "ESCAPED: opened directory " + arg;
    }
    case kTcp:
    case kUdp: {
      const int s = ::socket(AF_INET, attack == kTcp ? SOCK_STREAM : SOCK_DGRAM, 0);
      if (s < 0) return Blocked("socket");
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(arg.c_str())));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, never any other address
      const int rc = attack == kTcp
                         ? ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a))
                         : static_cast<int>(
                               ::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
      const int e = errno;
      ::close(s);
      errno = e;
      return rc < 0 ? Blocked(attack == kTcp ? "connect" : "sendto") : "ESCAPED: reached 127.0.0.1";
    }
    case kUnix: {
      const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (s < 0) return Blocked("socket(AF_UNIX)");
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, arg.c_str(), sizeof(a.sun_path) - 1);
      const int rc = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      const int e = errno;
      ::close(s);
      errno = e;
      return rc < 0 ? Blocked("connect") : "ESCAPED: connected to " + arg;
    }
    case kForkBomb: {
      // Bounded: at most 5000 children, each exits at once and stays a zombie (still counted)
      // until reaped below.
      std::vector<pid_t> kids;
      std::string out;
      for (int i = 0; i < 5000; ++i) {
        const pid_t p = ::fork();
        if (p == 0) ::_exit(0);
        if (p < 0) {
          out = Blocked("fork") + " after " + std::to_string(kids.size()) + " children";
          break;
        }
        kids.push_back(p);
      }
      for (pid_t p : kids) (void)::waitpid(p, nullptr, 0);
      return out.empty() ? "ESCAPED: forked " + std::to_string(kids.size()) + " children" : out;
    }
    case kExecShell: {
      const pid_t p = ::fork();
      if (p < 0) return Blocked("fork");
      if (p == 0) {
        char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                        const_cast<char*>("exit 0"), nullptr};
        ::execve("/bin/sh", argv, nullptr);
        ::_exit(100 + (errno & 0x1f));
      }
      int st = 0;
      (void)::waitpid(p, &st, 0);
      if (WIFEXITED(st) && WEXITSTATUS(st) >= 100) {
        errno = WEXITSTATUS(st) - 100;
        return Blocked("execve /bin/sh");
      }
      return "ESCAPED: ran /bin/sh";
    }
    case kAllocate: {
      const std::size_t n = 64ull << 30;
      void* p = std::malloc(n);
      if (p == nullptr) return Blocked("malloc 64 GiB");
      std::free(p);
      return "ESCAPED: allocated 64 GiB";
    }
    case kSpin: {
      volatile std::uint64_t x = 0;
      while (true) x = x + 1;
    }
    case kBigFile: {
      // 10 GiB asked; RLIMIT_FSIZE stops it far sooner (SIGXFSZ).
      const int fd = ::open("big", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return Blocked("open big");
      std::string block(1 << 20, 'x');
      for (int i = 0; i < 10 * 1024; ++i)
        if (::write(fd, block.data(), block.size()) < 0) {
          const int e = errno;
          ::close(fd);
          errno = e;
          return Blocked("write big") + " after " + std::to_string(i) + " MiB";
        }
      ::close(fd);
      return "ESCAPED: wrote 10 GiB";
    }
    case kSignal:  // signal 0: permission is checked, nothing is delivered
      return ::kill(std::atoi(arg.c_str()), 0) < 0 ? Blocked("kill") : "ESCAPED: may signal";
    case kPtrace: {
      const pid_t pid = std::atoi(arg.c_str());
      if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) < 0) return Blocked("ptrace");
      (void)::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
      return "ESCAPED: ptrace-seized the worker";
    }
    case kRaiseLimit: {
      const rlimit l{RLIM_INFINITY, RLIM_INFINITY};
      if (::setrlimit(RLIMIT_CPU, &l) < 0) return Blocked("setrlimit(RLIMIT_CPU)");
      return "ESCAPED: raised RLIMIT_CPU";
    }
    case kSymlinkOut: {
      (void)::unlink("out-link");
      if (::symlink(arg.c_str(), "out-link") < 0) return Blocked("symlink");
      return ReadPath("out-link");
    }
    case kNow: {
      timespec ts{};
      ::clock_gettime(CLOCK_MONOTONIC, &ts);
      return std::to_string(static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec);
    }
    default:
      return "unknown attack";
  }
}

class Hostile final : public Task {
 public:
  std::string_view Name() const override { return "hostile"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return "units that attack their sandbox (test)"; }
  std::vector<ParamSpec> Params() const override { return {}; }
  std::string_view WorkName() const override { return "units"; }
  Result<JobPlan> Plan(const JobParams&) const override { return JobPlan{1, 1, true}; }
  Result<std::vector<std::string>> Split(const JobParams&, std::uint64_t) const override {
    return std::vector<std::string>{};
  }
  Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const override {
    ByteReader r(unit, "hostile unit");
    const auto attack = r.Get<std::uint8_t>();
    const std::string arg = r.Str(4096);
    if (Status s = r.Finish(); !s.ok()) return s;
    if (attack == kHonest) {
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < 1000000; ++i) sum += i * i;
      ctx.Progress(1.0);
      return "sum=" + std::to_string(sum);
    }
    return Attempt(attack, arg);
  }
  Result<std::string> Merge(const JobParams&, std::span<const std::string>) const override {
    return std::string();
  }
  std::string Canonicalize(std::string_view result) const override { return std::string(result); }
  std::string Summarize(std::string_view) const override { return ""; }
  std::string ToJson(std::string_view) const override { return "{}"; }
  double Calibrate(double) const override { return 1; }
  double DefaultWorkPerSecond() const override { return 1; }
};

}  // namespace

SPARECYCLES_EXPORT_TASK(Hostile)
