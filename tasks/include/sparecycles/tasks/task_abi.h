/* The task plugin C ABI, version 1: how a native package's shared library hands a Task to
 * SpareCycles. Plain C, so a plugin built with another compiler or C++ standard library still
 * loads. Authors do not write this by hand: SPARECYCLES_EXPORT_TASK (plugin.hpp) produces it
 * around a C++ Task class. Layout and encodings: docs/packages.md, "Task ABI".
 *
 * Ownership: bytes a call returns (sparecycles_bytes) belong to the side that made them; the
 * receiver copies what it needs and calls `release` once (when non-NULL). Views
 * (sparecycles_view) are borrowed for the duration of one call. Every function of the table
 * may be called from many threads at once. */
#ifndef SPARECYCLES_TASKS_TASK_ABI_H_
#define SPARECYCLES_TASKS_TASK_ABI_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change to the structs below or to the encodings of their bytes. */
#define SPARECYCLES_TASK_ABI_VERSION 1u
/* The one symbol a plugin exports. */
#define SPARECYCLES_TASK_ENTRY_SYMBOL "sparecycles_task_entry"

/* Return codes: 0 = OK, 1..9 = the sparecycles::StatusCode of the same number (the out bytes
 * then hold the message), SPARECYCLES_TASK_UNIT_CANCELLED = the unit stopped because the worker
 * cancelled it (Progress threw UnitCancelled). */
#define SPARECYCLES_TASK_OK 0
#define SPARECYCLES_TASK_UNIT_CANCELLED 100

typedef struct sparecycles_view {
  const char* data;
  uint64_t size;
} sparecycles_view;

typedef struct sparecycles_bytes {
  const char* data;
  uint64_t size;
  void (*release)(void* opaque); /* frees data; NULL when nothing needs freeing */
  void* opaque;
} sparecycles_bytes;

/* The host's UnitContext, given to execute(). */
typedef struct sparecycles_unit_context {
  void* self;
  /* Reports the fraction done; returns 0 to go on, 1 when the unit must stop. */
  int32_t (*progress)(void* self, double fraction);
  int32_t (*stop_requested)(void* self);
  /* Returns 1 and fills `out` when a checkpoint exists, else 0. */
  int32_t (*resume_state)(void* self, sparecycles_bytes* out);
  int32_t (*checkpoint_due)(void* self);
  void (*checkpoint)(void* self, sparecycles_view state);
} sparecycles_unit_context;

/* The table a plugin returns. `abi_version` comes first and never moves, so a host can refuse
 * a table of another version before reading anything else. */
typedef struct sparecycles_task_api {
  uint32_t abi_version; /* SPARECYCLES_TASK_ABI_VERSION of the plugin's build */
  uint32_t struct_size; /* sizeof(sparecycles_task_api) in the plugin's build */
  /* Encoded description: name, version, summary, work name, media type, default rate, params. */
  int32_t (*describe)(sparecycles_bytes* out);
  int32_t (*plan)(sparecycles_view params, sparecycles_bytes* out);
  int32_t (*split)(sparecycles_view params, uint64_t units, sparecycles_bytes* out);
  int32_t (*execute)(sparecycles_view unit, const sparecycles_unit_context* ctx,
                     sparecycles_bytes* out);
  int32_t (*merge)(sparecycles_view params, sparecycles_view results, sparecycles_bytes* out);
  int32_t (*canonicalize)(sparecycles_view result, sparecycles_bytes* out);
  int32_t (*summarize)(sparecycles_view merged, sparecycles_bytes* out);
  int32_t (*to_json)(sparecycles_view merged, sparecycles_bytes* out);
  int32_t (*calibrate)(double seconds, double* out, sparecycles_bytes* error);
} sparecycles_task_api;

/* The exported entry point: returns the plugin's table (never NULL). `host_abi_version` lets a
 * plugin that speaks several versions pick one; the host refuses any other. */
typedef const sparecycles_task_api* (*sparecycles_task_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* SPARECYCLES_TASKS_TASK_ABI_H_ */
