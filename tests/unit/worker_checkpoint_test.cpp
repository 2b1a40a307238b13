// Checkpoints: primes and hashsearch stopped mid-unit and resumed from their saved state give the
// same answer as an uninterrupted run while redoing less work; a foreign or corrupt state is
// ignored; the scheduler keeps the latest checkpoint of a unit and hands it out with the next
// lease.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;

namespace {

// Saves every checkpoint offered; stops the unit (UnitCancelled) once progress passes `stop_at`;
// resumes from `resume` when set. Records the first progress report and how many reports came.
class RecordingContext final : public tasks::UnitContext {
 public:
  explicit RecordingContext(double stop_at = 2.0, std::optional<std::string> resume = std::nullopt)
      : stop_at_(stop_at), resume_(std::move(resume)) {}
  void Progress(double f) override {
    double unset = -1;
    first_.compare_exchange_strong(unset, f);
    double prev = max_.load();
    while (f > prev && !max_.compare_exchange_weak(prev, f)) {
    }
    if (f >= stop_at_) throw tasks::UnitCancelled{"test stop"};
  }
  bool StopRequested() const override { return false; }
  std::optional<std::string> ResumeState() const override { return resume_; }
  bool CheckpointDue() const override { return true; }
  void Checkpoint(std::string_view state) override {
    std::lock_guard lock(mu_);
    last_ = std::string(state);
    ++count_;
  }
  std::string last() const {
    std::lock_guard lock(mu_);
    return last_;
  }
  int count() const {
    std::lock_guard lock(mu_);
    return count_;
  }
  double first() const { return first_.load(); }

 private:
  const double stop_at_;
  const std::optional<std::string> resume_;
  std::atomic<double> first_{-1}, max_{0};
  mutable std::mutex mu_;
  std::string last_;
  int count_ = 0;
};

const tasks::Task& Builtin(std::string_view name) {
  const tasks::Task* t = tasks::Registry::BuiltIn().Find(name);
  REQUIRE(t != nullptr);
  return *t;
}

std::string OneUnit(const tasks::Task& t, std::map<std::string, std::string> params) {
  tasks::JobParams p;
  p.values = std::move(params);
  auto units = t.Split(p, 1);
  REQUIRE(units.ok());
  return (*units)[0];
}

// Runs `unit` until it is stopped at `stop_at`, then resumes it from its last checkpoint; checks
// the answer matches a clean run and that the resumed run started past zero.
void StopAndResume(const tasks::Task& task, const std::string& unit, double stop_at) {
  tasks::NullContext clean_ctx;
  auto clean = task.Execute(unit, clean_ctx);
  REQUIRE(clean.ok());

  RecordingContext first(stop_at);
  CHECK_THROWS_AS((void)task.Execute(unit, first), tasks::UnitCancelled);
  REQUIRE(first.count() > 0);
  const std::string saved = first.last();

  RecordingContext second(2.0, saved);
  auto resumed = task.Execute(unit, second);
  REQUIRE(resumed.ok());
  CHECK(*resumed == *clean);
  MESSAGE(task.Name() << ": stopped at " << stop_at << ", resumed at " << second.first());
  CHECK(second.first() > 0.2);  // the first report already counts the work saved
}

}  // namespace

TEST_CASE(
    "primes stopped mid-unit and resumed from its checkpoint counts the same primes with less "
    "work") {
  const auto& primes = Builtin("primes");
  StopAndResume(primes, OneUnit(primes, {{"from", "1000000000"}, {"to", "1400000000"}}), 0.5);
}

TEST_CASE("hashsearch stopped mid-unit and resumed from its checkpoint finds the same nonces") {
  const auto& hs = Builtin("hashsearch");
  StopAndResume(hs, OneUnit(hs, {{"from", "0"}, {"to", "1500000"}, {"bits", "12"}}), 0.6);
}

TEST_CASE(
    "a checkpoint of another unit, or corrupt bytes, is ignored and the unit starts from zero") {
  const auto& primes = Builtin("primes");
  const std::string a = OneUnit(primes, {{"from", "0"}, {"to", "300000000"}});
  const std::string b = OneUnit(primes, {{"from", "300000000"}, {"to", "600000000"}});
  RecordingContext stopped(0.5);
  CHECK_THROWS_AS((void)primes.Execute(a, stopped), tasks::UnitCancelled);
  tasks::NullContext clean_ctx;
  auto clean_b = primes.Execute(b, clean_ctx);
  REQUIRE(clean_b.ok());
  for (const std::string& state :
       {stopped.last(), std::string("\x01\x02garbage", 9), std::string()}) {
    RecordingContext ctx(2.0, state);
    auto out = primes.Execute(b, ctx);
    REQUIRE(out.ok());
    CHECK(*out == *clean_b);
    CHECK(ctx.first() < 0.2);
  }
}

namespace {

struct SchedFixture {
  tasks::Registry registry;
  FakeClock clock;
  std::unique_ptr<Scheduler> s;
  SchedFixture() {
    registry.Add(std::make_unique<testing::SquaresTask>());
    SchedulerConfig c;
    c.peer_timeout = std::chrono::seconds(10);
    c.lease_min = std::chrono::seconds(30);
    s = std::make_unique<Scheduler>(c, registry);
  }
  PeerHandle Peer(const std::string& id) {
    PeerHello h;
    h.peer_id = h.host = id;
    h.cores = 1;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    return s->AddPeer(h, clock.Now());
  }
  JobId Submit(std::uint32_t replicas = 1, std::uint32_t quorum = 1) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "1";
    spec.units = 1;
    spec.replicas = replicas;
    spec.quorum = quorum;
    auto id = s->Submit(spec, 0);
    REQUIRE(id.ok());
    return *id;
  }
  static proto::Checkpoint Cp(const proto::Lease& l, float f, std::string state) {
    return proto::Checkpoint{l.lease_id, l.job_id, l.unit_index, f, std::move(state)};
  }
};

}  // namespace

TEST_CASE(
    "the scheduler keeps the latest checkpoint of a unit and hands it out with the unit's next "
    "lease") {
  SchedFixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  f.Submit();
  auto la = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(la.size() == 1);
  CHECK(la[0].checkpoint.empty());
  CHECK(f.s->OnCheckpoint(a, SchedFixture::Cp(la[0], 0.2f, "at-20"), f.clock.Now()));
  CHECK(f.s->OnCheckpoint(a, SchedFixture::Cp(la[0], 0.4f, "at-40"), f.clock.Now()));
  // Not from a peer that does not hold the lease, nor for a lease that does not exist.
  CHECK_FALSE(f.s->OnCheckpoint(b, SchedFixture::Cp(la[0], 0.9f, "forged"), f.clock.Now()));
  proto::Checkpoint unknown = SchedFixture::Cp(la[0], 0.9f, "x");
  unknown.lease_id += 1000;
  CHECK_FALSE(f.s->OnCheckpoint(a, unknown, f.clock.Now()));

  // Peer a is lost: b gets the unit with a's last state.
  f.s->RemovePeer(a, f.clock.Now());
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  CHECK(lb[0].unit_index == la[0].unit_index);
  CHECK(lb[0].checkpoint == "at-40");
  // An older state from b does not replace a more advanced one.
  CHECK_FALSE(f.s->OnCheckpoint(b, SchedFixture::Cp(lb[0], 0.1f, "at-10"), f.clock.Now()));
  CHECK(f.s->FindJob(lb[0].job_id)->units[0].checkpoint == "at-40");
}

TEST_CASE(
    "a unit handed back (cancelled) is requeued with its checkpoint and may return to the same "
    "peer") {
  SchedFixture f;
  const PeerHandle a = f.Peer("a");
  f.Submit();
  auto l1 = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(l1.size() == 1);
  REQUIRE(f.s->OnCheckpoint(a, SchedFixture::Cp(l1[0], 0.5f, "half"), f.clock.Now()));
  proto::ResultMsg back;
  back.lease_id = l1[0].lease_id;
  back.job_id = l1[0].job_id;
  back.unit_index = l1[0].unit_index;
  back.outcome = proto::UnitOutcome::kCancelled;
  f.s->OnResult(a, back, f.clock.Now(), 0);
  auto l2 = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(l2.size() == 1);  // the only peer may take it again
  CHECK(l2[0].checkpoint == "half");
  // A restarted worker re-says Hello without the lease: requeued, and it may take it again too.
  f.s->ReconcileLeases(a, {}, f.clock.Now());
  auto l3 = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(l3.size() == 1);
  CHECK(l3[0].checkpoint == "half");
}

TEST_CASE("with a quorum above one, a checkpoint goes only back to the peer that saved it") {
  SchedFixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b"), c = f.Peer("c");
  f.Submit(/*replicas=*/2, /*quorum=*/2);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(la.size() == 1);
  REQUIRE(f.s->OnCheckpoint(a, SchedFixture::Cp(la[0], 0.5f, "a-state"), f.clock.Now()));
  auto lb = f.s->Lease(b, 1, f.clock.Now());  // the second replica
  REQUIRE(lb.size() == 1);
  CHECK(lb[0].checkpoint.empty());
  f.s->RemovePeer(a, f.clock.Now());
  auto lc = f.s->Lease(c, 1, f.clock.Now());  // a's copy reissued
  REQUIRE(lc.size() == 1);
  CHECK(lc[0].checkpoint.empty());
}

TEST_CASE("Checkpoint messages and leases with a checkpoint survive the wire, within limits") {
  proto::Checkpoint cp{7, 8, 9, 0.25f, std::string("\x00state", 6)};
  std::string frame = proto::Encode(cp);
  std::string_view body;
  auto type = proto::ParseHeader(frame, body);
  REQUIRE(type.ok());
  CHECK(*type == proto::MsgType::kCheckpoint);
  proto::Checkpoint back;
  REQUIRE(proto::Decode(body, back).ok());
  CHECK(back.state == cp.state);
  CHECK(back.fraction == 0.25f);
  cp.fraction = 1.5f;
  frame = proto::Encode(cp);
  REQUIRE(proto::ParseHeader(frame, body).ok());
  CHECK_FALSE(proto::Decode(body, back).ok());

  proto::Assign a;
  a.leases.push_back(proto::Lease{1, 2, 3, "primes", 1, "u", 5, "saved"});
  frame = proto::Encode(a);
  REQUIRE(proto::ParseHeader(frame, body).ok());
  proto::Assign a2;
  REQUIRE(proto::Decode(body, a2).ok());
  CHECK(a2.leases[0].checkpoint == "saved");
}
