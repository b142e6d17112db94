/* The list of test suites; each suite function runs its tests with RUN(). */
#include "harness.h"

typedef struct {
    const char *name;
    void (*fn)(void);
} suite;

void suite_harness(void);
void suite_tokenizer(void);
void suite_forward(void);
void suite_formats(void);
void suite_linear(void);
void suite_calib(void);
void suite_spectrum(void);
void suite_factorize(void);
void suite_prune(void);
void suite_allocate(void);
void suite_auto(void);
void suite_export(void);
void suite_plot(void);
void suite_backward(void);
void suite_optim(void);
void suite_fuzz(void);
void suite_limits(void);
void suite_charts(void);
void suite_lua(void);
void suite_tasks(void);
void suite_cli(void);
void suite_lpaf(void);
void suite_tui(void);
void suite_demo(void);
void suite_faults(void);
void suite_numbers(void);
void suite_families(void);
void suite_family_compress(void);
void suite_init(void);
void suite_stream(void);

const suite harness_suites[] = {
    {"harness", suite_harness},
    {"tokenizer", suite_tokenizer},
    {"formats", suite_formats},
    {"forward", suite_forward},
    {"linear", suite_linear},
    {"calib", suite_calib},
    {"spectrum", suite_spectrum},
    {"factorize", suite_factorize},
    {"prune", suite_prune},
    {"allocate", suite_allocate},
    {"export", suite_export},
    {"plot", suite_plot},
    {"backward", suite_backward},
    {"optim", suite_optim},
    {"fuzz", suite_fuzz},
    {"limits", suite_limits},
    {"charts", suite_charts},
    {"lua", suite_lua},
    {"tasks", suite_tasks},
    {"cli", suite_cli},
    {"lpaf", suite_lpaf},
    {"tui", suite_tui},
    {"demo", suite_demo},
    {"faults", suite_faults},
    {"numbers", suite_numbers},
    {"families", suite_families},
    {"family_compress", suite_family_compress},
    {"init", suite_init},
    {"stream", suite_stream},
    {"auto", suite_auto},
    {0, 0},
};
