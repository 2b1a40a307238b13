#include "credibility.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace sparecycles::coordinator {
namespace {

double FromChecks(const CredibilityConfig& config, std::uint32_t checks) {
  const double f = config.saboteur_fraction;
  if (checks == 0) return 1.0 - f;
  return 1.0 - f / (static_cast<double>(checks) * std::exp(1.0));
}

// An address parsed for the host rules: IPv4 (also from "::ffff:a.b.c.d") or IPv6.
struct Address {
  bool v4 = false;
  std::array<unsigned char, 16> bytes{};  // v4: the first 4
};

bool ParseAddress(std::string_view text, Address& out) {
  if (text.empty() || text.size() > 64) return false;
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), out.bytes.data()) == 1) {
    out.v4 = true;
    return true;
  }
  std::array<unsigned char, 16> b{};
  if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1) return false;
  static constexpr std::array<unsigned char, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped.begin(), kMapped.end(), b.begin())) {
    out.v4 = true;
    std::copy(b.begin() + 12, b.end(), out.bytes.begin());
    return true;
  }
  out.v4 = false;
  out.bytes = b;
  return true;
}

bool IsLoopback(const Address& a) {
  if (a.v4) return a.bytes[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (a.bytes[static_cast<std::size_t>(i)] != 0) return false;
  return a.bytes[15] == 1;
}

std::string Format(const Address& a, bool subnet) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.v4) {
    std::array<unsigned char, 4> b{a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]};
    if (subnet) b[3] = 0;
    inet_ntop(AF_INET, b.data(), buf, sizeof buf);
    return std::string(buf) + (subnet ? "/24" : "");
  }
  std::array<unsigned char, 16> b = a.bytes;
  if (subnet) std::fill(b.begin() + 8, b.end(), 0);
  inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
  return std::string(buf) + (subnet ? "/64" : "");
}

std::string Key(const HostRules& rules, std::string_view host, std::string_view peer_id,
                bool subnet) {
  if (host.empty()) return "peer:" + std::string(peer_id);
  Address a;
  if (!ParseAddress(host, a)) return "host:" + std::string(host);
  if (IsLoopback(a) && !rules.loopback_is_one_host) return "peer:" + std::string(peer_id);
  return (subnet ? "net:" : "ip:") + Format(a, subnet);
}

}  // namespace

double PeerCredibility(const CredibilityConfig& config, const PeerRecord* record) {
  if (record == nullptr) return 1.0 - config.saboteur_fraction;
  if (record->blacklisted) return 0.0;
  return FromChecks(config, record->checks_passed);
}

double CappedCredibility(const CredibilityConfig& config, const PeerRecord* record,
                         const HostRecord* host) {
  if (host == nullptr) return PeerCredibility(config, record);
  if (host->blacklisted || (record != nullptr && record->blacklisted)) return 0.0;
  const std::uint32_t own = record == nullptr ? 0 : record->checks_passed;
  return FromChecks(config, std::min(own, host->checks_passed));
}

std::string HostKey(const HostRules& rules, std::string_view host, std::string_view peer_id) {
  if (rules.distinct == DistinctBy::kOff) return "peer:" + std::string(peer_id);
  return Key(rules, host, peer_id, rules.distinct == DistinctBy::kSubnets);
}

std::string LinkKey(const HostRules& rules, std::string_view host, std::string_view peer_id) {
  if (rules.distinct == DistinctBy::kOff) return "peer:" + std::string(peer_id);
  return Key(rules, host, peer_id, /*subnet=*/true);
}

double SpotCheckRate(const CredibilityConfig& config, const PeerRecord* record) {
  return (record == nullptr || record->checks_passed < kNewPeerChecks) ? config.spot_check_rate_new
                                                                       : config.spot_check_rate;
}

bool AgreementIsCheck(const CredibilityConfig& config, double others_error) {
  return others_error <= config.agreement_check;
}

bool RecordOffence(const CredibilityConfig& config, PeerRecord& record) {
  ++record.offences;
  record.checks_passed = 0;  // its credibility starts again from nothing
  if (config.blacklist_after == 0 || record.offences < config.blacklist_after || record.blacklisted)
    return false;
  record.blacklisted = true;
  return true;
}

bool RecordHostOffence(const HostRules& rules, HostRecord& host) {
  ++host.offences;
  host.checks_passed = 0;  // every key of the host starts again from nothing
  if (rules.host_blacklist_after == 0 || host.offences < rules.host_blacklist_after ||
      host.blacklisted)
    return false;
  host.blacklisted = true;
  return true;
}

}  // namespace sparecycles::coordinator
