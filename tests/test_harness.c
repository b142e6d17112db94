/* The harness itself: fake tests run through harness_outcome (which does not count them) show that a
 * test making no check fails with "ran no check", a skipped test is skipped, and checks decide the rest. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"

static void fake_no_check(void) {}
static void fake_skip(void) { SKIP("skipped: nothing to do here"); }
static void fake_passing_check(void) { CHECK(1 + 1 == 2); }
static void fake_failing_check(void) { CHECKF(0, "a check that fails on purpose"); }
static void fake_check_then_skip(void)
{
    CHECK(1);
    SKIP("skipped after a check");
}

/* Runs fake as a nested test with stdout into a file; returns its outcome and what it printed
 * (heap string, caller frees). */
static harness_result outcome_and_output(const char *name, test_fn fake, char **printed)
{
    const char *path = tmp_path("fake_test.stdout");
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECKF(saved >= 0 && fd >= 0, "%s: cannot redirect stdout", path);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    harness_result r = harness_outcome(name, fake);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    size_t len = 0;
    *printed = (char *)fixture_read(path, &len);
    CHECKF(*printed != NULL, "%s: cannot read back", path);
    return r;
}

static void check_outcome(const char *name, test_fn fake, harness_result want, const char *want_line)
{
    char *printed = NULL;
    harness_result r = outcome_and_output(name, fake, &printed);
    CHECKF(r == want, "%s: outcome %d, want %d; it printed: %s", name, (int)r, (int)want, printed ? printed : "");
    if (want_line)
        CHECKF(printed && strstr(printed, want_line), "%s printed no \"%s\": %s", name, want_line,
               printed ? printed : "");
    free(printed);
}

/* A fake test's failed check must not leak into the test that ran it: after the nested failures above,
 * this test still passes (harness_failed_now is zero). */
static void test_zero_check_test_fails(void)
{
    check_outcome("fake_no_check", fake_no_check, HARNESS_FAILED, "FAIL fake_no_check: ran no check");
    CHECK(!harness_failed_now());
}

static void test_skipped_test_is_skipped(void)
{
    check_outcome("fake_skip", fake_skip, HARNESS_SKIPPED, "skip fake_skip: skipped: nothing to do here");
    check_outcome("fake_check_then_skip", fake_check_then_skip, HARNESS_SKIPPED, NULL);
}

static void test_checks_decide_outcome(void)
{
    check_outcome("fake_passing_check", fake_passing_check, HARNESS_PASSED, NULL);
    check_outcome("fake_failing_check", fake_failing_check, HARNESS_FAILED, "a check that fails on purpose");
    CHECK(!harness_failed_now());
}

static unsigned char *volatile peak_ballast;

/* pare_peak_kib reports the child's own peak: a runner that has grown (Linux would carry its RSS into
 * a forked child's ru_maxrss) does not raise the figure. */
static void test_peak_rss_is_the_childs_own(void)
{
    const char *version[] = {"--version", NULL};
    int st = -1;
    long small = pare_peak_kib(version, &st);
    CHECKF(small > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "pare --version: peak %ld KiB, status %d", small, st);
    size_t grow = (size_t)256 << 20;
    unsigned char *ballast = malloc(grow);
    peak_ballast = ballast; /* seen from outside, so the compiler keeps the allocation and its stores */
    CHECK(ballast != NULL);
    if (!ballast)
        return;
    memset(ballast, 1, grow); /* resident, not only reserved */
    long grown = pare_peak_kib(version, &st);
    CHECKF(grown > 0 && grown < small + (long)(grow >> 12),
           "with the runner %zu KiB larger, the child's peak went from %ld to %ld KiB", grow >> 10, small, grown);
    peak_ballast = NULL;
    free(ballast);
}

void suite_harness(void);
void suite_harness(void)
{
    RUN(test_zero_check_test_fails);
    RUN(test_skipped_test_is_skipped);
    RUN(test_checks_decide_outcome);
    RUN(test_peak_rss_is_the_childs_own);
}
