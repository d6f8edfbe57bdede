// op_matmul on the CPU:  out (N, O) = x (N, I) @ w (O, I)^T   (+ out when accumulate)
//
// The output is cut into fixed tiles (at most 256 rows x TO columns, TO from the shape only) and
// each tile is one single-threaded OpenBLAS sgemm, the tiles spread over OpenMP threads. OpenBLAS's
// own threading splits the work by thread count, and some of its kernels (Haswell's, for one) then
// give different bits at 1 and 2 threads; with fixed tiles every output element is computed the
// same way whatever the thread count, and there is one threading model instead of two competing.
// A single row (decode at batch 1) is a plain parallel gemv: one dot product per output.
#include <cblas.h>

#include "cpu_ops.h"

#define TILE_ROWS 256

// tile width: 64..256 columns, aiming at >= 64 tiles so wide machines have work at small O
static int64_t tile_cols(int64_t O) {
    int64_t t = (O + 63) / 64;
    t = (t + 15) / 16 * 16;
    return t < 64 ? 64 : (t > 256 ? 256 : t);
}

int cpu_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate) {
    if (cpu_require_f32("op_matmul", "out", out) || cpu_require_f32("op_matmul", "x", x) ||
        cpu_require_f32("op_matmul", "w", w))
        return -1;
    cpu_blas_init();
    int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1]; // K: the inner dim I
    const float *xs = x->data, *ws = w->data;
    float *os = out->data;
    if (N == 0 || O == 0) return 0;
    if (K == 0) { // empty inner dimension: the product is zero
        if (!accumulate)
            for (int64_t i = 0; i < N * O; i++) os[i] = 0.0f;
        return 0;
    }
    if (N == 1) { // one row: w read once, one dot product per output
#pragma omp parallel for schedule(static) if (O * K >= (1 << 16))
        for (int64_t o = 0; o < O; o++) {
            float d = cpu_dot(xs, ws + o * K, K);
            os[o] = accumulate ? os[o] + d : d;
        }
        return 0;
    }
    const int64_t TO = tile_cols(O);
    const int64_t row_tiles = (N + TILE_ROWS - 1) / TILE_ROWS, col_tiles = (O + TO - 1) / TO;
    const float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(dynamic, 1) if (N * O * K >= (1 << 18))
    for (int64_t t = 0; t < row_tiles * col_tiles; t++) {
        int64_t n0 = t / col_tiles * TILE_ROWS, o0 = t % col_tiles * TO;
        int64_t tn = N - n0 < TILE_ROWS ? N - n0 : TILE_ROWS, to = O - o0 < TO ? O - o0 : TO;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tn, (int)to, (int)K, 1.0f,
                    xs + n0 * K, (int)K, ws + o0 * K, (int)K, beta, os + n0 * O + o0, (int)O);
    }
    return 0;
}
