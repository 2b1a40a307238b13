// Registry::BuiltIn() lives apart from the registry so that code using only its own tasks (tests)
// does not pull in every kernel.
#include "builtin.hpp"

namespace sparecycles::tasks {

const Registry& Registry::BuiltIn() {
  static const Registry* registry = [] {
    auto* r = new Registry();
    r->Add(MakePrimesTask());
    r->Add(MakePiTask());
    r->Add(MakeMandelbrotTask());
    r->Add(MakeHashSearchTask());
    r->Add(MakeWordFreqTask());
    r->Add(MakeSpinTask());
    return r;
  }();
  return *registry;
}

}  // namespace sparecycles::tasks
