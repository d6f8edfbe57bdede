// cpu_ops: the CPU backend of kernels/ (plain C + OpenBLAS + OpenMP), the reference backend.
//
// kernels/kernels.c checks shapes, dtypes and devices, then calls the cpu_op_* of the same name;
// these functions check what needs the data (index ranges) and that every float tensor is F32
// (the CPU backend computes in F32; models convert their weights to F32 when they load).
// Loops are parallel over independent rows (and matmul over fixed tiles) only, so results do not
// depend on the thread count.
#pragma once
#include "../kernels.h"

void cpu_set_threads(int n); // OpenMP threads (OpenBLAS stays single-threaded); n <= 0: all cores
void cpu_blas_init(void);    // makes OpenBLAS single-threaded (once; every matmul calls it)
int cpu_get_threads(void);
// -1 with err_set("<op>: the CPU backend computes in F32; <name> is <dtype>") unless t is F32
int cpu_require_f32(const char *op, const char *name, const tensor_t *t);

// dot product in 16 independent lanes (vectorizable without reordering), lanes summed in order:
// the same bits whatever the thread count
static inline float cpu_dot(const float *a, const float *b, int64_t n) {
    float lane[16] = {0};
    int64_t n16 = n / 16 * 16;
    for (int64_t i = 0; i < n16; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += lane[j];
    for (int64_t i = n16; i < n; i++) s += a[i] * b[i];
    return s;
}

// e^x for x <= 0 (softmax weights after subtracting the row max), in a form the compiler
// vectorizes (no libm call): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, the Cephes degree-6
// polynomial for e^r (about 1 ulp), times 2^n built in the exponent bits. Inputs below -87
// (-INFINITY included) give e^-87 ~ 1.6e-38 instead of a denormal or 0: negligible beside the max
// term's 1. Not for x > 0 (no overflow handling).
static inline float cpu_expf_neg(float x) {
    // the clamp on the bits (a float compare would keep the loop from vectorizing under
    // -ftrapping-math): for x <= 0 the unsigned bits grow with |x|; -87.0f is 0xC2AE0000
    union { float f; uint32_t u; } xb = {x};
    xb.u = xb.u > 0xC2AE0000u ? 0xC2AE0000u : xb.u;
    x = xb.f;
    const float shifter = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer in the low bits
    float t = x * 1.44269504088896341f + shifter;
    float n = t - shifter;
    union { float f; int32_t i; } tb = {t}, sc;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    sc.i = (tb.i - 0x4B400000 + 127) << 23; // 2^n, n in [-126, 0]
    return y * sc.f;
}

int cpu_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate);
int cpu_op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps);
int cpu_op_rope(tensor_t *x, const tensor_t *pos, double theta);
int cpu_op_add(tensor_t *out, const tensor_t *a, const tensor_t *b);
int cpu_op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up);
int cpu_op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids);
int cpu_op_softmax(tensor_t *x);
int cpu_op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids,
                             float temperature);
int cpu_op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                    const tensor_t *slots);
// attention: sequences with at least CPU_ATTENTION_GEMM_MIN_Q query rows (prefill, the training
// forward) run on OpenBLAS, tiles of query rows against their causal key range; shorter ones
// (decode) row by row. _ref: every row by the scalar loop (the reference the tests compare with);
// _gemm_min_q: the threshold as an argument (1: every sequence on the GEMM path).
#define CPU_ATTENTION_GEMM_MIN_Q 32
int cpu_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                     const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table);
int cpu_op_attention_ref(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                         const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table);
int cpu_op_attention_gemm_min_q(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                                const tensor_t *v_pool, const tensor_t *seq_info,
                                const tensor_t *page_table, int64_t gemm_min_q);
