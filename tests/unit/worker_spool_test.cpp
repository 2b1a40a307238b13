// The worker's local state files: the result spool (finished, unacknowledged results survive a
// restart; short units are not spooled; bad files are dropped and counted) and the checkpoint
// store's in-memory index of its files.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "../../worker/src/checkpoint_store.hpp"
#include "../../worker/src/spool.hpp"
#include "process.hpp"
#include "sparecycles/core/protocol.hpp"

using namespace sparecycles;
using namespace sparecycles::worker;

namespace {

proto::ResultMsg MakeResult(std::uint64_t lease, double wall_seconds) {
  proto::ResultMsg r;
  r.lease_id = lease;
  r.job_id = 7;
  r.unit_index = lease % 100;
  r.hash = std::string(32, 'h');
  r.payload = "payload-" + std::to_string(lease);
  r.wall_seconds = wall_seconds;
  r.cpu_seconds = wall_seconds;
  return r;
}

std::size_t FilesIn(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE(
    "spooled results come back after a restart; short units and acknowledged results do not") {
  testing::TempDir dir;
  const std::string spool_dir = dir.path() + "/spool";
  {
    ResultSpool spool(spool_dir);
    CHECK(spool.Put(MakeResult(1, 0.5)));
    CHECK(spool.Put(MakeResult(2, ResultSpool::kSpoolMinSeconds)));
    CHECK_FALSE(
        spool.Put(MakeResult(3, ResultSpool::kSpoolMinSeconds / 2)));  // cheaper to recompute
    CHECK(spool.Put(MakeResult(4, 2.0)));
    spool.Remove(4);  // acknowledged
    spool.Remove(3);  // never on disk: nothing to do
    CHECK(FilesIn(spool_dir) == 2);
  }
  ResultSpool again(spool_dir);  // the worker restarted
  auto loaded = again.Load();
  REQUIRE(loaded.size() == 2);
  CHECK(loaded.at(1).payload == "payload-1");
  CHECK(loaded.at(2).wall_seconds == doctest::Approx(ResultSpool::kSpoolMinSeconds));
  CHECK(again.dropped() == 0);
  again.Remove(1);  // a loaded result is removed from disk when acknowledged
  CHECK(FilesIn(spool_dir) == 1);
}

TEST_CASE("a damaged spool file is dropped and counted, the others load") {
  testing::TempDir dir;
  const std::string spool_dir = dir.path() + "/spool";
  ResultSpool spool(spool_dir);
  REQUIRE(spool.Put(MakeResult(10, 1.0)));
  REQUIRE(spool.Put(MakeResult(11, 1.0)));
  {
    std::ofstream(spool_dir + "/11.result", std::ios::trunc) << "SPCY garbage";
    std::ofstream(spool_dir + "/12.result") << std::string(3, '\0');
    std::ofstream(spool_dir + "/13.result.tmp.99") << "interrupted write";
  }
  // A valid frame under the wrong name is not trusted either.
  std::filesystem::copy_file(spool_dir + "/10.result", spool_dir + "/14.result");
  ResultSpool reread(spool_dir);
  auto loaded = reread.Load();
  CHECK(loaded.size() == 1);
  CHECK(loaded.count(10) == 1);
  CHECK(reread.dropped() == 4);
  CHECK(FilesIn(spool_dir) == 1);
}

TEST_CASE("the checkpoint store finds files written before a restart and forgets removed ones") {
  testing::TempDir dir;
  const std::string cp_dir = dir.path() + "/checkpoints";
  proto::Lease lease{1, 5, 3, "primes", 1, "unit-bytes", 0};
  {
    CheckpointStore store(cp_dir);
    CHECK_FALSE(store.Load(lease).has_value());
    store.Save(lease, 0.25f, "state-a");
    auto got = store.Load(lease);
    REQUIRE(got.has_value());
    CHECK(got->state == "state-a");
  }
  CheckpointStore restarted(cp_dir);
  auto got = restarted.Load(lease);
  REQUIRE(got.has_value());
  CHECK(got->fraction == doctest::Approx(0.25f));
  proto::Lease other = lease;
  other.unit = "other-bytes";  // same job and index, different unit: not the same checkpoint
  CHECK_FALSE(restarted.Load(other).has_value());
  restarted.Remove(lease);
  CHECK_FALSE(restarted.Load(lease).has_value());
  CHECK(FilesIn(cp_dir) == 0);
  CheckpointStore after(cp_dir);
  CHECK_FALSE(after.Load(lease).has_value());
}
