// Small helpers shared by the daemons' main(): signal-driven shutdown and endpoint files.
// InstallStopHandler must be called once from the main thread.
#pragma once

#include <functional>
#include <string>

#include "sparecycles/core/status.hpp"

namespace sparecycles {

/// Calls `on_stop` (from a signal handler: it must be async-signal-safe, e.g. an eventfd write)
/// on SIGINT and SIGTERM. Ignores SIGPIPE.
void InstallStopHandler(void (*on_stop)(int signal));

/// Writes `content` to `path` atomically (temporary file + rename), so readers never see half.
/// With `sync` (the default) the data is fsync'ed first and survives an OS crash; without, it
/// survives the process dying (kill -9) but not a power cut, at a fraction of the cost.
Status WriteFileAtomic(const std::string& path, const std::string& content, bool sync = true);

/// Reads a whole file of at most `max_bytes`.
Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes);

}  // namespace sparecycles
