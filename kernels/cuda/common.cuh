// common.cuh: what every .cu file of the CUDA backend shares: the check macros, dtype loads and
// stores, warp/block reductions, the device error record, the cached cuBLAS handle.
// Internal to kernels/cuda (C++ linkage); the public interface is cuda_ops.h.
// No thrust / cub here: this header is included by every .cu file (compile time).
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/rowops.h"
extern "C" {
#include "kernels/err.h"
}

// ---- checks: on failure record file:line, the statement and the library's message; return -1 ----
// CUDA_CHECK, CUBLAS_CHECK, NCCL_CHECK: kernels/cuda/check.h (plain C too, shared with comm/nccl.c)

// after a kernel launch: reports a bad launch configuration (asynchronous faults show up later)
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// ---- launch shapes ----

#define CUDA_THREADS 256 // threads per block of the elementwise and per-row kernels

// blocks for a grid-stride loop over n elements
static inline unsigned cuda_blocks(int64_t n) {
    int64_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    if (b < 1) b = 1;
    if (b > 65536) b = 65536;
    return (unsigned)b;
}

// a grid-stride loop of i over [0, n)
#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);                      \
         i += (int64_t)gridDim.x * blockDim.x)

// ---- dtype loads and stores (F32 / BF16 / F16 storage, F32 arithmetic) ----
// The dtype is a kernel argument, the same for every thread, so the switch does not diverge.

static __device__ __forceinline__ float load_f32(const void *p, dtype_t dt, int64_t i) {
    switch (dt) {
    case DTYPE_BF16: return rowops_bf16_to_f32(((const uint16_t *)p)[i]);
    case DTYPE_F16: return __half2float(((const __half *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static __device__ __forceinline__ void store_f32(void *p, dtype_t dt, int64_t i, float v) {
    switch (dt) {
    case DTYPE_BF16: ((uint16_t *)p)[i] = rowops_f32_to_bf16(v); break;
    case DTYPE_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

// ---- 128-bit vectorized loads and stores (the memory-bound kernels) ----
// Groups of 8 elements: two float4 loads for F32, one uint4 (8 x 16 bits) for BF16 / F16, so every
// access is 128 bits. Element index i must be a multiple of 8 and the pointer 16-byte aligned
// (cuda_vec_ok checks both on the host before a kernel takes its vector path).

#define CUDA_VEC 8

static inline int cuda_vec_ok(const void *p) { return ((uintptr_t)p & 15u) == 0; }

static __device__ __forceinline__ float half16_to_f32(uint32_t h, dtype_t dt) {
    if (dt == DTYPE_BF16) return rowops_bf16_to_f32((uint16_t)h);
    return __half2float(__ushort_as_half((unsigned short)h));
}

static __device__ __forceinline__ uint32_t f32_to_half16(float v, dtype_t dt) {
    if (dt == DTYPE_BF16) return rowops_f32_to_bf16(v);
    return __half_as_ushort(__float2half_rn(v));
}

static __device__ __forceinline__ void load8_f32(const void *p, dtype_t dt, int64_t i, float v[8]) {
    if (dt == DTYPE_F32) {
        float4 a = ((const float4 *)p)[i / 4], b = ((const float4 *)p)[i / 4 + 1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
        return;
    }
    uint4 u = ((const uint4 *)p)[i / 8];
    uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; j++) { // little-endian: the lower half is the earlier element
        v[2 * j] = half16_to_f32(w[j] & 0xffffu, dt);
        v[2 * j + 1] = half16_to_f32(w[j] >> 16, dt);
    }
}

static __device__ __forceinline__ void store8_f32(void *p, dtype_t dt, int64_t i, const float v[8]) {
    if (dt == DTYPE_F32) {
        ((float4 *)p)[i / 4] = make_float4(v[0], v[1], v[2], v[3]);
        ((float4 *)p)[i / 4 + 1] = make_float4(v[4], v[5], v[6], v[7]);
        return;
    }
    uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        w[j] = f32_to_half16(v[2 * j], dt) | (f32_to_half16(v[2 * j + 1], dt) << 16);
    ((uint4 *)p)[i / 8] = make_uint4(w[0], w[1], w[2], w[3]);
}

// 0 when dt is a float storage dtype the kernels handle, else -1 with an error naming what
static inline int cuda_check_float(const char *op, const char *what, dtype_t dt) {
    if (dt == DTYPE_F32 || dt == DTYPE_BF16 || dt == DTYPE_F16) return 0;
    return err_set("cuda %s: %s: expected dtype F32, BF16 or F16, found %s", op, what,
                   dtype_name(dt));
}

static inline int cuda_check_i32(const char *op, const char *what, const tensor_t *t) {
    if (t->dtype == DTYPE_I32) return 0;
    return err_set("cuda %s: %s: expected dtype I32, found %s", op, what, dtype_name(t->dtype));
}

// ---- reductions ----

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ rowops_softmax_t warp_softmax_merge(rowops_softmax_t st) {
    for (int o = 16; o > 0; o >>= 1) {
        rowops_softmax_t other;
        other.m = __shfl_xor_sync(0xffffffffu, st.m, o);
        other.s = __shfl_xor_sync(0xffffffffu, st.s, o);
        st = rowops_softmax_merge(st, other);
    }
    return st;
}

// sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// Uses 32 floats of shared memory; callable more than once per kernel.
static __device__ float block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads(); // part[] may still be read by a previous call
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < nwarps ? part[lane] : 0.0f;
    return warp_sum(v);
}

// a reduction over the block in a fixed order (warp shuffles, then the warps' partials in warp
// order), every thread gets the result: op(x, y) combines two partials, identity fills the unused
// slots. blockDim.x a multiple of 32, at most 1024; callable more than once per kernel.
template <typename T, typename Op> static __device__ T block_reduce(T x, T identity, Op op) {
    __shared__ T part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1)
        x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
    __syncthreads(); // part[] may still be read by a previous call
    if (lane == 0) part[warp] = x;
    __syncthreads();
    x = lane < nwarps ? part[lane] : identity;
    for (int o = 16; o > 0; o >>= 1)
        x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

struct reduce_add_f64 {
    __device__ double operator()(double a, double b) const { return a + b; }
};

// sum in double over the block (the deterministic sums of the optimizer, sampler, LM head)
static __device__ double block_sum_f64(double x) { return block_reduce(x, 0.0, reduce_add_f64()); }

static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// merged online-softmax state of the block; every thread gets the result
static __device__ rowops_softmax_t block_softmax_merge(rowops_softmax_t st) {
    __shared__ float pm[32], ps[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    st = warp_softmax_merge(st);
    __syncthreads();
    if (lane == 0) {
        pm[warp] = st.m;
        ps[warp] = st.s;
    }
    __syncthreads();
    st = rowops_softmax_init();
    if (lane < nwarps) {
        st.m = pm[lane];
        st.s = ps[lane];
    }
    return warp_softmax_merge(st);
}

// ---- device error record ----
// Kernels that validate device-side indices report the first bad one into a small device buffer
// (int[4]: code, a, b, c; code 0 = no error). The op resets it before its launches and reads it
// back after them (which synchronizes), then turns a nonzero code into an err_set message.
// One record per process: ops are issued from one host thread at a time.

enum {
    CUDA_ERR_NONE = 0,
    CUDA_ERR_ID = 1,      // a: row, b: id, c: bound (embedding / logsoftmax_gather)
    CUDA_ERR_SLOT = 2,    // a: row, b: slot, c: bound (kv_store)
    CUDA_ERR_SEQ = 3,     // a: sequence, b: which field is wrong (see attention.cu), c: value
    CUDA_ERR_PAGE = 4,    // a: sequence, b: page-table column, c: page id (attention)
    CUDA_ERR_OVERLAP = 5, // a: sequence, b: an earlier sequence sharing query rows (attention)
};

static __device__ __forceinline__ void record_error(int *rec, int code, int a, int b, int c) {
    if (atomicCAS(&rec[0], 0, code) == 0) {
        rec[1] = a;
        rec[2] = b;
        rec[3] = c;
    }
}

int cuda_errrec_reset(int **rec); // *rec = the device record, zeroed (queued on the stream)
int cuda_errrec_read(int out[4]); // copies the record back (synchronizes)

// ---- shared launchers ----

// rotates x (N, H, D) in place by rope's angles (inverse = 1: the opposite angles, the backward);
// op names the calling op in errors (elementwise.cu)
int cuda_rope_rotate(tensor_t *x, const tensor_t *pos, double theta, int inverse, const char *op);

// ---- shared resources (runtime.cu) ----

cublasHandle_t cuda_blas(void); // the cached cuBLAS handle, created on first use; NULL + err_set
// a device scratch buffer of at least n bytes, reused across calls (grows, never shrinks); NULL +
// err_set on failure. Valid until the next cuda_scratch call.
void *cuda_scratch(size_t n);
