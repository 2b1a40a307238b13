#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "builtin.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks {

void Registry::Add(std::unique_ptr<Task> task) { tasks_.push_back(std::move(task)); }

void Registry::AddShared(std::shared_ptr<const Task> task) {
  if (task) tasks_.push_back(std::move(task));
}

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
