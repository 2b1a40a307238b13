// Regression tests for inputs the fuzz harnesses of tests/fuzz found (docs/security.md,
// "Fuzzing"): each decodes the crashing bytes exactly as the harness did and asserts the fix.
// The crashing files themselves are also kept in tests/fuzz/corpus/<harness>/regress-*.
// This executable counts the largest single allocation through a replaced operator new.
#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>

#include "sparecycles/tasks/task.hpp"

namespace {

std::atomic<std::size_t> largest_allocation{0};

void Note(std::size_t size) {
  std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
}

}  // namespace

void* operator new(std::size_t size) {
  Note(size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

// Cancels the unit at its second progress report, like the harness's tiny budget.
class CancelSoon final : public UnitContext {
 public:
  void Progress(double) override {
    if (++calls_ > 1) throw UnitCancelled{"budget"};
  }
  bool StopRequested() const override { return calls_ > 1; }
  int calls() const { return calls_; }

 private:
  int calls_ = 0;
};

std::string Bytes(std::initializer_list<unsigned char> b) {
  return std::string(b.begin(), b.end());
}

// Runs `unit` on one thread until cancelled; returns the largest allocation made meanwhile.
std::size_t RunUntilCancelled(const char* task_name, const std::string& unit) {
  const Task* task = Registry::BuiltIn().Find(task_name);
  REQUIRE(task != nullptr);
  tbb::task_arena arena(1);
  CancelSoon ctx;
  bool cancelled = false;
  largest_allocation.store(0);
  arena.execute([&] {
    try {
      (void)task->Execute(unit, ctx);
    } catch (const UnitCancelled&) {
      cancelled = true;
    }
  });
  CHECK(cancelled);
  CHECK(ctx.calls() == 2);
  return largest_allocation.load();
}

constexpr std::size_t kMiB = 1 << 20;

}  // namespace

TEST_CASE("a pi unit of 1.2e14 samples starts without a counter per chunk (fuzz: task_pi oom)") {
  // seed 7, first 253, count 0x0000695f78616d40: 1.1e8 chunks, once an 880 MB vector of counts.
  const std::string unit = Bytes({0x07, 0, 0, 0, 0,    0,    0,    0,    0xfd, 0,    0, 0,
                                  0,    0, 0, 0, 0x40, 0x6d, 0x61, 0x78, 0x5f, 0x69, 0, 0});
  CHECK(RunUntilCancelled("pi", unit) < kMiB);
}

TEST_CASE(
    "a hashsearch unit of 2.8e14 nonces starts without listing its chunks (fuzz: task_hashsearch "
    "oom)") {
  // prefix "abc", from 0, to 0x0001000000002710, bits 6: 1.7e10 chunks, once a list of all of
  // them (128 MB and growing); cancelling also had to walk every unclaimed chunk.
  const std::string unit = Bytes({0x03, 0, 0, 0,    0,    0, 0, 0, 'a', 'b',  'c', 0,    0, 0, 0, 0,
                                  0,    0, 0, 0x10, 0x27, 0, 0, 0, 0,   0x01, 0,   0x06, 0, 0, 0});
  CHECK(RunUntilCancelled("hashsearch", unit) < kMiB);
}

TEST_CASE("a hashsearch unit of 2^64 - 1 nonces is cancelled promptly") {
  // The widest range a unit can name: 1.1e15 chunks to do, none listed, none walked after a stop.
  std::string unit = Bytes({0x03, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0});
  unit += std::string(8, '\xff');
  unit += Bytes({0x06, 0, 0, 0});
  CHECK(RunUntilCancelled("hashsearch", unit) < kMiB);
}
