#include "credibility.hpp"

#include <cmath>

namespace sparecycles::coordinator {

double PeerCredibility(const CredibilityConfig& config, const PeerRecord* record) {
  const double f = config.saboteur_fraction;
  if (record == nullptr) return 1.0 - f;
  if (record->blacklisted) return 0.0;
  if (record->checks_passed == 0) return 1.0 - f;
  return 1.0 - f / (static_cast<double>(record->checks_passed) * std::exp(1.0));
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

}  // namespace sparecycles::coordinator
