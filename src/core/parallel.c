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
