// The whole path with real processes: a coordinator and two workers on 127.0.0.1 (OS-chosen
// ports); every built-in task through the SDK and the CLI, checked against independent references.
#include <doctest/doctest.h>
#include <png.h>
#include <sodium.h>

#include <cmath>
#include <map>
#include <random>
#include <regex>
#include <zmq.hpp>

#include "process.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;

namespace {

Cluster& SharedCluster() {
  static Cluster cluster(2);
  REQUIRE(cluster.ok());
  return cluster;
}

Client Connect() {
  auto c = Client::Connect(SharedCluster().client_endpoint());
  REQUIRE(c.ok());
  return std::move(*c);
}

JobResult RunToEnd(Client& client, const JobSpec& spec) {
  auto job = client.Submit(spec);
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());
  auto r = job->Wait(120s);
  REQUIRE_MESSAGE(r.ok(), (r.status().ToString() + "\n" + SharedCluster().Logs()));
  REQUIRE_MESSAGE(r->info.state == JobState::kDone, r->info.error);
  return std::move(*r);
}

// The integer after "key": in a JSON text.
long long JsonInt(const std::string& json, const std::string& key) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + key + "\":(-?[0-9]+)")));
  return std::stoll(m[1]);
}
double JsonDouble(const std::string& json, const std::string& key) {
  std::smatch m;
  REQUIRE(std::regex_search(json, m, std::regex("\"" + key + "\":(-?[0-9.eE+-]+)")));
  return std::stod(m[1]);
}

std::uint64_t ReferencePrimeCount(std::uint64_t lo, std::uint64_t hi) {  // plain sieve, no TBB
  std::vector<bool> composite(hi, false);
  std::uint64_t count = 0;
  for (std::uint64_t i = 2; i < hi; ++i) {
    if (composite[i]) continue;
    if (i >= lo) ++count;
    for (std::uint64_t j = i * i; j < hi; j += i) composite[j] = true;
  }
  return count;
}

struct Gray {
  unsigned width = 0, height = 0;
  std::vector<unsigned char> pixels;
};
Gray DecodePng(const std::string& bytes) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()) != 0);
  img.format = PNG_FORMAT_GRAY;
  Gray g;
  g.width = img.width;
  g.height = img.height;
  g.pixels.resize(PNG_IMAGE_SIZE(img));
  REQUIRE(png_image_finish_read(&img, nullptr, g.pixels.data(), 0, nullptr) != 0);
  return g;
}

}  // namespace

TEST_CASE("primes through the SDK matches an independent sieve") {
  Client client = Connect();
  JobSpec spec("primes");
  spec.Set("from", "0").Set("to", "200000000");
  spec.units = 8;
  JobResult r = RunToEnd(client, spec);
  CHECK(r.summary == "11078937");  // pi(2*10^8)
  CHECK(JsonInt(r.json, "count") == 11078937);
  CHECK(r.info.units_total == 8);
  JobSpec odd("primes");
  odd.Set("from", "999983").Set("to", "3000017");
  odd.units = 5;
  CHECK(JsonInt(RunToEnd(client, odd).json, "count") ==
        static_cast<long long>(ReferencePrimeCount(999983, 3000017)));
}

TEST_CASE("pi through the SDK is close to pi and bit-identical on a rerun") {
  Client client = Connect();
  JobSpec spec("pi");
  spec.Set("samples", "4000000").Set("seed", "3");
  spec.units = 4;
  JobResult a = RunToEnd(client, spec);
  JobResult b = RunToEnd(client, spec);
  CHECK(std::abs(JsonDouble(a.json, "estimate") - M_PI) < 0.01);
  CHECK(a.bytes == b.bytes);  // the same units on whichever peers: the same bits
}

TEST_CASE("mandelbrot through the SDK is a PNG that does not depend on the tiling") {
  Client client = Connect();
  JobSpec spec("mandelbrot");
  spec.Set("width", "160").Set("height", "120").Set("max_iter", "200");
  spec.units = 6;
  JobResult tiled = RunToEnd(client, spec);
  CHECK(tiled.media_type == "image/png");
  REQUIRE(tiled.bytes.size() > 8);
  CHECK(tiled.bytes.substr(1, 3) == "PNG");
  Gray g = DecodePng(tiled.bytes);
  CHECK(g.width == 160);
  CHECK(g.height == 120);
  spec.units = 1;
  JobResult whole = RunToEnd(client, spec);
  CHECK(DecodePng(whole.bytes).pixels == g.pixels);
  // The centre of the main cardioid (-0.25, 0) is in the set, the corner (-2.5, 1.25) is not.
  const unsigned cx = static_cast<unsigned>((-0.25 + 2.5) / 3.5 * 160), cy = 60;
  CHECK(g.pixels[cy * 160 + cx] != g.pixels[0]);
}

TEST_CASE("hashsearch through the SDK finds exactly the nonces a brute force finds") {
  Client client = Connect();
  const std::string prefix = "sparecycles-test";
  const std::uint64_t to = 200000;
  const int bits = 12;
  std::vector<std::uint64_t> expected;
  for (std::uint64_t n = 0; n < to; ++n) {
    std::string msg = prefix;
    msg.append(reinterpret_cast<const char*>(&n), 8);
    unsigned char h[32];
    crypto_generichash(h, 32, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       nullptr, 0);
    int zeros = 0;
    for (int i = 0; i < 32 && zeros == i * 8; ++i)
      zeros += h[i] == 0 ? 8 : __builtin_clz(h[i]) - 24;
    if (zeros >= bits) expected.push_back(n);
  }
  REQUIRE(expected.size() > 10);
  JobSpec spec("hashsearch");
  spec.Set("prefix", prefix)
      .Set("from", "0")
      .Set("to", std::to_string(to))
      .Set("bits", std::to_string(bits));
  spec.units = 7;
  JobResult r = RunToEnd(client, spec);
  CHECK(JsonInt(r.json, "count") == static_cast<long long>(expected.size()));
  std::string list;
  for (std::size_t i = 0; i < expected.size(); ++i)
    list += (i ? "," : "") + std::to_string(expected[i]);
  CHECK(r.json.find("[" + list + "]") != std::string::npos);
}

TEST_CASE("wordfreq ships its input to the peers in chunks and counts every word once") {
  Client client = Connect();
  const std::vector<std::string> vocab = {"alpha",   "beta", "gamma", "delta",
                                          "epsilon", "zeta", "eta"};
  std::mt19937 rng(7);
  std::map<std::string, long long> expected;
  std::string text;
  for (int i = 0; i < 60000; ++i) {
    const std::string& w = vocab[std::min<std::size_t>(rng() % 10, vocab.size() - 1)];
    ++expected[w];
    text += w;
    text += (i % 13 == 0) ? "\n" : " ";
  }
  JobSpec spec("wordfreq");
  spec.input = text;
  spec.Set("top", "3");
  spec.units = 5;
  JobResult r = RunToEnd(client, spec);
  CHECK(r.info.units_total == 5);
  CHECK(JsonInt(r.json, "total_words") == 60000);
  CHECK(JsonInt(r.json, "distinct_words") == static_cast<long long>(vocab.size()));
  // "eta" takes 4 of every 10 draws: the most frequent word with its exact count.
  CHECK(r.json.find("\"eta\"") != std::string::npos);
  CHECK(r.json.find(std::to_string(expected["eta"])) != std::string::npos);
}

TEST_CASE("spin units are spread over both workers") {
  Client client = Connect();
  JobSpec spec("spin");
  spec.Set("units", "12").Set("ms", "30");
  JobResult r = RunToEnd(client, spec);
  CHECK(r.info.units_total == 12);
  CHECK(JsonInt(r.json, "units") == 12);
  auto peers = client.Peers();
  REQUIRE(peers.ok());
  REQUIRE(peers->size() == 2);
  for (const auto& p : *peers) CHECK(p.units_done > 0);
}

TEST_CASE("the CLI submits jobs, lists them and writes image files") {
  const std::string ep = SharedCluster().client_endpoint();
  const TempDir& dir = SharedCluster().dir();
  auto [code, out] = RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "primes",
                                 "--from", "1000000", "--to", "2000000", "--units", "3", "--json"},
                                dir / "cli1");
  CHECK(code == 0);
  CHECK(out.find("\"count\":70435") != std::string::npos);  // pi(2e6) - pi(1e6)
  const std::string job_id = std::to_string(JsonInt(out, "job"));

  auto [c2, jobs] =
      RunCommand({SPARECYCLES_CLI_BIN, "jobs", "--coordinator", ep, "--json"}, dir / "cli2");
  CHECK(c2 == 0);
  CHECK(jobs.find("\"job\":" + job_id) != std::string::npos);
  auto [c3, peers] =
      RunCommand({SPARECYCLES_CLI_BIN, "peers", "--coordinator", ep, "--json"}, dir / "cli3");
  CHECK(c3 == 0);
  CHECK(std::count(peers.begin(), peers.end(), '{') == 2);
  auto [c4, status] =
      RunCommand({SPARECYCLES_CLI_BIN, "status", "--coordinator", ep, job_id}, dir / "cli4");
  CHECK(c4 == 0);
  CHECK(status.find("done") != std::string::npos);

  const std::string pgm = dir / "m.pgm";
  auto [c5, m] =
      RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "mandelbrot", "--width", "64",
                  "--height", "48", "--format", "pgm", "--output", pgm, "--json"},
                 dir / "cli5");
  CHECK(c5 == 0);
  const std::string image = ReadAll(pgm);
  CHECK(image.rfind("P5", 0) == 0);
  CHECK(image.find("64 48") != std::string::npos);
  CHECK(image.size() > 64 * 48);

  const std::string input = dir / "words.txt";
  {
    std::ofstream f(input);
    for (int i = 0; i < 1000; ++i) f << "to be or not to be\n";
  }
  auto [c6, w] = RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "wordfreq",
                             "--input", input, "--units", "4", "--json"},
                            dir / "cli6");
  CHECK(c6 == 0);
  CHECK(JsonInt(w, "total_words") == 6000);

  // The remaining tasks through the CLI as well.
  auto [c9, pi] = RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "pi", "--samples",
                              "2000000", "--units", "4", "--json"},
                             dir / "cli9");
  CHECK(c9 == 0);
  CHECK(std::abs(JsonDouble(pi, "estimate") - M_PI) < 0.02);
  auto [c10, hs] =
      RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "hashsearch", "--prefix",
                  "cli", "--to", "50000", "--bits", "10", "--units", "3", "--json"},
                 dir / "cli10");
  CHECK(c10 == 0);
  CHECK(JsonInt(hs, "count") > 0);
  auto [c11, sp] = RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "spin",
                               "--units", "6", "--ms", "5", "--json"},
                              dir / "cli11");
  CHECK(c11 == 0);
  CHECK(JsonInt(sp, "units") == 6);

  auto [c7, bad] = RunCommand(
      {SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "primes", "--from", "10", "--to", "5"},
      dir / "cli7");
  CHECK(c7 == 2);
  CHECK(ReadAll(dir / "cli7.err").find("INVALID_ARGUMENT") != std::string::npos);
  auto [c8, nope] =
      RunCommand({SPARECYCLES_CLI_BIN, "submit", "--coordinator", ep, "nosuchtask"}, dir / "cli8");
  CHECK(c8 == 2);
  CHECK(ReadAll(dir / "cli8.err").find("unknown task") != std::string::npos);
}

TEST_CASE("the embedded run needs no coordinator") {
  const TempDir& dir = SharedCluster().dir();
  auto [code, out] = RunCommand(
      {SPARECYCLES_CLI_BIN, "run", "primes", "--to", "100000000", "--json"}, dir / "run1");
  CHECK(code == 0);
  CHECK(out.find("\"count\":5761455") != std::string::npos);  // pi(10^8)
}

TEST_CASE("a cancelled job stops its running units and frees the workers") {
  Client client = Connect();
  JobSpec spec("spin");
  spec.Set("units", "200").Set("ms", "300");
  auto job = client.Submit(spec);
  REQUIRE(job.ok());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (job->Info().units_running == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  REQUIRE(job->Info().units_running > 0);
  REQUIRE(job->Cancel().ok());
  auto r = job->Wait(20s);
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kCancelled);
  // The workers are free at once: a short job finishes well before 300 ms units would have.
  JobSpec quick("spin");
  quick.Set("units", "2").Set("ms", "1");
  const auto t0 = std::chrono::steady_clock::now();
  RunToEnd(client, quick);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

TEST_CASE("garbage on both endpoints is dropped and the coordinator keeps serving") {
  zmq::context_t ctx;
  std::mt19937_64 rng(99);
  for (const std::string& ep :
       {SharedCluster().peer_endpoint(), SharedCluster().client_endpoint()}) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 1000);
    s.connect(ep);
    for (int i = 0; i < 200; ++i) {
      std::string f(rng() % 100, '\0');
      for (auto& c : f) c = static_cast<char>(rng());
      if (i % 3 == 0 && f.size() >= 8) f.replace(0, 6, std::string("SPCY\x01\x00", 6));
      s.send(zmq::buffer(f), zmq::send_flags::none);
    }
    // A Hello that claims a 2^40-byte peer id.
    std::string hello("SPCY\x01\x00\x01\x00", 8);
    const std::uint64_t huge = 1ull << 40;
    hello.append(reinterpret_cast<const char*>(&huge), 8);
    hello += "x";
    s.send(zmq::buffer(hello), zmq::send_flags::none);
  }
  std::this_thread::sleep_for(200ms);
  CHECK(SharedCluster().coordinator().running());
  Client client = Connect();
  JobSpec spec("primes");
  spec.Set("to", "1000000");
  CHECK(RunToEnd(client, spec).summary == "78498");
  CHECK(SharedCluster().coordinator().running());
  CHECK(SharedCluster().worker(0).running());
  CHECK(SharedCluster().worker(1).running());
}

TEST_CASE("a job that cannot progress tells the submitter why instead of waiting silently") {
  // One worker under the volunteer pool: each unit needs a second, independent peer that never
  // comes. The CLI must say so while it waits, and `status` must too.
  Cluster cluster(1, {"--pool", "volunteer"});
  REQUIRE(cluster.ok());
  TempDir dir;
  Process cli({SPARECYCLES_CLI_BIN, "submit", "--coordinator", cluster.client_endpoint(), "spin",
               "--units", "2", "--ms", "5"},
              dir / "submit");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline &&
         cli.Stderr().find("waiting: unit") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string said = cli.Stderr();
  CHECK_MESSAGE(
      said.find("waits for a peer that has not run it: 1 of 1 connected peers already have") !=
          std::string::npos,
      said);
  CHECK(cli.running());  // still waiting, but not silently
  cli.Signal(SIGTERM);
  cli.Wait(std::chrono::seconds(5));
  auto [code, status] =
      RunCommand({SPARECYCLES_CLI_BIN, "status", "--coordinator", cluster.client_endpoint(), "1"},
                 dir / "status");
  CHECK(code == 0);
  // A copy, not the binding: CHECK_MESSAGE captures it in a lambda (clang 14 cannot).
  const std::string status_out = status;
  CHECK_MESSAGE(status_out.find("waiting: unit") != std::string::npos, status_out);
}
