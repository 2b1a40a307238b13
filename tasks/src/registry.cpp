#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "builtin.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks {

Result<std::int64_t> JobParams::Int(const std::string& name, std::int64_t def) const {
  auto it = values.find(name);
  if (it == values.end()) return def;
  auto v = ParseInt(it->second);
  if (!v.ok()) return InvalidArgument("parameter '" + name + "': " + v.status().message());
  return v;
}

Result<double> JobParams::Double(const std::string& name, double def) const {
  auto it = values.find(name);
  if (it == values.end()) return def;
  const std::string& text = it->second;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(v))
    return InvalidArgument("parameter '" + name + "': '" + text + "' is not a number");
  return v;
}

std::string JobParams::Text(const std::string& name, const std::string& def) const {
  auto it = values.find(name);
  return it == values.end() ? def : it->second;
}

void Registry::Add(std::unique_ptr<Task> task) { tasks_.push_back(std::move(task)); }

const Task* Registry::Find(std::string_view name, std::uint32_t version) const {
  const Task* best = nullptr;
  for (const auto& t : tasks_) {
    if (t->Name() != name) continue;
    if (version != 0) {
      if (t->Version() == version) return t.get();
    } else if (best == nullptr || t->Version() > best->Version()) {
      best = t.get();
    }
  }
  return best;
}

std::vector<const Task*> Registry::All() const {
  std::vector<const Task*> out;
  for (const auto& t : tasks_) out.push_back(t.get());
  return out;
}

}  // namespace sparecycles::tasks
