/* Fuzz targets: each feeds arbitrary bytes to one of pare's parsers. The same functions run under
 * libFuzzer (`make fuzz`, tests/fuzz/libfuzzer_main.c) and replay the committed corpus in `make test`
 * (tests/test_fuzz.c). A target returns normally on every input; errors are expected, crashes,
 * hangs, leaks and sanitizer reports are the findings. */
#ifndef PARE_FUZZ_TARGETS_H
#define PARE_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    void (*run)(const uint8_t *data, size_t size);
} fuzz_target;

/* NULL-name terminated. */
extern const fuzz_target fuzz_targets[];
const fuzz_target *fuzz_target_find(const char *name);

#endif
