// Writes the seed corpora of tests/fuzz/corpus/<harness>/: valid frames of every message type,
// a spooled result, a checkpoint file, a config file, and for each built-in task its units,
// a checkpoint, its results and its merged result, all produced by the real encoders and tasks.
// Usage: make_seeds OUT_DIR (the committed seeds come from `make_seeds tests/fuzz/corpus`).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "../../worker/src/checkpoint_store.hpp"
#include "../../worker/src/executor_wire.hpp"
#include "fuzz_support.hpp"
#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/package/package.hpp"
#include "task_fuzz.hpp"

namespace {

using namespace sparecycles;
namespace fs = std::filesystem;

fs::path out_root;
int written = 0;

void Seed(const std::string& harness, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_root / harness;
  fs::create_directories(dir);
  fuzz::WriteFile((dir / name).string(), bytes);
  ++written;
}

// A context that records the kernel's first checkpoint.
class RecordingContext final : public tasks::UnitContext {
 public:
  void Progress(double) override {}
  bool StopRequested() const override { return false; }
  bool CheckpointDue() const override { return true; }
  void Checkpoint(std::string_view state) override {
    if (first.empty()) first.assign(state);
  }
  std::string first;
};

proto::ResultMsg SampleResult(std::uint64_t lease) {
  proto::ResultMsg r;
  r.lease_id = lease;
  r.job_id = 4;
  r.unit_index = 2;
  r.hash = std::string(proto::kHashBytes, '\x5a');
  r.payload = "result bytes";
  r.cpu_seconds = 0.25;
  r.wall_seconds = 0.5;
  return r;
}

proto::JobInfo SampleInfo() {
  proto::JobInfo i;
  i.job_id = 4;
  i.task = "primes";
  i.name = "sample";
  i.state = proto::JobState::kRunning;
  i.units_total = 10;
  i.units_done = 3;
  i.submitted_at = 1.7e9;
  return i;
}

void PeerFrames() {
  proto::Hello hello;
  hello.peer_id = "peer-1";
  hello.hostname = "host";
  hello.software = "sparecycles-worker 0.1.0";
  hello.cores = 4;
  hello.memory_bytes = 8ull << 30;
  hello.tasks = {{"primes", 1, 4e9}, {"pi", 1, 1e8}};
  hello.running_leases = {5, 6};
  Seed("peer_frame", "hello", proto::Encode(hello));
  Seed("peer_frame", "welcome", proto::Encode(proto::Welcome{"session-1", 1000, 10000}));
  proto::Capacity cap;
  cap.slots = 4;
  cap.idle_slots = 2;
  cap.memory_available = 1ull << 30;
  cap.state = proto::PeerState::kThrottled;
  cap.reason = "on battery";
  Seed("peer_frame", "capacity", proto::Encode(cap));
  Seed("peer_frame", "request_work", proto::Encode(proto::RequestWork{8}));
  proto::Assign assign;
  proto::Lease lease;
  lease.lease_id = 9;
  lease.job_id = 4;
  lease.unit_index = 1;
  lease.task = "primes";
  lease.task_version = 1;
  lease.unit = EncodeValue(std::pair<std::uint64_t, std::uint64_t>{0, 100000});
  lease.deadline_ms = 60000;
  assign.leases = {lease, lease};
  assign.leases[1].checkpoint = "saved";
  Seed("peer_frame", "assign", proto::Encode(assign));
  Seed("peer_frame", "result", proto::Encode(SampleResult(7)));
  proto::ResultMsg failed = SampleResult(8);
  failed.outcome = proto::UnitOutcome::kFailed;
  failed.hash.clear();
  failed.payload.clear();
  failed.error = "kernel threw";
  Seed("peer_frame", "result_failed", proto::Encode(failed));
  Seed("peer_frame", "results", proto::Encode(proto::Results{{SampleResult(7), failed}}));
  Seed("peer_frame", "ack", proto::Encode(proto::Ack{{7, 8}}));
  Seed("peer_frame", "heartbeat", proto::Encode(proto::Heartbeat{{{7, 0.5f}, {8, 1.0f}}}));
  Seed("peer_frame", "cancel_leases", proto::Encode(proto::CancelLeases{{7}, "job cancelled"}));
  Seed("peer_frame", "bye", proto::Encode(proto::Bye{{9}}));
  Seed("peer_frame", "reject",
       proto::Encode(proto::Reject{proto::RejectCode::kBadVersion, "speak v1"}));
  Seed("peer_frame", "checkpoint", proto::Encode(proto::Checkpoint{9, 4, 1, 0.25f, "state"}));
  Seed("header", "hello", proto::Encode(hello));
  Seed("header", "results", proto::Encode(proto::Results{}));
}

void ClientFrames() {
  proto::Submit submit;
  submit.request_id = 1;
  submit.spec.task = "primes";
  submit.spec.name = "count";
  submit.spec.params = {{"from", "0"}, {"to", "1e9"}};
  submit.spec.input = "input";
  submit.spec.replicas = 2;
  submit.spec.quorum = 2;
  submit.spec.max_replicas = 4;
  submit.spec.client_token = "token";
  submit.spec.adaptive = 2;
  submit.spec.target_error = 0.01;
  Seed("client_frame", "submit", proto::Encode(submit));
  Seed("client_frame", "submit_reply", proto::Encode(proto::SubmitReply{1, 0, "", SampleInfo()}));
  proto::StatusRequest status;
  status.request_id = 2;
  status.job_id = 4;
  Seed("client_frame", "status_request", proto::Encode(status));
  Seed("client_frame", "job_status", proto::Encode(proto::JobStatus{2, 0, "", SampleInfo()}));
  proto::Watch watch;
  watch.job_id = 4;
  Seed("client_frame", "watch", proto::Encode(watch));
  Seed("client_frame", "progress", proto::Encode(proto::Progress{SampleInfo()}));
  proto::FetchResult fetch;
  fetch.job_id = 4;
  Seed("client_frame", "fetch_result", proto::Encode(fetch));
  proto::JobResult result;
  result.request_id = 3;
  result.info = SampleInfo();
  result.result = "merged";
  result.summary = "42";
  result.json = "{\"count\":42}";
  result.media_type = "application/octet-stream";
  result.failures = {{3, "timed out"}};
  Seed("client_frame", "job_result", proto::Encode(result));
  proto::CancelJob cancel;
  cancel.job_id = 4;
  Seed("client_frame", "cancel_job", proto::Encode(cancel));
  Seed("client_frame", "list_jobs", proto::Encode(proto::ListJobs{5}));
  Seed("client_frame", "job_list", proto::Encode(proto::JobList{5, {SampleInfo(), SampleInfo()}}));
  Seed("client_frame", "list_peers", proto::Encode(proto::ListPeers{6}));
  proto::PeerInfo peer;
  peer.peer_id = "peer-1";
  peer.hostname = "host";
  peer.cores = 4;
  peer.credibility = 0.9;
  Seed("client_frame", "peer_list", proto::Encode(proto::PeerList{6, {peer}}));
  Seed("client_frame", "error_reply", proto::Encode(proto::ErrorReply{7, 5, "not found"}));
  Seed("header", "submit", proto::Encode(submit));
}

void Files() {
  Seed("spool", "result", fuzz::Piece("8") + fuzz::Piece(proto::Encode(SampleResult(8))));
  Seed("spool", "wrong_lease", fuzz::Piece("6") + fuzz::Piece(proto::Encode(SampleResult(9))));
  Seed("spool", "leftover", fuzz::Piece("7.result.tmp.1") + fuzz::Piece("half"));
  // A real checkpoint file, written by the store itself (for the lease checkpoint_fuzz uses).
  const std::string dir = fuzz::ScratchDir() + "/seed-checkpoints";
  proto::Lease lease;
  lease.lease_id = 3;
  lease.job_id = 1;
  lease.unit_index = 2;
  lease.task = "primes";
  lease.unit = "unit bytes";
  worker::CheckpointStore(dir).Save(lease, 0.5f, "saved state");
  for (const auto& e : fs::directory_iterator(dir)) {
    auto bytes = ReadFile(e.path().string(), 1 << 20);
    if (!bytes.ok()) fuzz::Fail("cannot read the checkpoint back");
    Seed("checkpoint", "valid", *bytes);
  }
  // Key files as the programs write them, and a client-key list with roles and quotas.
  const curve::KeyPair pair = curve::Generate();
  const std::string keys = fuzz::ScratchDir() + "/seed-keys";
  if (!curve::SaveKeyPair(keys + "/client.key", pair, "client").ok()) fuzz::Fail("no key file");
  auto secret = ReadFile(keys + "/client.key", 4096);
  auto pub = ReadFile(keys + "/client.pub", 4096);
  if (!secret.ok() || !pub.ok()) fuzz::Fail("cannot read the key files back");
  const std::string other = curve::Generate().public_key.Z85();
  Seed("keys", "files_and_list",
       fuzz::Piece(*secret) + fuzz::Piece(*pub) +
           fuzz::Piece("# key role quotas\n" + pair.public_key.Z85() +
                       " submit jobs=20 units=1M bytes=10G\n" + other + " submit,read\n" +
                       pair.public_key.Hex() + "  admin  # the same key again, in hex\n"));
  Seed("keys", "bad_role",
       fuzz::Piece("") + fuzz::Piece("") + fuzz::Piece(pair.public_key.Z85() + " sumbit jobs=x\n"));
  Seed("config", "worker",
       "# a worker's config file\n"
       "cores = 3\n"
       "heartbeat = 500ms   # trailing comment\n"
       "ratio=0.25\r\n"
       "data_dir = /var/lib/sparecycles\n"
       "verbose = yes\n");
  Seed("config", "bad_line", "cores 3\n");
}

void Tasks() {
  for (const tasks::Task* task : tasks::Registry::BuiltIn().All()) {
    const std::string name(task->Name());
    const std::string harness = "task_" + name;
    const fuzz::FuzzJob& job = fuzz::JobFor(name);
    const tasks::JobParams params{job.params, job.input};
    auto units = task->Split(params, job.units);
    if (!units.ok()) fuzz::Fail("the fuzz job does not split");
    std::vector<std::string> results;
    for (std::size_t i = 0; i < units->size(); ++i) {
      const std::string& unit = (*units)[i];
      RecordingContext ctx;
      auto r = task->Execute(unit, ctx);
      if (!r.ok()) fuzz::Fail("a unit of the fuzz job fails");
      results.push_back(*r);
      const std::string n = std::to_string(i);
      Seed(harness, "execute_" + n, std::string(1, '\0') + fuzz::Piece(unit));
      if (!ctx.first.empty())
        Seed(harness, "resume_" + n,
             std::string(1, '\1') + fuzz::Piece(unit) + fuzz::Piece(ctx.first));
      Seed(harness, "print_result_" + n, std::string(1, '\3') + *r);
    }
    std::string all(1, '\2');
    for (const auto& r : results) all += fuzz::Piece(r);
    Seed(harness, "merge", all);
    auto merged = task->Merge(params, results);
    if (!merged.ok()) fuzz::Fail("the fuzz job does not merge");
    Seed(harness, "print_merged", std::string(1, '\3') + *merged);
  }
}

// package_fuzz: the first byte picks the decoder (0 container, 1 manifest, 2 manifest text,
// 3 command unit, 4 outputs, 5 list).
void Packages() {
  package::Manifest m;
  m.name = "sha-sweep";
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "run.sh";
  m.command.args = {"{pkg}/data/seed-{seed}.txt"};
  m.command.outputs = {"out.txt"};
  m.command.stdout_file = "out.txt";
  m.command.split.mode = package::SplitMode::kSweep;
  package::SweepParam sweep;
  sweep.name = "seed";
  sweep.from = 1;
  sweep.to = 4;
  m.command.split.sweep = {sweep};
  m.resources.expected_seconds = 2;
  m.files.push_back(package::FileEntry{"run.sh", 0, {}, true});
  m.files.push_back(package::FileEntry{"data/seed-1.txt", 0, {}, false});
  auto pkg = package::Package::Create(m, {"#!/bin/sh\ncat \"$1\"\n", "one\n"});
  if (!pkg.ok()) fuzz::Fail("the seed package is not valid");
  Seed("package", "container_unsigned", std::string(1, '\0') + pkg->Encode());
  std::array<std::uint8_t, 32> seed_bytes{};
  seed_bytes.fill(7);  // a fixed key: the same seed file at every regeneration
  pkg->Sign(package::KeyFromSeed(seed_bytes));
  Seed("package", "container_signed", std::string(1, '\0') + pkg->Encode());
  Seed("package", "manifest", std::string(1, '\1') + pkg->manifest_bytes());
  Seed("package", "manifest_text",
       std::string(1, '\2') +
           "name = sha-sweep\nversion = 1.0\nkind = command\nentry = /usr/bin/sha256sum\n"
           "require = /usr/bin/sha256sum\narg = {pkg}/data/seed-{seed}.txt\n"
           "sweep = seed 1..100\nstdout = sums.txt\nexpected-time = 1s\n");
  package::CommandUnit u;
  u.index = 3;
  u.values = {{"seed", "3"}};
  u.has_input = true;
  u.input_name = "in-003.txt";
  u.input = "some words\n";
  Seed("package", "command_unit", std::string(1, '\3') + package::EncodeCommandUnit(u));
  Seed("package", "outputs",
       std::string(1, '\4') + package::EncodeOutputs({{"out.txt", "1\n"}, {"log", ""}}));
  Seed("package", "list", std::string(1, '\5') + package::EncodeList({"unit 0", "", "unit 2"}));
}

// executor_frame: the stream an executor sends (and the Start it is sent), frame after frame.
void ExecutorFrames() {
  namespace wire = worker::wire;
  std::string all;
  auto add = [&](const std::string& name, const wire::Message& msg) {
    auto f = wire::EncodeFrame(msg);
    if (!f.ok()) fuzz::Fail("a seed executor message does not encode");
    Seed("executor_frame", name, *f);
    all += *f;
  };
  wire::Start start;
  start.package_dir = "/var/lib/sparecycles/packages/extracted/ab";
  start.work_dir = "/var/lib/sparecycles/packages/units/exec-1";
  add("start", start);
  wire::Run run;
  run.lease_id = 7;
  run.unit = "unit";
  run.resume = "state";
  run.threads = 2;
  add("run", run);
  add("cancel", wire::Cancel{7, "job cancelled"});
  add("progress", wire::Progress{7, 0.5f});
  add("checkpoint", wire::Checkpoint{7, 0.25f, "state"});
  wire::Done ok;
  ok.lease_id = 7;
  ok.payload = "result";
  ok.hash = std::string(32, 'h');
  ok.cpu_seconds = 0.25;
  add("done_ok", ok);
  wire::Done failed;
  failed.lease_id = 8;
  failed.outcome = proto::UnitOutcome::kFailed;
  failed.error = "the unit exceeded its CPU time limit of 2 s";
  failed.last = true;
  add("done_failed", failed);
  Seed("executor_frame", "stream", all);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  SetLogLevel(LogLevel::kWarn);
  out_root = argv[1];
  InitCrypto();
  PeerFrames();
  ClientFrames();
  Files();
  Tasks();
  Packages();
  ExecutorFrames();
  std::printf("wrote %d seeds under %s\n", written, out_root.c_str());
  return 0;
}
