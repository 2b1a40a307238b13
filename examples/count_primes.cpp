// Counts the primes below N (default 10^8) on an embedded coordinator and worker.
//   ./count_primes 1000000000     -> 50847534
#include <cstdio>
#include <sparecycles/sdk/client.hpp>
#include <string>

int main(int argc, char** argv) {
  const std::string to = argc > 1 ? argv[1] : "100000000";
  auto client = sparecycles::Client::Local();
  if (!client.ok()) {
    std::fprintf(stderr, "cannot start: %s\n", client.status().ToString().c_str());
    return 1;
  }
  auto job = client->Submit(sparecycles::JobSpec("primes").Set("from", "0").Set("to", to));
  if (!job.ok()) {
    std::fprintf(stderr, "submit failed: %s\n", job.status().ToString().c_str());
    return 1;
  }
  job->OnProgress([](const sparecycles::JobInfo& info) {
    std::fprintf(stderr, "\r%llu/%llu units", static_cast<unsigned long long>(info.units_done),
                 static_cast<unsigned long long>(info.units_total));
  });
  auto result = job->Wait();
  std::fprintf(stderr, "\n");
  if (!result.ok()) {
    std::fprintf(stderr, "job failed: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", result->summary.c_str());
  return result->info.state == sparecycles::JobState::kDone ? 0 : 1;
}
