// trustee inspect: reads a run log (comm/runlog.h, as a SWMR reader, so a run in progress works too)
// and prints one training step: its /steps row, its tasks with their curriculum aspects (/curriculum),
// and its trajectories, one line each, or with --traj K the K-th one in full (reward details JSON
// and the transcript). With --eval it shows the held-out evaluation logged when step N was done
// (/eval rows and the evaluation trajectories; step 0 = before training).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "comm/runlog.h"
#include "kernels/err.h"

static const char *INSPECT_USAGE =
    "usage: trustee inspect RUN.h5 --step N [--traj K] [--eval]\n"
    "\n"
    "Prints what a run did at training step N, from its run log (RUN_DIR/run.h5; a run still being\n"
    "written can be read): the step's row (reward, success, D, KL, clip fraction, timings, end\n"
    "reasons), its tasks with their curriculum aspects, and one line per trajectory.\n"
    "\n"
    "options:\n"
    "  --step N     the training step (1-based; the error names the range the file has)\n"
    "  --traj K     the K-th trajectory of the step (0-based, as listed): env, task, group/index,\n"
    "               reward, score, turns, tool calls, end reason, the reward details JSON and the\n"
    "               transcript text\n"
    "  --eval       the held-out evaluation logged after step N (N = 0: before training) instead:\n"
    "               its /eval rows and its trajectories (--traj K picks one of those)\n";

// the trajectories of one step (training or evaluation ones), in file order
typedef struct {
    runlog_traj_t *rows;
    int n;
} trajs_t;

static int load_trajs(runlog_reader_t *r, int64_t step, int eval, trajs_t *out) {
    memset(out, 0, sizeof *out);
    int64_t n = runlog_reader_rows(r, RUNLOG_TRAJS);
    if (n < 0) return -1;
    runlog_traj_t *all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all) return err_set("out of memory (%lld trajectory rows)", (long long)n);
    if (runlog_reader_read(r, RUNLOG_TRAJS, 0, n, all)) {
        free(all);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (all[i].step == step && (all[i].eval != 0) == (eval != 0)) all[out->n++] = all[i];
    out->rows = all;
    return 0;
}

static void print_step(runlog_reader_t *r, const runlog_step_t *s) {
    printf("step %lld (policy version %lld): D %d -> %d\n", (long long)s->step, (long long)s->policy_version,
           s->difficulty, s->difficulty_next);
    if (s->env_difficulty[0] >= 0) { // one D per environment (their mean above)
        printf("  D per environment (/config env_names order):");
        for (int e = 0; e < RUNLOG_MAX_ENVS && s->env_difficulty[e] >= 0; e++)
            printf(s->env_difficulty_next[e] != s->env_difficulty[e] ? " %d -> %d" : " %d", s->env_difficulty[e],
                   s->env_difficulty_next[e]);
        printf("\n");
    }
    printf("  reward %+.4f  success %.4f  trajectories %d  groups kept %d (non-zero reward variance)\n",
           s->mean_reward, s->success_rate, s->n_traj, s->n_groups_kept);
    printf("  loss %+.6f  pg_loss %+.6f  KL %.6f  clip_frac %.4f  entropy %.4f\n", s->loss, s->pg_loss, s->kl,
           s->clip_frac, s->entropy);
    printf("  ratio %.4f..%.4f  lp_gap_max %.4g  grad_norm %.4g  lr %.3g  optimizer %s\n", s->ratio_min,
           s->ratio_max, s->lp_gap_max, s->grad_norm, s->lr, s->optim_skipped ? "SKIPPED (NaN guard)" : "stepped");
    printf("  tokens %lld trained of %lld  sampled %.0f tok/s\n", (long long)s->tokens, (long long)s->total_tokens,
           s->tokens_per_s);
    printf("  end reasons:");
    for (int k = 0; k < TRAJ_N_REASONS; k++) printf("%s %s %d", k ? "," : "", runlog_reader_reason(r, k), s->aborted[k]);
    printf("\n  time: step %.3f s; rollout %.3f s (simulator %.3f s), train %.3f s, sync %.4f s\n", s->t_step,
           s->t_rollout, s->t_sim, s->t_train, s->t_sync);
}

static int print_tasks(runlog_reader_t *r, int64_t step) {
    int64_t n = runlog_reader_rows(r, RUNLOG_CURRICULUM);
    if (n < 0) return -1;
    runlog_task_t *t = malloc((size_t)(n ? n : 1) * sizeof *t);
    if (!t) return err_set("out of memory");
    if (runlog_reader_read(r, RUNLOG_CURRICULUM, 0, n, t)) {
        free(t);
        return -1;
    }
    int shown = 0;
    printf("tasks (/curriculum):\n");
    for (int64_t i = 0; i < n; i++) {
        if (t[i].step != step) continue;
        shown++;
        printf("  group %d: %.*s task %llu | D %d soft %d tools %d expected calls %d turns %d | system_prompt %d "
               "persona %d ambiguity %d judge_strictness %d distractors %d | reward %+.3f success %.3f\n",
               t[i].group, RUNLOG_NAME_LEN, t[i].env, (unsigned long long)t[i].task_id, t[i].difficulty, t[i].soft,
               t[i].tools_available, t[i].expected_calls, t[i].expected_turns, t[i].system_prompt, t[i].persona,
               t[i].ambiguity, t[i].judge_strictness, t[i].distractors, t[i].mean_reward, t[i].success_rate);
    }
    if (!shown) printf("  (none logged)\n");
    free(t);
    return 0;
}

// /eval rows of step; returns how many (-1 on error)
static int print_evals(runlog_reader_t *r, int64_t step, int print) {
    int64_t n = runlog_reader_rows(r, RUNLOG_EVAL);
    if (n < 0) return -1;
    runlog_eval_t *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    if (!e) return err_set("out of memory");
    if (runlog_reader_read(r, RUNLOG_EVAL, 0, n, e)) {
        free(e);
        return -1;
    }
    int k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (e[i].step != step) continue;
        if (print && k == 0) printf("held-out evaluation after step %lld (/eval):\n", (long long)step);
        if (print)
            printf("  %-8.*s %-12.*s D %-3d %d/%d successes, mean reward %+.3f\n", RUNLOG_NAME_LEN, e[i].phase,
                   RUNLOG_NAME_LEN, e[i].env, e[i].difficulty, e[i].successes, e[i].n, e[i].mean_reward);
        k++;
    }
    free(e);
    return k;
}

// the steps that have evaluation rows, as "0, 4" (for the error message)
static void eval_steps(runlog_reader_t *r, char *buf, size_t cap) {
    buf[0] = 0;
    int64_t n = runlog_reader_rows(r, RUNLOG_EVAL);
    runlog_eval_t *e = n > 0 ? malloc((size_t)n * sizeof *e) : NULL;
    if (!e || runlog_reader_read(r, RUNLOG_EVAL, 0, n, e)) {
        free(e);
        snprintf(buf, cap, "none");
        return;
    }
    size_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i > 0 && e[i].step == e[i - 1].step) continue;
        used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%lld", used ? ", " : "", (long long)e[i].step);
        if (used >= cap) break;
    }
    free(e);
}

static void print_traj_line(runlog_reader_t *r, int k, const runlog_traj_t *t) {
    printf("  [%d] %.*s task %llu group %d/%d D %d | reward %+.3f score %.3f | turns %d, tool calls %d | end %s%s | "
           "%d tokens (%d prompt)\n",
           k, RUNLOG_NAME_LEN, t->env, (unsigned long long)t->task_id, t->group, t->index, t->difficulty, t->reward,
           t->score, t->turns, t->tool_calls, runlog_reader_reason(r, t->abort), t->truncated ? ", truncated" : "",
           t->n_tokens, t->n_prompt);
}

static int print_traj(runlog_reader_t *r, int k, const runlog_traj_t *t) {
    printf("trajectory %d of step %lld (%s):\n", k, (long long)t->step, t->eval ? "held-out evaluation" : "training");
    printf("  env %.*s  task id %llu  group %d  index %d  policy version %lld  D %d\n", RUNLOG_NAME_LEN, t->env,
           (unsigned long long)t->task_id, t->group, t->index, (long long)t->policy_version, t->difficulty);
    printf("  reward %+.4f  score %.4f  turns %d  tool calls %d  end reason %s%s\n", t->reward, t->score, t->turns,
           t->tool_calls, runlog_reader_reason(r, t->abort), t->truncated ? " (truncated)" : "");
    printf("  tokens %d (prompt %d)\n", t->n_tokens, t->n_prompt);
    char *details = runlog_reader_string(r, RUNLOG_DETAILS, t->details_start, t->details_len);
    if (!details) return -1;
    json_t *j = json_loads(details, 0, NULL);
    char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    printf("reward details:\n%s\n", pretty ? pretty : details[0] ? details : "(none)");
    free(pretty);
    json_decref(j);
    free(details);
    char *text = runlog_reader_string(r, RUNLOG_TEXT, t->text_start, t->text_len);
    if (!text) return -1;
    printf("transcript (%lld bytes):\n%s%s", (long long)t->text_len, text,
           t->text_len && text[t->text_len - 1] != '\n' ? "\n" : "");
    free(text);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) { fputs(INSPECT_USAGE, stdout); return 0; }
    const char *path = NULL;
    if (argc > 1 && argv[1][0] != '-') path = argv[1], a.used[1] = 1; // the positional RUN.h5
    long step, traj;
    int eval = args_flag(&a, "eval");
    if (args_int(&a, "step", -1, &step) || args_int(&a, "traj", -1, &traj) || args_finish(&a))
        return cmd_fail("inspect");
    if (!path) { err_set("expected the run log as the first argument (see --help)"); return cmd_fail("inspect"); }
    if (step < 0) { err_set("--step N is required (see --help)"); return cmd_fail("inspect"); }
    if (traj < -1) { err_set("--traj: expected K >= 0, found %ld", traj); return cmd_fail("inspect"); }

    runlog_reader_t *r = runlog_reader_open(path);
    if (!r) return cmd_fail("inspect");
    int rc = 1;
    trajs_t tr = {0};
    runlog_step_t *steps = NULL;
    int64_t n_steps = runlog_reader_rows(r, RUNLOG_STEPS);
    if (n_steps < 0) goto done;
    if (!eval) { // the step's row
        steps = malloc((size_t)(n_steps ? n_steps : 1) * sizeof *steps);
        if (!steps) { err_set("out of memory"); goto done; }
        if (runlog_reader_read(r, RUNLOG_STEPS, 0, n_steps, steps)) goto done;
        int64_t at = -1;
        for (int64_t i = 0; i < n_steps; i++)
            if (steps[i].step == step) at = i;
        if (at < 0) {
            if (!n_steps) err_set("%s: --step %ld: the run log has no steps yet", path, step);
            else err_set("%s: --step %ld out of range: the run log has steps %lld..%lld", path, step,
                         (long long)steps[0].step, (long long)steps[n_steps - 1].step);
            goto done;
        }
        if (traj < 0) {
            print_step(r, &steps[at]);
            if (print_tasks(r, step)) goto done;
        }
    } else { // the evaluation rows of the step
        int k = print_evals(r, step, traj < 0);
        if (k < 0) goto done;
        if (k == 0) {
            char buf[256];
            eval_steps(r, buf, sizeof buf);
            err_set("%s: --eval --step %ld: no held-out evaluation was logged after step %ld (evaluations after "
                    "steps: %s)", path, step, step, buf);
            goto done;
        }
    }
    if (load_trajs(r, step, eval, &tr)) goto done;
    if (traj >= 0) {
        if (traj >= tr.n) {
            if (tr.n) err_set("%s: --traj %ld out of range: step %ld has %d %strajectories (0..%d)", path, traj, step,
                              tr.n, eval ? "evaluation " : "", tr.n - 1);
            else err_set("%s: --traj %ld: step %ld has no %strajectories logged", path, traj, step, eval ? "evaluation " : "");
            goto done;
        }
        if (print_traj(r, (int)traj, &tr.rows[traj])) goto done;
    } else {
        printf("%strajectories (%d; --traj K shows one):\n", eval ? "evaluation " : "", tr.n);
        for (int k = 0; k < tr.n; k++) print_traj_line(r, k, &tr.rows[k]);
    }
    rc = 0;
done:
    if (rc) cmd_fail("inspect");
    free(tr.rows);
    free(steps);
    runlog_reader_close(r);
    return rc;
}
