/* Strict number parsing shared by the CLI, the workbench and the recipe runner (see numparse.h). */
#include "numparse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* strtoll and strtod skip leading white space and take a '+': a value is a digit or '-' then a digit. */
static int starts_like_number(const char *s)
{
    return is_digit(s[0]) || (s[0] == '-' && (is_digit(s[1]) || s[1] == '.')) || (s[0] == '.' && is_digit(s[1]));
}

/* Parses a signed decimal integer at s; *end is where it stopped. 0 on overflow or no digits. */
static int scan_int(const char *s, long long *out, const char **end)
{
    if (!(is_digit(s[0]) || (s[0] == '-' && is_digit(s[1]))))
        return 0;
    char *e;
    errno = 0;
    *out = strtoll(s, &e, 10);
    *end = e;
    return errno == 0;
}

pare_status pare_parse_int(const char *what, const char *text, long long lo, long long hi, long long *out,
                           pare_error *err)
{
    long long v;
    const char *end;
    if (!text || !scan_int(text, &v, &end) || *end)
        return pare_fail(err, PARE_EINVAL, "%s '%s': expected an integer from %lld to %lld", what, text ? text : "", lo,
                         hi);
    if (v < lo || v > hi)
        return pare_fail(err, PARE_EINVAL, "%s '%s': out of range; expected an integer from %lld to %lld", what, text,
                         lo, hi);
    *out = v;
    return PARE_OK;
}

pare_status pare_parse_u64(const char *what, const char *text, uint64_t *out, pare_error *err)
{
    char *end;
    errno = 0;
    unsigned long long v = text && is_digit(text[0]) ? strtoull(text, &end, 10) : 0;
    if (!text || !is_digit(text[0]) || *end || errno)
        return pare_fail(err, PARE_EINVAL, "%s '%s': expected a whole number from 0 to %llu", what, text ? text : "",
                         (unsigned long long)UINT64_MAX);
    *out = v;
    return PARE_OK;
}

pare_status pare_parse_double(const char *what, const char *text, double lo, double hi, double *out, pare_error *err)
{
    char *end = NULL;
    double v = 0;
    int ok = text && starts_like_number(text);
    if (ok) {
        v = strtod(text, &end);
        /* strtod reads "0x1p3" as hexadecimal; an 'x' after a leading 0 is not a decimal number */
        ok = !*end && isfinite(v) && !strpbrk(text, "xX");
    }
    if (!ok)
        return pare_fail(err, PARE_EINVAL, "%s '%s': expected a finite decimal number", what, text ? text : "");
    if (!(v >= lo && v <= hi))
        return pare_fail(err, PARE_EINVAL, "%s '%s': out of range; expected a number from %g to %g", what, text, lo, hi);
    *out = v;
    return PARE_OK;
}

pare_status pare_parse_int_pair(const char *what, const char *text, char sep, int lo, int hi, int *a, int *b,
                                pare_error *err)
{
    long long x, y;
    const char *end;
    if (!text || !scan_int(text, &x, &end) || *end != sep || !scan_int(end + 1, &y, &end) || *end)
        return pare_fail(err, PARE_EINVAL, "%s '%s': expected two integers separated by '%c' (e.g. 2%c4)", what,
                         text ? text : "", sep, sep);
    if (x < lo || x > hi || y < lo || y > hi)
        return pare_fail(err, PARE_EINVAL, "%s '%s': out of range; each must be from %d to %d", what, text, lo, hi);
    *a = (int)x;
    *b = (int)y;
    return PARE_OK;
}

pare_status pare_parse_nm(const char *what, const char *text, int *n, int *m, pare_error *err)
{
    int a, b;
    pare_status rc = pare_parse_int_pair(what, text, ':', 1, PARE_NM_MAX_M, &a, &b, err);
    if (rc == PARE_OK && a >= b)
        rc = pare_fail(err, PARE_EINVAL, "%s '%s': expected N:M with 1 <= N < M (e.g. 2:4)", what, text);
    if (rc)
        return rc;
    *n = a;
    *m = b;
    return PARE_OK;
}
