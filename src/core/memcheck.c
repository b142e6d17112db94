/* Memory available to this process and the check made before large allocations. */
#include "memcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set once by the front end before any work starts, like the thread count. */
static uint64_t memory_limit;
static const char *memory_limit_from; /* NULL: no cap */

void pare_set_memory_limit(uint64_t bytes, const char *source)
{
    memory_limit = source ? bytes : 0;
    memory_limit_from = source;
}

const char *pare_memory_limit_source(void) { return memory_limit_from; }

int pare_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0))
        return 0;
    double mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    default: break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')
        end += (*end == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
    if (*end || v * mul > 1.8e19)
        return 0;
    *out = (uint64_t)(v * mul);
    return 1;
}

uint64_t pare_memory_available(void)
{
    if (memory_limit_from)
        return memory_limit;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t avail = 0, swap = 0;
    int have = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            avail = (uint64_t)kb * 1024;
            have = 1;
        } else if (sscanf(line, "SwapFree: %llu kB", &kb) == 1)
            swap = (uint64_t)kb * 1024;
    }
    fclose(f);
    return have ? avail + swap : 0;
}

static pare_stream_mode stream_mode;

void pare_set_stream_mode(pare_stream_mode mode) { stream_mode = mode; }
pare_stream_mode pare_get_stream_mode(void) { return stream_mode; }

/* "1.25 GiB" or "48.3 MiB": small figures in GiB would all read 0.00 */
void pare_format_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= ((uint64_t)1 << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (1 << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
}

pare_status pare_memory_check(uint64_t need, const char *what, pare_error *err)
{
    uint64_t avail = pare_memory_available();
    if (avail && need > avail) {
        char n[32], a[32];
        pare_format_bytes(need, n, sizeof n);
        pare_format_bytes(avail, a, sizeof a);
        return pare_fail(err, PARE_ENOMEM, "%s needs %s, %s available%s%s%s", what, n, a, memory_limit_from ? " (" : "",
                         memory_limit_from ? memory_limit_from : "", memory_limit_from ? ")" : "");
    }
    return PARE_OK;
}
