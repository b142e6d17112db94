/* A small test harness: each test is a function; CHECK records failures and continues, SKIP ends a
 * test as skipped, and a test that made no CHECK and did not SKIP fails. The runner prints
 * "N passed, N failed, N skipped". */
#ifndef PARE_TEST_HARNESS_H
#define PARE_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

typedef void (*test_fn)(void);

typedef enum { HARNESS_PASSED, HARNESS_FAILED, HARNESS_SKIPPED } harness_result;

/* Runs a test and counts its outcome: passed, failed (a CHECK failed, or it made no CHECK and did not
 * SKIP: "FAIL test_x: ran no check"), or skipped. */
void harness_run(const char *name, test_fn fn);
/* Runs fn as a test inside the running one and returns its outcome without counting it (its lines
 * are printed as usual); the running test's state is restored afterwards. For testing the harness. */
harness_result harness_outcome(const char *name, test_fn fn);
void harness_check(int ok, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int harness_failed_now(void); /* non-zero if the running test has already failed a check */

/* Path of the shared reference data (PARE_SHARED, default ../shared), or NULL when absent. */
const char *harness_shared(void);
/* Joins the shared path with a relative path into a static buffer (one of 8 rotating slots). */
const char *shared_path(const char *rel);
/* A fresh temporary directory for this test (removed at exit); paths inside via tmp_path(). */
const char *harness_tmpdir(void);
const char *tmp_path(const char *name);
/* Writes bytes to a file, returning 0 on success. */
int write_bytes(const char *path, const void *data, size_t len);

/* Starts ./pare (or PARE_BIN) with args (NULL-terminated, argv[0] excluded), stdin from /dev/null,
 * stdout and stderr into the files opath and epath. in_child(ctx), when given, runs in the child just
 * before exec (environment, limits); non-zero makes the child exit 125 (set-up impossible). Returns
 * the pid without waiting. */
pid_t spawn_pare(const char *const *args, const char *opath, const char *epath, int (*in_child)(void *), void *ctx);
/* Runs ./pare (or PARE_BIN) with argv (NULL-terminated, argv[0] excluded); captures stdout and
 * stderr into heap strings the caller frees; returns the exit status (128+signal on a signal). */
int run_pare(char **out, char **errout, const char *const *args);
/* Runs ./pare with args (output to files under the temporary folder) and returns its peak RSS in KiB
 * (-1 when it could not run); *status gets its wait status. */
long pare_peak_kib(const char *const *args, int *status);
/* As run_pare, but sends signal sig to the child after delay_ms milliseconds. */
int run_pare_signal(char **out, char **errout, const char *const *args, int delay_ms, int sig);
/* Runs ./pare with args and checks exit status 2 with every needle on stderr; with one_line, stderr
 * must also be exactly one line (the CLI's error format; recipe errors carry a traceback). */
void expect_pare_error(const char *const *args, const char *const *needles, int one_line);

#define RUN(fn) harness_run(#fn, fn)
#define CHECK(cond) harness_check(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECKF(cond, ...) harness_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define SKIP(...)                                                                                                      \
    do {                                                                                                               \
        harness_skip(__VA_ARGS__);                                                                                     \
        return;                                                                                                        \
    } while (0)
/* Skips the test with the standard line when the shared data is absent. */
#define NEED_SHARED()                                                                                                  \
    do {                                                                                                               \
        if (!harness_shared())                                                                                         \
            SKIP("skipped: PARE_SHARED not found");                                                                    \
    } while (0)

#endif
