// The executor's confinement layers (sandbox.hpp, docs/sandbox.md).
#include "sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace sparecycles::worker::sandbox {
namespace {

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Landlock's uapi, spelled out: the system's headers may predate the network and scope rules.
constexpr std::uint32_t kLlCreateVersion = 1u << 0;
constexpr int kLlRulePathBeneath = 1, kLlRuleNetPort = 2;
constexpr std::uint64_t kFsExecute = 1ull << 0, kFsWriteFile = 1ull << 1, kFsReadFile = 1ull << 2,
                        kFsReadDir = 1ull << 3, kFsRemoveDir = 1ull << 4, kFsRemoveFile = 1ull << 5,
                        kFsMakeChar = 1ull << 6, kFsMakeDir = 1ull << 7, kFsMakeReg = 1ull << 8,
                        kFsMakeSock = 1ull << 9, kFsMakeFifo = 1ull << 10,
                        kFsMakeBlock = 1ull << 11, kFsMakeSym = 1ull << 12, kFsRefer = 1ull << 13,
                        kFsTruncate = 1ull << 14, kFsIoctlDev = 1ull << 15;
constexpr std::uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;
constexpr std::uint64_t kScopeAbstractUnix = 1ull << 0, kScopeSignal = 1ull << 1;

struct LlRulesetAttr {
  std::uint64_t handled_access_fs = 0, handled_access_net = 0, scoped = 0;
};
struct __attribute__((packed)) LlPathBeneath {
  std::uint64_t allowed_access;
  std::int32_t parent_fd;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool Disabled(const Spec& s, const char* layer) { return s.disable_layer_for_test == layer; }

Status NoNewPrivileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Unavailable(Errno("prctl(PR_SET_NO_NEW_PRIVS)"));
  return OkStatus();
}

Status WriteProcFile(const char* path, const std::string& text) {
  Fd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return Unavailable(Errno(path));
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return Unavailable(Errno(path));
  return OkStatus();
}

// A new user namespace (unprivileged) holding a new network namespace: only a loopback that is
// down. The same ids are mapped inside, so files keep their owners.
Status NewUserAndNetNamespace() {
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
    return Unavailable(Errno("unshare(CLONE_NEWUSER|CLONE_NEWNET)"));
  SC_RETURN_IF_ERROR(WriteProcFile("/proc/self/setgroups", "deny"));
  SC_RETURN_IF_ERROR(
      WriteProcFile("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1"));
  SC_RETURN_IF_ERROR(
      WriteProcFile("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1"));
  return OkStatus();
}

Status DropUser(const Spec& s) {
  const gid_t groups[1] = {s.gid};
  if (::setgroups(1, groups) != 0) return Unavailable(Errno("setgroups"));
  if (::setresgid(s.gid, s.gid, s.gid) != 0) return Unavailable(Errno("setresgid"));
  if (::setresuid(s.uid, s.uid, s.uid) != 0) return Unavailable(Errno("setresuid"));
  if (::getuid() != s.uid || ::geteuid() != s.uid) return Unavailable("the uid did not change");
  return OkStatus();
}

Status AddPath(int ruleset, const char* path, std::uint64_t access, std::uint64_t handled,
               bool must_exist) {
  Fd fd(::open(path, O_PATH | O_CLOEXEC));
  if (fd.get() < 0) {
    if (!must_exist && errno == ENOENT) return OkStatus();
    return Unavailable(Errno(path));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Unavailable(Errno(path));
  // Rights that only make sense on a directory are refused by the kernel on a file.
  if (!S_ISDIR(st.st_mode))
    access &= kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;
  LlPathBeneath rule{access & handled, fd.get()};
  if (::syscall(SYS_landlock_add_rule, ruleset, kLlRulePathBeneath, &rule, 0) != 0)
    return Unavailable(Errno((std::string("landlock_add_rule ") + path).c_str()));
  return OkStatus();
}

Status ApplyLandlock(const Spec& s, int abi, std::string* detail) {
  if (abi <= 0) return Unavailable("this kernel has no Landlock (or it is disabled)");
  std::uint64_t fs_all = (kFsMakeSym << 1) - 1;  // ABI 1
  if (abi >= 2) fs_all |= kFsRefer;
  if (abi >= 3) fs_all |= kFsTruncate;
  if (abi >= 5) fs_all |= kFsIoctlDev;
  LlRulesetAttr attr;
  attr.handled_access_fs = fs_all;
  std::size_t size = sizeof(std::uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;  // and no port rule: none allowed
    size = 2 * sizeof(std::uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof(LlRulesetAttr);
  }
  Fd rs(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
  if (rs.get() < 0) return Unavailable(Errno("landlock_create_ruleset"));
  const std::uint64_t read = kFsReadFile | kFsReadDir;
  // Mapping a library needs only read; execute is execve(), which only command packages need.
  const std::uint64_t read_exec = read | (s.allow_exec ? kFsExecute : 0);
  const std::uint64_t all = fs_all;
  struct Rule {
    const char* path;
    std::uint64_t access;
    bool must_exist;
  };
  const Rule rules[] = {
      {s.package_dir.c_str(), read_exec, true},
      {s.work_dir.c_str(), all, true},
      {"/usr", read_exec, false},
      {"/lib", read_exec, false},
      {"/lib64", read_exec, false},
      {"/bin", read_exec, false},
      {"/etc/ld.so.cache", read, false},
      {"/etc/ld.so.conf", read, false},
      {"/etc/ld.so.conf.d", read, false},
      {"/etc/alternatives", read, false},
      {"/etc/localtime", read, false},
      // Other processes' environ, mem and fds stay closed: Landlock refuses ptrace-mode access
      // to any process outside the sandbox's domain.
      {"/proc", read, false},
      {"/sys/devices/system/cpu", read, false},
      {"/sys/fs/cgroup", read, false},
      {"/dev/null", kFsReadFile | kFsWriteFile, false},
      {"/dev/zero", kFsReadFile, false},
      {"/dev/urandom", kFsReadFile, false},
      {"/dev/random", kFsReadFile, false},
  };
  for (const Rule& r : rules)
    SC_RETURN_IF_ERROR(AddPath(rs.get(), r.path, r.access, fs_all, r.must_exist));
  if (::syscall(SYS_landlock_restrict_self, rs.get(), 0) != 0)
    return Unavailable(Errno("landlock_restrict_self"));
  *detail = "ABI " + std::to_string(abi) + (abi >= 4 ? ", TCP bind/connect denied" : "") +
            (abi >= 6 ? ", signals and abstract sockets scoped" : "");
  return OkStatus();
}

Status SetLimit(int resource, const char* name, rlim_t soft, rlim_t hard) {
  rlimit cur{};
  if (::getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
    soft = std::min(soft, cur.rlim_max);
    hard = std::min(hard, cur.rlim_max);
  }
  const rlimit l{soft, hard};
  if (::setrlimit(resource, &l) != 0) return Unavailable(Errno(name));
  return OkStatus();
}

Status ApplyLimits(const Limits& l, std::string* detail) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer reserves terabytes of address space; the memory limit cannot be an rlimit.
  *detail = "RLIMIT_AS skipped (AddressSanitizer build); ";
#else
  const rlim_t as = l.memory_bytes + kAddressSpaceMargin;
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_AS, "RLIMIT_AS", as, as));
#endif
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_CPU, "RLIMIT_CPU", l.cpu_seconds, l.cpu_seconds + 5));
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_FSIZE, "RLIMIT_FSIZE", l.file_bytes, l.file_bytes));
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_NOFILE, "RLIMIT_NOFILE", l.open_files, l.open_files));
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_NPROC, "RLIMIT_NPROC", l.processes, l.processes));
  SC_RETURN_IF_ERROR(SetLimit(RLIMIT_CORE, "RLIMIT_CORE", 0, 0));
  *detail += "memory " + std::to_string(l.memory_bytes >> 20) + " MiB, CPU " +
             std::to_string(l.cpu_seconds) + " s, file " + std::to_string(l.file_bytes >> 20) +
             " MiB, " + std::to_string(l.open_files) + " files, " + std::to_string(l.processes) +
             " tasks";
  return OkStatus();
}

// Allow by default; what a computation never needs fails with EPERM.
Status ApplySeccomp() {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return Unavailable("no seccomp filter for this architecture");
#endif
  const std::vector<long> denied = {
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_bpf,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_perf_event_open,
    SYS_personality,
    SYS_unshare,
    SYS_setns,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    // No new sockets at all: the executor's channel is inherited.
    SYS_socket,
    // io_uring could open sockets and files behind seccomp's back.
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_userfaultfd,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_fsopen,
    SYS_fsmount,
    SYS_move_mount,
    SYS_open_tree,
    SYS_chroot,
    SYS_acct,
    SYS_settimeofday,
    SYS_clock_settime,
#if defined(__x86_64__)
    SYS_iopl,
    SYS_ioperm,
    SYS_uselib,
#endif
  };
  constexpr std::uint32_t kEperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  constexpr std::uint32_t kEnosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
  constexpr std::uint32_t kNsFlags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  std::vector<sock_filter> f;
  auto stmt = [&](std::uint16_t code, std::uint32_t k) { f.push_back(sock_filter{code, 0, 0, k}); };
  auto jump = [&](std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    f.push_back(sock_filter{code, jt, jf, k});
  };
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);  // a foreign syscall ABI: never
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);  // x32 numbers
  stmt(BPF_RET | BPF_K, kEperm);
#endif
  for (long nr : denied) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1);
    stmt(BPF_RET | BPF_K, kEperm);
  }
  // clone3 hides its flags in memory: ENOSYS makes the C library fall back to clone.
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  stmt(BPF_RET | BPF_K, kEnosys);
  // clone with a namespace flag.
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0]));
  jump(BPF_JMP | BPF_JSET | BPF_K, kNsFlags, 0, 1);
  stmt(BPF_RET | BPF_K, kEperm);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  // prlimit64 on another process (pid != 0 and not our own).
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_prlimit64, 0, 5);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0]));
  jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(::getpid()), 1, 0);
  stmt(BPF_RET | BPF_K, kEperm);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
    return Unavailable(Errno("seccomp(SECCOMP_SET_MODE_FILTER)"));
  return OkStatus();
}

}  // namespace

int LandlockAbi() {
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kLlCreateVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

std::vector<LayerReport> ApplyAll(const Spec& spec) {
  std::vector<LayerReport> out;
  auto run = [&](const char* name, auto&& apply) {
    LayerReport r;
    r.name = name;
    if (Disabled(spec, name)) {
      r.status = Unavailable("disabled for a test");
    } else {
      r.status = apply(&r.detail);
    }
    out.push_back(std::move(r));
  };
  const bool root = ::geteuid() == 0;
  run("no-new-privileges", [](std::string*) { return NoNewPrivileges(); });
  // As root: the network namespace first (root may), then the switch to the unprivileged user,
  // then a user namespace of that user (so RLIMIT_NPROC counts this sandbox's tasks only).
  if (root) {
    run("network", [](std::string* d) {
      if (::unshare(CLONE_NEWNET) != 0) return Unavailable(Errno("unshare(CLONE_NEWNET)"));
      *d = "own network namespace (loopback down)";
      return OkStatus();
    });
    run("user", [&](std::string* d) {
      SC_RETURN_IF_ERROR(DropUser(spec));
      *d = "uid " + std::to_string(spec.uid) + ", gid " + std::to_string(spec.gid);
      // setresuid left the process undumpable, so its /proc/self files are root's: dumpable
      // again to write its own id maps (ptrace stays refused by seccomp and Landlock).
      (void)::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
      if (Status ns = NewUserAndNetNamespace(); !ns.ok())
        *d += " (no user namespace: NPROC counts per uid: " + ns.message() + ")";
      else
        *d += ", own user namespace";
      return OkStatus();
    });
  } else {
    run("user", [](std::string* d) {
      *d = "not root: stays uid " + std::to_string(::getuid());
      return OkStatus();
    });
    run("network", [](std::string* d) {
      SC_RETURN_IF_ERROR(NewUserAndNetNamespace());
      *d = "own user and network namespace (loopback down)";
      return OkStatus();
    });
  }
  const int abi = LandlockAbi();
  run("landlock", [&](std::string* d) { return ApplyLandlock(spec, abi, d); });
  run("rlimits", [&](std::string* d) { return ApplyLimits(spec.limits, d); });
  run("seccomp", [](std::string* d) {
    SC_RETURN_IF_ERROR(ApplySeccomp());
    *d = "ptrace, mount, kexec, bpf, keyctl, perf, personality, namespaces, modules, sockets, "
         "io_uring refused";
    return OkStatus();
  });
  return out;
}

}  // namespace sparecycles::worker::sandbox
