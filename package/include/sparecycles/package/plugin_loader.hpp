// Loads a native task plugin (a shared library exporting the C ABI of
// sparecycles/tasks/task_abi.h) and presents it as an ordinary tasks::Task.
// The returned task keeps the library loaded until it is destroyed; it is as thread-safe as the
// plugin's Task (the API requires every method to be). Loading runs the library's initialisers
// in this process: callers confine the process first (docs/packages.md, "Where user code runs").
#pragma once

#include <memory>
#include <string>

#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::package {

/// The task ABI version this build speaks (SPARECYCLES_TASK_ABI_VERSION).
std::uint32_t HostTaskAbiVersion();

/// dlopen()s `path` and checks its entry point and ABI version. A plugin built for another
/// ABI version is refused with both versions named; so is a library without the entry point.
Result<std::unique_ptr<tasks::Task>> LoadTaskPlugin(const std::string& path);

}  // namespace sparecycles::package
