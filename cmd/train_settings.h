// The settings of a training run: one struct, every default in one table (cmd/train_settings.c).
// Sources, later wins: the preset's defaults < a config file (--config FILE: flat `key = value`
// lines, `#` comments) < the command line (--key value; '-' and '_' are the same in keys).
// Unknown keys are errors that name the closest known key. The resolved settings are printed at
// start and stored in the run log's /config and in every checkpoint.
#pragma once
#include <jansson.h>
#include <stdio.h>

typedef struct {
    char preset[16];        // laptop | paper
    char run_dir[256];      // runs/<name>: run.h5, checkpoints/, policy-init/
    char sim[16];           // programmatic | lm
    char sim_model[256];    // the simulator model (sim = lm)
    char envs[256];         // programmatic environments, comma-separated ("all": every shipped one)
    char policy[256];       // an existing HF model dir to train; "" = create one (init + SFT)
    char eval_difficulties[64]; // "1,50,100"
    char vocab[16];         // full | envs: the policy's output vocabulary (docs/distributed.md)
    long steps, seed, tasks, group;
    long max_turns, max_new_tokens, max_episode_tokens, max_active, share_prompt;
    long staleness, sim_ranks, rollout_ranks;
    char curriculum[16];    // env (one D per environment) | shared (one D for all)
    long d_start, d_step;
    long ckpt_every, keep_ckpts;
    long eval_tasks;        // held-out tasks per (env, difficulty)
    long copy_repeat_steps, copy_steps, copy_batch;
    double copy_p_window;
    double copy_stop_loss;  // repeat part: stop once the 50-step mean loss is below this (0: off)
    long copy_fresh_words;  // 1: copy transcripts redraw the words of their values too
    long sft_steps, sft_batch, sft_examples, sft_d_max;
    long micro_batch, recompute;
    long baseline;          // 1: SFT continued for GRPO's wall time, evaluated as a baseline
    long init_hidden, init_layers, init_heads, init_kv_heads, init_head_dim, init_intermediate;
    double init_rope_theta, init_qk_norm;
    double lr, min_lr, warmup, weight_decay, grad_clip;
    double kl, clip_low, clip_high;
    double temperature, p_soft, sft_lr;
    int resume;             // --resume: continue from the latest checkpoint of run_dir
} settings_t;

// resolves the settings from argv (argv[0] = "train"); 1 when --help was printed, 0 ok, -1 error
int settings_parse(settings_t *s, int argc, char **argv);
// prints the --help text (every key with its laptop and paper defaults)
void settings_usage(FILE *f);
// the resolved settings as a JSON object (new reference), keys as in the table
json_t *settings_json(const settings_t *s);
// one line per setting, "key = value"
void settings_print(const settings_t *s, FILE *f);
// settings from a settings_json object (a checkpoint's); unknown keys are errors
int settings_from_json(settings_t *s, const json_t *j);
