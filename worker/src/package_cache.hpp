// The worker's task packages: fetching them from the coordinator in chunks (resumable after a
// restart), verifying each one here against the publishers this worker trusts and its owner's
// choices, extracting it for the executor, and remembering refusals. The cache lives in
// <state_dir>/packages (size-capped, least recently used first). docs/packages.md, "Trust
// model"; docs/protocol.md §6.7. Used from the session's loop thread only.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "executor.hpp"
#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/store.hpp"

namespace sparecycles::worker {

struct PackageCacheConfig {
  std::string dir;  // where packages are kept; empty = a temporary directory, removed at the end
  std::uint64_t capacity_bytes = 2ull << 30;  // Default: 2 GiB
  bool accept_native = true, accept_command = true;
  bool allow_unsigned = false;     // the embedded local mode only
  std::vector<std::string> trust;  // extra publisher keys: directories, key files, hex keys
  bool trust_only = false;         // ignore the coordinator's publishers
  std::string pin_file;  // where the coordinator's publishers are pinned; empty = in memory only
  Duration request_timeout = std::chrono::seconds(10);  // a chunk not answered is asked again
};

struct PackageCacheStats {
  std::uint64_t fetched = 0, fetch_bytes = 0, refused = 0, retries = 0;
};

class PackageCache {
 public:
  static Result<std::unique_ptr<PackageCache>> Open(PackageCacheConfig config);
  ~PackageCache();

  /// The coordinator's publisher keys from Welcome: pinned on first use; afterwards only keys
  /// that were pinned and are still announced are trusted (a new key needs --trust).
  void OnPublishers(const std::vector<std::string>& keys);

  enum class State { kReady, kRefused, kFetching };
  /// What a lease of package `id` may do now; starts fetching it when it is not held.
  State Want(const Hash256& id, TimePoint now);
  std::shared_ptr<const PackageRef> Ready(const Hash256& id) const;
  /// Why the package was refused ("unknown signer: ..."), if it was.
  std::optional<std::string> Refusal(const Hash256& id) const;

  /// Requests to send now: new fetches, retries after "busy", timed-out requests.
  std::vector<proto::PackageGet> DueRequests(TimePoint now);
  /// After a reconnect: every fetch in progress asks again at once.
  void ResendAll();
  /// A chunk arrived. Returns the package whose state changed (ready or refused), if any.
  std::optional<Hash256> OnChunk(const proto::PackageChunk& c, TimePoint now);

  const PackageCacheStats& stats() const { return stats_; }
  /// Where package units get their working directories (created by Open, emptied each run).
  std::string units_dir() const { return config_.dir + "/units"; }
  std::vector<std::pair<Hash256, std::string>> refusals() const;
  std::size_t fetching() const { return fetches_.size(); }

 private:
  explicit PackageCache(PackageCacheConfig c) : config_(std::move(c)) {}
  package::VerifyOptions Verification() const;
  void Refuse(const Hash256& id, std::string reason);
  /// Verifies a complete package (unless the store's Finish just did) and extracts it.
  void Prepare(const Hash256& id, const package::Package& pkg, bool verified);
  void RebuildTrust();

  struct Fetch {
    std::uint64_t offset = 0;
    bool in_flight = false;
    TimePoint due{}, sent{};
  };

  PackageCacheConfig config_;
  bool temporary_dir_ = false;
  std::unique_ptr<package::PackageStore> store_;
  package::TrustSet configured_, trust_;
  std::optional<std::set<package::PublicKey>> pinned_;
  std::set<package::PublicKey> announced_, warned_;
  std::map<Hash256, Fetch> fetches_;
  std::map<Hash256, std::shared_ptr<const PackageRef>> ready_;
  std::map<Hash256, std::string> refused_;
  PackageCacheStats stats_;
};

}  // namespace sparecycles::worker
