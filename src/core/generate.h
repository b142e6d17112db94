/* Text generation: greedy or temperature / top-p sampling from a prompt, with a per-token callback. */
#ifndef PARE_GENERATE_H
#define PARE_GENERATE_H

#include <stdint.h>
#include "error.h"
#include "model.h"

typedef struct {
    int max_new;       /* tokens to generate */
    float temperature; /* 0: greedy (argmax, first maximum on ties) */
    float top_p;       /* nucleus mass in (0, 1]; 1 disables */
    uint64_t seed;
    int stop_at_eos; /* stop after emitting EOS (and BOS for llama2.c models, which delimit stories with it) */
} pare_gen_opts;

/* Called after each new token; returning non-zero stops generation early (not an error). */
typedef int (*pare_token_fn)(void *user, int32_t token);

void pare_gen_defaults(pare_gen_opts *o);
/* ids holds the prompt (n_prompt >= 1) and room for max_new more; *n_out gets the total length. */
pare_status pare_generate(const pare_model *m, int32_t *ids, int n_prompt, const pare_gen_opts *o, pare_token_fn fn,
                          void *user, int *n_out, pare_error *err);

#endif
