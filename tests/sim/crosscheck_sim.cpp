// Prints the cross-checking table of docs/cross-checking.md:
//   build/tests/crosscheck_sim [units] [peers]
#include "crosscheck_sim.hpp"

#include <cstdio>
#include <cstdlib>

using namespace sparecycles::testing;

int main(int argc, char** argv) {
  SimConfig base;
  if (argc > 1) base.units = std::strtoull(argv[1], nullptr, 10);
  if (argc > 2) base.peers = std::atoi(argv[2]);
  struct Row {
    const char* name;
    SimConfig cfg;
  };
  std::vector<Row> rows;
  auto add = [&](const char* name, auto f) {
    SimConfig c = base;
    f(c);
    rows.push_back({name, c});
  };
  add("fixed 2/2, no saboteurs", [](SimConfig& c) {
    c.adaptive = false;
    c.saboteur_share = 0;
  });
  add("fixed 2/2, 20% colluding (always lie)", [](SimConfig& c) { c.adaptive = false; });
  add("adaptive, no saboteurs", [](SimConfig& c) { c.saboteur_share = 0; });
  add("adaptive, 20% colluding (always lie)", [](SimConfig&) {});
  add("adaptive, 20% colluding (lie 10% of the time)", [](SimConfig& c) { c.sabotage_rate = 0.1; });
  std::printf(
      "%llu units, %d peers, target error 1e-3, f = 0.2, spot-check rate 0.1 (0.5 for new "
      "peers)\n\n",
      static_cast<unsigned long long>(base.units), base.peers);
  std::printf(
      "| policy | wrong accepted | work / useful work | spot-checks | blacklisted | backtracked | "
      "finished |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const auto& r : rows) {
    SimResult res = RunSimulation(r.cfg);
    std::printf("| %s | %llu | %.3f | %llu | %llu | %llu | %s |\n", r.name,
                static_cast<unsigned long long>(res.wrong_accepted), res.work(),
                static_cast<unsigned long long>(res.stats.spot_checks),
                static_cast<unsigned long long>(res.stats.blacklisted),
                static_cast<unsigned long long>(res.stats.backtracked),
                res.finished ? "yes" : "no");
    std::fflush(stdout);
  }
  return 0;
}
