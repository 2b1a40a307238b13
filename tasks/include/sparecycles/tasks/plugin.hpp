// Turns a C++ Task class into a task plugin: SPARECYCLES_EXPORT_TASK(MyTask) in one source file
// of a shared library exports the C ABI entry point of task_abi.h. Everything here is inline and
// compiled by the plugin's own compiler; no C++ object crosses the boundary, only bytes and C
// structs. The Task instance is created on first use and shared by all threads.
//
//   class Integrate final : public sparecycles::tasks::Task { ... };
//   SPARECYCLES_EXPORT_TASK(Integrate)
#pragma once

#include <algorithm>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/task.hpp"
#include "sparecycles/tasks/task_abi.h"

namespace sparecycles::tasks::abi {

// Limits of the encodings that cross the ABI (docs/packages.md, "Task ABI").
inline constexpr std::uint64_t kMaxParams = 4096;
inline constexpr std::uint64_t kMaxText = 1u << 20;
inline constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 34;  // 16 GiB: input or a result

inline void Give(std::string s, sparecycles_bytes* out) {
  auto* owned = new std::string(std::move(s));
  out->data = owned->data();
  out->size = owned->size();
  out->opaque = owned;
  out->release = [](void* p) { delete static_cast<std::string*>(p); };
}

inline std::string_view View(sparecycles_view v) {
  return {v.data, static_cast<std::size_t>(v.size)};
}

/// JobParams <-> bytes: u64 count, (str name, str value) per parameter, str input.
inline std::string EncodeParams(const JobParams& p) {
  ByteWriter w;
  w.Put<std::uint64_t>(p.values.size());
  for (const auto& [k, v] : p.values) w.Str(k).Str(v);
  w.Str(p.input);
  return std::move(w).bytes();
}
inline Status DecodeParams(std::string_view bytes, JobParams& p) {
  ByteReader r(bytes, "job parameters");
  const std::uint64_t n = r.Count(kMaxParams, 16);
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string k = r.Str(kMaxText);
    std::string v = r.Str(kMaxText);
    p.values.emplace(std::move(k), std::move(v));
  }
  p.input = r.Str(kMaxBytes);
  return r.Finish();
}

/// A list of byte strings: u64 count, then str per element.
inline std::string EncodeList(const std::vector<std::string>& items) {
  ByteWriter w;
  w.Put<std::uint64_t>(items.size());
  for (const auto& s : items) w.Str(s);
  return std::move(w).bytes();
}
inline Status DecodeList(std::string_view bytes, std::vector<std::string>& items,
                         std::uint64_t max_items) {
  ByteReader r(bytes, "list");
  const std::uint64_t n = r.Count(max_items, 8);
  items.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n, 1024)));
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) items.push_back(r.Str(kMaxBytes));
  return r.Finish();
}

/// The describe() bytes: str name, u32 version, str summary, str work name, str media type,
/// f64 default work per second, u64 count, (str name, str default, str help) per parameter.
inline std::string EncodeDescription(const Task& t) {
  ByteWriter w;
  w.Str(t.Name())
      .Put<std::uint32_t>(t.Version())
      .Str(t.Summary())
      .Str(t.WorkName())
      .Str(t.MediaType());
  w.Put<double>(t.DefaultWorkPerSecond());
  const auto params = t.Params();
  w.Put<std::uint64_t>(params.size());
  for (const auto& p : params) w.Str(p.name).Str(p.default_value).Str(p.help);
  return std::move(w).bytes();
}

/// The plan() bytes: f64 total work, u64 max units, u8 fixed units.
inline std::string EncodePlan(const JobPlan& p) {
  ByteWriter w;
  w.Put<double>(p.total_work)
      .Put<std::uint64_t>(p.max_units)
      .Put<std::uint8_t>(p.fixed_units ? 1 : 0);
  return std::move(w).bytes();
}

// The host's context as seen from inside the plugin.
class ContextBridge final : public UnitContext {
 public:
  explicit ContextBridge(const sparecycles_unit_context* c) : c_(c) {}
  void Progress(double fraction) override {
    if (c_->progress(c_->self, fraction) != 0) throw UnitCancelled{"cancelled by the worker"};
  }
  bool StopRequested() const override { return c_->stop_requested(c_->self) != 0; }
  std::optional<std::string> ResumeState() const override {
    sparecycles_bytes b{};
    if (c_->resume_state(c_->self, &b) == 0) return std::nullopt;
    std::string s(b.data, static_cast<std::size_t>(b.size));
    if (b.release) b.release(b.opaque);
    return s;
  }
  bool CheckpointDue() const override { return c_->checkpoint_due(c_->self) != 0; }
  void Checkpoint(std::string_view state) override {
    c_->checkpoint(c_->self, {state.data(), state.size()});
  }

 private:
  const sparecycles_unit_context* c_;
};

template <class T>
struct Adapter {
  static const Task& Get() {
    static const T task;
    return task;
  }
  // Runs `f` and turns every exception into a code and a message: nothing unwinds into C.
  template <class F>
  static int32_t Guard(sparecycles_bytes* out, F&& f) noexcept {
    try {
      return f();
    } catch (const UnitCancelled& c) {
      Give(c.reason, out);
      return SPARECYCLES_TASK_UNIT_CANCELLED;
    } catch (const std::bad_alloc&) {
      Give("out of memory", out);
      return static_cast<int32_t>(StatusCode::kResourceExhausted);
    } catch (const std::exception& e) {
      Give(std::string("exception: ") + e.what(), out);
      return static_cast<int32_t>(StatusCode::kInternal);
    } catch (...) {
      Give("unknown exception", out);
      return static_cast<int32_t>(StatusCode::kInternal);
    }
  }
  static int32_t Return(Result<std::string> r, sparecycles_bytes* out) {
    if (!r.ok()) {
      Give(r.status().message(), out);
      return static_cast<int32_t>(r.status().code());
    }
    Give(std::move(r).value(), out);
    return SPARECYCLES_TASK_OK;
  }
  static int32_t Fail(const Status& s, sparecycles_bytes* out) {
    Give(s.message(), out);
    return static_cast<int32_t>(s.code());
  }

  static int32_t Describe(sparecycles_bytes* out) {
    return Guard(out, [&] { return Return(EncodeDescription(Get()), out); });
  }
  static int32_t Plan(sparecycles_view params, sparecycles_bytes* out) {
    return Guard(out, [&] {
      JobParams p;
      if (Status s = DecodeParams(View(params), p); !s.ok()) return Fail(s, out);
      auto plan = Get().Plan(p);
      if (!plan.ok()) return Fail(plan.status(), out);
      return Return(EncodePlan(*plan), out);
    });
  }
  static int32_t Split(sparecycles_view params, uint64_t units, sparecycles_bytes* out) {
    return Guard(out, [&] {
      JobParams p;
      if (Status s = DecodeParams(View(params), p); !s.ok()) return Fail(s, out);
      auto list = Get().Split(p, units);
      if (!list.ok()) return Fail(list.status(), out);
      return Return(EncodeList(*list), out);
    });
  }
  static int32_t Execute(sparecycles_view unit, const sparecycles_unit_context* ctx,
                         sparecycles_bytes* out) {
    return Guard(out, [&] {
      ContextBridge bridge(ctx);
      return Return(Get().Execute(View(unit), bridge), out);
    });
  }
  static int32_t Merge(sparecycles_view params, sparecycles_view results, sparecycles_bytes* out) {
    return Guard(out, [&] {
      JobParams p;
      if (Status s = DecodeParams(View(params), p); !s.ok()) return Fail(s, out);
      std::vector<std::string> list;
      if (Status s = DecodeList(View(results), list, std::uint64_t{1} << 32); !s.ok())
        return Fail(s, out);
      return Return(Get().Merge(p, list), out);
    });
  }
  static int32_t Canonicalize(sparecycles_view result, sparecycles_bytes* out) {
    return Guard(out, [&] { return Return(Get().Canonicalize(View(result)), out); });
  }
  static int32_t Summarize(sparecycles_view merged, sparecycles_bytes* out) {
    return Guard(out, [&] { return Return(Get().Summarize(View(merged)), out); });
  }
  static int32_t ToJson(sparecycles_view merged, sparecycles_bytes* out) {
    return Guard(out, [&] { return Return(Get().ToJson(View(merged)), out); });
  }
  static int32_t Calibrate(double seconds, double* out, sparecycles_bytes* error) {
    return Guard(error, [&] {
      *out = Get().Calibrate(seconds);
      return SPARECYCLES_TASK_OK;
    });
  }

  static const sparecycles_task_api* Table() {
    static const sparecycles_task_api api = {SPARECYCLES_TASK_ABI_VERSION,
                                             sizeof(sparecycles_task_api),
                                             &Describe,
                                             &Plan,
                                             &Split,
                                             &Execute,
                                             &Merge,
                                             &Canonicalize,
                                             &Summarize,
                                             &ToJson,
                                             &Calibrate};
    return &api;
  }
};

}  // namespace sparecycles::tasks::abi

/// Exports `TaskClass` (default-constructible, derived from sparecycles::tasks::Task) as this
/// shared library's task. Use once per library, at namespace scope.
#define SPARECYCLES_EXPORT_TASK(TaskClass)                                      \
  extern "C" __attribute__((visibility("default"))) const sparecycles_task_api* \
  sparecycles_task_entry(uint32_t host_abi_version) {                           \
    (void)host_abi_version;                                                     \
    return ::sparecycles::tasks::abi::Adapter<TaskClass>::Table();              \
  }
