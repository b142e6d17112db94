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

/* Set by the front end before any work starts (tests only, through PARE_TEST_PROGRESS_DELAY_MS). */
static long progress_delay;

void pare_set_progress_delay_ms(long ms) { progress_delay = ms > 0 && ms < 60000 ? ms : 0; }

pare_status pare_report(const pare_progress *p, const char *stage, double fraction, const char *detail, pare_error *err)
{
    long delay = p && p->fn ? progress_delay : 0;
    if (delay) {
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    if (p && p->fn && p->fn(p->user, stage, fraction, detail))
        return pare_fail(err, PARE_ECANCELED, "%s: canceled", stage);
    return PARE_OK;
}
