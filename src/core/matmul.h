/* The product of every linear layer's forward, C = A Wᵀ: OpenBLAS sgemm (fp32, the default), or on
 * request BF16 operands with fp32 accumulation through AVX512-BF16 dot products (vdpbf16ps), about
 * twice sgemm's rate where the CPU has them. Debian's OpenBLAS is built without its BF16 GEMM
 * (cblas_sbgemm is not exported), so that kernel is here. */
#ifndef PARE_MATMUL_H
#define PARE_MATMUL_H

#include "error.h"

/* F32: sgemm, exact fp32. BF16: both operands rounded to BF16 (nearest even) per product, sums in
 * fp32; a BF16 checkpoint's weights pass exactly, activations lose their low 16 bits. */
typedef enum { PARE_MATMUL_F32, PARE_MATMUL_BF16 } pare_matmul_mode;
extern const char *const PARE_MATMUL_NAMES[]; /* "f32", "bf16", NULL */

/* 1 when this CPU runs the BF16 kernel (AVX-512F and AVX512-BF16). */
int pare_matmul_bf16_supported(void);
/* Sets the mode for every later linear forward in the process. BF16 on a CPU without AVX512-BF16 is
 * refused, naming source (the option or variable that asked, e.g. "--matmul"). */
pare_status pare_set_matmul(pare_matmul_mode mode, const char *source, pare_error *err);
pare_matmul_mode pare_get_matmul(void);

/* Row-major C[M, N] = A[M, K] · W[N, K]ᵀ, plus C's previous contents when accumulate. In the BF16
 * mode, products of at least 64 rows (a batch, not one generated token) take the BF16 kernel;
 * where its scratch cannot be allocated they fall back to sgemm. Threads: pare_threads(). */
void pare_matmul_nt(int M, int N, int K, const float *A, int lda, const float *W, int ldw, int accumulate, float *C,
                    int ldc);

/* The BF16 kernel itself, whatever the mode (tests and benchmarks): PARE_EUNSUPPORTED on a CPU
 * without it, PARE_ENOMEM when its packed operands cannot be allocated (C is then unchanged). */
pare_status pare_matmul_nt_bf16(int M, int N, int K, const float *A, int lda, const float *W, int ldw, int accumulate,
                                float *C, int ldc, pare_error *err);

#endif
