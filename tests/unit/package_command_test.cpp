// Command packages: declarative splitting (lines, files, sweep), bounded unit and output
// encodings, the canonicalizer, and running Debian programs once per unit with outputs checked
// against an independent computation; failures carry the exit status and the tail of stderr.
#include <doctest/doctest.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "sparecycles/package/command.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::package;
namespace fs = std::filesystem;

namespace {

using sparecycles::testing::TempDir;

Manifest Command(const std::string& entry, std::vector<std::string> args, SplitMode mode) {
  Manifest m;
  m.name = "cmd";
  m.version = "1";
  m.kind = Kind::kCommand;
  m.arch = "any";
  m.entry = entry;
  m.resources.expected_seconds = 1;
  m.command.required_programs = {entry};
  m.command.args = std::move(args);
  m.command.split.mode = mode;
  if (mode == SplitMode::kLines) m.command.split.lines_per_unit = 1;
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  return m;
}

SweepParam Range(std::string name, std::int64_t from, std::int64_t to, std::int64_t step = 1) {
  SweepParam p;
  p.name = std::move(name);
  p.from = from;
  p.to = to;
  p.step = step;
  return p;
}

SweepParam List(std::string name, std::vector<std::string> values) {
  SweepParam p;
  p.name = std::move(name);
  p.is_range = false;
  p.values = std::move(values);
  return p;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return ToHex(std::string_view(reinterpret_cast<const char*>(h), sizeof(h)));
}

RunOptions Options(const TempDir& t) {
  RunOptions o;
  o.package_dir = (fs::path(t.path()) / "pkg").string();
  o.work_dir = fs::path(t.path()).string();
  fs::create_directories(o.package_dir);
  return o;
}

}  // namespace

TEST_CASE("a line split cuts after every N-th newline and keeps a last line without one") {
  Manifest m = Command("/usr/bin/sha256sum", {"{input_name}"}, SplitMode::kLines);
  m.command.split.lines_per_unit = 3;
  REQUIRE(ValidateManifest(m).ok());
  auto units = SplitLines(m, "1\n2\n3\n4\n5\n6\n7\n8\n9\nten");
  REQUIRE(units.ok());
  REQUIRE(units->size() == 4);
  CHECK((*units)[0].input == "1\n2\n3\n");
  CHECK((*units)[3].input == "ten");
  CHECK((*units)[3].index == 3);
  CHECK_FALSE(SplitLines(m, "").ok());
  CHECK_FALSE(SplitSweep(m).ok());  // the wrong split for this package
}

TEST_CASE("a sweep is the product of its parameters, the first varying slowest") {
  Manifest m = Command("/usr/bin/printf", {"{a}-{b}"}, SplitMode::kSweep);
  m.command.split.sweep = {Range("a", -2, 4, 3), List("b", {"x", "y"})};
  REQUIRE(ValidateManifest(m).ok());
  auto units = SplitSweep(m);
  REQUIRE(units.ok());
  REQUIRE(units->size() == 6);  // a in {-2, 1, 4} x b in {x, y}
  CHECK((*units)[0].values == std::map<std::string, std::string>{{"a", "-2"}, {"b", "x"}});
  CHECK((*units)[1].values.at("b") == "y");
  CHECK((*units)[2].values.at("a") == "1");
  CHECK((*units)[5].values == std::map<std::string, std::string>{{"a", "4"}, {"b", "y"}});
}

TEST_CASE("a file split makes one unit per regular file in name order and refuses links") {
  TempDir t;
  fs::create_directories(fs::path(t.path()) / "in");
  std::ofstream(fs::path(t.path()) / "in/b.txt") << "bee";
  std::ofstream(fs::path(t.path()) / "in/a.txt") << "ay";
  fs::create_directories(fs::path(t.path()) / "in/subdir");
  Manifest m = Command("/usr/bin/sha256sum", {"{input_name}"}, SplitMode::kFiles);
  auto units = SplitFiles(m, (fs::path(t.path()) / "in").string());
  REQUIRE_MESSAGE(units.ok(), units.status().ToString());
  REQUIRE(units->size() == 2);
  CHECK((*units)[0].input_name == "a.txt");
  CHECK((*units)[1].input == "bee");
  CHECK_FALSE(SplitFiles(m, (fs::path(t.path()) / "in").string(), 3).ok());  // over the byte limit
  fs::create_symlink("/etc/passwd", fs::path(t.path()) / "in/c.txt");
  CHECK_FALSE(SplitFiles(m, (fs::path(t.path()) / "in").string()).ok());
}

TEST_CASE("unit and output bytes round-trip and malformed ones are refused") {
  CommandUnit u;
  u.index = 42;
  u.values = {{"seed", "7"}};
  u.has_input = true;
  u.input_name = "input";
  u.input = "line\n";
  const std::string bytes = EncodeCommandUnit(u);
  auto back = DecodeCommandUnit(bytes);
  REQUIRE(back.ok());
  CHECK(*back == u);
  for (std::size_t n = 0; n < bytes.size(); ++n)
    CHECK_FALSE(DecodeCommandUnit(bytes.substr(0, n)).ok());
  CommandUnit evil = u;
  evil.input_name = "../../etc/cron.d/x";
  CHECK_FALSE(DecodeCommandUnit(EncodeCommandUnit(evil)).ok());

  const std::string out = EncodeOutputs({{"b", "2"}, {"a", "1"}});
  auto files = DecodeOutputs(out);
  REQUIRE(files.ok());
  CHECK(*files == OutputFiles{{"a", "1"}, {"b", "2"}});  // sorted by name
  for (std::size_t n = 0; n < out.size(); ++n) CHECK_FALSE(DecodeOutputs(out.substr(0, n)).ok());
}

TEST_CASE("the canonicalizer drops matching lines and rounds decimal fractions only") {
  CHECK(GlobMatch("# time *", "# time 12.5 s"));
  CHECK(GlobMatch("*", ""));
  CHECK(GlobMatch("a?c", "abc"));
  CHECK_FALSE(GlobMatch("a?c", "abbc"));
  CHECK_FALSE(GlobMatch("time", "# time"));                                     // whole line
  CHECK(GlobMatch(std::string(200, '*') + "x", std::string(5000, 'a') + "x"));  // no blow-up
  Canonicalizer c;
  c.drop_lines = {"# elapsed *", "host=*"};
  c.round_digits = 4;
  CHECK(
      CanonicalizeOutput(c, "energy -1.234567\n# elapsed 3.2 s\nhost=a\nsteps 1000 v1.25 3e-7\n") ==
      "energy -1.235\nsteps 1000 v1.25 3e-07\n");
  const OutputFiles run1 = {{"out.txt", "E = 0.333333333\n# elapsed 1.0 s\n"}};
  const OutputFiles run2 = {{"out.txt", "E = 0.333333334\n# elapsed 9.7 s\n"}};
  const OutputFiles wrong = {{"out.txt", "E = 0.3334\n# elapsed 1.0 s\n"}};
  CHECK(CanonicalOutputsHash(c, run1) == CanonicalOutputsHash(c, run2));
  CHECK(CanonicalOutputsHash(c, run1) != CanonicalOutputsHash(c, wrong));
  CHECK(CanonicalOutputsHash(Canonicalizer{}, run1) != CanonicalOutputsHash(Canonicalizer{}, run2));
  // The output's name is hashed too.
  CHECK(CanonicalOutputsHash(c, run1) != CanonicalOutputsHash(c, {{"other.txt", run1[0].second}}));
}

TEST_CASE("sha256sum over 120 line units gives exactly what the hash of each line is") {
  TempDir t;
  Manifest m = Command("/usr/bin/sha256sum", {"{input_name}"}, SplitMode::kLines);
  REQUIRE(ValidateManifest(m).ok());
  std::string input;
  for (int i = 0; i < 120; ++i) input += "ligand-" + std::to_string(i * 7919) + "\n";
  auto units = SplitLines(m, input);
  REQUIRE(units.ok());
  REQUIRE(units->size() == 120);
  const RunOptions o = Options(t);
  for (const auto& u : *units) {
    auto run = RunCommandUnit(m, u, o);
    REQUIRE_MESSAGE(run.ok(), run.status().ToString());
    REQUIRE(run->outputs.size() == 1);
    CHECK(run->outputs[0].second == Sha256Hex(u.input) + "  input\n");
    CHECK(run->canonical_hash == CanonicalOutputsHash({}, run->outputs));
    CHECK(DecodeOutputs(run->result)->at(0).second == run->outputs[0].second);
  }
  // Each unit's directory is removed afterwards.
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(fs::path(t.path())))
    left += e.path().filename().string().rfind("unit-", 0) == 0;
  CHECK(left == 0);
}

TEST_CASE("a parameter sweep of 100 units runs printf with each combination") {
  TempDir t;
  Manifest m = Command("/usr/bin/printf", {"%s,%s\\n", "{a}", "{b}"}, SplitMode::kSweep);
  m.command.split.sweep = {Range("a", 1, 20),
                           List("b", {"alpha", "beta", "gamma", "delta", "eps"})};
  REQUIRE(ValidateManifest(m).ok());
  auto units = SplitSweep(m);
  REQUIRE(units.ok());
  REQUIRE(units->size() == 100);
  const RunOptions o = Options(t);
  const char* b[] = {"alpha", "beta", "gamma", "delta", "eps"};
  for (const auto& u : *units) {
    auto run = RunCommandUnit(m, u, o);
    REQUIRE_MESSAGE(run.ok(), run.status().ToString());
    CHECK(run->outputs[0].second == std::to_string(u.index / 5 + 1) + "," + b[u.index % 5] + "\n");
  }
}

TEST_CASE("a non-zero exit fails the unit with its status and the tail of stderr") {
  TempDir t;
  Manifest m =
      Command("/bin/sh", {"-c", "echo starting; echo 'docking failed: bad ligand' >&2; exit 3"},
              SplitMode::kNone);
  auto run = RunCommandUnit(m, CommandUnit{}, Options(t));
  REQUIRE_FALSE(run.ok());
  CHECK(run.status().message().find("exited with status 3") != std::string::npos);
  CHECK(run.status().message().find("docking failed: bad ligand") != std::string::npos);
  Manifest killed = Command("/bin/sh", {"-c", "kill -SEGV $$"}, SplitMode::kNone);
  auto segv = RunCommandUnit(killed, CommandUnit{}, Options(t));
  REQUIRE_FALSE(segv.ok());
  CHECK(segv.status().message().find("killed by signal 11") != std::string::npos);
}

TEST_CASE("missing outputs, linked outputs and missing programs fail the unit with the reason") {
  TempDir t;
  Manifest m = Command("/bin/sh", {"-c", "echo hi"}, SplitMode::kNone);
  m.command.outputs = {"out.txt", "result.dat"};
  auto missing = RunCommandUnit(m, CommandUnit{}, Options(t));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("did not write its declared output 'result.dat'") !=
        std::string::npos);

  Manifest link = Command("/bin/sh", {"-c", "ln -s /etc/passwd result.dat"}, SplitMode::kNone);
  link.command.outputs = {"out.txt", "result.dat"};
  auto linked = RunCommandUnit(link, CommandUnit{}, Options(t));
  REQUIRE_FALSE(linked.ok());
  CHECK(linked.status().message().find("symbolic link") != std::string::npos);

  Manifest absent = Command("/usr/bin/definitely-not-installed-sc", {}, SplitMode::kNone);
  auto none = RunCommandUnit(absent, CommandUnit{}, Options(t));
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == StatusCode::kFailedPrecondition);
  CHECK(none.status().message().find("missing on this peer") != std::string::npos);
}

TEST_CASE("a program that runs too long is killed with its children, and a cancel stops it") {
  TempDir t;
  Manifest m = Command("/bin/sh", {"-c", "sleep 30 & sleep 30"}, SplitMode::kNone);
  RunOptions o = Options(t);
  o.timeout_seconds = 0.3;
  const auto start = std::chrono::steady_clock::now();
  auto run = RunCommandUnit(m, CommandUnit{}, o);
  REQUIRE_FALSE(run.ok());
  CHECK(run.status().code() == StatusCode::kDeadlineExceeded);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  RunOptions c = Options(t);
  c.stop = [] { return true; };
  CHECK(RunCommandUnit(m, CommandUnit{}, c).status().code() == StatusCode::kCancelled);
}

TEST_CASE("progress comes from the progress file when the program writes one") {
  TempDir t;
  Manifest m =
      Command("/bin/sh", {"-c", "echo 0.25 > progress; sleep 0.6; echo done"}, SplitMode::kNone);
  m.command.progress_file = "progress";
  REQUIRE(ValidateManifest(m).ok());
  RunOptions o = Options(t);
  std::vector<double> seen;
  o.progress = [&](double f) { seen.push_back(f); };
  auto run = RunCommandUnit(m, CommandUnit{}, o);
  REQUIRE_MESSAGE(run.ok(), run.status().ToString());
  CHECK(run->outputs[0].second == "done\n");
  REQUIRE(seen.size() >= 2);
  CHECK(std::find(seen.begin(), seen.end(), 0.25) != seen.end());
  CHECK(seen.back() == 1.0);
}

TEST_CASE(
    "the argument template expands placeholders and literal braces, and refuses unknown names") {
  auto a = ExpandArgument("{{x}} --seed={seed} {pkg}/f", {{"seed", "7"}, {"pkg", "/p"}});
  REQUIRE(a.ok());
  CHECK(*a == "{x} --seed=7 /p/f");
  CHECK_FALSE(ExpandArgument("{nope}", {}).ok());
  CHECK_FALSE(ExpandArgument("{open", {}).ok());
}

TEST_CASE("random bytes never decode into a unit or outputs that break the rules") {
  std::mt19937 rng(7);
  CommandUnit u;
  u.index = 3;
  u.values = {{"a", "1"}, {"b", "two"}};
  u.has_input = true;
  u.input_name = "in.txt";
  u.input = "some input\n";
  const std::string unit = EncodeCommandUnit(u);
  const std::string outputs = EncodeOutputs({{"a.txt", "alpha"}, {"b/c.txt", "gamma"}});
  for (int round = 0; round < 5000; ++round) {
    for (const std::string* base : {&unit, &outputs}) {
      std::string t = *base;
      for (int i = 0; i < 1 + static_cast<int>(rng() % 3); ++i)
        t[rng() % t.size()] = static_cast<char>(rng());
      if (base == &unit) {
        auto d = DecodeCommandUnit(t);
        if (d.ok() && d->has_input) CHECK(ValidatePackagePath(d->input_name).ok());
      } else {
        auto d = DecodeOutputs(t);
        if (d.ok()) CHECK(std::is_sorted(d->begin(), d->end()));
      }
    }
  }
}
