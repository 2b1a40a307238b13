// TEST-ONLY task plugin for the executor process tests: each unit says what it does (sum a range,
// segfault, abort, hang calling Progress, spin ignoring cancellation, echo its resume state), so
// one library gives the well-behaved and the crashing units. Built like an outside author's.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/plugin.hpp"

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

// Unit bytes: u8 mode, u64 from, u64 to, u32 sleep ms.
enum Mode : std::uint8_t { kSum = 0, kSegv = 1, kHang = 2, kAbort = 3, kDeaf = 4, kEcho = 5 };

class ExecutorProbe final : public Task {
 public:
  std::string_view Name() const override { return "executor-probe"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return "units that behave or crash (test plugin)"; }
  std::vector<ParamSpec> Params() const override { return {}; }
  std::string_view WorkName() const override { return "units"; }
  Result<JobPlan> Plan(const JobParams&) const override { return JobPlan{1, 1, true}; }
  Result<std::vector<std::string>> Split(const JobParams&, std::uint64_t) const override {
    return std::vector<std::string>{};
  }
  Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const override {
    ByteReader r(unit, "probe unit");
    const auto mode = r.Get<std::uint8_t>();
    const auto from = r.Get<std::uint64_t>(), to = r.Get<std::uint64_t>();
    const auto sleep_ms = r.Get<std::uint32_t>();
    if (Status s = r.Finish(); !s.ok()) return s;
    switch (mode) {
      case kSum: {
        const auto t0 = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(sleep_ms)) {
          ctx.Progress(0.1);
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        std::uint64_t sum = 0;
        for (std::uint64_t i = from; i < to; ++i) sum += i;
        ctx.Progress(1.0);
        return ByteWriter().Put<std::uint64_t>(sum).bytes();
      }
      case kSegv: {
        std::fputs("probe: about to write to an inaccessible page\n", stderr);
        std::fflush(stderr);
        // A write to a page mapped without access: a real SIGSEGV, with no undefined behaviour a
        // compiler or sanitizer could turn into something else.
        void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) return Internal("mmap failed");
        *static_cast<volatile int*>(page) = 1;
        return InvalidArgument("unreachable");
      }
      case kHang:
        while (true) {
          if (ctx.CheckpointDue()) ctx.Checkpoint("hang-state");
          ctx.Progress(0.5);
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      case kAbort:
        std::abort();
      case kDeaf:
        while (true) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      case kEcho:
        return ctx.ResumeState().value_or("none");
      default:
        return InvalidArgument("unknown probe mode");
    }
  }
  Result<std::string> Merge(const JobParams&, std::span<const std::string>) const override {
    return std::string();
  }
  // The canonical form of a sum is its decimal text, so a test sees that the executor sends the
  // canonical bytes, not the raw result.
  std::string Canonicalize(std::string_view result) const override {
    ByteReader in(result, "probe result");
    const auto v = in.Get<std::uint64_t>();
    if (!in.Finish().ok()) return std::string(result);
    return "sum=" + std::to_string(v);
  }
  std::string Summarize(std::string_view) const override { return ""; }
  std::string ToJson(std::string_view) const override { return "{}"; }
  double Calibrate(double) const override { return 1; }
  double DefaultWorkPerSecond() const override { return 1; }
};

}  // namespace

SPARECYCLES_EXPORT_TASK(ExecutorProbe)
