/* The process-level settings of pare: the OpenBLAS kernel re-exec and the environment variables
 * handed to the core as settings (see environment.h). */
#include "environment.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "core/memcheck.h"
#include "core/parallel.h"
#include "core/tasks.h"

void cli_select_blas_kernel(char **argv)
{
    const char *better = pare_blas_better_coretype();
    if (!better || getenv("OPENBLAS_CORETYPE"))
        return;
    setenv("OPENBLAS_CORETYPE", better, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the kernel we have */
}

/* A byte count from the variable name: non-zero when it is set to one. */
static int env_size(const char *name, uint64_t *bytes)
{
    const char *v = getenv(name);
    return v && *v && pare_parse_size(v, bytes);
}

void cli_apply_environment(void)
{
    uint64_t bytes;
    if (env_size("PARE_MEMORY_LIMIT", &bytes))
        pare_set_memory_limit(bytes, "PARE_MEMORY_LIMIT");
    else
        pare_set_memory_limit(0, NULL);
    if (env_size("PARE_TASK_MAX_DECOMPRESSED", &bytes))
        pare_set_task_max_decompressed(bytes, "PARE_TASK_MAX_DECOMPRESSED");
    else
        pare_set_task_max_decompressed(0, NULL);
    const char *delay = getenv("PARE_TEST_PROGRESS_DELAY_MS");
    pare_set_progress_delay_ms(delay ? strtol(delay, NULL, 10) : 0);
}
