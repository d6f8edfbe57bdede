// matmul.cu: out (N, O) = x (N, I) @ w (O, I)^T through cuBLAS.
//
// cuBLAS is column-major, and a row-major (R, C) matrix is the column-major (C, R) matrix with
// the same bytes. So in cuBLAS's terms w is (I, O), x is (I, N) and out is (O, N), and the
// row-major out = x @ w^T is the column-major
//   out (O, N) = op(w) (O, I) @ x (I, N),  op = transpose:  m = O, n = N, k = I,
//   lda = I, ldb = I, ldc = O.
// The GEMM itself is cuda_gemm (gemm.cu: cuBLASLt, plans cached per shape), F32 arithmetic (no
// TF32). It needs x and w in one dtype and an output in F32 or that dtype: other combinations go
// through conversions in a scratch buffer.
#include <limits.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"

extern "C" int cuda_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate) {
    if (cuda_check_float("matmul", "out", out->dtype) ||
        cuda_check_float("matmul", "x", x->dtype) || cuda_check_float("matmul", "w", w->dtype))
        return -1;
    int64_t I = w->shape[w->ndim - 1], O = w->shape[0];
    int64_t N = I > 0 ? tensor_numel(x) / I : 0;
    if (N == 0 || O == 0) return 0;
    if (N > INT_MAX || O > INT_MAX || I > INT_MAX)
        return err_set("cuda matmul: dimensions N=%lld O=%lld I=%lld exceed cuBLAS's int range",
                       (long long)N, (long long)O, (long long)I);
    if (I == 0) // an empty sum: out = 0 (or unchanged when accumulating)
        return accumulate ? 0 : cuda_set_zero(out->data, tensor_nbytes(out));
    // cuBLAS wants x and w in one dtype: bring x to w's dtype (the weights are the big operand)
    size_t xbytes = 0; // rounded up to 256 so that the output part stays aligned
    if (x->dtype != w->dtype) xbytes = ((size_t)(N * I) * dtype_size(w->dtype) + 255) / 256 * 256;
    // the output must be F32 or the inputs' dtype: otherwise compute into an F32 buffer, then
    // convert into out
    int out_via_f32 = out->dtype != DTYPE_F32 && out->dtype != w->dtype;
    size_t obytes = out_via_f32 ? (size_t)(N * O) * sizeof(float) : 0;
    char *scratch = NULL;
    if (xbytes + obytes > 0 && !(scratch = (char *)cuda_scratch(xbytes + obytes))) return -1;
    const void *xd = x->data;
    if (xbytes) {
        if (cuda_convert(scratch, w->dtype, x->data, x->dtype, N * I)) return -1;
        xd = scratch;
    }
    void *od = out->data;
    dtype_t odt = out->dtype;
    if (out_via_f32) {
        od = scratch + xbytes;
        odt = DTYPE_F32;
        if (accumulate && cuda_convert(od, DTYPE_F32, out->data, out->dtype, N * O)) return -1;
    }

    if (cuda_gemm(1, 0, (int)O, (int)N, (int)I, 1.0f, w->data, (int)I, xd, (int)I, w->dtype,
                  accumulate ? 1.0f : 0.0f, od, (int)O, odt))
        return -1;
    if (out_via_f32) return cuda_convert(out->data, out->dtype, od, DTYPE_F32, N * O);
    return 0;
}
