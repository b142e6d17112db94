/* Allocation-failure injection for the test runner: the runner is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup, so every allocation
 * pare's own code makes (core, UI state, tests) passes through tests/alloc_fault.c. Disarmed it only
 * forwards; armed with n it counts allocations and makes the nth one fail (NULL, errno ENOMEM).
 * Allocations inside shared libraries (libc internals, jansson, OpenBLAS, OpenMP) are not wrapped:
 * jansson 2.14 itself double-frees when an allocation fails inside its parser (json_loadb ->
 * json_object_setn_new_nocheck), so routing its allocations here would only find that. */
#ifndef PARE_TEST_ALLOC_FAULT_H
#define PARE_TEST_ALLOC_FAULT_H

#include <stddef.h>

/* Starts counting from zero; the nth allocation from now fails (n >= 1), or none when n == 0. */
void alloc_fault_arm(long n);
/* Stops counting and failing. */
void alloc_fault_disarm(void);
/* Allocations counted since the last arm. */
long alloc_fault_count(void);
/* Non-zero when the armed failure happened. */
int alloc_fault_fired(void);

#endif
