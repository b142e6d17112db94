/* Status codes and the error struct every core function fills; the core never prints or exits. */
#ifndef PARE_ERROR_H
#define PARE_ERROR_H

#include <stddef.h>

typedef enum {
    PARE_OK = 0,
    PARE_EINVAL,       /* a parameter is out of range or inconsistent */
    PARE_EIO,          /* a file could not be opened, read or written */
    PARE_EFORMAT,      /* a file is malformed or inconsistent with itself */
    PARE_EUNSUPPORTED, /* well-formed input that pare does not handle */
    PARE_ENOMEM,       /* an allocation failed */
    PARE_ECANCELED     /* a progress callback asked to stop */
} pare_status;

typedef struct {
    pare_status code;
    char msg[1024]; /* one line naming the file or parameter and the problem */
} pare_error;

/* Fills err (if non-NULL) and returns code, so callers can write `return pare_fail(...)`. */
pare_status pare_fail(pare_error *err, pare_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message, e.g. with the file name it concerns. */
pare_status pare_wrap(pare_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *pare_status_name(pare_status code);

/* Progress callback for long operations: fraction in [0,1], detail is a short human line.
 * Returning non-zero cancels; the operation then returns PARE_ECANCELED. */
typedef int (*pare_progress_fn)(void *user, const char *stage, double fraction, const char *detail);

typedef struct {
    pare_progress_fn fn;
    void *user;
} pare_progress;

/* Calls the callback if present; returns PARE_ECANCELED (with message) when it asks to stop. */
pare_status pare_report(const pare_progress *p, const char *stage, double fraction, const char *detail, pare_error *err);

/* Every later progress report first sleeps ms milliseconds (1..59999; anything else: none), so that a
 * test's signal reliably lands in the middle of a job on a tiny model. Tests only: ./pare sets it from
 * PARE_TEST_PROGRESS_DELAY_MS. */
void pare_set_progress_delay_ms(long ms);

#endif
