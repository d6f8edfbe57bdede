// op_matmul on the CPU: one OpenBLAS sgemm; a single row is a plain parallel gemv (OpenBLAS's
// sgemv gives different bits at different thread counts, and its sgemm packs all of w first).
//   out (N, O) = x (N, I) @ w (O, I)^T   (+ out when accumulate)
#include <cblas.h>

#include "cpu_ops.h"

int cpu_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate) {
    if (cpu_require_f32("op_matmul", "out", out) || cpu_require_f32("op_matmul", "x", x) ||
        cpu_require_f32("op_matmul", "w", w))
        return -1;
    int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1]; // K: the inner dim I
    if (N == 0 || O == 0) return 0;
    if (K == 0) { // empty inner dimension: the product is zero
        if (!accumulate) {
            float *o = out->data;
            for (int64_t i = 0; i < N * O; i++) o[i] = 0.0f;
        }
        return 0;
    }
    if (N == 1) { // one row (decode at batch 1): a dot product per output, w read once
        const float *xs = x->data, *ws = w->data;
        float *os = out->data;
#pragma omp parallel for schedule(static) if (O * K >= (1 << 16))
        for (int64_t o = 0; o < O; o++) {
            float d = cpu_dot(xs, ws + o * K, K);
            os[o] = accumulate ? os[o] + d : d;
        }
        return 0;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)O, (int)K, 1.0f, x->data,
                (int)K, w->data, (int)K, accumulate ? 1.0f : 0.0f, out->data, (int)O);
    return 0;
}
