/* What pare takes from its process rather than from its options: the OpenBLAS kernel (chosen by
 * re-executing once) and the variables that set the core's limits. The core reads no environment
 * and never re-executes; ./pare (main.c), the test runner and tools/bench_compress call these. */
#ifndef PARE_CLI_ENVIRONMENT_H
#define PARE_CLI_ENVIRONMENT_H

/* Re-executes the running program once (/proc/self/exe, same argv) with OPENBLAS_CORETYPE set when
 * pare_blas_better_coretype names a better kernel; a user's own OPENBLAS_CORETYPE always wins.
 * Returns when there is nothing to do or the exec failed (then with the kernel already loaded). */
void cli_select_blas_kernel(char **argv);

/* Sets the core's limits as the environment says now (a variable unset or not a valid value: the
 * core's default):
 *   PARE_MEMORY_LIMIT            bytes (K, M, G suffixes) pare may allocate (pare_set_memory_limit)
 *   PARE_TASK_MAX_DECOMPRESSED   bytes a compressed task file may expand to (pare_set_task_max_decompressed)
 *   PARE_STREAM                  auto, on or off: when models are loaded streamed (pare_set_stream_mode)
 *   PARE_TEST_PROGRESS_DELAY_MS  a sleep before every progress report, for tests (pare_set_progress_delay_ms) */
void cli_apply_environment(void);

/* Takes the options every command accepts, wherever they stand, out of argv (before a "--"):
 *   --memory-limit SIZE   as PARE_MEMORY_LIMIT, which it overrides
 *   --stream auto|on|off  as PARE_STREAM
 *   --matmul f32|bf16     as PARE_MATMUL (read here, as its refusal needs an exit status): the linear
 *                         layers' products in fp32 (default) or BF16 with fp32 sums (pare_set_matmul)
 * Returns 0, or 2 after printing one line naming the option when a value is missing or wrong, or
 * when bf16 is asked of a CPU without AVX512-BF16. */
int cli_take_global_options(int *argc, char **argv);

#endif
