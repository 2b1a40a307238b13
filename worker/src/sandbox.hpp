// The confinement layers a `sparecycles-executor` applies to itself before any user code is
// loaded or run (docs/sandbox.md): user switch, no-new-privileges, network namespace, Landlock,
// rlimits and a seccomp filter. Free functions for the executor's main thread, called once,
// before any other thread is started.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparecycles/core/status.hpp"

namespace sparecycles::worker::sandbox {

struct Limits {
  std::uint64_t memory_bytes = 256ull << 20;  // RLIMIT_AS gets this plus kAddressSpaceMargin
  std::uint32_t cpu_seconds = 600;            // RLIMIT_CPU (soft; hard = soft + 5)
  std::uint64_t file_bytes = 65ull << 20;     // RLIMIT_FSIZE
  std::uint32_t open_files = 256;             // RLIMIT_NOFILE
  std::uint32_t processes = 128;              // RLIMIT_NPROC (tasks, threads included)
};

/// Room in the address space for the executor's own libraries and thread stacks.
inline constexpr std::uint64_t kAddressSpaceMargin = 512ull << 20;

struct Spec {
  std::string package_dir;  // read + execute
  std::string work_dir;     // read + write
  Limits limits;
  std::uint32_t uid = 65534, gid = 65534;  // taken only when running as root
  std::string disable_layer_for_test;      // a layer name reported unavailable (tests only)
  bool allow_exec = true;                  // false (native packages): no program may be run
};

struct LayerReport {
  std::string name;  // "no-new-privileges", "user", "network", "landlock", "rlimits", "seccomp"
  Status status;     // ok = active
  std::string detail;
};

/// Applies every layer in order and reports each; later layers are still tried when one fails.
std::vector<LayerReport> ApplyAll(const Spec& spec);
/// The Landlock ABI of this kernel (0 = none).
int LandlockAbi();

}  // namespace sparecycles::worker::sandbox
