// The host side of the task plugin ABI: every call into the plugin goes through C function
// pointers with bytes in and bytes out; exceptions never cross (the plugin catches its own, and
// the callbacks below catch ours). Encodings: sparecycles/tasks/plugin.hpp, docs/packages.md.
#include "sparecycles/package/plugin_loader.hpp"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

#include "sparecycles/package/manifest.hpp"
#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/plugin.hpp"
#include "sparecycles/tasks/task_abi.h"

namespace sparecycles::package {
namespace {

using tasks::ByteReader;

// Takes ownership of bytes the plugin returned.
class Owned {
 public:
  Owned() = default;
  ~Owned() {
    if (b_.release) b_.release(b_.opaque);
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  sparecycles_bytes* out() { return &b_; }
  std::string_view view() const {
    return b_.data ? std::string_view(b_.data, static_cast<std::size_t>(b_.size))
                   : std::string_view();
  }
  std::string str() const { return std::string(view()); }

 private:
  sparecycles_bytes b_{};
};

sparecycles_view V(std::string_view s) { return {s.data(), s.size()}; }

Status FromCode(int32_t code, const Owned& msg, std::string_view task, std::string_view call) {
  if (code >= 1 && code <= 9)
    return Status(static_cast<StatusCode>(code), std::string(task) + ": " + msg.str());
  return Internal(std::string(task) + ": " + std::string(call) + " returned the unknown code " +
                  std::to_string(code) + ": " + msg.str());
}

// The host's UnitContext behind the C callbacks. UnitCancelled thrown by the host's Progress()
// stops here and is re-thrown on the host side once the plugin has returned.
struct HostContext {
  tasks::UnitContext* ctx;
  std::mutex mu;
  std::string cancel_reason;
  std::atomic<bool> cancelled{false};

  static int32_t Progress(void* self, double f) {
    auto* h = static_cast<HostContext*>(self);
    try {
      h->ctx->Progress(f);
      return 0;
    } catch (const tasks::UnitCancelled& c) {
      std::lock_guard lock(h->mu);
      h->cancel_reason = c.reason;
      h->cancelled = true;
      return 1;
    } catch (...) {
      h->cancelled = true;
      return 1;
    }
  }
  static int32_t Stop(void* self) {
    auto* h = static_cast<HostContext*>(self);
    return h->cancelled || h->ctx->StopRequested() ? 1 : 0;
  }
  static int32_t Resume(void* self, sparecycles_bytes* out) {
    auto state = static_cast<HostContext*>(self)->ctx->ResumeState();
    if (!state) return 0;
    tasks::abi::Give(std::move(*state), out);
    return 1;
  }
  static int32_t Due(void* self) {
    return static_cast<HostContext*>(self)->ctx->CheckpointDue() ? 1 : 0;
  }
  static void Save(void* self, sparecycles_view state) {
    static_cast<HostContext*>(self)->ctx->Checkpoint(
        std::string_view(state.data, static_cast<std::size_t>(state.size)));
  }
};

class PluginTask final : public tasks::Task {
 public:
  PluginTask(std::shared_ptr<void> handle, const sparecycles_task_api* api)
      : handle_(std::move(handle)), api_(api) {}

  Status Describe() {
    Owned out;
    const int32_t code = api_->describe(out.out());
    if (code != SPARECYCLES_TASK_OK) return FromCode(code, out, "plugin", "describe");
    ByteReader r(out.view(), "plugin description");
    name_ = r.Str(kMaxNameLength);
    version_ = r.Get<std::uint32_t>();
    summary_ = r.Str(4096);
    work_name_ = r.Str(4096);
    media_type_ = r.Str(256);
    default_rate_ = r.Get<double>();
    const std::uint64_t n = r.Count(tasks::abi::kMaxParams, 24);
    for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
      tasks::ParamSpec p;
      p.name = r.Str(256);
      p.default_value = r.Str(4096);
      p.help = r.Str(4096);
      params_.push_back(std::move(p));
    }
    SC_RETURN_IF_ERROR(r.Finish());
    if (name_.empty()) return DataLoss("the plugin's task has no name");
    if (!(default_rate_ > 0)) default_rate_ = 1;
    return OkStatus();
  }

  std::string_view Name() const override { return name_; }
  std::uint32_t Version() const override { return version_; }
  std::string_view Summary() const override { return summary_; }
  std::vector<tasks::ParamSpec> Params() const override { return params_; }
  std::string_view WorkName() const override { return work_name_; }
  std::string_view MediaType() const override { return media_type_; }
  double DefaultWorkPerSecond() const override { return default_rate_; }

  Result<tasks::JobPlan> Plan(const tasks::JobParams& params) const override {
    const std::string p = tasks::abi::EncodeParams(params);
    Owned out;
    const int32_t code = api_->plan(V(p), out.out());
    if (code != SPARECYCLES_TASK_OK) return FromCode(code, out, name_, "plan");
    ByteReader r(out.view(), "plan");
    tasks::JobPlan plan;
    plan.total_work = r.Get<double>();
    plan.max_units = r.Get<std::uint64_t>();
    const std::uint8_t fixed = r.Get<std::uint8_t>();
    SC_RETURN_IF_ERROR(r.Finish());
    if (fixed > 1) return DataLoss(name_ + ": plan: fixed-units flag is neither 0 nor 1");
    plan.fixed_units = fixed == 1;
    return plan;
  }

  Result<std::vector<std::string>> Split(const tasks::JobParams& params,
                                         std::uint64_t units) const override {
    const std::string p = tasks::abi::EncodeParams(params);
    Owned out;
    const int32_t code = api_->split(V(p), units, out.out());
    if (code != SPARECYCLES_TASK_OK) return FromCode(code, out, name_, "split");
    std::vector<std::string> list;
    SC_RETURN_IF_ERROR(tasks::abi::DecodeList(out.view(), list, units));
    if (list.size() != units)
      return Internal(name_ + ": split returned " + std::to_string(list.size()) + " units, " +
                      std::to_string(units) + " asked");
    return list;
  }

  Result<std::string> Execute(std::string_view unit, tasks::UnitContext& ctx) const override {
    HostContext host;
    host.ctx = &ctx;
    const sparecycles_unit_context c{&host,
                                     &HostContext::Progress,
                                     &HostContext::Stop,
                                     &HostContext::Resume,
                                     &HostContext::Due,
                                     &HostContext::Save};
    Owned out;
    const int32_t code = api_->execute(V(unit), &c, out.out());
    if (code == SPARECYCLES_TASK_UNIT_CANCELLED ||
        (code != SPARECYCLES_TASK_OK && host.cancelled)) {
      std::lock_guard lock(host.mu);
      throw tasks::UnitCancelled{host.cancel_reason.empty() ? out.str() : host.cancel_reason};
    }
    if (code != SPARECYCLES_TASK_OK) return FromCode(code, out, name_, "execute");
    return out.str();
  }

  Result<std::string> Merge(const tasks::JobParams& params,
                            std::span<const std::string> results) const override {
    const std::string p = tasks::abi::EncodeParams(params);
    const std::string list =
        tasks::abi::EncodeList(std::vector<std::string>(results.begin(), results.end()));
    Owned out;
    const int32_t code = api_->merge(V(p), V(list), out.out());
    if (code != SPARECYCLES_TASK_OK) return FromCode(code, out, name_, "merge");
    return out.str();
  }

  std::string Canonicalize(std::string_view result) const override {
    Owned out;
    // A plugin that fails to canonicalize gets its raw result compared: replicas still agree
    // only if they are bitwise equal, which is the safe direction.
    if (api_->canonicalize(V(result), out.out()) != SPARECYCLES_TASK_OK) return std::string(result);
    return out.str();
  }
  std::string Summarize(std::string_view merged) const override {
    return Text(api_->summarize, merged);
  }
  std::string ToJson(std::string_view merged) const override {
    std::string j = Text(api_->to_json, merged);
    return j.empty() ? "null" : j;
  }
  double Calibrate(double seconds) const override {
    double rate = 0;
    Owned err;
    if (api_->calibrate(seconds, &rate, err.out()) != SPARECYCLES_TASK_OK || !(rate > 0))
      return default_rate_;
    return rate;
  }

 private:
  std::string Text(int32_t (*fn)(sparecycles_view, sparecycles_bytes*), std::string_view in) const {
    Owned out;
    if (fn(V(in), out.out()) != SPARECYCLES_TASK_OK) return "(" + name_ + ": " + out.str() + ")";
    return out.str();
  }

  std::shared_ptr<void> handle_;
  const sparecycles_task_api* api_;
  std::string name_, summary_, work_name_, media_type_;
  std::uint32_t version_ = 0;
  double default_rate_ = 1;
  std::vector<tasks::ParamSpec> params_;
};

}  // namespace

std::uint32_t HostTaskAbiVersion() { return SPARECYCLES_TASK_ABI_VERSION; }

Result<std::unique_ptr<tasks::Task>> LoadTaskPlugin(const std::string& path) {
  // RTLD_LOCAL: the plugin's symbols (its own copy of the helpers, its C++ runtime's) never
  // resolve anyone else's. RTLD_NOW: a missing symbol fails here, not in the middle of a unit.
  void* raw = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (raw == nullptr) {
    const char* e = ::dlerror();
    return FailedPrecondition("cannot load task plugin " + path + ": " + (e ? e : "unknown error"));
  }
  std::shared_ptr<void> handle(raw, [](void* h) { ::dlclose(h); });
  ::dlerror();
  void* sym = ::dlsym(raw, SPARECYCLES_TASK_ENTRY_SYMBOL);
  if (sym == nullptr)
    return FailedPrecondition(
        path + " is not a SpareCycles task plugin: it exports no " SPARECYCLES_TASK_ENTRY_SYMBOL
               " (build it with SPARECYCLES_EXPORT_TASK)");
  auto entry = reinterpret_cast<sparecycles_task_entry_fn>(sym);
  const sparecycles_task_api* api = entry(SPARECYCLES_TASK_ABI_VERSION);
  if (api == nullptr)
    return FailedPrecondition(path + ": the plugin's entry point returned no task");
  if (api->abi_version != SPARECYCLES_TASK_ABI_VERSION)
    return FailedPrecondition(
        path + " was built for task ABI version " + std::to_string(api->abi_version) +
        ", but this SpareCycles speaks version " + std::to_string(SPARECYCLES_TASK_ABI_VERSION) +
        ": rebuild the plugin against this release's SpareCycles::tasks");
  if (api->struct_size < sizeof(sparecycles_task_api))
    return FailedPrecondition(path + ": the plugin's function table is " +
                              std::to_string(api->struct_size) + " bytes, expected " +
                              std::to_string(sizeof(sparecycles_task_api)));
  for (const void* fn :
       {reinterpret_cast<const void*>(api->describe), reinterpret_cast<const void*>(api->plan),
        reinterpret_cast<const void*>(api->split), reinterpret_cast<const void*>(api->execute),
        reinterpret_cast<const void*>(api->merge), reinterpret_cast<const void*>(api->canonicalize),
        reinterpret_cast<const void*>(api->summarize), reinterpret_cast<const void*>(api->to_json),
        reinterpret_cast<const void*>(api->calibrate)})
    if (fn == nullptr)
      return FailedPrecondition(path + ": the plugin's function table has a null entry");
  auto task = std::make_unique<PluginTask>(std::move(handle), api);
  if (Status s = task->Describe(); !s.ok()) return Status(s.code(), path + ": " + s.message());
  return std::unique_ptr<tasks::Task>(std::move(task));
}

}  // namespace sparecycles::package
