// Shared pieces of the libFuzzer harnesses in tests/fuzz: a sink that keeps results observable,
// the length-prefixed framing several harnesses use to cut one input into pieces, and a unit
// context with a tiny budget. Each harness is single-threaded; nothing here is thread-safe.
#pragma once

#include <stdlib.h>  // mkdtemp

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/tasks/task.hpp"

namespace sparecycles::fuzz {

/// Writes a value where the optimizer must assume someone reads it, so the work stays.
inline void Sink(std::uint64_t v) {
  static volatile std::uint64_t sink = 0;
  sink = sink + v;
}
inline void Sink(std::string_view s) {
  Sink(s.size() + (s.empty() ? 0 : static_cast<unsigned char>(s[0])));
}

/// A broken property: crash loudly so libFuzzer saves the input.
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

/// Cuts bytes into pieces, each a little-endian u32 length then that many bytes (a length past
/// the end takes what is left). tests/fuzz/make_seeds.cpp writes the same framing.
inline std::vector<std::string> Pieces(std::string_view in, std::size_t max_pieces) {
  std::vector<std::string> out;
  while (!in.empty() && out.size() < max_pieces) {
    std::uint32_t len = 0;
    const std::size_t n = in.size() < 4 ? in.size() : 4;
    std::memcpy(&len, in.data(), n);
    in.remove_prefix(n);
    const std::size_t take = len < in.size() ? len : in.size();
    out.emplace_back(in.substr(0, take));
    in.remove_prefix(take);
  }
  return out;
}
inline std::string Piece(std::string_view bytes) {
  const auto len = static_cast<std::uint32_t>(bytes.size());
  std::string out(reinterpret_cast<const char*>(&len), 4);
  out.append(bytes);
  return out;
}

/// A unit context that lets a kernel report progress `budget` times, then cancels it; it hands
/// the kernel `resume` as its checkpoint and asks for a checkpoint at every chance.
class BudgetContext final : public tasks::UnitContext {
 public:
  BudgetContext(int budget, std::optional<std::string> resume)
      : budget_(budget), resume_(std::move(resume)) {}
  void Progress(double fraction) override {
    if (!(fraction >= 0.0 && fraction <= 1.0)) Fail("progress outside 0..1");
    if (++calls_ > budget_) throw tasks::UnitCancelled{"fuzz budget spent"};
  }
  bool StopRequested() const override { return calls_ >= budget_; }
  std::optional<std::string> ResumeState() const override { return resume_; }
  bool CheckpointDue() const override { return true; }
  void Checkpoint(std::string_view state) override {
    if (state.size() > (16u << 20)) Fail("checkpoint above 16 MiB");
    last_checkpoint_.assign(state);
  }
  const std::string& last_checkpoint() const { return last_checkpoint_; }

 private:
  const int budget_;
  int calls_ = 0;
  std::optional<std::string> resume_;
  std::string last_checkpoint_;
};

/// A private scratch directory for harnesses that decode files (in /dev/shm when there is one,
/// so file round trips stay cheap), removed at exit.
inline const std::string& ScratchDir() {
  // Never destroyed: the atexit handler that removes it runs after static destructors.
  static const std::string* dir = [] {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    if (const char* t = std::getenv("SPARECYCLES_FUZZ_TMP")) base = t;
    auto* templ = new std::string(base + "/sparecycles-fuzz-XXXXXX");
    if (mkdtemp(templ->data()) == nullptr) Fail("cannot create a scratch directory");
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(ScratchDir(), ec);
    });
    return templ;
  }();
  return *dir;
}

/// Replaces a file's content (plain write: the harness is the only reader).
inline void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Fail("cannot write a scratch file");
}

/// Removes every entry of a directory.
inline void ClearDir(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    std::filesystem::remove_all(e.path(), ec);
}

}  // namespace sparecycles::fuzz
