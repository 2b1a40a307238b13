// SPARECYCLES_EXPORT marks the declarations libsparecycles.so exports. The library is built with
// -fvisibility=hidden (sdk/CMakeLists.txt), so everything else in it — the coordinator, worker,
// ZeroMQ, cereal and TBB code linked in privately — stays internal. Header-only; no state.
#pragma once

#if defined(_WIN32)
#define SPARECYCLES_EXPORT
#elif defined(__GNUC__) || defined(__clang__)
// Also right for consumers: on ELF, default visibility on a declaration imports it as usual.
#define SPARECYCLES_EXPORT __attribute__((visibility("default")))
#else
#define SPARECYCLES_EXPORT
#endif
