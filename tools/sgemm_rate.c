/* sgemm_rate: measures OpenBLAS cblas_sgemm throughput on this machine, for tools/bench.sh.
 *
 * Shapes are those of a transformer forward over one batch of M = B*T tokens: C[M,N] = A[M,K] * W^T
 * with W stored [N,K] (row-major, out x in, as a linear layer's weight). Each shape is run for at
 * least MIN_SECONDS (argv[1], default 0.4) after one warm-up call; the best single-call time is kept.
 * Threads come from OPENBLAS_NUM_THREADS as usual.
 *
 * Prints one JSON object: {"sgemm_gflops": best over shapes, "threads": "...", "shapes": [...]}.
 * Build: cc -O2 -I/usr/include/x86_64-linux-gnu -o build/sgemm_rate tools/sgemm_rate.c -lopenblas
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_fill(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

int main(int argc, char **argv)
{
    static const int shapes[][3] = {
        /* M (tokens), N (out), K (in) */
        {2048, 384, 384},   /* attention projection, d=384 */
        {2048, 1024, 384},  /* MLP up/gate */
        {2048, 384, 1024},  /* MLP down */
        {2048, 4096, 384},  /* lm_head, vocab 4096 */
        {2048, 2048, 2048}, /* square reference */
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    double min_s = argc > 1 ? atof(argv[1]) : 0.4;
    if (!(min_s > 0))
        min_s = 0.4;
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    double best_all = 0.0;
    double rates[sizeof shapes / sizeof shapes[0]];

    for (int s = 0; s < nshapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = alloc_fill((size_t)M * K, 1u + (unsigned)s);
        float *W = alloc_fill((size_t)N * K, 7u + (unsigned)s);
        float *C = calloc((size_t)M * N, sizeof *C);
        if (!A || !W || !C) {
            fprintf(stderr, "sgemm_rate: out of memory\n");
            return 1;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
        double best = 1e30, start = now_s();
        int reps = 0;
        do {
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
            double dt = now_s() - t0;
            if (dt < best)
                best = dt;
            reps++;
        } while (now_s() - start < min_s || reps < 3);
        rates[s] = 2.0 * M * N * K / best / 1e9;
        if (rates[s] > best_all)
            best_all = rates[s];
        free(A);
        free(W);
        free(C);
    }

    printf("{\"sgemm_gflops\": %.2f, \"threads\": \"%s\", \"kernel\": \"%s\", \"shapes\": [", best_all,
           thr ? thr : "default", openblas_get_corename());
    for (int s = 0; s < nshapes; s++)
        printf("%s{\"m\": %d, \"n\": %d, \"k\": %d, \"gflops\": %.2f}", s ? ", " : "", shapes[s][0], shapes[s][1],
               shapes[s][2], rates[s]);
    printf("]}\n");
    return 0;
}
