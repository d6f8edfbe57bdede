// learner/grpo_step: one GRPO update of the policy from a batch of trajectories, on one learner rank
// or several (whole groups per rank; gradients and metrics all-reduced over the learners).
//
//   groups -> advantages (population std; groups whose kept rollouts have zero reward variance, or
//   fewer than 2 kept rollouts, are dropped: they carry no signal) -> token count of the whole batch
//   (all-reduced: every rank's token-mean loss is normalized by the GLOBAL count, so the summed
//   gradient is the gradient of the batch's token mean) -> micro-batches of the kept trajectories in
//   length order (stable; similar lengths, less padding) -> per micro-batch: [reference forward when
//   kl > 0] + policy forward + GRPO loss (learner/loss.h) + backward (gradients add up) ->
//   MPI_Allreduce of the gradients (sum) -> AdamW (learner/optim.h).
// The old log-probs are the learner's own forward (one update per batch: ratios are exactly 1, the
// sampling-vs-learner gap is measured against the engine's log-probs in every batch).
// Trajectories with abort == TRAJ_SIM_ERROR are not trained on; truncated ones are.
#pragma once
#include <mpi.h>
#include <stdint.h>

#include "comm/msg.h"
#include "learner/loss.h"
#include "learner/optim.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"

typedef struct {
    learner_grpo_opts_t loss; // clip range, KL beta, aggregation (norm is set here)
    int micro_batch;          // sequences per forward/backward
    float temperature;        // the rollouts' sampling temperature
    MPI_Comm comm;            // the learners (MPI_COMM_NULL: this rank alone)
} learner_step_opts_t;

typedef struct {
    // over the whole batch (all learners)
    int n_traj, n_trained, n_groups, n_groups_kept;
    int64_t tokens;           // trained (masked) tokens
    int64_t total_tokens;     // all tokens of the batch's trajectories
    double reward_sum;        // over trajectories not aborted by the simulator
    int n_rewarded, successes; // successes: reward == 1
    int aborted[TRAJ_N_REASONS];
    double loss, pg_loss, kl, clip_frac, entropy;
    double ratio_min, ratio_max, lp_gap_max, lp_gap_mean;
    double grad_norm, lr;
    int skipped;              // the NaN guard refused the update
    double t_train, t_sync;   // seconds: forward/backward/optimizer, all-reduces
} learner_step_stats_t;

// trajs: this rank's share (whole groups, any order). ref may be NULL when o->loss.beta == 0.
// tr must be planned for (micro_batch, longest trajectory). Returns 0 (applied or skipped by the NaN
// guard: st->skipped), or -1.
int learner_grpo_step(qwen3_t *m, const qwen3_t *ref, qwen3_train_t *tr, qwen3_t *grads, optim_t *opt,
                      const msg_traj_t *trajs, int n, const learner_step_opts_t *o, learner_step_stats_t *st);
