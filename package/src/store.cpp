// The content-addressed package store: packages/<id hex>.scpkg for complete packages,
// partial/<id hex>.part (+ .size, the declared total) for transfers in progress.
#include "sparecycles/package/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sparecycles::package {
namespace fs = std::filesystem;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string Hex(const Hash256& id) { return ToHex(id); }

Result<std::string> ReadAllBounded(const std::string& path, std::uint64_t max) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return NotFound("cannot read " + path + ": " + ec.message());
  if (size > max) return ResourceExhausted(path + " exceeds the package size limit");
  std::ifstream in(path, std::ios::binary);
  std::string data(size, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(size)))
    return DataLoss("short read from " + path);
  return data;
}

std::int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

Status Fsync(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Unavailable("cannot sync " + path);
  return OkStatus();
}

}  // namespace

std::optional<Hash256> ParseId(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Hash256 id{};
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return id;
}

std::string PackageStore::PackagePath(const Hash256& id) const {
  return dir_ + "/packages/" + Hex(id) + ".scpkg";
}
std::string PackageStore::PartialPath(const Hash256& id) const {
  return dir_ + "/partial/" + Hex(id) + ".part";
}

Result<std::unique_ptr<PackageStore>> PackageStore::Open(const std::string& dir,
                                                         const StoreOptions& options,
                                                         std::size_t* dropped) {
  std::error_code ec;
  for (const char* sub : {"/packages", "/partial"}) {
    fs::create_directories(dir + sub, ec);
    if (ec) return Unavailable("cannot create " + dir + sub + ": " + ec.message());
  }
  std::unique_ptr<PackageStore> store(new PackageStore(dir, options));
  std::size_t bad = 0;
  for (const auto& e : fs::directory_iterator(dir + "/packages", ec)) {
    const std::string name = e.path().filename().string();
    const auto id = name.size() == 70 && name.substr(64) == ".scpkg" ? ParseId(name.substr(0, 64))
                                                                     : std::nullopt;
    if (!id || !e.is_regular_file(ec)) {
      // Temporary files of an interrupted rename, or anything else: not ours to keep.
      fs::remove_all(e.path(), ec);
      continue;
    }
    if (options.verify_on_open) {
      auto bytes = ReadAllBounded(e.path().string(), options.max_package_bytes);
      if (!bytes.ok() || Blake2b256(*bytes) != *id) {
        ++bad;
        fs::remove(e.path(), ec);
        continue;
      }
    }
    StoredPackage p;
    p.id = *id;
    p.size = fs::file_size(e.path(), ec);
    p.last_used_ns = MtimeNs(e.path().string());
    store->packages_[*id] = p;
  }
  for (const auto& e : fs::directory_iterator(dir + "/partial", ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 69 || name.substr(64) != ".part") continue;
    const auto id = ParseId(name.substr(0, 64));
    std::ifstream size_file(dir + "/partial/" + name.substr(0, 64) + ".size");
    std::uint64_t total = 0;
    const std::uint64_t held = fs::file_size(e.path(), ec);
    if (!id || !(size_file >> total) || total > options.max_package_bytes || held > total ||
        store->partial_.size() >= options.max_partial || store->packages_.count(*id)) {
      fs::remove(e.path(), ec);
      fs::remove(dir + "/partial/" + name.substr(0, 64) + ".size", ec);
      continue;
    }
    store->partial_[*id] = Partial{total, held};
  }
  if (dropped) *dropped = bad;
  return store;
}

bool PackageStore::Has(const Hash256& id) const {
  std::lock_guard lock(mu_);
  return packages_.count(id) > 0;
}

std::vector<StoredPackage> PackageStore::List() const {
  std::lock_guard lock(mu_);
  std::vector<StoredPackage> out;
  for (const auto& [id, p] : packages_) out.push_back(p);
  return out;
}

std::uint64_t PackageStore::TotalBytes() const {
  std::lock_guard lock(mu_);
  std::uint64_t total = 0;
  for (const auto& [id, p] : packages_) total += p.size;
  return total;
}

Result<std::uint64_t> PackageStore::Begin(const Hash256& id, std::uint64_t total_size) {
  std::lock_guard lock(mu_);
  if (packages_.count(id)) return total_size;
  if (total_size == 0 || total_size > options_.max_package_bytes)
    return ResourceExhausted("a package of " + std::to_string(total_size) +
                             " bytes exceeds the limit of " +
                             std::to_string(options_.max_package_bytes));
  if (options_.capacity_bytes > 0 && total_size > options_.capacity_bytes)
    return ResourceExhausted("a package of " + std::to_string(total_size) +
                             " bytes exceeds the cache capacity");
  if (auto it = partial_.find(id); it != partial_.end()) {
    if (it->second.total != total_size)
      return InvalidArgument("package " + Hex(id).substr(0, 16) + " was announced with " +
                             std::to_string(it->second.total) + " bytes, now with " +
                             std::to_string(total_size));
    return it->second.held;
  }
  if (partial_.size() >= options_.max_partial)
    return Unavailable("too many transfers in progress (" + std::to_string(options_.max_partial) +
                       "); retry later");
  const std::string part = PartialPath(id);
  const std::string size_path = dir_ + "/partial/" + Hex(id) + ".size";
  {
    std::ofstream s(size_path, std::ios::trunc);
    s << total_size << "\n";
    std::ofstream p(part, std::ios::binary | std::ios::trunc);
    if (!s || !p) return Unavailable("cannot create a partial file in " + dir_ + "/partial");
  }
  partial_[id] = Partial{total_size, 0};
  return std::uint64_t{0};
}

Result<std::uint64_t> PackageStore::Append(const Hash256& id, std::uint64_t offset,
                                           std::string_view chunk) {
  std::lock_guard lock(mu_);
  auto it = partial_.find(id);
  if (it == partial_.end())
    return FailedPrecondition("no transfer of package " + Hex(id).substr(0, 16) + " in progress");
  Partial& p = it->second;
  if (chunk.size() > kMaxChunkBytes) return InvalidArgument("a chunk is at most 1 MiB");
  if (offset != p.held)
    return FailedPrecondition("chunk at offset " + std::to_string(offset) + ", expected " +
                              std::to_string(p.held));
  if (chunk.size() > p.total - p.held)
    return InvalidArgument("the chunk runs past the package's announced size");
  const int fd = ::open(PartialPath(id).c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return Unavailable("cannot open the partial file: " + std::string(std::strerror(errno)));
  std::size_t done = 0;
  while (done < chunk.size()) {
    const ssize_t n =
        ::pwrite(fd, chunk.data() + done, chunk.size() - done, static_cast<off_t>(p.held + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return Unavailable("cannot write the partial file: " + std::string(std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  p.held += chunk.size();
  return p.held;
}

void PackageStore::Abort(const Hash256& id) {
  std::lock_guard lock(mu_);
  std::error_code ec;
  fs::remove(PartialPath(id), ec);
  fs::remove(dir_ + "/partial/" + Hex(id) + ".size", ec);
  partial_.erase(id);
}

Result<Package> PackageStore::Finish(const Hash256& id, const VerifyOptions& verify) {
  std::unique_lock lock(mu_);
  auto it = partial_.find(id);
  if (it == partial_.end()) {
    if (packages_.count(id)) {
      lock.unlock();
      return Load(id);
    }
    return FailedPrecondition("no transfer of package " + Hex(id).substr(0, 16) + " in progress");
  }
  const Partial p = it->second;
  auto discard = [&] {
    std::error_code ec;
    fs::remove(PartialPath(id), ec);
    fs::remove(dir_ + "/partial/" + Hex(id) + ".size", ec);
    partial_.erase(id);
  };
  if (p.held != p.total)
    return FailedPrecondition("only " + std::to_string(p.held) + " of " + std::to_string(p.total) +
                              " bytes received");
  auto bytes = ReadAllBounded(PartialPath(id), options_.max_package_bytes);
  if (!bytes.ok()) {
    discard();
    return bytes.status();
  }
  if (Blake2b256(*bytes) != id) {
    discard();
    return DataLoss("hash mismatch: the received bytes are not package " + Hex(id));
  }
  DecodeOptions d;
  d.max_package_bytes = options_.max_package_bytes;
  auto pkg = Package::Decode(*bytes, d);
  if (!pkg.ok()) {
    discard();
    return Status(pkg.status().code(), "malformed package: " + pkg.status().message());
  }
  if (Verdict v = pkg->Verify(verify); !v.ok()) {
    discard();
    return FailedPrecondition(v.ToString());
  }
  // Durable before it is announced: sync the bytes, then rename into place.
  if (Status s = Fsync(PartialPath(id)); !s.ok()) return s;
  std::error_code ec;
  fs::rename(PartialPath(id), PackagePath(id), ec);
  if (ec) return Unavailable("cannot move the package into the store: " + ec.message());
  fs::remove(dir_ + "/partial/" + Hex(id) + ".size", ec);
  partial_.erase(id);
  packages_[id] = StoredPackage{id, p.total, MtimeNs(PackagePath(id)), next_seq_++};
  EvictLocked(id);
  return pkg;
}

Result<Hash256> PackageStore::Put(std::string_view bytes, const VerifyOptions& verify) {
  const Hash256 id = Blake2b256(bytes);
  auto offset = Begin(id, bytes.size());
  if (!offset.ok()) return offset.status();
  for (std::uint64_t at = *offset; at < bytes.size(); at += kMaxChunkBytes) {
    auto next = Append(
        id, at, bytes.substr(at, std::min<std::uint64_t>(kMaxChunkBytes, bytes.size() - at)));
    if (!next.ok()) return next.status();
  }
  auto pkg = Finish(id, verify);
  if (!pkg.ok()) return pkg.status();
  return id;
}

Result<Package> PackageStore::Load(const Hash256& id) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    auto it = packages_.find(id);
    if (it == packages_.end())
      return NotFound("package " + Hex(id).substr(0, 16) + " is not in the store");
    path = PackagePath(id);
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // now: the LRU clock, kept across restarts
    it->second.last_used_ns = MtimeNs(path);
    it->second.use_seq = next_seq_++;
  }
  auto bytes = ReadAllBounded(path, options_.max_package_bytes);
  if (!bytes.ok()) return bytes.status();
  if (Blake2b256(*bytes) != id) {
    (void)Remove(id);
    return DataLoss("stored package " + Hex(id).substr(0, 16) +
                    " no longer matches its id; removed");
  }
  DecodeOptions d;
  d.max_package_bytes = options_.max_package_bytes;
  return Package::Decode(*bytes, d);
}

std::optional<std::uint64_t> PackageStore::PartialHeld(const Hash256& id) const {
  std::lock_guard lock(mu_);
  auto it = partial_.find(id);
  if (it == partial_.end()) return std::nullopt;
  return it->second.held;
}

std::optional<std::uint64_t> PackageStore::Size(const Hash256& id) const {
  std::lock_guard lock(mu_);
  auto it = packages_.find(id);
  if (it == packages_.end()) return std::nullopt;
  return it->second.size;
}

Result<std::string> PackageStore::ReadChunk(const Hash256& id, std::uint64_t offset,
                                            std::uint64_t max) const {
  std::uint64_t size = 0;
  std::string path;
  {
    std::lock_guard lock(mu_);
    auto it = packages_.find(id);
    if (it == packages_.end())
      return NotFound("package " + Hex(id).substr(0, 16) + " is not in the store");
    size = it->second.size;
    path = PackagePath(id);
  }
  if (offset > size) return InvalidArgument("offset past the end of the package");
  const std::uint64_t n = std::min({max, kMaxChunkBytes, size - offset});
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string data(n, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(n)))
    return DataLoss("short read from " + path);
  return data;
}

Status PackageStore::Remove(const Hash256& id) {
  std::lock_guard lock(mu_);
  if (!packages_.erase(id))
    return NotFound("package " + Hex(id).substr(0, 16) + " is not in the store");
  std::error_code ec;
  fs::remove(PackagePath(id), ec);
  return OkStatus();
}

void PackageStore::EvictLocked(const Hash256& keep) {
  if (options_.capacity_bytes == 0) return;
  std::uint64_t total = 0;
  for (const auto& [id, p] : packages_) total += p.size;
  while (total > options_.capacity_bytes) {
    const StoredPackage* oldest = nullptr;
    for (const auto& [id, p] : packages_)
      if (id != keep && (oldest == nullptr || std::pair(p.last_used_ns, p.use_seq) <
                                                  std::pair(oldest->last_used_ns, oldest->use_seq)))
        oldest = &p;
    if (oldest == nullptr) return;
    const Hash256 victim = oldest->id;
    total -= oldest->size;
    std::error_code ec;
    fs::remove(PackagePath(victim), ec);
    packages_.erase(victim);
    evicted_.push_back(victim);
  }
}

}  // namespace sparecycles::package
