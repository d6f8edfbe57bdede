// rows.cu: the per-row reductions: rmsnorm, softmax, log-softmax gather. One block per row; each
// thread strides over the row, the block reduces with warp shuffles (common.cuh), and the math
// of one element is in rowops.h. rmsnorm (memory-bound, on every layer twice plus QK-norm) takes
// 128-bit accesses when the row length and the pointers allow.
#include "kernels/cuda/common.cuh"

// ---- rmsnorm ----

// out (R, C) = x (R, C) * rms_inv(row) * w (C); out may alias x
static __global__ void rmsnorm_kernel(void *out, dtype_t odt, const void *x, dtype_t xdt,
                                      const void *w, dtype_t wdt, int64_t C, float eps) {
    int64_t row = (int64_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
        float v = load_f32(x, xdt, row + i);
        ss += v * v;
    }
    float inv = rowops_rms_inv(block_sum(ss), C, eps);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
        store_f32(out, odt, row + i,
                  rowops_rmsnorm_elem(load_f32(x, xdt, row + i), inv, load_f32(w, wdt, i)));
}

// the same with 128-bit accesses: C % 8 == 0 and every pointer 16-byte aligned
static __global__ void rmsnorm_vec_kernel(void *out, dtype_t odt, const void *x, dtype_t xdt,
                                          const void *w, dtype_t wdt, int64_t C, float eps) {
    int64_t row = (int64_t)blockIdx.x * C;
    float ss = 0.0f, v[CUDA_VEC], wv[CUDA_VEC];
    for (int64_t i = (int64_t)threadIdx.x * CUDA_VEC; i < C; i += (int64_t)blockDim.x * CUDA_VEC) {
        load8_f32(x, xdt, row + i, v);
#pragma unroll
        for (int j = 0; j < CUDA_VEC; j++)
            ss += v[j] * v[j];
    }
    float inv = rowops_rms_inv(block_sum(ss), C, eps);
    for (int64_t i = (int64_t)threadIdx.x * CUDA_VEC; i < C; i += (int64_t)blockDim.x * CUDA_VEC) {
        load8_f32(x, xdt, row + i, v);
        load8_f32(w, wdt, i, wv);
#pragma unroll
        for (int j = 0; j < CUDA_VEC; j++)
            v[j] = rowops_rmsnorm_elem(v[j], inv, wv[j]);
        store8_f32(out, odt, row + i, v);
    }
}

extern "C" int cuda_op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps) {
    if (cuda_check_float("rmsnorm", "out", out->dtype) ||
        cuda_check_float("rmsnorm", "x", x->dtype) || cuda_check_float("rmsnorm", "w", w->dtype))
        return -1;
    int64_t C = tensor_numel(w), R = C > 0 ? tensor_numel(x) / C : 0;
    if (R == 0) return 0;
    if (R > INT32_MAX) return err_set("cuda rmsnorm: %lld rows exceed the grid", (long long)R);
    if (C % CUDA_VEC == 0 && cuda_vec_ok(out->data) && cuda_vec_ok(x->data) && cuda_vec_ok(w->data))
        rmsnorm_vec_kernel<<<(unsigned)R, CUDA_THREADS>>>(out->data, out->dtype, x->data, x->dtype,
                                                          w->data, w->dtype, C, eps);
    else
        rmsnorm_kernel<<<(unsigned)R, CUDA_THREADS>>>(out->data, out->dtype, x->data, x->dtype,
                                                      w->data, w->dtype, C, eps);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- softmax ----

// x (R, V) := softmax of each row, in place
static __global__ void softmax_kernel(void *x, dtype_t dt, int64_t V) {
    int64_t row = (int64_t)blockIdx.x * V;
    rowops_softmax_t st = rowops_softmax_init();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        st = rowops_softmax_push(st, load_f32(x, dt, row + i));
    st = block_softmax_merge(st);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        store_f32(x, dt, row + i, rowops_softmax_elem(st, load_f32(x, dt, row + i)));
}

extern "C" int cuda_op_softmax(tensor_t *x) {
    if (cuda_check_float("softmax", "x", x->dtype)) return -1;
    int64_t V = x->ndim > 0 ? x->shape[x->ndim - 1] : 1, R = V > 0 ? tensor_numel(x) / V : 0;
    if (R == 0) return 0;
    if (R > INT32_MAX) return err_set("cuda softmax: %lld rows exceed the grid", (long long)R);
    softmax_kernel<<<(unsigned)R, CUDA_THREADS>>>(x->data, x->dtype, V);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- log-softmax gather ----

// out (R) F32 = log_softmax(logits (R, V) / temperature)[ids[r]]; a bad id is recorded in err
static __global__ void logsoftmax_gather_kernel(float *out, const void *logits, dtype_t dt,
                                                const int32_t *ids, int64_t V, float temperature,
                                                int *err) {
    int64_t r = blockIdx.x, row = r * V;
    int32_t id = ids[r]; // the same for the whole block, so an early return is uniform
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) record_error(err, CUDA_ERR_ID, (int)r, id, (int)V);
        return;
    }
    rowops_softmax_t st = rowops_softmax_init();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
        st = rowops_softmax_push(st, load_f32(logits, dt, row + i) / temperature);
    st = block_softmax_merge(st);
    if (threadIdx.x == 0)
        out[r] = rowops_logsoftmax_elem(st, load_f32(logits, dt, row + id) / temperature);
}

extern "C" int cuda_op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids,
                                         float temperature) {
    if (out->dtype != DTYPE_F32)
        return err_set("cuda logsoftmax_gather: out: expected dtype F32, found %s",
                       dtype_name(out->dtype));
    if (cuda_check_float("logsoftmax_gather", "logits", logits->dtype) ||
        cuda_check_i32("logsoftmax_gather", "ids", ids))
        return -1;
    int64_t V = logits->shape[logits->ndim - 1], R = tensor_numel(ids);
    if (R == 0) return 0;
    if (V > INT32_MAX || R > INT32_MAX)
        return err_set("cuda logsoftmax_gather: %lld rows of %lld exceed the int range",
                       (long long)R, (long long)V);
    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    logsoftmax_gather_kernel<<<(unsigned)R, CUDA_THREADS>>>(
        (float *)out->data, logits->data, logits->dtype, (const int32_t *)ids->data, V, temperature,
        err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_ID)
        return err_set("cuda logsoftmax_gather: ids[%d] = %d is outside the vocabulary [0, %d)",
                       rec[1], rec[2], rec[3]);
    return 0;
}
