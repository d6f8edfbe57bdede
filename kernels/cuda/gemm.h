// gemm: the one place the CUDA backend multiplies matrices: cuBLASLt with the plan for each shape
// (matmul descriptor, matrix layouts, the heuristic's algorithm) built on first use and cached,
// so a repeated shape (every layer of every decode step) costs one lookup, not a heuristic query.
//
// Column-major, cuBLAS conventions: D (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * D,
// op = transpose when trans_a / trans_b is 1; lda/ldb/ldd are the leading dimensions of the
// stored (untransposed) matrices. A and B share a dtype (F32, BF16 or F16); D is F32 or that
// dtype. Arithmetic is F32 (CUBLAS_COMPUTE_32F: no TF32). Runs on the default stream.
// C linkage (the op harness reads the plan counts); returns 0, or -1 with err_set().
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
#include "kernels/kernels.h"

int cuda_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const void *A, int lda,
              const void *B, int ldb, dtype_t ab_dtype, float beta, void *D, int ldd,
              dtype_t d_dtype);

// plans built so far / lookups answered from the cache (for tests and benchmarks)
void cuda_gemm_stats(long *plans_built, long *cache_hits);

#ifdef __cplusplus
}
#endif
