#include "sparecycles/core/clock.hpp"

namespace sparecycles {

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace sparecycles
