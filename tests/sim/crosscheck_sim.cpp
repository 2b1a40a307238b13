// Prints the cross-checking tables of docs/cross-checking.md, and checks them:
//   build/tests/crosscheck_sim [units] [peers] [--check]
// --check exits 1 when a row that must accept no wrong result accepted one (or did not finish);
// ctest runs it so with a small unit count, the figures in the docs come from 100000 units.
#include "crosscheck_sim.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sparecycles/core/log.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;

int main(int argc, char** argv) {
  SimConfig base;
  bool check = false;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else if (positional == 0) {
      base.units = std::strtoull(argv[i], nullptr, 10);
      ++positional;
    } else if (positional == 1) {
      base.peers = std::atoi(argv[i]);
      ++positional;
    } else {
      std::fprintf(stderr, "usage: crosscheck_sim [units] [peers] [--check]\n");
      return 2;
    }
  }
  if (base.units < 100 || base.peers < 10) {
    std::fprintf(stderr, "crosscheck_sim: at least 100 units and 10 peers\n");
    return 2;
  }
  SetLogLevel(LogLevel::kError);  // the scheduler warns about every caught saboteur
  struct Row {
    std::string name;
    SimConfig cfg;
    bool must_hold;  // no wrong result accepted, job finished
  };
  std::vector<Row> rows;
  auto add = [&](const char* name, bool must_hold, auto f) {
    SimConfig c = base;
    f(c);
    rows.push_back({name, c, must_hold});
  };
  const coordinator::HostRules off{coordinator::DistinctBy::kOff, false, 0, 0};
  add("fixed 2/2, 20% colluding (always lie)", false, [](SimConfig& c) { c.adaptive = false; });
  add("adaptive, no saboteurs, host rules off", true, [&](SimConfig& c) {
    c.saboteur_share = 0;
    c.hosts = off;
  });
  add("adaptive, no saboteurs", true, [](SimConfig& c) { c.saboteur_share = 0; });
  add("adaptive, 20% colluding (always lie)", true, [](SimConfig&) {});
  add("adaptive, 20% colluding (lie 10% of the time)", true,
      [](SimConfig& c) { c.sabotage_rate = 0.1; });
  add("Sybil: 30% of ids on 3 hosts (always lie), host rules off", false, [&](SimConfig& c) {
    c.saboteur_share = 0.3;
    c.saboteur_hosts = 3;
    c.hosts = off;
  });
  add("Sybil: 30% of ids on 3 hosts (always lie)", true, [](SimConfig& c) {
    c.saboteur_share = 0.3;
    c.saboteur_hosts = 3;
  });
  add("Sybil: 30% of ids on 3 hosts (always lie), new id for each caught one", true,
      [](SimConfig& c) {
        c.saboteur_share = 0.3;
        c.saboteur_hosts = 3;
        c.rotate_keys = true;
      });
  add("Sybil: 30% of ids on 3 hosts (always lie), a new id after every answer, host rules off",
      false, [&](SimConfig& c) {
        c.saboteur_share = 0.3;
        c.saboteur_hosts = 3;
        c.answers_per_id = 1;
        c.hosts = off;
      });
  add("Sybil: 30% of ids on 3 hosts (always lie), a new id after every answer", true,
      [](SimConfig& c) {
        c.saboteur_share = 0.3;
        c.saboteur_hosts = 3;
        c.answers_per_id = 1;
      });
  add("20% colluding, lie only on units none has seen", true,
      [](SimConfig& c) { c.fresh_only = true; });
  add("20% colluding, lie on 10% of units none has seen", true, [](SimConfig& c) {
    c.fresh_only = true;
    c.sabotage_rate = 0.1;
  });
  // Not held to zero: after the shuffle this is "lie only on a small fixed set of units" (the
  // top indices), i.e. lying rarely, which the model bounds by the target error per unit.
  add("20% colluding, lie only on unseen units near the highest index seen", false,
      [](SimConfig& c) {
        c.fresh_only = true;
        c.frontier_only = true;
      });
  std::printf(
      "%llu units, %d peers, target error 1e-3, f = 0.2, spot-check rate 0.1 (0.5 for new "
      "peers); host rules: distinct hosts, 10 new ids per host per hour, host blacklisted after "
      "4 offences\n\n",
      static_cast<unsigned long long>(base.units), base.peers);
  std::printf(
      "| attack | wrong accepted | work / useful work | spot-checks | blacklisted (ids, hosts) | "
      "ids refused | backtracked | finished |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  int failed = 0;
  double baseline = 0;
  for (const auto& r : rows) {
    SimResult res = RunSimulation(r.cfg);
    if (r.name == "adaptive, no saboteurs, host rules off") baseline = res.work();
    std::printf("| %s | %llu | %.3f | %llu | %llu, %llu | %llu | %llu | %s |\n", r.name.c_str(),
                static_cast<unsigned long long>(res.wrong_accepted), res.work(),
                static_cast<unsigned long long>(res.stats.spot_checks),
                static_cast<unsigned long long>(res.stats.blacklisted),
                static_cast<unsigned long long>(res.stats.hosts_blacklisted),
                static_cast<unsigned long long>(res.joins_refused),
                static_cast<unsigned long long>(res.stats.backtracked),
                res.finished ? "yes" : "no");
    std::fflush(stdout);
    if (r.must_hold && (res.wrong_accepted != 0 || !res.finished)) {
      std::fprintf(stderr, "FAILED: %s: %llu wrong accepted, finished %d\n", r.name.c_str(),
                   static_cast<unsigned long long>(res.wrong_accepted), res.finished ? 1 : 0);
      ++failed;
    }
  }
  std::printf("\nbaseline (honest peers, host rules off, this run): %.3f x\n", baseline);
  if (check && failed > 0) return 1;
  if (check) std::printf("PASS: no wrong result accepted where the model must hold\n");
  return 0;
}
