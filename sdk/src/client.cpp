// The SDK client: a background I/O thread owns the ZeroMQ socket; callers hand it frames through a
// mutex-protected outbox and wait on futures. Replies are routed by request id (the first u64 of
// every reply body); Progress pushes update the matching JobCore.
#include "sparecycles/sdk/client.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "package_job.hpp"
#include "sparecycles/coordinator/coordinator.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/worker/worker.hpp"

namespace sparecycles {

std::string_view JobStateName(JobState state) {
  return proto::JobStateName(static_cast<proto::JobState>(state));
}

Status JobSpec::LoadInput(const std::string& path) {
  auto data = ReadFile(path, proto::kMaxInputBytes);
  if (!data.ok()) return data.status();
  input = std::move(*data);
  return OkStatus();
}

Status JobResult::WriteTo(const std::string& path) const { return WriteFileAtomic(path, bytes); }

Status JobResult::WriteFiles(const std::string& dir) const { return sdk::WriteFiles(files, dir); }

namespace {

JobInfo FromWire(const proto::JobInfo& w) {
  JobInfo i;
  i.id = w.job_id;
  i.task = w.task;
  i.name = w.name;
  i.state = static_cast<JobState>(w.state);
  i.priority = w.priority;
  i.units_total = w.units_total;
  i.units_done = w.units_done;
  i.units_failed = w.units_failed;
  i.units_running = w.units_running;
  i.submitted_at = w.submitted_at;
  i.finished_at = w.finished_at;
  i.cpu_seconds = w.cpu_seconds;
  i.error = w.error;
  i.waiting = w.waiting;
  return i;
}

struct Reply {
  proto::MsgType type{};
  std::string frame;
  std::string_view body() const { return std::string_view(frame).substr(proto::kHeaderSize); }
};

}  // namespace

namespace detail {

struct JobCore {
  std::uint64_t id = 0;
  mutable std::mutex mu;
  std::condition_variable cv;
  JobInfo info;
  std::vector<std::function<void(const JobInfo&)>> callbacks;
  // A job of a task package: the package that merges its result (kept loaded for as long as the
  // job is followed), with the parameters and input it was cut from. Set before the Job is
  // handed out, read-only afterwards.
  std::shared_ptr<const sdk::LoadedPackage> package;
  std::map<std::string, std::string> params;
  std::string input;

  void SetPackage(std::shared_ptr<const sdk::LoadedPackage> p,
                  const std::map<std::string, std::string>& job_params, const std::string& in) {
    std::lock_guard lock(mu);
    package = std::move(p);
    params = job_params;
    input = in;
  }

  void Update(const JobInfo& next) {
    std::vector<std::function<void(const JobInfo&)>> cbs;
    {
      std::lock_guard lock(mu);
      // Never move backwards: a late status reply must not undo a final state.
      if (IsFinal(info.state) && !IsFinal(next.state)) return;
      info = next;
      cbs = callbacks;
    }
    cv.notify_all();
    for (auto& cb : cbs) cb(next);
  }
};

struct ClientCore {
  std::string endpoint;
  ClientOptions options;
  // Set when no coordinator of this user publishes a key for a local endpoint (so none runs
  // there): Connect stays lazy and every request answers this, like a dead endpoint.
  Status unreachable;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  net::WireStats wire;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  std::thread io;

  std::mutex mu;  // guards outbox, pending, jobs
  std::deque<std::string> outbox;
  std::unordered_map<std::uint64_t, std::promise<Reply>> pending;
  std::unordered_map<std::uint64_t, std::shared_ptr<JobCore>> jobs;
  std::atomic<std::uint64_t> next_request{1};

  // Packages read by Submit or Attach, by package id in hex, so a later job may name one by id.
  std::mutex packages_mu;
  std::map<std::string, std::shared_ptr<const sdk::LoadedPackage>> packages;

  // Embedded mode: a coordinator and a worker running on threads of this process, and the
  // registry they share (built-ins plus in-process tasks), which outlives them.
  std::unique_ptr<tasks::Registry> registry;
  std::unique_ptr<coordinator::Coordinator> coord;
  std::unique_ptr<worker::Worker> worker;
  std::thread coord_thread, worker_thread;

  ~ClientCore() {
    stop.store(true);
    wake.Wake();
    if (io.joinable()) io.join();
    sock.reset();
    if (worker) {
      worker->Stop();
      if (worker_thread.joinable()) worker_thread.join();
    }
    if (coord) {
      coord->Stop();
      if (coord_thread.joinable()) coord_thread.join();
    }
  }

  Status Open() {
    net::SocketConfig sc;
    sc.heartbeat_ivl_ms = 1000;
    sc.heartbeat_timeout_ms = 10000;
    if (options.curve) {
      if (!curve::Available())
        return FailedPrecondition("this libzmq has no CURVE support (built without libsodium)");
      std::optional<curve::PublicKey> server;
      if (!options.coordinator_key.empty()) {
        auto k = curve::PublicKeyFromArg(options.coordinator_key);
        if (!k.ok()) return InvalidArgument("coordinator key: " + k.status().message());
        server = *k;
      } else {
        server = curve::FindLocalKey(endpoint);
      }
      if (!server) {
        const std::string hint =
            ": give its public key (--coordinator-key; `sparecycles-coordinator key` prints it)";
        // On this machine a running coordinator publishes its key: none means none runs there.
        if (curve::IsLocalEndpoint(endpoint)) {
          unreachable = Unavailable("no coordinator of this user published a key for " + endpoint +
                                    " (is one running there?)" + hint);
          return OkStatus();
        }
        return FailedPrecondition("no key for the coordinator at " + endpoint + hint);
      }
      curve::KeyPair mine;
      if (!options.key_file.empty()) {
        auto k = curve::LoadKeyPair(options.key_file);
        if (!k.ok()) return k.status();
        mine = *k;
      } else {
        mine = curve::Generate();
      }
      sc.curve_server_key = server->Z85();
      sc.curve_public = mine.public_key.Z85();
      sc.curve_secret = mine.SecretZ85();
    }
    auto s = net::ConnectDealer(ctx, endpoint, sc);
    if (!s.ok()) return s.status();
    sock.emplace(std::move(*s));
    io = std::thread([this] { Loop(); });
    return OkStatus();
  }

  // A package named by path (read, verified, loaded, remembered by id) or by the id of one read
  // before.
  Result<std::shared_ptr<const sdk::LoadedPackage>> ResolvePackage(const std::string& name) {
    std::lock_guard lock(packages_mu);
    if (sdk::IsPackageId(name)) {
      std::string hex = name;
      std::transform(hex.begin(), hex.end(), hex.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      auto it = packages.find(hex);
      if (it != packages.end()) return it->second;
      return FailedPrecondition(
          "package " + hex +
          ": a package job is cut and merged by the submitting client (a native package's Plan, "
          "Split and Merge run on this machine), so the client needs the package itself; name "
          "its .scpkg file (a coordinator that holds it already is not sent it again)");
    }
    auto loaded = sdk::LoadedPackage::Open(name);
    if (!loaded.ok()) return loaded.status();
    const std::string hex = ToHex((*loaded)->id());
    auto [it, inserted] = packages.emplace(hex, *loaded);
    return it->second;  // the first one loaded of the same bytes is kept
  }

  std::shared_ptr<JobCore> JobFor(std::uint64_t id) {  // mu held
    auto& j = jobs[id];
    if (!j) {
      j = std::make_shared<JobCore>();
      j->id = id;
      j->info.id = id;
    }
    return j;
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    while (!stop.load()) {
      net::Poll(items, std::chrono::milliseconds(200));
      if (items[1].revents & ZMQ_POLLIN) wake.Drain();
      std::deque<std::string> out;
      {
        std::lock_guard lock(mu);
        out.swap(outbox);
      }
      for (auto& f : out) net::SendDealer(*sock, f, &wire);
      for (int i = 0; i < 1024; ++i) {
        auto m = net::RecvDealer(*sock, &wire);
        if (!m) break;
        OnFrame(std::string(static_cast<const char*>(m->data()), m->size()));
      }
    }
  }

  void OnFrame(std::string frame) {
    std::string_view body;
    auto type = proto::ParseHeader(frame, body);
    if (!type.ok()) {
      ++wire.bad_frames;
      SC_LOG(Warn) << "dropped a bad frame from the coordinator: " << type.status().ToString();
      return;
    }
    if (*type == proto::MsgType::kProgress) {
      proto::Progress p;
      if (!proto::Decode(body, p).ok()) {
        ++wire.bad_frames;
        return;
      }
      std::shared_ptr<JobCore> job;
      {
        std::lock_guard lock(mu);
        job = JobFor(p.info.job_id);
      }
      job->Update(FromWire(p.info));
      return;
    }
    // Every reply body starts with the u64 request id.
    if (body.size() < 8) {
      ++wire.bad_frames;
      return;
    }
    std::uint64_t rid;
    std::memcpy(&rid, body.data(), 8);
    if (*type == proto::MsgType::kSubmitReply || *type == proto::MsgType::kJobStatus) {
      // Register the job before the caller sees the reply, so no Progress push is missed.
      proto::JobStatus js;  // SubmitReply has the same layout
      if (proto::Decode(body, js).ok() && js.code == 0 && js.info.job_id != 0) {
        std::shared_ptr<JobCore> job;
        {
          std::lock_guard lock(mu);
          job = JobFor(js.info.job_id);
        }
        job->Update(FromWire(js.info));
      }
    }
    std::lock_guard lock(mu);
    auto it = pending.find(rid);
    if (it == pending.end()) return;  // the caller gave up waiting
    it->second.set_value(Reply{*type, std::move(frame)});
    pending.erase(it);
  }

  template <class Req, class Resp>
  Result<Resp> Call(Req req) {
    if (!unreachable.ok()) return unreachable;
    req.request_id = next_request.fetch_add(1);
    std::future<Reply> fut;
    {
      std::lock_guard lock(mu);
      auto& p = pending[req.request_id];
      fut = p.get_future();
      outbox.push_back(proto::Encode(req));
    }
    wake.Wake();
    if (fut.wait_for(options.request_timeout) != std::future_status::ready) {
      std::lock_guard lock(mu);
      pending.erase(req.request_id);
      return Unavailable("the coordinator at " + endpoint + " did not answer within " +
                         std::to_string(options.request_timeout.count()) + " ms");
    }
    Reply r = fut.get();
    if (r.type == proto::MsgType::kErrorReply) {
      proto::ErrorReply e;
      if (!proto::Decode(r.body(), e).ok()) return DataLoss("malformed error reply");
      return proto::StatusFromWire(e.code, e.message);
    }
    if (r.type != Resp::kType)
      return DataLoss("expected " + std::string(proto::MsgTypeName(Resp::kType)) + ", got " +
                      std::string(proto::MsgTypeName(r.type)));
    Resp resp;
    if (Status s = proto::Decode(r.body(), resp); !s.ok()) return s;
    return resp;
  }
};

}  // namespace detail

// ------------------------------------------------------------------------------------- Job

std::uint64_t Job::id() const { return job_->id; }

JobInfo Job::Info() const {
  std::lock_guard lock(job_->mu);
  return job_->info;
}

void Job::OnProgress(std::function<void(const JobInfo&)> callback) {
  std::lock_guard lock(job_->mu);
  job_->callbacks.push_back(std::move(callback));
}

Result<JobResult> Job::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    {
      std::unique_lock lock(job_->mu);
      const auto now = std::chrono::steady_clock::now();
      const auto slice =
          std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::seconds(1));
      if (slice > std::chrono::steady_clock::duration::zero())
        job_->cv.wait_for(lock, slice, [&] { return IsFinal(job_->info.state); });
      if (IsFinal(job_->info.state)) break;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return DeadlineExceeded("job " + std::to_string(job_->id) + " is still running");
    // No push for a second: ask again. This also re-registers the watch after a coordinator
    // restart or a reconnect.
    proto::Watch w;
    w.job_id = job_->id;
    auto r = client_->Call<proto::Watch, proto::JobStatus>(w);
    if (!r.ok() && r.status().code() != StatusCode::kUnavailable) return r.status();
  }
  proto::FetchResult f;
  f.job_id = job_->id;
  auto r = client_->Call<proto::FetchResult, proto::JobResult>(f);
  if (!r.ok()) return r.status();
  if (r->code != 0) return proto::StatusFromWire(r->code, r->message);
  JobResult out;
  out.info = FromWire(r->info);
  out.bytes = std::move(r->result);
  out.summary = std::move(r->summary);
  out.json = std::move(r->json);
  out.media_type = std::move(r->media_type);
  for (auto& u : r->failures)
    out.failures.push_back(UnitFailure{u.unit_index, std::move(u.reason)});
  if (out.info.state == JobState::kDone && package::ParsePackageTaskName(out.info.task)) {
    std::shared_ptr<const sdk::LoadedPackage> pkg;
    std::map<std::string, std::string> params;
    std::string input;
    {
      std::lock_guard lock(job_->mu);
      pkg = job_->package;
      params = job_->params;
      input = job_->input;
    }
    if (pkg && pkg->task_name() == out.info.task) {
      auto merged = sdk::Merge(*pkg, params, input, out.bytes);
      if (!merged.ok()) return merged.status();
      out.bytes = std::move(merged->bytes);
      out.summary = std::move(merged->summary);
      out.json = std::move(merged->json);
      out.media_type = std::move(merged->media_type);
      out.files = std::move(merged->files);
    } else {
      auto raw = sdk::Unmerged(out.info.task, std::move(out.bytes));
      out.bytes = std::move(raw.bytes);
      out.summary = std::move(raw.summary);
      out.json = std::move(raw.json);
      out.media_type = std::move(raw.media_type);
    }
  }
  return out;
}

Status Job::Cancel() {
  proto::CancelJob c;
  c.job_id = job_->id;
  auto r = client_->Call<proto::CancelJob, proto::JobStatus>(c);
  return r.ok() ? OkStatus() : r.status();
}

// ----------------------------------------------------------------------------------- Client

Client::Client(std::shared_ptr<detail::ClientCore> core) : core_(std::move(core)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::Connect(const std::string& endpoint, ClientOptions options) {
  auto core = std::make_shared<detail::ClientCore>();
  core->endpoint = endpoint;
  core->options = std::move(options);
  SC_RETURN_IF_ERROR(core->Open());
  return Client(std::move(core));
}

Result<Client> Client::Local(const LocalOptions& options) {
  InitCrypto();
  if (!options.verbose) SetLogLevel(LogLevel::kWarn);
  auto core = std::make_shared<detail::ClientCore>();
  coordinator::CoordinatorConfig cc;
  cc.peer_endpoint = "tcp://127.0.0.1:*";
  cc.client_endpoint = "tcp://127.0.0.1:*";
  cc.heartbeat = std::chrono::seconds(1);
  cc.scheduler.peer_timeout = std::chrono::seconds(10);
  if (options.unit_seconds > 0) cc.scheduler.unit_seconds = options.unit_seconds;
  // The researcher's own packages need no keys here (a signature that is present is still
  // checked).
  cc.allow_unsigned_packages = true;
  core->registry = std::make_unique<tasks::Registry>(tasks::Registry::BuiltIn());
  for (const auto& t : options.in_process_tasks) {
    if (!t) return InvalidArgument("LocalOptions.in_process_tasks holds a null task");
    core->registry->AddShared(t);
  }
  // Zero-config, still CURVE: fresh keys for this process, handed over directly (and published
  // for this user's other programs, which may connect to client->endpoint()).
  cc.key = curve::Generate();
  core->coord = std::make_unique<coordinator::Coordinator>(cc, *core->registry);
  SC_RETURN_IF_ERROR(core->coord->Start());
  core->coord_thread = std::thread([c = core->coord.get()] { c->Run(); });

  worker::WorkerConfig wc;
  wc.coordinator = core->coord->peer_endpoint();
  wc.cores = options.cores;
  wc.coordinator_key = core->coord->public_key().Z85();
  wc.only_tasks = options.tasks;
  wc.prefetch = 1;
  wc.allow_unsigned = true;
  core->worker = std::make_unique<worker::Worker>(wc, *core->registry);
  SC_RETURN_IF_ERROR(core->worker->Start());
  core->worker_thread = std::thread([w = core->worker.get()] { w->Run(); });

  // Submit only once the worker has said hello, so the unit count uses its measured speed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (core->coord->stats().peers == 0) {
    if (std::chrono::steady_clock::now() > deadline)
      return Unavailable("the embedded worker did not connect to the embedded coordinator");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  core->endpoint = core->coord->client_endpoint();
  core->options.coordinator_key = core->coord->public_key().Z85();
  SC_RETURN_IF_ERROR(core->Open());
  return Client(std::move(core));
}

namespace {

Status FromCode(std::uint16_t code, const std::string& message) {
  return proto::StatusFromWire(code, message);
}

// Uploads a package the coordinator lacks (docs/protocol.md §7.1): asks where to continue, then
// sends chunks of at most 1 MiB at the offset the coordinator last named. A refusal's message
// (e.g. "unknown signer: ...") is returned as it came.
Status Upload(detail::ClientCore& core, const sdk::LoadedPackage& pkg,
              const std::function<void(std::uint64_t, std::uint64_t)>& on_upload) {
  const std::string& bytes = pkg.bytes();
  proto::PackagePut put;
  put.package_id.assign(reinterpret_cast<const char*>(pkg.id().data()), pkg.id().size());
  put.total_size = bytes.size();
  put.offset = 0;
  std::uint64_t sent_at = 0;
  int unanswered = 0, stalled = 0;
  while (true) {
    auto r = core.Call<proto::PackagePut, proto::PackagePutReply>(put);
    if (!r.ok()) {
      // An unanswered chunk is asked about again (empty PackagePut): the upload resumes.
      if (r.status().code() != StatusCode::kUnavailable || ++unanswered > 3) return r.status();
      put.bytes.clear();
      continue;
    }
    unanswered = 0;
    if (r->code != 0) return FromCode(r->code, r->message);
    if (r->complete) {
      if (on_upload) on_upload(bytes.size(), bytes.size());
      return OkStatus();
    }
    if (r->next_offset >= bytes.size())
      return DataLoss("the coordinator asked for the package's bytes at " +
                      std::to_string(r->next_offset) + " of " + std::to_string(bytes.size()) +
                      " but did not take it");
    // A coordinator that keeps asking for the same offset is not taking the bytes.
    if (!put.bytes.empty() && r->next_offset <= sent_at && ++stalled > 3)
      return DataLoss("the coordinator does not advance the upload past byte " +
                      std::to_string(r->next_offset));
    if (on_upload) on_upload(r->next_offset, bytes.size());
    put.offset = r->next_offset;
    sent_at = put.offset;
    put.bytes = bytes.substr(put.offset, std::min<std::uint64_t>(proto::kMaxPackageChunkBytes,
                                                                 bytes.size() - put.offset));
  }
}

}  // namespace

Result<Job> Client::Submit(const JobSpec& spec) {
  proto::Submit s;
  std::shared_ptr<const sdk::LoadedPackage> pkg;
  s.spec.task = spec.task;
  s.spec.name = spec.name;
  s.spec.params = spec.params;
  s.spec.input = spec.input;
  if (!spec.package.empty()) {
    auto loaded = core_->ResolvePackage(spec.package);
    if (!loaded.ok()) return loaded.status();
    pkg = std::move(loaded).value();
    sdk::CutRequest cr;
    cr.params = spec.params;
    cr.input = spec.input;
    cr.input_dir = spec.input_dir;
    cr.units = spec.units;
    cr.unit_seconds = spec.unit_seconds;
    auto cut = sdk::Cut(*pkg, cr);
    if (!cut.ok()) return cut.status();
    s.spec.task = pkg->task_name();
    s.spec.input = std::move(cut->input);
    if (s.spec.name.empty()) s.spec.name = pkg->manifest().name + " " + pkg->manifest().version;
  } else if (!spec.input_dir.empty()) {
    return InvalidArgument("input_dir is for command packages (JobSpec::package)");
  }
  s.spec.priority = spec.priority;
  s.spec.unit_seconds = spec.unit_seconds;
  s.spec.units = spec.units;
  s.spec.replicas = spec.replication.replicas;
  s.spec.quorum = spec.replication.quorum;
  s.spec.max_replicas = spec.replication.max_replicas;
  s.spec.max_errors = spec.replication.max_errors;
  if (spec.replication.adaptive < 0 || spec.replication.adaptive > 2)
    return InvalidArgument("adaptive must be 0, 1 or 2");
  s.spec.adaptive = static_cast<std::uint8_t>(spec.replication.adaptive);
  s.spec.target_error = spec.replication.target_error;
  s.spec.client_token = spec.client_token.empty() ? RandomId("tok-") : spec.client_token;
  SC_RETURN_IF_ERROR(s.spec.Validate());
  if (pkg) SC_RETURN_IF_ERROR(Upload(*core_, *pkg, spec.on_upload));
  // A retry with the same token can never create a second job, so an unanswered submit is retried.
  Result<proto::SubmitReply> r = Unavailable("not sent");
  for (int attempt = 0; attempt < 3; ++attempt) {
    r = core_->Call<proto::Submit, proto::SubmitReply>(s);
    if (r.ok() || r.status().code() != StatusCode::kUnavailable) break;
  }
  if (!r.ok()) return r.status();
  if (r->code != 0) return proto::StatusFromWire(r->code, r->message);
  std::shared_ptr<detail::JobCore> job;
  {
    std::lock_guard lock(core_->mu);
    job = core_->JobFor(r->info.job_id);
  }
  if (pkg) {
    const bool native = pkg->task() != nullptr;  // only a native Merge reads the input
    job->SetPackage(std::move(pkg), spec.params, native ? spec.input : std::string());
  }
  return Job(core_, job);
}

Result<Job> Client::Attach(std::uint64_t job_id, const std::string& package_path,
                           const std::map<std::string, std::string>& params) {
  std::shared_ptr<const sdk::LoadedPackage> pkg;
  if (!package_path.empty()) {
    auto loaded = core_->ResolvePackage(package_path);
    if (!loaded.ok()) return loaded.status();
    pkg = std::move(loaded).value();
  }
  proto::Watch w;
  w.job_id = job_id;
  auto r = core_->Call<proto::Watch, proto::JobStatus>(w);
  if (!r.ok()) return r.status();
  if (pkg && r->info.task != pkg->task_name())
    return InvalidArgument("job " + std::to_string(job_id) + " runs " + r->info.task + ", not " +
                           package_path + " (" + pkg->task_name() + ")");
  std::shared_ptr<detail::JobCore> job;
  {
    std::lock_guard lock(core_->mu);
    job = core_->JobFor(job_id);
  }
  if (pkg) job->SetPackage(std::move(pkg), params, "");
  return Job(core_, job);
}

Result<std::vector<PackageInfo>> Client::Packages() {
  auto r = core_->Call<proto::ListPackages, proto::PackageList>(proto::ListPackages{});
  if (!r.ok()) return r.status();
  std::vector<PackageInfo> out;
  for (const auto& p : r->packages) {
    PackageInfo i;
    i.id = ToHex(p.package_id);
    i.name = p.name;
    i.version = p.version;
    i.kind = p.kind;
    i.size = p.size;
    i.signer = p.signer;
    out.push_back(std::move(i));
  }
  return out;
}

Result<JobInfo> Client::Status(std::uint64_t job_id) {
  proto::StatusRequest q;
  q.job_id = job_id;
  auto r = core_->Call<proto::StatusRequest, proto::JobStatus>(q);
  if (!r.ok()) return r.status();
  return FromWire(r->info);
}

Result<std::vector<JobInfo>> Client::Jobs() {
  auto r = core_->Call<proto::ListJobs, proto::JobList>(proto::ListJobs{});
  if (!r.ok()) return r.status();
  std::vector<JobInfo> out;
  for (const auto& j : r->jobs) out.push_back(FromWire(j));
  return out;
}

Result<std::vector<PeerInfo>> Client::Peers() {
  auto r = core_->Call<proto::ListPeers, proto::PeerList>(proto::ListPeers{});
  if (!r.ok()) return r.status();
  std::vector<PeerInfo> out;
  for (const auto& p : r->peers) {
    PeerInfo i;
    i.peer_id = p.peer_id;
    i.hostname = p.hostname;
    i.state = p.state == proto::PeerState::kRunning     ? "running"
              : p.state == proto::PeerState::kThrottled ? "throttled"
                                                        : "paused";
    i.reason = p.reason;
    i.cores = p.cores;
    i.slots = p.slots;
    i.idle_slots = p.idle_slots;
    i.running = p.running;
    i.units_done = p.units_done;
    i.cpu_seconds = p.cpu_seconds;
    i.connected_seconds = p.connected_seconds;
    i.silent_seconds = p.silent_seconds;
    i.units_invalid = p.units_invalid;
    i.credibility = p.credibility;
    out.push_back(std::move(i));
  }
  return out;
}

sparecycles::Status Client::Cancel(std::uint64_t job_id) {
  proto::CancelJob c;
  c.job_id = job_id;
  auto r = core_->Call<proto::CancelJob, proto::JobStatus>(c);
  return r.ok() ? OkStatus() : r.status();
}

std::string Client::endpoint() const { return core_->endpoint; }

}  // namespace sparecycles
