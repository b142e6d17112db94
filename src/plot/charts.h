/* The charts pare draws of a model and of runs: each function builds a pare_plot from core data
 * (spectra, masks, channel maps, parameter budgets, or size/quality points the caller read from run
 * records) and leaves rendering to the caller (pare_plot_write_png or the terminal renderer). The
 * caller destroys the plot. docs/plots.md shows each chart and what it is for. */
#ifndef PARE_CHARTS_H
#define PARE_CHARTS_H

#include <stddef.h>

#include "core/calib.h"
#include "core/error.h"
#include "core/model.h"
#include "plot.h"
#include "core/spectrum.h"

/* ---------------------------------------------------------------- naming block matrices */

/* The matrix types of a decoder block are the linear kinds (linear_kind.h: pare_lin_kinds[t].name is
 * "q", ..., "down"; GPT-2: c_fc is up, c_proj down). */

/* Layer and type of a block matrix from its name as pare names them (model.layers.3.self_attn.q_proj,
 * transformer.h.3.attn.c_attn.q, transformer.h.3.mlp.c_proj, ...). Returns 1, or 0 for another name. */
int pare_matrix_name_parse(const char *name, int *layer, pare_lin_kind *type);
/* A short label for axes: "3.q" (layer.type), or the name itself when it is not a block matrix's. */
void pare_matrix_short_label(const char *name, char *buf, size_t cap);
/* The block linear called name: its full name or LAYER.TYPE ("3.q", "0.down"). *layer (may be NULL)
 * gets its layer. An unknown name is PARE_EINVAL naming the model and a few valid names. */
pare_status pare_model_find_linear(pare_model *m, const char *name, pare_linear **out, int *layer, pare_error *err);

/* ---------------------------------------------------------------- charts of a model */

/* Options of the model charts; zeroed fields are the defaults, and each chart reads only its own. */
typedef struct {
    const char *title;             /* NULL: a title naming the matrix, type or model */
    const pare_calib_stats *calib; /* pare_calibrate's statistics of the model as it is now, or NULL */
    pare_weighting weighting;      /* spectra by type, energy ranks: which spectrum (needs calib unless NONE) */
    int rank;                      /* spectrum: rank marked "rank K"; 0: the matrix's rank when it is
                                       factorized, else none; < 0: none */
    int tile;                      /* mask: tile edge in weights; 0: automatic (at most 64 tiles along the
                                       longer side) */
    const pare_progress *progress; /* spectra by type, energy ranks (stage "spectra") */
} pare_chart_opts;

/* 1. Spectrum of one matrix: singular values σ_i / σ_1 against i = 1..r (r = min(out, in), or the
 * rank k of a factorized matrix, whose remaining values are zero) on a log y axis, as the series
 * "plain" and, when o->calib holds the matrix's input statistics, "activation-weighted"
 * (W·diag(||X_j||)) and, when it holds its Gram matrix too, "whitened" (W·L); each curve is divided
 * by its own σ_1 because the weightings scale the values by the activation norms, which would
 * separate the shapes by orders of magnitude. The cumulative energy of each curve is dashed, in its
 * colour, on the y2 axis [0, 1]. Vertical lines: "rank K" (see o->rank) and "break-even B" at
 * pare_break_even_rank(out, in), dashed. Values that are exactly 0 cannot be shown on the log axis
 * and are left as gaps. */
pare_status pare_chart_spectrum(pare_model *m, const char *matrix, const pare_chart_opts *o, pare_plot **out,
                                pare_error *err);

/* 2. Spectra of one matrix type ("q", "k", "v", "o", "gate", "up", "down") in every layer, weighted
 * by o->weighting, each normalized by its σ_1: one line per layer ("layer L"), coloured along the
 * sequential colormap from the first layer (dark) to the last; with more than 8 layers only the
 * first and the last are named in the legend. A model without that type (GPT-2 has no gate) is an
 * error. */
pare_status pare_chart_spectra_by_type(pare_model *m, const char *type, const pare_chart_opts *o, pare_plot **out,
                                       pare_error *err);

/* 3. Rank needed for 90 / 95 / 99% of the (weighted) spectral energy of every block matrix, as a
 * fraction of its full rank min(out, in) so that matrices of different shapes compare: three grouped
 * bar series "90%", "95%", "99%" over the matrices sorted by type (q, k, v, o, gate, up, down) and
 * then by layer, labelled "L.type", and the markers "break-even" at break_even / min(out, in) (a bar
 * above its marker needs more parameters factorized than dense). The title gives the mean 90% fraction
 * of the attention and of the FFN matrices: LoRAP's observation that attention is the more low-rank. */
pare_status pare_chart_energy_ranks(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err);

/* 4a. Density of one matrix's mask per tile of o->tile x o->tile weights (edge tiles are smaller and
 * count only their own weights): a heatmap of ceil(out / tile) rows (row 0 at the top) by
 * ceil(in / tile) columns in [0, 1], labelled with each tile's first row and column. A dense matrix
 * shows density 1 everywhere; a factorized one has no mask (error). */
pare_status pare_chart_mask_heatmap(pare_model *m, const char *matrix, const pare_chart_opts *o, pare_plot **out,
                                    pare_error *err);
/* The tile edge pare_chart_mask_heatmap uses for an out x in matrix when o->tile is 0. */
int pare_chart_auto_tile(int out, int in);

/* 4b. FFN channel keep-map: layers (rows, layer 0 at the top) x original FFN channels (columns), 1
 * where the channel is kept and 0 where channel pruning removed it (from the up projection's
 * kept_out). */
pare_status pare_chart_channel_map(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err);

/* ---------------------------------------------------------------- budgets */

/* One matrix of a budget: parameters of its dense original and kept now, and how it was compressed:
 * "dense", "factorized", "masked" or "sliced" (rows or columns removed); any other kind is drawn as
 * its own series. */
typedef struct {
    const char *name; /* full matrix name (shortened to "L.type" on the axis) */
    const char *kind;
    double dense, kept;
} pare_budget_item;

/* 5. Parameters kept per matrix: stacked bars, one series per kind present (in the order dense,
 * factorized, masked, sliced, then others) holding the kept parameters of the matrices of that kind,
 * and "removed" (dense - kept, grey; NaN, i.e. no bar, where nothing was removed or a factorization
 * above break-even grew the matrix; the series is left out when nothing was removed anywhere) on
 * top, so every bar is as tall as its dense matrix. Items in the order given. The title sums the
 * budget ("parameters kept per matrix: 1.2M of 2M (60.0%)"), after "WHAT: " when what is given (e.g.
 * the method). */
pare_status pare_chart_budget_items(const pare_budget_item *items, int n, const char *what, pare_plot **out,
                                    pare_error *err);
/* The budget items of the model as it is now (dense = orig_out·orig_in plus the bias, kept =
 * pare_linear_params), in pare_model_linears order, and its chart. *items is one malloc'd array
 * (free() it); its names point into the model. */
pare_status pare_model_budget_items(pare_model *m, pare_budget_item **items, int *n, pare_error *err);
pare_status pare_chart_budget(pare_model *m, const pare_chart_opts *o, pare_plot **out, pare_error *err);
/* The kind of a matrix as budgets name it. */
const char *pare_linear_budget_kind(const pare_linear *l);

/* ---------------------------------------------------------------- size against quality */

typedef struct {
    const char *series; /* e.g. the method; points of one series are joined, sorted by params */
    double params;      /* parameters under the caller's convention */
    double value;       /* the metric (perplexity, accuracy) */
} pare_sq_point;

typedef struct {
    const char *title;     /* NULL: "size against quality" */
    const char *x_label;   /* the parameter convention, e.g. "parameters (decoder-block linears)" */
    const char *y_label;   /* the metric, e.g. "ppl wiki.test.raw" */
    int log_x, log_y;      /* logarithmic axes (values must then be > 0) */
    const char *reference; /* points of this series (e.g. "dense") also get a horizontal line
                              labelled "NAME VALUE"; NULL: none */
} pare_sq_opts;

/* 6. Size against quality: one LINE_MARKERS series per distinct series name (in order of first
 * appearance), points sorted by params. Points with a non-finite params or value are errors naming
 * the series and the point; no points is an error. */
pare_status pare_chart_size_quality(const pare_sq_point *pts, int n, const pare_sq_opts *o, pare_plot **out,
                                    pare_error *err);

#endif
