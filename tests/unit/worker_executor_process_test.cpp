// The executor process: units of a task package run in `sparecycles-executor` processes, reused
// for the next units of the same package. A native unit's payload is its canonical form with the
// right hash; two units of one package run in one process, each in a fresh directory; a segfault,
// an abort or a hang fails only its unit and ends only its process while units beside and after
// it succeed (batched short units behind a crash included); a cancel the unit ignores, the
// wall-clock limit and shutdown end the whole process group; idle processes end after the idle
// time or when another package needs the slot; pausing stops the processes (state T) and resuming
// continues them; command units return the program's outputs; garbage frames are refused on both
// sides. Every wait is bounded.
#include <doctest/doctest.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "../../worker/src/executor_composite.hpp"
#include "../../worker/src/executor_in_process.hpp"
#include "../../worker/src/executor_process.hpp"
#include "../../worker/src/executor_wire.hpp"
#include "process.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/package/command.hpp"
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

enum Mode : std::uint8_t { kSum = 0, kSegv = 1, kHang = 2, kAbort = 3, kDeaf = 4, kEcho = 5 };

std::string ProbeUnit(Mode mode, std::uint64_t from = 0, std::uint64_t to = 0,
                      std::uint32_t sleep_ms = 0) {
  return tasks::ByteWriter()
      .Put<std::uint8_t>(mode)
      .Put<std::uint64_t>(from)
      .Put<std::uint64_t>(to)
      .Put<std::uint32_t>(sleep_ms)
      .bytes();
}

std::string HashBytes(const Hash256& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

// A package extracted into `dir`.
std::shared_ptr<const PackageRef> Extract(package::Manifest m, std::vector<std::string> files,
                                          const std::string& dir) {
  auto pkg = package::Package::Create(std::move(m), std::move(files));
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  REQUIRE(pkg->Extract(dir).ok());
  auto ref = std::make_shared<PackageRef>();
  ref->id = pkg->Id();
  ref->dir = dir;
  ref->manifest = pkg->manifest();
  return ref;
}

std::shared_ptr<const PackageRef> ProbePackage(const std::string& dir) {
  package::Manifest m;
  m.name = "probe";
  m.version = "1";
  m.kind = package::Kind::kNative;
  m.arch = std::string(package::HostArch());
  m.entry = "probe.so";
  m.abi_version = SPARECYCLES_TASK_ABI_VERSION;
  m.resources.expected_seconds = 1;
  m.files = {package::FileEntry{"probe.so"}};
  return Extract(m, {ReadAll(SC_EXECUTOR_TEST_PLUGIN)}, dir);
}

std::uint64_t next_lease = 1;

UnitStart Unit(std::shared_ptr<const PackageRef> pkg, std::string unit) {
  UnitStart u;
  u.lease.lease_id = next_lease++;
  u.lease.job_id = 7;
  u.lease.unit_index = u.lease.lease_id;
  u.lease.task = "probe";
  u.lease.unit = std::move(unit);
  u.package = std::move(pkg);
  return u;
}

// A ProcessExecutor over a fresh work root, and the probe package.
struct Fixture {
  TempDir tmp;
  std::shared_ptr<const PackageRef> probe;
  std::atomic<int> wakes{0};
  std::unique_ptr<ProcessExecutor> exec;

  explicit Fixture(unsigned slots = 1,
                   const std::function<void(ProcessExecutorConfig&)>& tune = {}) {
    fs::create_directories(tmp / "work");
    probe = ProbePackage(tmp / "pkg");
    ProcessExecutorConfig c;
    c.slots = slots;
    c.executor_path = SC_EXECUTOR_BIN;
    c.work_root = tmp / "work";
    c.kill_grace = 300ms;
    if (tune) tune(c);
    exec = std::make_unique<ProcessExecutor>(c, [this] { ++wakes; });
  }
  std::uint64_t Start(std::string unit) {
    UnitStart u = Unit(probe, std::move(unit));
    const std::uint64_t id = u.lease.lease_id;
    exec->Start(std::move(u));
    return id;
  }
};

// Collects finished units until `id` is among them (bounded).
std::optional<FinishedUnit> WaitFor(Executor& exec, std::uint64_t id,
                                    std::vector<FinishedUnit>* others = nullptr,
                                    std::chrono::milliseconds timeout = 8000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<FinishedUnit> found;
  while (!found && std::chrono::steady_clock::now() < deadline) {
    for (auto& f : exec.TakeFinished()) {
      if (f.result.lease_id == id)
        found = std::move(f);
      else if (others != nullptr)
        others->push_back(std::move(f));
    }
    if (!found) std::this_thread::sleep_for(5ms);
  }
  return found;
}

template <class Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// The state letter of /proc/PID/stat ('R', 'S', 'T', ...), or 0 when the process is gone.
char ProcState(pid_t pid) {
  const std::string stat = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return 0;
  return stat[close + 2];
}

bool GroupGone(pid_t pgid) { return ::kill(-pgid, 0) != 0 && errno == ESRCH; }

// Nothing a unit wrote is left anywhere under `root`: only executor directories, each holding at
// most its empty unit directory.
bool NoUnitFiles(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    const bool exec_dir = e.path().parent_path() == root && name.rfind("exec-", 0) == 0;
    const bool unit_dir = name == "unit" && fs::is_empty(e.path());
    if (!exec_dir && !unit_dir) return false;
  }
  return true;
}

pid_t OnlyPid(const ProcessExecutor& exec) {
  pid_t pid = -1;
  WaitUntil([&] {
    auto pids = exec.Pids();
    if (pids.size() == 1) pid = pids[0];
    return pid > 0;
  });
  return pid;
}

}  // namespace

TEST_CASE("a native unit's payload is its canonical form and its hash the BLAKE2b-256 of it") {
  InitCrypto();
  Fixture f;
  const auto id = f.Start(ProbeUnit(kSum, 10, 1000));
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  REQUIRE_MESSAGE(done->result.outcome == proto::UnitOutcome::kOk, done->result.error);
  std::uint64_t expect = 0;
  for (std::uint64_t i = 10; i < 1000; ++i) expect += i;
  CHECK(done->result.payload == "sum=" + std::to_string(expect));
  CHECK(done->result.hash == HashBytes(Blake2b256(done->result.payload)));
  CHECK(done->result.wall_seconds > 0);
  CHECK(done->lease.lease_id == id);
  CHECK(f.wakes.load() >= 1);
  CHECK(f.exec->running() == 0);
  CHECK(NoUnitFiles(f.tmp / "work"));  // the unit's directory is removed
  f.exec.reset();
  CHECK(fs::is_empty(f.tmp / "work"));  // and the process's with the process
}

TEST_CASE("a segfaulting unit fails with SIGSEGV while a unit beside it and one after it succeed") {
  InitCrypto();
  Fixture f(2);
  const auto beside = f.Start(ProbeUnit(kSum, 0, 100, 800));
  const auto crash = f.Start(ProbeUnit(kSegv));
  std::vector<FinishedUnit> others;
  auto crashed = WaitFor(*f.exec, crash, &others);
  REQUIRE(crashed);
  CHECK(crashed->result.outcome == proto::UnitOutcome::kFailed);
  CHECK_MESSAGE(crashed->result.error.find("user code crashed: SIGSEGV (signal 11)") == 0,
                crashed->result.error);
  // The tail of the child's stderr comes with the reason.
  CHECK(crashed->result.error.find("about to write to an inaccessible page") != std::string::npos);
  CHECK(crashed->result.error.size() <= proto::kMaxTextBytes);

  const auto after = f.Start(ProbeUnit(kSum, 0, 10));
  for (auto id : {beside, after}) {
    std::optional<FinishedUnit> ok;
    auto it = std::find_if(others.begin(), others.end(),
                           [&](const FinishedUnit& u) { return u.result.lease_id == id; });
    if (it != others.end()) {
      ok = std::move(*it);
      others.erase(it);
    } else {
      ok = WaitFor(*f.exec, id, &others);
    }
    REQUIRE(ok);
    CHECK_MESSAGE(ok->result.outcome == proto::UnitOutcome::kOk, ok->result.error);
  }
}

TEST_CASE("an aborting unit fails with SIGABRT and the next unit runs") {
  InitCrypto();
  Fixture f;
  const auto a = f.Start(ProbeUnit(kAbort));
  const auto b = f.Start(ProbeUnit(kSum, 0, 4));
  std::vector<FinishedUnit> others;
  auto aborted = WaitFor(*f.exec, a, &others);
  REQUIRE(aborted);
  CHECK(aborted->result.outcome == proto::UnitOutcome::kFailed);
  CHECK_MESSAGE(aborted->result.error.find("SIGABRT (signal 6)") != std::string::npos,
                aborted->result.error);
  auto next = others.empty() ? WaitFor(*f.exec, b) : std::optional<FinishedUnit>(others[0]);
  REQUIRE(next);
  CHECK(next->result.payload == "sum=6");
}

TEST_CASE("a cancelled hanging unit stops, its process serves the next unit, then goes with it") {
  InitCrypto();
  Fixture f;
  const auto id = f.Start(ProbeUnit(kHang));
  const pid_t pid = OnlyPid(*f.exec);
  REQUIRE(pid > 0);
  REQUIRE(WaitUntil([&] { return f.exec->Units().at(0).progress > 0.4f; }));
  CHECK(::getpgid(pid) == pid);  // it leads its own group
  f.exec->Cancel(id, "the coordinator took it back", /*hand_back=*/true);
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  CHECK(done->result.outcome == proto::UnitOutcome::kCancelled);
  CHECK(done->result.error == "the coordinator took it back");
  CHECK(done->handed_back);
  CHECK_FALSE(done->stopped_by_us);
  // It stopped at its Progress(): the process is sound and runs the next unit.
  const auto next = f.Start(ProbeUnit(kSum, 0, 3));
  auto ok = WaitFor(*f.exec, next);
  REQUIRE(ok);
  CHECK(ok->result.payload == "sum=3");
  CHECK(f.exec->processes_started() == 1);
  f.exec.reset();
  CHECK(GroupGone(pid));
}

TEST_CASE("a unit that ignores its cancel is killed with its group after the grace") {
  InitCrypto();
  Fixture f;
  const auto id = f.Start(ProbeUnit(kDeaf));
  const pid_t pid = OnlyPid(*f.exec);
  REQUIRE(pid > 0);
  std::this_thread::sleep_for(100ms);  // let it reach user code
  const auto t0 = std::chrono::steady_clock::now();
  f.exec->Cancel(id, "stop", /*hand_back=*/false);
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(done->result.outcome == proto::UnitOutcome::kCancelled);
  CHECK(done->stopped_by_us);
  CHECK(took >= 300ms);  // the grace
  CHECK(took < 3s);
  CHECK(GroupGone(pid));
}

TEST_CASE("the wall-clock limit kills a hanging unit and names the limit") {
  InitCrypto();
  Fixture f(1, [](ProcessExecutorConfig& c) { c.time_limit_factor = 1; });  // 1 x 1 s expected
  const auto id = f.Start(ProbeUnit(kDeaf));
  const pid_t pid = OnlyPid(*f.exec);
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  CHECK(done->result.outcome == proto::UnitOutcome::kFailed);
  CHECK_MESSAGE(done->result.error.find("exceeded its time limit of 1 s") != std::string::npos,
                done->result.error);
  CHECK(done->result.wall_seconds >= 1.0);
  CHECK(done->result.wall_seconds < 5.0);
  CHECK(GroupGone(pid));
}

TEST_CASE("zero slots stop the executor processes, slots back continue them, queued units wait") {
  InitCrypto();
  Fixture f;
  const auto hang = f.Start(ProbeUnit(kHang));
  const auto queued = f.Start(ProbeUnit(kSum, 0, 3));
  const pid_t pid = OnlyPid(*f.exec);
  REQUIRE(pid > 0);
  f.exec->SetSlots(0);
  CHECK(WaitUntil([&] { return ProcState(pid) == 'T'; }));
  for (const auto& v : f.exec->Units()) {
    if (v.lease_id == hang) CHECK(v.waiting);
    if (v.lease_id == queued) CHECK_FALSE(v.started);
  }
  // Paused time does not count against the limit, and nothing else starts while paused.
  std::this_thread::sleep_for(200ms);
  CHECK(ProcState(pid) == 'T');
  CHECK(f.exec->Pids().size() == 1);
  f.exec->SetSlots(1);
  CHECK(WaitUntil([&] {
    const char s = ProcState(pid);
    return s == 'R' || s == 'S';
  }));
  f.exec->Cancel(hang, "done with it", false);
  std::vector<FinishedUnit> others;
  auto done = WaitFor(*f.exec, hang, &others);
  REQUIRE(done);
  CHECK(done->result.outcome == proto::UnitOutcome::kCancelled);
  // The queued unit starts once the slot is free (it may finish before the cancel is taken).
  auto next = others.empty() ? WaitFor(*f.exec, queued) : std::optional<FinishedUnit>(others[0]);
  REQUIRE(next);
  CHECK(next->result.lease_id == queued);
  CHECK(next->result.payload == "sum=3");
}

TEST_CASE("a paused unit that is cancelled ends at once, and shutdown ends every group") {
  InitCrypto();
  pid_t a = -1, b = -1;
  {
    Fixture f(2);
    const auto first = f.Start(ProbeUnit(kHang));
    f.Start(ProbeUnit(kDeaf));
    REQUIRE(WaitUntil([&] { return f.exec->Pids().size() == 2; }));
    a = f.exec->Pids()[0];
    b = f.exec->Pids()[1];
    f.exec->SetSlots(0);
    REQUIRE(WaitUntil([&] { return ProcState(a) == 'T' && ProcState(b) == 'T'; }));
    f.exec->Cancel(first, "handed back after a long pause", true);
    auto done = WaitFor(*f.exec, first, nullptr, 2000ms);
    REQUIRE(done);
    CHECK(done->handed_back);
    CHECK(done->result.outcome == proto::UnitOutcome::kCancelled);
    // The fixture's executor is destroyed here with the deaf unit still stopped.
  }
  CHECK(GroupGone(a));
  CHECK(GroupGone(b));
}

TEST_CASE("checkpoints of a running unit come out and a resume state reaches the unit") {
  InitCrypto();
  Fixture f(1, [](ProcessExecutorConfig& c) { c.checkpoint_interval = 50ms; });
  const auto id = f.Start(ProbeUnit(kHang));
  std::vector<proto::Checkpoint> cps;
  std::uint64_t saved = 0;
  CHECK(WaitUntil([&] {
    for (auto& cp : f.exec->TakeCheckpoints(&saved)) cps.push_back(std::move(cp));
    return !cps.empty();
  }));
  REQUIRE(!cps.empty());
  CHECK(cps[0].state == "hang-state");
  CHECK(cps[0].lease_id == id);
  CHECK(saved >= 1);
  f.exec->Cancel(id, "enough", false);
  REQUIRE(WaitFor(*f.exec, id));

  UnitStart u = Unit(f.probe, ProbeUnit(kEcho));
  u.resume = "saved-state-bytes";
  u.resumed_from = 0.25f;
  const auto echo = u.lease.lease_id;
  f.exec->Start(std::move(u));
  auto done = WaitFor(*f.exec, echo);
  REQUIRE(done);
  CHECK(done->result.payload == "saved-state-bytes");
  CHECK(done->resumed);
  CHECK(done->resumed_from == doctest::Approx(0.25));
}

TEST_CASE("a command unit returns the program's outputs and their canonical hash") {
  InitCrypto();
  Fixture f;
  package::Manifest m;
  m.name = "sha";
  m.version = "1";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/sha256sum";
  m.resources.expected_seconds = 5;
  m.command.required_programs = {m.entry};
  m.command.args = {"{input_name}"};
  m.command.split.mode = package::SplitMode::kLines;
  m.command.split.lines_per_unit = 1;
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  auto pkg = Extract(m, {}, f.tmp / "cmdpkg");
  package::CommandUnit cu;
  cu.index = 3;
  cu.has_input = true;
  cu.input_name = "input";
  cu.input = "ligand-42\n";
  UnitStart u = Unit(pkg, package::EncodeCommandUnit(cu));
  const auto id = u.lease.lease_id;
  f.exec->Start(std::move(u));
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  REQUIRE_MESSAGE(done->result.outcome == proto::UnitOutcome::kOk, done->result.error);
  auto outputs = package::DecodeOutputs(done->result.payload);
  REQUIRE(outputs.ok());
  REQUIRE(outputs->size() == 1);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(cu.input.data()), cu.input.size());
  const std::string hex = ToHex(std::string_view(reinterpret_cast<const char*>(h), sizeof(h)));
  CHECK((*outputs)[0].first == "out.txt");
  CHECK((*outputs)[0].second == hex + "  input\n");
  CHECK(done->result.hash == HashBytes(package::CanonicalOutputsHash({}, *outputs)));
  CHECK(NoUnitFiles(f.tmp / "work"));
}

TEST_CASE("a command unit's program, in a process group of its own, is paused and killed too") {
  InitCrypto();
  Fixture f;
  package::Manifest m;
  m.name = "nap";
  m.version = "1";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/sleep";
  m.resources.expected_seconds = 60;
  m.command.required_programs = {m.entry};
  m.command.args = {"30"};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  auto pkg = Extract(m, {}, f.tmp / "napkg");
  package::CommandUnit cu;
  UnitStart u = Unit(pkg, package::EncodeCommandUnit(cu));
  const auto id = u.lease.lease_id;
  f.exec->Start(std::move(u));
  const pid_t pid = OnlyPid(*f.exec);
  REQUIRE(pid > 0);
  // The program the executor started (RunCommandUnit gives it a group of its own).
  pid_t program = -1;
  REQUIRE(WaitUntil([&] {
    for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
      std::ifstream in(t.path() / "children");
      long c = 0;
      if (in >> c) program = static_cast<pid_t>(c);
    }
    // Past posix_spawn: the program runs (not the executor's copy before exec) in its own group.
    return program > 0 && ::getpgid(program) == program &&
           ReadAll("/proc/" + std::to_string(program) + "/comm") == "sleep\n";
  }));
  f.exec->SetSlots(0);
  CHECK(WaitUntil([&] { return ProcState(pid) == 'T' && ProcState(program) == 'T'; }));
  f.exec->SetSlots(1);
  CHECK(WaitUntil([&] { return ProcState(program) == 'S'; }));
  f.exec->Cancel(id, "no longer needed", false);
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  CHECK(done->result.outcome == proto::UnitOutcome::kCancelled);
  CHECK(WaitUntil([&] { return ProcState(program) == 0 || ProcState(program) == 'Z'; }, 2000ms));
  f.exec.reset();
  CHECK(GroupGone(pid));
}

TEST_CASE("two units of one package run one after the other in one process") {
  InitCrypto();
  Fixture f;
  const auto a = f.Start(ProbeUnit(kSum, 0, 10));
  auto first = WaitFor(*f.exec, a);
  REQUIRE(first);
  CHECK(first->result.payload == "sum=45");
  const pid_t pid = OnlyPid(*f.exec);
  REQUIRE(pid > 0);
  CHECK(ProcState(pid) != 0);  // still there, idle
  const auto b = f.Start(ProbeUnit(kSum, 0, 5));
  auto second = WaitFor(*f.exec, b);
  REQUIRE(second);
  CHECK(second->result.payload == "sum=10");
  CHECK(OnlyPid(*f.exec) == pid);
  CHECK(f.exec->processes_started() == 1);
  CHECK(NoUnitFiles(f.tmp / "work"));
}

TEST_CASE("a crash ends only its process: the next unit of the package gets a fresh one") {
  InitCrypto();
  Fixture f;
  const auto a = f.Start(ProbeUnit(kSum, 0, 2));
  REQUIRE(WaitFor(*f.exec, a));
  const pid_t first = OnlyPid(*f.exec);
  const auto crash = f.Start(ProbeUnit(kSegv));
  auto crashed = WaitFor(*f.exec, crash);
  REQUIRE(crashed);
  CHECK(crashed->result.error.find("SIGSEGV") != std::string::npos);
  CHECK(WaitUntil([&] { return GroupGone(first); }));
  const auto b = f.Start(ProbeUnit(kSum, 0, 4));
  auto next = WaitFor(*f.exec, b);
  REQUIRE(next);
  CHECK_MESSAGE(next->result.outcome == proto::UnitOutcome::kOk, next->result.error);
  CHECK(next->result.payload == "sum=6");
  CHECK(f.exec->processes_started() == 2);
  CHECK(OnlyPid(*f.exec) != first);
}

TEST_CASE("short units go to reused processes in batches; units behind a crash still run") {
  InitCrypto();
  Fixture f(2);
  f.exec->SetShortUnits(true);
  constexpr int kUnits = 300;
  std::map<std::uint64_t, int> ids;
  std::uint64_t crash = 0;
  for (int i = 0; i < kUnits; ++i) {
    const bool bad = i == kUnits / 2;
    const auto id = f.Start(bad ? ProbeUnit(kSegv) : ProbeUnit(kSum, 0, static_cast<unsigned>(i)));
    ids[id] = i;
    if (bad) crash = id;
  }
  int ok = 0, failed = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (ok + failed < kUnits && std::chrono::steady_clock::now() < deadline) {
    for (auto& u : f.exec->TakeFinished()) {
      const int i = ids.at(u.result.lease_id);
      if (u.result.lease_id == crash) {
        CHECK(u.result.outcome == proto::UnitOutcome::kFailed);
        CHECK(u.result.error.find("SIGSEGV") != std::string::npos);
        ++failed;
        continue;
      }
      std::uint64_t expect = 0;
      for (int k = 0; k < i; ++k) expect += static_cast<std::uint64_t>(k);
      CHECK_MESSAGE(u.result.payload == "sum=" + std::to_string(expect), u.result.error);
      ++ok;
    }
    std::this_thread::sleep_for(2ms);
  }
  CHECK(ok == kUnits - 1);
  CHECK(failed == 1);
  // Two processes, and one more for the one the crash ended: not one per unit.
  CHECK(f.exec->processes_started() <= 3);
  CHECK(f.exec->processes_started() >= 2);
}

TEST_CASE("a unit waiting in a batch is cancelled without touching the one running") {
  InitCrypto();
  Fixture f;
  f.exec->SetShortUnits(true);
  const auto hang = f.Start(ProbeUnit(kHang));
  const auto waiting = f.Start(ProbeUnit(kSum, 0, 3));
  const auto after = f.Start(ProbeUnit(kSum, 0, 4));
  REQUIRE(WaitUntil([&] {
    for (const auto& v : f.exec->Units())
      if (v.lease_id == after) return v.started;  // sent to the busy process
    return false;
  }));
  f.exec->Cancel(waiting, "not wanted", false);
  auto c = WaitFor(*f.exec, waiting);
  REQUIRE(c);
  CHECK(c->result.outcome == proto::UnitOutcome::kCancelled);
  CHECK(c->result.error == "not wanted");
  CHECK(f.exec->Units().size() == 2);  // the hanging one runs on
  f.exec->Cancel(hang, "enough", false);
  std::vector<FinishedUnit> others;
  auto h = WaitFor(*f.exec, hang, &others);
  REQUIRE(h);
  CHECK(h->result.outcome == proto::UnitOutcome::kCancelled);
  auto a = others.empty() ? WaitFor(*f.exec, after) : std::optional<FinishedUnit>(others[0]);
  REQUIRE(a);
  CHECK(a->result.payload == "sum=6");
  CHECK(f.exec->processes_started() == 1);
}

TEST_CASE("an idle process ends after the idle time, and at once when another package needs it") {
  InitCrypto();
  {
    Fixture f(1, [](ProcessExecutorConfig& c) { c.idle_timeout = 200ms; });
    const auto id = f.Start(ProbeUnit(kSum, 0, 2));
    REQUIRE(WaitFor(*f.exec, id));
    const pid_t pid = OnlyPid(*f.exec);
    REQUIRE(pid > 0);
    CHECK(WaitUntil([&] { return f.exec->Pids().empty() && GroupGone(pid); }, 3000ms));
    CHECK(WaitUntil([&] { return fs::is_empty(f.tmp / "work"); }));  // its directory goes too
  }
  Fixture f;  // idle time 3 s
  auto other = ProbePackage(f.tmp / "pkg2");
  const auto a = f.Start(ProbeUnit(kSum, 0, 2));
  REQUIRE(WaitFor(*f.exec, a));
  const pid_t first = OnlyPid(*f.exec);
  UnitStart u = Unit(other, ProbeUnit(kSum, 0, 3));
  const auto b = u.lease.lease_id;
  const auto t0 = std::chrono::steady_clock::now();
  f.exec->Start(std::move(u));
  auto done = WaitFor(*f.exec, b);
  REQUIRE(done);
  CHECK(done->result.payload == "sum=3");
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // not the idle time
  CHECK(GroupGone(first));
  CHECK(f.exec->processes_started() == 2);
}

TEST_CASE("frames round-trip and garbage, truncated or oversized frames are refused") {
  wire::Start s;
  s.kind = package::Kind::kCommand;
  s.package_dir = "/pkg";
  s.manifest = "manifest-bytes";
  s.checkpoint_interval_ms = 1000;
  s.time_limit_ms = 60000;
  s.work_dir = "/work/exec-1";
  wire::Run run{1, 2, 3, std::string("unit\0bytes", 10), "state", 2};
  wire::Run plain{4, 5, 6, "u", std::nullopt, 1};
  wire::Done d;
  d.lease_id = 9;
  d.payload = "payload";
  d.hash = std::string(32, 'h');
  d.cpu_seconds = 0.125;
  d.last = true;
  const std::vector<wire::Message> all = {s,
                                          run,
                                          plain,
                                          wire::Cancel{1, "why"},
                                          wire::Progress{1, 0.5f},
                                          wire::Checkpoint{1, 0.25f, "cp"},
                                          d};
  for (const auto& m : all) {
    const std::string body = wire::EncodeBody(m);
    auto back = wire::DecodeBody(body);
    REQUIRE(back.ok());
    CHECK(*back == m);
    for (std::size_t n = 0; n < body.size(); ++n)
      CHECK_FALSE(wire::DecodeBody(body.substr(0, n)).ok());
    CHECK_FALSE(wire::DecodeBody(body + "x").ok());
  }
  CHECK_FALSE(wire::DecodeBody(wire::EncodeBody(wire::Progress{1, 1.5f})).ok());
  wire::Done bad_cpu = d;
  bad_cpu.cpu_seconds = -1;
  CHECK_FALSE(wire::DecodeBody(wire::EncodeBody(bad_cpu)).ok());
  wire::Done bad_hash = d;
  bad_hash.hash = "short";
  CHECK_FALSE(wire::DecodeBody(wire::EncodeBody(bad_hash)).ok());
  wire::Start relative = s;
  relative.work_dir = "work";
  CHECK_FALSE(wire::DecodeBody(wire::EncodeBody(relative)).ok());

  std::mt19937_64 rng(12345);
  for (int i = 0; i < 3000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    if (!junk.empty() && i % 2 == 0) junk[0] = static_cast<char>(1 + rng() % 6);  // a real type
    (void)wire::DecodeBody(junk);  // must not crash or throw
    wire::FrameReader fr;
    fr.Append(junk);
    for (int k = 0; k < 8; ++k) {
      auto m = fr.Next();
      if (!m.ok() || !m->has_value()) break;
    }
  }
  // A length above the limit is refused from its 4 bytes, before any body arrives.
  wire::FrameReader big;
  big.Append(std::string("\xff\xff\xff\x7f", 4));
  CHECK_FALSE(big.Next().ok());
  wire::FrameReader empty;
  empty.Append(std::string(4, '\0'));
  CHECK_FALSE(empty.Next().ok());
  // A frame cut short by a closed channel is an error; a close at a boundary is not.
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  auto frame = wire::EncodeFrame(wire::Cancel{1, "x"});
  REQUIRE(frame.ok());
  REQUIRE(::write(sv[0], frame->data(), frame->size()) == static_cast<ssize_t>(frame->size()));
  REQUIRE(::write(sv[0], frame->data(), 3) == 3);
  ::close(sv[0]);
  auto first = wire::ReadFrame(sv[1]);
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  CHECK(std::get<wire::Cancel>(**first).reason == "x");
  CHECK_FALSE(wire::ReadFrame(sv[1]).ok());
  ::close(sv[1]);
}

TEST_CASE("a missing executor binary fails the unit with the reason") {
  InitCrypto();
  Fixture f(
      1, [](ProcessExecutorConfig& c) { c.executor_path = "/nonexistent/sparecycles-executor"; });
  const auto id = f.Start(ProbeUnit(kSum, 0, 1));
  auto done = WaitFor(*f.exec, id);
  REQUIRE(done);
  CHECK(done->result.outcome == proto::UnitOutcome::kFailed);
  CHECK_MESSAGE(done->result.error.find("cannot start /nonexistent/sparecycles-executor") == 0,
                done->result.error);
}

TEST_CASE("an executor that sends garbage or exits without a result fails only its unit") {
  InitCrypto();
  TempDir scripts;
  const std::string garbage = scripts / "garbage.sh";
  const std::string silent = scripts / "silent.sh";
  // A frame of 5 bytes whose type (0xff) does not exist; then it would linger.
  std::ofstream(garbage) << "#!/bin/sh\nprintf '\\005\\000\\000\\000\\377abcd' >&3\nsleep 5\n";
  std::ofstream(silent) << "#!/bin/sh\necho 'nothing to say' >&2\nexit 0\n";
  ::chmod(garbage.c_str(), 0700);
  ::chmod(silent.c_str(), 0700);
  for (const auto& [script, expect] :
       {std::pair{garbage, std::string("malformed frame")},
        std::pair{silent, std::string("exited with status 0 without a result")}}) {
    const std::string path = script;
    Fixture f(1, [&](ProcessExecutorConfig& c) { c.executor_path = path; });
    const auto t0 = std::chrono::steady_clock::now();
    const auto id = f.Start(ProbeUnit(kSum, 0, 1));
    auto done = WaitFor(*f.exec, id);
    REQUIRE(done);
    CHECK(done->result.outcome == proto::UnitOutcome::kFailed);
    CHECK_MESSAGE(done->result.error.find(expect) != std::string::npos, done->result.error);
    CHECK(std::chrono::steady_clock::now() - t0 < 4s);  // not the script's sleep
  }
}

namespace {

// A built-in task that holds its slot for a while.
class NapTask final : public tasks::Task {
 public:
  std::string_view Name() const override { return "nap"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return "sleeps"; }
  std::vector<tasks::ParamSpec> Params() const override { return {}; }
  std::string_view WorkName() const override { return "naps"; }
  Result<tasks::JobPlan> Plan(const tasks::JobParams&) const override {
    return tasks::JobPlan{1, 1, true};
  }
  Result<std::vector<std::string>> Split(const tasks::JobParams&, std::uint64_t) const override {
    return std::vector<std::string>{""};
  }
  Result<std::string> Execute(std::string_view, tasks::UnitContext& ctx) const override {
    for (int i = 0; i < 60; ++i) {
      ctx.Progress(i / 60.0);
      std::this_thread::sleep_for(5ms);
    }
    return std::string("napped");
  }
  Result<std::string> Merge(const tasks::JobParams&, std::span<const std::string>) const override {
    return std::string();
  }
  std::string Summarize(std::string_view) const override { return ""; }
  std::string ToJson(std::string_view) const override { return "{}"; }
  double Calibrate(double) const override { return 1; }
  double DefaultWorkPerSecond() const override { return 1; }
};

}  // namespace

TEST_CASE("the composite executor routes by package and shares one slot budget") {
  InitCrypto();
  TempDir tmp;
  fs::create_directories(tmp / "work");
  auto probe = ProbePackage(tmp / "pkg");
  tasks::Registry registry;
  registry.Add(std::make_unique<NapTask>());
  InProcessExecutorConfig ic;
  ic.slots = 1;
  ProcessExecutorConfig pc;
  pc.slots = 1;
  pc.executor_path = SC_EXECUTOR_BIN;
  pc.work_root = tmp / "work";
  CompositeExecutor exec(std::make_unique<InProcessExecutor>(ic, registry, [] {}),
                         std::make_unique<ProcessExecutor>(pc, [] {}), 1);
  UnitStart nap;
  nap.lease.lease_id = 1000;
  nap.lease.task = "nap";
  exec.Start(std::move(nap));
  const auto pkg_unit = Unit(probe, ProbeUnit(kSum, 0, 5));
  const auto pkg_id = pkg_unit.lease.lease_id;
  exec.Start(pkg_unit);
  CHECK(exec.running() == 2);
  // The built-in unit holds the only slot: the package unit waits, no process is started.
  std::this_thread::sleep_for(100ms);
  CHECK(exec.process().Pids().empty());
  for (const auto& v : exec.Units())
    if (v.lease_id == pkg_id) CHECK_FALSE(v.started);
  std::vector<FinishedUnit> others;
  auto done = WaitFor(exec, pkg_id, &others);
  REQUIRE(done);
  CHECK(done->result.payload == "sum=10");
  REQUIRE(others.size() == 1);
  CHECK(others[0].result.payload == "napped");
  CHECK(exec.running() == 0);
}
