// The credibility rules of docs/cross-checking.md as pure functions over a peer's record: the
// bound 1 - f/(k e), the spot-check rate, what an offence does and when it blacklists. The
// scheduler owns the records and calls these; no state here, so any thread may call them.
#pragma once

#include <cstdint>

#include "sparecycles/coordinator/scheduler.hpp"

namespace sparecycles::coordinator {

/// Passed spot-checks below which a peer is "new" and gets spot_check_rate_new.
inline constexpr std::uint32_t kNewPeerChecks = 5;

/// A peer's credibility (Sarmenta's bound with blacklisting): 1 - f for a peer with no record or
/// no passed spot-check, 1 - f/(k e) after k passed checks, 0 once blacklisted.
double PeerCredibility(const CredibilityConfig& config, const PeerRecord* record);

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

}  // namespace sparecycles::coordinator
