// The wire protocol: round trips of every message, and rejection of truncated, oversized-length
// and random frames without crashing or allocating beyond the frame.
#include "sparecycles/core/protocol.hpp"

#include <doctest/doctest.h>

#include <random>

using namespace sparecycles;
using namespace sparecycles::proto;

namespace {

template <class M>
M RoundTrip(const M& in) {
  const std::string frame = Encode(in);
  std::string_view body;
  auto type = ParseHeader(frame, body);
  REQUIRE(type.ok());
  CHECK(*type == M::kType);
  M out;
  Status s = Decode(body, out);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(Encode(out) == frame);  // the same bytes again: nothing lost or reordered
  return out;
}

Hello SampleHello() {
  Hello h;
  h.peer_id = "peer-0123";
  h.hostname = "box";
  h.account = "alice";
  h.software = "sparecycles-worker 0.1.0";
  h.cores = 8;
  h.memory_bytes = 16ull << 30;
  h.tasks = {{"primes", 1, 2.5e9}, {"pi", 1, 1e8}};
  h.running_leases = {7, 8, 9};
  return h;
}

ResultMsg SampleResult() {
  ResultMsg r;
  r.lease_id = 42;
  r.job_id = 3;
  r.unit_index = 17;
  r.hash = std::string(32, '\x5a');
  r.payload = std::string("\x00\x01\x02\xff", 4);
  r.cpu_seconds = 1.5;
  r.wall_seconds = 0.8;
  return r;
}

}  // namespace

TEST_CASE("the header is the magic SPCY, the version and the type, little-endian") {
  const std::string f = Encode(RequestWork{3});
  REQUIRE(f.size() == kHeaderSize + 4);
  CHECK(f.substr(0, 4) == "SPCY");
  CHECK(static_cast<unsigned char>(f[4]) == kProtocolVersion);
  CHECK(f[5] == 0);
  CHECK(static_cast<unsigned char>(f[6]) == static_cast<unsigned>(MsgType::kRequestWork));
  CHECK(static_cast<unsigned char>(f[8]) == 3);  // u32 count, little-endian
}

TEST_CASE("every peer message survives a round trip") {
  auto h = RoundTrip(SampleHello());
  CHECK(h.tasks[0].work_per_second == 2.5e9);
  CHECK(h.running_leases == std::vector<std::uint64_t>{7, 8, 9});
  RoundTrip(Welcome{"c-1", 1000, 5000});
  RoundTrip(Capacity{4, 2, 1ull << 30, PeerState::kThrottled, "owner busy"});
  RoundTrip(RequestWork{5});
  Assign a;
  a.leases.push_back(Lease{1, 2, 3, "primes", 1, "unit-bytes", 60000});
  CHECK(RoundTrip(a).leases[0].unit == "unit-bytes");
  CHECK(RoundTrip(SampleResult()).payload == std::string("\x00\x01\x02\xff", 4));
  Results batch{{SampleResult(), SampleResult()}};
  batch.results[1].lease_id = 43;
  batch.results[1].outcome = UnitOutcome::kFailed;
  batch.results[1].hash.clear();
  batch.results[1].error = "kernel threw";
  const Results back = RoundTrip(batch);
  REQUIRE(back.results.size() == 2);
  CHECK(back.results[1].lease_id == 43);
  CHECK(back.results[1].error == "kernel threw");
  RoundTrip(Ack{{1, 2, 3}});
  RoundTrip(Heartbeat{{{1, 0.5f}}});
  RoundTrip(CancelLeases{{4}, "job cancelled"});
  RoundTrip(Bye{{5, 6}});
  RoundTrip(Reject{RejectCode::kHelloFirst, "say hello"});
}

TEST_CASE("every client message survives a round trip") {
  Submit s;
  s.request_id = 9;
  s.spec.task = "primes";
  s.spec.params = {{"from", "0"}, {"to", "1000"}};
  s.spec.input = "abc";
  s.spec.priority = -3;
  s.spec.client_token = "tok";
  CHECK(RoundTrip(s).spec.params.at("to") == "1000");
  JobInfo info;
  info.job_id = 5;
  info.task = "pi";
  info.state = JobState::kDone;
  RoundTrip(SubmitReply{9, 0, "", info});
  StatusRequest q;
  q.request_id = 1;
  q.job_id = 5;
  RoundTrip(q);
  RoundTrip(JobStatus{1, 0, "", info});
  RoundTrip(Progress{info});
  JobResult r;
  r.result = "xyz";
  r.failures = {{3, "no quorum"}};
  CHECK(RoundTrip(r).failures[0].reason == "no quorum");
  RoundTrip(JobList{1, {info, info}});
  PeerList pl;
  pl.peers.push_back(PeerInfo{"p", "h", 2, 2, 1, PeerState::kRunning, "", 1, 2, 3.0, 4.0, 0.5});
  RoundTrip(pl);
  RoundTrip(ErrorReply{1, 3, "nope"});
}

TEST_CASE("every truncation of a valid frame is rejected") {
  for (const std::string& frame : {Encode(SampleHello()), Encode(SampleResult())}) {
    for (std::size_t len = 0; len < frame.size(); ++len) {
      std::string_view body;
      auto type = ParseHeader(std::string_view(frame).substr(0, len), body);
      if (!type.ok()) continue;
      Status s = *type == MsgType::kHello ? [&] { Hello m; return Decode(body, m); }()
                                          : [&] { ResultMsg m; return Decode(body, m); }();
      CHECK_FALSE(s.ok());
    }
  }
}

TEST_CASE("a length field larger than the frame is rejected before anything is allocated") {
  // A Hello whose peer_id claims 2^40 bytes: cereal alone would try to allocate a terabyte.
  std::string frame = Encode(SampleHello());
  const std::uint64_t huge = 1ull << 40;
  std::memcpy(frame.data() + kHeaderSize, &huge, 8);
  std::string_view body;
  REQUIRE(ParseHeader(frame, body).ok());
  Hello h;
  Status s = Decode(body, h);
  CHECK(s.code() == StatusCode::kDataLoss);
  CHECK(s.message().find("length") != std::string::npos);
  // Likewise a vector count in an Ack.
  std::string ack = Encode(Ack{{1}});
  std::memcpy(ack.data() + kHeaderSize, &huge, 8);
  REQUIRE(ParseHeader(ack, body).ok());
  Ack a;
  CHECK_FALSE(Decode(body, a).ok());
}

TEST_CASE("bad magic, unknown versions, unknown types and trailing bytes are rejected") {
  std::string f = Encode(RequestWork{1});
  std::string_view body;
  std::string bad = f;
  bad[0] = 'X';
  CHECK(ParseHeader(bad, body).status().code() == StatusCode::kDataLoss);
  bad = f;
  bad[4] = 99;
  CHECK(ParseHeader(bad, body).status().code() == StatusCode::kFailedPrecondition);
  bad = f;
  bad[6] = 77;
  CHECK_FALSE(ParseHeader(bad, body).ok());
  bad = f + "extra";
  REQUIRE(ParseHeader(bad, body).ok());
  RequestWork r;
  CHECK_FALSE(Decode(body, r).ok());
}

TEST_CASE("field limits and enum ranges are enforced after decoding") {
  Hello h = SampleHello();
  h.peer_id = std::string(kMaxIdBytes + 1, 'p');
  std::string_view body;
  std::string f = Encode(h);
  REQUIRE(ParseHeader(f, body).ok());
  Hello out;
  CHECK(Decode(body, out).code() == StatusCode::kInvalidArgument);
  std::string cap = Encode(Capacity{2, 1, 0, PeerState::kRunning, ""});
  cap[kHeaderSize + 16] = 9;  // state byte out of range
  REQUIRE(ParseHeader(cap, body).ok());
  Capacity c;
  CHECK_FALSE(Decode(body, c).ok());
  ResultMsg r = SampleResult();
  r.hash = "short";
  f = Encode(r);
  REQUIRE(ParseHeader(f, body).ok());
  ResultMsg rr;
  CHECK_FALSE(Decode(body, rr).ok());
  std::string b = Encode(Bye{});
  b.back() = 0;  // still fine: zero-length vector
  REQUIRE(ParseHeader(b, body).ok());
  Bye bye;
  CHECK(Decode(body, bye).ok());
  // One bad result spoils its whole batch (the frame is dropped and counted).
  Results batch{{SampleResult(), r}};
  f = Encode(batch);
  REQUIRE(ParseHeader(f, body).ok());
  Results rb;
  CHECK_FALSE(Decode(body, rb).ok());
  batch.results.assign(kMaxLeasesPerMessage + 1, SampleResult());
  f = Encode(batch);
  REQUIRE(ParseHeader(f, body).ok());
  CHECK(Decode(body, rb).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("random and mutated frames never crash the decoder") {
  std::mt19937_64 rng(12345);
  const std::vector<std::string> seeds = {Encode(SampleHello()), Encode(SampleResult()),
                                          Encode(Assign{{Lease{1, 2, 3, "primes", 1, "u", 5}}}),
                                          Encode(Results{{SampleResult(), SampleResult()}})};
  int rejected = 0, total = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string f;
    if (i % 2 == 0) {
      f.resize(rng() % 64);
      for (auto& c : f) c = static_cast<char>(rng());
      if (f.size() >= 8 && i % 4 == 0)
        f.replace(0, 6, seeds[0].substr(0, 6));  // valid magic+version
    } else {
      f = seeds[rng() % seeds.size()];
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
        f[rng() % f.size()] = static_cast<char>(rng());
    }
    std::string_view body;
    auto type = ParseHeader(f, body);
    ++total;
    if (!type.ok()) {
      ++rejected;
      continue;
    }
    Status s;
    switch (*type) {
      case MsgType::kHello: {
        Hello m;
        s = Decode(body, m);
        break;
      }
      case MsgType::kResult: {
        ResultMsg m;
        s = Decode(body, m);
        break;
      }
      case MsgType::kResults: {
        Results m;
        s = Decode(body, m);
        break;
      }
      case MsgType::kAssign: {
        Assign m;
        s = Decode(body, m);
        break;
      }
      case MsgType::kSubmit: {
        Submit m;
        s = Decode(body, m);
        break;
      }
      default: {
        Capacity m;
        s = Decode(body, m);
        break;
      }
    }
    if (!s.ok()) ++rejected;
  }
  CHECK(total == 20000);
  CHECK(rejected > 10000);  // most random input is garbage and is said to be
}

TEST_CASE("status codes cross the wire as StatusCode's numbers; unknown ones read as Internal") {
  for (int c = 0; c <= static_cast<int>(kLastStatusCode); ++c) {
    const auto code = static_cast<StatusCode>(c);
    CHECK(ToWireCode(code) == c);
    const Status s = StatusFromWire(ToWireCode(code), "why");
    CHECK(s.code() == code);
    CHECK(s.message() == "why");
  }
  for (std::uint16_t unknown : {std::uint16_t{11}, std::uint16_t{500}, std::uint16_t{65535}}) {
    const Status s = StatusFromWire(unknown, "from a newer coordinator");
    CHECK(s.code() == StatusCode::kInternal);
    CHECK(s.message() == "from a newer coordinator");
  }
}
