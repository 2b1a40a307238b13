#include "package_service.hpp"

#include <cstdlib>
#include <filesystem>

#include "sparecycles/core/log.hpp"
#include "sparecycles/package/job.hpp"

namespace sparecycles::coordinator {
namespace fs = std::filesystem;

namespace {}  // namespace

Result<std::unique_ptr<PackageService>> PackageService::Open(PackageServiceConfig config) {
  std::unique_ptr<PackageService> s(new PackageService(std::move(config)));
  if (s->config_.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sparecycles-packages-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      return Unavailable("cannot create a temporary package directory in " + tmpl);
    s->config_.dir = tmpl;
    s->temporary_dir_ = true;
  }
  for (const auto& spec : s->config_.publishers) {
    Status st = s->trust_.AddFrom(spec);
    if (!st.ok()) return InvalidArgument("--publishers " + spec + ": " + st.message());
  }
  package::StoreOptions so;
  so.max_package_bytes = s->config_.max_package_bytes;
  std::size_t dropped = 0;
  auto store = package::PackageStore::Open(s->config_.dir, so, &dropped);
  if (!store.ok()) return store.status();
  s->store_ = std::move(*store);
  if (dropped > 0)
    SC_LOG(Warn) << dropped << " stored packages no longer matched their ids and were removed";
  const auto held = s->store_->List().size();
  if (held > 0) SC_LOG(Info) << held << " task packages in " << s->config_.dir;
  return s;
}

PackageService::~PackageService() {
  if (!temporary_dir_) return;
  store_.reset();
  std::error_code ec;
  fs::remove_all(config_.dir, ec);
}

package::VerifyOptions PackageService::Verification() const {
  package::VerifyOptions v;
  v.trust = &trust_;
  v.require_signature = !config_.allow_unsigned;
  v.check_platform = false;  // the coordinator never runs it; each worker checks its own platform
  return v;
}

std::vector<std::string> PackageService::PublisherKeys() const {
  std::vector<std::string> out;
  for (const auto& k : trust_.keys())
    out.emplace_back(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size());
  return out;
}

Result<ResolvedTask> PackageService::Resolve(const std::string& task) {
  auto id = package::ParsePackageTaskName(task);
  if (!id) return InvalidArgument("'" + task + "' does not name a package (pkg:<64 hex digits>)");
  auto it = tasks_.find(*id);
  if (it == tasks_.end()) {
    if (!store_->Has(*id))
      return NotFound("package " + package::ShortId(*id) +
                      " is not on this coordinator; upload it first (submit --package does)");
    auto pkg = store_->Load(*id);
    if (!pkg.ok()) return pkg.status();
    const package::Verdict v = pkg->Verify(Verification());
    if (!v.ok())
      return FailedPrecondition("package " + package::ShortId(*id) + " refused: " + v.ToString());
    it = tasks_.emplace(*id, std::make_shared<PackageTask>(*id, pkg->manifest())).first;
  }
  return ResolvedTask{it->second, it->second->PeerKey()};
}

proto::PackagePutReply PackageService::OnPut(const proto::PackagePut& m) {
  proto::PackagePutReply r;
  r.request_id = m.request_id;
  const Hash256 id = package::PackageIdFromBytes(m.package_id);
  auto fail = [&](const Status& s) {
    r.code = static_cast<std::uint16_t>(s.code());
    r.message = s.message();
    return r;
  };
  if (store_->Has(id)) {
    r.next_offset = m.total_size;
    r.complete = true;
    return r;
  }
  if (m.total_size == 0) return fail(InvalidArgument("a package is never empty"));
  if (m.total_size > config_.max_package_bytes) {
    ++stats_.uploads_refused;
    return fail(ResourceExhausted("the package is " + std::to_string(m.total_size) +
                                  " bytes; this coordinator accepts at most " +
                                  std::to_string(config_.max_package_bytes) +
                                  " (--max-package-size)"));
  }
  if (!config_.allow_unsigned && trust_.empty()) {
    ++stats_.uploads_refused;
    return fail(FailedPrecondition(
        "this coordinator accepts no publisher keys yet; start it with --publishers DIR"));
  }
  auto at = store_->Begin(id, m.total_size);
  if (!at.ok()) return fail(at.status());
  r.next_offset = *at;
  if (m.bytes.empty()) return r;  // where to continue
  if (m.offset != *at)
    return fail(FailedPrecondition("expected the chunk at offset " + std::to_string(*at)));
  auto next = store_->Append(id, m.offset, m.bytes);
  if (!next.ok()) return fail(next.status());
  r.next_offset = *next;
  stats_.upload_bytes += m.bytes.size();
  if (*next < m.total_size) return r;
  // The last chunk: hash, decode and verify the whole package before it is stored.
  auto pkg = store_->Finish(id, Verification());
  if (!pkg.ok()) {
    ++stats_.uploads_refused;
    SC_LOG(Warn) << "refused package " << package::ShortId(id) << ": " << pkg.status().message();
    r.next_offset = 0;
    return fail(pkg.status());
  }
  ++stats_.uploads_done;
  const auto& man = pkg->manifest();
  SC_LOG(Info) << "stored package " << package::ShortId(id) << " (" << man.name << " "
               << man.version << ", " << package::KindName(man.kind) << ", " << m.total_size
               << " bytes, signed by "
               << (pkg->signature() ? pkg->signature()->signer.ShortId() : "nobody") << ")";
  r.complete = true;
  return r;
}

proto::PackageList PackageService::List() const {
  proto::PackageList out;
  for (const auto& sp : store_->List()) {
    if (out.packages.size() >= proto::kMaxPackagesListed) break;
    auto it = listed_.find(sp.id);
    if (it == listed_.end()) {  // read (and hash) a stored package once, not at every listing
      proto::PackageInfo info;
      info.package_id = package::PackageIdBytes(sp.id);
      info.size = sp.size;
      auto pkg = store_->Load(sp.id);
      if (pkg.ok()) {
        info.name = pkg->manifest().name;
        info.version = pkg->manifest().version;
        info.kind = std::string(package::KindName(pkg->manifest().kind));
        if (pkg->signature()) info.signer = pkg->signature()->signer.Hex();
      }
      if (!pkg.ok()) {  // shown by id and size only, and read again next time
        out.packages.push_back(std::move(info));
        continue;
      }
      it = listed_.emplace(sp.id, std::move(info)).first;
    }
    out.packages.push_back(it->second);
  }
  return out;
}

proto::PackageChunk PackageService::OnGet(const std::string& peer_identity,
                                          const proto::PackageGet& m, TimePoint now) {
  proto::PackageChunk c;
  c.package_id = m.package_id;
  c.offset = m.offset;
  const Hash256 id = package::PackageIdFromBytes(m.package_id);
  auto size = store_->Size(id);
  if (!size) {
    c.code = static_cast<std::uint16_t>(StatusCode::kNotFound);
    c.message = "package " + package::ShortId(id) + " is not on this coordinator";
    return c;
  }
  c.total_size = *size;
  for (auto it = fetchers_.begin(); it != fetchers_.end();)
    it = now - it->second > config_.transfer_idle ? fetchers_.erase(it) : std::next(it);
  if (!fetchers_.contains(peer_identity) && fetchers_.size() >= config_.max_transfers) {
    ++stats_.fetches_deferred;
    c.code = static_cast<std::uint16_t>(StatusCode::kUnavailable);
    c.message = "busy serving other peers";
    c.retry_ms = 200;
    return c;
  }
  auto chunk = store_->ReadChunk(id, m.offset, proto::kMaxPackageChunkBytes);
  if (!chunk.ok()) {
    c.code = static_cast<std::uint16_t>(chunk.status().code());
    c.message = chunk.status().message();
    return c;
  }
  c.bytes = std::move(*chunk);
  ++stats_.chunks_served;
  stats_.fetch_bytes += c.bytes.size();
  if (m.offset + c.bytes.size() >= *size)
    fetchers_.erase(peer_identity);  // done: its place goes to the next
  else
    fetchers_[peer_identity] = now;
  return c;
}

}  // namespace sparecycles::coordinator
