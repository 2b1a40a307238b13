// The donation policy (owner preferences -> slots and state) with injected readings and an
// injected clock; the one parser of owner preferences (Preferences::Set); the capacity probe
// against a fake /proc and /sys tree; the status file.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sparecycles/worker/capacity.hpp"
#include "sparecycles/worker/policy.hpp"
#include "sparecycles/worker/status.hpp"

using namespace sparecycles;
using namespace sparecycles::worker;
using namespace std::chrono_literals;
using proto::PeerState;

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

Readings Idle(unsigned cores = 4) {
  Readings r;
  r.cores = cores;
  r.other_cpu = 0.02;
  r.memory_total = 16 * kGiB;
  r.memory_available = 12 * kGiB;
  r.own_memory = 100 << 20;
  return r;
}
Readings Busy(double other, unsigned cores = 4) {
  Readings r = Idle(cores);
  r.other_cpu = other;
  return r;
}
const LocalTime kMondayNoon{0, 12 * 60};

Preferences Prefs() {
  Preferences p;
  p.idle_time = 30s;
  return p;
}

}  // namespace

TEST_CASE("an idle machine gets every allowed core, and max cores caps it as a count or a share") {
  FakeClock clock;
  Policy all(Prefs(), Prefs().MaxSlots(4));
  Decision d = all.Evaluate(Idle(), clock.Now(), kMondayNoon);
  CHECK(d.slots == 4);
  CHECK(d.state == PeerState::kRunning);
  CHECK(d.reason.empty());

  Preferences half = Prefs();
  REQUIRE(half.SetMaxCores("50%").ok());
  CHECK(half.MaxSlots(4) == 2);
  CHECK(half.MaxSlots(1) == 1);  // never below one core
  REQUIRE(half.SetMaxCores("3").ok());
  CHECK(half.MaxSlots(16) == 3);
  CHECK_FALSE(half.SetMaxCores("150%").ok());
  CHECK_FALSE(half.SetMaxCores("lots").ok());
}

TEST_CASE(
    "other load above the threshold pauses at once; the worker resumes only after the load stayed "
    "below the lower threshold for the idle time") {
  FakeClock clock;
  Policy p(Prefs(), 4);  // pause above 50 %, resume below 25 %, idle time 30 s
  CHECK(p.Evaluate(Busy(0.45), clock.Now(), kMondayNoon).state != PeerState::kPaused);
  Decision d = p.Evaluate(Busy(0.9), clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.slots == 0);
  CHECK(d.reason.find("90%") != std::string::npos);

  // Between the thresholds: still paused (hysteresis), however long.
  clock.Advance(120s);
  CHECK(p.Evaluate(Busy(0.40), clock.Now(), kMondayNoon).state == PeerState::kPaused);
  // Below the lower threshold, but not yet for the idle time.
  CHECK(p.Evaluate(Busy(0.10), clock.Now(), kMondayNoon).state == PeerState::kPaused);
  clock.Advance(20s);
  d = p.Evaluate(Busy(0.10), clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.reason.find("waiting") != std::string::npos);
  // A burst of load restarts the idle clock.
  clock.Advance(5s);
  CHECK(p.Evaluate(Busy(0.30), clock.Now(), kMondayNoon).state == PeerState::kPaused);
  clock.Advance(1s);
  CHECK(p.Evaluate(Busy(0.05), clock.Now(), kMondayNoon).state == PeerState::kPaused);
  clock.Advance(29s);
  CHECK(p.Evaluate(Busy(0.05), clock.Now(), kMondayNoon).state == PeerState::kPaused);
  clock.Advance(1s);
  d = p.Evaluate(Busy(0.05), clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kRunning);
  CHECK(d.slots == 4);
}

TEST_CASE("'off' (100 %) never pauses for load, and throttling off keeps every core") {
  FakeClock clock;
  Preferences prefs = Prefs();
  prefs.pause_above_percent = 100;
  prefs.throttle = false;
  Policy p(prefs, 4);
  const Decision d = p.Evaluate(Busy(1.0), clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kRunning);
  CHECK(d.slots == 4);
}

TEST_CASE(
    "throttling leaves the cores other programs use at once and takes them back only after the "
    "idle time") {
  FakeClock clock;
  Policy p(Prefs(), 4);
  CHECK(p.Evaluate(Idle(), clock.Now(), kMondayNoon).slots == 4);
  // 1.2 of 4 cores busy elsewhere (30 %, below the pause threshold): one core is left to them.
  Decision d = p.Evaluate(Busy(0.30), clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kThrottled);
  CHECK(d.slots == 3);
  CHECK(d.reason.find("1.2 of 4 cores") != std::string::npos);
  // 1.8 cores busy: two left to them, immediately.
  clock.Advance(1s);
  CHECK(p.Evaluate(Busy(0.45), clock.Now(), kMondayNoon).slots == 2);
  // The load drops: the cores come back only after 30 s of the lower figure.
  clock.Advance(1s);
  CHECK(p.Evaluate(Idle(), clock.Now(), kMondayNoon).slots == 2);
  clock.Advance(29s);
  CHECK(p.Evaluate(Idle(), clock.Now(), kMondayNoon).slots == 2);
  clock.Advance(1s);
  d = p.Evaluate(Idle(), clock.Now(), kMondayNoon);
  CHECK(d.slots == 4);
  CHECK(d.state == PeerState::kRunning);
  // A share below half a core does not cost a core.
  CHECK(p.Evaluate(Busy(0.10), clock.Now(), kMondayNoon).slots == 4);
}

TEST_CASE("time windows per weekday: 'mon-fri 18:00-08:00, sat-sun all'") {
  auto w = TimeWindows::Parse("mon-fri 18:00-08:00, sat-sun all");
  REQUIRE(w.ok());
  CHECK_FALSE(w->always());
  CHECK(w->Allows({0, 7 * 60 + 59}));    // Monday 07:59
  CHECK_FALSE(w->Allows({0, 8 * 60}));   // Monday 08:00
  CHECK_FALSE(w->Allows({2, 12 * 60}));  // Wednesday noon
  CHECK(w->Allows({4, 18 * 60}));        // Friday 18:00
  CHECK(w->Allows({4, 23 * 60 + 59}));
  CHECK(w->Allows({5, 12 * 60}));  // Saturday noon
  CHECK(w->Allows({6, 0}));        // Sunday midnight

  auto lists = TimeWindows::Parse("mon,wed 09:00-12:00 14:00-17:00; sun none");
  REQUIRE(lists.ok());
  CHECK(lists->Allows({2, 10 * 60}));
  CHECK(lists->Allows({0, 15 * 60}));
  CHECK_FALSE(lists->Allows({0, 13 * 60}));
  CHECK_FALSE(lists->Allows({1, 10 * 60}));  // Tuesday not named
  CHECK_FALSE(lists->Allows({6, 10 * 60}));

  auto daily = TimeWindows::Parse("22:00-06:00");  // a time alone: every day
  REQUIRE(daily.ok());
  CHECK(daily->Allows({3, 23 * 60}));
  CHECK_FALSE(daily->Allows({3, 12 * 60}));
  CHECK(TimeWindows::Parse("")->always());

  CHECK_FALSE(TimeWindows::Parse("mon-fri").ok());  // days without a time
  CHECK_FALSE(TimeWindows::Parse("funday all").ok());
  CHECK_FALSE(TimeWindows::Parse("mon 25:00-26:00").ok());

  FakeClock clock;
  Preferences prefs = Prefs();
  prefs.hours = *w;
  Policy p(prefs, 4);
  Decision d = p.Evaluate(Idle(), clock.Now(), {2, 12 * 60});
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.reason.find("allowed hours") != std::string::npos);
  CHECK(p.Evaluate(Idle(), clock.Now(), {2, 20 * 60}).state ==
        PeerState::kRunning);  // no idle wait needed
}

TEST_CASE("running on battery pauses when the owner says so, not otherwise") {
  FakeClock clock;
  Readings r = Idle();
  r.on_battery = true;
  Policy pause(Prefs(), 4);
  Decision d = pause.Evaluate(r, clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.reason.find("battery") != std::string::npos);
  r.on_battery = false;
  CHECK(pause.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kRunning);

  Preferences run = Prefs();
  run.pause_on_battery = false;
  Policy p(run, 4);
  r.on_battery = true;
  CHECK(p.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kRunning);
}

TEST_CASE("the memory cap and low free memory pause the worker, with hysteresis") {
  FakeClock clock;
  Preferences prefs = Prefs();
  REQUIRE(prefs.SetMaxMemory("1G").ok());
  CHECK(prefs.max_memory_bytes == kGiB);
  Policy p(prefs, 4);
  Readings r = Idle();
  r.own_memory = kGiB + 1;
  Decision d = p.Evaluate(r, clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.reason.find("memory cap") != std::string::npos);
  r.own_memory = kGiB - (50ull << 20);  // under the cap but within 10 % of it: still paused
  CHECK(p.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kPaused);
  r.own_memory = kGiB / 2;
  CHECK(p.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kRunning);

  // 5 % of 16 GiB must stay available (819 MiB); resume above 1.5 times that.
  r = Idle();
  r.memory_available = 500ull << 20;
  d = p.Evaluate(r, clock.Now(), kMondayNoon);
  CHECK(d.state == PeerState::kPaused);
  CHECK(d.reason.find("low memory") != std::string::npos);
  r.memory_available = 1000ull << 20;
  CHECK(p.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kPaused);
  r.memory_available = 2 * kGiB;
  CHECK(p.Evaluate(r, clock.Now(), kMondayNoon).state == PeerState::kRunning);

  Preferences share = Prefs();
  REQUIRE(share.SetMaxMemory("25%").ok());
  CHECK(Policy(share, 1).MemoryCap(16 * kGiB) == 4 * kGiB);
  CHECK_FALSE(share.SetMaxMemory("lots").ok());
  CHECK(ParsePriority("idle").ok());
  CHECK_FALSE(ParsePriority("realtime").ok());
}

TEST_CASE("Preferences::Set parses every owner preference by its option name") {
  Preferences p;
  CHECK(p.Set("cores", "3").ok());
  CHECK(p.max_cores == 3);
  CHECK(p.Set("cores", "50%").ok());
  CHECK(p.max_cores == 0);
  CHECK(p.max_cores_percent == 50);
  CHECK(p.Set("pause-above", "70%").ok());
  CHECK(p.pause_above_percent == 70);
  for (const char* off : {"off", "never", "none"}) {
    CHECK(p.Set("pause-above", off).ok());
    CHECK(p.pause_above_percent == 100);
  }
  CHECK(p.Set("resume-below", "20").ok());
  CHECK(p.resume_below_percent == 20);
  CHECK(p.Set("min-free-memory", "7.5%").ok());
  CHECK(p.min_free_memory_percent == 7.5);
  CHECK(p.Set("idle-time", "2m").ok());
  CHECK(p.idle_time == 2min);
  CHECK(p.Set("throttle", "off").ok());
  CHECK_FALSE(p.throttle);
  CHECK(p.Set("throttle", "yes").ok());
  CHECK(p.throttle);
  CHECK(p.Set("on-battery", "run").ok());
  CHECK_FALSE(p.pause_on_battery);
  CHECK(p.Set("on-battery", "pause").ok());
  CHECK(p.pause_on_battery);
  CHECK(p.Set("hours", "daily 22:00-06:00").ok());
  CHECK(p.hours.text() == "daily 22:00-06:00");
  CHECK(p.Set("max-memory", "512M").ok());
  CHECK(p.max_memory_bytes == 512ull << 20);
  // Every name the page and the options know is one Set knows.
  CHECK(Preferences::OwnerNames().size() == 9);
  for (const auto& name : Preferences::OwnerNames()) {
    INFO(name);
    Status s = Preferences().Set(name, "bad!");
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message().rfind(name + ": ", 0) == 0);
  }
}

TEST_CASE("Preferences::Set: errors name the preference and leave it unchanged; Reconcile") {
  Preferences p;
  const Preferences before = p;
  Status s = p.Set("pause-above", "150%");
  CHECK(s.message() == "pause-above: expected a percentage 0..100% (got '150%')");
  CHECK(p.Set("resume-below", "off").message() ==
        "resume-below: expected a percentage 0..100% (got 'off')");
  CHECK(p.Set("throttle", "maybe").message() == "throttle: expected on or off");
  CHECK(p.Set("on-battery", "on-ish").message() == "on-battery: expected pause or run");
  CHECK(p.Set("idle-time", "-1s").message() ==
        "idle-time: '-1s' is not a duration (e.g. 500ms, 30s, 2m, 12h, 7d)");
  CHECK(p.Set("coordinator", "tcp://x:1").message() == "unknown preference 'coordinator'");
  CHECK(p.pause_above_percent == before.pause_above_percent);
  CHECK(p.resume_below_percent == before.resume_below_percent);
  CHECK(p.throttle == before.throttle);
  CHECK(p.pause_on_battery == before.pause_on_battery);
  CHECK(p.idle_time == before.idle_time);
  // resume-below above pause-above is brought down to it.
  REQUIRE(p.Set("pause-above", "30%").ok());
  REQUIRE(p.Set("resume-below", "40%").ok());
  p.Reconcile();
  CHECK(p.resume_below_percent == 30);
}

TEST_CASE("the system probe reads other programs' CPU, memory and battery from /proc and /sys") {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/sparecycles-probe-XXXXXX";
  const fs::path root = mkdtemp(tmpl);
  fs::create_directories(root / "proc/self");
  fs::create_directories(root / "sys/class/power_supply/BAT0");
  fs::create_directories(root / "sys/class/power_supply/AC");
  auto write = [&](const std::string& rel, const std::string& text) {
    std::ofstream(root / rel) << text;
  };
  // 2 CPUs. Counters: user nice system idle iowait irq softirq steal.
  write("proc/stat",
        "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 "
        "0\nintr 1\n");
  // A command name with spaces and a parenthesis; utime = 40, stime = 10 (fields 14, 15).
  write("proc/self/stat",
        "42 (my (odd) worker) S 1 42 42 0 -1 4194560 100 0 0 0 40 10 0 0 20 0 3 0\n");
  write("proc/meminfo",
        "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n");
  write("proc/self/statm", "5000 2560 100 1 0 300 0\n");
  write("sys/class/power_supply/BAT0/type", "Battery\n");
  write("sys/class/power_supply/BAT0/status", "Discharging\n");
  write("sys/class/power_supply/AC/type", "Mains\n");
  write("sys/class/power_supply/AC/online", "0\n");

  SystemProbe probe(root.string());
  // 1000 more ticks in total: 600 idle, 400 busy, of which 100 are ours -> others 30 %.
  write("proc/stat",
        "cpu  350 0 250 1400 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\n");
  write("proc/self/stat",
        "42 (my (odd) worker) S 1 42 42 0 -1 4194560 100 0 0 0 120 30 0 0 20 0 3 0\n");
  Readings r = probe.Sample();
  CHECK(r.cores == 2);
  CHECK(r.other_cpu == doctest::Approx(0.30));
  CHECK(r.memory_total == 16384000ull * 1024);
  CHECK(r.memory_available == 8192000ull * 1024);
  CHECK(r.own_memory == 2560ull * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)));
  CHECK(r.on_battery);

  write("sys/class/power_supply/AC/online", "1\n");
  CHECK_FALSE(probe.Sample().on_battery);
  fs::remove_all(root);

  CHECK_FALSE(ParseProcStat("intr 5\n").ok());
  CHECK_FALSE(ParseProcessCpuTicks("no parenthesis here").ok());
  CHECK_FALSE(ParseMeminfo("MemFree: 5 kB\n").ok());
}

TEST_CASE("the status file round-trips and renders state, cores and progress bars") {
  StatusSnapshot s;
  s.peer_id = "peer-1";
  s.coordinator = "tcp://127.0.0.1:1";
  s.pid = 77;
  s.connected = true;
  s.machine_cores = 8;
  s.max_slots = 4;
  s.slots = 2;
  s.state = "throttled";
  s.reason = "other programs use 2.0 of 8 cores";
  s.units.push_back(UnitStatus{3, 5, "primes", 0.5, 0.25, false});
  s.units_done = 9;
  s.cpu_seconds = 12.5;
  s.updated_at = 1000;
  auto back = ParseStatusFile(FormatStatusFile(s));
  REQUIRE(back.ok());
  CHECK(back->reason == s.reason);
  REQUIRE(back->units.size() == 1);
  CHECK(back->units[0].task == "primes");
  CHECK(back->units[0].resumed_from == doctest::Approx(0.25));
  const std::string text = RenderStatus(*back, 1001, true, 10.0);
  CHECK(text.find("2 of 8 donated") != std::string::npos);
  CHECK(text.find("throttled - other programs") != std::string::npos);
  CHECK(text.find("[###############...............] 50%") != std::string::npos);
  CHECK(text.find("resumed at 25%") != std::string::npos);
  CHECK(text.find("12.5 CPU-seconds") != std::string::npos);
  CHECK(text.find("10.0 CPU-seconds (from the coordinator)") != std::string::npos);
  CHECK_FALSE(ParseStatusFile("garbage").ok());
}
