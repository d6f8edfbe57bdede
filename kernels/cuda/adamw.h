// adamw: the AdamW update of learner/optim.c on the device, fp32 master weights and moments.
//
// Per element (optim.h), with the scalars below computed on the host exactly as optim_step does:
//   g  = grad * grad_scale * clip_coef            (each multiply skipped when its factor is 1)
//   w *= decay_mul                                (only when decay; decay_mul = 1 - lr * wd)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   w += -step_size * (m / (sqrt(v) / bc2_sqrt + eps))
// in F32 with every product and sum rounded separately (no FMA), like the CPU loop, so the device
// result matches optim_step to the last bit or close to it. The same kernel writes a model copy
// of the new weights (BF16 / F16 rounded to nearest even, or F32).
//
// The global grad-norm clip of optim_step needs sum(grad^2) over ALL parameters before any
// update: cuda_grad_sumsq adds each parameter's sum of squares into one device double
// (deterministic: fixed per-block partials, then one block sums them in a fixed order). A NaN or
// Inf anywhere makes that sum non-finite, which is the NaN guard's test.
//
// Functions return 0, or -1 with err_set(). Everything runs on the default stream, asynchronous;
// compiled only with TRUSTEE_CUDA (the scalar helper is plain C and always available).
#pragma once
#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { // kernels.h has no C++ guard of its own
#endif
#include "kernels/kernels.h"

// the per-step scalars of one parameter, as F32 like optim_step computes them
typedef struct {
    float grad_scale, clip_coef;
    float beta1, beta2, one_minus_beta1, one_minus_beta2;
    float step_size; // lr / (1 - beta1^t)
    float bc2_sqrt;  // sqrt(1 - beta2^t)
    float eps;
    float decay_mul; // 1 - lr * weight_decay
    int decay;       // 1: multiply w by decay_mul (parameter marked decay and weight_decay > 0)
} adamw_scalars_t;

// t: the 1-based step; lr: the scheduled rate of this step (optim_lr(cfg, t - 1))
static inline void adamw_scalars_init(adamw_scalars_t *s, double lr, double beta1, double beta2,
                                      double eps, double weight_decay, int decay, int64_t t,
                                      double grad_scale, double clip_coef) {
    double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    s->grad_scale = (float)grad_scale;
    s->clip_coef = (float)clip_coef;
    s->beta1 = (float)beta1;
    s->beta2 = (float)beta2;
    s->one_minus_beta1 = (float)(1.0 - beta1);
    s->one_minus_beta2 = (float)(1.0 - beta2);
    s->step_size = (float)(lr / bc1);
    s->bc2_sqrt = (float)sqrt(bc2);
    s->eps = (float)eps;
    s->decay_mul = (float)(1.0 - lr * weight_decay);
    s->decay = decay && weight_decay > 0;
}

#ifdef TRUSTEE_CUDA
// One update of n elements, all buffers on the device:
//   master, m, v  F32 (n), updated in place
//   grad          (n) of gdt (F32, BF16 or F16), read only
//   model         (n) of mdt (F32, BF16 or F16): the new weights, rounded; NULL: none
// 128-bit loads (float4) when the buffers are suitably aligned, a scalar tail otherwise.
int cuda_adamw_step(float *master, float *m, float *v, const void *grad, dtype_t gdt, void *model,
                    dtype_t mdt, int64_t n, const adamw_scalars_t *s);

// *acc (+)= sum of grad (n, gdt)^2 in double; acc: ONE double on the device. accumulate = 0
// overwrites *acc. Deterministic for a given n (fixed launch shape, fixed summation order).
int cuda_grad_sumsq(double *acc, const void *grad, dtype_t gdt, int64_t n, int accumulate);
#endif

#ifdef __cplusplus
}
#endif
