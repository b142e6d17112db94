/* The allocator wrappers behind alloc_fault.h (linked with -Wl,--wrap=...): count allocations while
 * armed and fail the chosen one, so tests can check that every allocation failure in pare's code
 * becomes an error status and leaks nothing. */
#include "alloc_fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_int armed;
static atomic_long fail_at, counted;
static atomic_int fired;

void alloc_fault_arm(long n)
{
    atomic_store(&counted, 0);
    atomic_store(&fired, 0);
    atomic_store(&fail_at, n);
    atomic_store(&armed, 1);
}

void alloc_fault_disarm(void) { atomic_store(&armed, 0); }
long alloc_fault_count(void) { return atomic_load(&counted); }
int alloc_fault_fired(void) { return atomic_load(&fired); }

/* Non-zero when this allocation is the one to fail. */
static int should_fail(void)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return 0;
    long c = atomic_fetch_add(&counted, 1) + 1;
    if (c != atomic_load(&fail_at))
        return 0;
    atomic_store(&fired, 1);
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return should_fail() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }

/* libc's strdup allocates inside libc, out of the wrapper's reach: these allocate through it. */
char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

char *__wrap_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = __wrap_malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}
