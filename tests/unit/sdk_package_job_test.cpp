// The client's side of package jobs (sdk/src/package_job.hpp): verifying and loading a package
// for the submitter, cutting native and command jobs into unit bytes, merging unit results, and
// writing a command job's outputs without leaving the output directory. Plus Client::Local with an
// in-process task run by the real scheduler.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "package_job.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/sdk/client.hpp"
#include "sparecycles/tasks/bytes.hpp"

using namespace sparecycles;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "sc-sdkpkg-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

package::Package NativePackage(const std::string& arch = std::string(package::HostArch())) {
  auto lib = ReadFile(SC_TEST_PLUGIN, 64 << 20);
  REQUIRE(lib.ok());
  package::Manifest m;
  m.name = "sumsq";
  m.version = "1.0";
  m.kind = package::Kind::kNative;
  m.arch = arch;
  m.entry = "lib/sumsq.so";
  m.abi_version = package::HostTaskAbiVersion();
  m.files.push_back(package::FileEntry{"lib/sumsq.so", 0, {}, true});
  auto pkg = package::Package::Create(m, {*lib});
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  return std::move(pkg).value();
}

package::Manifest CommandManifest() {
  package::Manifest m;
  m.name = "echoer";
  m.version = "2";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/printf";
  m.command.required_programs = {"/usr/bin/printf"};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  return m;
}

package::Package CommandPackage(const package::Manifest& m) {
  auto pkg = package::Package::Create(m, {});
  REQUIRE_MESSAGE(pkg.ok(), pkg.status().ToString());
  return std::move(pkg).value();
}

std::shared_ptr<const sdk::LoadedPackage> Load(package::Package p) {
  auto l = sdk::LoadedPackage::FromPackage(std::move(p));
  REQUIRE_MESSAGE(l.ok(), l.status().ToString());
  return *l;
}

std::vector<std::string> Units(const sdk::CutJob& cut) {
  auto units = package::DecodeList(cut.input, package::kMaxJobUnits);
  REQUIRE(units.ok());
  REQUIRE(units->size() == cut.units);
  return *units;
}

}  // namespace

TEST_CASE("a native package is cut by its own Split and merged by its own Merge") {
  auto pkg = Load(NativePackage());
  REQUIRE(pkg->task() != nullptr);
  CHECK(pkg->task()->Name() == "sumsq");
  CHECK(pkg->task_name() == "pkg:" + ToHex(Blake2b256(pkg->bytes())));
  CHECK(package::ParsePackageTaskName(pkg->task_name()) == pkg->id());

  sdk::CutRequest req;
  req.params = {{"from", "10"}, {"to", "100000"}};
  req.units = 7;
  auto cut = sdk::Cut(*pkg, req);
  REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
  const auto units = Units(*cut);
  CHECK(units.size() == 7);
  // What a worker would do with each unit, then the client's merge.
  std::vector<std::string> results;
  for (const auto& u : units) {
    tasks::NullContext ctx;
    auto r = pkg->task()->Execute(u, ctx);
    REQUIRE(r.ok());
    results.push_back(pkg->task()->Canonicalize(*r));
  }
  auto merged = sdk::Merge(*pkg, req.params, "", package::EncodeList(results));
  REQUIRE_MESSAGE(merged.ok(), merged.status().ToString());
  std::uint64_t expect = 0;
  for (std::uint64_t i = 10; i < 100000; ++i) expect += i * i;
  CHECK(merged->summary == std::to_string(expect));
  CHECK(merged->json == "{\"sum\":" + std::to_string(expect) + "}");
  CHECK(merged->media_type == "application/octet-stream");
  CHECK(merged->files.empty());

  // A result list that does not decode is an error, not a crash.
  CHECK_FALSE(sdk::Merge(*pkg, req.params, "", "\x05").ok());
}

TEST_CASE("a native job's unit count follows the plan, the unit time and the task's speed") {
  tasks::JobPlan plan{1e6, 1000, false};
  CHECK(sdk::NativeUnitCount(plan, 1e5, 0, 0) == 10);                       // 1 s units
  CHECK(sdk::NativeUnitCount(plan, 1e5, 0, 2.5) == 4);                      // ceil(1e6 / 2.5e5)
  CHECK(sdk::NativeUnitCount(plan, 1e5, 0, 1e-6) == 1000);                  // clamped to max_units
  CHECK(sdk::NativeUnitCount(plan, 1e9, 0, 1) == 1);                        // at least one
  CHECK(sdk::NativeUnitCount(plan, 1e5, 17, 0) == 17);                      // asked for
  CHECK(sdk::NativeUnitCount(tasks::JobPlan{5, 12, true}, 1, 0, 0) == 12);  // fixed units
  CHECK(sdk::NativeUnitCount(tasks::JobPlan{0, 0, false}, 1, 0, 0) == 1);

  // Through the plugin: 100000 numbers at its default 1e8 per second make one 1 s unit, or ten
  // 0.1 ms units.
  auto pkg = Load(NativePackage());
  sdk::CutRequest req;
  req.params = {{"to", "100000"}};
  auto one = sdk::Cut(*pkg, req);
  REQUIRE(one.ok());
  CHECK(one->units == 1);
  req.unit_seconds = 1e-4;
  auto ten = sdk::Cut(*pkg, req);
  REQUIRE(ten.ok());
  CHECK(ten->units == 10);
}

TEST_CASE("bad parameters and bad packages are refused before anything is sent") {
  auto pkg = Load(NativePackage());
  sdk::CutRequest req;
  req.params = {{"to", "100"}, {"colour", "red"}};
  auto bad = sdk::Cut(*pkg, req);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("no parameter 'colour'") != std::string::npos);
  req.params = {{"to", "-5"}};
  CHECK_FALSE(sdk::Cut(*pkg, req).ok());  // the task's own Plan refuses it

  SUBCASE("a native package for another architecture cannot be cut here") {
    const std::string other = package::HostArch() == "aarch64" ? "x86_64" : "aarch64";
    auto l = sdk::LoadedPackage::FromPackage(NativePackage(other));
    REQUIRE_FALSE(l.ok());
    CHECK(l.status().message().find("unsupported platform") != std::string::npos);
  }
  SUBCASE("a signature that does not match is refused; a valid one or none is fine") {
    package::Package p = NativePackage();
    p.Sign(package::GenerateKey());
    CHECK(sdk::LoadedPackage::FromPackage(p).ok());
    std::string bytes = p.Encode();
    const std::size_t manifest_len = p.manifest_bytes().size();
    bytes[8 + 4 + 4 + manifest_len + 1 + 32 + 5] ^= 0x40;  // inside the signature
    auto tampered = package::Package::Decode(bytes);
    REQUIRE(tampered.ok());
    auto l = sdk::LoadedPackage::FromPackage(*tampered);
    REQUIRE_FALSE(l.ok());
    CHECK(l.status().message().find("bad signature") != std::string::npos);
  }
  SUBCASE("a file that does not decode is named in the error") {
    TempDir d;
    const std::string path = d.path + "/broken.scpkg";
    REQUIRE(WriteFileAtomic(path, "not a package").ok());
    auto l = sdk::LoadedPackage::Open(path);
    REQUIRE_FALSE(l.ok());
    CHECK(l.status().message().find(path) != std::string::npos);
  }
}

TEST_CASE("a command package's sweep, lines and files become unit bytes") {
  SUBCASE("sweep: one unit per element of the product, first parameter slowest") {
    package::Manifest m = CommandManifest();
    m.command.args = {"%s-%s\\n", "{a}", "{b}"};
    m.command.split.mode = package::SplitMode::kSweep;
    package::SweepParam a;
    a.name = "a";
    a.from = 1;
    a.to = 25;
    package::SweepParam b;
    b.name = "b";
    b.is_range = false;
    b.values = {"x", "y", "z", "w"};
    m.command.split.sweep = {a, b};
    auto pkg = Load(CommandPackage(m));
    CHECK(pkg->task() == nullptr);
    auto cut = sdk::Cut(*pkg, {});
    REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
    const auto units = Units(*cut);
    REQUIRE(units.size() == 100);
    for (std::size_t i = 0; i < units.size(); ++i) {
      auto u = package::DecodeCommandUnit(units[i]);
      REQUIRE(u.ok());
      CHECK(u->index == i);
      CHECK(u->values.at("a") == std::to_string(1 + i / 4));
      CHECK(u->values.at("b") == b.values[i % 4]);
    }
    sdk::CutRequest with_params;
    with_params.params = {{"a", "3"}};
    auto refused = sdk::Cut(*pkg, with_params);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("takes no parameters") != std::string::npos);
  }
  SUBCASE("lines: N lines of the input per unit; no input is an error") {
    package::Manifest m = CommandManifest();
    m.command.args = {"%s", "{input}"};
    m.command.split.mode = package::SplitMode::kLines;
    m.command.split.lines_per_unit = 2;
    auto pkg = Load(CommandPackage(m));
    sdk::CutRequest req;
    req.input = "one\ntwo\nthree\nfour\nfive";
    auto cut = sdk::Cut(*pkg, req);
    REQUIRE(cut.ok());
    const auto units = Units(*cut);
    REQUIRE(units.size() == 3);
    auto last = package::DecodeCommandUnit(units[2]);
    REQUIRE(last.ok());
    CHECK(last->input == "five");
    auto none = sdk::Cut(*pkg, {});
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().message().find("give the input file") != std::string::npos);

    // Units that together exceed a job's input limit are refused with the sizes.
    m.command.split.lines_per_unit = 1;
    auto one_line = Load(CommandPackage(m));
    req.input = std::string(33u << 20, 'a') + "\n" + std::string(33u << 20, 'b') + "\n";
    auto big = sdk::Cut(*one_line, req);
    REQUIRE_FALSE(big.ok());
    CHECK(big.status().code() == StatusCode::kResourceExhausted);
    CHECK_MESSAGE(big.status().message().find("at most 67108864") != std::string::npos,
                  big.status().message());
  }
  SUBCASE("files: one unit per file of the input directory, in name order") {
    package::Manifest m = CommandManifest();
    m.command.args = {"%s", "{input_name}"};
    m.command.split.mode = package::SplitMode::kFiles;
    auto pkg = Load(CommandPackage(m));
    TempDir d;
    for (int i = 0; i < 5; ++i)
      REQUIRE(WriteFileAtomic(d.path + "/in-" + std::to_string(4 - i), "data " + std::to_string(i))
                  .ok());
    sdk::CutRequest req;
    req.input_dir = d.path;
    auto cut = sdk::Cut(*pkg, req);
    REQUIRE(cut.ok());
    const auto units = Units(*cut);
    REQUIRE(units.size() == 5);
    auto first = package::DecodeCommandUnit(units[0]);
    REQUIRE(first.ok());
    CHECK(first->input_name == "in-0");
    CHECK(first->input == "data 4");
    CHECK_FALSE(sdk::Cut(*pkg, {}).ok());
  }
  SUBCASE("none: one unit") {
    package::Manifest m = CommandManifest();
    m.command.args = {"hello"};
    auto pkg = Load(CommandPackage(m));
    auto cut = sdk::Cut(*pkg, {});
    REQUIRE(cut.ok());
    CHECK(cut->units == 1);
  }
}

TEST_CASE("a command job's result becomes unit-NNNNNN/NAME files, written only inside the dir") {
  package::Manifest m = CommandManifest();
  m.command.args = {"x"};
  m.command.outputs = {"out.txt", "sub/extra.bin"};
  auto pkg = Load(CommandPackage(m));
  std::vector<std::string> results;
  std::uint64_t bytes = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string a = "result " + std::to_string(i) + "\n", b(static_cast<std::size_t>(i), 'z');
    bytes += a.size() + b.size();
    results.push_back(package::EncodeOutputs({{"out.txt", a}, {"sub/extra.bin", b}}));
  }
  auto merged = sdk::Merge(*pkg, {}, "", package::EncodeList(results));
  REQUIRE_MESSAGE(merged.ok(), merged.status().ToString());
  REQUIRE(merged->files.size() == 6);
  CHECK(merged->files[0].first == "unit-000000/out.txt");
  CHECK(merged->files[5].first == "unit-000002/sub/extra.bin");
  CHECK(merged->files[2].second == "result 1\n");
  CHECK(merged->summary == "3 units, 6 files, " + std::to_string(bytes) + " bytes");
  CHECK(merged->json == "{\"units\":3,\"files\":6}");

  TempDir d;
  const std::string out = d.path + "/out";
  REQUIRE(sdk::WriteFiles(merged->files, out).ok());
  auto back = ReadFile(out + "/unit-000001/out.txt", 1024);
  REQUIRE(back.ok());
  CHECK(*back == "result 1\n");
  CHECK(fs::file_size(out + "/unit-000002/sub/extra.bin") == 2);

  // Through the public type too.
  JobResult jr;
  jr.files = merged->files;
  CHECK(jr.WriteFiles(d.path + "/again").ok());
  CHECK(fs::exists(d.path + "/again/unit-000000/out.txt"));

  for (const std::string bad : {"../escape", "/etc/passwd", "unit-000000/../../x", "a//b", ""}) {
    JobResult evil;
    evil.files = {{bad, "nope"}};
    CHECK_MESSAGE(!evil.WriteFiles(d.path + "/evil").ok(), bad);
  }
  CHECK_FALSE(fs::exists(d.path + "/escape"));
  // A link planted inside the directory is not followed.
  fs::create_directories(d.path + "/linked");
  fs::create_directory_symlink(d.path + "/elsewhere", d.path + "/linked/unit-000000");
  fs::create_directories(d.path + "/elsewhere");
  auto through = sdk::WriteFiles({{"unit-000000/out.txt", "x"}}, d.path + "/linked");
  REQUIRE_FALSE(through.ok());
  CHECK(through.message().find("symbolic link") != std::string::npos);
  CHECK_FALSE(fs::exists(d.path + "/elsewhere/out.txt"));
}

TEST_CASE("without its package a result stays the raw list and says which package merges it") {
  const std::string task = "pkg:" + std::string(64, 'a');
  auto raw = sdk::Unmerged(task, package::EncodeList({"x", "y", "z"}));
  CHECK(raw.summary.find("3 unit results") != std::string::npos);
  CHECK(raw.summary.find(std::string(64, 'a')) != std::string::npos);
  CHECK(raw.media_type == sdk::kUnitResultsMediaType);
  CHECK(raw.bytes == package::EncodeList({"x", "y", "z"}));
  CHECK(sdk::IsPackageId(std::string(64, 'F')));
  CHECK_FALSE(sdk::IsPackageId(std::string(63, 'a')));
  CHECK_FALSE(sdk::IsPackageId("mytask.scpkg"));
}

namespace {

// A task of the test itself: counts how many of [0, n) are multiples of 7.
class SevensTask final : public tasks::Task {
 public:
  mutable std::atomic<int> executed{0};
  std::string_view Name() const override { return "sevens"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return "multiples of 7 below n (test)"; }
  std::vector<tasks::ParamSpec> Params() const override { return {{"n", "", "the bound"}}; }
  std::string_view WorkName() const override { return "numbers"; }
  Result<tasks::JobPlan> Plan(const tasks::JobParams& p) const override {
    auto n = p.Int("n", -1);
    if (!n.ok() || *n < 1) return InvalidArgument("sevens needs n >= 1");
    return tasks::JobPlan{static_cast<double>(*n), 8, true};
  }
  Result<std::vector<std::string>> Split(const tasks::JobParams& p,
                                         std::uint64_t units) const override {
    const auto n = static_cast<std::uint64_t>(*p.Int("n", 1));
    std::vector<std::string> out;
    for (std::uint64_t i = 0; i < units; ++i)
      out.push_back(tasks::ByteWriter()
                        .Put<std::uint64_t>(n * i / units)
                        .Put<std::uint64_t>(n * (i + 1) / units)
                        .bytes());
    return out;
  }
  Result<std::string> Execute(std::string_view unit, tasks::UnitContext&) const override {
    tasks::ByteReader r(unit);
    const auto lo = r.Get<std::uint64_t>(), hi = r.Get<std::uint64_t>();
    SC_RETURN_IF_ERROR(r.Finish());
    ++executed;
    std::uint64_t c = 0;
    for (std::uint64_t i = lo; i < hi; ++i) c += i % 7 == 0;
    return tasks::ByteWriter().Put<std::uint64_t>(c).bytes();
  }
  Result<std::string> Merge(const tasks::JobParams&,
                            std::span<const std::string> results) const override {
    std::uint64_t c = 0;
    for (const auto& s : results) {
      tasks::ByteReader r(s);
      c += r.Get<std::uint64_t>();
      SC_RETURN_IF_ERROR(r.Finish());
    }
    return tasks::ByteWriter().Put<std::uint64_t>(c).bytes();
  }
  std::string Summarize(std::string_view merged) const override {
    tasks::ByteReader r(merged);
    return std::to_string(r.Get<std::uint64_t>());
  }
  std::string ToJson(std::string_view merged) const override { return Summarize(merged); }
  double Calibrate(double) const override { return 1e8; }
  double DefaultWorkPerSecond() const override { return 1e8; }
};

}  // namespace

TEST_CASE("Client::Local runs an in-process task against the real scheduler") {
  auto task = std::make_shared<SevensTask>();
  LocalOptions lo;
  lo.cores = 2;
  lo.in_process_tasks = {task};
  auto client = Client::Local(lo);
  REQUIRE_MESSAGE(client.ok(), client.status().ToString());
  auto job = client->Submit(JobSpec("sevens").Set("n", "100000"));
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());
  auto r = job->Wait(std::chrono::seconds(60));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->summary == std::to_string((100000 + 6) / 7));
  CHECK(r->info.units_total == 8);
  CHECK(task->executed.load() >= 8);
  // The built-ins are still there beside it.
  auto primes = client->Submit(JobSpec("primes").Set("to", "1000"));
  REQUIRE(primes.ok());
  auto pr = primes->Wait(std::chrono::seconds(60));
  REQUIRE(pr.ok());
  CHECK(pr->summary == "168");
  // Naming a package by an id this client never read says why it needs the file.
  JobSpec by_id;
  by_id.package = std::string(64, 'c');
  auto refused = client->Submit(by_id);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("name its .scpkg file") != std::string::npos);
}

TEST_CASE("Client::Local runs unsigned native and command packages with no keys") {
  TempDir d;
  const std::string native_path = d.path + "/sumsq.scpkg";
  REQUIRE(WriteFileAtomic(native_path, NativePackage().Encode()).ok());
  package::Manifest m = CommandManifest();
  m.command.args = {"n=%s\\n", "{n}"};
  m.command.split.mode = package::SplitMode::kSweep;
  package::SweepParam n;
  n.name = "n";
  n.from = 1;
  n.to = 30;
  m.command.split.sweep = {n};
  const std::string command_path = d.path + "/echoer.scpkg";
  REQUIRE(WriteFileAtomic(command_path, CommandPackage(m).Encode()).ok());

  LocalOptions lo;
  lo.cores = 2;
  lo.tasks = {"@packages-only"};
  auto client = Client::Local(lo);
  REQUIRE_MESSAGE(client.ok(), client.status().ToString());

  JobSpec native;
  native.package = native_path;
  native.params = {{"to", "200000"}};
  native.units = 5;
  auto job = client->Submit(native);
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());
  auto r = job->Wait(std::chrono::seconds(120));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  REQUIRE_MESSAGE(r->info.state == JobState::kDone, r->info.error);
  std::uint64_t expect = 0;
  for (std::uint64_t i = 0; i < 200000; ++i) expect += i * i;
  CHECK(r->summary == std::to_string(expect));
  CHECK(r->info.units_total == 5);

  JobSpec command;
  command.package = command_path;
  auto cjob = client->Submit(command);
  REQUIRE_MESSAGE(cjob.ok(), cjob.status().ToString());
  auto cr = cjob->Wait(std::chrono::seconds(120));
  REQUIRE_MESSAGE(cr.ok(), cr.status().ToString());
  REQUIRE_MESSAGE(cr->info.state == JobState::kDone, cr->info.error);
  REQUIRE(cr->files.size() == 30);
  for (std::size_t i = 0; i < 30; ++i)
    CHECK(cr->files[i].second == "n=" + std::to_string(i + 1) + "\n");

  // The coordinator holds both, unsigned (only the local mode accepts that).
  auto pkgs = client->Packages();
  REQUIRE(pkgs.ok());
  CHECK(pkgs->size() == 2);
  for (const auto& p : *pkgs) CHECK(p.signer.empty());

  // Another Client attaches with the package and merges; without it the result stays raw.
  auto attached = client->Attach(job->id(), native_path);
  REQUIRE(attached.ok());
  auto again = attached->Wait(std::chrono::seconds(30));
  REQUIRE(again.ok());
  CHECK(again->summary == std::to_string(expect));
  auto other = Client::Connect(client->endpoint());
  REQUIRE(other.ok());
  auto raw_job = other->Attach(job->id());
  REQUIRE(raw_job.ok());
  auto raw = raw_job->Wait(std::chrono::seconds(30));
  REQUIRE(raw.ok());
  CHECK(raw->media_type == sdk::kUnitResultsMediaType);
  CHECK(raw->summary.find("not merged") != std::string::npos);
  CHECK(package::DecodeList(raw->bytes, 100)->size() == 5);
  // A package id this client read before names it.
  JobSpec by_id;
  by_id.package = ToHex(Blake2b256(ReadFile(native_path, 64 << 20).value()));
  by_id.params = {{"to", "10"}};
  auto id_job = client->Submit(by_id);
  REQUIRE_MESSAGE(id_job.ok(), id_job.status().ToString());
  auto id_result = id_job->Wait(std::chrono::seconds(60));
  REQUIRE(id_result.ok());
  CHECK(id_result->summary == "285");
}
