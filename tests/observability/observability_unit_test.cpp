// Unit tests of the observability pieces that need no process: the exposition renderer
// (escaping, number formatting, cumulative histogram buckets), snapshot publishing (nothing is
// built while nobody reads), the rendered metrics and JSON, and the volunteer page's preference
// parsing and config rewriting.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "cli_views.hpp"
#include "http_server.hpp"
#include "metrics.hpp"
#include "sparecycles/core/http.hpp"
#include "sparecycles/core/metrics_text.hpp"
#include "sparecycles/worker/owner_control.hpp"
#include "volunteer_page.hpp"

using namespace sparecycles;

TEST_CASE("label values escape backslash, double quote and newline, and nothing else") {
  CHECK(metrics::EscapeLabelValue("plain") == "plain");
  CHECK(metrics::EscapeLabelValue("a\\b\"c\nd'e") == "a\\\\b\\\"c\\nd'e");
  CHECK(metrics::EscapeHelp("say \"hi\"\\\nnext") == "say \"hi\"\\\\\\nnext");
}

TEST_CASE(
    "sample values are integers without a fraction, shortest round-trip doubles, and Prometheus "
    "infinities") {
  CHECK(metrics::FormatValue(0) == "0");
  CHECK(metrics::FormatValue(42) == "42");
  CHECK(metrics::FormatValue(0.0001) == "0.0001");
  CHECK(metrics::FormatValue(2.5) == "2.5");
  CHECK(metrics::FormatValue(1.0 / 3) == "0.33333333333333331");
  CHECK(metrics::FormatValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(metrics::FormatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(metrics::FormatValue(std::nan("")) == "NaN");
}

TEST_CASE(
    "a histogram counts a value in the first bucket whose bound is at least the value, "
    "cumulatively on output") {
  metrics::Histogram h({1, 0.1});  // unsorted on purpose
  for (double v : {0.05, 0.1, 0.5, 5.0}) h.Observe(v);
  CHECK(h.count() == 4);
  CHECK(h.sum() == doctest::Approx(5.65));
  REQUIRE(h.counts().size() == 3);
  CHECK(h.counts()[0] == 2);  // 0.05 and 0.1 (le is inclusive)
  CHECK(h.counts()[1] == 1);
  CHECK(h.counts()[2] == 1);  // +Inf
  metrics::Writer w;
  w.Family("x_seconds", "histogram", "Test.");
  w.HistogramSeries("x_seconds", {{"task", "a\"b"}}, h);
  CHECK(w.text() ==
        "# HELP x_seconds Test.\n# TYPE x_seconds histogram\n"
        "x_seconds_bucket{task=\"a\\\"b\",le=\"0.1\"} 2\n"
        "x_seconds_bucket{task=\"a\\\"b\",le=\"1\"} 3\n"
        "x_seconds_bucket{task=\"a\\\"b\",le=\"+Inf\"} 4\n"
        "x_seconds_sum{task=\"a\\\"b\"} 5.65\n"
        "x_seconds_count{task=\"a\\\"b\"} 4\n");
}

TEST_CASE(
    "the latency histogram puts 200 µs between 100 µs and 250 µs, and an infinite value only in "
    "+Inf") {
  auto h = metrics::Histogram::Latency();
  h.Observe(0.0002);
  h.Observe(std::numeric_limits<double>::infinity());
  CHECK(h.counts()[0] == 0);
  CHECK(h.counts()[1] == 1);
  CHECK(h.counts().back() == 1);
  CHECK(h.sum() == doctest::Approx(0.0002));  // the infinite value is counted, not summed
}

TEST_CASE("JSON strings escape quotes, control characters and '<'") {
  CHECK(http::JsonString("a\"b\\c\n\x01</script>") == "\"a\\\"b\\\\c\\n\\u0001\\u003c/script>\"");
  CHECK(http::JsonNumber(std::nan("")) == "null");
  CHECK(http::JsonNumber(1796120296.65) == "1796120296.65");
}

TEST_CASE("host:port parsing accepts IPv4, bracketed IPv6 and port 0, and rejects the rest") {
  std::string host;
  int port = -1;
  CHECK(http::ParseHostPort("127.0.0.1:8080", host, port).ok());
  CHECK((host == "127.0.0.1" && port == 8080));
  CHECK(http::ParseHostPort("[::1]:0", host, port).ok());
  CHECK((host == "::1" && port == 0));
  CHECK_FALSE(http::ParseHostPort("127.0.0.1", host, port).ok());
  CHECK_FALSE(http::ParseHostPort("127.0.0.1:70000", host, port).ok());
  CHECK_FALSE(http::ParseHostPort("127.0.0.1:8x", host, port).ok());
  CHECK(http::IsLoopback("127.0.0.1"));
  CHECK(http::IsLoopback("::1"));
  CHECK_FALSE(http::IsLoopback("0.0.0.0"));
  CHECK_FALSE(http::IsLoopback("10.0.0.1"));
}

namespace {
struct LoopFixture {
  coordinator::Scheduler scheduler{coordinator::SchedulerConfig{}, tasks::Registry::BuiltIn()};
  net::WireStats peers, clients;
  int wakes = 0;
  coordinator::LoopMetrics metrics{[this] { ++wakes; }};
  TimePoint t = SteadyClock::Instance().Now();
  void Turns(int n) {
    for (int i = 0; i < n; ++i) {
      t += std::chrono::milliseconds(100);
      metrics.AfterTurn(scheduler, peers, clients, 0, t);
    }
  }
};
}  // namespace

TEST_CASE("the loop publishes no snapshot while nobody reads, and one as soon as a reader asks") {
  LoopFixture f;
  f.Turns(50);  // five seconds of turns, nobody reading
  CHECK(f.metrics.Latest(Duration::zero()) ==
        nullptr);  // nothing was built; this read asks for one
  CHECK(f.wakes == 1);
  f.Turns(1);
  auto snap = f.metrics.Latest(Duration::zero());
  REQUIRE(snap != nullptr);
  CHECK(snap->version == 1);
  // Nothing changed: a reader within 250 ms gets the same snapshot, the loop builds no other.
  f.Turns(1);
  CHECK(f.metrics.Latest(Duration::zero())->version == 1);
}

TEST_CASE(
    "a snapshot carries jobs, histograms and history into the exposition and the dashboard JSON") {
  LoopFixture f;
  proto::JobSpecWire spec;
  spec.task = "spin";
  spec.name = "quote\" and </script>";
  spec.units = 3;
  spec.params["ms"] = "0";
  auto id = f.scheduler.Submit(spec, WallSeconds());
  REQUIRE(id.ok());
  f.metrics.ObserveTurn(0.0002);
  f.metrics.ObserveCommit(0.003);
  proto::ResultMsg r;
  r.job_id = *id;
  r.wall_seconds = 0.02;
  f.metrics.ObserveResult(f.scheduler, r);
  f.metrics.MarkReady(true);
  (void)f.metrics.Latest(Duration::zero());
  f.Turns(15);  // more than a second: history samples
  auto snap = f.metrics.Latest(Duration::zero());
  REQUIRE(snap != nullptr);
  CHECK(snap->ready);
  CHECK(snap->jobs.size() == 1);
  CHECK(snap->units_queued == 3);
  CHECK(snap->history.size() >= 1);
  const std::string text = coordinator::RenderMetrics(*snap);
  CHECK(text.find("sparecycles_jobs{state=\"queued\"} 1\n") != std::string::npos);
  CHECK(text.find("sparecycles_units_queued 3\n") != std::string::npos);
  CHECK(text.find("sparecycles_loop_turn_seconds_bucket{le=\"0.00025\"} 1\n") != std::string::npos);
  CHECK(text.find("sparecycles_store_commit_seconds_count 1\n") != std::string::npos);
  CHECK(text.find("sparecycles_unit_run_seconds_bucket{task=\"spin\",le=\"0.1\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("sparecycles_job_units{job_id=\"1\",task=\"spin\",state=\"total\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE sparecycles_results_total counter\n") != std::string::npos);
  const std::string json = coordinator::RenderStateJson(*snap);
  CHECK(json.find("\"name\":\"quote\\\" and \\u003c/script>\"") != std::string::npos);
  CHECK(json.find("\"history\":{\"t\":[") != std::string::npos);
}

TEST_CASE("the dashboard and Chart.js are embedded in the binary") {
  CHECK(coordinator::assets::DashboardHtml().find("<canvas id=\"chart\">") !=
        std::string_view::npos);
#ifdef SPARECYCLES_EXPECT_CHARTJS
  CHECK(coordinator::assets::ChartJs().size() > 10000);
#endif
  CHECK(worker::assets::VolunteerHtml().find("id=\"toggle\"") != std::string_view::npos);
}

TEST_CASE(
    "the volunteer page applies valid preferences and rejects bad ones without changing anything") {
  worker::Preferences p;
  CHECK(worker::VolunteerPage::ApplyFields({{"cores", "50%"},
                                            {"pause-above", "off"},
                                            {"idle-time", "5s"},
                                            {"throttle", "off"},
                                            {"hours", "daily 22:00-06:00"}},
                                           p)
            .ok());
  CHECK(p.max_cores == 0);
  CHECK(p.max_cores_percent == 50);
  CHECK(p.pause_above_percent == 100);
  CHECK(p.idle_time == std::chrono::seconds(5));
  CHECK_FALSE(p.throttle);
  CHECK_FALSE(p.hours.always());
  const worker::Preferences before = p;
  CHECK_FALSE(
      worker::VolunteerPage::ApplyFields({{"cores", "2"}, {"pause-above", "150%"}}, p).ok());
  CHECK(p.max_cores == before.max_cores);  // the valid field was not applied either
  CHECK_FALSE(worker::VolunteerPage::ApplyFields({{"coordinator", "tcp://evil:1"}}, p).ok());
  CHECK_FALSE(worker::VolunteerPage::ApplyFields({{"hours", "all\ncoordinator = x"}}, p).ok());
}

TEST_CASE(
    "saving preferences rewrites their lines, keeps everything else and appends what was missing") {
  const std::string before =
      "# my worker\ncoordinator = tcp://c:7737\ncores=4\n  pause_above = 30%\n";
  const std::string after = worker::VolunteerPage::UpdateConfigText(
      before, {{"cores", "2"}, {"pause-above", "off"}, {"hours", "daily all"}});
  CHECK(after ==
        "# my worker\ncoordinator = tcp://c:7737\ncores = 2\npause-above = off\n# changed on the "
        "volunteer page\nhours = daily all\n");
}

TEST_CASE("an owner's pause overrides the policy at once and is counted once") {
  worker::OwnerControl c;
  CHECK_FALSE(c.TakeChanged());
  c.SetPaused(true);
  CHECK(c.TakeChanged());
  CHECK_FALSE(c.TakeChanged());
  worker::Decision d{4, proto::PeerState::kRunning, ""};
  c.Apply(d);
  CHECK(d.slots == 0);
  CHECK(d.state == proto::PeerState::kPaused);
  worker::StatusSnapshot s;
  s.state = "running";
  s.updated_at = 100;
  c.Publish(s);
  s.state = "paused";
  s.updated_at = 101;
  c.Publish(s);
  s.updated_at = 103;
  c.Publish(s);
  s.state = "running";
  s.updated_at = 104;
  c.Publish(s);
  auto v = c.Latest();
  REQUIRE(v.has_value());
  CHECK(v->pauses == 1);
  CHECK(v->paused_seconds == doctest::Approx(3));
}

TEST_CASE("the CLI's rate meter measures over its window and estimates the time left") {
  cli::RateMeter m(10);
  CHECK(m.rate() == 0);
  CHECK(m.Eta(100) < 0);
  m.Add(0, 0);
  m.Add(1, 10);
  m.Add(2, 20);
  CHECK(m.rate() == doctest::Approx(10));
  CHECK(m.Eta(100) == doctest::Approx(8));
  for (int t = 3; t <= 30; ++t)
    m.Add(t, 20 + static_cast<std::uint64_t>(t - 2) * 50);  // speeds up to 50/s
  CHECK(m.rate() == doctest::Approx(50));                   // the old slow samples left the window
  CHECK(cli::FormatDuration(-1) == "?");
  CHECK(cli::FormatDuration(12.2) == "13 s");
  CHECK(cli::FormatDuration(600) == "10.0 min");
  CHECK(cli::FormatDuration(7200) == "2.0 h");
}
