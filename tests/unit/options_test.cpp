// core/options.hpp's duration convention: ParseSeconds is the one parser (ms/s/m/h/d suffixes or
// bare seconds, never negative) and GetSeconds/GetDuration/ParseOptionSeconds put the option's
// name in front of its error the same way for every binary; ParseInt is the integer syntax of
// options and task parameters alike.
#include "sparecycles/core/options.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;

TEST_CASE("ParseSeconds: suffixes ms, s, m, h, d and bare seconds") {
  CHECK(*ParseSeconds("500ms") == doctest::Approx(0.5));
  CHECK(*ParseSeconds("30s") == 30);
  CHECK(*ParseSeconds("2m") == 120);
  CHECK(*ParseSeconds("1.5h") == 5400);
  CHECK(*ParseSeconds("7d") == 7 * 86400);
  CHECK(*ParseSeconds("12") == 12);
  CHECK(*ParseSeconds("0") == 0);
  for (const char* bad : {"", "s", "ms", "-1s", "1x", "soon", "1e999", "nan", "1 s"}) {
    INFO(bad);
    auto r = ParseSeconds(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().message() ==
          "'" + std::string(bad) + "' is not a duration (e.g. 500ms, 30s, 2m, 12h, 7d)");
  }
}

TEST_CASE("Options::GetSeconds/GetDuration: the value as a duration, errors named --NAME") {
  Options o("prog", "test", "SPARECYCLES_OPTIONS_TEST_");
  o.Add("timeout", "10s", "how long");
  o.Add("grace", "1m", "how long");
  REQUIRE(o.Parse(std::vector<std::string>{"--timeout", "250ms"}).ok());
  CHECK(*o.GetSeconds("timeout") == doctest::Approx(0.25));
  CHECK(*o.GetDuration("timeout") == std::chrono::milliseconds(250));
  CHECK(*o.GetDuration("grace") == std::chrono::minutes(1));

  Options bad("prog", "test", "SPARECYCLES_OPTIONS_TEST_");
  bad.Add("timeout", "10s", "how long");
  REQUIRE(bad.Parse(std::vector<std::string>{"--timeout", "later"}).ok());
  for (const Status& s :
       {bad.GetSeconds("timeout").status(), bad.GetDuration("timeout").status()}) {
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message() == "--timeout: 'later' is not a duration (e.g. 500ms, 30s, 2m, 12h, 7d)");
  }
  CHECK(ParseOptionSeconds("idle-time", "-3").status().message() ==
        "--idle-time: '-3' is not a duration (e.g. 500ms, 30s, 2m, 12h, 7d)");
  CHECK(*ParseOptionSeconds("idle-time", "3m") == 180);
}

TEST_CASE("ParseInt is the one integer syntax: options and task parameters agree") {
  CHECK(*ParseInt("123") == 123);
  CHECK(*ParseInt("-7") == -7);
  CHECK(*ParseInt("1e9") == 1'000'000'000);
  CHECK(*ParseInt("2k") == 2000);
  CHECK(*ParseInt("4M") == 4'000'000);
  CHECK(*ParseInt("1G") == 1'000'000'000);
  CHECK(*ParseInt("3T") == 3'000'000'000'000);
  CHECK(ParseInt("").status().message() == "empty number");
  CHECK(ParseInt("k").status().message() == "'k' is not a number");
  CHECK(ParseInt("1.5").status().message() == "'1.5' is not an integer");
  CHECK(ParseInt("x1").status().message() == "'x1' is not an integer");
  CHECK(ParseInt("1e19").status().message() == "'1e19' is out of range");
  for (const char* text : {"123", "-7", "2.5k", "4M", "", "1.5", "1e19", "99999999999999999999"}) {
    INFO(text);
    auto a = ParseInt(text);
    auto b = tasks::JobParams::ParseIntText(text);
    REQUIRE(a.ok() == b.ok());
    if (a.ok())
      CHECK(*a == *b);
    else
      CHECK(a.status().message() == b.status().message());
  }
}
