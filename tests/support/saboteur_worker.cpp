// TEST-ONLY saboteur peer: a real worker whose task results are wrong at a chosen rate. It is
// built only with the test suite and is never part of the shipped worker.
//   saboteur_worker --coordinator EP --rate 1.0 [--seed 7] [--cores 1] [--state-dir D]
// Saboteurs with the same seed lie on the same units in the same way: they collude.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/worker/worker.hpp"

using namespace sparecycles;

namespace {

class LyingTask final : public tasks::Task {
 public:
  LyingTask(const tasks::Task* inner, double rate, std::uint64_t seed)
      : inner_(inner), rate_(rate), seed_(seed) {}
  std::string_view Name() const override { return inner_->Name(); }
  std::uint32_t Version() const override { return inner_->Version(); }
  std::string_view Summary() const override { return inner_->Summary(); }
  std::vector<tasks::ParamSpec> Params() const override { return inner_->Params(); }
  std::string_view WorkName() const override { return inner_->WorkName(); }
  Result<tasks::JobPlan> Plan(const tasks::JobParams& p) const override { return inner_->Plan(p); }
  Result<std::vector<std::string>> Split(const tasks::JobParams& p,
                                         std::uint64_t n) const override {
    return inner_->Split(p, n);
  }
  Result<std::string> Execute(std::string_view unit, tasks::UnitContext& ctx) const override {
    auto out = inner_->Execute(unit, ctx);
    if (!out.ok() || out->empty()) return out;
    // Decide from the unit's bytes (not from chance) so colluders lie on the same units.
    Hash256 h = Blake2b256(std::string(unit) + std::to_string(seed_));
    std::uint64_t draw;
    std::memcpy(&draw, h.data(), 8);
    if (static_cast<double>(draw >> 11) * 0x1.0p-53 >= rate_) return out;
    // A wrong answer that the coordinator will see as wrong: the first single-bit change that
    // alters the task's canonical form (some bytes, e.g. metadata, are not part of it).
    const std::string canonical = inner_->Canonicalize(*out);
    for (std::size_t i = 0; i < out->size(); ++i) {
      std::string wrong = *out;
      wrong[i] ^= 0x01;
      if (inner_->Canonicalize(wrong) != canonical) return wrong;
    }
    return out;
  }
  Result<std::string> Merge(const tasks::JobParams& p,
                            std::span<const std::string> r) const override {
    return inner_->Merge(p, r);
  }
  std::string Canonicalize(std::string_view r) const override { return inner_->Canonicalize(r); }
  std::string Summarize(std::string_view m) const override { return inner_->Summarize(m); }
  std::string ToJson(std::string_view m) const override { return inner_->ToJson(m); }
  double Calibrate(double s) const override { return inner_->Calibrate(s); }
  double DefaultWorkPerSecond() const override { return inner_->DefaultWorkPerSecond(); }

 private:
  const tasks::Task* inner_;
  double rate_;
  std::uint64_t seed_;
};

worker::Worker* g_worker = nullptr;
void OnSignal(int) {
  if (g_worker) g_worker->Stop();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt("saboteur_worker [options]", "TEST ONLY: a worker that returns wrong results.",
              "SPARECYCLES_SABOTEUR_");
  opt.Add("coordinator", "", "The coordinator's peer endpoint (required).");
  opt.Add("rate", "1.0", "Share of units answered wrongly.");
  opt.Add("seed", "7", "Saboteurs with the same seed lie alike (collude).");
  opt.Add("cores", "1", "Cores.");
  opt.Add("state-dir", "", "State directory (its key pair, so its peer id).");
  opt.Add("coordinator-key", "",
          "The coordinator's public key or its file (as sparecycles-worker).");
  if (Status s = opt.Parse(argc, argv); !s.ok() || opt.HelpRequested()) {
    std::cout << opt.Help();
    return s.ok() ? 0 : 2;
  }
  SetLogComponent("saboteur");
  auto rate = opt.GetDouble("rate", 0, 1);
  auto seed = opt.GetInt("seed", 0, 1ll << 62);
  auto cores = opt.GetInt("cores", 1, 64);
  if (!rate.ok() || !seed.ok() || !cores.ok()) return 2;
  tasks::Registry registry;
  for (const tasks::Task* t : tasks::Registry::BuiltIn().All())
    registry.Add(std::make_unique<LyingTask>(t, *rate, static_cast<std::uint64_t>(*seed)));
  if (opt.Get("coordinator").empty()) {
    std::fprintf(stderr, "saboteur: --coordinator is required\n");
    return 2;
  }
  worker::WorkerConfig cfg;
  cfg.coordinator = opt.Get("coordinator");
  cfg.cores = static_cast<unsigned>(*cores);
  cfg.state_dir = opt.Get("state-dir");
  cfg.coordinator_key = opt.Get("coordinator-key");
  cfg.calibrate_seconds = 0.005;
  worker::Worker w(cfg, registry);
  if (Status s = w.Start(); !s.ok()) {
    std::fprintf(stderr, "saboteur: %s\n", s.ToString().c_str());
    return 2;
  }
  g_worker = &w;
  InstallStopHandler(OnSignal);
  w.Run();
  return 0;
}
