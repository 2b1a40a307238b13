#include "sparecycles/core/options.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sparecycles {

Options::Options(std::string program, std::string summary, std::string env_prefix)
    : program_(std::move(program)),
      summary_(std::move(summary)),
      env_prefix_(std::move(env_prefix)) {}

void Options::Add(std::string name, std::string default_value, std::string help) {
  specs_.push_back(Spec{std::move(name), std::move(default_value), std::move(help), false, {}});
}
void Options::AddFlag(std::string name, std::string help) {
  specs_.push_back(Spec{std::move(name), "false", std::move(help), true, {}});
}

Options::Spec* Options::Find(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}
const Options::Spec* Options::Find(const std::string& name) const {
  return const_cast<Options*>(this)->Find(name);
}

std::string Options::EnvName(const std::string& name) const {
  std::string env = env_prefix_;
  for (char c : name) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return env;
}

Status Options::Parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args);
}

Status Options::Parse(const std::vector<std::string>& args) {
  std::map<std::string, std::string> from_flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Spec* spec = Find(name);
    if (spec == nullptr && !allow_extra_)
      return InvalidArgument("unknown option --" + name + " (see --help)");
    if (spec != nullptr && spec->is_flag) {
      from_flags[name] = has_value ? value : "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return InvalidArgument("option --" + name + " needs a value");
      value = args[++i];
    }
    if (spec == nullptr)
      extra_[name] = value;
    else
      from_flags[name] = value;
  }
  // Config file first (lowest of the three), then environment, then flags.
  std::string config_path;
  if (Find("config") != nullptr) {
    if (auto it = from_flags.find("config"); it != from_flags.end())
      config_path = it->second;
    else if (const char* e = std::getenv(EnvName("config").c_str()))
      config_path = e;
  }
  if (!config_path.empty()) SC_RETURN_IF_ERROR(LoadConfigFile(config_path));
  for (auto& s : specs_)
    if (const char* e = std::getenv(EnvName(s.name).c_str())) s.value = e;
  for (auto& [k, v] : from_flags) Find(k)->value = v;
  return OkStatus();
}

Status Options::LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open config file " + path);
  std::string line;
  int lineno = 0;
  auto trim = [](const std::string& s) {
    auto b = s.find_first_not_of(" \t\r");
    auto e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (line.size() > 64 * 1024)
      return InvalidArgument(path + ":" + std::to_string(lineno) + ": line too long");
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos)
      return InvalidArgument(path + ":" + std::to_string(lineno) + ": expected 'name = value'");
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    std::replace(key.begin(), key.end(), '_', '-');
    Spec* spec = Find(key);
    if (spec == nullptr || key == "config")
      return InvalidArgument(path + ":" + std::to_string(lineno) + ": unknown setting '" + key +
                             "'");
    spec->value = value;
  }
  return OkStatus();
}

std::string Options::Help() const {
  std::ostringstream out;
  out << "Usage: " << program_ << "\n\n" << summary_ << "\n\nOptions (flag, environment variable";
  if (Find("config") != nullptr) out << ", or 'name = value' in the --config file";
  out << "):\n";
  for (const auto& s : specs_) {
    out << "  --" << s.name << (s.is_flag ? "" : " VALUE") << "\n      " << s.help;
    if (!s.is_flag)
      out << "\n      Default: " << (s.default_value.empty() ? "(none)" : s.default_value);
    out << "   [env " << EnvName(s.name) << "]\n";
  }
  out << "  --help\n      Show this help.\n";
  return out.str();
}

std::string Options::Get(const std::string& name) const {
  const Spec* s = Find(name);
  if (s == nullptr) std::abort();  // asking for an undeclared option is a bug
  return s->value ? *s->value : s->default_value;
}
bool Options::IsSet(const std::string& name) const {
  const Spec* s = Find(name);
  return s != nullptr && s->value.has_value();
}
bool Options::Flag(const std::string& name) const {
  std::string v = Get(name);
  return v == "true" || v == "1" || v == "yes" || v == "on";
}

Result<std::int64_t> Options::GetInt(const std::string& name, std::int64_t min,
                                     std::int64_t max) const {
  auto v = ParseInt(Get(name));
  if (!v.ok()) return InvalidArgument("--" + name + ": " + v.status().message());
  if (*v < min || *v > max)
    return InvalidArgument("--" + name + " must be between " + std::to_string(min) + " and " +
                           std::to_string(max));
  return v;
}

Result<double> Options::GetDouble(const std::string& name, double min, double max) const {
  const std::string text = Get(name);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(v))
    return InvalidArgument("--" + name + ": '" + text + "' is not a number");
  if (v < min || v > max)
    return InvalidArgument("--" + name + " must be between " + std::to_string(min) + " and " +
                           std::to_string(max));
  return v;
}

Result<std::int64_t> ParseInt(std::string_view text) {
  std::string s(text);
  if (s.empty()) return InvalidArgument("empty number");
  double mult = 1;
  switch (s.back()) {
    case 'k':
    case 'K':
      mult = 1e3;
      s.pop_back();
      break;
    case 'M':
      mult = 1e6;
      s.pop_back();
      break;
    case 'G':
      mult = 1e9;
      s.pop_back();
      break;
    case 'T':
      mult = 1e12;
      s.pop_back();
      break;
    default:
      break;
  }
  if (s.empty()) return InvalidArgument("'" + std::string(text) + "' is not a number");
  char* end = nullptr;
  errno = 0;
  if (mult == 1 && s.find_first_of(".eE") == std::string::npos) {
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || errno != 0)
      return InvalidArgument("'" + std::string(text) + "' is not an integer");
    return static_cast<std::int64_t>(v);
  }
  long double v = std::strtold(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno != 0 || !std::isfinite(static_cast<double>(v)))
    return InvalidArgument("'" + std::string(text) + "' is not a number");
  v *= mult;
  if (v != std::floor(v)) return InvalidArgument("'" + std::string(text) + "' is not an integer");
  if (v > 9.2e18L || v < -9.2e18L)
    return InvalidArgument("'" + std::string(text) + "' is out of range");
  return static_cast<std::int64_t>(v);
}

Result<double> ParseSeconds(std::string_view text) {
  std::string s(text);
  double mult = 1;
  auto ends = [&](std::string_view suf) {
    return s.size() > suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends("ms")) {
    mult = 1e-3;
    s.resize(s.size() - 2);
  } else if (ends("s")) {
    s.pop_back();
  } else if (ends("m")) {
    mult = 60;
    s.pop_back();
  } else if (ends("h")) {
    mult = 3600;
    s.pop_back();
  } else if (ends("d")) {
    mult = 86400;
    s.pop_back();
  }
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0 || !std::isfinite(v) || v < 0)
    return InvalidArgument("'" + std::string(text) +
                           "' is not a duration (e.g. 500ms, 30s, 2m, 12h, 7d)");
  return v * mult;
}

}  // namespace sparecycles
