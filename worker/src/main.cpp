// sparecycles-worker: parses options and donates this machine's cores until SIGINT/SIGTERM.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/worker/worker.hpp"

using namespace sparecycles;

namespace {
worker::Worker* g_worker = nullptr;
void OnSignal(int) {
  if (g_worker) g_worker->Stop();
}
int Fail(const Status& s) {
  std::fprintf(stderr, "sparecycles-worker: %s\n", s.ToString().c_str());
  return 2;
}
std::string DefaultStateDir() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::string(x) + "/sparecycles-worker";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/sparecycles-worker";
  return "";
}
}  // namespace

int main(int argc, char** argv) {
  Options opt("sparecycles-worker [options]",
              "Donates this machine's CPU to a SpareCycles coordinator: connects, announces its cores\n"
              "and measured speed, runs the units it is leased and returns their results. SIGTERM or\n"
              "Ctrl-C hands unfinished units back before exiting.",
              "SPARECYCLES_WORKER_");
  opt.Add("config", "", "Config file of 'name = value' lines (# comments); flags override it.");
  opt.Add("coordinator", "tcp://127.0.0.1:7737", "The coordinator's peer endpoint.");
  opt.Add("cores", "0", "Cores to donate; 0 = all of this machine's (" + std::to_string(worker::HardwareCores()) + ").");
  opt.Add("peer-id", "", "Stable peer id; empty = kept in --state-dir (created at first start).");
  opt.Add("state-dir", DefaultStateDir(), "Directory for the worker's own state (its peer id).");
  opt.Add("account", "", "Your volunteer account name, shown by the coordinator.");
  opt.Add("prefetch", "1", "Units held beyond the idle cores so a core never waits for work.");
  opt.Add("calibrate", "20ms", "Time spent measuring each task's speed at start-up (0 = use defaults).");
  opt.Add("tasks", "", "Comma-separated tasks to offer; empty = all built-in tasks.");
  opt.Add("log-level", "info", "debug, info, warn, error or off.");
  if (Status s = opt.Parse(argc, argv); !s.ok()) return Fail(s);
  if (opt.HelpRequested()) {
    std::cout << opt.Help();
    return 0;
  }
  SetLogComponent("worker");
  LogLevel level;
  if (!ParseLogLevel(opt.Get("log-level"), level)) return Fail(InvalidArgument("--log-level: unknown level"));
  SetLogLevel(level);

  worker::WorkerConfig cfg;
  cfg.coordinator = opt.Get("coordinator");
  auto cores = opt.GetInt("cores", 0, 4096);
  auto prefetch = opt.GetInt("prefetch", 0, 64);
  auto cal = ParseSeconds(opt.Get("calibrate"));
  if (!cores.ok()) return Fail(cores.status());
  if (!prefetch.ok()) return Fail(prefetch.status());
  if (!cal.ok()) return Fail(InvalidArgument("--calibrate: " + cal.status().message()));
  cfg.cores = static_cast<unsigned>(*cores);
  cfg.prefetch = static_cast<std::uint32_t>(*prefetch);
  cfg.calibrate_seconds = *cal;
  cfg.peer_id = opt.Get("peer-id");
  cfg.state_dir = opt.Get("state-dir");
  cfg.account = opt.Get("account");
  std::stringstream list(opt.Get("tasks"));
  for (std::string t; std::getline(list, t, ',');)
    if (!t.empty()) cfg.only_tasks.push_back(t);

  worker::Worker w(cfg, tasks::Registry::BuiltIn());
  if (Status s = w.Start(); !s.ok()) return Fail(s);
  g_worker = &w;
  InstallStopHandler(OnSignal);
  w.Run();
  g_worker = nullptr;
  return 0;
}
