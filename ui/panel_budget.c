/* The budget pane: method (and so the allocation policy), target ratio, LoRAP split, keep_least,
 * energy threshold, weighting and N:M (mask methods and masked types); the configuration's totals under both parameter conventions
 * (decoder-block linears, all parameters) and what each matrix type gets, updated as values change.
 * Nothing is compressed here: the totals come from the plan. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/numparse.h"
#include "tui_internal.h"

enum { F_METHOD, F_RATIO, F_SPLIT, F_KEEP, F_ENERGY, F_WEIGHTING, F_NM, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"method", "ratio", "split", "keep_least", "energy", "weighting", "nm"};
/* The N:M patterns Left/Right step through (0:0 is off: unstructured masks at the ratio). */
static const int NM_STEPS[][2] = {{0, 0}, {2, 4}, {4, 8}, {1, 4}, {1, 2}};
#define N_NM_STEPS ((int)(sizeof NM_STEPS / sizeof NM_STEPS[0]))

static const pare_method *budget_method(const tui_app *a)
{
    return a->st.method_idx >= 0 ? &pare_methods(NULL)[a->st.method_idx] : NULL;
}

/* Whether field f matters for the budget's method. */
static int applies(const tui_app *a, int f)
{
    const pare_method *me = budget_method(a);
    if (f == F_METHOD)
        return 1;
    if (f == F_NM) /* mask methods, and masked types of the method per type (m) */
        return (me && me->policy == PARE_POLICY_MASK) || a->st.cfg.kind == TUI_CFG_MANUAL;
    if (!me)
        return 0;
    switch (f) {
    case F_RATIO: return me->policy != PARE_POLICY_ENERGY;
    case F_SPLIT: return me->policy == PARE_POLICY_LORAP;
    case F_ENERGY: return me->policy == PARE_POLICY_ENERGY;
    case F_WEIGHTING: return me->policy == PARE_POLICY_GLOBAL || me->policy == PARE_POLICY_ENERGY;
    default: return 1;
    }
}

void tui_budget_field_text(const tui_app *a, int f, char *buf, size_t cap)
{
    const pare_method_opts *o = &a->st.mo;
    const pare_method *me = budget_method(a);
    switch (f) {
    case F_METHOD: snprintf(buf, cap, "%s", me ? me->name : "dense"); break;
    case F_RATIO: snprintf(buf, cap, "%.3g", o->ratio); break;
    case F_SPLIT: snprintf(buf, cap, "%.3g", o->split); break;
    case F_KEEP: snprintf(buf, cap, "%.3g", o->keep_least); break;
    case F_ENERGY: snprintf(buf, cap, "%.3g", o->energy); break;
    case F_NM:
        if (o->nm_m > 0)
            snprintf(buf, cap, "%d:%d", o->nm_n, o->nm_m);
        else
            snprintf(buf, cap, "off (masks at the ratio)");
        break;
    default:
        if (o->weighting >= 0)
            snprintf(buf, cap, "%s", PARE_WEIGHTING_NAMES[o->weighting]);
        else
            snprintf(buf, cap, "method's (%s)", me ? PARE_WEIGHTING_NAMES[me->weighting] : "-");
    }
}

/* The configuration follows the budget unless per-matrix ranks were set (then u switches back). */
static void budget_changed(tui_app *a)
{
    if (a->st.cfg.kind != TUI_CFG_MANUAL)
        tui_state_use_budget(&a->st);
    if (a->st.dec_need >= 0)
        tui_want_spectra(a, a->st.dec_need);
    tui_want_auto(a);
}

int tui_budget_apply_text(tui_app *a, int f, const char *text)
{
    if (f == F_NM) { /* "2:4", or off / 0 / empty */
        int n = 0, m = 0;
        if (!*text || !strcmp(text, "off") || !strcmp(text, "0"))
            a->st.mo.nm_n = a->st.mo.nm_m = 0;
        else if (pare_parse_nm("N:M", text, &n, &m, NULL) == PARE_OK) {
            a->st.mo.nm_n = n;
            a->st.mo.nm_m = m;
        } else
            return -1;
        budget_changed(a);
        return 0;
    }
    char *end;
    double v = strtod(text, &end);
    while (*end == ' ')
        end++;
    if (end == text || *end || !isfinite(v))
        return -1;
    if (f != F_SPLIT && v > 1 && v < 100) /* fractions typed as percentages: 35 is 0.35 */
        v /= 100;
    pare_method_opts *o = &a->st.mo;
    switch (f) {
    case F_RATIO: o->ratio = v; break;
    case F_SPLIT: o->split = v; break;
    case F_KEEP: o->keep_least = v; break;
    case F_ENERGY: o->energy = v; break;
    default: return -1;
    }
    budget_changed(a);
    return 0;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Left/Right (and </> for ten steps) on field f. */
static void step(tui_app *a, int f, int dir)
{
    pare_method_opts *o = &a->st.mo;
    int count;
    pare_methods(&count);
    switch (f) {
    case F_METHOD: {
        int m = a->st.method_idx + (dir > 0 ? 1 : -1); /* -1 is dense */
        a->st.method_idx = m < -1 ? count - 1 : m >= count ? -1 : m;
        a->auto_analysis_failed = 0; /* chosen again: auto's sensitivity pass may run again */
        break;
    }
    case F_RATIO: o->ratio = clampd(round((o->ratio + 0.01 * dir) * 1000) / 1000, 0.01, 0.99); break;
    case F_SPLIT: o->split = clampd(o->split + 0.5 * dir, 0.5, 20); break;
    case F_KEEP: o->keep_least = clampd(round((o->keep_least + 0.01 * dir) * 1000) / 1000, 0, 0.5); break;
    case F_ENERGY: o->energy = clampd(round((o->energy + 0.01 * dir) * 1000) / 1000, 0.01, 1); break;
    case F_NM: {
        int k = 0;
        for (int i = 0; i < N_NM_STEPS; i++)
            if (NM_STEPS[i][0] == o->nm_n && NM_STEPS[i][1] == o->nm_m)
                k = i;
        k = (k + (dir > 0 ? 1 : -1) + N_NM_STEPS) % N_NM_STEPS;
        o->nm_n = NM_STEPS[k][0];
        o->nm_m = NM_STEPS[k][1];
        break;
    }
    default: {
        int w = o->weighting + (dir > 0 ? 1 : -1);
        o->weighting = w < -1 ? 2 : w > 2 ? -1 : w;
    }
    }
    budget_changed(a);
}

/* What each matrix type gets, types with the same decisions together: "q k v o: factorized act;
 * gate up down: sliced". This is the plan's method per matrix type. */
static void by_type(const tui_state *st, char *buf, size_t cap)
{
    static const char *const ACT[] = {"dense", "factorized", "sliced", "masked"};
    char sum[TUI_TYPES][64];
    int present[TUI_TYPES] = {0}, done[TUI_TYPES] = {0};
    for (int t = 0; t < TUI_TYPES; t++) {
        int seen[4] = {0}, w = -1;
        for (int i = 0; i < st->n; i++)
            if (st->type[i] == t) {
                present[t] = 1;
                seen[st->dec[i].action] = 1;
                if (st->dec[i].action == PARE_PLAN_FACTOR)
                    w = st->dec[i].weighting;
            }
        size_t o = 0;
        sum[t][0] = 0;
        for (int k = 0; k < 4; k++)
            if (seen[k] && o < sizeof sum[t])
                o += (size_t)snprintf(sum[t] + o, sizeof sum[t] - o, "%s%s", o ? "+" : "", ACT[k]);
        if (w >= 0 && o < sizeof sum[t])
            snprintf(sum[t] + o, sizeof sum[t] - o, " %s", PARE_WEIGHTING_NAMES[w]);
    }
    size_t o = 0;
    buf[0] = 0;
    for (int t = 0; t < TUI_TYPES && o < cap; t++) {
        if (!present[t] || done[t])
            continue;
        if (o)
            o += (size_t)snprintf(buf + o, cap - o, "; ");
        for (int u = t; u < TUI_TYPES && o < cap; u++)
            if (present[u] && !done[u] && !strcmp(sum[u], sum[t])) {
                done[u] = 1;
                o += (size_t)snprintf(buf + o, cap - o, "%s%s", u == t ? "" : " ", TUI_TYPE_NAME(u));
            }
        if (o < cap)
            o += (size_t)snprintf(buf + o, cap - o, ": %s", sum[t]);
    }
}

/* One " LABEL before -> after  -x%" line of the parameter totals. */
static void put_change(int y, int x, int w, const char *label, const char *arrow, size_t before, size_t after)
{
    char line[256], b0[32], b1[32];
    tui_human(before, b0, sizeof b0);
    tui_human(after, b1, sizeof b1);
    snprintf(line, sizeof line, " %s %s %s %s  %+.1f%%", label, b0, arrow, b1,
             -100.0 * (1.0 - (double)after / (double)before));
    tui_put(y, x, w, line, A_NORMAL);
}

void tui_budget_draw(tui_app *a, tui_rect r, int focused)
{
    tui_state *st = &a->st;
    tui_box(a, r, "Budget", focused);
    int x = r.x + 1, w = r.w - 2, h = r.h - 2, y = r.y + 1;
    if (w < 10 || h < 1)
        return;
    const pare_method *me = budget_method(a);
    for (int f = 0; f < F_COUNT && y < r.y + 1 + h; f++, y++) {
        char val[128], line[256];
        tui_budget_field_text(a, f, val, sizeof val);
        if (a->edit == ED_BUDGET && a->edit_field == f)
            snprintf(val, sizeof val, "%.120s_", a->edit_buf);
        int sel = focused && a->bud_row == f;
        int at = sel ? tui_attr(a, PAIR_SEL) : applies(a, f) ? 0 : tui_attr(a, PAIR_DIM);
        if (f == F_METHOD)
            snprintf(line, sizeof line, " %-11s%s %s %s  %s", FIELD_NAMES[f], a->utf8 ? "◂" : "<", val,
                     a->utf8 ? "▸" : ">", me ? pare_policy_name(me->policy) : "no compression");
        else
            snprintf(line, sizeof line, " %-11s%s", FIELD_NAMES[f], val);
        tui_fill(y, x, w, at);
        tui_put(y, x, w, line, at);
    }
    char label[96], line[256];
    tui_config_label(&st->cfg, label, sizeof label);
    if (y < r.y + 1 + h) {
        if (st->cfg.kind == TUI_CFG_MANUAL)
            snprintf(line, sizeof line, " config     %s · u: use the budget", label);
        else
            snprintf(line, sizeof line, " config     %s", label);
        tui_put(y++, x, w, line, A_BOLD);
    }
    if (!st->dec_ok) { /* the reason, wrapped over the lines left */
        int at = st->dec_need >= 0 ? tui_attr(a, PAIR_DIM) : tui_attr(a, PAIR_ERROR);
        for (const char *s = st->dec_err; *s && y < r.y + 1 + h; y++) {
            char chunk[256];
            int n = w - 2 < (int)sizeof chunk - 1 ? w - 2 : (int)sizeof chunk - 1, len = (int)strlen(s);
            if (len > n) /* break at a space when there is one */
                for (int k = n; k > n / 2; k--)
                    if (s[k] == ' ') {
                        n = k;
                        break;
                    }
            n = len < n ? len : n;
            snprintf(chunk, sizeof chunk, " %.*s", n, s);
            tui_put(y, x, w, chunk, at);
            s += n;
            while (*s == ' ')
                s++;
        }
        return;
    }
    const char *arrow = a->utf8 ? "→" : "->";
    if (y < r.y + 1 + h)
        put_change(y++, x, w, "block lin.", arrow, st->block_before, st->block_after);
    if (y < r.y + 1 + h)
        put_change(y++, x, w, "all params", arrow, st->total_before, st->total_after);
    if (y < r.y + h) { /* only with room left for the types line below */
        snprintf(line, sizeof line, " %d factorized, %d sliced, %d masked", st->n_factor, st->n_channels, st->n_mask);
        tui_put(y++, x, w, line, tui_attr(a, PAIR_DIM));
    }
    if (y < r.y + 1 + h) {
        char types[512];
        if (me && me->policy == PARE_POLICY_AUTO) /* its loss model's view of this ratio, beside uniform's */
            snprintf(types, sizeof types, "predicted +%.4g nats/tok, uniform svdllm +%.4g (b: plot)",
                     st->auto_predicted, st->uniform_predicted);
        else
            by_type(st, types, sizeof types);
        snprintf(line, sizeof line, " %.250s", types);
        tui_put(y++, x, w, line, tui_attr(a, PAIR_DIM));
    }
}

int tui_budget_key(tui_app *a, int ch)
{
    switch (ch) {
    case KEY_UP:
    case 'k': a->bud_row = a->bud_row > 0 ? a->bud_row - 1 : 0; return 1;
    case KEY_DOWN:
    case 'j': a->bud_row = a->bud_row < F_COUNT - 1 ? a->bud_row + 1 : F_COUNT - 1; return 1;
    case KEY_LEFT:
    case KEY_RIGHT: step(a, a->bud_row, ch == KEY_RIGHT ? 1 : -1); return 1;
    case '<':
    case '>':
        for (int i = 0; i < (a->bud_row == F_METHOD || a->bud_row == F_WEIGHTING || a->bud_row == F_NM ? 1 : 10); i++)
            step(a, a->bud_row, ch == '>' ? 1 : -1);
        return 1;
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (a->bud_row == F_METHOD || a->bud_row == F_WEIGHTING)
            step(a, a->bud_row, 1);
        else {
            char val[64], prompt[64];
            tui_budget_field_text(a, a->bud_row, val, sizeof val);
            snprintf(prompt, sizeof prompt, "%s: ", FIELD_NAMES[a->bud_row]);
            tui_start_edit(a, ED_BUDGET, a->bud_row, prompt, val);
        }
        return 1;
    default:
        if (ch >= '0' && ch <= '9' && a->bud_row != F_METHOD && a->bud_row != F_WEIGHTING) {
            char prompt[64], first[2] = {(char)ch, 0};
            snprintf(prompt, sizeof prompt, "%s: ", FIELD_NAMES[a->bud_row]);
            tui_start_edit(a, ED_BUDGET, a->bud_row, prompt, first);
            return 1;
        }
        return 0;
    }
}

void tui_budget_click(tui_app *a, int x, int y)
{
    tui_rect r = a->lay.pane[TUI_P_BUDGET];
    int f = y - r.y - 1;
    if (f < 0 || f >= F_COUNT)
        return;
    if (f == a->bud_row && (f == F_METHOD || f == F_WEIGHTING)) /* clicking the arrows steps */
        step(a, f, x < r.x + r.w / 2 ? -1 : 1);
    a->bud_row = f;
}
