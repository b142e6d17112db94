/* Generation by re-running the forward over the sequence so far (the models pare handles are small;
 * the context is capped at the model's positions, keeping the most recent tokens). */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "rng.h"

void pare_gen_defaults(pare_gen_opts *o)
{
    o->max_new = 64;
    o->temperature = 0.0f;
    o->top_p = 1.0f;
    o->seed = 42;
    o->stop_at_eos = 1;
}

static float rng_uniform(uint64_t *s) { return (float)(pare_xorshift64star(s) >> 40) / 16777216.0f; }

typedef struct {
    float p;
    int i;
} prob_index;

static int cmp_prob_desc(const void *a, const void *b)
{
    const prob_index *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : x->i - y->i;
}

static int sample(float *logits, int V, const pare_gen_opts *o, uint64_t *rng, prob_index *scratch)
{
    int best = 0;
    for (int j = 1; j < V; j++)
        if (logits[j] > logits[best])
            best = j;
    if (o->temperature <= 0.0f)
        return best;
    float mx = logits[best];
    double sum = 0;
    for (int j = 0; j < V; j++) {
        logits[j] = expf((logits[j] - mx) / o->temperature);
        sum += logits[j];
    }
    for (int j = 0; j < V; j++)
        scratch[j] = (prob_index){(float)(logits[j] / sum), j};
    int n = V;
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
        qsort(scratch, (size_t)V, sizeof *scratch, cmp_prob_desc);
        double cum = 0;
        for (n = 0; n < V; n++) {
            cum += scratch[n].p;
            if (cum >= o->top_p) {
                n++;
                break;
            }
        }
        if (n > V)
            n = V;
    }
    double mass = 0;
    for (int j = 0; j < n; j++)
        mass += scratch[j].p;
    double r = rng_uniform(rng) * mass, c = 0;
    for (int j = 0; j < n; j++) {
        c += scratch[j].p;
        if (r < c)
            return scratch[j].i;
    }
    return scratch[n - 1].i;
}

pare_status pare_generate(const pare_model *m, int32_t *ids, int n_prompt, const pare_gen_opts *o, pare_token_fn fn,
                          void *user, int *n_out, pare_error *err)
{
    *n_out = n_prompt;
    if (n_prompt < 1)
        return pare_fail(err, PARE_EINVAL, "generate: the prompt is empty (no BOS and no tokens)");
    if (o->max_new < 0)
        return pare_fail(err, PARE_EINVAL, "generate: -n %d must not be negative", o->max_new);
    if (o->temperature < 0 || o->top_p <= 0 || o->top_p > 1)
        return pare_fail(err, PARE_EINVAL, "generate: temperature must be >= 0 and top-p in (0, 1]");
    int V = m->cfg.vocab_size, ctx = m->cfg.max_pos;
    int total = n_prompt + o->max_new;
    int T = total < ctx ? total : ctx;
    pare_acts *a;
    pare_status rc = pare_acts_alloc(m, 1, T, 0, &a, err);
    if (rc)
        return rc;
    prob_index *scratch = malloc((size_t)V * sizeof *scratch);
    if (!scratch) {
        pare_acts_free(a);
        return pare_fail(err, PARE_ENOMEM, "out of memory");
    }
    uint64_t rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
    int n = n_prompt;
    while (n < total) {
        int len = n < ctx ? n : ctx;
        if ((rc = pare_forward(m, a, ids + n - len, 1, len, PARE_LOGITS_LAST, err)))
            break;
        for (int j = 0; j < V; j++)
            if (!isfinite(a->logits[j])) {
                rc = pare_fail(err, PARE_EFORMAT,
                               "%s: non-finite logits after %d tokens (id %d is %g): the model's activations overflow "
                               "or its weights are corrupt",
                               m->path, n, j, (double)a->logits[j]);
                break;
            }
        if (rc)
            break;
        int next = sample(a->logits, V, o, &rng, scratch);
        ids[n++] = next;
        if (fn && fn(user, next))
            break;
        if (o->stop_at_eos &&
            (pare_config_is_eos(&m->cfg, next) || (m->format == PARE_FMT_LLAMA2C && next == m->cfg.bos_id)))
            break;
    }
    free(scratch);
    pare_acts_free(a);
    *n_out = n;
    return rc;
}
