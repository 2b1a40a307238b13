// `sparecycles key` and `sparecycles package`: the publisher's side of task packages.
// Exit codes: 0 success, 1 the package was refused (the reason is printed), 2 bad usage or an
// unreadable file.
#include "cli_package.hpp"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::cli {
namespace {

using namespace sparecycles::package;

constexpr const char* kKeyUsage =
    "Usage: sparecycles key new [--client] [--out PATH] [--force]\n"
    "       sparecycles key show [--client] [--key PATH]\n\n"
    "new: creates an Ed25519 publisher key pair for signing task packages: PATH (secret, mode\n"
    "0600) and PATH.pub (public; give it to the coordinators and workers that should trust you).\n"
    "Default PATH: $XDG_CONFIG_HOME/sparecycles/publisher.key (or ~/.config/sparecycles/...).\n"
    "With --client: your CURVE client key instead (default PATH .../sparecycles/client.key),\n"
    "the key a coordinator knows you by; the CLI creates it on first use when missing.\n"
    "show: prints the public key, e.g. for a coordinator's --client-keys line 'KEY submit'.\n";

constexpr const char* kPackageUsage =
    "Usage: sparecycles package COMMAND [options]\n\n"
    "Commands:\n"
    "  build DIR|MANIFEST -o PKG   pack a directory holding package.manifest into a .scpkg file\n"
    "  sign PKG --key KEY          sign a package with a publisher's secret key\n"
    "  verify PKG [--trust KEYS]   check hashes, signature, signer, platform; name any refusal\n"
    "  inspect PKG                 show a package's manifest, files, signer and id\n"
    "  test PKG [options]          run a package's units here, unconfined: a native one is "
    "merged,\n"
    "                              a command one's outputs are written as a directory\n\n"
    "Run `sparecycles package COMMAND --help` for a command's options. Format and manifest\n"
    "keys: docs/packages.md. Example:\n"
    "  sparecycles key new\n"
    "  sparecycles package build mytask/ -o mytask.scpkg --key "
    "~/.config/sparecycles/publisher.key\n"
    "  sparecycles package verify mytask.scpkg --trust ~/.config/sparecycles/publisher.key.pub\n";

int Usage(const std::string& msg) {
  std::fprintf(stderr, "sparecycles: %s\n", msg.c_str());
  return 2;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "sparecycles: %s\n", s.ToString().c_str());
  return 2;
}

// "-o X" is accepted as "--output X" (Options knows long names only).
std::vector<std::string> Normalize(std::vector<std::string> args) {
  for (auto& a : args)
    if (a == "-o") a = "--output";
  return args;
}

std::string HumanBytes(std::uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30))
    std::snprintf(buf, sizeof(buf), "%.1f GiB", static_cast<double>(n) / (1ull << 30));
  else if (n >= (1ull << 20))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(n) / (1ull << 20));
  else if (n >= (1ull << 10))
    std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(n) / (1ull << 10));
  else
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

Result<std::uint64_t> MaxSize(const Options& o) {
  auto v = o.GetInt("max-size", 1, std::int64_t{1} << 40);
  if (!v.ok()) return v.status();
  return static_cast<std::uint64_t>(*v);
}

void AddMaxSize(Options& o) {
  o.Add("max-size", "268435456",
        "Largest package accepted, in bytes (suffixes k, M, G are decimal).");
}

Result<std::string> KeyPath(const Options& o, const char* name) {
  if (!o.Get(name).empty()) return o.Get(name);
  return DefaultKeyPath();
}

Result<std::string> ClientKeyPath(const Options& o, const char* name) {
  if (!o.Get(name).empty()) return o.Get(name);
  const std::string path = ClientConfigPath("client.key");
  if (path.empty())
    return FailedPrecondition("neither XDG_CONFIG_HOME nor HOME is set; name the key file");
  return path;
}

int ClientKeyNew(const Options& o) {
  auto path = ClientKeyPath(o, "out");
  if (!path.ok()) return Fail(path.status());
  std::error_code ec;
  if (!o.Flag("force") && std::filesystem::exists(*path, ec))
    return Fail(FailedPrecondition(*path + " already exists (--force replaces it; coordinators "
                                           "that list the old key will refuse you)"));
  const curve::KeyPair pair = curve::Generate();
  if (Status s = curve::SaveKeyPair(*path, pair, "client"); !s.ok()) return Fail(s);
  std::cerr << "wrote " << *path << " (secret, mode 0600) and " << curve::PublicPathFor(*path)
            << "\n";
  std::cout << pair.public_key.Z85() << std::endl;
  return 0;
}

int KeyShow(const std::vector<std::string>& args) {
  Options o("sparecycles key show [options]",
            "Prints the public half of your publisher key (hex), or with --client of your client "
            "key (Z85, as coordinators' key lists take it).",
            "SPARECYCLES_KEY_");
  o.AddFlag("client", "Show the CURVE client key, not the publisher key.");
  o.Add("key", "",
        "The secret or public key file. Default: $XDG_CONFIG_HOME/sparecycles/publisher.key\n"
        "      (client.key with --client), else under ~/.config/sparecycles/");
  if (Status s = o.Parse(args); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (!o.Positional().empty()) return Usage("key show takes no arguments (see --help)");
  if (o.Flag("client")) {
    auto path = ClientKeyPath(o, "key");
    if (!path.ok()) return Fail(path.status());
    auto key = curve::LoadPublicKey(path->ends_with(".pub") ? *path : curve::PublicPathFor(*path));
    if (!key.ok()) return Fail(key.status());
    std::cout << key->Z85() << std::endl;
    return 0;
  }
  auto path = KeyPath(o, "key");
  if (!path.ok()) return Fail(path.status());
  auto key = ReadPublicKey(path->ends_with(".pub") ? *path : *path + ".pub");
  if (!key.ok()) return Fail(key.status());
  std::cout << key->Hex() << std::endl;
  return 0;
}

int KeyNew(const std::vector<std::string>& args) {
  Options o("sparecycles key new [options]",
            "Creates an Ed25519 key pair for signing task packages (or, with --client, your CURVE "
            "client key) and prints the public key.",
            "SPARECYCLES_KEY_");
  o.Add("out", "",
        "Where to write the secret key; the public key goes to the same path + .pub.\n"
        "      Default: $XDG_CONFIG_HOME/sparecycles/publisher.key (client.key with --client),\n"
        "      else under ~/.config/sparecycles/");
  o.AddFlag("client", "Create your CURVE client key, which coordinators know you by.");
  o.AddFlag("force", "Replace existing key files (the old key can no longer sign).");
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (!o.Positional().empty()) return Usage("key new takes no arguments (see --help)");
  if (o.Flag("client")) return ClientKeyNew(o);
  auto path = KeyPath(o, "out");
  if (!path.ok()) return Fail(path.status());
  const SecretKey key = GenerateKey();
  if (Status s = WriteKeyPair(*path, key, o.Flag("force")); !s.ok()) return Fail(s);
  std::cerr << "wrote " << *path << " (secret, mode 0600) and " << *path << ".pub\n";
  std::cout << key.public_key.Hex() << std::endl;
  return 0;
}

int Build(const std::vector<std::string>& args) {
  Options o(
      "sparecycles package build DIR|MANIFEST -o PKG [options]",
      "Packs a package directory (with package.manifest) into one .scpkg file: the manifest with\n"
      "every file's size and BLAKE2b-256, then the files. Signs it when --key is given.",
      "SPARECYCLES_PACKAGE_");
  o.Add("output", "", "The package file to write (-o). Required.");
  o.Add("key", "",
        "Sign with this secret key file (see `sparecycles key new`). Default: leave unsigned.");
  AddMaxSize(o);
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (o.Positional().size() != 1) return Usage("name one package directory or manifest file");
  if (o.Get("output").empty()) return Usage("name the package file to write with -o PKG");
  auto max = MaxSize(o);
  if (!max.ok()) return Usage(max.status().message());
  auto pkg = BuildFromPath(o.Positional()[0], *max);
  if (!pkg.ok()) return Fail(pkg.status());
  if (!o.Get("key").empty()) {
    auto key = ReadSecretKey(o.Get("key"));
    if (!key.ok()) return Fail(key.status());
    pkg->Sign(*key);
  }
  const std::string bytes = pkg->Encode();
  if (bytes.size() > *max)
    return Fail(ResourceExhausted("the package is " + std::to_string(bytes.size()) +
                                  " bytes, over --max-size"));
  if (Status s = WriteFileAtomic(o.Get("output"), bytes); !s.ok()) return Fail(s);
  std::cerr << "wrote " << o.Get("output") << ": " << pkg->manifest().name << " "
            << pkg->manifest().version << ", " << pkg->manifest().files.size() << " files, "
            << HumanBytes(bytes.size())
            << (pkg->signature() ? ", signed by " + pkg->signature()->signer.ShortId()
                                 : ", unsigned")
            << "\n";
  std::cout << ToHex(Blake2b256(bytes)) << std::endl;
  return 0;
}

int Sign(const std::vector<std::string>& args) {
  Options o("sparecycles package sign PKG --key KEY [options]",
            "Signs a package's manifest with a publisher's Ed25519 secret key (replacing any "
            "signature).\n"
            "The manifest holds every file's BLAKE2b-256, so the signature covers the files too.",
            "SPARECYCLES_PACKAGE_");
  o.Add("key", "", "The secret key file. Default: $XDG_CONFIG_HOME/sparecycles/publisher.key.");
  o.Add("output", "", "Write the signed package here (-o). Default: replace PKG.");
  AddMaxSize(o);
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (o.Positional().size() != 1) return Usage("name one package file");
  auto max = MaxSize(o);
  if (!max.ok()) return Usage(max.status().message());
  DecodeOptions d;
  d.max_package_bytes = *max;
  auto pkg = Package::ReadFile(o.Positional()[0], d);
  if (!pkg.ok()) return Fail(pkg.status());
  // Never sign what is already broken: the signature would vouch for it.
  VerifyOptions local;
  local.require_signature = false;
  local.check_platform = false;
  pkg->Unsign();
  if (Verdict v = pkg->Verify(local); !v.ok()) {
    std::fprintf(stderr, "sparecycles: refusing to sign %s: %s\n", o.Positional()[0].c_str(),
                 v.ToString().c_str());
    return 1;
  }
  auto path = KeyPath(o, "key");
  if (!path.ok()) return Fail(path.status());
  auto key = ReadSecretKey(*path);
  if (!key.ok()) return Fail(key.status());
  pkg->Sign(*key);
  const std::string out = o.Get("output").empty() ? o.Positional()[0] : o.Get("output");
  const std::string bytes = pkg->Encode();
  if (Status s = WriteFileAtomic(out, bytes); !s.ok()) return Fail(s);
  std::cerr << "signed " << out << " with " << key->public_key.ShortId() << "\n";
  std::cout << ToHex(Blake2b256(bytes)) << std::endl;
  return 0;
}

int Verify(const std::vector<std::string>& args) {
  Options o("sparecycles package verify PKG [options]",
            "Checks a package as a coordinator or worker would: the signature matches the "
            "manifest, every\n"
            "file matches its hash, the signer is trusted, and it runs on this platform. Prints "
            "'ok' and\n"
            "the package id, or the reason of the refusal (exit 1): bad signature, hash mismatch,\n"
            "unsigned, unknown signer, unsupported platform, malformed package.",
            "SPARECYCLES_PACKAGE_");
  o.Add("trust", "",
        "Publisher keys to accept: a .pub file, a directory of .pub files, or 64 hex digits.\n"
        "      Default: the directory $XDG_CONFIG_HOME/sparecycles/trusted (or ~/.config/...).");
  o.AddFlag("local",
            "Development mode: no signature required (one that is present must still be valid).");
  o.AddFlag("any-platform", "Do not check the platform and architecture.");
  AddMaxSize(o);
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (o.Positional().size() != 1) return Usage("name one package file");
  auto max = MaxSize(o);
  if (!max.ok()) return Usage(max.status().message());
  DecodeOptions d;
  d.max_package_bytes = *max;
  const std::string& path = o.Positional()[0];
  auto pkg = Package::ReadFile(path, d);
  if (!pkg.ok()) {
    const bool too_large = pkg.status().code() == StatusCode::kResourceExhausted;
    if (pkg.status().code() == StatusCode::kNotFound) return Fail(pkg.status());
    std::fprintf(
        stderr, "refused: %s: %s\n",
        std::string(RefusalName(too_large ? Refusal::kTooLarge : Refusal::kMalformed)).c_str(),
        pkg.status().message().c_str());
    return 1;
  }
  TrustSet trust;
  if (!o.Flag("local")) {
    std::string spec = o.Get("trust");
    if (spec.empty()) {
      auto key = DefaultKeyPath();
      if (key.ok()) spec = key->substr(0, key->rfind('/')) + "/trusted";
    }
    if (!spec.empty()) {
      Status s = trust.AddFrom(spec);
      // A missing default directory just means "nobody trusted yet": the refusal says so.
      if (!s.ok() && o.IsSet("trust")) return Fail(s);
    }
  }
  VerifyOptions vo;
  vo.trust = &trust;
  vo.require_signature = !o.Flag("local");
  vo.check_platform = !o.Flag("any-platform");
  const Verdict v = pkg->Verify(vo);
  if (!v.ok()) {
    std::fprintf(stderr, "refused: %s\n", v.ToString().c_str());
    return 1;
  }
  std::cout << "ok " << ToHex(pkg->Id()) << std::endl;
  std::cerr << pkg->manifest().name << " " << pkg->manifest().version << " ("
            << KindName(pkg->manifest().kind) << ")"
            << (pkg->signature() ? ", signed by " + pkg->signature()->signer.Hex() : ", unsigned")
            << "\n";
  return 0;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

int Inspect(const std::vector<std::string>& args) {
  Options o("sparecycles package inspect PKG [options]",
            "Shows what a package holds: its manifest, every file with size and hash, its signer "
            "and id.\n"
            "Checks the structure only; use `verify` to check hashes and the signature.",
            "SPARECYCLES_PACKAGE_");
  AddMaxSize(o);
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  if (o.Positional().size() != 1) return Usage("name one package file");
  auto max = MaxSize(o);
  if (!max.ok()) return Usage(max.status().message());
  DecodeOptions d;
  d.max_package_bytes = *max;
  auto pkg = Package::ReadFile(o.Positional()[0], d);
  if (!pkg.ok()) return Fail(pkg.status());
  const Manifest& m = pkg->manifest();
  std::ostringstream out;
  out << "id:            " << ToHex(pkg->Id()) << "\n"
      << "name:          " << m.name << "\n"
      << "version:       " << m.version << "\n";
  if (!m.summary.empty()) out << "summary:       " << m.summary << "\n";
  out << "kind:          " << KindName(m.kind) << "\n"
      << "platform:      " << m.platform << "/" << m.arch << "\n"
      << "entry:         " << m.entry << "\n";
  if (m.kind == Kind::kNative) out << "abi:           " << m.abi_version << "\n";
  out << "memory:        " << HumanBytes(m.resources.memory_bytes) << " per unit\n"
      << "expected-time: " << m.resources.expected_seconds << " s per unit\n"
      << "network:       " << (m.resources.network ? "needed" : "none") << "\n"
      << "signed by:     "
      << (pkg->signature() ? pkg->signature()->signer.Hex() : std::string("(unsigned)")) << "\n";
  if (m.kind == Kind::kCommand) {
    const CommandSpec& c = m.command;
    out << "arguments:    ";
    for (const auto& a : c.args) out << " " << Quote(a);
    out << "\n";
    for (const auto& p : c.required_programs) out << "requires:      " << p << "\n";
    out << "split:         " << SplitModeName(c.split.mode);
    if (c.split.mode == SplitMode::kLines) out << " " << c.split.lines_per_unit;
    out << "\n";
    std::uint64_t units = 1;
    for (const auto& p : c.split.sweep) {
      out << "sweep:         " << p.name << " = ";
      if (p.is_range)
        out << p.from << ".." << p.to << ":" << p.step;
      else
        for (std::size_t i = 0; i < p.values.size() && i < 8; ++i)
          out << (i ? "," : "") << p.values[i];
      if (!p.is_range && p.values.size() > 8) out << ",...";
      out << " (" << p.Count() << " values)\n";
      units *= p.Count();
    }
    if (!c.split.sweep.empty()) out << "sweep units:   " << units << "\n";
    for (const auto& f : c.outputs)
      out << "output:        " << f << (f == c.stdout_file ? " (stdout)" : "") << "\n";
    if (!c.progress_file.empty()) out << "progress-file: " << c.progress_file << "\n";
    for (const auto& p : c.canonicalizer.drop_lines) out << "drop-lines:    " << p << "\n";
    if (c.canonicalizer.round_digits)
      out << "round-digits:  " << int(c.canonicalizer.round_digits) << "\n";
  }
  out << "files:         " << m.files.size() << "\n";
  for (const auto& f : m.files)
    out << "  " << (f.executable ? "x " : "  ") << ToHex(f.blake2b).substr(0, 16) << "  " << f.size
        << "\t" << f.path << "\n";
  std::cout << out.str();
  return 0;
}

// Removes a directory tree at the end of a scope.
struct ScratchDir {
  std::string path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

int TestCommand(const Options& o, const Package& pkg, const std::string& root,
                const std::string& scratch) {
  const Manifest& m = pkg.manifest();
  if (!o.Extra().empty())
    return Usage("a command package takes no task parameters (its sweep is in the manifest)");
  Result<std::vector<CommandUnit>> units = Internal("unset");
  switch (m.command.split.mode) {
    case SplitMode::kLines: {
      if (o.Get("input").empty())
        return Usage(m.name + " splits its input by lines: give the file with --input");
      std::error_code ec;
      const auto size = std::filesystem::file_size(o.Get("input"), ec);
      if (ec) return Fail(NotFound("cannot read " + o.Get("input") + ": " + ec.message()));
      if (size > (1ull << 30)) return Fail(ResourceExhausted("--input is larger than 1 GiB"));
      std::ifstream in(o.Get("input"), std::ios::binary);
      std::string data(size, '\0');
      in.read(data.data(), static_cast<std::streamsize>(size));
      units = SplitLines(m, data);
      break;
    }
    case SplitMode::kFiles:
      if (o.Get("input").empty())
        return Usage(m.name + " makes one unit per input file: give the directory with --input");
      units = SplitFiles(m, o.Get("input"));
      break;
    case SplitMode::kSweep:
      units = SplitSweep(m);
      break;
    case SplitMode::kNone:
      units = std::vector<CommandUnit>(1);
      break;
  }
  if (!units.ok()) return Fail(units.status());
  const std::string out_dir = o.Get("output").empty() ? m.name + "-outputs" : o.Get("output");
  std::error_code ec;
  if (std::filesystem::exists(out_dir, ec))
    return Fail(FailedPrecondition(out_dir + " already exists; name a new directory with -o"));
  RunOptions ro;
  ro.package_dir = root;
  ro.work_dir = scratch;
  std::vector<UnitRun> runs;
  int failed = 0;
  for (const auto& u : *units) {
    auto run = RunCommandUnit(m, u, ro);
    if (!run.ok()) {
      ++failed;
      std::fprintf(stderr, "unit %llu failed: %s\n", static_cast<unsigned long long>(u.index),
                   run.status().ToString().c_str());
      continue;
    }
    std::fprintf(stderr, "unit %llu: %.3f s, canonical hash %s\n",
                 static_cast<unsigned long long>(u.index), run->seconds,
                 ToHex(run->canonical_hash).substr(0, 16).c_str());
    char name[32];
    std::snprintf(name, sizeof(name), "unit-%06llu", static_cast<unsigned long long>(u.index));
    for (const auto& [file, data] : run->outputs) {
      const std::filesystem::path p = std::filesystem::path(out_dir) / name / file;
      std::filesystem::create_directories(p.parent_path(), ec);
      if (Status s = WriteFileAtomic(p.string(), data); !s.ok()) return Fail(s);
    }
  }
  std::fprintf(stderr, "%zu units, %d failed; outputs in %s\n", units->size(), failed,
               out_dir.c_str());
  return failed > 0 ? 1 : 0;
}

int Test(const std::vector<std::string>& args) {
  Options o(
      "sparecycles package test PKG [--PARAM VALUE ...] [options]",
      "Runs a package on this machine with no coordinator, worker or keys: verifies it (no "
      "signature\n"
      "needed) and extracts it to a temporary directory. A native package's task is loaded "
      "through\n"
      "the plugin ABI, planned, split, every unit run, and merged; the summary is printed. A "
      "command\n"
      "package's input is split as its manifest says, its program run once per unit, and the\n"
      "declared outputs written to --output as unit-NNNNNN/NAME, with each unit's canonical hash.\n"
      "The task's code runs in this process, unconfined: test only packages you built yourself.",
      "SPARECYCLES_PACKAGE_");
  o.Add("units", "0", "Native: number of units; 0 = up to 4, as the task's plan allows.");
  o.Add("input", "",
        "Command: the job's input, a file (split = lines) or a directory (split = files).");
  o.Add("output", "",
        "Command: the directory to write the outputs to, as unit-NNNNNN/NAME (-o).\n"
        "      Default: NAME-outputs in the current directory.");
  o.AddFlag("json", "Print the merged result as JSON.");
  AddMaxSize(o);
  o.AllowExtra(true);
  if (Status s = o.Parse(Normalize(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help()
              << "\nTask parameters are given as --NAME VALUE; `package inspect` and the task's\n"
                 "documentation name them.\n";
    return 0;
  }
  if (o.Positional().size() != 1) return Usage("name one package file");
  auto max = MaxSize(o);
  auto units_opt = o.GetInt("units", 0, 1'000'000);
  if (!max.ok()) return Usage(max.status().message());
  if (!units_opt.ok()) return Usage(units_opt.status().message());
  DecodeOptions d;
  d.max_package_bytes = *max;
  auto pkg = Package::ReadFile(o.Positional()[0], d);
  if (!pkg.ok()) return Fail(pkg.status());
  VerifyOptions vo;
  vo.require_signature = false;
  if (Verdict v = pkg->Verify(vo); !v.ok()) {
    std::fprintf(stderr, "refused: %s\n", v.ToString().c_str());
    return 1;
  }
  const char* tmp_root = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp_root && tmp_root[0] ? tmp_root : "/tmp") + "/sparecycles-pkgtest-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Fail(Unavailable("cannot create a temporary directory"));
  ScratchDir scratch{tmpl};
  const std::string root = tmpl + "/pkg";
  if (Status s = pkg->Extract(root); !s.ok()) return Fail(s);
  if (pkg->manifest().kind == Kind::kCommand) return TestCommand(o, *pkg, root, tmpl);
  // The manifest's ABI claim is checked before any of the library's code runs.
  if (pkg->manifest().abi_version != HostTaskAbiVersion())
    return Fail(FailedPrecondition(pkg->manifest().name + " declares task ABI version " +
                                   std::to_string(pkg->manifest().abi_version) +
                                   ", this SpareCycles speaks version " +
                                   std::to_string(HostTaskAbiVersion())));
  auto task = LoadTaskPlugin(root + "/" + pkg->manifest().entry);
  if (!task.ok()) return Fail(task.status());
  const tasks::Task& t = **task;
  tasks::JobParams params;
  for (const auto& [k, v] : o.Extra()) {
    bool known = false;
    for (const auto& p : t.Params()) known |= p.name == k;
    if (!known) return Usage("task " + std::string(t.Name()) + " has no parameter --" + k);
    params.values[k] = v;
  }
  auto plan = t.Plan(params);
  if (!plan.ok()) return Fail(plan.status());
  std::uint64_t units = *units_opt > 0      ? static_cast<std::uint64_t>(*units_opt)
                        : plan->fixed_units ? plan->max_units
                                            : std::min<std::uint64_t>(plan->max_units, 4);
  auto split = t.Split(params, units);
  if (!split.ok()) return Fail(split.status());
  std::vector<std::string> results;
  int failed = 0;
  for (std::size_t i = 0; i < split->size(); ++i) {
    tasks::NullContext ctx;
    const auto start = std::chrono::steady_clock::now();
    Result<std::string> r = Internal("not run");
    try {
      r = t.Execute((*split)[i], ctx);
    } catch (const tasks::UnitCancelled& c) {
      r = Cancelled(c.reason);
    } catch (const std::exception& e) {
      r = Internal(std::string("exception: ") + e.what());
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) {
      ++failed;
      std::fprintf(stderr, "unit %zu failed after %.3f s: %s\n", i, secs,
                   r.status().ToString().c_str());
      continue;
    }
    std::fprintf(stderr, "unit %zu: %zu bytes in %.3f s, canonical hash %s\n", i, r->size(), secs,
                 ToHex(Blake2b256(t.Canonicalize(*r))).substr(0, 16).c_str());
    results.push_back(std::move(r).value());
  }
  if (failed > 0) {
    std::fprintf(stderr, "%d of %zu units failed\n", failed, split->size());
    return 1;
  }
  auto merged = t.Merge(params, results);
  if (!merged.ok()) return Fail(merged.status());
  std::cout << (o.Flag("json") ? t.ToJson(*merged) : t.Summarize(*merged)) << std::endl;
  return 0;
}

}  // namespace

std::string ClientConfigPath(const std::string& name) {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && *x == '/')
    return std::string(x) + "/sparecycles/" + name;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h == '/')
    return std::string(h) + "/.config/sparecycles/" + name;
  return {};
}

int KeyCommand(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kKeyUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "new") return KeyNew({args.begin() + 1, args.end()});
  if (args[0] == "show") return KeyShow({args.begin() + 1, args.end()});
  return Usage("unknown key command '" + args[0] + "'\n\n" + kKeyUsage);
}

int PackageCommand(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kPackageUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "build") return Build(rest);
  if (args[0] == "sign") return Sign(rest);
  if (args[0] == "verify") return Verify(rest);
  if (args[0] == "inspect") return Inspect(rest);
  if (args[0] == "test") return Test(rest);
  return Usage("unknown package command '" + args[0] + "'\n\n" + kPackageUsage);
}

}  // namespace sparecycles::cli
