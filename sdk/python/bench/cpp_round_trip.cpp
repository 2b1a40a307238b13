// The C++ half of sdk/python/bench/bench_python.py: one-unit job round trips (Submit -> Wait ->
// result fetched) through the C++ SDK against a coordinator that is already running, printed as
// one JSON line of microseconds per job. The Python half runs the same loop through the bindings.
// Single-threaded tool; owns nothing but its client.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_python_cpp_round_trip CLIENT_ENDPOINT ITERATIONS\n");
    return 2;
  }
  const int iterations = std::atoi(argv[2]);
  if (iterations < 1 || iterations > 1000000) {
    std::fprintf(stderr, "ITERATIONS must be 1..1000000\n");
    return 2;
  }
  auto client = Client::Connect(argv[1]);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  JobSpec spec("spin");
  spec.Set("units", "1").Set("ms", "0");
  spec.units = 1;
  spec.replication.replicas = 1;
  spec.replication.quorum = 1;
  std::vector<double> seconds;
  constexpr int kWarmUp = 3;  // the first jobs of a fresh connection also set it up: not counted
  for (int i = -kWarmUp; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto job = client->Submit(spec);
    if (!job.ok()) {
      std::fprintf(stderr, "submit: %s\n", job.status().ToString().c_str());
      return 1;
    }
    auto r = job->Wait(std::chrono::seconds(60));
    if (!r.ok() || r->info.state != JobState::kDone) {
      std::fprintf(stderr, "wait: %s\n",
                   r.ok() ? r->info.error.c_str() : r.status().ToString().c_str());
      return 1;
    }
    if (i >= 0)
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::string out = "{\"microseconds\":[";
  for (std::size_t i = 0; i < seconds.size(); ++i)
    out += (i ? "," : "") + std::to_string(seconds[i] * 1e6);
  out += "]}\n";
  std::fputs(out.c_str(), stdout);
  return 0;
}
