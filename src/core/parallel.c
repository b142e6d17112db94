/* Row-split sgemm over OpenMP threads, each calling single-threaded OpenBLAS. */
#include "parallel.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int n_threads;

int pare_max_threads(void)
{
    int procs = omp_get_num_procs();
    return 4 * (procs > 0 ? procs : 1);
}

/* libgomp takes its default team size from OMP_NUM_THREADS when it loads; every parallel region
 * here names its team size, and the default is reset so no region asks for that raw value. */
static void init_threads(void)
{
    openblas_set_num_threads(1);
    int procs = omp_get_num_procs();
    n_threads = procs > 0 ? procs : 1;
    omp_set_num_threads(n_threads);
}

int pare_threads(void)
{
    pthread_once(&once, init_threads);
    return n_threads;
}

void pare_set_threads(int n)
{
    pthread_once(&once, init_threads);
    if (n <= 0)
        n = omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
    if (n > pare_max_threads())
        n = pare_max_threads();
    n_threads = n;
    omp_set_num_threads(n);
}

void pare_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    int nt = pare_threads();
    /* Small products are not worth waking threads for. */
    if (nt <= 1 || M < 64 || (double)M * N * K < 4e6) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int parts = nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int p = 0; p < parts; p++) {
        /* rows split in multiples of 16 so kernels see aligned panels */
        int per = ((M + parts - 1) / parts + 15) / 16 * 16;
        int r0 = p * per, r1 = r0 + per > M ? M : r0 + per;
        if (r0 >= r1)
            continue;
        const float *Ap = ta == CblasNoTrans ? A + (size_t)r0 * lda : A + r0;
        cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)r0 * ldc, ldc);
    }
}

/* Tile edge of the Gram's upper triangle: large enough for sgemm's kernels to run at full rate,
 * small enough that a 1024-wide Gram splits into 36 tiles to share out. */
#define GRAM_TILE 128

void pare_gram_add(const float *x, int N, int dim, double *gram, double *sumsq)
{
    int nt = pare_threads(), tiles = (dim + GRAM_TILE - 1) / GRAM_TILE, pairs = tiles * (tiles + 1) / 2;
    if (sumsq) {
        int strips = (dim + 63) / 64;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int st = 0; st < strips; st++) {
            int j0 = st * 64, j1 = j0 + 64 < dim ? j0 + 64 : dim;
            double acc[64] = {0};
            for (int i = 0; i < N; i++) {
                const float *row = x + (size_t)i * dim;
                for (int j = j0; j < j1; j++) {
                    double v = row[j];
                    acc[j - j0] += v * v;
                }
            }
            for (int j = j0; j < j1; j++)
                sumsq[j] += acc[j - j0];
        }
    }
    if (!gram)
        return;
#pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int p = 0; p < pairs; p++) {
        int ti = 0, left = p; /* the p-th (ti <= tj) pair, row by row */
        while (left >= tiles - ti)
            left -= tiles - ti, ti++;
        int tj = ti + left;
        int a0 = ti * GRAM_TILE, b0 = tj * GRAM_TILE;
        int na = dim - a0 < GRAM_TILE ? dim - a0 : GRAM_TILE, nb = dim - b0 < GRAM_TILE ? dim - b0 : GRAM_TILE;
        float tile[GRAM_TILE * GRAM_TILE];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, na, nb, N, 1.0f, x + a0, dim, x + b0, dim, 0.0f, tile, nb);
        for (int a = 0; a < na; a++)
            for (int b = 0; b < nb; b++) {
                double v = tile[a * nb + b];
                if (ti == tj && b < a)
                    continue; /* the diagonal tile's lower half comes from its upper half */
                gram[(size_t)(a0 + a) * dim + b0 + b] += v;
                if (ti != tj || a != b)
                    gram[(size_t)(b0 + b) * dim + a0 + a] += v;
            }
    }
}

const char *pare_blas_corename(void) { return openblas_get_corename(); }

const char *pare_blas_better_coretype(void)
{
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (avx512 && core && strcasecmp(core, "Haswell") == 0)
        return "SKYLAKEX";
    return NULL;
}
