/* What the fine-tuning files share and callers do not see: the run's state, read and restored by the
 * checkpoint code (finetune_checkpoint.c) and stepped by finetune.c. */
#ifndef PARE_FINETUNE_INTERNAL_H
#define PARE_FINETUNE_INTERNAL_H

#include "finetune.h"
#include "core/forward.h"

struct pare_ft {
    pare_model *m;
    const pare_token_stream *data;
    pare_ft_opts o;
    pare_trainer *t;
    pare_fop_state *fop;
    int32_t *ids, *targets; /* [accum * batch * seq] */
    /* mixed rank: factorized linears of m and their full-rank counterparts in o.sparse */
    int n_mix;
    pare_linear **mix_f, **mix_s;
    pare_linear *saved;
    int *swap;
    pare_acts *tacts; /* the sparse model's activations, for distillation */
};

#endif
