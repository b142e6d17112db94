/* bench_svd: times the LAPACK routes of src/core/svd.c (and pare_svd_topk's randomized SVD) on
 * random matrices, for the two uses pare has: every singular value (`pare spectra`) and rank-k
 * factors (compression), with the accuracy of each against dgesdd in fp64. Run by tools/bench.sh
 * (`make bench`); the table in docs/scale.md ("SVD routes") comes from it.
 *
 *   bench_svd [ROUNDS]
 *       shapes 512x512, 1024x1024, 2048x2048, and with PARE_BENCH_BIG=1 also 4096x4096 and
 *       4096x11008 (minutes each); ranks k = r/8 and r/2 (r = min(m, n)); best of ROUNDS (default 1).
 *       PARE_BENCH_SHAPES="MxN,MxN" replaces the list.
 *
 * The matrices are Gaussian (N(0, 0.02²), as `pare init` draws them): a flat Marchenko–Pastur
 * spectrum, the hardest case for randomized SVD and a fair one for the others; the reference models'
 * block matrices are nearly as flat (spectrum.h). OpenBLAS runs on one thread, as pare runs it (one
 * matrix per core, pare_threads()).
 *
 * Columns: seconds of CPU time (see now_s); "values err" = max_i |s_i − s_i*| / s_i* over the values the route gives (all of
 * them, or the top k) against dgesdd in fp64; "excess" = ‖W − W_k‖_F / ‖W − W_k*‖_F − 1, the
 * truncation error above the optimum (W_k = u·diag(s)·vt of the route, the residual in double). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/environment.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/spectrum.h"
#include "core/svd.h"

/* CPU time of the process: OpenBLAS runs on this one thread, so on a machine shared with other jobs
 * this is the time the work would take on an idle core (the wall time would count the others). */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "bench_svd: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static void die(const pare_error *err)
{
    fprintf(stderr, "bench_svd: %s\n", err->msg);
    exit(1);
}

/* max_i |got_i − ref_i| / ref_i over i < count (a zero reference value counts by its absolute error) */
static double max_rel_err(const double *got, const double *ref, int count)
{
    double e = 0;
    for (int i = 0; i < count; i++) {
        double d = fabs(got[i] - ref[i]) / (ref[i] > 0 ? ref[i] : 1);
        e = d > e ? d : e;
    }
    return e;
}

/* ‖W − u_k·diag(s_k)·vt_k‖_F in double, taking the first k of ld_k triplets */
static double residual(const double *Wd, int m, int n, const float *u, const double *s, const float *vt, int ld_k, int k)
{
    double *R = xmalloc((size_t)m * n * sizeof *R), *us = xmalloc((size_t)m * k * sizeof *us);
    double *v = xmalloc((size_t)k * n * sizeof *v);
    memcpy(R, Wd, (size_t)m * n * sizeof *R);
    for (int i = 0; i < m; i++)
        for (int c = 0; c < k; c++)
            us[(size_t)i * k + c] = (double)u[(size_t)i * ld_k + c] * s[c];
    for (size_t i = 0; i < (size_t)k * n; i++)
        v[i] = vt[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, -1.0, us, k, v, n, 1.0, R, n);
    double ss = 0;
    for (size_t i = 0; i < (size_t)m * n; i++)
        ss += R[i] * R[i];
    free(R), free(us), free(v);
    return sqrt(ss);
}

/* the optimum ‖W − W_k*‖_F from the reference spectrum */
static double optimum(const double *ref, int r, int k)
{
    double t = 0;
    for (int i = r - 1; i >= k; i--)
        t += ref[i] * ref[i];
    return sqrt(t);
}

static void print_row(const char *shape, const char *use, const char *route, double seconds, double verr, double excess)
{
    char ex[32] = "-";
    if (excess == excess)
        snprintf(ex, sizeof ex, "%.1e", excess < 0 ? 0.0 : excess);
    printf("| %-10s | %-15s | %-14s | %9.3f | %10.1e | %7s |\n", shape, use, route, seconds, verr, ex);
    fflush(stdout);
}

static void bench_shape(int m, int n, int rounds)
{
    int r = m < n ? m : n, ks[2] = {r / 8, r / 2}, kmax = ks[1];
    size_t total = (size_t)m * n;
    char shape[32];
    snprintf(shape, sizeof shape, "%dx%d", m, n);
    float *W = xmalloc(total * sizeof *W);
    pare_normal_rng rng = {.state = 0x5eed0000ull + (uint64_t)m * 131 + n, .u1_offset = 1.0, .u2_offset = 1.0};
    for (size_t i = 0; i < total; i++)
        W[i] = (float)(0.02 * pare_normal(&rng));
    double *Wd = xmalloc(total * sizeof *Wd), *M = xmalloc(total * sizeof *M);
    for (size_t i = 0; i < total; i++)
        Wd[i] = W[i];
    double *ref = xmalloc((size_t)r * sizeof *ref), *s = xmalloc((size_t)r * sizeof *s);
    float *u = xmalloc((size_t)m * kmax * sizeof *u), *vt = xmalloc((size_t)kmax * n * sizeof *vt);
    pare_error err = {0};

    /* the reference: dgesdd with factors, which is also the dgesdd row of the truncated use */
    double t_ref = 1e300;
    for (int rd = 0; rd < rounds; rd++) {
        double t0 = now_s();
        if (pare_svd_truncated("W", W, m, n, kmax, PARE_SVD_DGESDD, s, u, vt, &err))
            die(&err);
        double t = now_s() - t0;
        t_ref = t < t_ref ? t : t_ref;
    }
    /* all r values in fp64 for the reference spectrum */
    memcpy(M, Wd, total * sizeof *M);
    if (pare_svd_values("W", M, m, n, PARE_SVD_DGESDD, ref, &err))
        die(&err);

    /* values only */
    const pare_svd_route vroutes[] = {PARE_SVD_DGESDD, PARE_SVD_SGESDD, PARE_SVD_SGESVD, PARE_SVD_DGRAM, PARE_SVD_SGRAM};
    for (size_t q = 0; q < sizeof vroutes / sizeof *vroutes; q++) {
        double best = 1e300;
        for (int rd = 0; rd < rounds; rd++) {
            memcpy(M, Wd, total * sizeof *M);
            double t0 = now_s();
            if (pare_svd_values("W", M, m, n, vroutes[q], s, &err))
                die(&err);
            double t = now_s() - t0;
            best = t < best ? t : best;
        }
        print_row(shape, "values", pare_svd_route_name(vroutes[q]), best, max_rel_err(s, ref, r), NAN);
    }

    /* rank-k factors. Routes that compute every triplet whatever k run once (at k = r/2) and are
     * evaluated at both ranks from their leading triplets. */
    const pare_svd_route full_routes[] = {PARE_SVD_DGESDD, PARE_SVD_SGESDD, PARE_SVD_SGESVD, PARE_SVD_DGRAM};
    const pare_svd_route topk_routes[] = {PARE_SVD_DGRAM_TOPK, PARE_SVD_SGRAM};
    for (size_t q = 0; q < sizeof full_routes / sizeof *full_routes; q++) {
        /* sgesvd's QR iteration with vectors takes 10-20x dgesdd from r = 1024 on: minutes at 4096 */
        if (full_routes[q] == PARE_SVD_SGESVD && r > 2048 && !getenv("PARE_BENCH_SGESVD")) {
            printf("| %-10s | %-15s | %-14s | (skipped: PARE_BENCH_SGESVD=1 runs it) |\n", shape, "rank k (all)",
                   "sgesvd");
            continue;
        }
        double best = q == 0 ? t_ref : 1e300;
        for (int rd = 0; rd < (q == 0 ? 1 : rounds); rd++) { /* dgesdd: the reference run above */
            double t0 = now_s();
            if (pare_svd_truncated("W", W, m, n, kmax, full_routes[q], s, u, vt, &err))
                die(&err);
            double t = now_s() - t0;
            if (q > 0)
                best = t < best ? t : best;
        }
        for (int ki = 0; ki < 2; ki++) {
            int k = ks[ki];
            char use[32];
            snprintf(use, sizeof use, "rank %d (all)", k);
            double ex = residual(Wd, m, n, u, s, vt, kmax, k) / optimum(ref, r, k) - 1;
            /* vt's first k rows are the top-k ones: rows are contiguous, so ld_k only matters for u */
            print_row(shape, use, pare_svd_route_name(full_routes[q]), best, max_rel_err(s, ref, k), ex);
        }
    }
    for (int ki = 0; ki < 2; ki++) {
        int k = ks[ki];
        char use[32];
        snprintf(use, sizeof use, "rank %d", k);
        for (size_t q = 0; q < sizeof topk_routes / sizeof *topk_routes; q++) {
            double best = 1e300;
            for (int rd = 0; rd < rounds; rd++) {
                double t0 = now_s();
                if (pare_svd_truncated("W", W, m, n, k, topk_routes[q], s, u, vt, &err))
                    die(&err);
                double t = now_s() - t0;
                best = t < best ? t : best;
            }
            double ex = residual(Wd, m, n, u, s, vt, k, k) / optimum(ref, r, k) - 1;
            print_row(shape, use, pare_svd_route_name(topk_routes[q]), best, max_rel_err(s, ref, k), ex);
        }
        /* randomized (Halko–Martinsson–Tropp): oversampling 10, q power iterations with QR */
        for (int qi = 1; qi <= 2; qi++) {
            pare_svd_opts o = pare_svd_defaults();
            o.oversample = 10;
            o.power_iters = qi;
            o.want_u = o.want_vt = 1;
            pare_svd out = {0};
            double best = 1e300;
            for (int rd = 0; rd < rounds; rd++) {
                pare_svd_free(&out);
                double t0 = now_s();
                if (pare_svd_topk("W", W, m, n, k, &o, &out, &err))
                    die(&err);
                double t = now_s() - t0;
                best = t < best ? t : best;
            }
            char name[32];
            snprintf(name, sizeof name, "randomized q=%d", qi);
            double ex = residual(Wd, m, n, out.u, out.s, out.vt, k, k) / optimum(ref, r, k) - 1;
            print_row(shape, use, name, best, max_rel_err(out.s, ref, k), ex);
            pare_svd_free(&out);
        }
        /* the route pare takes */
        pare_svd_route chosen = pare_svd_truncated_route_for(m, n, k);
        printf("| %-10s | %-15s | chosen: %-6s |           |            |         |\n", shape, use,
               pare_svd_route_name(chosen));
    }
    printf("| %-10s | %-15s | chosen: %-6s |           |            |         |\n", shape, "values",
           pare_svd_route_name(pare_svd_values_route_for(m, n)));
    free(W), free(Wd), free(M), free(ref), free(s), free(u), free(vt);
}

int main(int argc, char **argv)
{
    cli_select_blas_kernel(argv);
    pare_threads(); /* OpenBLAS on one thread, as pare runs it */
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    if (rounds < 1)
        rounds = 1;
    const char *big = getenv("PARE_BENCH_BIG"), *list = getenv("PARE_BENCH_SHAPES");
    char shapes[512];
    snprintf(shapes, sizeof shapes, "%s",
             list && *list              ? list
             : big && !strcmp(big, "1") ? "512x512,1024x1024,2048x2048,4096x4096,4096x11008"
                                        : "512x512,1024x1024,2048x2048");
    printf("SVD routes, OpenBLAS %s kernel, 1 thread (CPU seconds), best of %d round(s); Gaussian matrices\n\n",
           pare_blas_corename(), rounds);
    printf("| shape      | use             | route          |   seconds | values err |  excess |\n");
    printf("|------------|-----------------|----------------|----------:|-----------:|--------:|\n");
    for (char *save = NULL, *tok = strtok_r(shapes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int m = 0, n = 0;
        if (sscanf(tok, "%dx%d", &m, &n) != 2 || m < 8 || n < 8) {
            fprintf(stderr, "bench_svd: bad shape '%s' in PARE_BENCH_SHAPES (want MxN, both >= 8)\n", tok);
            return 2;
        }
        bench_shape(m, n, rounds);
    }
    return 0;
}
