// Small helpers shared by the built-in task kernels: decoding untrusted bytes with a task-named
// message, even range splitting, progress metering across TBB threads, timing and JSON output.
// Internal to the tasks library. Everything here is stateless or per-call; ProgressMeter is
// thread-safe (it may be fed from any TBB thread).
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/json.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks::internal {

/// Decodes untrusted bytes into `out`; the error names the task and what was being decoded.
template <class T>
Status DecodeOrError(std::string_view task, std::string_view what, std::string_view bytes, T& out) {
  Status s = DecodeValue(bytes, out);
  if (!s.ok()) {
    return Status(s.code(),
                  std::string(task) + ": malformed " + std::string(what) + ": " + s.message());
  }
  return OkStatus();
}

// GCC/Clang 128-bit integer; __extension__ keeps -Wpedantic quiet about it.
__extension__ typedef unsigned __int128 Uint128;

/// The i-th of n boundaries that cut [lo, hi) into n nearly equal contiguous pieces
/// (i = 0 gives lo, i = n gives hi). 128-bit arithmetic so huge ranges cannot overflow.
inline std::uint64_t SplitPoint(std::uint64_t lo, std::uint64_t hi, std::uint64_t i,
                                std::uint64_t n) {
  const Uint128 span = hi - lo;
  return lo + static_cast<std::uint64_t>(span * i / n);
}

/// The standard check of Split()'s unit count.
inline Status CheckUnitCount(std::string_view task, std::uint64_t units, std::uint64_t max_units) {
  if (units < 1 || units > max_units) {
    return InvalidArgument(std::string(task) + ": cannot split into " + std::to_string(units) +
                           " units (must be between 1 and " + std::to_string(max_units) + ")");
  }
  return OkStatus();
}

/// Reads an integer parameter and checks it lies in [min, max].
inline Result<std::int64_t> IntParam(std::string_view task, const JobParams& params,
                                     const std::string& name, std::int64_t def, std::int64_t min,
                                     std::int64_t max) {
  auto v = params.Int(name, def);
  if (!v.ok()) return InvalidArgument(std::string(task) + ": " + v.status().message());
  if (*v < min || *v > max) {
    return InvalidArgument(std::string(task) + ": '" + name + "' must be between " +
                           std::to_string(min) + " and " + std::to_string(max) + " (got " +
                           std::to_string(*v) + ")");
  }
  return v;
}

/// Sums work done by many threads and reports the fraction to the unit's context. Add() may throw
/// UnitCancelled (from UnitContext::Progress); callers let it propagate.
class ProgressMeter {
 public:
  ProgressMeter(UnitContext& ctx, double total) : ctx_(ctx), total_(total > 0 ? total : 1) {}
  /// Counts work done before (resumed from a checkpoint) without reporting it yet.
  void Preset(std::uint64_t done) { done_.store(done, std::memory_order_relaxed); }
  void Add(std::uint64_t done) {
    const std::uint64_t now = done_.fetch_add(done, std::memory_order_relaxed) + done;
    ctx_.Progress(std::min(1.0, static_cast<double>(now) / total_));
  }

 private:
  UnitContext& ctx_;
  const double total_;
  std::atomic<std::uint64_t> done_{0};
};

/// FNV-1a of some bytes: a unit's fingerprint, so a checkpoint is only applied to its own unit.
inline std::uint64_t Fingerprint(std::string_view bytes, std::uint64_t salt = 0) {
  std::uint64_t h = 1469598103934665603ull ^ salt;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

/// Which of a unit's chunks [0, n) are done, with the combined partial result of every run of
/// consecutive done chunks: the state of a chunked kernel, and its checkpoint. `Combine(a, b)`
/// appends the result of later chunks `b` to `a` (a sum, a list concatenation...). Thread-safe.
/// Checkpoint bytes: {fingerprint u64, n u64, runs list<{begin u64, end u64, R}>} (cereal).
template <class R>
class DoneChunks {
 public:
  using Combine = std::function<void(R&, R&&)>;
  DoneChunks(std::uint64_t fingerprint, std::uint64_t n, Combine combine)
      : fingerprint_(fingerprint), n_(n), combine_(std::move(combine)) {}

  /// Loads a checkpoint. Bytes that do not decode, belong to another unit or overlap themselves
  /// are ignored (returns false) and the unit starts from zero.
  bool Load(std::string_view bytes) {
    Snapshot snap;
    if (!DecodeValue(bytes, snap).ok() || snap.fingerprint != fingerprint_ || snap.n != n_)
      return false;
    std::uint64_t prev_end = 0;
    for (const Run& r : snap.runs)
      if (r.begin < prev_end || r.begin >= r.end || r.end > n_)
        return false;
      else
        prev_end = r.end;
    std::lock_guard lock(mu_);
    runs_.clear();
    done_ = 0;
    for (Run& r : snap.runs) {
      done_ += r.end - r.begin;
      runs_.emplace(r.begin, std::move(r));
    }
    return true;
  }

  void Add(std::uint64_t chunk, R value) {
    std::lock_guard lock(mu_);
    auto next = runs_.lower_bound(chunk);
    if (next != runs_.end() && next->first == chunk) return;  // already done
    ++done_;
    Run run{chunk, chunk + 1, std::move(value)};
    if (next != runs_.end() && next->first == chunk + 1) {
      combine_(run.value, std::move(next->second.value));
      run.end = next->second.end;
      next = runs_.erase(next);
    }
    if (next != runs_.begin()) {
      auto prev = std::prev(next);
      if (prev->second.end == chunk) {
        combine_(prev->second.value, std::move(run.value));
        prev->second.end = run.end;
        return;
      }
    }
    runs_.emplace(chunk, std::move(run));
  }

  std::string Encode() const {
    Snapshot snap{fingerprint_, n_, {}};
    std::lock_guard lock(mu_);
    for (const auto& [b, r] : runs_) snap.runs.push_back(r);
    return EncodeValue(snap);
  }
  std::uint64_t done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  /// The chunk ranges [begin, end) still to do, in order.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> Gaps() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    std::lock_guard lock(mu_);
    std::uint64_t at = 0;
    for (const auto& [b, r] : runs_) {
      if (r.begin > at) out.emplace_back(at, r.begin);
      at = r.end;
    }
    if (at < n_) out.emplace_back(at, n_);
    return out;
  }
  /// The combined result of every done chunk, in chunk order (all of them once the unit is done).
  R Total() {
    std::lock_guard lock(mu_);
    R total{};
    for (auto& [b, r] : runs_) combine_(total, std::move(r.value));
    runs_.clear();
    return total;
  }

 private:
  struct Run {
    std::uint64_t begin = 0, end = 0;
    R value{};
    template <class A>
    void serialize(A& a) {
      a(begin, end, value);
    }
  };
  struct Snapshot {
    std::uint64_t fingerprint = 0, n = 0;
    std::vector<Run> runs;
    template <class A>
    void serialize(A& a) {
      a(fingerprint, n, runs);
    }
  };
  const std::uint64_t fingerprint_, n_;
  const Combine combine_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, Run> runs_;  // by begin; disjoint, never adjacent
  std::uint64_t done_ = 0;
};

/// Runs `body(chunk)` for every chunk not yet in `done`, in parallel on the current arena's
/// threads, adding each result to `done`, checkpointing whenever the context asks, and then
/// calling `after(chunk)` (where the kernel reports progress, which may block or throw
/// UnitCancelled: by then the chunk is saved). The first exception stops the claiming of new
/// chunks and is rethrown once every claimed chunk is over.
///
/// Chunks are handed out by an atomic counter to the calling thread and helper tasks, and the
/// calling thread, once nothing is left to claim, sleeps on a condition variable until the
/// others finish. Not tbb::parallel_for: its waiting thread spins (sched_yield) while a chunk's
/// thread waits in Progress() — a paused worker kept a third of a core busy that way.
/// The chunks to do are never listed one by one: unit bytes come off the network and may claim
/// ~10^15 chunks, so a claim number is mapped to its chunk through the gaps' running totals, and
/// once stopped no thread claims again (finishing costs nothing however many chunks were left).
template <class R, class Body, class After>
void RunChunks(UnitContext& ctx, DoneChunks<R>& done, const Body& body, const After& after) {
  const auto gaps = done.Gaps();
  std::vector<std::uint64_t> ends;  // ends[g] = chunks in gaps[0..g]
  ends.reserve(gaps.size());
  std::uint64_t todo = 0;
  for (const auto& [first, end] : gaps) ends.push_back(todo += end - first);
  if (todo == 0) return;
  auto chunk_at = [&](std::uint64_t i) {
    const auto g =
        static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), i) - ends.begin());
    return gaps[g].first + (i - (g == 0 ? 0 : ends[g - 1]));
  };
  std::atomic<std::uint64_t> next{0};
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;         // set by the first failure; under mu
  std::size_t active = 0;    // threads between claiming and finishing a chunk; under mu
  std::exception_ptr error;  // the first one; under mu
  auto work = [&] {
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (stop) return;
        ++active;
      }
      const std::uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i < todo) {
        try {
          const std::uint64_t c = chunk_at(i);
          done.Add(c, body(c));
          if (ctx.CheckpointDue()) ctx.Checkpoint(done.Encode());
          after(c);
        } catch (...) {
          std::lock_guard lock(mu);
          if (!error) error = std::current_exception();
          stop = true;
        }
      }
      bool idle = false;
      {
        std::lock_guard lock(mu);
        idle = --active == 0;
      }
      if (idle) cv.notify_all();
      if (i >= todo) return;
    }
  };
  const std::size_t threads =
      static_cast<std::size_t>(std::max(1, tbb::this_task_arena::max_concurrency()));
  const std::size_t helpers = static_cast<std::size_t>(std::min<std::uint64_t>(threads, todo)) - 1;
  tbb::task_group helpers_group;
  for (std::size_t h = 0; h < helpers; ++h) helpers_group.run(work);
  work();
  {
    // Nothing is left to claim (or a chunk failed); wait for the chunks still running, without
    // spinning. A helper that starts later claims nothing: all are claimed, or stop is set.
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return active == 0; });
  }
  helpers_group.wait();  // helpers that started found nothing left; one never started runs here
  if (error) std::rethrow_exception(error);
}

/// Seconds elapsed since construction (steady clock; only used for calibration and spinning).
class Stopwatch {
 public:
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// JSON output of ToJson()/Summarize(): core's one implementation (core/json.hpp).
using sparecycles::JsonDouble;
using sparecycles::JsonString;

/// What Summarize()/ToJson() print for bytes that do not decode as a merged result.
inline std::string BadMerged(std::string_view task, const Status& s) {
  return std::string(task) + ": not a merged result (" + s.message() + ")";
}
inline std::string BadMergedJson(std::string_view task, const Status& s) {
  return "{\"error\":" + JsonString(BadMerged(task, s)) + "}";
}

}  // namespace sparecycles::tasks::internal
