#include "package_cache.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sparecycles/core/log.hpp"
#include "sparecycles/package/job.hpp"

namespace sparecycles::worker {
namespace fs = std::filesystem;

namespace {

std::optional<std::set<package::PublicKey>> ReadPins(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::set<package::PublicKey> keys;
  std::string line;
  while (std::getline(in, line) && keys.size() < package::kMaxTrustedKeys) {
    if (line.empty() || line[0] == '#') continue;
    if (auto k = package::ParsePublicKeyHex(line); k.ok()) keys.insert(*k);
  }
  return keys;
}

}  // namespace

Result<std::unique_ptr<PackageCache>> PackageCache::Open(PackageCacheConfig config) {
  std::unique_ptr<PackageCache> c(new PackageCache(std::move(config)));
  if (c->config_.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sparecycles-worker-pkg-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      return Unavailable("cannot create a temporary package directory in " + tmpl);
    c->config_.dir = tmpl;
    c->temporary_dir_ = true;
  }
  // The executor runs in the unit's directory: every path it is given must be absolute, whatever
  // the worker's own working directory (`--state-dir ws` is a natural thing to type).
  {
    std::error_code ec;
    fs::path abs = fs::absolute(c->config_.dir, ec);
    if (ec) return Unavailable("cannot resolve " + c->config_.dir + ": " + ec.message());
    c->config_.dir = abs.lexically_normal().string();
    if (c->config_.dir.size() > 1 && c->config_.dir.back() == '/') c->config_.dir.pop_back();
  }
  for (const auto& spec : c->config_.trust) {
    Status s = c->configured_.AddFrom(spec);
    if (!s.ok()) return InvalidArgument("--trust " + spec + ": " + s.message());
  }
  package::StoreOptions so;
  so.capacity_bytes = c->config_.capacity_bytes;
  std::size_t dropped = 0;
  auto store = package::PackageStore::Open(c->config_.dir, so, &dropped);
  if (!store.ok()) return store.status();
  c->store_ = std::move(*store);
  if (dropped > 0) SC_LOG(Warn) << dropped << " cached packages were damaged and removed";
  // Extracted copies are remade from verified packages in each run.
  std::error_code ec;
  for (const char* sub : {"/extracted", "/units"}) {
    fs::remove_all(c->config_.dir + sub, ec);
    fs::create_directories(c->config_.dir + sub, ec);
    if (ec) return Unavailable("cannot create " + c->config_.dir + sub + ": " + ec.message());
  }
  c->pinned_ = ReadPins(c->config_.pin_file);
  c->RebuildTrust();
  return c;
}

PackageCache::~PackageCache() {
  if (!temporary_dir_) return;
  store_.reset();
  std::error_code ec;
  fs::remove_all(config_.dir, ec);
}

void PackageCache::RebuildTrust() {
  trust_ = configured_;
  if (config_.trust_only || !pinned_) return;
  for (const auto& k : *pinned_)
    if (announced_.contains(k)) trust_.Add(k);
}

void PackageCache::OnPublishers(const std::vector<std::string>& keys) {
  announced_.clear();
  for (const auto& raw : keys) {
    package::PublicKey k;
    if (raw.size() != k.bytes.size()) continue;
    std::copy(raw.begin(), raw.end(), k.bytes.begin());
    announced_.insert(k);
  }
  if (!pinned_ && !announced_.empty()) {
    // Trust on first use: the publishers of the first coordinator this worker joined.
    pinned_ = announced_;
    if (!config_.pin_file.empty()) {
      std::string text = "# publishers pinned on first use; delete this file to pin again\n";
      for (const auto& k : *pinned_) text += k.Hex() + "\n";
      if (Status s = package::WriteFileAtomic(config_.pin_file, text); !s.ok())
        SC_LOG(Warn) << "cannot pin the coordinator's publishers: " << s.message();
    }
    SC_LOG(Info) << "pinned " << pinned_->size() << " package publishers of this coordinator";
  } else if (pinned_) {
    for (const auto& k : announced_)
      if (!pinned_->contains(k) && warned_.insert(k).second)
        SC_LOG(Warn) << "the coordinator announces publisher " << k.ShortId()
                     << ", which is not pinned here; its packages are refused unless you add it "
                        "with --trust";
  }
  RebuildTrust();
}

package::VerifyOptions PackageCache::Verification() const {
  package::VerifyOptions v;
  v.trust = &trust_;
  v.require_signature = !config_.allow_unsigned;
  v.check_platform = true;
  v.accept_native = config_.accept_native;
  v.accept_command = config_.accept_command;
  return v;
}

void PackageCache::Refuse(const Hash256& id, std::string reason) {
  SC_LOG(Warn) << "refused package " << package::ShortId(id) << ": " << reason;
  fetches_.erase(id);
  refused_[id] = std::move(reason);
  ++stats_.refused;
}

void PackageCache::Prepare(const Hash256& id, const package::Package& pkg, bool verified) {
  if (!verified) {
    const package::Verdict v = pkg.Verify(Verification());
    if (!v.ok()) return Refuse(id, v.ToString());
  }
  const package::Manifest& m = pkg.manifest();
  for (const auto& program : m.command.required_programs)
    if (::access(program.c_str(), X_OK) != 0)
      return Refuse(id, "required program missing: " + program + " is not installed here");
  const std::string dir = config_.dir + "/extracted/" + ToHex(id);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (Status s = pkg.Extract(dir); !s.ok()) return Refuse(id, "cannot extract: " + s.message());
  auto ref = std::make_shared<PackageRef>();
  ref->id = id;
  ref->dir = fs::absolute(dir).string();
  ref->manifest = m;
  ready_[id] = std::move(ref);
  fetches_.erase(id);
  SC_LOG(Info) << "package " << package::ShortId(id) << " (" << m.name << " " << m.version << ", "
               << package::KindName(m.kind) << ") is ready";
}

PackageCache::State PackageCache::Want(const Hash256& id, TimePoint now) {
  if (ready_.contains(id)) return State::kReady;
  if (refused_.contains(id)) return State::kRefused;
  if (fetches_.contains(id)) return State::kFetching;
  if (store_->Has(id)) {  // fetched in an earlier run
    auto pkg = store_->Load(id);
    if (pkg.ok()) {
      Prepare(id, *pkg, /*verified=*/false);  // today's trust may differ from the fetch's
      return ready_.contains(id) ? State::kReady : State::kRefused;
    }
  }
  Fetch f;
  f.offset = store_->PartialHeld(id).value_or(0);  // a killed fetch continues where it stopped
  f.due = now;
  fetches_[id] = f;
  if (f.offset > 0)
    SC_LOG(Info) << "resuming the fetch of package " << package::ShortId(id) << " at byte "
                 << f.offset;
  return State::kFetching;
}

std::shared_ptr<const PackageRef> PackageCache::Ready(const Hash256& id) const {
  auto it = ready_.find(id);
  return it == ready_.end() ? nullptr : it->second;
}

std::optional<std::string> PackageCache::Refusal(const Hash256& id) const {
  auto it = refused_.find(id);
  if (it == refused_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<Hash256, std::string>> PackageCache::refusals() const {
  return {refused_.begin(), refused_.end()};
}

std::vector<proto::PackageGet> PackageCache::DueRequests(TimePoint now) {
  std::vector<proto::PackageGet> out;
  for (auto& [id, f] : fetches_) {
    if (f.in_flight && now - f.sent >= config_.request_timeout) {
      f.in_flight = false;  // lost (a coordinator restart, a dropped frame): ask again
      ++stats_.retries;
    }
    if (f.in_flight || now < f.due) continue;
    out.push_back(proto::PackageGet{package::PackageIdBytes(id), f.offset});
    f.in_flight = true;
    f.sent = now;
  }
  return out;
}

void PackageCache::ResendAll() {
  for (auto& [id, f] : fetches_) {
    f.in_flight = false;
    f.due = TimePoint{};
  }
}

std::optional<Hash256> PackageCache::OnChunk(const proto::PackageChunk& c, TimePoint now) {
  const Hash256 id = package::PackageIdFromBytes(c.package_id);
  auto it = fetches_.find(id);
  if (it == fetches_.end()) return std::nullopt;  // not asked for (any more)
  Fetch& f = it->second;
  f.in_flight = false;
  if (c.code == static_cast<std::uint16_t>(StatusCode::kUnavailable)) {
    f.due = now + std::chrono::milliseconds(std::clamp<std::uint32_t>(c.retry_ms, 10, 10000));
    ++stats_.retries;
    return std::nullopt;
  }
  if (c.code != 0) {
    Refuse(id, "the coordinator cannot serve it: " + c.message);
    return id;
  }
  if (c.offset != f.offset) return std::nullopt;  // an answer to an older request
  auto held = store_->Begin(id, c.total_size);
  if (!held.ok()) {
    Refuse(id, held.status().message());
    return id;
  }
  if (*held != c.offset) {  // the store knows better (e.g. a partial file from an earlier run)
    f.offset = *held;
    f.due = now;
    return std::nullopt;
  }
  auto next = store_->Append(id, c.offset, c.bytes);
  if (!next.ok()) {
    store_->Abort(id);
    f.offset = 0;
    f.due = now + std::chrono::seconds(1);
    ++stats_.retries;
    return std::nullopt;
  }
  stats_.fetch_bytes += c.bytes.size();
  f.offset = *next;
  f.due = now;
  if (*next < c.total_size) return std::nullopt;
  auto pkg = store_->Finish(id, Verification());
  ++stats_.fetched;
  if (!pkg.ok()) {
    Refuse(id, pkg.status().message());
    return id;
  }
  Prepare(id, *pkg, /*verified=*/true);  // Finish verified it with this cache's options
  return id;
}

}  // namespace sparecycles::worker
