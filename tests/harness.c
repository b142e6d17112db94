/* Test runner: runs the suites named in test_main.c, counts results, owns temp dirs and subprocesses. */
#include "harness.h"

#include "cli/environment.h"
#include "core/parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static int n_pass, n_fail, n_skip;
/* The running test's state; harness_outcome saves and restores it around a nested test. */
typedef struct {
    char name[256];
    int failed, skipped;
    long checks; /* CHECKs made, passed or not: a test that made none and did not skip checked nothing */
} test_state;
static test_state cur;
static char tmpdir[512];

void harness_check(int ok, const char *file, int line, const char *fmt, ...)
{
    cur.checks++;
    if (ok)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "  FAIL %s (%s:%d): ", cur.name, file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    cur.failed = 1;
}

void harness_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "  skip %s: ", cur.name);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    cur.skipped = 1;
}

int harness_failed_now(void) { return cur.failed; }

static void remove_tree(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

static const char *test_filter; /* argv[2]: run only tests whose name contains it */

/* Runs fn as the test called name in a fresh test state and returns its outcome; a test that neither
 * checked anything nor skipped fails, since it asserted nothing. */
static harness_result run_test(const char *name, test_fn fn)
{
    snprintf(cur.name, sizeof cur.name, "%s", name);
    cur.failed = cur.skipped = 0;
    cur.checks = 0;
    fflush(stdout);
    fn();
    if (!cur.failed && !cur.skipped && cur.checks == 0) {
        printf("  FAIL %s: ran no check\n", name);
        cur.failed = 1;
    }
    return cur.failed ? HARNESS_FAILED : cur.skipped ? HARNESS_SKIPPED : HARNESS_PASSED;
}

void harness_run(const char *name, test_fn fn)
{
    if (test_filter && !strstr(name, test_filter))
        return;
    tmpdir[0] = '\0';
    harness_result r = run_test(name, fn);
    if (tmpdir[0])
        remove_tree(tmpdir);
    if (r == HARNESS_FAILED) {
        n_fail++;
        printf("FAIL %s\n", name);
    } else if (r == HARNESS_SKIPPED) {
        n_skip++;
    } else {
        n_pass++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

harness_result harness_outcome(const char *name, test_fn fn)
{
    /* the nested test shares the outer test's temporary folder, which the outer test's end removes */
    test_state outer = cur;
    harness_result r = run_test(name, fn);
    cur = outer;
    return r;
}

const char *harness_shared(void)
{
    static char path[1024];
    static int probed, present;
    if (!probed) {
        const char *p = getenv("PARE_SHARED");
        snprintf(path, sizeof path, "%s", p && *p ? p : "../shared");
        struct stat st;
        char probe[1100];
        snprintf(probe, sizeof probe, "%s/models", path);
        present = stat(probe, &st) == 0 && S_ISDIR(st.st_mode);
        probed = 1;
    }
    return present ? path : NULL;
}

const char *shared_path(const char *rel)
{
    static char slots[8][1200];
    static int next;
    char *s = slots[next++ % 8];
    snprintf(s, 1200, "%s/%s", harness_shared() ? harness_shared() : "../shared", rel);
    return s;
}

const char *harness_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/pare-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(3);
        }
    }
    return tmpdir;
}

const char *tmp_path(const char *name)
{
    static char slots[8][1200];
    static int next;
    char *s = slots[next++ % 8];
    snprintf(s, 1200, "%s/%s", harness_tmpdir(), name);
    return s;
}

int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    int bad = (w != len);
    if (fclose(f) != 0)
        bad = 1;
    return bad ? -1 : 0;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

int run_pare(char **out, char **errout, const char *const *args) { return run_pare_signal(out, errout, args, -1, 0); }

/* The pare binary the tests run: PARE_BIN, or ./pare. */
static const char *pare_bin(void)
{
    const char *bin = getenv("PARE_BIN");
    return bin && *bin ? bin : "./pare";
}

/* Forks and executes path with argv prefix[0..n_prefix) followed by args, stdin from /dev/null and
 * stdout / stderr to the files opath / epath; in_child (may be NULL) runs in the child first. */
static pid_t spawn_argv(const char *path, const char *const *prefix, int n_prefix, const char *const *args,
                        const char *opath, const char *epath, int (*in_child)(void *), void *ctx)
{
    const char *argv[64];
    int argc = 0;
    for (int i = 0; i < n_prefix && argc < 63; i++)
        argv[argc++] = prefix[i];
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(o, 1);
        dup2(e, 2);
        if (in_child && in_child(ctx))
            _exit(125);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t spawn_pare(const char *const *args, const char *opath, const char *epath, int (*in_child)(void *), void *ctx)
{
    const char *bin = pare_bin();
    return spawn_argv(bin, &bin, 1, args, opath, epath, in_child, ctx);
}

int run_pare_signal(char **out, char **errout, const char *const *args, int delay_ms, int sig)
{
    /* stdout and stderr go to temp files so a chatty child cannot deadlock a full pipe. */
    char opath[1200], epath[1200];
    snprintf(opath, sizeof opath, "%s/run_pare.stdout", harness_tmpdir()); /* not tmp_path: keep callers' slots */
    snprintf(epath, sizeof epath, "%s/run_pare.stderr", harness_tmpdir());
    pid_t pid = spawn_pare(args, opath, epath, NULL, NULL);
    if (delay_ms >= 0) {
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, sig);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int fo = open(opath, O_RDONLY), fe = open(epath, O_RDONLY);
    char *so = fo >= 0 ? slurp_fd(fo) : strdup("");
    char *se = fe >= 0 ? slurp_fd(fe) : strdup("");
    if (fo >= 0)
        close(fo);
    if (fe >= 0)
        close(fe);
    if (out)
        *out = so;
    else
        free(so);
    if (errout)
        *errout = se;
    else
        free(se);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Suites are declared in test_main.c; main runs those whose name contains argv[1], if given, and
 * in them the tests whose name contains argv[2], if given. */
typedef struct {
    const char *name;
    void (*fn)(void);
} suite;

extern const suite harness_suites[];
static int report_peak_rss(char **argv);

int main(int argc, char **argv)
{
    if (argc > 3 && strcmp(argv[1], "--peak-rss") == 0) /* before anything grows this process */
        return report_peak_rss(argv + 2);
    cli_select_blas_kernel(argv); /* the same kernel choice as ./pare, for the same speed */
    cli_apply_environment();
    const char *filter = argc > 1 ? argv[1] : NULL;
    test_filter = argc > 2 ? argv[2] : NULL;
    /* runs without --out go under the temporary folder, never into the checkout */
    char runs[4200];
    snprintf(runs, sizeof runs, "%s/runs", harness_tmpdir());
    setenv("PARE_RUNS", runs, 1);
    if (!harness_shared())
        printf("note: shared data not found (PARE_SHARED or ../shared); tests that need it are skipped\n");
    for (int i = 0; harness_suites[i].name; i++) {
        if (filter && !strstr(harness_suites[i].name, filter))
            continue;
        printf("== %s\n", harness_suites[i].name);
        harness_suites[i].fn();
    }
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

void expect_pare_error(const char *const *args, const char *const *needles, int one_line)
{
    char *out = NULL, *err = NULL;
    int st = run_pare(&out, &err, args);
    size_t len = err ? strlen(err) : 0;
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += err[i] == '\n';
    CHECKF(st == 2, "%s %s: exit %d (want 2); stderr: %s", args[0], args[1] ? args[1] : "", st, err);
    if (one_line)
        CHECKF(lines == 1 && err[len - 1] == '\n', "want one stderr line, got %d: %s", lines, err);
    for (int i = 0; needles[i]; i++)
        CHECKF(err && strstr(err, needles[i]) != NULL, "stderr lacks '%s': %s", needles[i], err);
    free(out);
    free(err);
}

/* A child's ru_maxrss starts from the RSS of the process it was forked from (Linux carries the old
 * mm's high-water mark across exec), so a test runner that has grown would set a floor under every
 * figure. The runner therefore re-executes itself as a small go-between (main's --peak-rss), which
 * forks pare and reports that grandchild's own peak through a file. */
long pare_peak_kib(const char *const *args, int *status)
{
    char result[1200];
    snprintf(result, sizeof result, "%s/peak_rss.result", harness_tmpdir()); /* not tmp_path: keep callers' slots */
    unlink(result);
    const char *prefix[] = {"pare_tests", "--peak-rss", result, pare_bin()};
    pid_t pid = spawn_argv("/proc/self/exe", prefix, 4, args, tmp_path("rss.out"), tmp_path("rss.err"), NULL, NULL);
    int between = 0;
    if (pid < 0 || waitpid(pid, &between, 0) != pid || !WIFEXITED(between) || WEXITSTATUS(between) != 0)
        return -1;
    long kib = -1;
    FILE *f = fopen(result, "r");
    if (!f || fscanf(f, "%ld %d", &kib, status) != 2)
        kib = -1;
    if (f)
        fclose(f);
    return kib;
}

/* The go-between of pare_peak_kib: runs argv[1..] and writes "<its peak RSS in KiB> <wait status>" to
 * argv[0]. Exit 0 only when the child ran and the result was written. */
static int report_peak_rss(char **argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[1], argv + 1);
        _exit(127);
    }
    struct rusage ru;
    int st = 0;
    memset(&ru, 0, sizeof ru);
    if (pid < 0 || wait4(pid, &st, 0, &ru) != pid)
        return 1;
    FILE *f = fopen(argv[0], "w");
    if (!f)
        return 1;
    int ok = fprintf(f, "%ld %d\n", ru.ru_maxrss, st) > 0;
    return fclose(f) == 0 && ok ? 0 : 1;
}
