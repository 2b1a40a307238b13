// Estimates pi by Monte Carlo on a remote coordinator, or an embedded one when none is given.
//   ./estimate_pi                          (embedded)
//   ./estimate_pi tcp://127.0.0.1:7738     (a running sparecycles-coordinator)
#include <cstdio>
#include <sparecycles/sdk/client.hpp>

int main(int argc, char** argv) {
  auto client = argc > 1 ? sparecycles::Client::Connect(argv[1]) : sparecycles::Client::Local();
  if (!client.ok()) {
    std::fprintf(stderr, "cannot connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  sparecycles::JobSpec spec("pi");
  spec.Set("samples", "20000000").Set("seed", "7");
  spec.units = 8;
  auto job = client->Submit(spec);
  if (!job.ok()) {
    std::fprintf(stderr, "submit failed: %s\n", job.status().ToString().c_str());
    return 1;
  }
  auto result = job->Wait(std::chrono::minutes(5));
  if (!result.ok()) {
    std::fprintf(stderr, "job failed: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n%s\n", result->summary.c_str(), result->json.c_str());
  return 0;
}
