// kernels.c: tensor helpers (dtypes, views, allocation, copies and conversions) and the dispatch of
// every op: check shapes/dtypes/devices here, once, then call the backend of the output's device.
#include "kernels.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "err.h"
#ifdef TRUSTEE_CUDA
#include "cuda/cuda_ops.h"
#endif

// ---------------------------------------------------------------------------------------------
// dtypes and tensors

size_t dtype_size(dtype_t dt) {
    switch (dt) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_F16: return 2;
    case DTYPE_I32: return 4;
    }
    return 0;
}

const char *dtype_name(dtype_t dt) {
    switch (dt) {
    case DTYPE_F32: return "F32";
    case DTYPE_BF16: return "BF16";
    case DTYPE_F16: return "F16";
    case DTYPE_I32: return "I32";
    }
    return "?";
}

static const char *device_name(device_t d) { return d == DEVICE_CUDA ? "CUDA" : "CPU"; }

static int dtype_is_float(dtype_t dt) {
    return dt == DTYPE_F32 || dt == DTYPE_BF16 || dt == DTYPE_F16;
}

int64_t tensor_numel(const tensor_t *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const tensor_t *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

tensor_t tensor_view(void *data, dtype_t dt, device_t dev, int ndim, const int64_t *shape) {
    tensor_t t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim < 0 ? 0 : (ndim > TENSOR_MAX_DIMS ? TENSOR_MAX_DIMS : ndim);
    for (int i = 0; i < t.ndim; i++) t.shape[i] = shape[i];
    return t;
}

int tensor_alloc(tensor_t *t, dtype_t dt, device_t dev, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
        return err_set("tensor_alloc: expected 0..%d dims, found %d", TENSOR_MAX_DIMS, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return err_set("tensor_alloc: dim %d is negative (%" PRId64 ")", i, shape[i]);
    *t = tensor_view(NULL, dt, dev, ndim, shape);
    size_t n = tensor_nbytes(t);
    if (dev == DEVICE_CPU) {
        size_t padded = (n + 63) / 64 * 64; // aligned_alloc wants a multiple of the alignment
        t->data = aligned_alloc(64, padded ? padded : 64);
        if (!t->data) return err_set("tensor_alloc: out of memory (%zu bytes)", n);
        memset(t->data, 0, padded ? padded : 64);
    } else {
#ifdef TRUSTEE_CUDA
        if (cuda_alloc(&t->data, n) != 0) return err_wrap("tensor_alloc: ");
        if (n && cuda_set_zero(t->data, n) != 0) {
            cuda_free(t->data);
            t->data = NULL;
            return err_wrap("tensor_alloc: ");
        }
#else
        return err_set("tensor_alloc: a CUDA tensor was asked for, but trustee was built without CUDA");
#endif
    }
    t->owned = 1;
    return 0;
}

void tensor_free(tensor_t *t) {
    if (!t) return;
    if (t->owned && t->data) {
        if (t->device == DEVICE_CPU) free(t->data);
#ifdef TRUSTEE_CUDA
        else cuda_free(t->data);
#endif
    }
    t->data = NULL;
    t->owned = 0;
}

// ---------------------------------------------------------------------------------------------
// scalar conversions

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                             // nearest even
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); // inf / NaN
    if (exp == 0) {
        if (man == 0) return bits_f32(sign); // +-0
        // subnormal: man * 2^-24
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00u; // rounds to >= 65520: inf
    if (a < 0x38800000u) {                       // below the smallest normal 2^-14: subnormal
        // value = a_f * 2^24 in units of the f16 subnormal step, rounded to nearest even
        float v = bits_f32(a) * 16777216.0f; // exact: multiply by a power of two
        uint32_t q = (uint32_t)v;
        float rest = v - (float)q;
        if (rest > 0.5f || (rest == 0.5f && (q & 1u))) q++;
        return sign | (uint16_t)q; // q == 0x400 becomes the smallest normal, as it should
    }
    // normal: rebias the exponent (127 -> 15) and round the mantissa from 23 to 10 bits
    uint32_t r = a - (112u << 23);
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}

// ---------------------------------------------------------------------------------------------
// copies

// converts n elements between host buffers of float dtypes (or copies when the dtypes are equal)
static void convert_host(void *dst, dtype_t ddt, const void *src, dtype_t sdt, int64_t n) {
    if (ddt == sdt) {
        memcpy(dst, src, (size_t)n * dtype_size(ddt));
        return;
    }
    if (ddt == DTYPE_F32) {
        float *d = dst;
        const uint16_t *s = src;
        if (sdt == DTYPE_BF16) {
#pragma omp parallel for if (n > (1 << 16))
            for (int64_t i = 0; i < n; i++) d[i] = bf16_to_f32(s[i]);
        } else {
#pragma omp parallel for if (n > (1 << 16))
            for (int64_t i = 0; i < n; i++) d[i] = f16_to_f32(s[i]);
        }
    } else if (sdt == DTYPE_F32) {
        uint16_t *d = dst;
        const float *s = src;
        if (ddt == DTYPE_BF16) {
#pragma omp parallel for if (n > (1 << 16))
            for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(s[i]);
        } else {
#pragma omp parallel for if (n > (1 << 16))
            for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16(s[i]);
        }
    } else { // BF16 <-> F16 through F32
        uint16_t *d = dst;
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            d[i] = ddt == DTYPE_BF16 ? f32_to_bf16(f16_to_f32(s[i])) : f32_to_f16(bf16_to_f32(s[i]));
    }
}

int tensor_copy(tensor_t *dst, const tensor_t *src) {
    int64_t n = tensor_numel(src);
    if (tensor_numel(dst) != n)
        return err_set("tensor_copy: element counts differ (dst %" PRId64 ", src %" PRId64 ")",
                       tensor_numel(dst), n);
    int dflt = dtype_is_float(dst->dtype), sflt = dtype_is_float(src->dtype);
    if (dst->dtype != src->dtype && !(dflt && sflt))
        return err_set("tensor_copy: cannot convert %s to %s", dtype_name(src->dtype),
                       dtype_name(dst->dtype));
    if (n == 0 || dst->data == src->data) return 0;
    if (dst->device == DEVICE_CPU && src->device == DEVICE_CPU) {
        convert_host(dst->data, dst->dtype, src->data, src->dtype, n);
        return 0;
    }
#ifdef TRUSTEE_CUDA
    size_t sbytes = (size_t)n * dtype_size(src->dtype), dbytes = (size_t)n * dtype_size(dst->dtype);
    if (dst->dtype == src->dtype) return cuda_memcpy(dst->data, dst->device, src->data, src->device, sbytes);
    if (dst->device == DEVICE_CUDA && src->device == DEVICE_CUDA)
        return cuda_convert(dst->data, dst->dtype, src->data, src->dtype, n);
    // one side on the host: convert on the host next to a plain transfer
    void *tmp = malloc(src->device == DEVICE_CUDA ? sbytes : dbytes);
    if (!tmp) return err_set("tensor_copy: out of memory (%zu bytes)", sbytes > dbytes ? sbytes : dbytes);
    int rc;
    if (src->device == DEVICE_CUDA) { // CUDA -> host staging -> convert into dst (CPU)
        rc = cuda_memcpy(tmp, DEVICE_CPU, src->data, DEVICE_CUDA, sbytes);
        if (rc == 0) convert_host(dst->data, dst->dtype, tmp, src->dtype, n);
    } else { // convert on the host -> CUDA
        convert_host(tmp, dst->dtype, src->data, src->dtype, n);
        rc = cuda_memcpy(dst->data, DEVICE_CUDA, tmp, DEVICE_CPU, dbytes);
    }
    free(tmp);
    return rc;
#else
    return err_set("tensor_copy: a tensor is on %s, but trustee was built without CUDA",
                   device_name(dst->device == DEVICE_CUDA ? dst->device : src->device));
#endif
}

// ---------------------------------------------------------------------------------------------
// backends

int kernels_backend_available(device_t dev) {
    if (dev == DEVICE_CPU) return 1;
#ifdef TRUSTEE_CUDA
    return cuda_available();
#else
    return 0;
#endif
}

void kernels_set_threads(int n) { cpu_set_threads(n); }
int kernels_get_threads(void) { return cpu_get_threads(); }

// ---------------------------------------------------------------------------------------------
// argument checks shared by every op

// all tensors on one device; names for the message
static int check_devices(const char *op, int n, const tensor_t *const *ts, const char *const *names) {
    for (int i = 1; i < n; i++)
        if (ts[i]->device != ts[0]->device)
            return err_set("%s: mixed devices: %s is on %s but %s is on %s", op, names[0],
                           device_name(ts[0]->device), names[i], device_name(ts[i]->device));
    return 0;
}

static int check_float(const char *op, const char *name, const tensor_t *t) {
    if (!dtype_is_float(t->dtype))
        return err_set("%s: %s must be a float tensor (F32/BF16/F16), found %s", op, name,
                       dtype_name(t->dtype));
    return 0;
}

static int check_i32(const char *op, const char *name, const tensor_t *t) {
    if (t->dtype != DTYPE_I32)
        return err_set("%s: %s must be I32, found %s", op, name, dtype_name(t->dtype));
    return 0;
}

static int check_ndim(const char *op, const char *name, const tensor_t *t, int ndim) {
    if (t->ndim != ndim)
        return err_set("%s: %s must have %d dims, found %d", op, name, ndim, t->ndim);
    return 0;
}

static int check_data(const char *op, const char *name, const tensor_t *t) {
    if (!t->data && tensor_numel(t) > 0) return err_set("%s: %s has no data", op, name);
    return 0;
}

// dispatch on the device of `first`
#ifdef TRUSTEE_CUDA
#define DISPATCH(name, first, ...)                                                           \
    return (first)->device == DEVICE_CUDA ? cuda_op_##name(__VA_ARGS__) : cpu_op_##name(__VA_ARGS__)
#else
#define DISPATCH(name, first, ...)                                                           \
    do {                                                                                     \
        if ((first)->device == DEVICE_CUDA)                                                  \
            return err_set("op_" #name ": tensors are on CUDA, but trustee was built without CUDA"); \
        return cpu_op_##name(__VA_ARGS__);                                                   \
    } while (0)
#endif

// rows x cols view of a tensor of >= 1 dim: rows = shape[0], cols = the rest
static int64_t rows_of(const tensor_t *t) { return t->ndim ? t->shape[0] : 1; }
static int64_t cols_of(const tensor_t *t) {
    int64_t r = rows_of(t);
    return r ? tensor_numel(t) / r : 0;
}
static int64_t last_dim(const tensor_t *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

// ---------------------------------------------------------------------------------------------
// ops

int op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate) {
    const char *op = "op_matmul";
    const tensor_t *ts[] = {out, x, w};
    const char *nm[] = {"out", "x", "w"};
    if (check_devices(op, 3, ts, nm)) return -1;
    for (int i = 0; i < 3; i++)
        if (check_float(op, nm[i], ts[i]) || check_data(op, nm[i], ts[i])) return -1;
    if (out->ndim < 1 || x->ndim < 1 || check_ndim(op, "w", w, 2))
        return err_set("%s: out and x need >= 1 dim, w (O, I) 2 dims", op);
    int64_t N = rows_of(x), I = cols_of(x), O = w->shape[0];
    if (w->shape[1] != I)
        return err_set("%s: x has %" PRId64 " columns but w is (%" PRId64 ", %" PRId64 ")", op, I,
                       w->shape[0], w->shape[1]);
    if (rows_of(out) != N || cols_of(out) != O)
        return err_set("%s: out must be (%" PRId64 ", %" PRId64 "), found (%" PRId64 ", %" PRId64 ")",
                       op, N, O, rows_of(out), cols_of(out));
    DISPATCH(matmul, out, out, x, w, accumulate);
}

int op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps) {
    const char *op = "op_rmsnorm";
    const tensor_t *ts[] = {out, x, w};
    const char *nm[] = {"out", "x", "w"};
    if (check_devices(op, 3, ts, nm)) return -1;
    for (int i = 0; i < 3; i++)
        if (check_float(op, nm[i], ts[i]) || check_data(op, nm[i], ts[i])) return -1;
    int64_t C = last_dim(x);
    if (tensor_numel(w) != C)
        return err_set("%s: w has %" PRId64 " elements, x rows have %" PRId64, op, tensor_numel(w), C);
    if (tensor_numel(out) != tensor_numel(x) || last_dim(out) != C)
        return err_set("%s: out and x shapes differ", op);
    DISPATCH(rmsnorm, out, out, x, w, eps);
}

int op_rope(tensor_t *x, const tensor_t *pos, double theta) {
    const char *op = "op_rope";
    const tensor_t *ts[] = {x, pos};
    const char *nm[] = {"x", "pos"};
    if (check_devices(op, 2, ts, nm) || check_float(op, "x", x) || check_i32(op, "pos", pos) ||
        check_ndim(op, "x", x, 3) || check_data(op, "x", x) || check_data(op, "pos", pos))
        return -1;
    if (tensor_numel(pos) != x->shape[0])
        return err_set("%s: pos has %" PRId64 " entries, x has %" PRId64 " rows", op,
                       tensor_numel(pos), x->shape[0]);
    if (x->shape[2] % 2) return err_set("%s: head dim must be even, found %" PRId64, op, x->shape[2]);
    if (!(theta > 0)) return err_set("%s: theta must be > 0, found %g", op, theta);
    DISPATCH(rope, x, x, pos, theta);
}

int op_add(tensor_t *out, const tensor_t *a, const tensor_t *b) {
    const char *op = "op_add";
    const tensor_t *ts[] = {out, a, b};
    const char *nm[] = {"out", "a", "b"};
    if (check_devices(op, 3, ts, nm)) return -1;
    for (int i = 0; i < 3; i++)
        if (check_float(op, nm[i], ts[i]) || check_data(op, nm[i], ts[i])) return -1;
    if (tensor_numel(a) != tensor_numel(out) || tensor_numel(b) != tensor_numel(out))
        return err_set("%s: element counts differ (out %" PRId64 ", a %" PRId64 ", b %" PRId64 ")",
                       op, tensor_numel(out), tensor_numel(a), tensor_numel(b));
    DISPATCH(add, out, out, a, b);
}

int op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up) {
    const char *op = "op_swiglu";
    const tensor_t *ts[] = {out, gate, up};
    const char *nm[] = {"out", "gate", "up"};
    if (check_devices(op, 3, ts, nm)) return -1;
    for (int i = 0; i < 3; i++)
        if (check_float(op, nm[i], ts[i]) || check_data(op, nm[i], ts[i])) return -1;
    if (tensor_numel(gate) != tensor_numel(out) || tensor_numel(up) != tensor_numel(out))
        return err_set("%s: element counts differ (out %" PRId64 ", gate %" PRId64 ", up %" PRId64 ")",
                       op, tensor_numel(out), tensor_numel(gate), tensor_numel(up));
    DISPATCH(swiglu, out, out, gate, up);
}

int op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids) {
    const char *op = "op_embedding";
    const tensor_t *ts[] = {out, table, ids};
    const char *nm[] = {"out", "table", "ids"};
    if (check_devices(op, 3, ts, nm) || check_float(op, "out", out) ||
        check_float(op, "table", table) || check_i32(op, "ids", ids) ||
        check_ndim(op, "table", table, 2))
        return -1;
    for (int i = 0; i < 3; i++)
        if (check_data(op, nm[i], ts[i])) return -1;
    int64_t N = tensor_numel(ids), C = table->shape[1];
    if (rows_of(out) != N || cols_of(out) != C)
        return err_set("%s: out must be (%" PRId64 ", %" PRId64 "), found (%" PRId64 ", %" PRId64 ")",
                       op, N, C, rows_of(out), cols_of(out));
    DISPATCH(embedding, out, out, table, ids);
}

int op_softmax(tensor_t *x) {
    if (check_float("op_softmax", "x", x) || check_data("op_softmax", "x", x)) return -1;
    DISPATCH(softmax, x, x);
}

int op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids, float temperature) {
    const char *op = "op_logsoftmax_gather";
    const tensor_t *ts[] = {out, logits, ids};
    const char *nm[] = {"out", "logits", "ids"};
    if (check_devices(op, 3, ts, nm) || check_float(op, "out", out) ||
        check_float(op, "logits", logits) || check_i32(op, "ids", ids) ||
        check_ndim(op, "logits", logits, 2))
        return -1;
    for (int i = 0; i < 3; i++)
        if (check_data(op, nm[i], ts[i])) return -1;
    int64_t N = logits->shape[0];
    if (tensor_numel(ids) != N || tensor_numel(out) != N)
        return err_set("%s: logits have %" PRId64 " rows but ids has %" PRId64 " and out %" PRId64,
                       op, N, tensor_numel(ids), tensor_numel(out));
    if (!(temperature > 0)) return err_set("%s: temperature must be > 0, found %g", op, temperature);
    DISPATCH(logsoftmax_gather, out, out, logits, ids, temperature);
}

int op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                const tensor_t *slots) {
    const char *op = "op_kv_store";
    const tensor_t *ts[] = {k_pool, v_pool, k, v, slots};
    const char *nm[] = {"k_pool", "v_pool", "k", "v", "slots"};
    if (check_devices(op, 5, ts, nm)) return -1;
    for (int i = 0; i < 4; i++)
        if (check_float(op, nm[i], ts[i])) return -1;
    for (int i = 0; i < 5; i++)
        if (check_data(op, nm[i], ts[i])) return -1;
    if (check_i32(op, "slots", slots) || check_ndim(op, "k_pool", k_pool, 4) ||
        check_ndim(op, "v_pool", v_pool, 4) || check_ndim(op, "k", k, 3) || check_ndim(op, "v", v, 3))
        return -1;
    for (int i = 0; i < 4; i++)
        if (k_pool->shape[i] != v_pool->shape[i]) return err_set("%s: k_pool and v_pool shapes differ", op);
    for (int i = 0; i < 3; i++)
        if (k->shape[i] != v->shape[i]) return err_set("%s: k and v shapes differ", op);
    if (k->shape[1] != k_pool->shape[2] || k->shape[2] != k_pool->shape[3])
        return err_set("%s: k rows are (%" PRId64 ", %" PRId64 ") but the pool holds (Hkv %" PRId64
                       ", D %" PRId64 ")", op, k->shape[1], k->shape[2], k_pool->shape[2], k_pool->shape[3]);
    if (tensor_numel(slots) != k->shape[0])
        return err_set("%s: slots has %" PRId64 " entries, k has %" PRId64 " rows", op,
                       tensor_numel(slots), k->shape[0]);
    DISPATCH(kv_store, k_pool, k_pool, v_pool, k, v, slots);
}

int op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool, const tensor_t *v_pool,
                 const tensor_t *seq_info, const tensor_t *page_table) {
    const char *op = "op_attention";
    const tensor_t *ts[] = {out, q, k_pool, v_pool, seq_info, page_table};
    const char *nm[] = {"out", "q", "k_pool", "v_pool", "seq_info", "page_table"};
    if (check_devices(op, 6, ts, nm)) return -1;
    for (int i = 0; i < 4; i++)
        if (check_float(op, nm[i], ts[i])) return -1;
    for (int i = 0; i < 6; i++)
        if (check_data(op, nm[i], ts[i])) return -1;
    if (check_i32(op, "seq_info", seq_info) || check_i32(op, "page_table", page_table) ||
        check_ndim(op, "q", q, 3) || check_ndim(op, "k_pool", k_pool, 4) ||
        check_ndim(op, "v_pool", v_pool, 4) || check_ndim(op, "seq_info", seq_info, 2) ||
        check_ndim(op, "page_table", page_table, 2))
        return -1;
    if (tensor_numel(out) != tensor_numel(q) || rows_of(out) != q->shape[0])
        return err_set("%s: out must hold (N %" PRId64 ", Hq %" PRId64 ", D %" PRId64 ")", op,
                       q->shape[0], q->shape[1], q->shape[2]);
    for (int i = 0; i < 4; i++)
        if (k_pool->shape[i] != v_pool->shape[i]) return err_set("%s: k_pool and v_pool shapes differ", op);
    int64_t Hq = q->shape[1], D = q->shape[2], Hkv = k_pool->shape[2];
    if (k_pool->shape[3] != D)
        return err_set("%s: q head dim %" PRId64 " but the pool's is %" PRId64, op, D, k_pool->shape[3]);
    if (Hkv <= 0 || Hq % Hkv)
        return err_set("%s: query heads (%" PRId64 ") must be a multiple of KV heads (%" PRId64 ")",
                       op, Hq, Hkv);
    if (seq_info->shape[1] != 3)
        return err_set("%s: seq_info must be (B, 3), found (%" PRId64 ", %" PRId64 ")", op,
                       seq_info->shape[0], seq_info->shape[1]);
    if (page_table->shape[0] != seq_info->shape[0])
        return err_set("%s: page_table has %" PRId64 " rows, seq_info %" PRId64, op,
                       page_table->shape[0], seq_info->shape[0]);
    DISPATCH(attention, out, out, q, k_pool, v_pool, seq_info, page_table);
}
