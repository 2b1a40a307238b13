// The .scpkg container: layout, signature, verification, extraction and building from a
// directory (docs/packages.md).
#include "sparecycles/package/package.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "bytes.hpp"

namespace sparecycles::package {
namespace fs = std::filesystem;
using internal::Reader;
using internal::Writer;

std::string_view RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "ok";
    case Refusal::kMalformed:
      return "malformed package";
    case Refusal::kTooLarge:
      return "package too large";
    case Refusal::kBadSignature:
      return "bad signature";
    case Refusal::kHashMismatch:
      return "hash mismatch";
    case Refusal::kUnsigned:
      return "unsigned";
    case Refusal::kUnknownSigner:
      return "unknown signer";
    case Refusal::kUnsupportedPlatform:
      return "unsupported platform";
    case Refusal::kKindNotAccepted:
      return "kind not accepted";
  }
  return "unknown";
}

std::string Verdict::ToString() const {
  if (ok()) return "ok";
  return std::string(RefusalName(refusal)) + (detail.empty() ? "" : ": " + detail);
}

Result<Package> Package::Create(Manifest m, std::vector<std::string> contents) {
  if (contents.size() != m.files.size()) return InvalidArgument("one content per file entry");
  if (m.files.size() > kMaxFiles)
    return InvalidArgument("more than " + std::to_string(kMaxFiles) + " files");
  std::vector<std::size_t> order(m.files.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return m.files[a].path < m.files[b].path; });
  Package p;
  std::vector<FileEntry> files;
  for (std::size_t i : order) {
    FileEntry f = m.files[i];
    f.size = contents[i].size();
    f.blake2b = Blake2b256(contents[i]);
    files.push_back(std::move(f));
    p.files_.push_back(std::move(contents[i]));
  }
  m.files = std::move(files);
  if (Status s = ValidateManifest(m); !s.ok()) return s;
  p.manifest_bytes_ = EncodeManifest(m);
  if (p.manifest_bytes_.size() > kMaxManifestBytes)
    return ResourceExhausted("manifest larger than 1 MiB");
  p.manifest_ = std::move(m);
  return p;
}

Result<Package> Package::Decode(std::string_view bytes, const DecodeOptions& options) {
  if (bytes.size() > options.max_package_bytes)
    return ResourceExhausted("package of " + std::to_string(bytes.size()) +
                             " bytes exceeds the limit of " +
                             std::to_string(options.max_package_bytes));
  Reader r(bytes);
  char magic[sizeof(kMagic)] = {};
  r.Raw(magic, sizeof(magic), "magic");
  if (!r.ok() || std::memcmp(magic, kMagic, sizeof(kMagic)) != 0)
    return DataLoss("not a SpareCycles package (bad magic)");
  const std::uint32_t version = r.U32("format version");
  if (r.ok() && version != kFormatVersion)
    return DataLoss("package format version " + std::to_string(version) +
                    " is not supported (this build reads version " +
                    std::to_string(kFormatVersion) + ")");
  const std::uint32_t manifest_len = r.U32("manifest length");
  if (r.ok() && manifest_len > kMaxManifestBytes) return DataLoss("manifest length exceeds 1 MiB");
  const std::string_view manifest_bytes = r.View(manifest_len, "manifest");
  const std::uint8_t sig_count = r.U8("signature count");
  if (r.ok() && sig_count > 1)
    return DataLoss("signature count " + std::to_string(sig_count) + " (0 or 1 allowed)");
  Package p;
  if (sig_count == 1) {
    Signature sig;
    r.Raw(sig.signer.bytes.data(), sig.signer.bytes.size(), "signer key");
    r.Raw(sig.bytes.data(), sig.bytes.size(), "signature");
    p.signature_ = sig;
  }
  if (!r.ok()) return r.status();
  auto m = DecodeManifest(manifest_bytes);
  if (!m.ok()) return m.status();
  // The file sizes must account for exactly the bytes that remain.
  std::uint64_t total = 0;
  for (const auto& f : m->files) {
    if (f.size > r.remaining() - std::min<std::uint64_t>(total, r.remaining()))
      return DataLoss("file '" + f.path + "' runs past the end of the package");
    total += f.size;
  }
  if (total != r.remaining()) return DataLoss("trailing bytes after the last file");
  p.files_.reserve(m->files.size());
  for (const auto& f : m->files) p.files_.emplace_back(r.View(f.size, "file data"));
  p.manifest_bytes_ = std::string(manifest_bytes);
  p.manifest_ = std::move(m).value();
  return p;
}

Result<Package> Package::ReadFile(const std::string& path, const DecodeOptions& options) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return NotFound("cannot read " + path + ": " + ec.message());
  if (size > options.max_package_bytes)
    return ResourceExhausted(path + " is " + std::to_string(size) +
                             " bytes, over the package limit of " +
                             std::to_string(options.max_package_bytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)))
    return DataLoss("short read from " + path);
  auto p = Decode(bytes, options);
  if (!p.ok()) return Status(p.status().code(), path + ": " + p.status().message());
  return p;
}

std::optional<std::size_t> Package::FindFile(std::string_view path) const {
  const auto& f = manifest_.files;
  auto it = std::lower_bound(f.begin(), f.end(), path,
                             [](const FileEntry& e, std::string_view p) { return e.path < p; });
  if (it == f.end() || it->path != path) return std::nullopt;
  return static_cast<std::size_t>(it - f.begin());
}

std::string Package::SignedMessage() const {
  std::string msg(kSignatureContext);
  const Hash256 h = Blake2b256(manifest_bytes_);
  msg.append(reinterpret_cast<const char*>(h.data()), h.size());
  return msg;
}

void Package::Sign(const SecretKey& key) {
  InitCrypto();
  const std::string msg = SignedMessage();
  auto sk = key.SigningKey();
  Signature sig;
  sig.signer = key.public_key;
  crypto_sign_detached(sig.bytes.data(), nullptr,
                       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), sk.data());
  sodium_memzero(sk.data(), sk.size());
  signature_ = sig;
}

std::string Package::Encode() const {
  Writer w;
  w.Bytes(kMagic, sizeof(kMagic));
  w.U32(kFormatVersion);
  w.U32(static_cast<std::uint32_t>(manifest_bytes_.size()));
  w.Bytes(manifest_bytes_.data(), manifest_bytes_.size());
  w.U8(signature_ ? 1 : 0);
  if (signature_) {
    w.Bytes(signature_->signer.bytes.data(), signature_->signer.bytes.size());
    w.Bytes(signature_->bytes.data(), signature_->bytes.size());
  }
  for (const auto& f : files_) w.Bytes(f.data(), f.size());
  return std::move(w.out());
}

Hash256 Package::Id() const { return Blake2b256(Encode()); }

Verdict Package::Verify(const VerifyOptions& options) const {
  InitCrypto();
  // A signature, if present, must be valid even where none is required: a broken one means the
  // manifest was altered after signing.
  if (signature_) {
    const std::string msg = SignedMessage();
    if (crypto_sign_verify_detached(signature_->bytes.data(),
                                    reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                    signature_->signer.bytes.data()) != 0)
      return {Refusal::kBadSignature,
              "the signature by " + signature_->signer.ShortId() + " does not match the manifest"};
  }
  for (std::size_t i = 0; i < files_.size(); ++i) {
    const FileEntry& f = manifest_.files[i];
    if (files_[i].size() != f.size)
      return {Refusal::kHashMismatch, "'" + f.path + "' has " + std::to_string(files_[i].size()) +
                                          " bytes, the manifest says " + std::to_string(f.size)};
    if (Blake2b256(files_[i]) != f.blake2b)
      return {Refusal::kHashMismatch, "'" + f.path + "' does not match its BLAKE2b-256"};
  }
  if (options.require_signature) {
    if (!signature_)
      return {Refusal::kUnsigned,
              "the package carries no signature (sign it with `sparecycles package sign`)"};
    if (options.trust == nullptr || !options.trust->Contains(signature_->signer))
      return {Refusal::kUnknownSigner,
              "signed by " + signature_->signer.Hex() + ", a key this side does not trust"};
  }
  if (options.check_platform) {
    if (manifest_.platform != HostPlatform() ||
        (manifest_.arch != "any" && manifest_.arch != HostArch()))
      return {Refusal::kUnsupportedPlatform,
              "built for " + manifest_.platform + "/" + manifest_.arch + ", this host is " +
                  std::string(HostPlatform()) + "/" + std::string(HostArch())};
  }
  if ((manifest_.kind == Kind::kNative && !options.accept_native) ||
      (manifest_.kind == Kind::kCommand && !options.accept_command))
    return {Refusal::kKindNotAccepted,
            std::string(KindName(manifest_.kind)) + " packages are not accepted here"};
  return {};
}

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status Errno(const std::string& what) { return Unavailable(what + ": " + std::strerror(errno)); }

}  // namespace

Status Package::Extract(const std::string& dir) const {
  if (::mkdir(dir.c_str(), 0700) != 0) return Errno("cannot create " + dir);
  Fd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.get() < 0) return Errno("cannot open " + dir);
  for (std::size_t i = 0; i < files_.size(); ++i) {
    const FileEntry& f = manifest_.files[i];
    // Defence in depth: Decode() validated the names already.
    SC_RETURN_IF_ERROR(ValidatePackagePath(f.path));
    // Walk the directories with openat(O_NOFOLLOW): nothing outside `dir` is ever reached, even
    // if something else creates a link in it meanwhile.
    int parent = ::dup(root.get());
    std::string_view rest = f.path;
    while (true) {
      const auto slash = rest.find('/');
      if (slash == std::string_view::npos) break;
      const std::string part(rest.substr(0, slash));
      rest = rest.substr(slash + 1);
      if (::mkdirat(parent, part.c_str(), 0700) != 0 && errno != EEXIST) {
        ::close(parent);
        return Errno("cannot create directory for " + f.path);
      }
      const int next =
          ::openat(parent, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      ::close(parent);
      if (next < 0) return Errno("cannot open directory for " + f.path);
      parent = next;
    }
    const std::string leaf(rest);
    const int fd =
        ::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 f.executable ? 0700 : 0600);
    ::close(parent);
    if (fd < 0) return Errno("cannot create " + f.path);
    Fd out(fd);
    std::string_view data = files_[i];
    while (!data.empty()) {
      const ssize_t n = ::write(out.get(), data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("cannot write " + f.path);
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Unavailable("cannot create " + tmp);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return Unavailable("cannot write " + tmp);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Unavailable("cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
  return OkStatus();
}

namespace {

// The file under `root` named `rel` (validated), resolved; an error if a link leads outside.
Result<fs::path> ResolveInside(const fs::path& root, const std::string& rel) {
  std::error_code ec;
  const fs::path full = root / rel;
  const fs::path real = fs::canonical(full, ec);
  if (ec) return NotFound("cannot read '" + rel + "': " + ec.message());
  auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (r != root.end())
    return InvalidArgument("'" + rel + "' is a symbolic link that escapes the package directory");
  if (!fs::is_regular_file(real, ec)) return InvalidArgument("'" + rel + "' is not a regular file");
  return real;
}

}  // namespace

Result<Package> BuildFromPath(const std::string& dir_or_manifest, std::uint64_t max_package_bytes) {
  std::error_code ec;
  fs::path manifest_path = dir_or_manifest;
  if (fs::is_directory(manifest_path, ec)) manifest_path /= std::string(kManifestFileName);
  const fs::path root = fs::canonical(fs::absolute(manifest_path).parent_path(), ec);
  if (ec) return NotFound("cannot open " + dir_or_manifest + ": " + ec.message());
  const auto manifest_size = fs::file_size(manifest_path, ec);
  if (ec) return NotFound("no manifest at " + manifest_path.string() + " (" + ec.message() + ")");
  if (manifest_size > kMaxManifestBytes)
    return InvalidArgument(manifest_path.string() + " is larger than 1 MiB");
  std::ifstream in(manifest_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ParseManifestText(ss.str());
  if (!text.ok())
    return Status(text.status().code(), manifest_path.string() + ": " + text.status().message());
  Manifest m = std::move(text->manifest);
  const fs::path manifest_real = fs::canonical(manifest_path, ec);

  if (!text->explicit_files) {
    // Every regular file under the root, links resolved only if they stay inside.
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const auto st = it->symlink_status(ec);
      if (fs::is_directory(st)) continue;
      // lexically: fs::relative() would resolve the link and name its target instead.
      const std::string rel = it->path().lexically_relative(root).generic_string();
      if (fs::is_symlink(st) && fs::is_directory(it->path(), ec)) {
        return InvalidArgument(
            "'" + rel + "' is a symbolic link to a directory; list files with 'file =' instead");
      }
      if (fs::equivalent(it->path(), manifest_real, ec)) continue;
      if (m.files.size() >= kMaxFiles)
        return ResourceExhausted("more than " + std::to_string(kMaxFiles) + " files under " +
                                 root.string());
      m.files.push_back(FileEntry{rel, 0, {}, false});
    }
    if (ec) return Unavailable("cannot list " + root.string() + ": " + ec.message());
  }
  std::vector<std::string> contents;
  std::uint64_t total = 0;
  for (auto& f : m.files) {
    if (Status s = ValidatePackagePath(f.path); !s.ok())
      return InvalidArgument("file '" + f.path + "': " + s.message());
    auto real = ResolveInside(root, f.path);
    if (!real.ok()) return real.status();
    const auto size = fs::file_size(*real, ec);
    if (ec) return NotFound("cannot read '" + f.path + "': " + ec.message());
    total += size;
    if (total > max_package_bytes)
      return ResourceExhausted("the files add up to more than the package limit of " +
                               std::to_string(max_package_bytes) + " bytes");
    std::ifstream fin(*real, std::ios::binary);
    std::string data(size, '\0');
    if (!fin.read(data.data(), static_cast<std::streamsize>(size)))
      return DataLoss("short read from '" + f.path + "'");
    f.executable = (fs::status(*real, ec).permissions() & fs::perms::owner_exec) != fs::perms::none;
    contents.push_back(std::move(data));
  }
  auto p = Package::Create(std::move(m), std::move(contents));
  if (!p.ok())
    return Status(p.status().code(), manifest_path.string() + ": " + p.status().message());
  return p;
}

}  // namespace sparecycles::package
