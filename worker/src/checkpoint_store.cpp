#include "checkpoint_store.hpp"

#include <cstdio>
#include <filesystem>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::worker {
namespace {

// File layout (cereal binary, core/codec.hpp): magic, task, unit fingerprint, fraction, state.
struct FileRecord {
  std::uint32_t magic = 0x504b4353;  // "SCKP"
  std::string task;
  std::uint64_t fingerprint = 0;
  float fraction = 0;
  std::string state;
  template <class A>
  void serialize(A& a) {
    a(magic, task, fingerprint, fraction, state);
  }
};

std::uint64_t Fnv(std::string_view a, std::string_view b) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : a) h = (h ^ c) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

CheckpointStore::CheckpointStore(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    SC_LOG(Warn) << "checkpoints stay in memory only: cannot create " << dir_ << ": "
                 << ec.message();
    dir_.clear();
    return;
  }
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec))
    present_.insert(e.path().filename().string());
}

bool CheckpointStore::Present(const std::string& name) const {
  std::lock_guard lock(mu_);
  return present_.contains(name);
}

std::string CheckpointStore::NameFor(const proto::Lease& lease) const {
  char fp[17];
  std::snprintf(fp, sizeof(fp), "%016llx",
                static_cast<unsigned long long>(Fnv(lease.task, lease.unit)));
  return "job" + std::to_string(lease.job_id) + "-unit" + std::to_string(lease.unit_index) + "-" +
         fp + ".ckpt";
}

void CheckpointStore::Save(const proto::Lease& lease, float fraction,
                           std::string_view state) const {
  if (dir_.empty()) return;
  FileRecord r;
  r.task = lease.task;
  r.fingerprint = Fnv(lease.task, lease.unit);
  r.fraction = fraction;
  r.state = std::string(state);
  const std::string name = NameFor(lease);
  if (Status s = WriteFileAtomic(dir_ + "/" + name, EncodeValue(r)); !s.ok()) {
    SC_LOG(Warn) << "cannot save a checkpoint: " << s.ToString();
    return;
  }
  std::lock_guard lock(mu_);
  present_.insert(name);
}

std::optional<StoredCheckpoint> CheckpointStore::Load(const proto::Lease& lease) const {
  if (dir_.empty()) return std::nullopt;
  const std::string name = NameFor(lease);
  if (!Present(name)) return std::nullopt;
  auto bytes = ReadFile(dir_ + "/" + name, proto::kMaxCheckpointBytes + 4096);
  if (!bytes.ok()) return std::nullopt;
  FileRecord r;
  if (!DecodeValue(*bytes, r).ok() || r.magic != FileRecord{}.magic || r.task != lease.task ||
      r.fingerprint != Fnv(lease.task, lease.unit) || !(r.fraction >= 0 && r.fraction <= 1))
    return std::nullopt;
  return StoredCheckpoint{r.fraction, std::move(r.state)};
}

void CheckpointStore::Remove(const proto::Lease& lease) const {
  if (dir_.empty()) return;
  const std::string name = NameFor(lease);
  {
    std::lock_guard lock(mu_);
    if (present_.erase(name) == 0) return;
  }
  std::error_code ec;
  std::filesystem::remove(dir_ + "/" + name, ec);
}

void CheckpointStore::RemoveOlderThan(std::chrono::hours max_age) const {
  if (dir_.empty()) return;
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    auto t = e.last_write_time(ec);
    if (ec || now - t <= max_age) continue;
    std::filesystem::remove(e.path(), ec);
    std::lock_guard lock(mu_);
    present_.erase(e.path().filename().string());
  }
}

}  // namespace sparecycles::worker
