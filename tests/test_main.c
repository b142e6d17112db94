/* The list of test suites; each suite function runs its tests with RUN(). */
#include "harness.h"

typedef struct {
    const char *name;
    void (*fn)(void);
} suite;

void suite_tokenizer(void);

const suite harness_suites[] = {
    {"tokenizer", suite_tokenizer},
    {0, 0},
};
