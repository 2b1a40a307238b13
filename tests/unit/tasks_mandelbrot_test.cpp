// Tests of the mandelbrot task: pixels against a naive escape-time loop, PNG that libpng decodes
// back to the same pixels, the PGM header, split independence and validation of untrusted bytes.
#include <doctest/doctest.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& Mandelbrot() { return testing::BuiltInTask("mandelbrot"); }

JobParams Params(int width, int height, int max_iter, const std::string& format) {
  JobParams p;
  p.values["width"] = std::to_string(width);
  p.values["height"] = std::to_string(height);
  p.values["max_iter"] = std::to_string(max_iter);
  p.values["format"] = format;
  return p;
}

std::string Render(const JobParams& params, std::uint64_t units) {
  return testing::RunJob(Mandelbrot(), params, units);
}

// The pixels of a binary PGM, after checking its header names width x height.
std::string PgmPixels(const std::string& pgm, int width, int height) {
  REQUIRE(pgm.rfind("P5\n# sparecycles mandelbrot ", 0) == 0);
  const std::string dims = "\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
  const std::size_t at = pgm.find(dims);
  REQUIRE(at != std::string::npos);
  std::string pixels = pgm.substr(at + dims.size());
  REQUIRE(pixels.size() == static_cast<std::size_t>(width) * height);
  return pixels;
}

// Reference: the plain escape-time loop of the documented pixel mapping and shading.
std::uint8_t NaivePixel(int px, int py, int width, int height, int max_iter) {
  const double x0 = -2.5, x1 = 1, y0 = -1.25, y1 = 1.25;
  const double cx = x0 + (px + 0.5) * ((x1 - x0) / width);
  const double cy = y1 - (py + 0.5) * ((y1 - y0) / height);
  double x = 0, y = 0;
  int n = 0;
  while (n < max_iter && x * x + y * y <= 4) {
    const double nx = x * x - y * y + cx;
    y = 2 * x * y + cy;
    x = nx;
    ++n;
  }
  if (n == max_iter) return 0;
  return static_cast<std::uint8_t>(
      1 + static_cast<int>(254 * std::sqrt(std::sqrt(double(n) / max_iter))));
}

}  // namespace

TEST_CASE("the registry knows mandelbrot version 1 and its media type") {
  CHECK(Mandelbrot().Name() == "mandelbrot");
  CHECK(Mandelbrot().MediaType() == "image/png");
}

TEST_CASE("every pixel of a small image matches a naive escape-time loop") {
  constexpr int kW = 96, kH = 72, kIter = 300;
  const std::string pixels = PgmPixels(Render(Params(kW, kH, kIter, "pgm"), 5), kW, kH);
  int mismatches = 0, in_set = 0;
  for (int y = 0; y < kH; ++y) {
    for (int x = 0; x < kW; ++x) {
      const auto got = static_cast<std::uint8_t>(pixels[static_cast<std::size_t>(y) * kW + x]);
      if (got != NaivePixel(x, y, kW, kH, kIter)) ++mismatches;
      in_set += got == 0 ? 1 : 0;
    }
  }
  CHECK(mismatches == 0);
  CHECK(in_set > kW * kH / 10);  // the default view shows a good part of the set
  CHECK(in_set < kW * kH / 2);
}

TEST_CASE("the PNG has the signature and decodes to the same pixels as the PGM") {
  constexpr int kW = 81, kH = 40;
  const std::string png = Render(Params(kW, kH, 200, "png"), 3);
  REQUIRE(png.size() > 8);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_memory(&image, png.data(), png.size()) != 0);
  CHECK(image.width == kW);
  CHECK(image.height == kH);
  image.format = PNG_FORMAT_GRAY;
  std::vector<std::uint8_t> decoded(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, decoded.data(), 0, nullptr) != 0);
  const std::string pgm = PgmPixels(Render(Params(kW, kH, 200, "pgm"), 4), kW, kH);
  CHECK(std::string(decoded.begin(), decoded.end()) == pgm);
}

TEST_CASE("the summary and JSON report size, format and the share in the set") {
  constexpr int kW = 64, kH = 48;
  const std::string pgm = Render(Params(kW, kH, 200, "pgm"), 2);
  const std::string pixels = PgmPixels(pgm, kW, kH);
  const auto in_set = std::count(pixels.begin(), pixels.end(), '\0');
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%.1f%%", 100.0 * static_cast<double>(in_set) / (kW * kH));
  CHECK(Mandelbrot().Summarize(pgm) ==
        "64x48 PGM, 3072 pixels, " + std::string(pct) + " in the set");
  const std::string png = Render(Params(kW, kH, 200, "png"), 2);
  CHECK(Mandelbrot().Summarize(png) ==
        "64x48 PNG, 3072 pixels, " + std::string(pct) + " in the set");
  const std::string json = Mandelbrot().ToJson(png);
  INFO(json);
  CHECK(json.find("\"format\":\"png\"") != std::string::npos);
  CHECK(json.find("\"width\":64,\"height\":48,\"pixels\":3072") != std::string::npos);
  CHECK(json.find("\"in_set\":" + std::to_string(in_set) + ",") != std::string::npos);
  CHECK(Mandelbrot().ToJson(pgm).find("image/x-portable-graymap") != std::string::npos);
  CHECK(Mandelbrot().Summarize("GIF89a").find("not a merged result") != std::string::npos);
}

TEST_CASE("the image does not depend on how it was split") {
  const JobParams params = Params(50, 37, 150, "pgm");
  const std::string one = Render(params, 1);
  for (std::uint64_t units : {2, 5, 36, 37}) CHECK(Render(params, units) == one);
  CHECK_FALSE(Mandelbrot().Split(params, 0).ok());
  CHECK_FALSE(Mandelbrot().Split(params, 38).ok());
  auto plan = Mandelbrot().Plan(params);
  REQUIRE(plan.ok());
  CHECK(plan->max_units == 37);
  CHECK(plan->total_work == 50.0 * 37 * 150);
}

TEST_CASE("plan explains bad parameters") {
  auto rejects = [](const std::string& key, const std::string& value, const std::string& needle) {
    JobParams p;
    p.values[key] = value;
    auto plan = Mandelbrot().Plan(p);
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.status().code() == StatusCode::kInvalidArgument);
    CHECK_MESSAGE(plan.status().message().find(needle) != std::string::npos,
                  plan.status().message());
  };
  rejects("format", "jpg", "png or pgm");
  rejects("max_iter", "0", "max_iter");
  rejects("width", "0", "width");
  rejects("width", "100000", "width");
  rejects("x0", "2", "x0 < x1");
  rejects("y1", "nan", "y1");
  JobParams big;
  big.values["width"] = "65536";
  big.values["height"] = "65536";
  auto plan = Mandelbrot().Plan(big);
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.status().message().find("pixels") != std::string::npos);
  CHECK(Mandelbrot().Plan(JobParams{}).ok());
}

TEST_CASE("execute rejects garbage, truncated and out-of-image units") {
  auto units = Mandelbrot().Split(Params(20, 10, 50, "png"), 2);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[1];
  for (std::size_t len = 0; len < unit.size(); ++len)
    CHECK_FALSE(Mandelbrot().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(Mandelbrot().Execute(unit + "!", ctx).ok());
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(Mandelbrot().Execute(junk, ctx).ok());
  }
  // Same layout with the band moved past the bottom of the image (rows are the last 8 bytes).
  std::string moved = unit;
  moved[moved.size() - 8] = 9;
  moved[moved.size() - 4] = 12;
  CHECK_FALSE(Mandelbrot().Execute(moved, ctx).ok());
}

TEST_CASE("merge rejects missing, reordered, foreign and garbage results") {
  const JobParams params = Params(30, 20, 60, "png");
  const std::vector<std::string> results = testing::RunUnits(Mandelbrot(), params, 3);
  REQUIRE(Mandelbrot().Merge(params, results).ok());
  CHECK_FALSE(Mandelbrot().Merge(params, {}).ok());
  CHECK_FALSE(Mandelbrot().Merge(params, std::vector<std::string>{results[0], results[1]}).ok());
  CHECK_FALSE(Mandelbrot()
                  .Merge(params, std::vector<std::string>{results[1], results[0], results[2]})
                  .ok());
  CHECK_FALSE(Mandelbrot().Merge(Params(31, 20, 60, "png"), results).ok());
  CHECK_FALSE(Mandelbrot().Merge(Params(30, 21, 60, "png"), results).ok());
  std::vector<std::string> garbage = results;
  garbage[1] = garbage[1].substr(0, garbage[1].size() - 1);
  CHECK_FALSE(Mandelbrot().Merge(params, garbage).ok());
  garbage[1] = "\x01\x02";
  CHECK_FALSE(Mandelbrot().Merge(params, garbage).ok());
}

TEST_CASE("calibration measures a positive speed") {
  CHECK(Mandelbrot().Calibrate(0.05) > 1e6);
  CHECK(Mandelbrot().DefaultWorkPerSecond() > 0);
}

namespace {

// Appendix A.3's pixel, written from the document (same operations in the same order).
std::uint8_t DocShade(std::uint32_t width, std::uint32_t height, std::uint32_t max_iter, double x0,
                      double x1, double y0, double y1, std::uint32_t px, std::uint32_t py) {
  const double dx = (x1 - x0) / width, dy = (y1 - y0) / height;
  const double cx = x0 + (px + 0.5) * dx, cy = y1 - (py + 0.5) * dy;
  const double xq = cx - 0.25, q = xq * xq + cy * cy;
  if (q * (q + xq) <= 0.25 * cy * cy) return 0;
  if ((cx + 1) * (cx + 1) + cy * cy <= 0.0625) return 0;
  double x = 0, y = 0, x2 = 0, y2 = 0;
  std::uint32_t n = 0;
  while (n < max_iter && x2 + y2 <= 4.0) {
    y = (2 * x) * y + cy;
    x = x2 - y2 + cx;
    x2 = x * x;
    y2 = y * y;
    ++n;
  }
  if (n >= max_iter) return 0;
  return static_cast<std::uint8_t>(
      1 + static_cast<std::uint32_t>(254 * std::sqrt(std::sqrt(double(n) / max_iter))));
}

}  // namespace

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  constexpr std::uint32_t kW = 37, kH = 23, kIter = 64;
  auto view = [&](WireWriter& w) -> WireWriter& {
    return w.U32(kW).U32(kH).U32(kIter).F64(-2.5).F64(1).F64(-1.25).F64(1.25);
  };
  // Unit = width, height, max_iter u32, x0, x1, y0, y1 f64, row_lo, row_hi u32: 52 bytes.
  WireWriter unit;
  view(unit).U32(5).U32(9);
  REQUIRE(unit.str().size() == 52);
  auto r = Mandelbrot().Execute(unit.str(), ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  // Result = width u32, row_lo u32, row_hi u32, pixels bytes (row-major, row_lo first).
  std::string band;
  for (std::uint32_t py = 5; py < 9; ++py)
    for (std::uint32_t px = 0; px < kW; ++px)
      band += static_cast<char>(DocShade(kW, kH, kIter, -2.5, 1, -1.25, 1.25, px, py));
  CHECK(*r == WireWriter().U32(kW).U32(5).U32(9).Bytes(band).str());
  CHECK_FALSE(Mandelbrot().Execute(unit.str() + '\0', ctx).ok());
  WireWriter outside;
  view(outside).U32(20).U32(24);
  CHECK_FALSE(Mandelbrot().Execute(outside.str(), ctx).ok());
  auto split = Mandelbrot().Split(Params(kW, kH, kIter, "pgm"), 3);
  REQUIRE(split.ok());
  WireWriter second;
  view(second).U32(kH * 1 / 3).U32(kH * 2 / 3);
  CHECK((*split)[1] == second.str());
  // Merged PGM = "P5\n# sparecycles " + record + "\n" + "W H\n255\n" + pixels.
  std::string pixels;
  for (std::uint32_t py = 0; py < kH; ++py)
    for (std::uint32_t px = 0; px < kW; ++px)
      pixels += static_cast<char>(DocShade(kW, kH, kIter, -2.5, 1, -1.25, 1.25, px, py));
  const auto in_set = std::count(pixels.begin(), pixels.end(), '\0');
  REQUIRE(in_set > 0);
  const std::string record =
      "mandelbrot width=37 height=23 max_iter=64 in_set=" + std::to_string(in_set) +
      " x0=-2.5 x1=1 y0=-1.25 y1=1.25";
  CHECK(testing::RunJob(Mandelbrot(), Params(kW, kH, kIter, "pgm"), 3) ==
        "P5\n# sparecycles " + record + "\n37 23\n255\n" + pixels);
  // Merged PNG: signature, IHDR (greyscale, 8 bits), then a tEXt chunk "sparecycles\0" + record.
  const std::string png = testing::RunJob(Mandelbrot(), Params(kW, kH, kIter, "png"), 3);
  REQUIRE(png.size() > 8 + 25 + 12);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(png.substr(12, 4) == "IHDR");
  CHECK(png[8 + 8 + 8] == 8);  // bit depth
  CHECK(png[8 + 8 + 9] == 0);  // colour type 0: greyscale
  const std::size_t text_at = 8 + 25;
  CHECK(png.substr(text_at + 4, 4) == "tEXt");
  const std::string text = std::string("sparecycles") + '\0' + record;
  const auto len = static_cast<std::uint32_t>(static_cast<std::uint8_t>(png[text_at])) << 24 |
                   static_cast<std::uint32_t>(static_cast<std::uint8_t>(png[text_at + 1])) << 16 |
                   static_cast<std::uint32_t>(static_cast<std::uint8_t>(png[text_at + 2])) << 8 |
                   static_cast<std::uint32_t>(static_cast<std::uint8_t>(png[text_at + 3]));
  CHECK(len == text.size());
  CHECK(png.substr(text_at + 8, text.size()) == text);
}
