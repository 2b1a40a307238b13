// The credibility rules of docs/cross-checking.md as pure functions over a peer's record: the
// bound 1 - f/(k e), the spot-check rate, what an offence does and when it blacklists, and what
// one "host" is for the Sybil bounds. The scheduler owns the records and calls these; no state
// here, so any thread may call them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sparecycles/coordinator/scheduler.hpp"

namespace sparecycles::coordinator {

/// Passed spot-checks below which a peer is "new" and gets spot_check_rate_new.
inline constexpr std::uint32_t kNewPeerChecks = 5;

/// A peer's credibility (Sarmenta's bound with blacklisting): 1 - f for a peer with no record or
/// no passed spot-check, 1 - f/(k e) after k passed checks, 0 once blacklisted.
double PeerCredibility(const CredibilityConfig& config, const PeerRecord* record);

/// The same capped by the peer's host: computed from the smaller of the peer's and the host's
/// passed checks (a new key on a known host starts from nothing; an offence by any of the host's
/// keys starts them all again), 0 when either is blacklisted. `host` may be null (no cap).
double CappedCredibility(const CredibilityConfig& config, const PeerRecord* record,
                         const HostRecord* host);

/// The host key of a peer under `rules` (docs/cross-checking.md, "Sybils"):
///  - "peer:<id>" with kOff, an empty `host`, or a loopback address unless loopback_is_one_host;
///  - "ip:<address>" with kHosts ("::ffff:a.b.c.d" is IPv4 a.b.c.d);
///  - "net:<a.b.c>.0/24" or "net:<first 64 bits>::/64" with kSubnets;
///  - "host:<label>" for a `host` that is not an IP address (a caller's label, e.g. in tests).
std::string HostKey(const HostRules& rules, std::string_view host, std::string_view peer_id);

/// The subnet key (/24, /64) of `host` whatever the rules, for "linked" hosts; HostKey otherwise.
std::string LinkKey(const HostRules& rules, std::string_view host, std::string_view peer_id);

/// The share of a peer's assignments that are spot-checks: spot_check_rate_new while it has
/// passed fewer than kNewPeerChecks checks (or has no record), spot_check_rate after.
double SpotCheckRate(const CredibilityConfig& config, const PeerRecord* record);

/// Whether agreeing with an accepted answer counts as a passed check: when the other voters alone
/// leave at most agreement_check chance that the answer is wrong.
bool AgreementIsCheck(const CredibilityConfig& config, double others_error);

/// A wrong answer caught: counts the offence, starts the credibility again from nothing and
/// blacklists the peer once it has blacklist_after offences (0 = never). Returns true when this
/// offence is the one that blacklisted it.
bool RecordOffence(const CredibilityConfig& config, PeerRecord& record);

/// The same for the offender's host: starts its budget again and blacklists it once its peers
/// have host_blacklist_after offences (0 = never). Returns true when this one blacklisted it.
bool RecordHostOffence(const HostRules& rules, HostRecord& host);

}  // namespace sparecycles::coordinator
