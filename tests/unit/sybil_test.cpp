// The Sybil bounds of docs/cross-checking.md, one rule at a time, on the real Scheduler with a fake
// clock and fake peers (no sockets): what one host is (HostKey), copies of a unit on distinct
// hosts, a host's agreeing votes counted once, the per-host enrollment rate and blacklist, one
// credibility budget per host, and spot-checks only for hosts that have not seen the unit.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "../../coordinator/src/credibility.hpp"
#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;
using sparecycles::testing::SquaresTask;

namespace {

constexpr double kE = 2.718281828459045;

struct Fixture {
  tasks::Registry registry;
  FakeClock clock;
  SchedulerConfig config;
  std::unique_ptr<Scheduler> s;

  explicit Fixture(DistinctBy distinct = DistinctBy::kHosts, double spot_check_rate = 0) {
    registry.Add(std::make_unique<SquaresTask>());
    config.peer_timeout = std::chrono::hours(1);
    config.lease_min = std::chrono::seconds(30);
    config.prefetch_seconds = 1e9;
    config.backups = false;
    config.hosts.distinct = distinct;
    config.credibility.spot_check_rate = spot_check_rate;
    config.credibility.spot_check_rate_new = spot_check_rate;
  }
  Scheduler& S() {
    if (!s) s = std::make_unique<Scheduler>(config, registry);
    return *s;
  }
  PeerHello Hello(const std::string& id, const std::string& host, std::uint32_t cores = 1) {
    PeerHello h;
    h.peer_id = id;
    h.host = host;
    h.cores = cores;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    return h;
  }
  PeerHandle Peer(const std::string& id, const std::string& host, std::uint32_t cores = 1) {
    auto joined = S().Join(Hello(id, host, cores), clock.Now());
    REQUIRE_MESSAGE(joined.ok(), joined.status().ToString());
    return *joined;
  }
  JobId Submit(std::uint64_t n, bool adaptive, std::uint32_t replicas = 1, std::uint32_t quorum = 1,
               std::uint32_t max_replicas = 0) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = std::to_string(n);
    spec.units = n;
    spec.adaptive = adaptive ? 2 : 1;
    spec.replicas = replicas;
    spec.quorum = quorum;
    spec.max_replicas = max_replicas;
    auto id = S().Submit(spec, 0);
    REQUIRE(id.ok());
    return *id;
  }
  proto::ResultMsg Answer(const proto::Lease& l, bool honest) {
    SquaresTask t;
    tasks::NullContext ctx;
    auto out = t.Execute(l.unit, ctx);
    REQUIRE(out.ok());
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = honest ? *out : testing::U64Bytes(testing::BytesU64(*out) + 1);
    r.hash = HashOf(r.payload);
    r.cpu_seconds = 1;
    return r;
  }
  proto::Lease One(PeerHandle p) {
    auto leases = S().Lease(p, 1, clock.Now());
    REQUIRE(leases.size() == 1);
    return leases[0];
  }
  ResultEffect Deliver(PeerHandle p, const proto::Lease& l, bool honest = true) {
    return S().OnResult(p, Answer(l, honest), clock.Now(), 0);
  }
};

}  // namespace

TEST_CASE("a host is an address, a /24 or /64 with subnets, each peer's own on loopback") {
  HostRules hosts{DistinctBy::kHosts, false, 0, 4};
  CHECK(HostKey(hosts, "192.0.2.7", "a") == "ip:192.0.2.7");
  CHECK(HostKey(hosts, "::ffff:192.0.2.7", "a") == "ip:192.0.2.7");  // IPv4-mapped is IPv4
  CHECK(HostKey(hosts, "2001:db8::1", "a") == "ip:2001:db8::1");
  CHECK(HostKey(hosts, "127.0.0.1", "a") == "peer:a");
  CHECK(HostKey(hosts, "::1", "b") == "peer:b");
  CHECK(HostKey(hosts, "", "c") == "peer:c");
  CHECK(HostKey(hosts, "lab-7", "a") == "host:lab-7");  // a caller's label
  HostRules loop = hosts;
  loop.loopback_is_one_host = true;
  CHECK(HostKey(loop, "127.0.0.1", "a") == HostKey(loop, "127.0.0.1", "b"));
  HostRules subnets{DistinctBy::kSubnets, false, 0, 4};
  CHECK(HostKey(subnets, "192.0.2.7", "a") == "net:192.0.2.0/24");
  CHECK(HostKey(subnets, "192.0.2.200", "b") == "net:192.0.2.0/24");
  CHECK(HostKey(subnets, "192.0.3.7", "a") == "net:192.0.3.0/24");
  CHECK(HostKey(subnets, "2001:db8:0:1:aaaa::1", "a") == "net:2001:db8:0:1::/64");
  CHECK(HostKey(subnets, "2001:db8:0:1:bbbb::2", "b") == "net:2001:db8:0:1::/64");
  HostRules off{DistinctBy::kOff, false, 0, 4};
  CHECK(HostKey(off, "192.0.2.7", "a") == "peer:a");
  CHECK(HostKey(off, "192.0.2.7", "b") == "peer:b");
  CHECK(LinkKey(hosts, "192.0.2.7", "a") == "net:192.0.2.0/24");
}

TEST_CASE("copies of one unit go to distinct hosts, or distinct subnets, never one host twice") {
  for (DistinctBy mode : {DistinctBy::kHosts, DistinctBy::kSubnets}) {
    Fixture f(mode);
    const PeerHandle a = f.Peer("a", "192.0.2.1"), a2 = f.Peer("a2", "192.0.2.1"),
                     n = f.Peer("n", "192.0.2.9"), far = f.Peer("far", "198.51.100.1");
    f.Submit(1, false, 3, 3, 3);
    f.One(a);
    CHECK(f.S().Lease(a2, 1, f.clock.Now()).empty());  // same address
    // Same /24, another address: a host of its own only when hosts are addresses.
    CHECK(f.S().Lease(n, 1, f.clock.Now()).size() == (mode == DistinctBy::kHosts ? 1u : 0u));
    CHECK(f.S().Lease(far, 1, f.clock.Now()).size() == 1);
  }
  // Off (a cluster pool): only distinct peers.
  Fixture f(DistinctBy::kOff);
  const PeerHandle a = f.Peer("a", "192.0.2.1"), a2 = f.Peer("a2", "192.0.2.1");
  f.Submit(1, false, 2, 2);
  f.One(a);
  CHECK(f.S().Lease(a2, 1, f.clock.Now()).size() == 1);
}

TEST_CASE("loopback peers are each their own host, so a pool on one machine still replicates") {
  Fixture f(DistinctBy::kHosts);
  const PeerHandle a = f.Peer("a", "127.0.0.1"), b = f.Peer("b", "127.0.0.1");
  const JobId job = f.Submit(1, false, 2, 2);
  const proto::Lease la = f.One(a), lb = f.One(b);
  f.Deliver(a, la);
  CHECK(f.Deliver(b, lb).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(f.S().FindJob(job)->state == proto::JobState::kDone);
  // Configured otherwise, loopback is one host like any other address.
  Fixture g(DistinctBy::kHosts);
  g.config.hosts.loopback_is_one_host = true;
  const PeerHandle c = g.Peer("c", "127.0.0.1"), d = g.Peer("d", "127.0.0.2");
  g.Submit(1, false, 2, 2);
  g.One(c);
  CHECK(g.S().Lease(d, 1, g.clock.Now()).size() == 1);  // 127.0.0.2 is another address
  const PeerHandle e = g.Peer("e", "127.0.0.1");
  CHECK(g.S().Lease(e, 1, g.clock.Now()).empty());
}

TEST_CASE("agreeing votes from one host count once in a fixed quorum") {
  Fixture f(DistinctBy::kHosts);
  const PeerHandle a = f.Peer("a", "192.0.2.1"), b = f.Peer("b", "198.51.100.2"),
                   c = f.Peer("c", "203.0.113.3");
  const JobId job = f.Submit(1, false, 2, 2, 3);
  const proto::Lease la = f.One(a), lb = f.One(b);
  // b comes back from a's address (NAT, an address change, or one person's two keys): its vote
  // and a's are one host's.
  CHECK(f.S().Join(f.Hello("b", "192.0.2.1"), f.clock.Now()).ok());
  f.Deliver(a, la);
  CHECK(f.Deliver(b, lb).kind == ResultEffect::Kind::kAccepted);  // counted, not a quorum
  CHECK(f.S().FindJob(job)->state == proto::JobState::kRunning);
  CHECK(f.S().stats().same_host_votes == 1);
  // A third host makes the quorum.
  const proto::Lease lc = f.One(c);
  CHECK(f.Deliver(c, lc).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(f.S().FindJob(job)->state == proto::JobState::kDone);
}

TEST_CASE("with credibility, one host's agreeing peers are one factor of the group's error") {
  // Five fresh peers agreeing are credible (0.2^5 = 3.2e-4 <= 1e-3); five peers on four hosts
  // are not (0.2^4 = 1.6e-3), whatever their keys.
  Fixture f(DistinctBy::kHosts);
  std::vector<PeerHandle> peers;
  peers.reserve(5);
  for (int i = 0; i < 5; ++i)
    peers.push_back(f.Peer("p" + std::to_string(i), "192.0.2." + std::to_string(i + 1)));
  const JobId job = f.Submit(1, true);
  std::vector<proto::Lease> leases;
  for (int i = 0; i < 4; ++i) {
    leases.push_back(f.One(peers[static_cast<std::size_t>(i)]));
    f.Deliver(peers[static_cast<std::size_t>(i)], leases.back());
  }
  leases.push_back(f.One(peers[4]));
  // The fifth comes back from the first one's address before it answers.
  CHECK(f.S().Join(f.Hello("p4", "192.0.2.1"), f.clock.Now()).ok());
  const PeerHandle sixth = f.Peer("p5", "192.0.2.6");  // (so the unit waits for another host)
  CHECK(f.Deliver(peers[4], leases.back()).kind == ResultEffect::Kind::kAccepted);
  CHECK(f.S().FindJob(job)->state == proto::JobState::kRunning);
  CHECK(f.S().stats().same_host_votes == 1);
  const proto::Lease l6 = f.One(sixth);
  CHECK(f.Deliver(sixth, l6).kind == ResultEffect::Kind::kUnitValidated);
}

TEST_CASE("a host enrolls at most new_peers_per_hour new peer ids; reconnects always come in") {
  Fixture f(DistinctBy::kHosts);
  f.config.hosts.new_peers_per_hour = 3;
  for (int i = 0; i < 3; ++i) f.Peer("k" + std::to_string(i), "192.0.2.1");
  auto refused = f.S().Join(f.Hello("k3", "192.0.2.1"), f.clock.Now());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kResourceExhausted);
  CHECK(refused.status().message().find("enrolled 3 new peer ids in the last hour") !=
        std::string::npos);
  CHECK(refused.status().message().find("retry in") != std::string::npos);
  CHECK(f.S().stats().enrollments_refused == 1);
  CHECK(f.S().Join(f.Hello("k0", "192.0.2.1"), f.clock.Now()).ok());  // a known id: a reconnect
  CHECK(f.S().Join(f.Hello("x0", "192.0.2.2"), f.clock.Now()).ok());  // another host
  // The window slides: an hour after the first enrollments, new ids come in again.
  f.clock.Advance(std::chrono::minutes(59));
  CHECK_FALSE(f.S().Join(f.Hello("k3", "192.0.2.1"), f.clock.Now()).ok());
  f.clock.Advance(std::chrono::minutes(1));
  CHECK(f.S().Join(f.Hello("k3", "192.0.2.1"), f.clock.Now()).ok());
  // Unlimited (0) by default: a cluster pool's scheduler.
  Fixture g(DistinctBy::kHosts);
  for (int i = 0; i < 50; ++i) g.Peer("k" + std::to_string(i), "192.0.2.1");
}

TEST_CASE("a new key on a trusted host starts at the floor; one key's offence resets them all") {
  Fixture f(DistinctBy::kHosts);
  f.config.hosts.host_blacklist_after = 0;
  PeerRecord trusted;
  trusted.checks_passed = 100;  // 0.2/(100 e) < 1e-3: trusted with single runs
  f.S().RestoreRecords({{"old", trusted}, {"other", trusted}});
  const PeerHandle old_key = f.Peer("old", "192.0.2.1");
  const PeerHandle sybil = f.Peer("sybil", "192.0.2.1");
  const PeerHandle other = f.Peer("other", "198.51.100.1");
  CHECK(f.S().Credibility("old") == doctest::Approx(1 - 0.2 / (100 * kE)));
  CHECK(f.S().Credibility("sybil") == doctest::Approx(0.8));  // the host's trust is not its own
  const JobId job = f.Submit(2, true);
  const proto::Lease first = f.One(old_key);
  f.Deliver(old_key, first);  // accepted on the trusted key alone
  CHECK(f.S().FindJob(job)->done == 1);
  const proto::Lease ls = f.One(sybil);  // the other unit: the new key lies
  CHECK(ls.unit_index != first.unit_index);
  f.Deliver(sybil, ls, /*honest=*/false);
  const proto::Lease lo = f.One(other);
  CHECK(f.Deliver(other, lo).kind == ResultEffect::Kind::kUnitValidated);  // sybil outvoted
  CHECK(f.S().Record("sybil")->offences == 1);
  // The host's budget went with it: the trusted key of that host is new again.
  CHECK(f.S().Credibility("old") == doctest::Approx(0.8));
  CHECK(f.S().HostRecordOf("ip:192.0.2.1")->checks_passed == 0);
  CHECK(f.S().Credibility("other") == doctest::Approx(1 - 0.2 / (100 * kE)));
}

TEST_CASE("a host whose keys keep lying is blacklisted: no work, no new key") {
  Fixture f(DistinctBy::kHosts);
  f.config.hosts.host_blacklist_after = 2;
  f.config.credibility.blacklist_after = 5;  // the keys alone would go on
  PeerRecord trusted;
  trusted.checks_passed = 100;
  f.S().RestoreRecords({{"judge", trusted}});
  const PeerHandle k1 = f.Peer("k1", "192.0.2.1"), k2 = f.Peer("k2", "192.0.2.1");
  const PeerHandle judge = f.Peer("judge", "198.51.100.1");
  f.Submit(2, true);
  for (PeerHandle liar : {k1, k2}) {
    const proto::Lease l = f.One(liar);
    f.Deliver(liar, l, /*honest=*/false);
    f.Deliver(judge, f.One(judge));
  }
  CHECK(f.S().stats().hosts_blacklisted == 1);
  CHECK(f.S().HostRecordOf("ip:192.0.2.1")->blacklisted);
  CHECK(f.S().Credibility("k1") == 0.0);
  f.Submit(3, true);
  CHECK(f.S().Lease(k1, 1, f.clock.Now()).empty());
  CHECK(f.S().Lease(k2, 1, f.clock.Now()).empty());
  auto fresh = f.S().Join(f.Hello("k3", "192.0.2.1"), f.clock.Now());
  REQUIRE_FALSE(fresh.ok());
  CHECK(fresh.status().code() == StatusCode::kFailedPrecondition);
  CHECK(fresh.status().message().find("blacklisted") != std::string::npos);
  CHECK(f.S().Join(f.Hello("k4", "203.0.113.1"), f.clock.Now()).ok());
}

TEST_CASE("an adaptive job's fresh units go out in a random order, a fixed quorum's in order") {
  // In index order, a unit far behind what went out would be a check or a requeued copy.
  Fixture f(DistinctBy::kHosts);
  const PeerHandle p = f.Peer("p", "192.0.2.1", /*cores=*/64);
  f.Submit(64, true);
  std::vector<std::uint32_t> order;
  for (const auto& l : f.S().Lease(p, 64, f.clock.Now())) order.push_back(l.unit_index);
  REQUIRE(order.size() == 64);
  CHECK_FALSE(std::is_sorted(order.begin(), order.end()));
  CHECK(std::set<std::uint32_t>(order.begin(), order.end()).size() == 64);  // each once
  Fixture g(DistinctBy::kHosts);
  const PeerHandle q = g.Peer("q", "192.0.2.1", /*cores=*/16);
  g.Submit(16, false);
  std::vector<std::uint32_t> fixed;
  for (const auto& l : g.S().Lease(q, 16, g.clock.Now())) fixed.push_back(l.unit_index);
  CHECK(std::is_sorted(fixed.begin(), fixed.end()));
}

TEST_CASE("a spot-check goes only to a host that has not seen the unit") {
  Fixture f(DistinctBy::kHosts, /*spot_check_rate=*/1.0);
  PeerRecord trusted;
  trusted.checks_passed = 100;
  f.S().RestoreRecords({{"a", trusted}});
  const PeerHandle a = f.Peer("a", "192.0.2.1"), twin = f.Peer("twin", "192.0.2.1"),
                   c = f.Peer("c", "198.51.100.1");
  const JobId job = f.Submit(3, true);
  const proto::Lease la = f.One(a);  // nothing accepted yet: real work
  f.Deliver(a, la);
  REQUIRE(f.S().FindJob(job)->done == 1);
  // a's second key cannot be checked with a's unit (they could compare notes): real work.
  const proto::Lease lt = f.One(twin);
  CHECK(lt.unit_index != la.unit_index);
  CHECK(f.S().stats().spot_checks == 0);
  // Another host is.
  const proto::Lease lc = f.One(c);
  CHECK(lc.unit_index == la.unit_index);
  CHECK(f.S().stats().spot_checks == 1);
  CHECK(f.Deliver(c, lc).kind == ResultEffect::Kind::kAccepted);
  CHECK(f.S().Record("c")->checks_passed == 1);
  CHECK(f.S().HostRecordOf("ip:198.51.100.1")->checks_passed == 1);
}

TEST_CASE("spot-checks are drawn from every running job of the task, not only the oldest") {
  Fixture f(DistinctBy::kHosts, /*spot_check_rate=*/1.0);
  PeerRecord trusted;
  trusted.checks_passed = 100;
  f.S().RestoreRecords({{"a", trusted}});
  const PeerHandle a = f.Peer("a", "192.0.2.1", /*cores=*/2);
  const JobId j1 = f.Submit(24, true), j2 = f.Submit(24, true);
  // The trusted peer runs units of both jobs, two at a time (one of each: fair share). No
  // spot-check for it: it saw every accepted unit.
  for (int i = 0; i < 20; ++i) {
    const auto leases = f.S().Lease(a, 2, f.clock.Now());
    REQUIRE(leases.size() == 2);
    for (const auto& l : leases) f.Deliver(a, l);
  }
  REQUIRE(f.S().FindJob(j1)->done > 0);
  REQUIRE(f.S().FindJob(j2)->done > 0);
  std::set<JobId> checked;
  for (int i = 0; i < 20; ++i) {
    const PeerHandle p = f.Peer("c" + std::to_string(i), "198.51.100." + std::to_string(i + 1));
    const proto::Lease l = f.One(p);
    checked.insert(l.job_id);
  }
  CHECK(f.S().stats().spot_checks == 20);
  CHECK(checked.size() == 2);
}
