/* Threading: pare splits work across cores itself (OpenMP) and keeps OpenBLAS single-threaded,
 * because OpenBLAS's own threads do not speed up the mid-sized products of these models. */
#ifndef PARE_PARALLEL_H
#define PARE_PARALLEL_H

#include <cblas.h>

/* Threads pare uses: the count set with pare_set_threads, else the number of cores. The core reads
 * no environment variable; a front end reads PARE_THREADS / OMP_NUM_THREADS and sets the count. */
int pare_threads(void);
/* The most threads pare starts: 4 x the cores. Compute-bound kernels gain nothing beyond the cores;
 * the margin leaves room for deliberate oversubscription, and the cap keeps a typo such as 100000
 * from asking libgomp for a team whose thread stacks alone exhaust memory (a crash inside libgomp). */
int pare_max_threads(void);
/* Sets the thread count for later work: n <= 0 restores the default, n above pare_max_threads()
 * is clamped to it. */
void pare_set_threads(int n);

/* OpenBLAS 0.3.21 (Debian 12) does not recognize recent AVX-512 CPUs and falls back to its
 * Haswell kernels, which run these models about a third slower. Returns the OPENBLAS_CORETYPE
 * value that would select a better kernel on this CPU, or NULL when the choice is already right.
 * OpenBLAS reads that variable only when it is loaded, so a driver sets it and re-executes
 * (src/cli/environment.c: cli_select_blas_kernel). */
const char *pare_blas_better_coretype(void);
/* The kernel family OpenBLAS chose, e.g. "Haswell" or "SkylakeX". */
const char *pare_blas_corename(void);

/* Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, split by rows of C across threads. */
void pare_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* gram[dim, dim] += xᵀx for the rows of x [N, dim], and sumsq[dim] += the column sums of squares
 * (either may be NULL). Only the upper triangle's tiles are multiplied (in float, as sgemm would)
 * and mirrored, so the sum is exactly symmetric at about 60% of a full product's work; each column's
 * sum of squares is accumulated in double over the rows in order. */
void pare_gram_add(const float *x, int N, int dim, double *gram, double *sumsq);

#endif
