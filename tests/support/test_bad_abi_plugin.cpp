// TEST-ONLY: a "plugin" whose table claims a future ABI version; the loader must refuse it.
#include "sparecycles/tasks/task_abi.h"

namespace {
sparecycles_task_api table = {99u,     sizeof(sparecycles_task_api),
                              nullptr, nullptr,
                              nullptr, nullptr,
                              nullptr, nullptr,
                              nullptr, nullptr,
                              nullptr};
}

extern "C" __attribute__((visibility("default"))) const sparecycles_task_api*
sparecycles_task_entry(uint32_t) {
  return &table;
}
