// rowops_bwd: the per-element math of the backward kernels (kernels/cuda/backward.cu), in the
// style of rowops.h: __host__ __device__ inline functions that plain C11 compiles as well, so
// tests/test_cuda_backward.c checks them on the host against double-precision formulas.
// Formulas as in kernels/cpu/backward.c (y the forward output, g = dL/dy).
#pragma once
#include "kernels/cuda/rowops.h"

// rmsnorm: dx_c = inv w_c g_c - coef x_c, with coef = inv^3 / C * sum_j g_j w_j x_j of the row
ROWOPS_FN float rowops_rmsnorm_bwd_coef(float inv, float dot, int64_t C) {
    return inv * inv * inv / (float)C * dot;
}

ROWOPS_FN float rowops_rmsnorm_bwd_elem(float g, float x, float w, float inv, float coef) {
    return inv * w * g - coef * x;
}

// swiglu y = silu(a) u: da = g u s (1 + a (1 - s)), du = g a s, s = sigmoid(a)
ROWOPS_FN void rowops_swiglu_bwd(float g, float a, float u, float *da, float *du) {
    float s = 1.0f / (1.0f + expf(-a));
    *da = g * u * s * (1.0f + a * (1.0f - s));
    *du = g * a * s;
}

// rope backward: the transpose of the forward rotation, i.e. the rotation by minus the angle
ROWOPS_FN void rowops_rope_pair_bwd(float *a, float *b, float c, float s) {
    rowops_rope_pair(a, b, c, -s);
}

// log-softmax gather backward, one logit: dlp * (onehot - p) / t written as the CPU does,
// -scale * e * inv_sum (+ scale at the gathered id), scale = dlp / t, e = e^(z - max z)
ROWOPS_FN float rowops_lsm_gather_bwd_elem(float e, float inv_sum, float scale, int is_id) {
    float v = -scale * e * inv_sum;
    return is_id ? v + scale : v;
}

// entropy of a softmax row from sum e^z and sum z e^z (z = (logit - max) / t): log Z - E[z]
ROWOPS_FN float rowops_entropy_finish(double sum, double ez) {
    return (float)(log(sum) - ez / sum);
}
