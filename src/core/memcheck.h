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

/* A byte count as the PARE_*_LIMIT variables take it: a number with an optional K, M or G suffix
 * (powers of 1024, "KiB"/"KB" also read). Non-zero when s is such a count. */
int pare_parse_size(const char *s, uint64_t *out);

/* PARE_ENOMEM "WHAT needs X GiB, Y GiB available" when need exceeds pare_memory_available(). */
pare_status pare_memory_check(uint64_t need, const char *what, pare_error *err);

#endif
