#include "spool.hpp"

#include <filesystem>

#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"

namespace sparecycles::worker {

ResultSpool::ResultSpool(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    SC_LOG(Warn) << "result spool disabled: cannot create " << dir_ << ": " << ec.message();
    dir_.clear();
  }
}

std::string ResultSpool::Path(std::uint64_t lease_id) const {
  return dir_ + "/" + std::to_string(lease_id) + ".result";
}

bool ResultSpool::Put(const proto::ResultMsg& result) {
  if (dir_.empty() || result.wall_seconds < kSpoolMinSeconds) return false;
  // No fsync per result: the spool guards against the worker process dying (the page cache
  // survives that), and an fsync per unit would cost milliseconds on every result. A power cut
  // can lose unacknowledged results; the coordinator then simply reissues those units.
  Status s = WriteFileAtomic(Path(result.lease_id), proto::Encode(result), /*sync=*/false);
  if (!s.ok()) {
    SC_LOG(Warn) << "could not spool a result: " << s.ToString();
    return false;
  }
  on_disk_.insert(result.lease_id);
  return true;
}

void ResultSpool::Remove(std::uint64_t lease_id) {
  if (on_disk_.erase(lease_id) == 0) return;
  std::error_code ec;
  std::filesystem::remove(Path(lease_id), ec);
}

std::map<std::uint64_t, proto::ResultMsg> ResultSpool::Load() {
  std::map<std::uint64_t, proto::ResultMsg> out;
  if (dir_.empty()) return out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    auto drop = [&](const std::string& why) {
      SC_LOG(Warn) << "dropped spooled file " << name << ": " << why;
      std::filesystem::remove(entry.path(), ec);
      ++dropped_;
    };
    if (name.size() < 8 || name.substr(name.size() - 7) != ".result") {
      if (name.find(".tmp.") == std::string::npos) continue;
      drop("left over from an interrupted write");
      continue;
    }
    std::uint64_t lease = 0;
    try {
      lease = std::stoull(name.substr(0, name.size() - 7));
    } catch (...) {
      drop("not a lease id");
      continue;
    }
    auto frame = ReadFile(entry.path().string(), static_cast<std::size_t>(proto::kMaxFrameBytes));
    if (!frame.ok()) {
      drop(frame.status().ToString());
      continue;
    }
    std::string_view body;
    auto type = proto::ParseHeader(*frame, body);
    proto::ResultMsg r;
    if (!type.ok() || *type != proto::MsgType::kResult || !proto::Decode(body, r).ok() ||
        r.lease_id != lease) {
      drop("not a valid result frame");
      continue;
    }
    on_disk_.insert(lease);
    out.emplace(lease, std::move(r));
  }
  return out;
}

}  // namespace sparecycles::worker
