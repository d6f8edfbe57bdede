// loss: SFT and GRPO losses, and GRPO group advantages. Pure functions on host arrays.
//
// Every per-token array is (B, T), token-aligned with the mask (model/qwen3_train.h): entry
// [b][t] belongs to token ids[b][t], predicted by position t-1; entries off the mask are ignored
// (dlp gets 0 there). Each loss returns the scalar loss and dL/dlp, which
// qwen3_train_backward takes. Bad input (NaN, empty mask, inconsistent sizes) -> -1 with err_set.
#pragma once
#include <stdint.h>

// ---- SFT ----

// loss = -sum(mask * lp) / norm; norm = the mask's token count when norm <= 0 (give the global
// token count when one batch is split over micro-batches or ranks). dlp (B*T) out.
int learner_sft_loss(int64_t n, const float *lp, const uint8_t *mask, double norm, double *loss,
                     float *dlp);

// ---- GRPO ----

// rewards (n_groups * group_size), groups contiguous. adv[i] = (r_i - mean) / (std + eps) with the
// population std of its group. A zero-variance group gets advantage 0; keep (n_groups) (may be
// NULL) gets 0 for such groups (so a caller can drop them) and 1 otherwise.
int learner_group_advantages(const float *rewards, int n_groups, int group_size, double eps,
                             float *adv, uint8_t *keep);

typedef enum {
    LEARNER_AGG_TOKEN_MEAN = 0,          // sum over all masked tokens / token count (default)
    LEARNER_AGG_SEQ_MEAN_TOKEN_MEAN = 1, // mean over sequences of each sequence's token mean
} learner_agg_t;

typedef struct {
    double eps_low, eps_high; // clip range [1 - eps_low, 1 + eps_high] (0.2, 0.28)
    double dual_clip;         // c > 1: for A < 0 the objective is max(PPO objective, c * A); 0: off
    double beta;              // KL coefficient (k3 estimator, to ref_lp); 0: no reference needed
    learner_agg_t agg;
    double norm;              // divide by this instead of this batch's count (token count for
                              // token-mean, sequence count for seq-mean-token-mean); <= 0: count
} learner_grpo_opts_t;

void learner_grpo_opts_default(learner_grpo_opts_t *o); // 0.2 / 0.28, no dual clip, beta 0.001

typedef struct {
    int B, T;
    const uint8_t *mask;     // (B, T) 0/1
    const float *lp;         // (B, T) learner log-probs (gradient flows through these)
    const float *old_lp;     // (B, T) log-probs of the policy that sampled (recomputed by the learner)
    const float *ref_lp;     // (B, T) reference log-probs; NULL allowed when beta == 0
    const float *sample_lp;  // (B, T) sampling-time log-probs (engine); NULL: no gap metric
    const float *entropy;    // (B, T) entropies from the forward; NULL: no entropy metric
    const float *adv;        // (B) advantage of each sequence
} learner_grpo_batch_t;

typedef struct {
    double loss;
    double pg_loss;      // the surrogate part (loss = pg_loss + beta * kl term)
    double kl_mean;      // mean k3 KL over masked tokens (0 when beta == 0 and no ref)
    double clip_frac;    // fraction of masked tokens whose surrogate is clipped (zero gradient)
    double ratio_min, ratio_max;
    double entropy_mean; // mean entropy over masked tokens (0 when no entropies)
    double lp_gap_max, lp_gap_mean; // max / mean |sample_lp - old_lp| over masked tokens
    int64_t n_tokens;    // masked tokens in this batch
    int n_seqs;          // sequences with at least one masked token
} learner_grpo_metrics_t;

// token-level PPO clipped surrogate with asymmetric clip, optional dual clip, k3 KL:
//   ratio = exp(lp - old_lp)
//   s     = min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)   (dual: A<0 -> max(s, c*A))
//   kl    = exp(ref - lp) - (ref - lp) - 1
//   per-token loss = -s + beta * kl, aggregated by opts->agg
// dlp (B, T) out; metrics (required) gets the loss and the step's metrics.
int learner_grpo_loss(const learner_grpo_opts_t *opts, const learner_grpo_batch_t *in, float *dlp,
                      learner_grpo_metrics_t *metrics);
