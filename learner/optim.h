// optim: AdamW with fp32 master weights and fp32 moments, global grad-norm clip, warmup + cosine
// learning-rate schedule, and a NaN/Inf guard.
//
// The optimizer updates a list of F32 tensors in place: the model's F32 weights are the master
// weights. All on the CPU, or all on CUDA (then the moments live on the device too, and
// optim_step_qwen3 takes device gradients and runs kernels/cuda/adamw.h: the same F32 element
// math; optim_step's host-array form is CPU only; optim_save / optim_load copy the moments). Per element, step t (1-based), as torch.optim.AdamW:
//   g  = grad * grad_scale * clip_coef
//   w *= 1 - lr * weight_decay                      (decoupled decay; only where decay = 1)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// clip_coef = min(1, clip_norm / (||grad * grad_scale|| + 1e-6)), the norm taken over ALL
// parameters together (torch.nn.utils.clip_grad_norm_).
//
// Gradient accumulation over micro-batches: the backward ADDS into the gradient buffers, so run
// every micro-batch's backward before one optim_step; give the losses the global normalizer
// (e.g. the token count of the whole batch), or pass grad_scale = 1 / normalizer here.
//
// NaN guard: when the loss or any gradient element is NaN or Inf, optim_step changes nothing
// (weights, moments and step count stay bit-for-bit as they were), returns 1 and names what was
// not finite in stats->msg.
#pragma once
#include <stdint.h>

#include "../kernels/kernels.h"
#include "../model/qwen3.h"

typedef struct {
    double lr;              // peak learning rate
    double beta1, beta2;    // moment decay rates (0.9, 0.999)
    double eps;             // denominator epsilon (1e-8)
    double weight_decay;    // decoupled weight decay on parameters marked decay (0.01)
    double clip_norm;       // global grad-norm clip; <= 0: no clipping (1.0)
    int64_t warmup_steps;   // linear warmup: lr * (t + 1) / warmup for update t < warmup (0)
    int64_t total_steps;    // cosine from lr to min_lr over updates warmup..total; 0: constant (0)
    double min_lr;          // floor of the cosine decay (0)
    int decay_embeddings;   // optim_init_qwen3: decay the embedding / lm_head too (0: matrices of
                            // the layers only; norms are never decayed)
} optim_config_t;

void optim_config_default(optim_config_t *c);
// learning rate of update `step` (0-based) under the schedule
double optim_lr(const optim_config_t *c, int64_t step);

// one parameter as given to optim_init
typedef struct {
    const char *name; // copied
    tensor_t *w;      // F32 tensor (CPU or CUDA, as every other parameter), updated in place
    int decay;        // 1: weight decay applies
} optim_spec_t;

typedef struct {
    char name[96];
    tensor_t *w;      // (n) master weights (not owned)
    int64_t n;
    int decay;
    float *m, *v;     // (n) first and second moments (on w's device)
} optim_param_t;

typedef struct {
    optim_config_t cfg;
    int n_params;
    optim_param_t *p;   // (n_params)
    int64_t step;       // updates applied so far (t of the next update is step + 1)
    int64_t n_skipped;  // steps refused by the NaN guard
} optim_t;

typedef struct {
    double lr;          // learning rate used (or that would have been used, when skipped)
    double grad_norm;   // global L2 norm of grad * grad_scale, before clipping
    double clip_coef;   // factor applied to the gradients (1: not clipped)
    int skipped;        // 1: the NaN guard refused the step
    char msg[256];      // when skipped: what was not finite
} optim_stats_t;

int optim_init(optim_t *o, const optim_config_t *cfg, const optim_spec_t *specs, int n);
// every parameter of a Qwen3 model (qwen3_params order); decay on 2-D tensors except the
// embedding / lm_head unless cfg->decay_embeddings. The model's weights must be F32 (CPU or CUDA).
int optim_init_qwen3(optim_t *o, const optim_config_t *cfg, qwen3_t *m);
void optim_free(optim_t *o);

// One update. grads (n_params): F32 arrays parallel to the parameters (not modified).
// Returns 0 (applied), 1 (skipped by the NaN guard, nothing changed, stats->msg says why) or -1.
int optim_step(optim_t *o, float *const *grads, double grad_scale, double loss, optim_stats_t *stats);
// the same, with gradients in a qwen3_grads_init container of the model optim_init_qwen3 took
int optim_step_qwen3(optim_t *o, qwen3_t *grads, double grad_scale, double loss, optim_stats_t *stats);

// Optimizer state as safetensors: "exp_avg.<name>", "exp_avg_sq.<name>" (F32, shaped like the
// parameter) and "optim.state" I64-as-I32 pairs {step lo, step hi, skipped lo, skipped hi}.
// optim_load checks every name and shape against the parameters it was initialised with.
int optim_save(const optim_t *o, const char *path);
int optim_load(optim_t *o, const char *path);
