// The executor's sandbox (docs/sandbox.md): a hostile package tries, one unit per attempt, to read
// an owner's home, the worker's state and key, another unit's directory, to write outside its
// own, follow a symlink out, reach 127.0.0.1 over TCP and UDP and a Unix socket, fork-bomb, exec a
// shell, allocate 64 GiB, spin past its CPU limit, write past the file size limit, signal or
// ptrace the worker, read its /proc environ and mem and raise its rlimits; each is blocked and
// the next honest unit on the same executor succeeds. A missing layer fails the unit naming it;
// an honest unit's hash is the same with the sandbox off and on; sandbox-check reports every
// layer. Every wait is bounded.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../../worker/src/executor_process.hpp"
#include "process.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/task_abi.h"

using namespace sparecycles;
using namespace sparecycles::worker;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using sparecycles::testing::ReadAll;
using sparecycles::testing::TempDir;

namespace {

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
};

std::string HostileUnit(Attack a, const std::string& arg = "") {
  return tasks::ByteWriter().Put<std::uint8_t>(a).Str(arg).bytes();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), 0644);  // readable by anyone: only the sandbox can keep a unit out
}

std::uint64_t next_lease = 1000;

struct Fixture {
  TempDir tmp;
  std::shared_ptr<const PackageRef> pkg;
  std::unique_ptr<ProcessExecutor> exec;

  explicit Fixture(bool sandbox = true, std::string disable_layer = "") {
    ::chmod(tmp.path().c_str(), 0755);
    fs::create_directories(tmp / "work");
    package::Manifest m;
    m.name = "hostile";
    m.version = "1";
    m.kind = package::Kind::kNative;
    m.arch = std::string(package::HostArch());
    m.entry = "hostile.so";
    m.abi_version = SPARECYCLES_TASK_ABI_VERSION;
    m.resources.expected_seconds = 1;
    m.resources.memory_bytes = 256ull << 20;
    m.files = {package::FileEntry{"hostile.so"}};
    auto p = package::Package::Create(m, {ReadAll(SC_HOSTILE_TEST_PLUGIN)});
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    REQUIRE(p->Extract(tmp / "pkg").ok());
    auto ref = std::make_shared<PackageRef>();
    ref->id = p->Id();
    ref->dir = tmp / "pkg";
    ref->manifest = p->manifest();
    pkg = ref;
    ProcessExecutorConfig c;
    c.executor_path = SC_EXECUTOR_BIN;
    c.work_root = tmp / "work";
    c.kill_grace = 300ms;
    c.time_limit_factor = 20;  // 20 s wall: the CPU limit (2 s) must come first
    c.cpu_limit_factor = 2;
    c.sandbox = sandbox;
    c.disable_layer_for_test = std::move(disable_layer);
    exec = std::make_unique<ProcessExecutor>(c, [] {});
  }

  proto::ResultMsg Run(std::string unit) {
    UnitStart u;
    u.lease.lease_id = next_lease++;
    u.lease.job_id = 9;
    u.lease.unit_index = u.lease.lease_id;
    u.lease.task = "hostile";
    u.lease.unit = std::move(unit);
    u.package = pkg;
    const std::uint64_t id = u.lease.lease_id;
    exec->Start(std::move(u));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& f : exec->TakeFinished())
        if (f.result.lease_id == id) return f.result;
      std::this_thread::sleep_for(5ms);
    }
    FAIL("unit " << id << " did not finish in 30 s");
    return {};
  }

  // Runs an attack; it must be blocked (a "blocked:" result, or a failure naming `limit`), and
  // an honest unit after it must succeed.
  void ExpectBlocked(const std::string& what, std::string unit, const std::string& limit = "") {
    CAPTURE(what);
    const proto::ResultMsg r = Run(std::move(unit));
    CAPTURE(r.payload);
    CAPTURE(r.error);
    MESSAGE(what << " -> " << (r.outcome == proto::UnitOutcome::kOk ? r.payload : r.error));
    if (r.outcome == proto::UnitOutcome::kOk) {
      CHECK(r.payload.rfind("blocked: ", 0) == 0);
    } else {
      CHECK(r.outcome == proto::UnitOutcome::kFailed);
      CHECK(!limit.empty());
      CHECK(r.error.find(limit) != std::string::npos);
    }
    const proto::ResultMsg ok = Run(HostileUnit(kHonest));
    CHECK(ok.outcome == proto::UnitOutcome::kOk);
    CHECK(ok.payload.rfind("sum=", 0) == 0);
  }
};

}  // namespace

TEST_CASE("every attack of a hostile package is blocked, and the next unit runs") {
  Fixture f;
  // Things outside the unit's directory, readable by anyone as far as file modes go.
  fs::create_directories(f.tmp / "home/.ssh");
  WriteFile(f.tmp / "home/.ssh/id_ed25519", "owner secret");
  fs::create_directories(f.tmp / "state");
  WriteFile(f.tmp / "state/worker.key", "worker key");
  WriteFile(f.tmp / "state/worker.db", "state");
  fs::create_directories(f.tmp / "work/unit-1");
  WriteFile(f.tmp / "work/unit-1/other", "another unit's data");
  ::chmod((f.tmp / "work/unit-1").c_str(), 0777);

  f.ExpectBlocked("read the owner's home", HostileUnit(kRead, f.tmp / "home/.ssh/id_ed25519"));
  f.ExpectBlocked("read the worker's key", HostileUnit(kRead, f.tmp / "state/worker.key"));
  f.ExpectBlocked("list the worker's state", HostileUnit(kListDir, f.tmp / "state"));
  f.ExpectBlocked("read another unit", HostileUnit(kRead, f.tmp / "work/unit-1/other"));
  f.ExpectBlocked("read another unit via ../", HostileUnit(kRead, "../unit-1/other"));
  f.ExpectBlocked("write outside", HostileUnit(kWrite, f.tmp / "work/planted"));
  f.ExpectBlocked("write into another unit", HostileUnit(kWrite, f.tmp / "work/unit-1/planted"));
  f.ExpectBlocked("write the package", HostileUnit(kWrite, f.tmp / "pkg/hostile.so"));
  f.ExpectBlocked("symlink out", HostileUnit(kSymlinkOut, f.tmp / "home/.ssh/id_ed25519"));
  f.ExpectBlocked("read /etc/shadow", HostileUnit(kRead, "/etc/shadow"));
  CHECK(!fs::exists(f.tmp / "work/planted"));
  CHECK(!fs::exists(f.tmp / "work/unit-1/planted"));
  CHECK(ReadAll(f.tmp / "work/unit-1/other") == "another unit's data");

  // Network: listeners of the test's own on loopback, ports picked by the OS.
  const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
  const int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(tcp, 4) == 0);
  REQUIRE(::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(::getsockname(tcp, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string tcp_port = std::to_string(ntohs(a.sin_port));
  REQUIRE(::getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string udp_port = std::to_string(ntohs(a.sin_port));
  const int ux = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  const std::string ux_path = f.tmp / "owner.sock";
  std::snprintf(un.sun_path, sizeof(un.sun_path), "%s", ux_path.c_str());
  REQUIRE(::bind(ux, reinterpret_cast<sockaddr*>(&un), sizeof(un)) == 0);
  REQUIRE(::listen(ux, 4) == 0);
  ::chmod(ux_path.c_str(), 0777);
  f.ExpectBlocked("TCP to 127.0.0.1", HostileUnit(kTcp, tcp_port));
  f.ExpectBlocked("UDP to 127.0.0.1", HostileUnit(kUdp, udp_port));
  f.ExpectBlocked("Unix socket", HostileUnit(kUnix, ux_path));
  ::close(tcp);
  ::close(udp);
  ::close(ux);

  const std::string me = std::to_string(::getpid());
  f.ExpectBlocked("signal the worker", HostileUnit(kSignal, me));
  f.ExpectBlocked("ptrace the worker", HostileUnit(kPtrace, me));
  f.ExpectBlocked("read the worker's environ", HostileUnit(kRead, "/proc/" + me + "/environ"));
  f.ExpectBlocked("read the worker's mem", HostileUnit(kRead, "/proc/" + me + "/mem"));
  f.ExpectBlocked("raise its rlimits", HostileUnit(kRaiseLimit));
  f.ExpectBlocked("exec a shell from a native unit", HostileUnit(kExecShell));
  f.ExpectBlocked("fork bomb", HostileUnit(kForkBomb));
  f.ExpectBlocked("allocate 64 GiB", HostileUnit(kAllocate), "memory limit");
  f.ExpectBlocked("write a 10 GiB file", HostileUnit(kBigFile), "file size limit");
  f.ExpectBlocked("spin past the CPU limit", HostileUnit(kSpin), "CPU time limit");
}

TEST_CASE("a layer this machine lacks fails the unit with the layer named") {
  for (const char* layer : {"landlock", "seccomp", "network", "rlimits"}) {
    CAPTURE(layer);
    Fixture f(true, layer);
    const proto::ResultMsg r = f.Run(HostileUnit(kHonest));
    CHECK(r.outcome == proto::UnitOutcome::kFailed);
    CHECK(r.error.find(std::string("sandbox layer ") + layer + " unavailable") !=
          std::string::npos);
  }
}

TEST_CASE("an honest unit gives the same result hash with the sandbox off and on") {
  Fixture on(true), off(false);
  const proto::ResultMsg a = on.Run(HostileUnit(kHonest));
  const proto::ResultMsg b = off.Run(HostileUnit(kHonest));
  REQUIRE(a.outcome == proto::UnitOutcome::kOk);
  REQUIRE(b.outcome == proto::UnitOutcome::kOk);
  CHECK(a.hash.size() == 32);
  CHECK(a.hash == b.hash);
  CHECK(a.payload == b.payload);
  // Off really is off: the same attack that is blocked when on succeeds.
  fs::create_directories(off.tmp / "home");
  WriteFile(off.tmp / "home/secret", "s");
  const proto::ResultMsg leak = off.Run(HostileUnit(kRead, off.tmp / "home/secret"));
  CHECK(leak.payload.rfind("ESCAPED", 0) == 0);
}

namespace {
// Runs `sparecycles-worker sandbox-check`; returns its exit status, fills `out`.
int SandboxCheck(std::string* out, const char* disable) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    if (disable != nullptr) ::setenv("SPARECYCLES_SANDBOX_CHECK_DISABLE_LAYER", disable, 1);
    ::execl(SC_WORKER_BIN, SC_WORKER_BIN, "sandbox-check", "--executor", SC_EXECUTOR_BIN,
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;) out->append(buf, n);
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

TEST_CASE("sandbox-check reports every layer active here, and a missing one") {
  std::string out;
  CHECK(SandboxCheck(&out, nullptr) == 0);
  CAPTURE(out);
  for (const char* layer :
       {"no-new-privileges: active", "user: active", "network: active", "landlock: active",
        "rlimits: active", "seccomp: active", "check socket(AF_INET): refused"})
    CHECK(out.find(layer) != std::string::npos);
  CHECK(out.find("landlock ABI: ") != std::string::npos);
  std::string missing;
  CHECK(SandboxCheck(&missing, "seccomp") == 1);
  CAPTURE(missing);
  CHECK(missing.find("seccomp: unavailable") != std::string::npos);
}

TEST_CASE("units in one reused executor never see each other's files") {
  Fixture f;
  // A unit writes in its own directory and beside it, in the process's directory.
  const proto::ResultMsg w1 = f.Run(HostileUnit(kWrite, "mine"));
  CHECK(w1.payload.rfind("ESCAPED: wrote", 0) == 0);  // its own directory is writable
  const proto::ResultMsg w2 = f.Run(HostileUnit(kWrite, "../beside"));
  CAPTURE(w2.payload);
  REQUIRE(f.exec->Pids().size() == 1);
  const pid_t pid = f.exec->Pids()[0];
  // The next units of the same process find neither.
  const proto::ResultMsg r1 = f.Run(HostileUnit(kRead, "mine"));
  CHECK(r1.payload.rfind("blocked: ", 0) == 0);
  const proto::ResultMsg r2 = f.Run(HostileUnit(kRead, "../beside"));
  CHECK(r2.payload.rfind("blocked: ", 0) == 0);
  CHECK(f.exec->Pids() == std::vector<pid_t>{pid});
  CHECK(f.exec->processes_started() == 1);
  // And nothing is left in the work root but the live process's directory and its empty unit
  // directory.
  std::size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(f.tmp / "work")) {
    CAPTURE(e.path());
    const std::string name = e.path().filename().string();
    CHECK((name.rfind("exec-", 0) == 0 || (name == "unit" && fs::is_empty(e.path()))));
    ++entries;
  }
  CHECK(entries == 2);
}

namespace {
// A worker started against a coordinator endpoint that never answers (a port of our own on
// 127.0.0.1, bound but not listening); returns `sparecycles-worker status` once the worker has
// written its status, and the worker's log.
std::pair<std::string, std::string> WorkerStatus(const TempDir& tmp, const std::string& name,
                                                 const char* disable) {
  const int hold = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(::bind(hold, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::getsockname(hold, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  const std::string state = tmp / (name + "-state");
  fs::create_directories(state);
  if (disable != nullptr) ::setenv("SPARECYCLES_SANDBOX_CHECK_DISABLE_LAYER", disable, 1);
  // No coordinator answers, so there is no key to pin: plaintext (the worker would refuse to
  // start without a coordinator key otherwise).
  testing::Process w({SC_WORKER_BIN, "--coordinator", endpoint, "--state-dir", state, "--executor",
                      SC_EXECUTOR_BIN, "--cores", "1", "--profile", "cluster", "--curve", "off"},
                     tmp / name);
  ::unsetenv("SPARECYCLES_SANDBOX_CHECK_DISABLE_LAYER");
  std::string status;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && w.running()) {
    auto [code, out] = testing::RunCommand({SC_WORKER_BIN, "status", "--state-dir", state},
                                           tmp / (name + "-status"), 10s);
    if (code == 0 && out.find("peer ") != std::string::npos) {
      status = out;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  w.Signal(SIGKILL);
  w.Wait(10s);
  ::close(hold);
  return {status, w.Stderr()};
}
}  // namespace

TEST_CASE("a worker whose machine lacks a layer refuses package units up front and says why") {
  TempDir tmp;
  const auto missing = WorkerStatus(tmp, "missing", "landlock");
  const std::string refused = missing.first, log = missing.second;
  CAPTURE(refused);
  CAPTURE(log);
  REQUIRE(!refused.empty());
  CHECK(refused.find("packages:    REFUSED") != std::string::npos);
  CHECK(refused.find("landlock: unavailable") != std::string::npos);
  CHECK(log.find("task packages are OFF") != std::string::npos);
  CHECK(log.find("landlock: unavailable") != std::string::npos);
  // Every layer here: the same worker runs packages.
  const auto all = WorkerStatus(tmp, "normal", nullptr);
  const std::string normal = all.first, log2 = all.second;
  CAPTURE(normal);
  REQUIRE(!normal.empty());
  CHECK(normal.find("REFUSED") == std::string::npos);
  CHECK(log2.find("task packages run in") != std::string::npos);
}
