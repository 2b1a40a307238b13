// A content-addressed directory of task packages: what the coordinator keeps uploaded packages
// in (across restarts) and what a worker caches fetched ones in (size-capped, least recently
// used evicted first). Uploads and fetches arrive in bounded chunks and resume from the bytes
// already held, also after a restart. Layout and rules: docs/packages.md, "Distribution".
// Thread-safe: every method takes an internal lock (transfers may run off the event loop).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/package.hpp"

namespace sparecycles::package {

inline constexpr std::uint64_t kMaxChunkBytes = 1ull << 20;  // one upload / fetch chunk

struct StoreOptions {
  std::uint64_t max_package_bytes = kDefaultMaxPackageBytes;  // Default: 256 MiB.
  /// Total bytes of complete packages kept; 0 = no cap (the coordinator). Default: no cap.
  std::uint64_t capacity_bytes = 0;
  /// Uploads or fetches in progress at once. Default: 16.
  std::size_t max_partial = 16;
  /// Re-hash every stored package when opening, dropping any whose bytes no longer match its
  /// id. Default: on.
  bool verify_on_open = true;
};

struct StoredPackage {
  Hash256 id{};
  std::uint64_t size = 0;
  std::int64_t last_used_ns = 0;  // file modification time, refreshed by Load()
  std::uint64_t use_seq = 0;      // order of use in this process (breaks ties of coarse clocks)
};

class PackageStore {
 public:
  /// Opens (creating) `dir` with `packages/` and `partial/` inside. Reports in `dropped` how
  /// many stored files failed the check on open (they are deleted).
  static Result<std::unique_ptr<PackageStore>> Open(const std::string& dir,
                                                    const StoreOptions& options = {},
                                                    std::size_t* dropped = nullptr);

  bool Has(const Hash256& id) const;
  /// Bytes already held of a transfer in progress (after a restart too), if there is one.
  std::optional<std::uint64_t> PartialHeld(const Hash256& id) const;
  /// The size of a stored package, if held.
  std::optional<std::uint64_t> Size(const Hash256& id) const;
  std::vector<StoredPackage> List() const;
  std::uint64_t TotalBytes() const;

  /// Starts receiving package `id` of `total_size` bytes, or resumes it: returns the offset to
  /// continue from (0 for a new transfer). A package already held returns `total_size`.
  Result<std::uint64_t> Begin(const Hash256& id, std::uint64_t total_size);
  /// Appends a chunk at `offset`, which must be the offset Begin() or the last Append() left.
  Result<std::uint64_t> Append(const Hash256& id, std::uint64_t offset, std::string_view chunk);
  /// Completes a transfer: the bytes must hash to `id`, decode, and pass `verify`; then the
  /// package is stored atomically. On any refusal the partial bytes are discarded.
  Result<Package> Finish(const Hash256& id, const VerifyOptions& verify);
  /// Drops a transfer in progress.
  void Abort(const Hash256& id);

  /// Stores a whole package at once (Begin + Append... + Finish).
  Result<Hash256> Put(std::string_view bytes, const VerifyOptions& verify);
  /// Reads and decodes a stored package (re-checking its hash) and marks it used.
  Result<Package> Load(const Hash256& id);
  /// Serves up to `max` bytes (at most kMaxChunkBytes) of a stored package from `offset`.
  Result<std::string> ReadChunk(const Hash256& id, std::uint64_t offset, std::uint64_t max) const;
  Status Remove(const Hash256& id);

  /// Ids evicted so far (capacity), newest last; for logs and tests.
  const std::vector<Hash256>& evicted() const { return evicted_; }

 private:
  PackageStore(std::string dir, StoreOptions o) : dir_(std::move(dir)), options_(o) {}
  std::string PackagePath(const Hash256& id) const;
  std::string PartialPath(const Hash256& id) const;
  void EvictLocked(const Hash256& keep);

  std::string dir_;
  StoreOptions options_;
  mutable std::mutex mu_;
  std::map<Hash256, StoredPackage> packages_;
  struct Partial {
    std::uint64_t total = 0, held = 0;
  };
  std::map<Hash256, Partial> partial_;
  std::vector<Hash256> evicted_;
  std::uint64_t next_seq_ = 1;
};

/// Parses 64 hex digits into an id.
std::optional<Hash256> ParseId(std::string_view hex);

}  // namespace sparecycles::package
