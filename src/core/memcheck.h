/* Memory estimates checked before large allocations, so that an input too big for this machine is
 * refused with "needs X GiB, Y GiB available" instead of the kernel killing the process later
 * (Linux overcommits: malloc succeeds and the pages fail on first touch). */
#ifndef PARE_MEMCHECK_H
#define PARE_MEMCHECK_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

/* Bytes this process may still allocate: the cap set with pare_set_memory_limit, else MemAvailable +
 * SwapFree of /proc/meminfo; 0 when neither is known (then nothing is refused). */
uint64_t pare_memory_available(void);

/* Caps what pare_memory_available reports at bytes (0, like an unknown amount, refuses nothing);
 * source names where the cap comes from in messages, e.g. "PARE_MEMORY_LIMIT". source NULL removes
 * the cap. The core reads no environment: a front end (src/cli/environment.c) sets this. */
void pare_set_memory_limit(uint64_t bytes, const char *source);
/* The source of the cap in force, or NULL when there is none. */
const char *pare_memory_limit_source(void);

/* Whether a model is loaded streamed (its block weights left in the mapped files as stored and
 * converted one block at a time, model.h): AUTO when its fp32 weights would take more than 3/4 of
 * pare_memory_available(), ON always (one block cached: what tests and measurements use), OFF never.
 * A process-level setting like the memory limit, set by the front end. */
typedef enum { PARE_STREAM_AUTO, PARE_STREAM_ON, PARE_STREAM_OFF } pare_stream_mode;
void pare_set_stream_mode(pare_stream_mode mode);
pare_stream_mode pare_get_stream_mode(void);
/* "1.25 GiB", "48.3 MiB", "512 KiB": sizes in messages. */
void pare_format_bytes(uint64_t bytes, char *buf, size_t cap);

/* A byte count as the PARE_*_LIMIT variables take it: a number with an optional K, M or G suffix
 * (powers of 1024, "KiB"/"KB" also read). Non-zero when s is such a count. */
int pare_parse_size(const char *s, uint64_t *out);

/* PARE_ENOMEM "WHAT needs X GiB, Y GiB available" when need exceeds pare_memory_available(). */
pare_status pare_memory_check(uint64_t need, const char *what, pare_error *err);

#endif
