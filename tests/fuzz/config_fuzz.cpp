// libFuzzer harness: the `--config FILE` parser of core Options (core/src/options.cpp) and the
// number and duration parsers the daemons apply to its values. The input is the file's bytes.
#include "fuzz_support.hpp"
#include "sparecycles/core/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  static const std::string path = fuzz::ScratchDir() + "/config";
  fuzz::WriteFile(path, {reinterpret_cast<const char*>(data), size});
  Options opts("fuzz", "config file fuzzing", "SPARECYCLES_FUZZ_NOENV_");
  opts.Add("config", "", "config file");
  opts.Add("cores", "2", "an integer");
  opts.Add("heartbeat", "1s", "a duration");
  opts.Add("ratio", "0.5", "a number");
  opts.Add("data-dir", "", "a path");
  opts.AddFlag("verbose", "a switch");
  Status s = opts.Parse(std::vector<std::string>{"--config", path});
  if (!s.ok()) {
    fuzz::Sink(s.message());
    return 0;
  }
  for (const char* name : {"cores", "heartbeat", "ratio", "data-dir"}) {
    const std::string v = opts.Get(name);
    // Values are trimmed and hold no comment or line break.
    if (v.find_first_of("#\n") != std::string::npos)
      fuzz::Fail("a value kept a comment or newline");
    if (!v.empty() && (v.front() == ' ' || v.back() == ' ')) fuzz::Fail("a value is not trimmed");
    fuzz::Sink(v);
  }
  auto i = opts.GetInt("cores", 1, 4096);
  auto d = opts.GetDouble("ratio", 0, 1);
  auto t = ParseSeconds(opts.Get("heartbeat"));
  auto n = ParseInt(opts.Get("data-dir"));
  fuzz::Sink(static_cast<std::uint64_t>(i.ok() + d.ok() + t.ok() + n.ok() + opts.Flag("verbose")));
  if (t.ok() && !(*t >= 0)) fuzz::Fail("a negative or NaN duration");
  return 0;
}
