/* Linear products: sgemm, or the BF16 kernel (packed operands, a 12 x 32 register tile of
 * vdpbf16ps accumulators, blocked so that a task's packed weights stay in L2). */
#include "matmul.h"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"

const char *const PARE_MATMUL_NAMES[] = {"f32", "bf16", NULL};

static pare_matmul_mode matmul_mode = PARE_MATMUL_F32;

int pare_matmul_bf16_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

pare_status pare_set_matmul(pare_matmul_mode mode, const char *source, pare_error *err)
{
    if (mode == PARE_MATMUL_BF16 && !pare_matmul_bf16_supported())
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s bf16: this CPU has no AVX512-BF16 instructions; use f32 (the default)", source);
    matmul_mode = mode;
    return PARE_OK;
}

pare_matmul_mode pare_get_matmul(void) { return matmul_mode; }

/* Packed layouts. A: [M][P] pairs of BF16 (one uint32 holds k = 2p, 2p + 1), K padded to even with
 * a zero. W: [NB][P][NR] pairs, NB = ceil(N / NR) blocks of NR output columns, missing columns zero:
 * one kernel step loads the NR columns' pair p as two vectors. */
#define NR 32        /* output columns per kernel: two vectors of 16 */
#define MR 12        /* rows per kernel: 24 accumulators of the 32 vector registers */
#define KC 256       /* pairs per k block: a 12-row panel of A (12 KiB) stays in L1 */
#define TASK_ROWS 96 /* a task: 96 rows x 8 column blocks, its packed W (256 KiB per k block) in L2 */
#define TASK_BLOCKS 8
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* One row of n floats to ceil(n / 2) BF16 pairs; the conversion is the instruction's (nearest even). */
BF16_TARGET static void row_to_pairs(const float *src, int n, uint32_t *dst)
{
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
        _mm512_storeu_si512(dst + k / 2, (__m512i)v);
    }
    if (k < n) {
        int lo = n - k < 16 ? n - k : 16, hi = n - k - lo;
        __m512 a = _mm512_maskz_loadu_ps((__mmask16)((1u << lo) - 1), src + k);
        __m512 b = _mm512_maskz_loadu_ps((__mmask16)((1u << hi) - 1), src + k + 16);
        __m512bh v = _mm512_cvtne2ps_pbh(b, a);
        _mm512_mask_storeu_epi32(dst + k / 2, (__mmask16)((1u << ((n - k + 1) / 2)) - 1), (__m512i)v);
    }
}

BF16_TARGET static void pack_a(int M, int K, const float *A, int lda, uint32_t *Ap, int nt)
{
    int P = (K + 1) / 2;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < M; i++)
        row_to_pairs(A + (size_t)i * lda, K, Ap + (size_t)i * P);
}

/* rows: nt scratch rows of P pairs, one per thread. */
BF16_TARGET static void pack_w(int N, int K, const float *W, int ldw, uint32_t *Wp, uint32_t *rows, int nt)
{
    int P = (K + 1) / 2, NB = (N + NR - 1) / NR;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int nb = 0; nb < NB; nb++) {
        uint32_t *blk = Wp + (size_t)nb * P * NR, *row = rows + (size_t)omp_get_thread_num() * P;
        for (int j = 0; j < NR; j++) {
            int n = nb * NR + j;
            if (n < N)
                row_to_pairs(W + (size_t)n * ldw, K, row);
            for (int p = 0; p < P; p++)
                blk[(size_t)p * NR + j] = n < N ? row[p] : 0;
        }
    }
}

/* C[rows, NR] (cols valid columns) over pairs [p0, p1): from zero when fresh, else added to C. */
BF16_TARGET static void kernel(int rows, int cols, const uint32_t *Ap, int P, const uint32_t *Wblk, int p0, int p1,
                               float *C, int ldc, int fresh)
{
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) {
        if (r < rows && !fresh) {
            acc[r][0] = _mm512_maskz_loadu_ps(m0, C + (size_t)r * ldc);
            acc[r][1] = _mm512_maskz_loadu_ps(m1, C + (size_t)r * ldc + 16);
        } else {
            acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        }
    }
    const uint32_t *w = Wblk + (size_t)p0 * NR;
    if (rows == MR) {
        for (int p = p0; p < p1; p++, w += NR) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(w), b1 = (__m512bh)_mm512_loadu_si512(w + 16);
#pragma GCC unroll 12
            for (int r = 0; r < MR; r++) {
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[(size_t)r * P + p]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
            }
        }
    } else {
        for (int p = p0; p < p1; p++, w += NR) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(w), b1 = (__m512bh)_mm512_loadu_si512(w + 16);
            for (int r = 0; r < rows; r++) {
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[(size_t)r * P + p]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
            }
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(C + (size_t)r * ldc, m0, acc[r][0]);
        _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16, m1, acc[r][1]);
    }
}

BF16_TARGET static void product(int M, int N, int P, const uint32_t *Ap, const uint32_t *Wp, int accumulate, float *C,
                                int ldc, int nt)
{
    int NB = (N + NR - 1) / NR;
    int tm = (M + TASK_ROWS - 1) / TASK_ROWS, tn = (NB + TASK_BLOCKS - 1) / TASK_BLOCKS;
#pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int t = 0; t < tm * tn; t++) {
        int r0 = t / tn * TASK_ROWS, r1 = r0 + TASK_ROWS < M ? r0 + TASK_ROWS : M;
        int b0 = t % tn * TASK_BLOCKS, b1 = b0 + TASK_BLOCKS < NB ? b0 + TASK_BLOCKS : NB;
        for (int p0 = 0; p0 < P; p0 += KC) {
            int p1 = p0 + KC < P ? p0 + KC : P, fresh = p0 == 0 && !accumulate;
            for (int r = r0; r < r1; r += MR)
                for (int nb = b0; nb < b1; nb++) {
                    int rows = r1 - r < MR ? r1 - r : MR, cols = N - nb * NR < NR ? N - nb * NR : NR;
                    kernel(rows, cols, Ap + (size_t)r * P, P, Wp + (size_t)nb * P * NR, p0, p1,
                           C + (size_t)r * ldc + (size_t)nb * NR, ldc, fresh);
                }
        }
    }
}

/* W is packed and multiplied in slabs of this many output columns, so that a head of 128k rows
 * does not need its whole packed copy at once (the slab: 4096 x K x 2 bytes). */
#define SLAB_COLS 4096

/* The packed operands' buffer of the calling thread, kept between calls: a fresh one per product
 * costs a page fault per 4 KiB (mmap'd, as large blocks are), which measured as much as the packing
 * itself. It only grows, to the largest product's A plus one slab of W (and a row per thread), and
 * is freed when its thread ends. */
typedef struct {
    uint32_t *words;
    size_t cap;
} packed_buf;

static pthread_key_t packed_key;
static pthread_once_t packed_once = PTHREAD_ONCE_INIT;

static void packed_free(void *p)
{
    packed_buf *b = p;
    free(b->words);
    free(b);
}

static void packed_key_make(void) { pthread_key_create(&packed_key, packed_free); }

static uint32_t *packed_buffer(size_t words)
{
    pthread_once(&packed_once, packed_key_make);
    packed_buf *b = pthread_getspecific(packed_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)) || pthread_setspecific(packed_key, b)) {
            free(b);
            return NULL;
        }
    }
    if (words <= b->cap)
        return b->words;
    size_t bytes = (words * sizeof *b->words + 63) / 64 * 64;
    uint32_t *p = aligned_alloc(64, bytes);
    if (!p)
        return NULL;
    free(b->words);
    b->words = p;
    b->cap = bytes / sizeof *p;
    return p;
}

pare_status pare_matmul_nt_bf16(int M, int N, int K, const float *A, int lda, const float *W, int ldw, int accumulate,
                                float *C, int ldc, pare_error *err)
{
    if (!pare_matmul_bf16_supported())
        return pare_fail(err, PARE_EUNSUPPORTED, "bf16 matmul: this CPU has no AVX512-BF16 instructions");
    if (M <= 0 || N <= 0 || K <= 0)
        return PARE_OK;
    int P = (K + 1) / 2, slab = N < SLAB_COLS ? N : SLAB_COLS, nt = pare_threads();
    size_t a_words = ((size_t)M * P + 15) / 16 * 16; /* Wp starts on a cache line */
    size_t w_words = (size_t)((slab + NR - 1) / NR) * P * NR;
    uint32_t *Ap = packed_buffer(a_words + w_words + (size_t)nt * P), *Wp = Ap ? Ap + a_words : NULL;
    if (!Ap)
        return pare_fail(err, PARE_ENOMEM, "bf16 matmul: out of memory for the packed operands (%d x %d x %d)", M, N, K);
    pack_a(M, K, A, lda, Ap, nt);
    for (int n0 = 0; n0 < N; n0 += slab) {
        int n = N - n0 < slab ? N - n0 : slab;
        pack_w(n, K, W + (size_t)n0 * ldw, ldw, Wp, Wp + w_words, nt);
        product(M, n, P, Ap, Wp, accumulate, C + n0, ldc, nt);
    }
    return PARE_OK;
}

void pare_matmul_nt(int M, int N, int K, const float *A, int lda, const float *W, int ldw, int accumulate, float *C,
                    int ldc)
{
    if (matmul_mode == PARE_MATMUL_BF16 && M >= 64 &&
        pare_matmul_nt_bf16(M, N, K, A, lda, W, ldw, accumulate, C, ldc, NULL) == PARE_OK)
        return;
    pare_sgemm(CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, W, ldw, accumulate ? 1.0f : 0.0f, C, ldc);
}
