// libFuzzer harness: the mandelbrot task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/mandelbrot.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

struct View {
  std::uint32_t width = 0, height = 0, max_iter = 0;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  template <class A>
  void serialize(A& a) {
    a(width, height, max_iter, x0, x1, y0, y1);
  }
};
struct Unit {
  View view;
  std::uint32_t row_lo = 0, row_hi = 0;
  template <class A>
  void serialize(A& a) {
    a(view, row_lo, row_hi);
  }
};

// One row costs width x max_iter before its progress report (up to 6.5e11 iterations): keep
// max_iter small and the rows narrow. Out-of-range values stay out of range.
std::string Cheapen(std::string_view bytes) {
  Unit u;
  if (!sparecycles::DecodeValue(bytes, u).ok()) return std::string(bytes);
  if (u.view.max_iter > 64 && u.view.max_iter <= 10000000) u.view.max_iter = 64;
  if (u.view.width > 256 && u.view.width <= 65536) u.view.width = 256;
  return sparecycles::EncodeValue(u);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("mandelbrot", &Cheapen, data, size);
}
