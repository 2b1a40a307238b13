// Task packages, measured with real processes on 127.0.0.1 (docs/benchmarks.md, "Task packages"):
//  1. native_package_efficiency: the built-in primes kernel compiled into a signed native
//     package, against the same job of the built-in task, same cluster, same run
//     (T(built-in) / T(package), goal >= 0.97).
//  1b. sandboxed_trivial_units_per_s (--only trivial): spin ms=0 units (no work: per-unit
//     overhead is all there is) of the built-in spin kernel shipped as a native package
//     (bench/plugins/builtin_package.cpp), through the sandboxed executor processes, against the
//     same job of the built-in spin task, same cluster, same run (goal:
//     >= 50,000 units/s and >= 0.5 of the built-in figure).
//  1c. sandboxed_1s_unit_efficiency (--only second): units of about 1 s of the package against
//     the built-in task (T(built-in)/T(package), goal >= 0.99).
//  2. package_fanout: a 50 MiB package reaching 20 peers (20 units of `sleep 1`; long units of a
//     job this small are not prefetched, so each peer takes one and fetches the package): seconds
//     from submit to done (so 1 s of it is the units' own), and the coordinator's request round
//     trip (a client asking for the job's status every 5 ms) meanwhile against the same before.
//  3. command_package_overhead: a command package running xz -9 over inputs of about a second
//     each, against GNU parallel running the same program over the same inputs with as many
//     jobs as cores (T(parallel) / T(package), goal: within 5 %). Skipped with a message when GNU
//     parallel is not installed (apt-get install parallel).
#include <filesystem>

#include "bench_common.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/package/plugin_loader.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;
namespace fs = std::filesystem;

namespace {

struct Publisher {
  TempDir dir;
  package::SecretKey key = package::GenerateKey();
  std::string keys_dir() const { return dir / "publishers"; }
  Publisher() {
    fs::create_directories(keys_dir());
    if (!package::WriteKeyPair(dir / "publisher.key", key).ok()) Die("cannot write a key");
    fs::copy_file(dir / "publisher.key.pub", keys_dir() + "/publisher.pub");
  }
  std::string Write(package::Package pkg, const std::string& name) {
    pkg.Sign(key);
    std::string path = dir / name;
    if (!package::WriteFileAtomic(path, pkg.Encode()).ok()) Die("cannot write " + path);
    return path;
  }
};

package::Package NativePlugin(const char* plugin, const std::string& name) {
  auto lib = ReadFile(plugin, 256 << 20);
  if (!lib.ok()) Die(lib.status().ToString());
  package::Manifest m;
  m.name = name;
  m.version = "1.0";
  m.kind = package::Kind::kNative;
  m.arch = std::string(package::HostArch());
  m.entry = "task.so";
  m.abi_version = package::HostTaskAbiVersion();
  m.resources.expected_seconds = 1;
  m.files.push_back(package::FileEntry{"task.so", 0, {}, true});
  auto pkg = package::Package::Create(m, {*lib});
  if (!pkg.ok()) Die(pkg.status().ToString());
  return std::move(pkg).value();
}

package::Package NativePrimes() { return NativePlugin(SC_PRIMES_PACKAGE_PLUGIN, "primes-package"); }

// A command package of `units` units that each sleep a second (so every idle peer takes one and
// must fetch the package first), carrying `ballast` bytes of incompressible data.
package::Package Ballast(std::size_t ballast, int units) {
  package::Manifest m;
  m.name = "ballast";
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/sleep";
  m.command.required_programs = {"/usr/bin/sleep"};
  m.command.args = {"1"};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  m.command.split.mode = package::SplitMode::kSweep;
  package::SweepParam n;
  n.name = "n";
  n.from = 1;
  n.to = units;
  m.command.split.sweep = {n};
  m.resources.expected_seconds = 1;
  m.files.push_back(package::FileEntry{"ballast.bin", 0, {}, false});
  std::string data(ballast, '\0');
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < ballast; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(data.data() + i, &x, std::min<std::size_t>(8, ballast - i));
  }
  auto pkg = package::Package::Create(m, {data});
  if (!pkg.ok()) Die(pkg.status().ToString());
  return std::move(pkg).value();
}

void NativeEfficiency(const Args& args, Publisher& pub) {
  const auto to = static_cast<std::uint64_t>(args.Num("to", 8e10, 4e9));
  const auto units = static_cast<std::uint64_t>(args.Num("units", 16, 8));
  const int repeats = static_cast<int>(args.Num("repeats", 3, 1));
  const std::string path = pub.Write(NativePrimes(), "primes.scpkg");
  auto cluster = StartCluster(2, {"--publishers", pub.keys_dir()});
  Client client = ConnectWhenReady(*cluster, 2);
  JobSpec builtin("primes");
  builtin.Set("from", "0").Set("to", std::to_string(to));
  builtin.units = units;
  JobSpec pkg = builtin;
  pkg.task.clear();
  pkg.package = path;
  JobResult r;
  TimeJob(client, pkg, &r);  // uploads it and lets both workers fetch it once
  double t_builtin = 1e300, t_package = 1e300;
  std::string a, b;
  for (int i = 0; i < repeats; ++i) {  // interleaved, so drift of the machine hits both
    t_builtin = std::min(t_builtin, TimeJob(client, builtin, &r));
    a = r.summary;
    t_package = std::min(t_package, TimeJob(client, pkg, &r));
    b = r.summary;
  }
  if (a != b) Die("the package counted " + b + ", the built-in task " + a);
  Figure f;
  f.figure = "native_package_efficiency";
  f.case_name = "primes below " + std::to_string(to) + " in " + std::to_string(units) +
                " units, 2 workers x 1 core";
  f.unit = "T(built-in)/T(package)";
  f.value = t_builtin / t_package;
  f.baseline = 1.0;
  f.baseline_name = "the same job of the built-in primes task";
  f.goal = ">= 0.97";
  f.extra = {{"builtin_s", t_builtin}, {"package_s", t_package}};
  Emit(f, args);
}

// Trivial units: the job's per-unit cost is all overhead (lease, executor round trip, result).
void TrivialUnits(const Args& args, Publisher& pub) {
  const auto units = static_cast<std::uint64_t>(args.Num("trivial-units", 100000, 3000));
  const int repeats = static_cast<int>(args.Num("repeats", 3, 1));
  const std::string path =
      pub.Write(NativePlugin(SC_SPIN_PACKAGE_PLUGIN, "spin-package"), "spin.scpkg");
  // A manifest's expected time is whole seconds (at least 1), so by default the coordinator never
  // prefetches package units beyond a peer's slots (docs/benchmarks.md): --prefetch-seconds lets
  // it, as an operator of a cluster of short package units would.
  const std::string pfs = args.Str("prefetch-seconds", "");
  std::vector<std::string> cflags = {"--publishers", pub.keys_dir()};
  if (!pfs.empty()) cflags.insert(cflags.end(), {"--prefetch-seconds", pfs});
  auto cluster = StartCluster(2, cflags);
  Client client = ConnectWhenReady(*cluster, 2);
  JobSpec builtin = SpinJob(units, 0);
  JobSpec pkg = builtin;
  pkg.task.clear();
  pkg.package = path;
  JobSpec warm = pkg;  // uploads the package; both workers fetch it
  warm = SpinJob(200, 0);
  warm.task.clear();
  warm.package = path;
  TimeJob(client, warm);
  TimeJob(client, SpinJob(200, 0));
  double t_builtin = 1e300, t_package = 1e300;
  for (int i = 0; i < repeats; ++i) {  // interleaved, so drift of the machine hits both
    t_builtin = std::min(t_builtin, TimeJob(client, builtin));
    t_package = std::min(t_package, TimeJob(client, pkg));
  }
  Figure f;
  f.figure = "sandboxed_trivial_units_per_s";
  f.case_name = std::to_string(units) +
                " spin ms=0 units of a native package, 2 workers x 1 core, sandbox on" +
                (pfs.empty() ? "" : ", coordinator --prefetch-seconds " + pfs);
  f.unit = "units/s";
  f.value = static_cast<double>(units) / t_package;
  f.baseline = static_cast<double>(units) / t_builtin;
  f.baseline_name = "the same job of the built-in spin task (in-process)";
  f.goal = ">= 50000 and >= 0.5 x baseline";
  f.extra = {{"builtin_s", t_builtin},
             {"package_s", t_package},
             {"ratio_to_builtin", t_builtin / t_package}};
  Emit(f, args);
}

// Units of about a second: what confinement and the executor process cost a real unit.
void SecondUnits(const Args& args, Publisher& pub) {
  const double unit_s = args.Num("unit-seconds", 1.0, 0.25);
  const auto units = static_cast<std::uint64_t>(args.Num("second-units", 16, 4));
  const int repeats = static_cast<int>(args.Num("repeats", 3, 1));
  const std::string path = pub.Write(NativePrimes(), "primes.scpkg");
  auto cluster = StartCluster(2, {"--publishers", pub.keys_dir()});
  Client client = ConnectWhenReady(*cluster, 2);
  // Sizes the units: a built-in job of 2 units over a first guess, scaled to unit_s a unit.
  double to = 2e8;
  JobSpec probe("primes");
  JobResult r;
  for (int i = 0; i < 4; ++i) {
    probe.Set("from", "0").Set("to", std::to_string(static_cast<std::uint64_t>(to)));
    probe.units = 2;
    const double t = TimeJob(client, probe, &r);
    const double scale = unit_s / std::max(t, 1e-3);
    to *= std::clamp(scale, 0.1, 10.0);
    if (scale > 0.8 && scale < 1.25) break;
  }
  const auto per_unit = static_cast<std::uint64_t>(to / 2);
  JobSpec builtin("primes");
  builtin.Set("from", "0").Set("to", std::to_string(per_unit * units));
  builtin.units = units;
  JobSpec pkg = builtin;
  pkg.task.clear();
  pkg.package = path;
  JobSpec warm = pkg;  // uploads it and lets both workers fetch it once
  warm.units = 2;
  warm.Set("to", "400000");
  TimeJob(client, warm, &r);
  double t_builtin = 1e300, t_package = 1e300;
  std::string a, b;
  for (int i = 0; i < repeats; ++i) {
    t_builtin = std::min(t_builtin, TimeJob(client, builtin, &r));
    a = r.summary;
    t_package = std::min(t_package, TimeJob(client, pkg, &r));
    b = r.summary;
  }
  if (a != b) Die("the package counted " + b + ", the built-in task " + a);
  Figure f;
  f.figure = "sandboxed_1s_unit_efficiency";
  f.case_name = std::to_string(units) + " units of about " + std::to_string(unit_s).substr(0, 4) +
                " s of the primes package, 2 workers x 1 core, sandbox on";
  f.unit = "T(built-in)/T(package)";
  f.value = t_builtin / t_package;
  f.baseline = 1.0;
  f.baseline_name = "the same job of the built-in primes task (in-process)";
  f.goal = ">= 0.99";
  f.extra = {{"builtin_s", t_builtin},
             {"package_s", t_package},
             {"unit_s", t_builtin * 2 / static_cast<double>(units)}};
  Emit(f, args);
}

void Fanout(const Args& args, Publisher& pub) {
  const auto mib = static_cast<std::size_t>(args.Num("fanout-mib", 50, 4));
  const int peers = static_cast<int>(args.Num("peers", 20, 3));
  const std::string path = pub.Write(Ballast(mib << 20, peers), "ballast.scpkg");
  auto cluster = StartCluster(peers, {"--publishers", pub.keys_dir()});
  Client client = ConnectWhenReady(*cluster, static_cast<std::size_t>(peers), 60);
  auto probe = Client::Connect(cluster->client_endpoint());
  if (!probe.ok()) Die(probe.status().ToString());
  // Round trips of a status request every 5 ms while `busy` runs.
  auto round_trips = [&](std::uint64_t job_id, const std::function<bool()>& until) {
    std::vector<double> rtt;
    while (!until()) {
      const double t0 = Now();
      auto s = probe->Status(job_id);
      if (s.ok() || s.status().code() == StatusCode::kNotFound) rtt.push_back(Now() - t0);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return rtt;
  };
  const double quiet_until = Now() + 2;
  const std::vector<double> before = round_trips(0, [&] { return Now() > quiet_until; });
  JobSpec spec;  // one unit per peer: as many long units as slots are not prefetched
  spec.package = path;
  const double t_upload0 = Now();
  auto job = client.Submit(spec);  // uploads first
  if (!job.ok()) Die(job.status().ToString());
  const double t_submitted = Now();
  std::atomic<bool> done{false};
  std::vector<double> during;
  std::thread watcher([&] { during = round_trips(job->id(), [&] { return done.load(); }); });
  auto r = job->Wait(std::chrono::minutes(10));
  const double t_done = Now();
  done = true;
  watcher.join();
  if (!r.ok() || r->info.state != JobState::kDone)
    Die("the fan-out job did not finish: " + (r.ok() ? r->info.error : r.status().ToString()));
  Figure f;
  f.figure = "package_fanout_seconds";
  f.case_name = std::to_string(mib) + " MiB package to " + std::to_string(peers) + " peers";
  f.unit = "s from submit to done";
  f.value = t_done - t_submitted;
  f.higher_is_better = false;
  f.baseline = t_submitted - t_upload0;
  f.baseline_name = "the client's upload of the same package";
  f.extra = {{"rtt_p50_ms_before", Percentile(before, 0.5) * 1e3},
             {"rtt_p99_ms_before", Percentile(before, 0.99) * 1e3},
             {"rtt_p50_ms_during", Percentile(during, 0.5) * 1e3},
             {"rtt_p99_ms_during", Percentile(during, 0.99) * 1e3},
             {"rtt_max_ms_during", *std::max_element(during.begin(), during.end()) * 1e3},
             {"requests_during", static_cast<double>(during.size())}};
  Emit(f, args);
  Figure l;
  l.figure = "coordinator_rtt_during_fanout";
  l.case_name = f.case_name;
  l.unit = "ms p99 status round trip";
  l.value = Percentile(during, 0.99) * 1e3;
  l.higher_is_better = false;
  l.baseline = Percentile(before, 0.99) * 1e3;
  l.baseline_name = "the same requests in the 2 s before, peers idle";
  Emit(l, args);
}

void CommandOverhead(const Args& args, Publisher& pub) {
  if (::access("/usr/bin/parallel", X_OK) != 0) {
    std::cerr << "  command_package_overhead: SKIPPED, GNU parallel is not installed "
                 "(apt-get install parallel)\n";
    return;
  }
  const int inputs = static_cast<int>(args.Num("inputs", 24, 4));
  const auto kib = static_cast<std::size_t>(args.Num("input-kib", 2048, 256));
  TempDir dir;
  const std::string in = dir / "in", out_pkg = dir / "out-pkg", out_par = dir / "out-par";
  fs::create_directories(in);
  fs::create_directories(out_par);
  std::uint64_t x = 1;
  for (int i = 0; i < inputs; ++i) {  // text-like data xz works hard on
    std::string data;
    data.reserve(kib << 10);
    while (data.size() < (kib << 10)) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      data += "word" + std::to_string((x >> 33) % 5000) + ((x >> 20) % 9 == 0 ? "\n" : " ");
    }
    char name[32];
    std::snprintf(name, sizeof(name), "in-%03d.txt", i);
    if (!WriteFileAtomic(in + "/" + name, data).ok()) Die("cannot write inputs");
  }
  package::Manifest m;
  m.name = "xz";
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/xz";
  m.command.required_programs = {"/usr/bin/xz"};
  m.command.args = {"-9", "-T1", "-c", "{input_name}"};
  m.command.outputs = {"out.xz"};
  m.command.stdout_file = "out.xz";
  m.command.split.mode = package::SplitMode::kFiles;
  m.resources.expected_seconds = 2;
  auto pkg = package::Package::Create(m, {});
  if (!pkg.ok()) Die(pkg.status().ToString());
  const std::string path = pub.Write(*pkg, "xz.scpkg");
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  auto cluster = StartCluster(static_cast<int>(cores), {"--publishers", pub.keys_dir()});
  Client client = ConnectWhenReady(*cluster, cores);
  JobSpec spec;
  spec.package = path;
  spec.input_dir = in;
  JobResult r;
  const int repeats = static_cast<int>(args.Num("repeats", 2, 1));
  double t_pkg = 1e300, t_par = 1e300;
  for (int i = 0; i < repeats; ++i) {
    t_pkg = std::min(t_pkg, TimeJob(client, spec, &r));
    std::vector<std::string> argv = {"/usr/bin/parallel", "-j", std::to_string(cores),
                                     "/usr/bin/xz -9 -T1 -c {} > " + out_par + "/{/}.xz", ":::"};
    for (int k = 0; k < inputs; ++k) {
      char name[32];
      std::snprintf(name, sizeof(name), "/in-%03d.txt", k);
      argv.push_back(in + name);
    }
    const double t1 = Now();
    auto [pcode, ptext] = testing::RunCommand(argv, dir / "parallel", std::chrono::minutes(10));
    if (pcode != 0) Die("parallel failed: " + ptext);
    t_par = std::min(t_par, Now() - t1);
  }
  if (r.files.size() != static_cast<std::size_t>(inputs)) Die("the package gave too few outputs");
  for (int k = 0; k < inputs; ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "/in-%03d.txt.xz", k);
    if (r.files[static_cast<std::size_t>(k)].second != testing::ReadAll(out_par + name))
      Die("output " + std::to_string(k) + " differs from GNU parallel's");
  }
  Figure f;
  f.figure = "command_package_overhead";
  f.case_name = std::to_string(inputs) + " files of " + std::to_string(kib) +
                " KiB through xz -9, " + std::to_string(cores) + " workers x 1 core";
  f.unit = "T(parallel)/T(package)";
  f.value = t_par / t_pkg;
  f.baseline = 1.0;
  f.baseline_name = "GNU parallel -j " + std::to_string(cores) + " on the same inputs";
  f.goal = ">= 0.95";
  f.extra = {
      {"package_s", t_pkg}, {"parallel_s", t_par}, {"seconds_per_unit", t_par * cores / inputs}};
  Emit(f, args);
}

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout << "Usage: bench_packages [--quick] [--only native|trivial|second|fanout|command]\n"
                   "  [--to N] [--units N] [--trivial-units N] [--second-units N]\n"
                   "  [--unit-seconds S] [--prefetch-seconds S] [--fanout-mib N] [--peers N]\n"
                   "  [--inputs N] [--input-kib N] [--repeats N]\n"
                   "Task packages: native efficiency, trivial units and 1 s units through the\n"
                   "sandbox against the built-in task, fan-out of a big package, command overhead\n"
                   "against GNU parallel. JSON lines on stdout.\n";
      return 0;
    }
    InitCrypto();
    Publisher pub;
    const std::string only = args.Str("only", "");
    if (only.empty() || only == "native") NativeEfficiency(args, pub);
    if (only.empty() || only == "trivial") TrivialUnits(args, pub);
    if (only.empty() || only == "second") SecondUnits(args, pub);
    if (only.empty() || only == "fanout") Fanout(args, pub);
    if (only.empty() || only == "command") CommandOverhead(args, pub);
    return 0;
  });
}
