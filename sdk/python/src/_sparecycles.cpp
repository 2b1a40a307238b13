// sparecycles._sparecycles: the pybind11 module under the Python package (sdk/python/sparecycles).
// A thin layer over the SDK client (sdk/include/sparecycles/sdk/client.hpp); the Python-facing API,
// its exceptions and documentation live in sparecycles/__init__.py.
//
// Threading: every call that can block (connect, submit, waits, requests) releases the GIL. The
// client's I/O thread never touches Python: a job's progress callback in C++ only records the
// update in the process-wide Hub below (a mutex, a condition variable and a coalescing queue).
// Python callbacks run on a Python thread that takes updates from the Hub (NextEvent), so a
// callback may call back into the client without deadlocking the I/O thread.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/sdk/client.hpp"

namespace py = pybind11;
using namespace py::literals;

namespace sparecycles::python {
namespace {

using Clock = std::chrono::steady_clock;
// How often a blocked wait checks for Ctrl-C (Python signal handlers run on the main thread).
constexpr auto kSignalCheck = std::chrono::milliseconds(100);
// How long a wait goes without an update before it asks the coordinator again (this also
// re-registers the watch after a reconnect, as Job::Wait does).
constexpr auto kRepoll = std::chrono::seconds(1);
constexpr std::size_t kMaxPollsPerRound = 64;
// Updates waiting for the callback thread; past this, new jobs' updates are dropped (a job's
// latest update replaces its earlier one, so only that many distinct jobs can be waiting).
constexpr std::size_t kMaxQueuedJobs = 100000;

// A non-OK Status on its way to Python; translated to the exception class registered for its code.
struct StatusError {
  Status status;
};

[[noreturn]] void Throw(const Status& s) { throw StatusError{s}; }
void Check(const Status& s) {
  if (!s.ok()) Throw(s);
}
template <class T>
T Value(Result<T>&& r) {
  if (!r.ok()) Throw(r.status());
  return std::move(*r);
}

// Code -> Python exception class, set once by sparecycles/__init__.py. Never destroyed: the
// translator may run during interpreter shutdown.
std::map<int, py::object>* g_error_classes = new std::map<int, py::object>();

void SetErrorClasses(const py::dict& classes) {
  for (auto [k, v] : classes)
    (*g_error_classes)[k.cast<int>()] = py::reinterpret_borrow<py::object>(v);
}

// A job is known by (client serial, job id): job ids repeat across coordinators.
using Key = std::pair<std::uint64_t, std::uint64_t>;

// Process-wide meeting point between the SDK's I/O threads and Python. Heap-allocated and never
// destroyed, because an I/O thread of a leaked client may still report after static destruction.
class Hub {
 public:
  static Hub& Get() {
    static Hub* hub = new Hub();
    return *hub;
  }

  // On an I/O thread: never blocks beyond the mutex, never touches Python.
  void OnUpdate(const Key& key, const JobInfo& info) {
    {
      std::lock_guard lock(mu_);
      ++generation_;
      if (!closed_ && watched_.count(key)) Queue(key, info);
    }
    cv_.notify_all();
  }
  // True the first time for `key`: the caller then installs the job's C++ callback.
  bool MarkHooked(const Key& key) {
    std::lock_guard lock(mu_);
    return hooked_.insert(key).second;
  }
  // Starts forwarding `key`'s updates to NextEvent, beginning with `current`.
  void Watch(const Key& key, const JobInfo& current) {
    {
      std::lock_guard lock(mu_);
      watched_.insert(key);
      if (!closed_) Queue(key, current);
    }
    cv_.notify_all();
  }
  std::uint64_t Generation() {
    std::lock_guard lock(mu_);
    return generation_;
  }
  // Waits until the generation moves past `seen` or `until` passes.
  void WaitChange(std::uint64_t seen, Clock::time_point until) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, until, [&] { return generation_ != seen || closed_; });
  }
  // The next update for a watched job, or nothing after `timeout` or once closed.
  std::optional<std::pair<Key, JobInfo>> NextEvent(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !order_.empty() || closed_; });
    if (order_.empty()) return std::nullopt;
    Key k = order_.front();
    order_.pop_front();
    auto it = latest_.find(k);
    std::pair<Key, JobInfo> out{k, std::move(it->second)};
    latest_.erase(it);
    return out;
  }
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      order_.clear();
      latest_.clear();
    }
    cv_.notify_all();
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  void Queue(const Key& key, const JobInfo& info) {  // mu_ held
    auto it = latest_.find(key);
    if (it != latest_.end()) {
      it->second = info;  // coalesce: the callback sees the latest state
      return;
    }
    if (latest_.size() >= kMaxQueuedJobs) return;
    latest_.emplace(key, info);
    order_.push_back(key);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;
  bool closed_ = false;
  std::set<Key> hooked_, watched_;
  std::deque<Key> order_;
  std::map<Key, JobInfo> latest_;
};

py::dict InfoDict(const JobInfo& i) {
  return py::dict("id"_a = i.id, "task"_a = i.task, "name"_a = i.name,
                  "state"_a = std::string(JobStateName(i.state)), "priority"_a = i.priority,
                  "units_total"_a = i.units_total, "units_done"_a = i.units_done,
                  "units_failed"_a = i.units_failed, "units_running"_a = i.units_running,
                  "submitted_at"_a = i.submitted_at, "finished_at"_a = i.finished_at,
                  "cpu_seconds"_a = i.cpu_seconds, "error"_a = i.error, "waiting"_a = i.waiting);
}

py::dict PeerDict(const PeerInfo& p) {
  return py::dict("peer_id"_a = p.peer_id, "hostname"_a = p.hostname, "state"_a = p.state,
                  "reason"_a = p.reason, "cores"_a = p.cores, "slots"_a = p.slots,
                  "idle_slots"_a = p.idle_slots, "running"_a = p.running,
                  "units_done"_a = p.units_done, "cpu_seconds"_a = p.cpu_seconds,
                  "connected_seconds"_a = p.connected_seconds,
                  "silent_seconds"_a = p.silent_seconds, "units_invalid"_a = p.units_invalid,
                  "credibility"_a = p.credibility);
}

std::chrono::milliseconds Millis(double seconds) {
  if (!(seconds >= 0)) Throw(InvalidArgument("a timeout must be a number of seconds >= 0"));
  if (seconds > 1e9) seconds = 1e9;
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0 + 0.5));
}

// One Python Client. Shared with its jobs so a job can ask the coordinator again while waiting.
struct ClientBox {
  std::uint64_t serial = 0;
  bool local = false;
  std::string endpoint;
  std::mutex mu;
  std::shared_ptr<Client> client;  // null once closed

  std::shared_ptr<Client> Get() {
    std::lock_guard lock(mu);
    if (!client) Throw(FailedPrecondition("the client is closed"));
    return client;
  }
};

std::uint64_t NextSerial() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1);
}

class PyJob {
 public:
  PyJob(std::shared_ptr<ClientBox> box, Job job)
      : box_(std::move(box)), id_(job.id()), job_(std::make_shared<Job>(std::move(job))) {
    const Key key{box_->serial, id_};
    if (Hub::Get().MarkHooked(key))
      job_->OnProgress([key](const JobInfo& i) { Hub::Get().OnUpdate(key, i); });
  }
  std::uint64_t id() const { return id_; }
  std::uint64_t client_serial() const { return box_->serial; }
  Job& job() {
    if (!job_)
      Throw(FailedPrecondition("job " + std::to_string(id_) + " belongs to a closed client"));
    return *job_;
  }
  ClientBox& box() { return *box_; }
  py::dict Info() { return InfoDict(job().Info()); }
  bool Final() { return IsFinal(job().Info().state); }
  void Cancel() {
    Job j = job();
    py::gil_scoped_release release;
    Check(j.Cancel());
  }
  void Watch() { Hub::Get().Watch({box_->serial, id_}, job().Info()); }
  // Fetches the result of a job that has ended (or waits up to `timeout` for it to end).
  py::dict Fetch(double timeout) {
    Job j = job();
    Result<JobResult> r = Unavailable("not fetched");
    {
      py::gil_scoped_release release;
      r = j.Wait(Millis(timeout));
    }
    JobResult res = Value(std::move(r));
    py::list failures;
    for (const auto& f : res.failures) failures.append(py::make_tuple(f.unit, f.reason));
    py::list files;  // a command package's outputs, in unit order
    for (const auto& [name, data] : res.files) files.append(py::make_tuple(name, py::bytes(data)));
    return py::dict("info"_a = InfoDict(res.info), "bytes"_a = py::bytes(res.bytes),
                    "summary"_a = res.summary, "json"_a = res.json, "media_type"_a = res.media_type,
                    "failures"_a = failures, "files"_a = files);
  }
  // Drops this job's hold on the client (Client.close()), so the client can shut down.
  void Release() {
    std::shared_ptr<Job> j = std::move(job_);
    job_.reset();
    py::gil_scoped_release release;
    j.reset();
  }

 private:
  std::shared_ptr<ClientBox> box_;
  std::uint64_t id_;
  std::shared_ptr<Job> job_;  // null once released
};

class PyClient {
 public:
  static PyClient Local(unsigned cores, double unit_seconds, std::vector<std::string> tasks,
                        bool verbose) {
    LocalOptions o;
    o.cores = cores;
    o.unit_seconds = unit_seconds;
    o.tasks = std::move(tasks);
    o.verbose = verbose;
    Result<Client> c = Unavailable("not started");
    {
      py::gil_scoped_release release;
      c = Client::Local(o);
    }
    return PyClient(Value(std::move(c)), true);
  }
  static PyClient Connect(const std::string& endpoint, double timeout,
                          const std::string& coordinator_key, const std::string& key_file) {
    ClientOptions o;
    o.request_timeout = Millis(timeout);
    o.coordinator_key = coordinator_key;
    o.key_file = key_file;
    if (o.request_timeout.count() <= 0)
      Throw(InvalidArgument("the request timeout must be above 0 s"));
    Result<Client> c = Unavailable("not connected");
    {
      py::gil_scoped_release release;
      c = Client::Connect(endpoint, o);
    }
    return PyClient(Value(std::move(c)), false);
  }

  PyJob Submit(const std::string& task, const std::map<std::string, std::string>& params,
               std::optional<py::bytes> input, std::optional<std::string> input_path,
               const std::string& name, int priority, double unit_seconds, std::uint64_t units,
               std::uint32_t replicas, std::uint32_t quorum, std::uint32_t max_replicas,
               std::uint32_t max_errors, const std::string& package, const std::string& input_dir) {
    JobSpec spec(task);
    spec.package = package;
    spec.input_dir = input_dir;
    spec.params = params;
    spec.name = name;
    spec.priority = priority;
    spec.unit_seconds = unit_seconds;
    spec.units = units;
    spec.replication.replicas = replicas;
    spec.replication.quorum = quorum;
    spec.replication.max_replicas = max_replicas;
    spec.replication.max_errors = max_errors;
    if (input) spec.input = std::string(*input);
    auto client = box_->Get();
    Result<Job> job = Unavailable("not submitted");
    {
      py::gil_scoped_release release;
      sparecycles::Status loaded;
      if (input_path) loaded = spec.LoadInput(*input_path);
      job = loaded.ok() ? client->Submit(spec) : Result<Job>(loaded);
    }
    return PyJob(box_, Value(std::move(job)));
  }
  PyJob Attach(std::uint64_t id, const std::string& package,
               const std::map<std::string, std::string>& params) {
    auto client = box_->Get();
    Result<Job> job = Unavailable("not attached");
    {
      py::gil_scoped_release release;
      job = client->Attach(id, package, params);
    }
    return PyJob(box_, Value(std::move(job)));
  }
  py::dict Status(std::uint64_t id) {
    auto client = box_->Get();
    Result<JobInfo> r = Unavailable("no answer");
    {
      py::gil_scoped_release release;
      r = client->Status(id);
    }
    return InfoDict(Value(std::move(r)));
  }
  py::list Jobs() {
    auto client = box_->Get();
    Result<std::vector<JobInfo>> r = Unavailable("no answer");
    {
      py::gil_scoped_release release;
      r = client->Jobs();
    }
    py::list out;
    for (const auto& i : Value(std::move(r))) out.append(InfoDict(i));
    return out;
  }
  py::list Peers() {
    auto client = box_->Get();
    Result<std::vector<PeerInfo>> r = Unavailable("no answer");
    {
      py::gil_scoped_release release;
      r = client->Peers();
    }
    py::list out;
    for (const auto& p : Value(std::move(r))) out.append(PeerDict(p));
    return out;
  }
  void Cancel(std::uint64_t id) {
    auto client = box_->Get();
    sparecycles::Status s;
    {
      py::gil_scoped_release release;
      s = client->Cancel(id);
    }
    Check(s);
  }
  // Shuts the client down (for a local client: its embedded coordinator and worker). Jobs that
  // still hold it must be released first (the Python layer does), or it lives on until they go.
  void Close() {
    std::shared_ptr<Client> c;
    {
      std::lock_guard lock(box_->mu);
      c = std::move(box_->client);
    }
    py::gil_scoped_release release;
    c.reset();
  }
  bool closed() {
    std::lock_guard lock(box_->mu);
    return !box_->client;
  }
  std::uint64_t serial() const { return box_->serial; }
  bool local() const { return box_->local; }
  const std::string& endpoint() const { return box_->endpoint; }

 private:
  PyClient(Client c, bool local) : box_(std::make_shared<ClientBox>()) {
    box_->serial = NextSerial();
    box_->local = local;
    box_->endpoint = c.endpoint();
    box_->client = std::make_shared<Client>(std::move(c));
  }
  std::shared_ptr<ClientBox> box_;
};

// Waits until at least one of `jobs` has ended; returns the indices of those that have (empty
// after `timeout`; None = no limit). Releases the GIL; Ctrl-C raises KeyboardInterrupt.
std::vector<std::size_t> WaitAny(const std::vector<PyJob*>& jobs, std::optional<double> timeout) {
  struct Entry {
    Job job;
    std::shared_ptr<Client> client;  // null when the client is closed: no re-polling
    std::uint64_t id;
  };
  std::vector<Entry> entries;
  entries.reserve(jobs.size());
  for (PyJob* j : jobs) {
    if (j == nullptr) Throw(InvalidArgument("None is not a job"));
    std::shared_ptr<Client> c;
    {
      std::lock_guard lock(j->box().mu);
      c = j->box().client;
    }
    entries.push_back(Entry{j->job(), std::move(c), j->id()});
  }
  std::vector<std::size_t> done;
  if (entries.empty()) return done;
  const auto start = Clock::now();
  const auto deadline = timeout ? start + Millis(*timeout) : Clock::time_point::max();
  auto next_poll = start + kRepoll;
  std::size_t poll_from = 0;
  Hub& hub = Hub::Get();
  py::gil_scoped_release release;
  while (true) {
    const std::uint64_t seen = hub.Generation();
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (IsFinal(entries[i].job.Info().state)) done.push_back(i);
    if (!done.empty()) return done;
    auto now = Clock::now();
    if (now >= deadline) return done;
    if (now >= next_poll) {
      // No push ended a job for a while: ask again (a bounded, rotating share of the jobs per
      // round). The JobStatus replies update the jobs.
      for (std::size_t n = 0; n < std::min(entries.size(), kMaxPollsPerRound); ++n) {
        Entry& e = entries[poll_from++ % entries.size()];
        if (!e.client || IsFinal(e.job.Info().state)) continue;
        auto r = e.client->Attach(e.id);
        if (!r.ok() && r.status().code() == StatusCode::kUnavailable) break;  // retried next round
        if (Clock::now() >= deadline) break;
      }
      next_poll = Clock::now() + kRepoll;
      continue;
    }
    hub.WaitChange(seen, std::min({deadline, next_poll, now + kSignalCheck}));
    {
      py::gil_scoped_acquire acquire;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
  }
}

// The next progress update for a watched job: (client serial, job id, info), or None after
// `timeout` seconds or once the hub is closed (at interpreter exit).
py::object NextEvent(double timeout) {
  std::optional<std::pair<Key, JobInfo>> ev;
  {
    py::gil_scoped_release release;
    ev = Hub::Get().NextEvent(Millis(timeout));
  }
  if (!ev) return py::none();
  return py::make_tuple(ev->first.first, ev->first.second, InfoDict(ev->second));
}

}  // namespace
}  // namespace sparecycles::python

PYBIND11_MODULE(_sparecycles, m) {
  using namespace sparecycles::python;
  m.doc() = "Bindings of the SpareCycles C++ SDK; use the `sparecycles` package, not this module.";
  sparecycles::InitCrypto();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      const int code = static_cast<int>(e.status.code());
      auto it = g_error_classes->find(code);
      PyObject* cls = it != g_error_classes->end() ? it->second.ptr() : PyExc_RuntimeError;
      PyErr_SetString(cls, e.status.message().c_str());
    }
  });

  m.def("_set_error_classes", &SetErrorClasses,
        "Registers the exception class of each status code.");
  m.def("status_code_names", [] {
    std::map<int, std::string> out;
    for (int c = 1; c <= static_cast<int>(sparecycles::kLastStatusCode); ++c)
      out[c] = std::string(sparecycles::StatusCodeName(static_cast<sparecycles::StatusCode>(c)));
    return out;
  });
  m.def("wait_any", &WaitAny, py::arg("jobs"), py::arg("timeout") = py::none());
  m.def("next_event", &NextEvent, py::arg("timeout"));
  m.def("close_events", [] { Hub::Get().Close(); });
  m.def("events_closed", [] { return Hub::Get().closed(); });

  py::class_<PyJob>(m, "Job")
      .def_property_readonly("id", &PyJob::id)
      .def_property_readonly("client_serial", &PyJob::client_serial)
      .def("info", &PyJob::Info)
      .def("final", &PyJob::Final)
      .def("cancel", &PyJob::Cancel)
      .def("watch", &PyJob::Watch)
      .def("fetch", &PyJob::Fetch, py::arg("timeout"))
      .def("release", &PyJob::Release);

  py::class_<PyClient>(m, "Client")
      .def_static("local", &PyClient::Local, py::arg("cores"), py::arg("unit_seconds"),
                  py::arg("tasks"), py::arg("verbose"))
      .def_static("connect", &PyClient::Connect, py::arg("endpoint"), py::arg("timeout"),
                  py::arg("coordinator_key") = "", py::arg("key_file") = "")
      .def("submit", &PyClient::Submit, py::arg("task"), py::arg("params"), py::arg("input"),
           py::arg("input_path"), py::arg("name"), py::arg("priority"), py::arg("unit_seconds"),
           py::arg("units"), py::arg("replicas"), py::arg("quorum"), py::arg("max_replicas"),
           py::arg("max_errors"), py::arg("package"), py::arg("input_dir"))
      .def("attach", &PyClient::Attach, py::arg("id"), py::arg("package") = std::string(),
           py::arg("params") = std::map<std::string, std::string>())
      .def("status", &PyClient::Status)
      .def("jobs", &PyClient::Jobs)
      .def("peers", &PyClient::Peers)
      .def("cancel", &PyClient::Cancel)
      .def("close", &PyClient::Close)
      .def_property_readonly("closed", &PyClient::closed)
      .def_property_readonly("serial", &PyClient::serial)
      .def_property_readonly("is_local", &PyClient::local)
      .def_property_readonly("endpoint", &PyClient::endpoint);
}
