// libFuzzer harness: the key files a coordinator, worker or client reads (core/src/curve_keys.cpp)
// and the role column of a client-key list (coordinator/src/access.cpp). The input is three
// length-prefixed pieces (fuzz::Pieces): a secret key file, a public key file, a key list.
#include <sys/stat.h>

#include "access.hpp"
#include "fuzz_support.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/hash.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  static const bool crypto = (InitCrypto(), true);
  (void)crypto;
  const auto pieces = fuzz::Pieces({reinterpret_cast<const char*>(data), size}, 3);
  static const std::string dir = fuzz::ScratchDir();
  const std::string secret = dir + "/fuzz.key", pub = dir + "/fuzz.pub", list = dir + "/list";
  fuzz::WriteFile(secret, pieces.size() > 0 ? pieces[0] : "");
  ::chmod(secret.c_str(), 0600);  // as the loader demands; the content is what is fuzzed
  fuzz::WriteFile(pub, pieces.size() > 1 ? pieces[1] : "");
  fuzz::WriteFile(list, pieces.size() > 2 ? pieces[2] : "");

  if (auto pair = curve::LoadKeyPair(secret); pair.ok()) {
    // A pair is only accepted when its secret yields its public key.
    if (curve::ParsePublicKey(pair->public_key.Z85()).value() != pair->public_key)
      fuzz::Fail("a loaded public key does not read back from its Z85");
    fuzz::Sink(pair->SecretZ85());
  } else {
    fuzz::Sink(pair.status().message());
  }
  if (auto key = curve::LoadPublicKey(pub); key.ok()) {
    if (curve::ParsePublicKey(key->Hex()).value() != *key)
      fuzz::Fail("a public key does not read back from its hex");
    fuzz::Sink(curve::PeerIdFor(*key));
  }
  auto keys = curve::LoadKeyList(list);
  if (!keys.ok()) {
    fuzz::Sink(keys.status().message());
    return 0;
  }
  for (const auto& k : *keys) {
    if (k.source.empty()) fuzz::Fail("a listed key does not say where it came from");
    auto grant = coordinator::ParseClientGrant(k.role);
    if (!grant.ok()) {
      fuzz::Sink(grant.status().message());
      continue;
    }
    if (grant->roles == 0) fuzz::Fail("a listed key was granted no role");
    if (coordinator::RoleNames(grant->roles) == "none") fuzz::Fail("a granted role has no name");
    fuzz::Sink(grant->jobs.value_or(0) + grant->units.value_or(0) + grant->bytes.value_or(0));
  }
  return 0;
}
