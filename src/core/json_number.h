/* Doubles into JSON. jansson's json_real returns NULL for NaN and infinities, and json_pack fails
 * as a whole on such a value ("f"); a NULL handed on to json_object_set_new or json_dumps crashes
 * or silently drops the record. Every double pare puts into JSON goes through pare_json_number,
 * which gives JSON null for a value that is not finite (JSON has no NaN), never NULL except when
 * out of memory, and json_pack takes it with "o". */
#ifndef PARE_JSON_NUMBER_H
#define PARE_JSON_NUMBER_H

#include <jansson.h>
#include <math.h>

static inline json_t *pare_json_number(double v) { return isfinite(v) ? json_real(v) : json_null(); }

#endif
