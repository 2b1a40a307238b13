// Task packages with real processes: a coordinator that accepts one publisher (--publishers DIR)
// and two workers with their own state directories, on 127.0.0.1 with OS-chosen ports. A signed
// native package (the test plugin) runs to a result checked against a plain loop; a command
// package wrapping Debian programs (coreutils' factor and sha256sum) runs over >= 100 inputs as a
// sweep and per input file, with outputs byte-identical to running the program by hand, also with
// two replicas that must agree; unsigned and untrusted packages are refused with the reason.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "process.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The publisher's key, written before the coordinator starts so --publishers names it.
struct Publisher {
  TempDir dir;
  fs::path root() const { return fs::path(dir.path()); }
  package::SecretKey key = package::GenerateKey();
  std::string keys_dir() const { return (root() / "publishers").string(); }
  Publisher() {
    fs::create_directories(keys_dir());
    REQUIRE(package::WriteKeyPair((root() / "publisher.key").string(), key).ok());
    fs::copy_file(root() / "publisher.key.pub", fs::path(keys_dir()) / "publisher.pub");
  }
};

Publisher& SharedPublisher() {
  static Publisher p;
  return p;
}

Cluster& SharedCluster() {
  static Cluster cluster(2, {"--publishers", SharedPublisher().keys_dir()}, 2);
  REQUIRE_MESSAGE(cluster.ok(), cluster.Logs());
  return cluster;
}

Client Connect() {
  ClientOptions o;
  o.request_timeout = 30s;
  auto c = Client::Connect(SharedCluster().client_endpoint(), o);
  REQUIRE(c.ok());
  return std::move(*c);
}

std::string WritePackage(package::Package pkg, const std::string& name, bool sign = true) {
  if (sign) pkg.Sign(SharedPublisher().key);
  std::string path = (SharedPublisher().root() / name).string();
  REQUIRE(package::WriteFileAtomic(path, pkg.Encode()).ok());
  return path;
}

package::Package NativePackage() {
  auto lib = ReadFile(SC_TEST_PLUGIN, 64 << 20);
  REQUIRE(lib.ok());
  package::Manifest m;
  m.name = "sumsq";
  m.version = "1.0";
  m.kind = package::Kind::kNative;
  m.arch = std::string(package::HostArch());
  m.entry = "sumsq.so";
  m.abi_version = package::HostTaskAbiVersion();
  m.resources.expected_seconds = 1;
  m.files.push_back(package::FileEntry{"sumsq.so", 0, {}, true});
  auto pkg = package::Package::Create(m, {*lib});
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  return std::move(pkg).value();
}

package::Manifest CommandManifest(const std::string& name, const std::string& program) {
  package::Manifest m;
  m.name = name;
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = program;
  m.command.required_programs = {program};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  m.resources.expected_seconds = 1;
  return m;
}

package::Package Create(const package::Manifest& m) {
  auto pkg = package::Package::Create(m, {});
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  return std::move(pkg).value();
}

JobResult RunToEnd(Client& client, const JobSpec& spec) {
  auto job = client.Submit(spec);
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());
  auto r = job->Wait(300s);
  REQUIRE_MESSAGE(r.ok(), (r.status().ToString() + "\n" + SharedCluster().Logs()));
  REQUIRE_MESSAGE(
      r->info.state == JobState::kDone,
      std::string(r->info.error + "\n" + r->info.waiting + "\n" + SharedCluster().Logs()));
  return std::move(*r);
}

std::string ByHand(std::vector<std::string> argv, const std::string& what) {
  auto [code, out] = RunCommand(std::move(argv), (SharedPublisher().root() / what).string());
  REQUIRE(code == 0);
  return out;
}

// A factor sweep over n = 1000..1119 (120 units).
package::Manifest FactorSweep() {
  package::Manifest m = CommandManifest("factor-sweep", "/usr/bin/factor");
  m.command.args = {"{n}"};
  m.command.split.mode = package::SplitMode::kSweep;
  package::SweepParam n;
  n.name = "n";
  n.from = 1000;
  n.to = 1119;
  m.command.split.sweep = {n};
  return m;
}

void CheckFactorOutputs(const JobResult& r) {
  REQUIRE(r.files.size() == 120);
  for (int i = 0; i < 120; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "unit-%06d/out.txt", i);
    CHECK(r.files[static_cast<std::size_t>(i)].first == name);
    CHECK(r.files[static_cast<std::size_t>(i)].second ==
          ByHand({"/usr/bin/factor", std::to_string(1000 + i)}, "factor"));
  }
}

}  // namespace

TEST_CASE("a signed native package runs on workers that never saw it, merged by the client") {
  Client client = Connect();
  const std::string path = WritePackage(NativePackage(), "sumsq.scpkg");
  JobSpec spec;
  spec.package = path;
  spec.params = {{"from", "3"}, {"to", "1500000"}};
  spec.units = 12;
  JobResult r = RunToEnd(client, spec);
  std::uint64_t expect = 0;
  for (std::uint64_t i = 3; i < 1500000; ++i) expect += i * i;
  CHECK(r.summary == std::to_string(expect));
  CHECK(r.json == "{\"sum\":" + std::to_string(expect) + "}");
  CHECK(r.info.units_total == 12);

  // The coordinator lists it with its signer; a second job is not uploaded again and can name it
  // by id.
  auto pkgs = client.Packages();
  REQUIRE(pkgs.ok());
  bool listed = false;
  for (const auto& p : *pkgs)
    if (p.name == "sumsq") {
      listed = true;
      CHECK(p.kind == "native");
      CHECK(p.signer == SharedPublisher().key.public_key.Hex());
      JobSpec again;
      again.package = p.id;
      again.params = {{"to", "1000"}};
      JobResult r2 = RunToEnd(client, again);
      std::uint64_t e2 = 0;
      for (std::uint64_t i = 0; i < 1000; ++i) e2 += i * i;
      CHECK(r2.summary == std::to_string(e2));
    }
  CHECK(listed);
}

TEST_CASE("a command package wraps factor over a 120-value sweep, byte-identical to by hand") {
  Client client = Connect();
  const std::string path = WritePackage(Create(FactorSweep()), "factor.scpkg");
  JobSpec spec;
  spec.package = path;
  JobResult r = RunToEnd(client, spec);
  CheckFactorOutputs(r);
  CHECK(r.summary.rfind("120 units, 120 files, ", 0) == 0);

  SUBCASE("with two replicas that must agree") {
    JobSpec twice = spec;
    twice.replication.replicas = 2;
    twice.replication.quorum = 2;
    JobResult r2 = RunToEnd(client, twice);
    CheckFactorOutputs(r2);
  }
  SUBCASE("through the CLI, written as a directory") {
    const std::string out = (SharedPublisher().root() / "factor-out").string();
    const auto [code, text] =
        RunCommand({SPARECYCLES_CLI_BIN, "submit", "--package", path, "-o", out, "--coordinator",
                    SharedCluster().client_endpoint(), "--no-progress"},
                   (SharedPublisher().root() / "cli-submit").string(), 300s);
    const std::string shown = text;  // a copy the assertion macros may capture
    const bool ok = code == 0;
    REQUIRE_MESSAGE(ok, shown);
    CHECK(shown.find("120 units, 120 files") != std::string::npos);
    for (int i : {0, 57, 119}) {
      char name[32];
      std::snprintf(name, sizeof(name), "/unit-%06d/out.txt", i);
      CHECK(ReadAll(out + name) == ByHand({"/usr/bin/factor", std::to_string(1000 + i)}, "f"));
    }
  }
}

TEST_CASE("a command package runs sha256sum once per input file, byte-identical to by hand") {
  Client client = Connect();
  package::Manifest m = CommandManifest("sha-files", "/usr/bin/sha256sum");
  m.command.args = {"{input_name}"};
  m.command.split.mode = package::SplitMode::kFiles;
  const std::string path = WritePackage(Create(m), "sha.scpkg");
  const fs::path inputs = SharedPublisher().root() / "inputs";
  fs::create_directories(inputs);
  std::vector<std::string> names;
  for (int i = 0; i < 110; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "in-%03d.txt", i);
    names.push_back(name);
    std::string data;
    for (int j = 0; j <= i; ++j) data += std::to_string(j * 7919 + i) + "\n";
    REQUIRE(WriteFileAtomic((inputs / name).string(), data).ok());
  }
  JobSpec spec;
  spec.package = path;
  spec.input_dir = inputs.string();
  spec.replication.replicas = 2;
  spec.replication.quorum = 2;
  JobResult r = RunToEnd(client, spec);
  REQUIRE(r.files.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i)
    CHECK(r.files[i].second ==
          ByHand({"/bin/sh", "-c", "cd " + inputs.string() + " && /usr/bin/sha256sum " + names[i]},
                 "sha"));
}

TEST_CASE("unsigned and untrusted packages are refused by the coordinator, reason to the caller") {
  Client client = Connect();
  package::Manifest m = FactorSweep();
  m.name = "refused-unsigned";
  const std::string unsigned_path = WritePackage(Create(m), "unsigned.scpkg", /*sign=*/false);
  JobSpec spec;
  spec.package = unsigned_path;
  auto a = client.Submit(spec);
  REQUIRE_FALSE(a.ok());
  CHECK_MESSAGE(a.status().message().find("unsigned") != std::string::npos, a.status().ToString());

  m.name = "refused-stranger";
  package::Package stranger = Create(m);
  const package::SecretKey other = package::GenerateKey();
  stranger.Sign(other);
  const std::string stranger_path = WritePackage(stranger, "stranger.scpkg", /*sign=*/false);
  spec.package = stranger_path;
  auto b = client.Submit(spec);
  REQUIRE_FALSE(b.ok());
  CHECK_MESSAGE(b.status().message().find("unknown signer") != std::string::npos,
                b.status().ToString());
  CHECK(b.status().message().find(other.public_key.Hex()) != std::string::npos);

  // The CLI shows the reason too, and neither is stored.
  auto [code, text] = RunCommand({SPARECYCLES_CLI_BIN, "submit", "--package", stranger_path,
                                  "--coordinator", SharedCluster().client_endpoint()},
                                 (SharedPublisher().root() / "cli-refused").string());
  CHECK(code != 0);
  CHECK(ReadAll((SharedPublisher().root() / "cli-refused.err").string()).find("unknown signer") !=
        std::string::npos);
  auto pkgs = client.Packages();
  REQUIRE(pkgs.ok());
  for (const auto& p : *pkgs) CHECK(p.name.rfind("refused-", 0) != 0);
}
