// Task packages under faults, with real processes on 127.0.0.1: a worker killed in the middle of
// fetching a package fetches the rest and finishes; a coordinator killed and restarted keeps every
// uploaded package; a package tampered with on the coordinator's disk, or signed by a key a
// worker does not trust, is refused by that worker with the reason shown in the job's status and
// none of its units runs there; a unit whose user code segfaults fails with that reason while the
// workers go on serving other units.
#include <doctest/doctest.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "process.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct Keys {
  TempDir dir;
  package::SecretKey key = package::GenerateKey();
  std::string publishers() const { return dir.path() + "/publishers"; }
  Keys() {
    fs::create_directories(publishers());
    REQUIRE(package::WriteKeyPair(dir.path() + "/publisher.key", key).ok());
    fs::copy_file(dir.path() + "/publisher.key.pub", publishers() + "/publisher.pub");
  }
  std::string Write(package::Package pkg, const std::string& name) {
    pkg.Sign(key);
    std::string path = dir.path() + "/" + name;
    REQUIRE(package::WriteFileAtomic(path, pkg.Encode()).ok());
    return path;
  }
};

// A command package of `files` sweep units (`/usr/bin/expr N + 1`), carrying `ballast` bytes.
package::Package CommandPackage(const std::string& name, int units, std::size_t ballast = 0) {
  package::Manifest m;
  m.name = name;
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/expr";
  m.command.required_programs = {"/usr/bin/expr"};
  m.command.args = {"{n}", "+", "1"};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  m.command.split.mode = package::SplitMode::kSweep;
  package::SweepParam n;
  n.name = "n";
  n.from = 0;
  n.to = units - 1;
  m.command.split.sweep = {n};
  m.resources.expected_seconds = 1;
  std::vector<std::string> contents;
  if (ballast > 0) {
    m.files.push_back(package::FileEntry{"ballast.bin", 0, {}, false});
    std::string data(ballast, '\0');
    std::uint64_t x = 88172645463325252ull;  // xorshift: bytes no transfer can shortcut
    for (std::size_t i = 0; i < ballast; i += 8) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::memcpy(data.data() + i, &x, std::min<std::size_t>(8, ballast - i));
    }
    contents.push_back(std::move(data));
  }
  auto pkg = package::Package::Create(m, std::move(contents));
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  return std::move(pkg).value();
}

void CheckExprOutputs(const JobResult& r, int units) {
  REQUIRE(r.files.size() == static_cast<std::size_t>(units));
  for (int i = 0; i < units; ++i)
    CHECK(r.files[static_cast<std::size_t>(i)].second == std::to_string(i + 1) + "\n");
}

Client Connect(Cluster& c) {
  ClientOptions o;
  o.request_timeout = 60s;
  auto client = Client::Connect(c.client_endpoint(), o);
  REQUIRE(client.ok());
  return std::move(*client);
}

JobResult WaitDone(Job& job, Cluster& c) {
  auto r = job.Wait(300s);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().ToString() + "\n" + c.Logs()));
  REQUIRE_MESSAGE(r->info.state == JobState::kDone,
                  std::string(r->info.error + "\n" + r->info.waiting + "\n" + c.Logs()));
  return std::move(*r);
}

// Polls the job's status until `pred` holds or the deadline passes.
template <class Pred>
JobInfo WaitFor(Client& client, std::uint64_t id, Pred pred, std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  JobInfo info;
  while (std::chrono::steady_clock::now() < until) {
    auto s = client.Status(id);
    REQUIRE(s.ok());
    info = *s;
    if (pred(info)) return info;
    std::this_thread::sleep_for(50ms);
  }
  return info;
}

std::uint64_t FileSize(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

TEST_CASE("a worker killed while it fetches a package fetches the rest after a restart") {
  Keys keys;
  Cluster c(0, {"--publishers", keys.publishers()});
  REQUIRE(c.ok());
  Client client = Connect(c);
  const package::Package pkg = CommandPackage("ballast", 4, 64u << 20);  // 64 chunks
  const std::string path = keys.Write(pkg, "ballast.scpkg");
  JobSpec spec;
  spec.package = path;
  auto job = client.Submit(spec);
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());

  Process& w = c.StartWorker("fetcher", 1);
  auto signed_pkg = package::Package::ReadFile(path);
  REQUIRE(signed_pkg.ok());
  const fs::path part =
      c.dir().path() + "/fetcher/packages/partial/" + ToHex(signed_pkg->Id()) + ".part";
  // Freeze the coordinator as soon as a few chunks arrived, so the kill lands mid-fetch.
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (FileSize(part) < (4u << 20) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  c.coordinator().Signal(SIGSTOP);
  const std::uint64_t held = FileSize(part);
  w.Signal(SIGKILL);
  w.Wait(10s);
  c.coordinator().Signal(SIGCONT);
  INFO("held at the kill: " << held);
  REQUIRE(held >= (4u << 20));
  REQUIRE(held < pkg.Encode().size());

  Process& again = c.StartWorker("fetcher", 1);  // the same state directory
  JobResult r = WaitDone(*job, c);
  CheckExprOutputs(r, 4);
  CHECK_MESSAGE(again.Stderr().find("resuming the fetch of package") != std::string::npos,
                again.Stderr());
}

TEST_CASE("a coordinator restart keeps every uploaded package") {
  Keys keys;
  TempDir data;
  Cluster c(1, {"--publishers", keys.publishers(), "--data", data.path()});
  REQUIRE(c.ok());
  const std::string a = keys.Write(CommandPackage("kept-a", 3), "a.scpkg");
  const std::string b = keys.Write(CommandPackage("kept-b", 5), "b.scpkg");
  {
    Client client = Connect(c);
    for (const auto& [path, n] : {std::pair{a, 3}, std::pair{b, 5}}) {
      JobSpec spec;
      spec.package = path;
      auto job = client.Submit(spec);
      REQUIRE(job.ok());
      CheckExprOutputs(WaitDone(*job, c), n);
    }
  }
  const std::string before = c.coordinator().Stderr();
  CHECK(before.find("stored package") != std::string::npos);
  c.coordinator().Signal(SIGKILL);
  c.coordinator().Wait(10s);
  REQUIRE(c.RestartCoordinator());
  Client client = Connect(c);
  auto listed = client.Packages();
  REQUIRE(listed.ok());
  std::set<std::string> names;
  for (const auto& p : *listed) names.insert(p.name);
  CHECK(names.contains("kept-a"));
  CHECK(names.contains("kept-b"));
  // A new job of a kept package needs no upload: the restarted coordinator stores nothing new.
  JobSpec spec;
  spec.package = b;
  auto job = client.Submit(spec);
  REQUIRE(job.ok());
  CheckExprOutputs(WaitDone(*job, c), 5);
  CHECK(c.coordinator().Stderr().find("stored package") == std::string::npos);
  CHECK(c.coordinator().Stderr().find("2 task packages in") != std::string::npos);
}

TEST_CASE("a worker refuses a tampered or untrusted package, the job says why, nothing runs") {
  Keys keys;
  TempDir data;
  Cluster c(0, {"--publishers", keys.publishers(), "--data", data.path()});
  REQUIRE(c.ok());
  Client client = Connect(c);

  SUBCASE("tampered on the coordinator's disk after it was accepted") {
    const std::string path = keys.Write(CommandPackage("tampered", 3, 4096), "t.scpkg");
    JobSpec spec;
    spec.package = path;
    auto job = client.Submit(spec);
    REQUIRE(job.ok());
    auto pkg = package::Package::ReadFile(path);
    REQUIRE(pkg.ok());
    const std::string stored = data.path() + "/packages/packages/" + ToHex(pkg->Id()) + ".scpkg";
    REQUIRE(fs::exists(stored));
    {
      std::fstream f(stored, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(stored) - 100));
      f.put('\x5a');
    }
    Process& w = c.StartWorker("careful", 1);
    const JobInfo info = WaitFor(client, job->id(), [](const JobInfo& i) {
      return i.waiting.find("refused") != std::string::npos;
    });
    CHECK_MESSAGE(info.waiting.find("hash mismatch") != std::string::npos, info.waiting);
    CHECK(info.units_done == 0);
    CHECK(w.Stderr().find("refused package") != std::string::npos);
    CHECK(client.Cancel(job->id()).ok());
  }
  SUBCASE("signed by a key the worker does not trust (--trust-only)") {
    const std::string path = keys.Write(CommandPackage("distrusted", 3), "d.scpkg");
    JobSpec spec;
    spec.package = path;
    auto job = client.Submit(spec);
    REQUIRE(job.ok());
    const std::string other = package::GenerateKey().public_key.Hex();
    Process& w = c.StartWorker("strict", 1, {"--trust-only", "--trust", other});
    const JobInfo info = WaitFor(client, job->id(), [](const JobInfo& i) {
      return i.waiting.find("refused") != std::string::npos;
    });
    CHECK_MESSAGE(info.waiting.find("unknown signer") != std::string::npos, info.waiting);
    CHECK(info.units_done == 0);
    CHECK(w.Stderr().find("unknown signer") != std::string::npos);
    // The owner sees it too (the status file is rewritten every second).
    std::string shown;
    for (int i = 0; i < 50 && shown.find("refused:") == std::string::npos; ++i) {
      std::this_thread::sleep_for(100ms);
      shown = RunCommand({SPARECYCLES_WORKER_BIN, "status", "--state-dir", c.dir() / "strict"},
                         c.dir() / "status")
                  .second;
    }
    CHECK_MESSAGE(shown.find("refused:     package") != std::string::npos, shown);
    CHECK(shown.find("unknown signer") != std::string::npos);
    // A worker that trusts the coordinator's publishers takes the units.
    c.StartWorker("trusting", 1);
    CheckExprOutputs(WaitDone(*job, c), 3);
  }
}

TEST_CASE("a unit whose user code segfaults fails with that reason; the workers keep serving") {
  Keys keys;
  Cluster c(2, {"--publishers", keys.publishers()});
  REQUIRE(c.ok());
  Client client = Connect(c);
  auto lib = ReadFile(SC_TEST_PLUGIN, 64 << 20);
  REQUIRE(lib.ok());
  package::Manifest m;
  m.name = "sumsq-crash";
  m.version = "1.0";
  m.kind = package::Kind::kNative;
  m.arch = std::string(package::HostArch());
  m.entry = "sumsq.so";
  m.abi_version = package::HostTaskAbiVersion();
  m.resources.expected_seconds = 1;
  m.files.push_back(package::FileEntry{"sumsq.so", 0, {}, true});
  auto pkg = package::Package::Create(m, {*lib});
  REQUIRE(pkg.ok());
  const std::string path = keys.Write(*pkg, "crash.scpkg");

  JobSpec crash;
  crash.package = path;
  crash.params = {{"from", "0"}, {"to", "80000"}, {"mode", "crash"}};
  crash.units = 8;
  crash.replication.max_errors = 2;
  auto job = client.Submit(crash);
  REQUIRE(job.ok());
  auto r = job->Wait(120s);
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kFailed);
  CHECK(r->info.units_done == 7);  // every unit but the crashing one
  REQUIRE(r->failures.size() == 1);
  CHECK(r->failures[0].unit == 0);
  CHECK_MESSAGE(r->failures[0].reason.find("SIGSEGV") != std::string::npos, r->failures[0].reason);

  // Both workers are still up and run the next job.
  CHECK(c.worker(0).running());
  CHECK(c.worker(1).running());
  JobSpec fine = crash;
  fine.params["mode"] = "ok";
  auto next = client.Submit(fine);
  REQUIRE(next.ok());
  JobResult ok = WaitDone(*next, c);
  std::uint64_t expect = 0;
  for (std::uint64_t i = 0; i < 80000; ++i) expect += i * i;
  CHECK(ok.summary == std::to_string(expect));
}
