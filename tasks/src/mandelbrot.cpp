// mandelbrot: renders the Mandelbrot set as an 8-bit grey image, split into bands of rows.
//
// Pixel (px, py) samples c = (x0 + (px + 0.5) * dx, y1 - (py + 0.5) * dy) with dx = (x1 - x0) / W,
// dy = (y1 - y0) / H (row 0 at the top). Its grey value is 0 when the orbit of 0 stays within
// |z| <= 2 for max_iter iterations ("in the set"), else 1 + floor(254 * (n / max_iter)^(1/4)) for
// the escape iteration n (a fourth root, as two sqrt, so the many quick escapes are not black).
// Only IEEE +, -, *, / and sqrt are used and the library is built with -ffp-contract=off (no
// FMA), so every peer computes the same bytes. Merge encodes PNG (libpng) or binary PGM and
// embeds a "sparecycles" text record (PNG tEXt / PGM comment) that Summarize() and ToJson() read
// back.
#include <png.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"
#include "sparecycles/core/options.hpp"

namespace sparecycles::tasks {
namespace {

constexpr std::string_view kName = "mandelbrot";

constexpr std::int64_t kMaxSide = 1 << 16;
constexpr std::uint64_t kMaxPixels = 64ull << 20;  // 64 Mpixel (the merged image is held in RAM)
constexpr std::int64_t kMaxIter = 10'000'000;
constexpr char kTextKey[] = "sparecycles";

struct View {
  std::uint32_t width = 0, height = 0, max_iter = 0;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(width, height, max_iter, x0, x1, y0, y1);
  }
};

struct Unit {
  View view;
  std::uint32_t row_lo = 0, row_hi = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(view, row_lo, row_hi);
  }
};

struct UnitResult {
  std::uint32_t width = 0, row_lo = 0, row_hi = 0;
  std::string pixels;  // width * (row_hi - row_lo) grey bytes, row-major
  template <class Archive>
  void serialize(Archive& ar) {
    ar(width, row_lo, row_hi, pixels);
  }
};

Status CheckView(const View& v) {
  if (v.width < 1 || v.width > kMaxSide || v.height < 1 || v.height > kMaxSide)
    return InvalidArgument("mandelbrot: 'width' and 'height' must be between 1 and " +
                           std::to_string(kMaxSide));
  if (std::uint64_t{v.width} * v.height > kMaxPixels)
    return InvalidArgument("mandelbrot: width x height must be at most " +
                           std::to_string(kMaxPixels) + " pixels");
  if (v.max_iter < 1 || v.max_iter > kMaxIter)
    return InvalidArgument("mandelbrot: 'max_iter' must be between 1 and " +
                           std::to_string(kMaxIter));
  const bool finite = std::isfinite(v.x0) && std::isfinite(v.x1) && std::isfinite(v.y0) &&
                      std::isfinite(v.y1) && std::isfinite(v.x1 - v.x0) &&
                      std::isfinite(v.y1 - v.y0);
  if (!finite || !(v.x0 < v.x1) || !(v.y0 < v.y1))
    return InvalidArgument("mandelbrot: the view needs finite x0 < x1 and y0 < y1");
  return OkStatus();
}

struct Config {
  View view;
  std::string format;  // "png" or "pgm"
};

Result<Config> ParseConfig(const JobParams& params) {
  Config c;
  SC_ASSIGN_OR_RETURN(std::int64_t w,
                      internal::IntParam(kName, params, "width", 1024, 1, kMaxSide));
  SC_ASSIGN_OR_RETURN(std::int64_t h,
                      internal::IntParam(kName, params, "height", 768, 1, kMaxSide));
  SC_ASSIGN_OR_RETURN(std::int64_t it,
                      internal::IntParam(kName, params, "max_iter", 500, 1, kMaxIter));
  c.view.width = static_cast<std::uint32_t>(w);
  c.view.height = static_cast<std::uint32_t>(h);
  c.view.max_iter = static_cast<std::uint32_t>(it);
  const struct {
    const char* name;
    double def;
    double* out;
  } coords[] = {{"x0", -2.5, &c.view.x0},
                {"x1", 1, &c.view.x1},
                {"y0", -1.25, &c.view.y0},
                {"y1", 1.25, &c.view.y1}};
  for (const auto& k : coords) {
    auto v = params.Double(k.name, k.def);
    if (!v.ok()) return InvalidArgument("mandelbrot: " + v.status().message());
    *k.out = *v;
  }
  SC_RETURN_IF_ERROR(CheckView(c.view));
  c.format = params.Text("format", "png");
  if (c.format != "png" && c.format != "pgm")
    return InvalidArgument("mandelbrot: 'format' must be png or pgm (got '" + c.format + "')");
  return c;
}

// The grey value of one pixel (see the file comment).
std::uint8_t Shade(const View& v, double dx, double dy, std::uint32_t px, std::uint32_t py) {
  const double cx = v.x0 + (px + 0.5) * dx;
  const double cy = v.y1 - (py + 0.5) * dy;
  // Points in the main cardioid or the period-2 bulb never escape; skipping them is exact and
  // saves most of the time on the default view.
  const double xq = cx - 0.25;
  const double q = xq * xq + cy * cy;
  if (q * (q + xq) <= 0.25 * cy * cy) return 0;
  if ((cx + 1) * (cx + 1) + cy * cy <= 0.0625) return 0;
  double x = 0, y = 0, x2 = 0, y2 = 0;
  std::uint32_t n = 0;
  while (n < v.max_iter && x2 + y2 <= 4.0) {
    y = 2 * x * y + cy;
    x = x2 - y2 + cx;
    x2 = x * x;
    y2 = y * y;
    ++n;
  }
  if (n >= v.max_iter) return 0;
  // sqrt is correctly rounded under IEEE 754 (unlike pow or log), so this stays bit-exact.
  const double t = std::sqrt(std::sqrt(static_cast<double>(n) / v.max_iter));
  return static_cast<std::uint8_t>(1 + static_cast<std::uint32_t>(254 * t));
}

void RenderRow(const View& v, std::uint32_t py, std::uint8_t* out) {
  const double dx = (v.x1 - v.x0) / v.width, dy = (v.y1 - v.y0) / v.height;
  for (std::uint32_t px = 0; px < v.width; ++px) out[px] = Shade(v, dx, dy, px, py);
}

// --- encoders -------------------------------------------------------------------------------

void PngWrite(png_structp png, png_bytep data, png_size_t len) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  bool failed = false;
  try {
    out->append(reinterpret_cast<const char*>(data), len);
  } catch (...) {
    failed = true;
  }
  // png_error() longjmps, so it must not run inside the catch block.
  if (failed) png_error(png, "out of memory");
}
void PngFlush(png_structp) {}

// Appends a PNG to *out. libpng reports errors by longjmp, so this frame holds no object with a
// destructor; returns false when libpng failed.
bool WritePng(std::string* out, const std::uint8_t* pixels, std::uint32_t width,
              std::uint32_t height, const char* text) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, out, PngWrite, PngFlush);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_text chunk;
  std::memset(&chunk, 0, sizeof(chunk));
  chunk.compression = PNG_TEXT_COMPRESSION_NONE;
  chunk.key = const_cast<char*>(kTextKey);
  chunk.text = const_cast<char*>(text);
  chunk.text_length = std::strlen(text);
  png_set_text(png, info, &chunk, 1);
  png_write_info(png, info);
  for (std::uint32_t y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(pixels + std::size_t{y} * width));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

// What the merged image says about itself (the text record).
struct Info {
  std::string format;
  std::uint64_t width = 0, height = 0, max_iter = 0, in_set = 0;
  std::string x0, x1, y0, y1;
};

std::string InfoText(const View& v, std::uint64_t in_set) {
  return "mandelbrot width=" + std::to_string(v.width) + " height=" + std::to_string(v.height) +
         " max_iter=" + std::to_string(v.max_iter) + " in_set=" + std::to_string(in_set) +
         " x0=" + internal::JsonDouble(v.x0) + " x1=" + internal::JsonDouble(v.x1) +
         " y0=" + internal::JsonDouble(v.y0) + " y1=" + internal::JsonDouble(v.y1);
}

Result<Info> ParseInfoText(std::string_view text, std::string format) {
  if (text.substr(0, 11) != "mandelbrot ") return DataLoss("no mandelbrot record");
  Info info;
  info.format = std::move(format);
  bool have[4] = {};
  std::size_t pos = 11;
  while (pos < text.size()) {
    std::size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view field = text.substr(pos, end - pos);
    pos = end + 1;
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = field.substr(0, eq);
    const std::string value(field.substr(eq + 1));
    auto number = [&](std::uint64_t& out, int slot) {
      auto v = ParseInt(value);
      if (v.ok() && *v >= 0) {
        out = static_cast<std::uint64_t>(*v);
        if (slot >= 0) have[slot] = true;
      }
    };
    if (key == "width")
      number(info.width, 0);
    else if (key == "height")
      number(info.height, 1);
    else if (key == "max_iter")
      number(info.max_iter, 2);
    else if (key == "in_set")
      number(info.in_set, 3);
    else if (key == "x0")
      info.x0 = value;
    else if (key == "x1")
      info.x1 = value;
    else if (key == "y0")
      info.y0 = value;
    else if (key == "y1")
      info.y1 = value;
  }
  if (!(have[0] && have[1] && have[2] && have[3])) return DataLoss("incomplete mandelbrot record");
  return info;
}

std::uint32_t BigEndian32(std::string_view b, std::size_t at) {
  return std::uint32_t{static_cast<std::uint8_t>(b[at])} << 24 |
         std::uint32_t{static_cast<std::uint8_t>(b[at + 1])} << 16 |
         std::uint32_t{static_cast<std::uint8_t>(b[at + 2])} << 8 |
         std::uint32_t{static_cast<std::uint8_t>(b[at + 3])};
}

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

// Reads the text record back from a merged PNG (walking its chunks) or PGM (its comment line).
Result<Info> ParseMerged(std::string_view bytes) {
  if (bytes.substr(0, 8) == kPngSignature) {
    std::size_t pos = 8;
    while (bytes.size() - pos >= 12) {
      const std::uint32_t len = BigEndian32(bytes, pos);
      const std::string_view type = bytes.substr(pos + 4, 4);
      if (len > bytes.size() - pos - 12) break;
      const std::string_view data = bytes.substr(pos + 8, len);
      if (type == "tEXt" && data.size() > sizeof(kTextKey) &&
          data.substr(0, sizeof(kTextKey)) == std::string_view(kTextKey, sizeof(kTextKey))) {
        return ParseInfoText(data.substr(sizeof(kTextKey)), "png");
      }
      if (type == "IDAT" || type == "IEND") break;  // we write the text before the image data
      pos += 12 + std::size_t{len};
    }
    return DataLoss("PNG without a sparecycles text record");
  }
  if (bytes.substr(0, 3) == "P5\n") {
    constexpr std::string_view kComment = "# sparecycles ";
    if (bytes.substr(3, kComment.size()) != kComment) return DataLoss("PGM without a record");
    const std::size_t start = 3 + kComment.size();
    const std::size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos) return DataLoss("truncated PGM header");
    return ParseInfoText(bytes.substr(start, end - start), "pgm");
  }
  return DataLoss("neither PNG nor PGM");
}

class MandelbrotTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "render the Mandelbrot set as a grey PNG or PGM image, in bands of rows";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"width", "1024", "image width in pixels (at most 65536; at most 64 Mpixel in all)"},
            {"height", "768", "image height in pixels"},
            {"max_iter", "500", "iterations before a point counts as in the set (at most 1e7)"},
            {"x0", "-2.5", "left edge of the view (real axis)"},
            {"x1", "1", "right edge of the view"},
            {"y0", "-1.25", "bottom edge of the view (imaginary axis)"},
            {"y1", "1.25", "top edge of the view"},
            {"format", "png", "png or pgm (binary P5)"}};
  }
  std::string_view WorkName() const override {
    return "pixel-iterations (pixels x max_iter, an upper bound)";
  }
  std::string_view MediaType() const override { return "image/png"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    JobPlan plan;
    plan.total_work = static_cast<double>(c.view.width) * c.view.height * c.view.max_iter;
    plan.max_units = c.view.height;
    return plan;
  }

  Result<std::vector<std::string>> Split(const JobParams& params,
                                         std::uint64_t units) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    SC_RETURN_IF_ERROR(internal::CheckUnitCount(kName, units, c.view.height));
    std::vector<std::string> out;
    out.reserve(units);
    for (std::uint64_t i = 0; i < units; ++i) {
      Unit u;
      u.view = c.view;
      u.row_lo = static_cast<std::uint32_t>(internal::SplitPoint(0, c.view.height, i, units));
      u.row_hi = static_cast<std::uint32_t>(internal::SplitPoint(0, c.view.height, i + 1, units));
      out.push_back(EncodeValue(u));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    SC_RETURN_IF_ERROR(CheckView(u.view));
    if (u.row_lo >= u.row_hi || u.row_hi > u.view.height)
      return InvalidArgument("mandelbrot: unit rows [" + std::to_string(u.row_lo) + ", " +
                             std::to_string(u.row_hi) + ") are not inside the image");
    UnitResult r;
    r.width = u.view.width;
    r.row_lo = u.row_lo;
    r.row_hi = u.row_hi;
    r.pixels.resize(std::size_t{u.view.width} * (u.row_hi - u.row_lo));
    auto* pixels = reinterpret_cast<std::uint8_t*>(r.pixels.data());
    internal::ProgressMeter meter(ctx, u.row_hi - u.row_lo);
    tbb::parallel_for(tbb::blocked_range<std::uint32_t>(u.row_lo, u.row_hi, 1),
                      [&](const tbb::blocked_range<std::uint32_t>& rows) {
                        for (std::uint32_t y = rows.begin(); y != rows.end(); ++y)
                          RenderRow(u.view, y, pixels + std::size_t{y - u.row_lo} * u.view.width);
                        meter.Add(rows.size());
                      });
    return EncodeValue(r);
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    const View& v = c.view;
    std::string image;
    image.reserve(std::size_t{v.width} * v.height);
    std::uint32_t next_row = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult r;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], r));
      if (r.width != v.width || r.row_lo != next_row || r.row_hi <= r.row_lo ||
          r.row_hi > v.height || r.pixels.size() != std::size_t{v.width} * (r.row_hi - r.row_lo))
        return DataLoss("mandelbrot: result " + std::to_string(i) +
                        " does not hold the next band of rows (expected row " +
                        std::to_string(next_row) + ", width " + std::to_string(v.width) + ")");
      image += r.pixels;
      next_row = r.row_hi;
    }
    if (next_row != v.height)
      return DataLoss("mandelbrot: the results stop at row " + std::to_string(next_row) + " of " +
                      std::to_string(v.height) + " (missing units?)");
    const std::uint64_t in_set =
        static_cast<std::uint64_t>(std::count(image.begin(), image.end(), '\0'));
    const std::string text = InfoText(v, in_set);
    std::string out;
    if (c.format == "pgm") {
      out = "P5\n# sparecycles " + text + "\n" + std::to_string(v.width) + " " +
            std::to_string(v.height) + "\n255\n";
      out += image;
      return out;
    }
    out.reserve(image.size() / 4 + 1024);
    if (!WritePng(&out, reinterpret_cast<const std::uint8_t*>(image.data()), v.width, v.height,
                  text.c_str()))
      return Internal("mandelbrot: libpng failed to encode the image");
    return out;
  }

  std::string Summarize(std::string_view bytes) const override {
    auto info = ParseMerged(bytes);
    if (!info.ok()) return internal::BadMerged(kName, info.status());
    const std::uint64_t pixels = info->width * info->height;
    char pct[32];
    std::snprintf(
        pct, sizeof(pct), "%.1f%%",
        pixels ? 100.0 * static_cast<double>(info->in_set) / static_cast<double>(pixels) : 0.0);
    return std::to_string(info->width) + "x" + std::to_string(info->height) + " " +
           (info->format == "png" ? "PNG" : "PGM") + ", " + std::to_string(pixels) + " pixels, " +
           pct + " in the set";
  }

  std::string ToJson(std::string_view bytes) const override {
    auto info = ParseMerged(bytes);
    if (!info.ok()) return internal::BadMergedJson(kName, info.status());
    const std::uint64_t pixels = info->width * info->height;
    const double fraction =
        pixels ? static_cast<double>(info->in_set) / static_cast<double>(pixels) : 0;
    // The coordinates are re-printed from the parsed value so odd text cannot break the JSON.
    auto num = [](const std::string& s) {
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      return s.empty() || end != s.c_str() + s.size() ? std::string("null")
                                                      : internal::JsonDouble(v);
    };
    return "{\"format\":" + internal::JsonString(info->format) + ",\"media_type\":" +
           internal::JsonString(info->format == "png" ? "image/png" : "image/x-portable-graymap") +
           ",\"width\":" + std::to_string(info->width) +
           ",\"height\":" + std::to_string(info->height) + ",\"pixels\":" + std::to_string(pixels) +
           ",\"max_iter\":" + std::to_string(info->max_iter) +
           ",\"in_set\":" + std::to_string(info->in_set) +
           ",\"in_set_fraction\":" + internal::JsonDouble(fraction) + ",\"x0\":" + num(info->x0) +
           ",\"x1\":" + num(info->x1) + ",\"y0\":" + num(info->y0) + ",\"y1\":" + num(info->y1) +
           ",\"bytes\":" + std::to_string(bytes.size()) + "}";
  }

  double Calibrate(double seconds) const override {
    // A detailed view (around the period-3 bulb, ~58% in the set but outside the cardioid and
    // period-2 shortcuts) rather than the default one (~17x faster per Plan() work unit): units
    // planned from this rate err on the short side. Counted the way Plan() counts (pixels x
    // max_iter), single-threaded.
    View v;
    v.width = 128;
    v.height = 96;
    v.max_iter = 500;
    v.x0 = -0.25;
    v.x1 = 0.0;
    v.y0 = 0.6;
    v.y1 = 0.9;
    std::vector<std::uint8_t> row(v.width);
    std::uint64_t rows = 0;
    internal::Stopwatch watch;
    do {
      RenderRow(v, static_cast<std::uint32_t>(rows % v.height), row.data());
      ++rows;
    } while (watch.Seconds() < seconds);
    return static_cast<double>(rows) * v.width * v.max_iter / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 8e8; }
};

}  // namespace

std::unique_ptr<Task> MakeMandelbrotTask() { return std::make_unique<MandelbrotTask>(); }

}  // namespace sparecycles::tasks
