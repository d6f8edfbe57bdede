// adamw.cu: the AdamW update (adamw.h) and the deterministic sum of squares of a gradient.
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/common.cuh"

// ---- the update of one element (F32, every operation rounded on its own as in optim.c) ----

static __device__ __forceinline__ void adamw_elem(float &w, float &m, float &v, float g,
                                                  const adamw_scalars_t &s) {
    if (s.grad_scale != 1.0f) g = __fmul_rn(g, s.grad_scale);
    if (s.clip_coef != 1.0f) g = __fmul_rn(g, s.clip_coef);
    if (s.decay) w = __fmul_rn(w, s.decay_mul);
    float mk = __fadd_rn(__fmul_rn(m, s.beta1), __fmul_rn(g, s.one_minus_beta1));
    float vk = __fadd_rn(__fmul_rn(v, s.beta2), __fmul_rn(__fmul_rn(g, g), s.one_minus_beta2));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vk), s.bc2_sqrt), s.eps);
    w = __fadd_rn(w, __fmul_rn(-s.step_size, __fdiv_rn(mk, denom)));
    m = mk;
    v = vk;
}

// 4 gradient values at element 4 * q (aligned: 16 bytes for F32, 8 for BF16 / F16)
static __device__ __forceinline__ float4 load4(const void *p, dtype_t dt, int64_t q) {
    if (dt == DTYPE_F32) return ((const float4 *)p)[q];
    uint2 u = ((const uint2 *)p)[q];
    uint16_t h[4] = {(uint16_t)(u.x & 0xffffu), (uint16_t)(u.x >> 16), (uint16_t)(u.y & 0xffffu),
                     (uint16_t)(u.y >> 16)};
    float f[4];
    for (int j = 0; j < 4; j++)
        f[j] = dt == DTYPE_BF16 ? rowops_bf16_to_f32(h[j]) : __half2float(__ushort_as_half(h[j]));
    return make_float4(f[0], f[1], f[2], f[3]);
}

static __device__ __forceinline__ uint16_t round16(float x, dtype_t dt) {
    return dt == DTYPE_BF16 ? rowops_f32_to_bf16(x) : __half_as_ushort(__float2half_rn(x));
}

static __device__ __forceinline__ void store4(void *p, dtype_t dt, int64_t q, float4 w) {
    if (dt == DTYPE_F32) {
        ((float4 *)p)[q] = w;
        return;
    }
    uint2 u;
    u.x = (uint32_t)round16(w.x, dt) | ((uint32_t)round16(w.y, dt) << 16);
    u.y = (uint32_t)round16(w.z, dt) | ((uint32_t)round16(w.w, dt) << 16);
    ((uint2 *)p)[q] = u;
}

// elements [0, 4 * n4) by groups of 4 (vector loads), then [4 * n4, n) one by one
static __global__ void adamw_kernel(float *master, float *m, float *v, const void *grad,
                                    dtype_t gdt, void *model, dtype_t mdt, int64_t n, int64_t n4,
                                    adamw_scalars_t s) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < n4; q += stride) {
        float4 w = ((float4 *)master)[q], mm = ((float4 *)m)[q], vv = ((float4 *)v)[q];
        float4 g = load4(grad, gdt, q);
        adamw_elem(w.x, mm.x, vv.x, g.x, s);
        adamw_elem(w.y, mm.y, vv.y, g.y, s);
        adamw_elem(w.z, mm.z, vv.z, g.z, s);
        adamw_elem(w.w, mm.w, vv.w, g.w, s);
        ((float4 *)master)[q] = w;
        ((float4 *)m)[q] = mm;
        ((float4 *)v)[q] = vv;
        if (model) store4(model, mdt, q, w);
    }
    for (int64_t i = 4 * n4 + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float w = master[i], mk = m[i], vk = v[i];
        adamw_elem(w, mk, vk, load_f32(grad, gdt, i), s);
        master[i] = w;
        m[i] = mk;
        v[i] = vk;
        if (model) store_f32(model, mdt, i, w);
    }
}

static int aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

extern "C" int cuda_adamw_step(float *master, float *m, float *v, const void *grad, dtype_t gdt,
                               void *model, dtype_t mdt, int64_t n, const adamw_scalars_t *s) {
    if (cuda_check_float("adamw", "grad", gdt) || (model && cuda_check_float("adamw", "model", mdt)))
        return -1;
    if (n <= 0) return 0;
    int vec = aligned(master, 16) && aligned(m, 16) && aligned(v, 16) &&
              aligned(grad, gdt == DTYPE_F32 ? 16 : 8) &&
              (!model || aligned(model, mdt == DTYPE_F32 ? 16 : 8));
    int64_t n4 = vec ? n / 4 : 0;
    adamw_kernel<<<cuda_blocks(n4 > 0 ? n4 : n), CUDA_THREADS>>>(master, m, v, grad, gdt, model,
                                                                mdt, n, n4, *s);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- sum of squares: per-block partials, then one block ----

#define SUMSQ_BLOCKS 512 // fixed, so the summation order depends on n only

static __global__ void sumsq_partial_kernel(double *part, const void *g, dtype_t dt, int64_t n) {
    double acc = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double x = (double)load_f32(g, dt, i);
        acc += x * x;
    }
    acc = block_sum_f64(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

static __global__ void sumsq_final_kernel(double *acc, const double *part, int nparts,
                                          int accumulate) {
    double x = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) x += part[i];
    x = block_sum_f64(x);
    if (threadIdx.x == 0) *acc = accumulate ? *acc + x : x;
}

extern "C" int cuda_grad_sumsq(double *acc, const void *grad, dtype_t gdt, int64_t n,
                               int accumulate) {
    if (cuda_check_float("grad_sumsq", "grad", gdt)) return -1;
    double *part = (double *)cuda_scratch(SUMSQ_BLOCKS * sizeof(double));
    if (!part) return -1;
    int64_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    int nb = (int)(b < 1 ? 1 : b > SUMSQ_BLOCKS ? SUMSQ_BLOCKS : b);
    sumsq_partial_kernel<<<nb, CUDA_THREADS>>>(part, grad, gdt, n);
    CUDA_CHECK_LAUNCH();
    sumsq_final_kernel<<<1, CUDA_THREADS>>>(acc, part, nb, accumulate);
    CUDA_CHECK_LAUNCH();
    return 0;
}
