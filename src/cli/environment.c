/* The process-level settings of pare: the OpenBLAS kernel re-exec and the environment variables
 * handed to the core as settings (see environment.h). */
#include "environment.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "core/matmul.h"
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
    const char *stream = getenv("PARE_STREAM");
    pare_set_stream_mode(stream && !strcmp(stream, "on")    ? PARE_STREAM_ON
                         : stream && !strcmp(stream, "off") ? PARE_STREAM_OFF
                                                            : PARE_STREAM_AUTO);
    const char *delay = getenv("PARE_TEST_PROGRESS_DELAY_MS");
    pare_set_progress_delay_ms(delay ? strtol(delay, NULL, 10) : 0);
}

/* The value of option name at argv[i] ("--name V" or "--name=V"): NULL when argv[i] is another
 * option; *used is how many arguments it takes (0 when the value is missing). */
static const char *option_value(int argc, char **argv, int i, const char *name, int *used)
{
    size_t n = strlen(name);
    *used = 0;
    if (strncmp(argv[i], name, n))
        return NULL;
    if (argv[i][n] == '=') {
        *used = 1;
        return argv[i] + n + 1;
    }
    if (argv[i][n])
        return NULL;
    if (i + 1 >= argc)
        return "";
    *used = 2;
    return argv[i + 1];
}

/* "f32" / "bf16" from source (the option or variable) into the core: 0, or 2 with the refusal printed. */
static int set_matmul(const char *v, const char *source)
{
    pare_matmul_mode mode = PARE_MATMUL_F32;
    while (PARE_MATMUL_NAMES[mode] && strcmp(v, PARE_MATMUL_NAMES[mode]))
        mode++;
    if (!PARE_MATMUL_NAMES[mode]) {
        fprintf(stderr, "pare: %s '%s': give f32 or bf16\n", source, v);
        return 2;
    }
    pare_error err;
    if (pare_set_matmul(mode, source, &err)) {
        fprintf(stderr, "pare: %s\n", err.msg);
        return 2;
    }
    return 0;
}

int cli_take_global_options(int *argc, char **argv)
{
    const char *env_matmul = getenv("PARE_MATMUL");
    if (env_matmul && *env_matmul && set_matmul(env_matmul, "PARE_MATMUL"))
        return 2;
    for (int i = 1; i < *argc;) {
        if (!strcmp(argv[i], "--"))
            break;
        int used;
        const char *v;
        if ((v = option_value(*argc, argv, i, "--memory-limit", &used))) {
            uint64_t bytes;
            if (!used || !pare_parse_size(v, &bytes) || bytes == 0) {
                fprintf(stderr, "pare: --memory-limit '%s': give a size in bytes, with K, M or G (e.g. 16G)\n", v);
                return 2;
            }
            pare_set_memory_limit(bytes, "--memory-limit");
        } else if ((v = option_value(*argc, argv, i, "--stream", &used))) {
            if (!used || (strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off"))) {
                fprintf(stderr, "pare: --stream '%s': give auto, on or off\n", v);
                return 2;
            }
            pare_set_stream_mode(!strcmp(v, "on")    ? PARE_STREAM_ON
                                 : !strcmp(v, "off") ? PARE_STREAM_OFF
                                                     : PARE_STREAM_AUTO);
        } else if ((v = option_value(*argc, argv, i, "--matmul", &used))) {
            if (!used) {
                fprintf(stderr, "pare: --matmul needs a value: f32 or bf16\n");
                return 2;
            }
            if (set_matmul(v, "--matmul"))
                return 2;
        } else {
            i++;
            continue;
        }
        memmove(argv + i, argv + i + used, (size_t)(*argc - i - used + 1) * sizeof *argv);
        *argc -= used;
    }
    return 0;
}
