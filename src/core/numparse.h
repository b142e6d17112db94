/* Strict parsing of numbers given as text (command-line options, environment variables, N:M and
 * WxH pairs): the whole string must be the number, integers must lie in a stated range, doubles must
 * be finite and in range. Every front end parses through these, so "2:4x", "nan" or a value that
 * wraps around is refused the same way everywhere, with a message naming what was parsed. */
#ifndef PARE_NUMPARSE_H
#define PARE_NUMPARSE_H

#include <stdint.h>

#include "error.h"

/* `what` names the option or variable in the message, e.g. "--window" or "PARE_THREADS". */
pare_status pare_parse_int(const char *what, const char *text, long long lo, long long hi, long long *out,
                           pare_error *err);
/* Digits only (no sign): a count or seed up to UINT64_MAX. */
pare_status pare_parse_u64(const char *what, const char *text, uint64_t *out, pare_error *err);
/* A finite decimal number in [lo, hi] (no "nan", "inf" or hexadecimal floats). */
pare_status pare_parse_double(const char *what, const char *text, double lo, double hi, double *out, pare_error *err);
/* Two integers in [lo, hi] separated by `sep`, e.g. "1200x800" with sep 'x'. */
pare_status pare_parse_int_pair(const char *what, const char *text, char sep, int lo, int hi, int *a, int *b,
                                pare_error *err);
/* N:M semi-structured sparsity: 1 <= N < M <= PARE_NM_MAX_M. */
#define PARE_NM_MAX_M 1024
pare_status pare_parse_nm(const char *what, const char *text, int *n, int *m, pare_error *err);

#endif
