#include "sparecycles/worker/status.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace sparecycles::worker {
namespace {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string Bar(double fraction, int width) {
  const int full = static_cast<int>(std::lround(fraction * width));
  std::string out = "[";
  for (int i = 0; i < width; ++i) out += i < full ? '#' : '.';
  return out + "]";
}

}  // namespace

std::string FormatStatusFile(const StatusSnapshot& s) {
  std::ostringstream o;
  o << "version=1\n"
    << "peer_id=" << OneLine(s.peer_id) << "\n"
    << "coordinator=" << OneLine(s.coordinator) << "\n"
    << "pid=" << s.pid << "\n"
    << "connected=" << (s.connected ? 1 : 0) << "\n"
    << "machine_cores=" << s.machine_cores << "\n"
    << "max_slots=" << s.max_slots << "\n"
    << "slots=" << s.slots << "\n"
    << "state=" << s.state << "\n"
    << "reason=" << OneLine(s.reason) << "\n"
    << "other_cpu_percent=" << Fixed(s.other_cpu_percent, 1) << "\n"
    << "memory_available=" << s.memory_available << "\n"
    << "prefetched=" << s.prefetched << "\n"
    << "units_done=" << s.units_done << "\n"
    << "units_failed=" << s.units_failed << "\n"
    << "units_returned=" << s.units_returned << "\n"
    << "units_resumed=" << s.units_resumed << "\n"
    << "cpu_seconds=" << Fixed(s.cpu_seconds, 3) << "\n"
    << "resumed_work=" << Fixed(s.resumed_work, 4) << "\n"
    << "updated_at=" << Fixed(s.updated_at, 3) << "\n";
  for (const auto& u : s.units)
    o << "unit=" << u.job << " " << u.unit << " " << Fixed(u.progress, 4) << " "
      << Fixed(u.resumed_from, 4) << " " << (u.waiting ? 1 : 0) << " " << OneLine(u.task) << "\n";
  for (const auto& [id, why] : s.refused_packages)
    o << "refused=" << OneLine(id) << " " << OneLine(why) << "\n";
  if (!s.packages_off.empty()) o << "packages_off=" << OneLine(s.packages_off) << "\n";
  return o.str();
}

Result<StatusSnapshot> ParseStatusFile(std::string_view text) {
  StatusSnapshot s;
  std::istringstream in{std::string(text)};
  bool versioned = false;
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    auto u64 = [&] { return std::strtoull(v.c_str(), nullptr, 10); };
    auto dbl = [&] { return std::strtod(v.c_str(), nullptr); };
    if (k == "version")
      versioned = v == "1";
    else if (k == "peer_id")
      s.peer_id = v;
    else if (k == "coordinator")
      s.coordinator = v;
    else if (k == "pid")
      s.pid = static_cast<long>(u64());
    else if (k == "connected")
      s.connected = v == "1";
    else if (k == "machine_cores")
      s.machine_cores = static_cast<unsigned>(u64());
    else if (k == "max_slots")
      s.max_slots = static_cast<unsigned>(u64());
    else if (k == "slots")
      s.slots = static_cast<unsigned>(u64());
    else if (k == "state")
      s.state = v;
    else if (k == "reason")
      s.reason = v;
    else if (k == "other_cpu_percent")
      s.other_cpu_percent = dbl();
    else if (k == "memory_available")
      s.memory_available = u64();
    else if (k == "prefetched")
      s.prefetched = u64();
    else if (k == "units_done")
      s.units_done = u64();
    else if (k == "units_failed")
      s.units_failed = u64();
    else if (k == "units_returned")
      s.units_returned = u64();
    else if (k == "units_resumed")
      s.units_resumed = u64();
    else if (k == "cpu_seconds")
      s.cpu_seconds = dbl();
    else if (k == "resumed_work")
      s.resumed_work = dbl();
    else if (k == "updated_at")
      s.updated_at = dbl();
    else if (k == "packages_off")
      s.packages_off = v;
    else if (k == "refused") {
      const auto space = v.find(' ');
      if (space != std::string::npos && s.refused_packages.size() < 1000)
        s.refused_packages.emplace_back(v.substr(0, space), v.substr(space + 1));
    } else if (k == "unit") {
      UnitStatus u;
      std::istringstream f(v);
      int waiting = 0;
      if (f >> u.job >> u.unit >> u.progress >> u.resumed_from >> waiting) {
        u.waiting = waiting != 0;
        std::getline(f >> std::ws, u.task);
        s.units.push_back(std::move(u));
      }
    }
  }
  if (!versioned) return DataLoss("not a worker status file (no 'version=1' line)");
  return s;
}

std::string RenderStatus(const StatusSnapshot& s, double now, bool alive,
                         double validated_cpu_seconds) {
  std::ostringstream o;
  o << "peer " << s.peer_id << " -> " << s.coordinator;
  if (!alive)
    o << "  (NOT RUNNING: pid " << s.pid << " is gone)";
  else
    o << (s.connected ? "  (connected)" : "  (connecting)");
  o << "\n";
  o << "state:       " << s.state;
  if (!s.reason.empty()) o << " - " << s.reason;
  o << "\n";
  o << "cores:       " << s.slots << " of " << s.machine_cores << " donated now (at most "
    << s.max_slots << ")\n";
  o << "other load:  " << Fixed(s.other_cpu_percent, 0)
    << "% of the machine;  memory available to units: " << (s.memory_available >> 20) << " MiB\n";
  o << "units:       " << s.units.size() << " running, " << s.prefetched << " prefetched\n";
  for (const auto& u : s.units) {
    o << "  job " << u.job << " unit " << u.unit << " (" << u.task << ") " << Bar(u.progress, 30)
      << " " << Fixed(u.progress * 100, 0) << "%";
    if (u.resumed_from >= 0) o << "  resumed at " << Fixed(u.resumed_from * 100, 0) << "%";
    if (u.waiting) o << "  (waiting)";
    o << "\n";
  }
  o << "contributed: " << Fixed(s.cpu_seconds, 1) << " CPU-seconds, " << s.units_done
    << " units done, " << s.units_failed << " failed, " << s.units_returned << " handed back, "
    << s.units_resumed << " resumed from checkpoints (" << Fixed(s.resumed_work, 2)
    << " units of work not redone)\n";
  if (!s.packages_off.empty()) o << "packages:    REFUSED - " << s.packages_off << "\n";
  for (const auto& [id, why] : s.refused_packages)
    o << "refused:     package " << id.substr(0, 16) << ": " << why << "\n";
  o << "validated:   ";
  if (validated_cpu_seconds >= 0)
    o << Fixed(validated_cpu_seconds, 1) << " CPU-seconds (from the coordinator)\n";
  else
    o << "known to the coordinator (sparecycles peers, or status --clients ENDPOINT)\n";
  o << "updated:     " << Fixed(now - s.updated_at, 1) << " s ago\n";
  return o.str();
}

}  // namespace sparecycles::worker
