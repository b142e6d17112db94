/* Singular-value spectra of weight matrices: values-only spectra (plain, activation-weighted or
 * whitened), randomized or exact truncated SVD with optional factors, statistics of a spectrum
 * (energy curve, stable / effective rank, energy ranks, break-even rank, truncation error), and the
 * spectra of every block linear of a model.
 *
 * Conventions: a matrix is fp32, row-major [m, n]; for a pare_linear m = out, n = in. Singular
 * values come back in double, descending, min(m, n) of them for a full spectrum. Every entry point
 * takes the matrix's name (NULL reads as "matrix") so that error lines say which matrix failed. */
#ifndef PARE_SPECTRUM_H
#define PARE_SPECTRUM_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"
#include "model.h"

/* ---------------------------------------------------------------------------------------------
 * Values-only spectra
 * ------------------------------------------------------------------------------------------- */

/* How the singular values are computed.
 * GRAM (default): eigenvalues of the smaller Gram matrix (M Mᵀ or Mᵀ M) formed in double with dsyrk,
 *   then dsyevd; s_i = sqrt(max(λ_i, 0)). The absolute error of s_i is about ε_d·s_1²/s_i
 *   (ε_d = 1.1e-16), i.e. a relative error near 1e-16·(s_1/s_i)²: better than 1e-7 down to
 *   s_i ≈ 1e-4·s_1, 1e-4 at 1e-6·s_1, meaningless below ~1e-8·s_1. The fp32 weights themselves
 *   only define singular values to about 6e-8·‖M‖ absolute, so for every value the fp32 data
 *   determines to better than 1e-3 relative the double Gram is as good as a direct SVD, and it is
 *   the default because it is 2.5-3x faster on the rectangular MLP matrices (measured: 12 vs 34 ms
 *   for [1024, 384], 87 vs 238 ms for [3072, 768]; a symmetric eigenproblem of the smaller side
 *   instead of a bidiagonalization of the whole matrix) and about even on square ones.
 *   The route is src/core/svd.c's measured choice (pare_svd_values_route_for; docs/scale.md
 *   "SVD routes" has the table up to 4096 x 11008).
 * GESDD: LAPACKE_dgesdd jobz='N' on a double copy; accurate to ~ε_d·s_1 absolute for every value.
 *   Use it when the tail of the spectrum (values below ~1e-5·s_1) matters. */
typedef enum { PARE_SVALS_GRAM = 0, PARE_SVALS_GESDD } pare_svals_method;

/* Which matrix's spectrum: W itself, W·diag(d) with d_j = ‖X_j‖ (activation-weighted, as in
 * ASVD / LoRAP), or W·L with L the lower Cholesky factor of the (damped) input Gram XᵀX
 * (whitened, as in SVD-LLM; σ(W·L) = σ(X·Wᵀ) when XᵀX = L·Lᵀ). */
typedef enum { PARE_WEIGHT_NONE = 0, PARE_WEIGHT_ACT, PARE_WEIGHT_WHITEN } pare_weighting;

/* Activation norms d_j <= 0 (and only those) are raised to PARE_ACT_EPS·max(d). */
#define PARE_ACT_EPS 1e-6
/* Default relative damping for the whitening Cholesky: δ = λ·mean(diag(G)) is added to the diagonal.
 * 1e-2 is the GPTQ convention for input Hessians: it regularizes the poorly conditioned Grams a
 * few hundred calibration sequences give while changing ‖W·L‖_F² by only 1% of the average
 * per-feature input energy. */
#define PARE_WHITEN_DAMPING 1e-2
/* When the Cholesky fails, λ is multiplied by 10 (from 0 it goes to PARE_WHITEN_FIRST_RETRY) until it
 * exceeds max_damping (default PARE_WHITEN_MAX_DAMPING); then the call fails. */
#define PARE_WHITEN_FIRST_RETRY 1e-6
#define PARE_WHITEN_MAX_DAMPING 1.0

typedef struct {
    pare_svals_method method;
    pare_weighting weighting;
    /* PARE_WEIGHT_ACT: d_j = ‖X_j‖ (column norms of the calibration inputs), act_len must equal n. */
    const double *act_norm;
    int act_len;
    /* PARE_WEIGHT_WHITEN: the input Gram XᵀX, row-major [gram_dim, gram_dim], gram_dim must equal n;
     * only its lower triangle is read. */
    const double *gram;
    int gram_dim;
    double damping;     /* λ of the first Cholesky attempt (0: try undamped first) */
    double max_damping; /* largest λ tried before giving up */
} pare_spectrum_opts;

/* The defaults: GRAM, NONE, damping PARE_WHITEN_DAMPING, max_damping PARE_WHITEN_MAX_DAMPING.
 * Passing NULL opts anywhere means these. */
pare_spectrum_opts pare_spectrum_defaults(void);

/* What a spectrum call did beyond the values. */
typedef struct {
    double damping;      /* WHITEN: λ actually used (relative to mean(diag G)); warn when > requested */
    double damping_abs;  /* WHITEN: δ = λ·mean(diag G) added to the diagonal */
    int damping_retries; /* WHITEN: failed Cholesky attempts before the one that succeeded */
    int act_floored;     /* ACT: entries of d that were <= 0 and raised to PARE_ACT_EPS·max(d) */
} pare_spectrum_info;

/* Singular values of M = W, W·diag(d) or W·L (per opts) into s[min(m, n)], descending.
 * info may be NULL. Fails with PARE_EINVAL on a bad shape, a non-finite entry (naming the matrix
 * and the first bad [row, col]), a statistics vector of the wrong length, a Gram that stays
 * indefinite up to max_damping, or LAPACK info != 0; PARE_ENOMEM when out of memory. */
pare_status pare_spectrum_values(const char *name, const float *w, int m, int n, const pare_spectrum_opts *opts,
                                 double *s, pare_spectrum_info *info, pare_error *err);

/* The building blocks of the weighted spectra, for the factorization module which must undo them. */

/* d → the per-column scale actually used: entries <= 0 raised to PARE_ACT_EPS·max(d). scale[len];
 * *floored (may be NULL) gets how many were raised. Fails on non-finite d or max(d) <= 0. */
pare_status pare_act_scale(const char *name, const double *d, int len, double *scale, int *floored, pare_error *err);
/* Lower Cholesky factor L (row-major [n, n], upper triangle zeroed) of G + λ·mean(diag G)·I with the
 * damping escalation described above. damping / max_damping as in pare_spectrum_opts; info may be NULL. */
pare_status pare_whiten_cholesky(const char *name, const double *gram, int n, double damping, double max_damping,
                                 double *L, pare_spectrum_info *info, pare_error *err);

/* ---------------------------------------------------------------------------------------------
 * Truncated SVD: W ≈ U_k · diag(s) · V_kᵀ
 * ------------------------------------------------------------------------------------------- */

/* Randomized SVD defaults. Classic Halko–Martinsson–Tropp settings (p = 10, q = 2) leave 4-8%
 * errors in the top-64 values of the reference models' block matrices, whose spectra are nearly flat
 * (s_75 / s_64 ≈ 0.95): subspace iteration reduces the error of s_i by about (s_{k+p+1} / s_i)^4 per
 * power iteration. The defaults therefore oversample by max(10, k) (rate ≈ (s_2k / s_k)^4, ~0.35
 * there) and iterate adaptively until the estimated relative error of the top-k values drops below
 * tol. Explicit p and q give the classic fixed algorithm. */
#define PARE_RSVD_AUTO (-1)
#define PARE_RSVD_MIN_OVERSAMPLE 10
#define PARE_RSVD_TOL 1e-4
#define PARE_RSVD_MIN_ITERS 2
#define PARE_RSVD_MAX_ITERS 32
#define PARE_RSVD_SEED 0x9e3779b97f4a7c15ull

typedef struct {
    int exact;       /* 1: the exact route svd.h measured for the shape (deterministic, slower); 0: randomized */
    int oversample;  /* p: the range finder uses l = k + p Gaussian vectors (capped at min(m, n));
                      * PARE_RSVD_AUTO: p = max(10, k) */
    int power_iters; /* q: subspace iterations, each re-orthonormalized by QR (sgeqrf + sorgqr);
                      * PARE_RSVD_AUTO: adaptive, between PARE_RSVD_MIN_ITERS and PARE_RSVD_MAX_ITERS */
    double tol;      /* adaptive q: stop when the estimated relative error of the top k values is below this
                      * (the change of the Ritz values times ρ/(1−ρ), ρ the observed or predicted rate) */
    uint64_t seed;   /* seed of the Gaussian test matrix (own splitmix64 + Box–Muller) */
    int want_u;      /* fill u */
    int want_vt;     /* fill vt */
} pare_svd_opts;

/* Defaults: randomized, p and q PARE_RSVD_AUTO, tol PARE_RSVD_TOL, PARE_RSVD_SEED, no factors. */
pare_svd_opts pare_svd_defaults(void);

typedef struct {
    int m, n, k;
    int oversample, power_iters; /* randomized: what was used (q = 0 when l = min(m, n) made it exact) */
    double *s;                   /* [k], descending */
    float *u;                    /* [m, k] row-major, orthonormal columns; NULL unless want_u */
    float *vt;                   /* [k, n] row-major, orthonormal rows; NULL unless want_vt.
                 * A rank-k factorization W ≈ A·B is A = u·diag(s) [m, k], B = vt [k, n]. */
} pare_svd;

/* Top-k singular values (and factors on request) of W [m, n]. 1 <= k <= min(m, n); otherwise
 * PARE_EINVAL "rank K exceeds min(M, N) for NAME". The randomized values are Ritz values, never
 * above the true ones; with the defaults the top 32 / 64 of the reference models' block matrices
 * agree with the full SVD to better than 1e-3 relative (tests/test_spectrum.c checks it).
 * out is filled (arrays malloc'd; free with pare_svd_free); on failure it is left zeroed. */
pare_status pare_svd_topk(const char *name, const float *w, int m, int n, int k, const pare_svd_opts *opts,
                          pare_svd *out, pare_error *err);
void pare_svd_free(pare_svd *svd);

/* ---------------------------------------------------------------------------------------------
 * Statistics of a spectrum s_1 >= ... >= s_r >= 0 of an [m, n] matrix. The values given are taken
 * as the whole spectrum (for a top-k spectrum the results describe those k values only).
 * A zero spectrum has energy curve 1, ranks 0, stable and effective rank 0.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int m, n, r;
    double sum_sq;              /* Σ s_i² = ‖W‖_F² */
    double s_max;               /* s_1 = ‖W‖_2 */
    double stable_rank;         /* ‖W‖_F² / ‖W‖_2² */
    double effective_rank;      /* Roy & Vetterli (2007): exp(−Σ p_i ln p_i), p_i = s_i / Σ_j s_j */
    int rank90, rank95, rank99; /* smallest k with cumulative energy >= 0.90 / 0.95 / 0.99 */
    int break_even;             /* floor(m·n / (m + n)); rank k saves parameters only for k < m·n/(m+n) */
} pare_spectrum_stats;

/* Fails (PARE_EINVAL) on r < 1, a bad shape, r > min(m, n), negative, non-finite or ascending values. */
pare_status pare_spectrum_stats_compute(const double *s, int r, int m, int n, pare_spectrum_stats *st, pare_error *err);
/* energy[i] = Σ_{j<=i} s_j² / Σ_j s_j² (i = 0..r-1; energy[r-1] = 1). */
void pare_spectrum_energy(const double *s, int r, double *energy);
/* Smallest k (1..r) with cumulative energy >= threshold (compared with a 1e-12 relative slack so
 * that e.g. 9 of 10 equal values count as 90%); 0 for a zero spectrum or threshold <= 0. */
int pare_spectrum_energy_rank(const double *s, int r, double threshold);
/* Relative truncation error at rank k: sqrt(Σ_{i>k} s_i² / Σ s_i²) = ‖W − W_k‖_F / ‖W‖_F (0 when k >= r
 * or the spectrum is zero; 1 when k <= 0). */
double pare_spectrum_trunc_error(const double *s, int r, int k);
/* floor(m·n / (m + n)). */
int pare_break_even_rank(int m, int n);
/* Parameters of a rank-k factorization A[m, k]·B[k, n]: k·(m + n). */
size_t pare_lowrank_params(int m, int n, int k);

/* ---------------------------------------------------------------------------------------------
 * Whole model
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    char name[96];
    int m, n;  /* out, in */
    double *s; /* [min(m, n)] descending */
    pare_spectrum_stats stats;
    pare_spectrum_info info;
} pare_matrix_spectrum;

typedef struct {
    int count;
    pare_matrix_spectrum *mats; /* in pare_model_linears order */
} pare_model_spectra;

/* Spectra and statistics of every block linear of the model. opts: NULL / n_opts 0 (defaults for
 * all), one entry (used for every matrix; statistics lengths are still checked per matrix) or
 * n_opts = the number of block linears (per matrix, in pare_model_linears order). Matrices run in
 * parallel over pare_threads() OpenMP threads; prog (may be NULL) is called once with fraction 0
 * and then after each matrix (stage "spectra", detail the matrix name), serialized, from whichever
 * thread finished it; a non-zero return stops the work (matrices already running finish) and the
 * call returns PARE_ECANCELED. On failure *out is NULL and the first failing matrix (in order) is
 * reported. */
pare_status pare_model_spectra_compute(pare_model *m, const pare_spectrum_opts *opts, int n_opts,
                                       const pare_progress *prog, pare_model_spectra **out, pare_error *err);
void pare_model_spectra_free(pare_model_spectra *sp);

/* pare_model_spectra_compute with every matrix weighted the same way from calibration statistics
 * (pare_calibrate's output on the model as it is now; Gram matrices needed for WHITEN). cs may be
 * NULL for PARE_WEIGHT_NONE. */
struct pare_calib_stats;
pare_status pare_model_spectra_weighted(pare_model *m, const struct pare_calib_stats *cs, pare_weighting w,
                                        const pare_progress *prog, pare_model_spectra **out, pare_error *err);

/* The spectrum and statistics of block linear l of m, weighted by w from cs (NULL for PARE_WEIGHT_NONE),
 * exactly as pare_model_spectra_weighted computes that matrix: for one matrix of a model too big to
 * analyze whole. A streamed model's block is acquired for the call and released (it stays in the
 * cache). prog (may be NULL) gets stage "spectrum" at 0 (before the block is read), 0.5 (before the
 * singular values) and 1; a non-zero return before the values are computed stops the call with
 * PARE_ECANCELED. out->s is malloc'd [min(m, n)] (pare_matrix_spectrum_clear frees it); on failure
 * out is zeroed. */
pare_status pare_matrix_spectrum_compute(pare_model *m, const struct pare_calib_stats *cs, const pare_linear *l,
                                         pare_weighting w, const pare_progress *prog, pare_matrix_spectrum *out,
                                         pare_error *err);
void pare_matrix_spectrum_clear(pare_matrix_spectrum *ms);

/* One block linear at a time (the charts of one matrix or one type need only those): */
/* Singular values of l's effective weight (A B for factorized layers) into s[min(out, in)], as
 * pare_model_spectra_compute computes them. */
pare_status pare_linear_spectrum(const pare_linear *l, const pare_spectrum_opts *opts, double *s,
                                 pare_spectrum_info *info, pare_error *err);
/* The options pare_model_spectra_weighted uses for block linear l of m: activation norms ||X_j||
 * written into norms[l->in] (which must outlive *so) and, for WHITEN, the site's Gram matrix. cs may
 * be NULL for PARE_WEIGHT_NONE. Errors name the matrix when its statistics are missing or of the
 * wrong size. */
pare_status pare_linear_spectrum_opts(const pare_model *m, const struct pare_calib_stats *cs, const pare_linear *l,
                                      pare_weighting w, double *norms, pare_spectrum_opts *so, pare_error *err);

#endif
