// rowops: the per-element and per-row math of the CUDA kernels, as __host__ __device__ inline
// functions. The kernels (kernels/cuda/*.cu) keep only indexing, shared memory and warp shuffles;
// everything numeric lives here, so tests/test_cuda_rowops.c compiles this same header as plain C
// on the host and checks it against double-precision references, without a GPU.
//
// Plain C11 and CUDA C++ both accept this header; nothing here may use CUDA-only features outside
// an #ifdef __CUDA_ARCH__ branch.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define ROWOPS_FN static inline __host__ __device__
#else
#define ROWOPS_FN static inline
#endif

// ---- bf16 <-> f32 bits ----

ROWOPS_FN uint32_t rowops_f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

ROWOPS_FN float rowops_bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// bf16 is the upper half of an f32
ROWOPS_FN float rowops_bf16_to_f32(uint16_t h) { return rowops_bits_f32((uint32_t)h << 16); }

// round to nearest even; NaN stays NaN (quiet), overflow rounds to +-inf
ROWOPS_FN uint16_t rowops_f32_to_bf16(float f) {
    uint32_t u = rowops_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); // NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// ---- rmsnorm ----

// the scale of one row: 1 / sqrt(mean(x^2) + eps), from the row's sum of squares over n elements
ROWOPS_FN float rowops_rms_inv(float sumsq, int64_t n, float eps) {
    return 1.0f / sqrtf(sumsq / (float)n + eps);
}

// one output element: x * inv * w
ROWOPS_FN float rowops_rmsnorm_elem(float x, float inv, float w) { return x * inv * w; }

// ---- rope (HF rotate-half) ----

// the angle of pair i (of D/2) at position pos: pos * theta^(-2i/D), in double so that long
// positions keep their precision (an f32 angle at position 30000 is off by ~1e-3 rad)
ROWOPS_FN double rowops_rope_angle(int32_t pos, int i, int D, double theta) {
    return (double)pos * pow(theta, -2.0 * (double)i / (double)D);
}

// cos and sin of that angle, rounded to f32
ROWOPS_FN void rowops_rope_cos_sin(int32_t pos, int i, int D, double theta, float *c, float *s) {
    double a = rowops_rope_angle(pos, i, D, theta);
    *c = (float)cos(a);
    *s = (float)sin(a);
}

// rotates the pair (a, b) = (x[i], x[i + D/2]) by the angle whose cos/sin are c/s
ROWOPS_FN void rowops_rope_pair(float *a, float *b, float c, float s) {
    float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x1 * c + x0 * s;
}

// ---- swiglu ----

// silu(g) * u = g / (1 + e^-g) * u; e^-g overflowing to inf gives -0, as the limit
ROWOPS_FN float rowops_swiglu(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// ---- online softmax (max m, sum s of e^(x - m)) ----

typedef struct {
    float m; // running max (-inf while empty)
    float s; // running sum of e^(x - m)
} rowops_softmax_t;

ROWOPS_FN rowops_softmax_t rowops_softmax_init(void) {
    rowops_softmax_t st;
    st.m = -INFINITY;
    st.s = 0.0f;
    return st;
}

// adds one value; -inf adds nothing, NaN poisons the state
ROWOPS_FN rowops_softmax_t rowops_softmax_push(rowops_softmax_t st, float x) {
    if (x > st.m) {
        st.s = st.s * expf(st.m - x) + 1.0f; // st.m == -inf: e^-inf = 0
        st.m = x;
    } else if (x != -INFINITY) {
        st.s += expf(x - st.m);
    }
    return st;
}

// combines the states of two disjoint parts of a row
ROWOPS_FN rowops_softmax_t rowops_softmax_merge(rowops_softmax_t a, rowops_softmax_t b) {
    if (a.m == -INFINITY) return b;
    if (b.m == -INFINITY) return a;
    rowops_softmax_t r;
    r.m = a.m > b.m ? a.m : b.m;
    r.s = a.s * expf(a.m - r.m) + b.s * expf(b.m - r.m);
    return r;
}

// softmax of one element, given the final state of its row
ROWOPS_FN float rowops_softmax_elem(rowops_softmax_t st, float x) { return expf(x - st.m) / st.s; }

// log softmax of one element, given the final state of its row
ROWOPS_FN float rowops_logsoftmax_elem(rowops_softmax_t st, float x) {
    return x - st.m - logf(st.s);
}

// ---- online softmax with a weighted sum (attention) ----
// State: max m, sum l of e^(score - m), and an accumulator acc = sum e^(score - m) v kept by the
// caller. One step with a new score returns the factor that rescales the old acc and l (corr) and
// the weight of the new value (p): acc = acc * corr + p * v.

typedef struct {
    float corr; // multiply the old accumulator by this
    float p;    // weight of the new value
} rowops_attn_step_t;

ROWOPS_FN rowops_attn_step_t rowops_attn_step(float *m, float *l, float score) {
    rowops_attn_step_t r;
    if (score == -INFINITY) { // a masked score changes nothing
        r.corr = 1.0f;
        r.p = 0.0f;
        return r;
    }
    float m_new = score > *m ? score : *m;
    r.corr = expf(*m - m_new); // *m == -inf: 0
    r.p = expf(score - m_new);
    *l = *l * r.corr + r.p;
    *m = m_new;
    return r;
}

// the factor that brings a partial state with max m_part to the merged max m_all (0 when the
// part saw nothing)
ROWOPS_FN float rowops_attn_rescale(float m_part, float m_all) {
    return m_part == -INFINITY ? 0.0f : expf(m_part - m_all);
}
