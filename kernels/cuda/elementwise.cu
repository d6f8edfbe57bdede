// elementwise.cu: the ops that touch each element (or row) once: rope, add, swiglu, embedding,
// kv_store. Grid-stride loops over elements, or one block per row; the math is in rowops.h.
#include "kernels/cuda/common.cuh"

// ---- rope ----

// x (N, H, D) rotated in place; one thread per (row n, pair i), looping over the heads.
// sign = -1 rotates by the opposite angle: the inverse rotation, i.e. the backward of rope
static __global__ void rope_kernel(void *x, dtype_t dt, const int32_t *pos, int64_t N, int64_t H,
                                   int D, double theta, float sign) {
    int half = D / 2;
    GRID_STRIDE(t, N * half) {
        int64_t n = t / half;
        int i = (int)(t % half);
        float c, s;
        rowops_rope_cos_sin(pos[n], i, D, theta, &c, &s);
        s *= sign;
        for (int64_t h = 0; h < H; h++) {
            int64_t base = (n * H + h) * D;
            float a = load_f32(x, dt, base + i), b = load_f32(x, dt, base + i + half);
            rowops_rope_pair(&a, &b, c, s);
            store_f32(x, dt, base + i, a);
            store_f32(x, dt, base + i + half, b);
        }
    }
}

int cuda_rope_rotate(tensor_t *x, const tensor_t *pos, double theta, int inverse, const char *op) {
    if (cuda_check_float(op, "x", x->dtype) || cuda_check_i32(op, "pos", pos)) return -1;
    int64_t D = x->shape[x->ndim - 1], N = tensor_numel(pos);
    if (D % 2 != 0 || D > INT32_MAX)
        return err_set("cuda %s: expected an even head dim below 2^31, found %lld", op, (long long)D);
    if (N == 0 || D == 0) return 0;
    int64_t H = tensor_numel(x) / (N * D);
    rope_kernel<<<cuda_blocks(N * D / 2), CUDA_THREADS>>>(
        x->data, x->dtype, (const int32_t *)pos->data, N, H, (int)D, theta, inverse ? -1.0f : 1.0f);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int cuda_op_rope(tensor_t *x, const tensor_t *pos, double theta) {
    return cuda_rope_rotate(x, pos, theta, 0, "rope");
}

// ---- add ----

// out = a + b elementwise; out may alias a or b
static __global__ void add_kernel(void *out, dtype_t odt, const void *a, dtype_t adt, const void *b,
                                  dtype_t bdt, int64_t n) {
    GRID_STRIDE(i, n) store_f32(out, odt, i, load_f32(a, adt, i) + load_f32(b, bdt, i));
}

// 128-bit version: n8 groups of 8 (every pointer 16-byte aligned); the tail goes to add_kernel
static __global__ void add_vec_kernel(void *out, dtype_t odt, const void *a, dtype_t adt,
                                      const void *b, dtype_t bdt, int64_t n8) {
    GRID_STRIDE(g, n8) {
        float va[CUDA_VEC], vb[CUDA_VEC];
        load8_f32(a, adt, g * CUDA_VEC, va);
        load8_f32(b, bdt, g * CUDA_VEC, vb);
#pragma unroll
        for (int j = 0; j < CUDA_VEC; j++)
            va[j] += vb[j];
        store8_f32(out, odt, g * CUDA_VEC, va);
    }
}

extern "C" int cuda_op_add(tensor_t *out, const tensor_t *a, const tensor_t *b) {
    if (cuda_check_float("add", "out", out->dtype) || cuda_check_float("add", "a", a->dtype) ||
        cuda_check_float("add", "b", b->dtype))
        return -1;
    int64_t n = tensor_numel(out);
    if (n == 0) return 0;
    int64_t n8 = 0; // elements done by the vector kernel
    if (cuda_vec_ok(out->data) && cuda_vec_ok(a->data) && cuda_vec_ok(b->data)) {
        n8 = n / CUDA_VEC * CUDA_VEC;
        if (n8) {
            add_vec_kernel<<<cuda_blocks(n8 / CUDA_VEC), CUDA_THREADS>>>(
                out->data, out->dtype, a->data, a->dtype, b->data, b->dtype, n8 / CUDA_VEC);
            CUDA_CHECK_LAUNCH();
        }
    }
    if (n8 == n) return 0;
    size_t ob = dtype_size(out->dtype), ab = dtype_size(a->dtype), bb = dtype_size(b->dtype);
    add_kernel<<<cuda_blocks(n - n8), CUDA_THREADS>>>(
        (char *)out->data + n8 * ob, out->dtype, (const char *)a->data + n8 * ab, a->dtype,
        (const char *)b->data + n8 * bb, b->dtype, n - n8);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- swiglu ----

// out = silu(gate) * up elementwise
static __global__ void swiglu_kernel(void *out, dtype_t odt, const void *g, dtype_t gdt,
                                     const void *u, dtype_t udt, int64_t n) {
    GRID_STRIDE(i, n)
    store_f32(out, odt, i, rowops_swiglu(load_f32(g, gdt, i), load_f32(u, udt, i)));
}

// 128-bit version, as add_vec_kernel
static __global__ void swiglu_vec_kernel(void *out, dtype_t odt, const void *g, dtype_t gdt,
                                         const void *u, dtype_t udt, int64_t n8) {
    GRID_STRIDE(k, n8) {
        float vg[CUDA_VEC], vu[CUDA_VEC];
        load8_f32(g, gdt, k * CUDA_VEC, vg);
        load8_f32(u, udt, k * CUDA_VEC, vu);
#pragma unroll
        for (int j = 0; j < CUDA_VEC; j++)
            vg[j] = rowops_swiglu(vg[j], vu[j]);
        store8_f32(out, odt, k * CUDA_VEC, vg);
    }
}

extern "C" int cuda_op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up) {
    if (cuda_check_float("swiglu", "out", out->dtype) ||
        cuda_check_float("swiglu", "gate", gate->dtype) ||
        cuda_check_float("swiglu", "up", up->dtype))
        return -1;
    int64_t n = tensor_numel(out);
    if (n == 0) return 0;
    int64_t n8 = 0; // elements done by the vector kernel
    if (cuda_vec_ok(out->data) && cuda_vec_ok(gate->data) && cuda_vec_ok(up->data)) {
        n8 = n / CUDA_VEC * CUDA_VEC;
        if (n8) {
            swiglu_vec_kernel<<<cuda_blocks(n8 / CUDA_VEC), CUDA_THREADS>>>(
                out->data, out->dtype, gate->data, gate->dtype, up->data, up->dtype, n8 / CUDA_VEC);
            CUDA_CHECK_LAUNCH();
        }
    }
    if (n8 == n) return 0;
    size_t ob = dtype_size(out->dtype), gb = dtype_size(gate->dtype), ub = dtype_size(up->dtype);
    swiglu_kernel<<<cuda_blocks(n - n8), CUDA_THREADS>>>(
        (char *)out->data + n8 * ob, out->dtype, (const char *)gate->data + n8 * gb, gate->dtype,
        (const char *)up->data + n8 * ub, up->dtype, n - n8);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- embedding ----

// out (N, C) = table (V, C)[ids[n]]; one block per row; a bad id is recorded in err
static __global__ void embedding_kernel(void *out, dtype_t odt, const void *table, dtype_t tdt,
                                        const int32_t *ids, int64_t V, int64_t C, int *err) {
    int64_t n = blockIdx.x;
    int32_t id = ids[n];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) record_error(err, CUDA_ERR_ID, (int)n, id, (int)V);
        return;
    }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        store_f32(out, odt, n * C + c, load_f32(table, tdt, (int64_t)id * C + c));
}

extern "C" int cuda_op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids) {
    if (cuda_check_float("embedding", "out", out->dtype) ||
        cuda_check_float("embedding", "table", table->dtype) ||
        cuda_check_i32("embedding", "ids", ids))
        return -1;
    int64_t V = table->shape[0], C = table->shape[table->ndim - 1], N = tensor_numel(ids);
    if (N == 0) return 0;
    if (V > INT32_MAX || N > INT32_MAX)
        return err_set("cuda embedding: %lld rows of a %lld-row table exceed the int range",
                       (long long)N, (long long)V);
    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    embedding_kernel<<<(unsigned)N, CUDA_THREADS>>>(
        out->data, out->dtype, table->data, table->dtype, (const int32_t *)ids->data, V, C, err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_ID)
        return err_set("cuda embedding: ids[%d] = %d is outside the table's rows [0, %d)", rec[1],
                       rec[2], rec[3]);
    return 0;
}

// ---- kv_store ----

// k_pool/v_pool (P, S, Hkv, D)[slots[n]] = k/v (N, Hkv, D)[n]; one block per row n; W = Hkv * D;
// a slot outside [0, P * S) is recorded in err and not written
static __global__ void kv_store_kernel(void *kp, void *vp, dtype_t pdt, const void *k,
                                       const void *v, dtype_t kvdt, const int32_t *slots,
                                       int64_t nslots, int64_t W, int *err) {
    int64_t n = blockIdx.x;
    int32_t slot = slots[n];
    if (slot < 0 || slot >= nslots) {
        if (threadIdx.x == 0) record_error(err, CUDA_ERR_SLOT, (int)n, slot, (int)nslots);
        return;
    }
    for (int64_t i = threadIdx.x; i < W; i += blockDim.x) {
        store_f32(kp, pdt, slot * W + i, load_f32(k, kvdt, n * W + i));
        store_f32(vp, pdt, slot * W + i, load_f32(v, kvdt, n * W + i));
    }
}

extern "C" int cuda_op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k,
                                const tensor_t *v, const tensor_t *slots) {
    if (cuda_check_float("kv_store", "k_pool", k_pool->dtype) ||
        cuda_check_float("kv_store", "k", k->dtype) || cuda_check_i32("kv_store", "slots", slots))
        return -1;
    if (v_pool->dtype != k_pool->dtype || v->dtype != k->dtype)
        return err_set(
            "cuda kv_store: expected v_pool/v in the dtypes of k_pool/k (%s/%s), found %s/%s",
            dtype_name(k_pool->dtype), dtype_name(k->dtype), dtype_name(v_pool->dtype),
            dtype_name(v->dtype));
    int64_t N = tensor_numel(slots), nslots = k_pool->shape[0] * k_pool->shape[1];
    int64_t W = N > 0 ? tensor_numel(k) / N : 0;
    if (N == 0 || W == 0) return 0;
    if (N > INT32_MAX || nslots > INT32_MAX)
        return err_set("cuda kv_store: %lld rows or %lld slots exceed the int range", (long long)N,
                       (long long)nslots);
    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    kv_store_kernel<<<(unsigned)N, CUDA_THREADS>>>(k_pool->data, v_pool->data, k_pool->dtype,
                                                   k->data, v->data, k->dtype,
                                                   (const int32_t *)slots->data, nslots, W, err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_SLOT)
        return err_set("cuda kv_store: slots[%d] = %d is outside the pool's slots [0, %d)", rec[1],
                       rec[2], rec[3]);
    return 0;
}
