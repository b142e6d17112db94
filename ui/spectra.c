/* The workbench's spectra, matrix by matrix: which models get the whole-model spectra at open and
 * which get each matrix's spectrum on demand (the rule and its cost estimate), and the per-matrix
 * cache that single-matrix jobs fill. Both kinds of job end in the same place: a matrix's spectrum
 * is looked up through tui_state_spectrum whichever job computed it, and once every matrix of a
 * weighting has one they are the whole-model spectra that the global and energy budgets need. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "state.h"

/* CPU seconds of one matrix's values by the double Gram route (dsyrk then dsyevd), r = min(m, n),
 * c = max(m, n): a r^3 + b r^2 c, fitted to docs/scale.md "SVD routes" (9.39 s at 4096 x 4096 and
 * 11.1 s at 4096 x 11008 on one thread). Smaller shapes come out up to 1.4x high: an estimate. */
#define GRAM_EIGEN_S_PER_R3 1.22e-10
#define GRAM_SYRK_S_PER_R2C 1.5e-11

double tui_spectra_cost_s(const tui_state *st)
{
    double cpu = 0;
    for (int i = 0; i < st->n; i++) {
        double m = st->lin[i]->out, n = st->lin[i]->in, r = m < n ? m : n, c = m < n ? n : m;
        cpu += GRAM_EIGEN_S_PER_R3 * r * r * r + GRAM_SYRK_S_PER_R2C * r * r * c;
    }
    int threads = pare_threads(); /* the whole-model job runs one matrix per thread */
    return cpu / (threads > 0 ? threads : 1);
}

int tui_spectra_on_demand_for(const tui_state *st)
{
    return pare_model_streamed(st->model) || tui_spectra_cost_s(st) > TUI_SPECTRA_AT_OPEN_S;
}

const pare_matrix_spectrum *tui_state_spectrum(const tui_state *st, int w, int i)
{
    if (w < 0 || w > 2 || i < 0 || i >= st->n)
        return NULL;
    if (st->spectra[w] && i < st->spectra[w]->count)
        return &st->spectra[w]->mats[i];
    if (st->partial[w] && st->partial[w]->mats[i].s)
        return &st->partial[w]->mats[i];
    return NULL;
}

int tui_spectra_count(const tui_state *st, int w)
{
    if (w < 0 || w > 2)
        return 0;
    if (st->spectra[w])
        return st->spectra[w]->count;
    int have = 0;
    for (int i = 0; st->partial[w] && i < st->partial[w]->count; i++)
        have += st->partial[w]->mats[i].s != NULL;
    return have;
}

int tui_state_put_spectrum(tui_state *st, int w, int i, pare_matrix_spectrum *ms)
{
    if (w < 0 || w > 2 || i < 0 || i >= st->n || !ms->s)
        return -1;
    if (st->spectra[w]) { /* the whole model's came first: this one is the same */
        pare_matrix_spectrum_clear(ms);
        return 0;
    }
    if (!st->partial[w]) {
        pare_model_spectra *p = calloc(1, sizeof *p);
        if (!p || !(p->mats = calloc((size_t)st->n, sizeof *p->mats))) {
            free(p);
            return -1;
        }
        p->count = st->n;
        st->partial[w] = p;
    }
    pare_matrix_spectrum_clear(&st->partial[w]->mats[i]);
    st->partial[w]->mats[i] = *ms;
    memset(ms, 0, sizeof *ms);
    if (tui_spectra_count(st, w) == st->n) { /* complete: the whole-model spectra, as if computed at once */
        st->spectra[w] = st->partial[w];
        st->partial[w] = NULL;
        tui_state_update(st);
    }
    return 0;
}

void tui_state_put_spectra(tui_state *st, int w, pare_model_spectra *sp)
{
    pare_model_spectra_free(st->spectra[w]);
    pare_model_spectra_free(st->partial[w]);
    st->partial[w] = NULL;
    st->spectra[w] = sp;
    tui_state_update(st);
}

void tui_spectra_need_text(const tui_state *st, int w, char *buf, size_t cap)
{
    if (!st->spectra_on_demand) {
        snprintf(buf, cap, "computing them");
        return;
    }
    double min = tui_spectra_cost_s(st) / 60;
    snprintf(buf, cap, "of all %d matrices (%d computed so far): S computes them all (~%.0f min)", st->n,
             tui_spectra_count(st, w), min < 1 ? 1 : min);
}
