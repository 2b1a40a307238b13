// Test helper: start a real process, read what it wrote, and end it by its pid. Every wait has a
// deadline; the destructor kills (SIGKILL) and reaps whatever is still running.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

extern char** environ;

namespace sparecycles::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A temporary directory removed at the end of the test.
class Process {
 public:
  /// Starts `argv` with stdout and stderr redirected to files `<log_prefix>.out` / `.err`.
  Process(std::vector<std::string> argv, const std::string& log_prefix)
      : out_(log_prefix + ".out"), err_(log_prefix + ".err") {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      Wait(std::chrono::seconds(10));
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0 || exit_code_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return r == 0;
  }
  void Signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  /// Waits for the process to end; returns its exit code (128+signal when killed), or nullopt.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return exit_code_;
  }
  std::string Stdout() const { return ReadAll(out_); }
  std::string Stderr() const { return ReadAll(err_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string out_, err_;
};

/// Runs a command to completion (bounded) and returns {exit code, stdout}.
inline std::pair<int, std::string> RunCommand(
    std::vector<std::string> argv, const std::string& log_prefix,
    std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  Process p(std::move(argv), log_prefix);
  auto code = p.Wait(timeout);
  if (!code) {
    p.Signal(SIGKILL);
    p.Wait(std::chrono::seconds(5));
    return {-1, p.Stdout() + "\n[timed out]\n" + p.Stderr()};
  }
  return {*code, p.Stdout()};
}

/// Waits until `path` exists and is non-empty.
inline bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && std::filesystem::file_size(path, ec) > 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

#ifdef SPARECYCLES_COORDINATOR_BIN
/// A coordinator plus N worker processes on 127.0.0.1 with OS-chosen ports.
class Cluster {
 public:
  Cluster(int workers, const std::vector<std::string>& coordinator_flags = {},
          unsigned cores_each = 1, const std::vector<std::string>& worker_flags = {},
          const std::string& bind_host = "127.0.0.1")
      : coordinator_flags_(coordinator_flags), worker_flags_(worker_flags) {
    StartCoordinator("tcp://" + bind_host + ":*", "tcp://127.0.0.1:*");
    for (int i = 0; i < workers; ++i) AddWorker(cores_each);
  }
  /// Starts (or restarts, after the old one died) the coordinator on the given endpoints.
  bool StartCoordinator(const std::string& peers, const std::string& clients) {
    const std::string ep = dir_ / "endpoints";
    std::error_code ec;
    std::filesystem::remove(ep, ec);
    std::vector<std::string> argv = {SPARECYCLES_COORDINATOR_BIN, "--peers", peers, "--clients",
                                     clients, "--endpoints-file", ep, "--heartbeat", "200ms",
                                     "--peer-timeout", "2s", "--lease-min", "10s",
                                     "--disconnect-grace", "100ms", "--pool", "cluster",
                                     // A restarted coordinator keeps its key (workers pinned it).
                                     "--key-file", dir_ / "coordinator.key"};
    argv.insert(argv.end(), coordinator_flags_.begin(), coordinator_flags_.end());
    coordinator_ = std::make_unique<Process>(
        argv, dir_ / ("coordinator" + std::to_string(++coordinator_starts_)));
    if (!WaitForFile(ep, std::chrono::seconds(10))) return false;
    std::istringstream in(ReadAll(ep));
    std::string key, value;
    while (in >> key >> value) {
      if (key == "peers") peer_ep_ = value;
      if (key == "clients") client_ep_ = value;
      if (key == "key") coordinator_key_ = value;
    }
    return true;
  }
  bool RestartCoordinator() { return StartCoordinator(peer_ep_, client_ep_); }
  Process& AddWorker(unsigned cores, const std::vector<std::string>& extra = {},
                     const std::vector<std::string>& prefix = {}) {
    const std::string name = "worker" + std::to_string(workers_.size());
    return StartWorker(name, cores, extra, prefix);
  }
  /// Starts a worker process named `name` (its state dir is dir/name); prefix wraps the command.
  Process& StartWorker(const std::string& name, unsigned cores,
                       const std::vector<std::string>& extra = {},
                       const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    std::vector<std::string> cmd = {
        SPARECYCLES_WORKER_BIN, "--coordinator", peer_ep_, "--cores", std::to_string(cores),
        "--state-dir", dir_ / name, "--calibrate", "5ms",
        // Tests share a busy machine (and workers see each other as
        // load): donate the cores asked for; a test that exercises idle
        // detection passes its own flags, which come later and win.
        "--pause-above", "off", "--throttle", "off", "--priority", "normal"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    // The key it pins, as an operator hands it over: the coordinator may listen on an address
    // that is not loopback (a veth), where a worker does not look for a published key.
    if (!coordinator_key_.empty()) argv.insert(argv.end(), {"--coordinator-key", coordinator_key_});
    argv.insert(argv.end(), worker_flags_.begin(), worker_flags_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    workers_.push_back(
        std::make_unique<Process>(argv, dir_ / (name + "-" + std::to_string(workers_.size()))));
    names_.push_back(name);
    return *workers_.back();
  }
  bool ok() const { return !client_ep_.empty() && !peer_ep_.empty(); }
  const std::string& client_endpoint() const { return client_ep_; }
  const std::string& peer_endpoint() const { return peer_ep_; }
  /// The coordinator's public key (Z85), as it wrote it to its endpoints file.
  const std::string& coordinator_key() const { return coordinator_key_; }
  Process& coordinator() { return *coordinator_; }
  Process& worker(std::size_t i) { return *workers_.at(i); }
  std::size_t workers() const { return workers_.size(); }
  /// The peer id worker i announced (read from its state dir).
  std::string PeerId(std::size_t i) {
    std::string id = ReadAll(dir_ / names_.at(i) + "/peer-id");
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }
  const TempDir& dir() const { return dir_; }
  std::string Logs() {
    std::string all = "--- coordinator\n" + coordinator_->Stderr();
    for (std::size_t i = 0; i < workers_.size(); ++i)
      all += "--- worker" + std::to_string(i) + "\n" + workers_[i]->Stderr();
    return all;
  }

 private:
  TempDir dir_;
  std::vector<std::string> coordinator_flags_, worker_flags_;
  std::string coordinator_key_;
  int coordinator_starts_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::vector<std::string> names_;
  std::string peer_ep_, client_ep_;
};

#endif  // SPARECYCLES_COORDINATOR_BIN

}  // namespace sparecycles::testing
