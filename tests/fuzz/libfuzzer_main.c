/* libFuzzer entry point for one target, chosen by the environment variable PARE_FUZZ_TARGET
 * (`make fuzz` sets it for each target in turn). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/environment.h"
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const fuzz_target *t;
    if (!t) {
        const char *name = getenv("PARE_FUZZ_TARGET");
        t = name ? fuzz_target_find(name) : NULL;
        if (!t) {
            fprintf(stderr, "PARE_FUZZ_TARGET must name a target of tests/fuzz/targets.c\n");
            abort();
        }
        cli_apply_environment(); /* the limits a user sets, as ./pare takes them */
    }
    t->run(data, size);
    return 0;
}
