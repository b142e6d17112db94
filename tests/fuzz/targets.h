/* Fuzz targets: each feeds arbitrary bytes to one of pare's parsers. The same functions run under
 * libFuzzer (`make fuzz`, tests/fuzz/libfuzzer_main.c) and replay the committed corpus in `make test`
 * (tests/test_fuzz.c). A target returns normally on every input; errors are expected, crashes,
 * hangs, leaks and sanitizer reports are the findings. */
#ifndef PARE_FUZZ_TARGETS_H
#define PARE_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Targets that read several files take them from one input split at this line (make_seeds.py writes
 * the same separator). */
#define PARE_FUZZ_SEP "\n--pare-fuzz-part--\n"

typedef struct {
    const char *name;
    void (*run)(const uint8_t *data, size_t size);
} fuzz_target;

/* NULL-name terminated. */
extern const fuzz_target fuzz_targets[];
const fuzz_target *fuzz_target_find(const char *name);

/* Shared by the targets (targets.c): one part of an input split at PARE_FUZZ_SEP. */
typedef struct {
    const uint8_t *data;
    size_t size;
} fuzz_part;
/* Splits data into at most max parts; returns how many (>= 1). */
int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max);
/* A private folder for targets that read files by name (under /dev/shm when it exists, else $TMPDIR
 * or /tmp), created once per process and removed with its files at exit; NULL if it cannot be made. */
const char *fuzz_dir(void);
/* With PARE_FUZZ_VERBOSE set, prints why an input was refused (to check that seeds are valid). */
void fuzz_note(const char *target, const char *msg);
/* Writes DIR/name (sub-folders of fuzz_dir must exist); 0 on success. A NULL part removes the file. */
int fuzz_put(const char *name, const fuzz_part *part);

/* The recipe targets (target_recipe.c, linked with Lua): parameters, and values kept with pare.record. */
void fuzz_recipe_params(const uint8_t *data, size_t size);
void fuzz_recipe_record(const uint8_t *data, size_t size);

#endif
