// libFuzzer harness: a checkpoint file read back by the worker (worker/src/checkpoint_store.cpp).
// The input replaces the bytes of a real checkpoint file; CheckpointStore::Load() must return a
// state within limits or nothing, never crash.
#include "../../worker/src/checkpoint_store.hpp"
#include "fuzz_support.hpp"
#include "sparecycles/core/log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  static proto::Lease lease = [] {
    proto::Lease l;
    l.lease_id = 3;
    l.job_id = 1;
    l.unit_index = 2;
    l.task = "primes";
    l.unit = "unit bytes";
    return l;
  }();
  // Save once through the store so the file has the name Load() looks for.
  static const std::string path = [] {
    SetLogLevel(LogLevel::kOff);
    const std::string dir = fuzz::ScratchDir() + "/checkpoints";
    worker::CheckpointStore(dir).Save(lease, 0.5f, "state");
    for (const auto& e : std::filesystem::directory_iterator(dir)) return e.path().string();
    fuzz::Fail("the checkpoint store wrote no file");
  }();
  fuzz::WriteFile(path, {reinterpret_cast<const char*>(data), size});
  worker::CheckpointStore store(std::filesystem::path(path).parent_path().string());
  auto loaded = store.Load(lease);
  if (loaded) {
    if (!(loaded->fraction >= 0 && loaded->fraction <= 1)) fuzz::Fail("fraction outside 0..1");
    if (loaded->state.size() > proto::kMaxCheckpointBytes + 4096)
      fuzz::Fail("state above the limit");
    fuzz::Sink(loaded->state);
  }
  return 0;
}
