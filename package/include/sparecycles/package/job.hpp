// How a job carries a task package over the wire (docs/protocol.md §7.1): the job's task is
// "pkg:" + the package id in hex, its input is the list of unit bytes the client cut, and its
// merged result is the list of the units' results in unit order. Shared by the SDK (which splits
// and merges), the coordinator (which treats both lists as data) and the worker. Stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/manifest.hpp"

namespace sparecycles::package {

/// "pkg:<64 hex digits>".
std::string PackageTaskName(const Hash256& id);
/// The id a task name refers to; nullopt when `task` does not name a package.
std::optional<Hash256> ParsePackageTaskName(std::string_view task);

/// A package id as it travels in messages (32 raw bytes) and back; `bytes` must be 32 bytes long
/// (the messages' Validate() checks it). ShortId: the first 16 hex digits, how logs name it.
std::string PackageIdBytes(const Hash256& id);
Hash256 PackageIdFromBytes(std::string_view bytes);
std::string ShortId(const Hash256& id);

/// What a worker announces in Hello (TaskInfo name, version kKindTaskVersion) to say that it runs
/// packages of a kind: "@native" or "@command". Its speed is in expected-seconds per second.
std::string_view KindTaskName(Kind kind);
inline constexpr std::uint32_t kKindTaskVersion = 1;

/// The most units a package job may have (the coordinator's per-job cap also applies).
inline constexpr std::size_t kMaxJobUnits = 1'000'000;

/// `u64 count, (u64 length, bytes)*` — the same list encoding as the task ABI's.
std::string EncodeList(const std::vector<std::string>& items);
Result<std::vector<std::string>> DecodeList(std::string_view bytes, std::size_t max_items,
                                            std::string_view what = "list");

}  // namespace sparecycles::package
