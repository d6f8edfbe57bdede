// Deterministic run-log contents for the runlog tests: step s (1-based) appends 4 trajectories,
// 2 curriculum rows, 1 eval row and the step row, every value a formula of its index.
// tests/runlog_values.py recomputes the same formulas on its own (keep the two in step).
#pragma once
#include <stdio.h>
#include <string.h>

#include "comm/runlog.h"

#define F_TRAJ_PER_STEP 4
#define F_TASKS_PER_STEP 2
#define F_EVALS_PER_STEP 1

static const char *const F_ENVS[3] = {"airline", "retail", "bank_of_a_very_long_name_31char"};
static const char *const F_PHASES[3] = {"init", "grpo", "step"};

static inline void formula_step(int64_t i, runlog_step_t *s) {
    memset(s, 0, sizeof(*s));
    s->step = i;
    s->policy_version = i - 1;
    s->difficulty = (int32_t)(i % 3);
    s->difficulty_next = (int32_t)((i + 1) % 3);
    for (int e = 0; e < RUNLOG_MAX_ENVS; e++) {
        s->env_difficulty[e] = e < 5 ? (int32_t)(1 + (i * 7 + e) % 100) : -1;
        s->env_difficulty_next[e] = e < 5 ? (int32_t)(1 + (i * 11 + e) % 100) : -1;
    }
    s->mean_reward = 0.25 * (double)i - 0.5;
    s->success_rate = (double)i / 100.0;
    s->loss = 1.5 * (double)i;
    s->pg_loss = -0.125 * (double)i;
    s->kl = 0.001 * (double)i;
    s->clip_frac = 0.01 * (double)i;
    s->entropy = 2.0 + 0.5 * (double)i;
    s->ratio_min = 1.0 - 0.01 * (double)i;
    s->ratio_max = 1.0 + 0.02 * (double)i;
    s->lp_gap_max = 0.003 * (double)i;
    s->grad_norm = 10.0 + (double)i;
    s->lr = 1e-6 * (double)i;
    s->optim_skipped = i == 2;
    s->n_traj = F_TRAJ_PER_STEP;
    s->n_groups_kept = (int32_t)(i % 4);
    s->tokens = 100 * i;
    s->total_tokens = 150 * i;
    for (int k = 0; k < TRAJ_N_REASONS; k++) s->aborted[k] = (int32_t)(i * 10 + k);
    s->t_rollout = 0.5 * (double)i;
    s->t_sim = 0.25 * (double)i;
    s->t_train = 0.125 * (double)i;
    s->t_sync = 0.0625 * (double)i;
    s->t_step = s->t_rollout + s->t_train + s->t_sync;
    s->tokens_per_s = 1000.0 * (double)i;
    s->wall = 1.7e9 + (double)i;
}

static inline void formula_task(int64_t j, runlog_task_t *t) { // j: 0-based row
    memset(t, 0, sizeof(*t));
    t->step = j / F_TASKS_PER_STEP + 1;
    t->task_id = 1000 + (uint64_t)j;
    t->group = (int32_t)(j % F_TASKS_PER_STEP);
    snprintf(t->env, sizeof(t->env), "%s", F_ENVS[j % 3]);
    t->seed = 0xABCDEF0000000000ULL + (uint64_t)j;
    t->difficulty = (int32_t)(j % 5);
    t->soft = (int32_t)(j % 2);
    t->tools_available = (int32_t)(3 + j);
    t->expected_calls = (int32_t)(j % 4);
    t->expected_turns = (int32_t)(2 + j % 3);
    t->system_prompt = (int32_t)(j % 2);
    t->persona = (int32_t)(j % 6);
    t->ambiguity = (int32_t)(j % 3);
    t->judge_strictness = (int32_t)(j % 4);
    t->distractors = (int32_t)(j % 5);
    t->mean_reward = 0.1 * (double)j;
    t->success_rate = 0.05 * (double)j;
}

static inline void formula_eval(int64_t e, runlog_eval_t *v) {
    memset(v, 0, sizeof(*v));
    v->step = e + 1;
    snprintf(v->phase, sizeof(v->phase), "%s", F_PHASES[e % 3]);
    snprintf(v->env, sizeof(v->env), "%s", e % 2 ? "all" : F_ENVS[e % 3]);
    v->difficulty = (int32_t)e;
    v->n = (int32_t)(10 + e);
    v->successes = (int32_t)e;
    v->mean_reward = -0.2 * (double)e;
}

#define F_MAX_TOKENS 16
// trajectory t (0-based row): the row and its ragged data (text NULL for t % 4 == 3)
static inline void formula_traj(int64_t t, runlog_traj_t *r, int32_t *ids, float *lp, uint8_t *mask,
                                char *text, size_t text_cap, char *details, size_t details_cap,
                                const char **text_p) {
    memset(r, 0, sizeof(*r));
    r->step = t / F_TRAJ_PER_STEP + 1;
    r->task_id = 1000 + (uint64_t)(t / 2);
    r->group = (int32_t)((t / 2) % 2);
    r->index = (int32_t)(t % 2);
    r->policy_version = t / F_TRAJ_PER_STEP;
    r->eval = t % 7 == 0;
    snprintf(r->env, sizeof(r->env), "%s", F_ENVS[t % 3]);
    r->difficulty = (int32_t)(t % 5);
    r->reward = 0.5f * (float)(t % 3) - 0.5f;
    r->score = 0.25f * (float)(t % 5);
    r->turns = (int32_t)(t % 4 + 1);
    r->tool_calls = (int32_t)(t % 3);
    r->abort = (int32_t)(t % 5);
    r->truncated = t % 5 == 2 || t % 5 == 3;
    r->n_tokens = (int32_t)(5 + (t * 7) % 11);
    r->n_prompt = (int32_t)(2 + t % 3);
    for (int k = 0; k < r->n_tokens; k++) {
        mask[k] = k >= r->n_prompt && k % 3 != 0;
        ids[k] = (int32_t)(t * 1000 + k);
        lp[k] = mask[k] ? -0.125f * (float)(k % 8) : 0.0f;
    }
    snprintf(text, text_cap, "traj %lld: caf\xc3\xa9 <tool_call>", (long long)t);
    snprintf(details, details_cap, "{\"t\":%lld}", (long long)t);
    *text_p = t % 4 == 3 ? NULL : text;
}

// appends everything step s adds (trajectories, tasks, eval, then the step row) and flushes
static inline int formula_append_step(runlog_t *r, int64_t s) {
    for (int64_t t = (s - 1) * F_TRAJ_PER_STEP; t < s * F_TRAJ_PER_STEP; t++) {
        runlog_traj_t row;
        int32_t ids[F_MAX_TOKENS];
        float lp[F_MAX_TOKENS];
        uint8_t mask[F_MAX_TOKENS];
        char text[64], details[64];
        const char *tp;
        formula_traj(t, &row, ids, lp, mask, text, sizeof(text), details, sizeof(details), &tp);
        if (runlog_append_traj(r, &row, ids, lp, mask, tp, details) < 0) return -1;
    }
    for (int64_t j = (s - 1) * F_TASKS_PER_STEP; j < s * F_TASKS_PER_STEP; j++) {
        runlog_task_t task;
        formula_task(j, &task);
        if (runlog_append_task(r, &task) < 0) return -1;
    }
    for (int64_t e = (s - 1) * F_EVALS_PER_STEP; e < s * F_EVALS_PER_STEP; e++) {
        runlog_eval_t ev;
        formula_eval(e, &ev);
        if (runlog_append_eval(r, &ev) < 0) return -1;
    }
    runlog_step_t st;
    formula_step(s, &st);
    if (runlog_append_step(r, &st) < 0) return -1;
    return runlog_flush(r);
}

// the config every formula file gets
static inline json_t *formula_config(void) {
    return json_pack("{s:i, s:f, s:s, s:b, s:[i,i], s:n, s:s}", "steps", 4, "lr", 1e-6, "model",
                     "runs/demo/model", "use_memo", 1, "layers", 1, 2, "judge", "empty", "");
}
