// What the HTTP side costs the event loop: trivial units per second (spin ms=0, 2 workers of 1
// core, replicas=1, memory store) with the coordinator's HTTP side off (the baseline, same run),
// on but never read, and under a scrape of /metrics plus a dashboard poll of /api/state.json every
// second. Cases are interleaved (off, unread, scraped, off, ...) so that a noisy shared machine
// hits each alike; the best of the repeats is reported, the median in "median".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>

#include "bench_common.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

namespace {

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    Die("cannot find a free port");
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// A minimal HTTP/1.0 GET on 127.0.0.1; returns the response's size (0 on failure).
std::size_t Get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::size_t total = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
        total += static_cast<std::size_t>(n);
    }
  }
  ::close(fd);
  return total;
}

enum class Mode { kOff, kUnread, kScraped };

struct Run {
  double units_per_s = 0;
  int scrapes = 0;
  double scrape_bytes = 0;
};

Run Measure(std::uint64_t units, Mode mode) {
  std::vector<std::string> flags;
  const int port = mode == Mode::kOff ? 0 : FreePort();
  if (mode != Mode::kOff) flags = {"--http", "127.0.0.1:" + std::to_string(port)};
  auto cluster = StartCluster(2, flags);
  Client client = ConnectWhenReady(*cluster, 2);
  TimeJob(client, SpinJob(std::min<std::uint64_t>(units, 2000), 0));  // warm-up
  std::atomic<bool> stop{false};
  Run run;
  std::thread scraper;
  if (mode == Mode::kScraped) {
    scraper = std::thread([&] {
      while (!stop.load()) {
        const std::size_t m = Get(port, "/metrics");
        const std::size_t s = Get(port, "/api/state.json");
        if (m == 0 || s == 0) Die("a scrape failed");
        ++run.scrapes;
        run.scrape_bytes += static_cast<double>(m + s);
        for (int i = 0; i < 100 && !stop.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  const double t = TimeJob(client, SpinJob(units, 0));
  stop.store(true);
  if (scraper.joinable()) scraper.join();
  run.units_per_s = static_cast<double>(units) / t;
  return run;
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout << "Usage: bench_http_overhead [--quick] [--units N] [--repeats N]\n"
                   "Trivial units/s with the coordinator's HTTP side off, on but unread, and "
                   "scraped every second.\n";
      return 0;
    }
    const auto units = static_cast<std::uint64_t>(args.Num("units", 200000, 2000));
    const int repeats = static_cast<int>(args.Num("repeats", 5, 1));
    std::cerr << "HTTP side overhead: trivial units/s, " << units << " units per job, " << repeats
              << " interleaved repeats\n";
    std::map<Mode, std::vector<double>> rates;
    int scrapes = 0;
    double scrape_bytes = 0;
    for (int r = 0; r < repeats; ++r) {
      for (Mode m : {Mode::kOff, Mode::kUnread, Mode::kScraped}) {
        const Run run = Measure(units, m);
        rates[m].push_back(run.units_per_s);
        scrapes += run.scrapes;
        scrape_bytes += run.scrape_bytes;
      }
    }
    auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    Figure f;
    f.figure = "http_overhead_units_per_s";
    f.unit = "units/s";
    f.baseline = best(rates[Mode::kOff]);
    f.baseline_name = "same job, HTTP side off";
    f.extra["units"] = static_cast<double>(units);
    f.extra["repeats"] = repeats;
    f.case_name = "HTTP side on, never read";
    f.value = best(rates[Mode::kUnread]);
    f.extra["median"] = Median(rates[Mode::kUnread]);
    f.extra["baseline_median"] = Median(rates[Mode::kOff]);
    Emit(f, args);
    f.case_name = "HTTP side on, /metrics + /api/state.json every second";
    f.value = best(rates[Mode::kScraped]);
    f.extra["median"] = Median(rates[Mode::kScraped]);
    f.extra["scrapes"] = scrapes;
    f.extra["bytes_per_scrape"] = scrapes ? scrape_bytes / scrapes : 0;
    Emit(f, args);
    return 0;
  });
}
