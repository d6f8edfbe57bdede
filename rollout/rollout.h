// rollout: many episodes at once over one policy engine, turned into trajectories.
//
// rollout_run takes the tasks this rank got for one batch (every rollout of a task's group runs
// here, so the task's simulator state and memo stay in one place) and plays every episode:
//
//   TASK_GEN (all tasks, one simulator batch) -> system + query + tools of each task
//   per episode: render the prompt (model/chat.h, append-only) -> the agent samples a turn
//     (engine, batched with every other generating episode; each task's prompt is prefilled once
//     and forked for its group) -> parse the turn's tool calls
//        tool calls -> SIMREQ_TOOL per call -> results appended as tool responses -> next turn
//        text only  -> SIMREQ_USER -> the user's reply -> next turn, or the end of the episode
//     caps: max_turns agent turns, max_episode_tokens tokens, the model's sequence length
//   end of an episode -> SIMREQ_REWARD -> reward in [-1, 1]; then SIMREQ_DROP per task
//
// Scheduling is deterministic: the engine runs until every generating episode has finished its
// turn (episodes waiting to start are admitted as others leave the engine, up to max_active), then
// the simulator requests of that round go out as one batch and every reply is applied before the
// next round. What each episode sees, and the batch each forward runs, depend only on the tasks and
// the policy weights, never on message timing, so runs are reproducible.
//
// The trajectory's ids are the episode exactly as the policy saw it; mask = 1 on exactly the sampled
// tokens; logprobs = their sampling-time log-probs (temperature-scaled distribution, model/sampler.h).
#pragma once
#include <stdint.h>

#include "comm/msg.h"
#include "model/engine.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"

typedef struct {
    int max_turns;          // agent turns per episode (8)
    int max_new_tokens;     // tokens per agent turn (256)
    int max_episode_tokens; // all tokens of an episode (4096)
    int max_active;         // episodes generating at once (64)
    int max_tasks;          // tasks of one rollout_run at most (sizes the engine) (16)
    sampler_params_t sampling; // temperature 1, top_p 1, top_k 0, seed
    sampler_params_t eval_sampling; // for evaluation tasks (msg_task_t.eval): greedy by default
    int page_size;          // KV page size (16)
    int share_prompt;       // 1: each task's prompt is prefilled once and its episodes fork its KV
                            // pages; 0: every episode prefills its own copy (bench/rollout.sh's
                            // "before") (1)
} rollout_opts_t;
void rollout_opts_default(rollout_opts_t *o);

// the simulator as the rollout sees it: answers a batch of requests (replies in the same order,
// *reps malloc'd, freed by the caller with msg_sim_reps_free). Returns 0, or -1 on a transport
// failure (the run stops; a request the simulator could not answer is a reply with status != 0).
typedef int (*rollout_sim_fn)(void *ud, const msg_sim_req_t *reqs, int n, msg_sim_rep_t **reps);

typedef struct {
    double t_gen;        // seconds in engine steps
    double t_sim;        // seconds waiting for simulator replies
    int64_t sampled_tokens, prefill_tokens;
    int n_rounds, n_sim_requests;
} rollout_stats_t;

typedef struct rollout rollout_t;

// policy: the model the engine reads (not owned; the caller may overwrite its weights between
// rollout_run calls). NULL + err_set on failure.
rollout_t *rollout_new(const qwen3_t *policy, const tokenizer_t *tok, const rollout_opts_t *o,
                       rollout_sim_fn sim, void *sim_ud);
void rollout_free(rollout_t *r);
// plays every episode of the n tasks; *out gets n_out = sum of group sizes trajectories (malloc'd
// array, free each with msg_traj_free), ordered by (task, index). st may be NULL. *stop (may be
// NULL) nonzero makes it return -1 ("interrupted") at the next round.
int rollout_run(rollout_t *r, const msg_task_t *tasks, int n, msg_traj_t **out, int *n_out,
                rollout_stats_t *st, volatile int *stop);
