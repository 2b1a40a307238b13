#include "sparecycles/package/job.hpp"

#include <algorithm>

#include "sparecycles/package/store.hpp"
#include "sparecycles/tasks/bytes.hpp"

namespace sparecycles::package {

std::string PackageTaskName(const Hash256& id) { return "pkg:" + ToHex(id); }

std::optional<Hash256> ParsePackageTaskName(std::string_view task) {
  if (!task.starts_with("pkg:")) return std::nullopt;
  return ParseId(task.substr(4));
}

std::string PackageIdBytes(const Hash256& id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

Hash256 PackageIdFromBytes(std::string_view bytes) {
  Hash256 id{};
  std::copy_n(bytes.begin(), std::min(bytes.size(), id.size()), id.begin());
  return id;
}

std::string ShortId(const Hash256& id) { return ToHex(id).substr(0, 16); }

std::string_view KindTaskName(Kind kind) { return kind == Kind::kNative ? "@native" : "@command"; }

std::string EncodeList(const std::vector<std::string>& items) {
  tasks::ByteWriter w;
  w.Put<std::uint64_t>(items.size());
  for (const auto& item : items) w.Str(item);
  return std::move(w).bytes();
}

Result<std::vector<std::string>> DecodeList(std::string_view bytes, std::size_t max_items,
                                            std::string_view what) {
  tasks::ByteReader r(bytes, what);
  const std::uint64_t n = r.Count(max_items, 8);
  std::vector<std::string> out;
  if (r.ok()) out.reserve(n);
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) out.push_back(r.Str(bytes.size()));
  SC_RETURN_IF_ERROR(r.Finish());
  return out;
}

}  // namespace sparecycles::package
