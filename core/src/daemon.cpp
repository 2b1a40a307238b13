#include "sparecycles/core/daemon.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sparecycles {

void InstallStopHandler(void (*on_stop)(int)) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

Status WriteFileAtomic(const std::string& path, const std::string& content, bool sync) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                  std::fflush(f) == 0 && (!sync || ::fsync(::fileno(f)) == 0);
  std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Unavailable("cannot write " + path + ": " + std::strerror(errno));
  }
  return OkStatus();
}

Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + path);
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0) return Unavailable("cannot read " + path);
  if (static_cast<std::size_t>(size) > max_bytes)
    return ResourceExhausted(path + " is " + std::to_string(size) + " bytes; the limit is " +
                             std::to_string(max_bytes));
  std::string out(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  in.read(out.data(), size);
  if (!in) return Unavailable("cannot read " + path);
  return out;
}

}  // namespace sparecycles
