// The coordinator's task packages: the content-addressed store in DATA_DIR/packages (a temporary
// directory without a data directory), the publishers it accepts, chunked uploads from clients,
// chunked fetches by peers with a bound on concurrent transfers, and the stand-in tasks the
// scheduler runs package jobs with. docs/packages.md, "Distribution"; docs/protocol.md §6.7, §7.1.
// Used from the event loop thread only (the store itself is thread-safe).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "package_tasks.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/package/store.hpp"

namespace sparecycles::coordinator {

struct PackageServiceConfig {
  std::string dir;  // the store's directory; empty = a temporary one, removed with the service
  std::vector<std::string> publishers;  // --publishers: directories, key files or hex keys
  bool allow_unsigned = false;          // the embedded local mode: the researcher's own packages
  std::uint64_t max_package_bytes = package::kDefaultMaxPackageBytes;  // Default: 256 MiB
  std::size_t max_transfers = 4;  // peers fetching at once; the rest are asked to retry
  Duration transfer_idle = std::chrono::seconds(2);  // a fetcher silent this long frees its place
};

struct PackageStats {
  std::uint64_t uploads_done = 0, uploads_refused = 0, upload_bytes = 0;
  std::uint64_t chunks_served = 0, fetch_bytes = 0, fetches_deferred = 0, refusals = 0;
};

class PackageService {
 public:
  static Result<std::unique_ptr<PackageService>> Open(PackageServiceConfig config);
  ~PackageService();

  /// The stand-in task of "pkg:<id>" for the scheduler (verified again against today's publishers).
  Result<ResolvedTask> Resolve(const std::string& task);
  proto::PackagePutReply OnPut(const proto::PackagePut& m);
  bool Has(const Hash256& id) const { return store_->Has(id); }
  proto::PackageList List() const;
  proto::PackageChunk OnGet(const std::string& peer_identity, const proto::PackageGet& m,
                            TimePoint now);
  /// The publisher keys announced in Welcome (32 bytes each).
  std::vector<std::string> PublisherKeys() const;
  void NoteRefusal() { ++stats_.refusals; }
  const PackageStats& stats() const { return stats_; }
  const std::string& dir() const { return config_.dir; }

 private:
  explicit PackageService(PackageServiceConfig config) : config_(std::move(config)) {}
  package::VerifyOptions Verification() const;

  PackageServiceConfig config_;
  bool temporary_dir_ = false;
  package::TrustSet trust_;
  std::unique_ptr<package::PackageStore> store_;
  std::map<Hash256, std::shared_ptr<const PackageTask>> tasks_;  // decoded manifests, by id
  mutable std::map<Hash256, proto::PackageInfo> listed_;  // what List() shows, read once per id
  std::map<std::string, TimePoint> fetchers_;             // peer identity -> last chunk
  PackageStats stats_;
};

}  // namespace sparecycles::coordinator
