// libFuzzer harness: every decoder of a task package's untrusted bytes (package/). The first
// byte picks the decoder: a whole .scpkg container, a binary manifest, a manifest's text form, a
// command unit, a command unit's outputs, or a package job's unit/result list. What decodes must
// re-encode to bytes that decode to the same value, and stay within the stated limits.
#include "fuzz_support.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/package/manifest.hpp"
#include "sparecycles/package/package.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  static const bool quiet = (SetLogLevel(LogLevel::kOff), true);
  (void)quiet;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {  // the container, as a worker or a coordinator receives it
      package::DecodeOptions o;
      o.max_package_bytes = 1 << 20;
      auto p = package::Package::Decode(in, o);
      if (!p.ok()) break;
      if (in.size() > o.max_package_bytes) fuzz::Fail("a package above its size limit decoded");
      const std::string again = p->Encode();
      auto q = package::Package::Decode(again, o);
      if (!q.ok() || q->Encode() != again) fuzz::Fail("a decoded package does not round-trip");
      fuzz::Sink(p->manifest().name);
      break;
    }
    case 1: {
      auto m = package::DecodeManifest(in);
      if (!m.ok()) break;
      if (!package::ValidateManifest(*m).ok()) fuzz::Fail("a decoded manifest is not valid");
      auto again = package::DecodeManifest(package::EncodeManifest(*m));
      if (!again.ok() || package::EncodeManifest(*again) != package::EncodeManifest(*m))
        fuzz::Fail("a decoded manifest does not round-trip");
      break;
    }
    case 2: {  // `package.manifest`, a user's file
      auto t = package::ParseManifestText(in);
      if (t.ok()) fuzz::Sink(t->manifest.name);
      break;
    }
    case 3: {
      auto u = package::DecodeCommandUnit(in);
      if (!u.ok()) break;
      auto again = package::DecodeCommandUnit(package::EncodeCommandUnit(*u));
      if (!again.ok() || package::EncodeCommandUnit(*again) != package::EncodeCommandUnit(*u))
        fuzz::Fail("a decoded command unit does not round-trip");
      break;
    }
    case 4: {
      auto f = package::DecodeOutputs(in);
      if (!f.ok()) break;
      auto again = package::DecodeOutputs(package::EncodeOutputs(*f));
      if (!again.ok()) fuzz::Fail("decoded outputs do not re-decode");
      break;
    }
    default: {  // a package job's units (the coordinator splits them) or its results
      auto l = package::DecodeList(in, 1000);
      if (!l.ok()) break;
      if (l->size() > 1000) fuzz::Fail("a list above its item limit decoded");
      if (package::EncodeList(*l) != in) fuzz::Fail("a decoded list does not round-trip");
      break;
    }
  }
  return 0;
}
