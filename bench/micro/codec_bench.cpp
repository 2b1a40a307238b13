// Codec micro-benchmarks: proto::Encode, and proto::ParseHeader + proto::Decode, per message type,
// with realistic field sizes (a Result carries a 32-byte hash and a small payload; an Assign
// carries one lease or a full batch). Items = messages; bytes = frame bytes.
#include <benchmark/benchmark.h>

#include <string>

#include "sparecycles/core/protocol.hpp"

namespace sc = sparecycles;
namespace proto = sparecycles::proto;

namespace {

proto::Hello MakeHello() {
  proto::Hello h;
  h.peer_id = "peer-0123456789abcdef";
  h.hostname = "volunteer-laptop.example.org";
  h.account = "alice";
  h.software = "sparecycles-worker 0.1.0";
  h.cores = 8;
  h.memory_bytes = 16ull << 30;
  for (const char* t : {"primes", "pi", "mandelbrot", "hashsearch", "wordfreq", "spin"})
    h.tasks.push_back({t, 1, 1.5e8});
  return h;
}

proto::Lease MakeLease(std::uint64_t i) {
  proto::Lease l;
  l.lease_id = 0x1234000000 + i;
  l.job_id = 7;
  l.unit_index = i;
  l.task = "spin";
  l.task_version = 1;
  l.unit = std::string(28, 'u');  // a spin unit: 3 x u64 + u32
  l.deadline_ms = 60000;
  return l;
}

proto::Assign MakeAssign(std::size_t n) {
  proto::Assign a;
  for (std::size_t i = 0; i < n; ++i) a.leases.push_back(MakeLease(i));
  return a;
}

proto::ResultMsg MakeResult() {
  proto::ResultMsg r;
  r.lease_id = 0x1234000001;
  r.job_id = 7;
  r.unit_index = 1;
  r.hash = std::string(32, 'h');
  r.payload = std::string(24, 'p');  // a primes unit result: 3 x u64
  r.cpu_seconds = 0.9;
  r.wall_seconds = 1.0;
  return r;
}

proto::Heartbeat MakeHeartbeat() {
  proto::Heartbeat h;
  for (std::uint64_t i = 0; i < 8; ++i) h.running.push_back({0x1234000000 + i, 0.5f});
  return h;
}

proto::Ack MakeAck(std::size_t n) {
  proto::Ack a;
  for (std::uint64_t i = 0; i < n; ++i) a.lease_ids.push_back(0x1234000000 + i);
  return a;
}

proto::Submit MakeSubmit() {
  proto::Submit s;
  s.request_id = 1;
  s.spec.task = "primes";
  s.spec.params = {{"from", "0"}, {"to", "2000000000"}};
  s.spec.units = 200;
  s.spec.client_token = "token-0123456789abcdef";
  return s;
}

proto::JobResult MakeJobResult() {
  proto::JobResult r;
  r.request_id = 1;
  r.info.job_id = 7;
  r.info.task = "primes";
  r.info.state = proto::JobState::kDone;
  r.info.units_total = r.info.units_done = 200;
  r.result = std::string(24, 'r');
  r.summary = "98222287";
  r.json = "{\"count\":98222287,\"from\":0,\"to\":2000000000}";
  return r;
}

template <class M>
void EncodeBench(benchmark::State& state, const M& msg) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string frame = proto::Encode(msg);
    bytes += frame.size();
    benchmark::DoNotOptimize(frame);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

template <class M>
void DecodeBench(benchmark::State& state, const M& msg) {
  const std::string frame = proto::Encode(msg);
  for (auto _ : state) {
    std::string_view body;
    auto type = proto::ParseHeader(frame, body);
    if (!type.ok() || *type != M::kType) {
      state.SkipWithError("ParseHeader failed");
      break;
    }
    M out;
    sc::Status s = proto::Decode(body, out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
}

#define SC_CODEC_BENCH(Case, make)                                         \
  void BM_CodecEncode##Case(benchmark::State& s) { EncodeBench(s, make); } \
  void BM_CodecDecode##Case(benchmark::State& s) { DecodeBench(s, make); } \
  BENCHMARK(BM_CodecEncode##Case);                                         \
  BENCHMARK(BM_CodecDecode##Case)

SC_CODEC_BENCH(Hello, MakeHello());
SC_CODEC_BENCH(RequestWork, proto::RequestWork{2});
SC_CODEC_BENCH(Assign1, MakeAssign(1));
SC_CODEC_BENCH(Assign64, MakeAssign(64));
SC_CODEC_BENCH(Result, MakeResult());
SC_CODEC_BENCH(Ack64, MakeAck(64));
SC_CODEC_BENCH(Heartbeat, MakeHeartbeat());
SC_CODEC_BENCH(Submit, MakeSubmit());
SC_CODEC_BENCH(JobResult, MakeJobResult());

}  // namespace

BENCHMARK_MAIN();
