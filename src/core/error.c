/* Error formatting and progress reporting shared by every core module. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pare_status pare_fail(pare_error *err, pare_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

pare_status pare_wrap(pare_error *err, const char *fmt, ...)
{
    if (!err)
        return PARE_EINVAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.500s: %.500s", prefix, old);
    return err->code;
}

const char *pare_status_name(pare_status code)
{
    switch (code) {
    case PARE_OK: return "ok";
    case PARE_EINVAL: return "invalid argument";
    case PARE_EIO: return "I/O error";
    case PARE_EFORMAT: return "malformed input";
    case PARE_EUNSUPPORTED: return "unsupported";
    case PARE_ENOMEM: return "out of memory";
    case PARE_ECANCELED: return "canceled";
    }
    return "unknown";
}

/* PARE_TEST_PROGRESS_DELAY_MS=N: every progress report first sleeps N ms, so that a test's signal
 * reliably lands in the middle of a job on a tiny model (tests only; read once). */
static long progress_delay_ms(void)
{
    static long ms = -1;
    if (ms < 0) {
        const char *e = getenv("PARE_TEST_PROGRESS_DELAY_MS");
        long v = e ? strtol(e, NULL, 10) : 0;
        ms = v > 0 && v < 60000 ? v : 0;
    }
    return ms;
}

pare_status pare_report(const pare_progress *p, const char *stage, double fraction, const char *detail,
                        pare_error *err)
{
    long delay = p && p->fn ? progress_delay_ms() : 0;
    if (delay) {
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    if (p && p->fn && p->fn(p->user, stage, fraction, detail))
        return pare_fail(err, PARE_ECANCELED, "%s: canceled", stage);
    return PARE_OK;
}
