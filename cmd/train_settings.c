// Settings of `trustee train`: the table of every key, its type, its laptop and paper defaults.
#include "train_settings.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "kernels/err.h"

typedef struct {
    const char *key;
    char type; // 'i' long, 'f' double, 's' string
    size_t off, size;
    const char *laptop, *paper; // defaults (paper NULL: same as laptop)
    const char *help;
} setting_t;

#define S_(k, t, field, lap, pap, h) {k, t, offsetof(settings_t, field), sizeof(((settings_t *)0)->field), lap, pap, h}
static const setting_t TABLE[] = {
    S_("run_dir", 's', run_dir, "", NULL, "run directory (run.h5, checkpoints/, policy-init/); empty: a new runs/run-<UTC time>"),
    S_("steps", 'i', steps, "16", "200", "GRPO steps"),
    S_("seed", 'i', seed, "1", NULL, "seed of everything (tasks, sampling, init, SFT order)"),
    S_("tasks", 'i', tasks, "8", "16", "tasks per step"),
    S_("group", 'i', group, "8", "8", "rollouts per task (GRPO group size)"),
    S_("sim", 's', sim, "programmatic", NULL, "programmatic (Lua environments) | lm (four LM roles)"),
    S_("sim_model", 's', sim_model, "", NULL, "simulator model dir (--sim lm)"),
    S_("envs", 's', envs, "all", NULL, "programmatic environments, comma-separated, or all"),
    S_("policy", 's', policy, "", NULL, "HF model dir to train; empty: init a new one + SFT warm start"),
    S_("vocab", 's', vocab, "envs", "full", "policy output vocabulary: full, or envs (the environments' tokens + bytes + specials)"),
    S_("lr", 'f', lr, "2e-5", "1e-6", "GRPO learning rate"),
    S_("min_lr", 'f', min_lr, "0", NULL, "cosine floor (0: constant learning rate when warmup = 0)"),
    S_("warmup", 'f', warmup, "0", NULL, "warmup steps"),
    S_("weight_decay", 'f', weight_decay, "0", "0.01", "AdamW decoupled weight decay"),
    S_("grad_clip", 'f', grad_clip, "1.0", NULL, "global grad-norm clip"),
    S_("kl", 'f', kl, "0", "0.001", "KL coefficient to the initial policy (k3)"),
    S_("clip_low", 'f', clip_low, "0.2", NULL, "PPO clip: ratio >= 1 - clip_low"),
    S_("clip_high", 'f', clip_high, "0.28", "0.2", "PPO clip: ratio <= 1 + clip_high"),
    S_("temperature", 'f', temperature, "1.0", NULL, "rollout sampling temperature"),
    S_("max_turns", 'i', max_turns, "6", "8", "agent turns per episode"),
    S_("max_new_tokens", 'i', max_new_tokens, "96", "512", "tokens per agent turn"),
    S_("max_episode_tokens", 'i', max_episode_tokens, "2048", "8192", "tokens per episode (prompt included)"),
    S_("max_active", 'i', max_active, "64", "128", "episodes generating at once on a rollout rank"),
    S_("share_prompt", 'i', share_prompt, "1", NULL, "1: prefill each task's prompt once, fork it for its rollouts; 0: each prefills its own"),
    S_("staleness", 'i', staleness, "1", NULL, "s: step n's rollouts use policy version max(0, n-1-s)"),
    S_("sim_ranks", 'i', sim_ranks, "0", NULL, "simulator ranks (MPI runs)"),
    S_("rollout_ranks", 'i', rollout_ranks, "1", NULL, "rollout ranks (MPI runs); the other ranks learn"),
    S_("curriculum", 's', curriculum, "env", "shared", "env: one D per environment, moved by that environment's batch-mean reward; shared: one D moved by the whole batch's (TRUSTEE's)"),
    S_("d_start", 'i', d_start, "1", NULL, "curriculum start difficulty D"),
    S_("d_step", 'i', d_step, "3", NULL, "curriculum step of D"),
    S_("p_soft", 'f', p_soft, "0.5", NULL, "probability of soft-sampled aspects"),
    S_("ckpt_every", 'i', ckpt_every, "4", "10", "checkpoint every n steps (and at the end)"),
    S_("keep_ckpts", 'i', keep_ckpts, "2", "3", "checkpoints kept"),
    S_("eval_tasks", 'i', eval_tasks, "20", "20", "held-out tasks per (environment, difficulty)"),
    S_("eval_difficulties", 's', eval_difficulties, "1,50,100", NULL, "held-out difficulties"),
    S_("copy_repeat_steps", 'i', copy_repeat_steps, "1600", "0", "copy warm-up, first part: at most this many steps of repeat transcripts (say a list of values back), constant learning rate (new policy only)"),
    S_("copy_stop_loss", 'f', copy_stop_loss, "0.15", "0", "copy warm-up, first part: stop once the mean loss of the last 50 steps is below this (the copy circuit has formed: seeds 1, 2, 3 stop at steps 778, 865, 1546); 0: run all copy_repeat_steps"),
    S_("copy_steps", 'i', copy_steps, "300", "0", "copy warm-up, second part: steps of schema / window transcripts, 30% repeat ones mixed in when copy_repeat_steps > 0 (sim/copytask.h; new policy only)"),
    S_("copy_batch", 'i', copy_batch, "16", NULL, "copy warm-up: short transcripts per step"),
    S_("copy_p_window", 'f', copy_p_window, "0", NULL, "copy warm-up: share of oracle windows (the rest: schema transcripts)"),
    S_("copy_fresh_words", 'i', copy_fresh_words, "0", NULL, "copy warm-up: 1 = values get fresh words too, not only fresh digits (names, file names: sim/copytask.h); measured at seed 1 with a fixed 1000 repeat steps: 15% at D = 1 after SFT against 26% without (64% of the repeat transcripts then hold tokens outside the output vocabulary and are left out)"),
    S_("sft_steps", 'i', sft_steps, "250", "0", "SFT warm-start steps (new policy only)"),
    S_("sft_batch", 'i', sft_batch, "8", NULL, "SFT transcripts per step"),
    S_("sft_examples", 'i', sft_examples, "800", NULL, "oracle transcripts for the SFT warm start"),
    S_("sft_d_max", 'i', sft_d_max, "30", "100", "SFT transcripts: difficulties spread over 1..sft_d_max"),
    S_("sft_lr", 'f', sft_lr, "2e-3", NULL, "SFT learning rate"),
    S_("baseline", 'i', baseline, "1", "0", "1: after GRPO, continue the SFT warm start for GRPO's wall time and evaluate it"),
    S_("micro_batch", 'i', micro_batch, "8", NULL, "sequences per learner forward/backward"),
    S_("recompute", 'i', recompute, "0", NULL, "1: activation checkpointing in the learner"),
    S_("init_hidden", 'i', init_hidden, "128", NULL, "new policy: hidden size"),
    S_("init_layers", 'i', init_layers, "2", NULL, "new policy: layers"),
    S_("init_heads", 'i', init_heads, "4", NULL, "new policy: query heads"),
    S_("init_kv_heads", 'i', init_kv_heads, "2", NULL, "new policy: key/value heads"),
    S_("init_head_dim", 'i', init_head_dim, "32", NULL, "new policy: head dimension"),
    S_("init_intermediate", 'i', init_intermediate, "384", NULL, "new policy: MLP size"),
    S_("init_rope_theta", 'f', init_rope_theta, "1e6", NULL, "new policy: RoPE base"),
    S_("init_qk_norm", 'f', init_qk_norm, "1", NULL, "new policy: initial q_norm / k_norm weight (init-model --qk-norm)"),
};
#define N_TABLE ((int)(sizeof TABLE / sizeof TABLE[0]))

static int set_value(settings_t *s, const setting_t *t, const char *v, const char *where) {
    char *p = (char *)s + t->off;
    char *end = NULL;
    if (t->type == 's') {
        if (strlen(v) >= t->size)
            return err_set("%s: %s: value longer than %zu characters", where, t->key, t->size - 1);
        strcpy(p, v);
    } else if (t->type == 'i') {
        long x = strtol(v, &end, 10);
        if (!*v || *end) return err_set("%s: %s: expected an integer, found \"%s\"", where, t->key, v);
        *(long *)p = x;
    } else {
        double x = strtod(v, &end);
        if (!*v || *end) return err_set("%s: %s: expected a number, found \"%s\"", where, t->key, v);
        *(double *)p = x;
    }
    return 0;
}

static const setting_t *find(const char *key) {
    for (int i = 0; i < N_TABLE; i++)
        if (strcmp(TABLE[i].key, key) == 0) return &TABLE[i];
    return NULL;
}

static int unknown(const char *key, const char *where) {
    int best = 99;
    const char *name = NULL;
    for (int i = 0; i < N_TABLE; i++) {
        int d = args_distance(key, TABLE[i].key);
        if (d < best) best = d, name = TABLE[i].key;
    }
    if (best <= 3) return err_set("%s: unknown setting \"%s\" (did you mean \"%s\"?)", where, key, name);
    return err_set("%s: unknown setting \"%s\" (trustee train --help lists them)", where, key);
}

static void normalize(char *k) {
    for (; *k; k++)
        if (*k == '-') *k = '_';
}

static int apply_preset(settings_t *s, const char *preset) {
    int paper = strcmp(preset, "paper") == 0;
    if (!paper && strcmp(preset, "laptop") != 0)
        return err_set("--preset: expected laptop or paper, found \"%s\"", preset);
    memset(s, 0, sizeof *s);
    strcpy(s->preset, preset);
    for (int i = 0; i < N_TABLE; i++)
        if (set_value(s, &TABLE[i], paper && TABLE[i].paper ? TABLE[i].paper : TABLE[i].laptop, "defaults"))
            return -1;
    return 0;
}

static int load_config(settings_t *s, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return err_set("%s: cannot open the config file", path);
    char line[1024];
    int ln = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        ln++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (!*k || *k == '\n' || *k == '\r') continue;
        char *eq = strchr(k, '=');
        char where[1100];
        snprintf(where, sizeof where, "%s:%d", path, ln);
        if (!eq) {
            rc = err_set("%s: expected `key = value`, found \"%s\"", where, k);
            break;
        }
        *eq = 0;
        char *v = eq + 1;
        for (char *e = eq - 1; e >= k && (*e == ' ' || *e == '\t'); e--) *e = 0;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strlen(v);
        while (n && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = 0;
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v[n - 1] = 0, v++;
        normalize(k);
        if (strcmp(k, "preset") == 0 || strcmp(k, "resume") == 0 || strcmp(k, "config") == 0) {
            rc = err_set("%s: \"%s\" is a command-line option only", where, k);
            break;
        }
        const setting_t *t = find(k);
        rc = t ? set_value(s, t, v, where) : unknown(k, where);
    }
    fclose(f);
    return rc;
}

static int check(const settings_t *s) {
    if (s->steps < 1) return err_set("steps: expected >= 1, found %ld", s->steps);
    if (s->tasks < 1 || s->group < 1) return err_set("tasks and group: expected >= 1, found %ld and %ld", s->tasks, s->group);
    if (s->group < 2) return err_set("group: GRPO needs at least 2 rollouts per task, found %ld", s->group);
    if (s->staleness < 0 || s->staleness > 5) return err_set("staleness: expected 0..5, found %ld", s->staleness);
    if (strcmp(s->sim, "programmatic") && strcmp(s->sim, "lm"))
        return err_set("sim: expected programmatic or lm, found \"%s\"", s->sim);
    if (!strcmp(s->sim, "lm") && !s->sim_model[0]) return err_set("sim lm needs --sim-model DIR");
    if (strcmp(s->vocab, "full") && strcmp(s->vocab, "envs"))
        return err_set("vocab: expected full or envs, found \"%s\"", s->vocab);
    if (s->lr <= 0 || s->lr > 1) return err_set("lr: expected in (0, 1], found %g", s->lr);
    if (strcmp(s->curriculum, "env") && strcmp(s->curriculum, "shared"))
        return err_set("curriculum: expected env or shared, found \"%s\"", s->curriculum);
    if (s->d_start < 1 || s->d_start > 100) return err_set("d_start: expected 1..100, found %ld", s->d_start);
    if (s->d_step < 1) return err_set("d_step: expected >= 1, found %ld", s->d_step);
    if (s->max_turns < 1 || s->max_new_tokens < 1 || s->max_episode_tokens < 64)
        return err_set("max_turns, max_new_tokens >= 1 and max_episode_tokens >= 64 expected");
    if (s->ckpt_every < 1 || s->keep_ckpts < 1) return err_set("ckpt_every and keep_ckpts: expected >= 1");
    if (s->micro_batch < 1) return err_set("micro_batch: expected >= 1, found %ld", s->micro_batch);
    if (s->share_prompt != 0 && s->share_prompt != 1)
        return err_set("share_prompt: expected 0 or 1, found %ld", s->share_prompt);
    if (s->sft_d_max < 1 || s->sft_d_max > 100) return err_set("sft_d_max: expected 1..100, found %ld", s->sft_d_max);
    if (!(s->copy_p_window >= 0 && s->copy_p_window <= 1))
        return err_set("copy_p_window: expected in [0, 1], found %g", s->copy_p_window);
    if (!(s->copy_stop_loss >= 0)) return err_set("copy_stop_loss: expected >= 0, found %g", s->copy_stop_loss);
    if (s->copy_fresh_words != 0 && s->copy_fresh_words != 1)
        return err_set("copy_fresh_words: expected 0 or 1, found %ld", s->copy_fresh_words);
    if (s->copy_repeat_steps < 0 || s->copy_steps < 0 || s->copy_batch < 1)
        return err_set("copy_repeat_steps >= 0, copy_steps >= 0 and copy_batch >= 1 expected, found %ld, %ld and %ld",
                       s->copy_repeat_steps, s->copy_steps, s->copy_batch);
    if (s->eval_tasks < 0) return err_set("eval_tasks: expected >= 0, found %ld", s->eval_tasks);
    if (s->temperature <= 0) return err_set("temperature: expected > 0, found %g", s->temperature);
    if (s->kl < 0 || s->clip_low < 0 || s->clip_high < 0) return err_set("kl, clip_low, clip_high: expected >= 0");
    return 0;
}

int settings_parse(settings_t *s, int argc, char **argv) {
    const char *preset = "laptop", *config = NULL;
    int resume = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            settings_usage(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--resume")) resume = 1;
        else if (!strcmp(argv[i], "--preset") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return err_set("%s: missing value", argv[i]);
            if (!strcmp(argv[i], "--preset")) preset = argv[++i];
            else config = argv[++i];
        }
    }
    if (apply_preset(s, preset)) return -1;
    if (config && load_config(s, config)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--resume")) continue;
        if (!strcmp(a, "--preset") || !strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) return err_set("unexpected argument \"%s\" (settings are --key value)", a);
        char key[128];
        snprintf(key, sizeof key, "%s", a + 2);
        char *eq = strchr(key, '=');
        const char *v = NULL;
        if (eq) *eq = 0, v = a + 2 + (eq - key) + 1;
        normalize(key);
        const setting_t *t = find(key);
        if (!t) return unknown(key, "command line");
        if (!v) {
            if (i + 1 >= argc) return err_set("--%s: missing value", a + 2);
            v = argv[++i];
        }
        if (set_value(s, t, v, "command line")) return -1;
    }
    s->resume = resume;
    if (resume && !s->run_dir[0]) return err_set("--resume needs --run-dir (the run to continue)");
    return check(s);
}

void settings_usage(FILE *f) {
    fprintf(f, "usage: trustee train [--preset laptop|paper] [--config FILE] [--resume] [--key value ...]\n"
               "\n"
               "Runs the TRUSTEE loop: tasks from the curriculum -> multi-turn rollouts against the simulator\n"
               "(Lua environments, or the four LM roles with --sim lm) -> rewards -> GRPO -> curriculum update,\n"
               "with a progress line per step, an HDF5 run log (RUN_DIR/run.h5, docs/runlog.md) and\n"
               "checkpoints (RUN_DIR/checkpoints/step-N, Hugging Face format). With no --policy, a new\n"
               "Qwen3-shaped policy is created and warm-started by SFT on oracle transcripts; held-out\n"
               "success is measured before and after GRPO. Under mpirun/srun the ranks split into learners,\n"
               "rollout ranks and simulator ranks (docs/distributed.md).\n"
               "\n"
               "  --preset P     laptop (default: <= 10 minutes on 2 cores) or paper (TRUSTEE's settings)\n"
               "  --config FILE  flat `key = value` lines (# comments); the command line wins\n"
               "  --resume       continue RUN_DIR from its latest checkpoint (exactly)\n"
               "\n"
               "Exit codes: 0 done; 1 error; 2 bad settings; 3 stopped by SIGTERM/SIGUSR1/SIGINT after\n"
               "writing a checkpoint (resume with --resume; slurm/train.sbatch requeues on it).\n"
               "\n"
               "Settings (--key value; '-' or '_'):        laptop / paper\n");
    for (int i = 0; i < N_TABLE; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s", TABLE[i].key);
        for (char *p = k; *p; p++)
            if (*p == '_') *p = '-';
        fprintf(f, "  --%-20s %-14s %-8s %s\n", k, TABLE[i].laptop[0] ? TABLE[i].laptop : "\"\"",
                TABLE[i].paper ? TABLE[i].paper : "", TABLE[i].help);
    }
}

json_t *settings_json(const settings_t *s) {
    json_t *j = json_object();
    json_object_set_new(j, "preset", json_string(s->preset));
    for (int i = 0; i < N_TABLE; i++) {
        const char *p = (const char *)s + TABLE[i].off;
        json_t *v = TABLE[i].type == 's' ? json_string(p)
                    : TABLE[i].type == 'i' ? json_integer(*(const long *)p)
                                           : json_real(*(const double *)p);
        json_object_set_new(j, TABLE[i].key, v);
    }
    return j;
}

int settings_from_json(settings_t *s, const json_t *j) {
    if (!json_is_object(j)) return err_set("settings: expected a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (!strcmp(key, "preset")) {
            snprintf(s->preset, sizeof s->preset, "%s", json_string_value(v) ? json_string_value(v) : "");
            continue;
        }
        const setting_t *t = find(key);
        if (!t) return unknown(key, "checkpoint settings");
        char *p = (char *)s + t->off;
        if (t->type == 's' && json_is_string(v)) snprintf(p, t->size, "%s", json_string_value(v));
        else if (t->type == 'i' && json_is_integer(v)) *(long *)p = (long)json_integer_value(v);
        else if (t->type == 'f' && json_is_number(v)) *(double *)p = json_number_value(v);
        else return err_set("checkpoint settings: %s has the wrong type", key);
    }
    return 0;
}

void settings_print(const settings_t *s, FILE *f) {
    json_t *j = settings_json(s);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
        fprintf(f, "  %s = %s\n", key, t ? t : "?");
        free(t);
    }
    json_decref(j);
}
