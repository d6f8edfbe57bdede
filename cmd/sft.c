// trustee sft: supervised fine-tuning of a Qwen3 checkpoint on chat transcripts (JSONL), loss on
// the assistant's tokens only, AdamW; writes the trained model as a Hugging Face checkpoint.
//
// Each step takes --batch transcripts (a seeded shuffle of the file, reshuffled every epoch), runs
// them in micro-batches of --micro-batch (right-padded to the longest transcript of the
// micro-batch), accumulates the gradients of the token-mean NLL over ALL assistant tokens of the
// step (every micro-batch's loss is divided by the step's token count), then takes one AdamW step.
//
// --render picks the token layout: episode (default) renders each transcript the way a rollout
// builds an episode (chat_load_json_episode: every assistant turn = the generation prompt, with the
// empty think block when thinking is off, + the reply as generated text), so a model trained here
// meets the same layout in rollouts; hf renders it with the HF template (chat_load_json), which
// keeps the empty think block only on the last assistant turn.
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "learner/loss.h"
#include "learner/optim.h"
#include "model/chat.h"
#include "model/config.h"
#include "model/checkpoint.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

static const char *SFT_USAGE =
    "usage: trustee sft --model DIR --data FILE.jsonl --out DIR [options]\n"
    "\n"
    "Supervised fine-tuning on chat transcripts. Each line of FILE.jsonl is one conversation,\n"
    "{\"messages\": [...], \"tools\": [...]} as `trustee generate --chat` reads it (without a\n"
    "generation prompt); the loss is the mean negative log-likelihood of the assistant's tokens\n"
    "(content, tool calls, closing <|im_end|>). Writes config.json, model.safetensors (F32) and the\n"
    "tokenizer files to --out: a Hugging Face checkpoint.\n"
    "\n"
    "--render episode (the default) lays each transcript out as a rollout builds an episode: every\n"
    "assistant turn starts from the generation prompt and continues with the reply. Thinking is\n"
    "off unless the line says \"enable_thinking\": true, so that prompt is\n"
    "\"<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n\" for every turn. SFT here warm-starts rollout\n"
    "policies, so it trains on the layout they will see.\n"
    "--render hf uses the Hugging Face chat template instead (thinking on unless the line says\n"
    "false; the empty think block only on the last assistant turn).\n"
    "\n"
    "options:\n"
    "  --model DIR          checkpoint to start from\n"
    "  --data FILE.jsonl    training transcripts, one JSON object per line\n"
    "  --out DIR            where the trained checkpoint goes (created; must be empty unless --force)\n"
    "  --render MODE        episode (default: the rollout layout) or hf (the HF chat template)\n"
    "  --steps N            optimizer steps (default 100)\n"
    "  --batch B            transcripts per step (default 8)\n"
    "  --micro-batch M      transcripts per forward/backward; gradients accumulate (default: B)\n"
    "  --max-len T          longer transcripts are cut to T tokens (default 2048)\n"
    "  --lr X               peak learning rate (default 1e-5)\n"
    "  --min-lr X           floor of the cosine decay over --steps (default lr / 10)\n"
    "  --warmup N           linear warmup steps (default 0)\n"
    "  --weight-decay X     AdamW decoupled weight decay on the layers' matrices (default 0.01)\n"
    "  --beta1 X --beta2 X  AdamW moment rates (default 0.9, 0.999)\n"
    "  --clip X             global gradient-norm clip, 0: off (default 1.0)\n"
    "  --seed S             shuffle seed (default 0)\n"
    "  --checkpoint         recompute each layer in the backward (less activation memory)\n"
    "  --threads N          CPU threads (default: all cores)\n"
    "  --force              write into a non-empty --out\n";

typedef struct {
    int32_t *ids;  // (n)
    uint8_t *mask; // (n) token-aligned: 1 = an assistant token (a target)
    int n, n_loss;
} sft_example_t;

typedef struct {
    sft_example_t *ex;
    int n, cap;
    int n_cut; // transcripts cut to max_len
} sft_data_t;

static void sft_data_free(sft_data_t *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].mask);
    }
    free(d->ex);
    memset(d, 0, sizeof *d);
}

// renders one JSONL line (root) into an example; `where` is "FILE:LINE"
// episode: chat_load_json_episode (the rollout layout), else chat_load_json (HF template)
static int sft_render(const tokenizer_t *tok, json_t *root, const char *where, int episode, int max_len,
                      sft_example_t *ex, int *cut) {
    if (!json_is_object(root) && !json_is_array(root))
        return err_set("%s: expected a JSON object {\"messages\": [...], \"tools\": [...]}", where);
    if (json_is_object(root)) {
        json_t *agp = json_object_get(root, "add_generation_prompt");
        if (json_is_true(agp))
            return err_set("%s: add_generation_prompt is true; a training transcript must end with the "
                           "assistant's reply", where);
        if (!json_object_get(root, "messages")) return err_set("%s: no \"messages\" array", where);
        json_object_set_new(root, "add_generation_prompt", json_false());
    }
    chat_t c;
    if (chat_init(&c, tok)) return -1;
    int rc = episode ? chat_load_json_episode(&c, root, where) : chat_load_json(&c, root, where);
    if (!rc) rc = chat_flush(&c);
    if (!rc) {
        int n = c.ids.n;
        if (n > max_len) {
            n = max_len;
            *cut = 1;
        }
        ex->ids = malloc((size_t)(n ? n : 1) * sizeof *ex->ids);
        ex->mask = malloc((size_t)(n ? n : 1));
        if (!ex->ids || !ex->mask) rc = err_set("out of memory");
        else {
            memcpy(ex->ids, c.ids.ids, (size_t)n * sizeof *ex->ids);
            memcpy(ex->mask, c.mask, (size_t)n);
            ex->n = n;
            ex->n_loss = 0;
            ex->mask[0] = 0; // the first token has no prediction
            for (int t = 0; t < n; t++) ex->n_loss += ex->mask[t];
            if (ex->n_loss == 0)
                rc = err_set("%s: no assistant tokens to train on%s", where,
                             *cut ? " within --max-len" : " (the loss needs an assistant message)");
        }
    }
    chat_free(&c);
    return rc;
}

static int sft_data_load(sft_data_t *d, const char *path, const tokenizer_t *tok, int episode, int max_len,
                         int vocab) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    char where[4200];
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        int blank = 1;
        for (ssize_t i = 0; i < len && blank; i++) blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r';
        if (blank) continue;
        json_error_t je;
        json_t *root = json_loadb(line, (size_t)len, 0, &je);
        if (!root) {
            rc = err_set("%s: invalid JSON at column %d: %s", where, je.column, je.text);
            break;
        }
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 64;
            sft_example_t *ne = realloc(d->ex, (size_t)d->cap * sizeof *ne);
            if (!ne) {
                json_decref(root);
                rc = err_set("out of memory");
                break;
            }
            d->ex = ne;
        }
        sft_example_t *ex = &d->ex[d->n];
        memset(ex, 0, sizeof *ex);
        int cut = 0;
        rc = sft_render(tok, root, where, episode, max_len, ex, &cut);
        json_decref(root);
        if (rc) {
            free(ex->ids);
            free(ex->mask);
            break;
        }
        for (int t = 0; t < ex->n && !rc; t++)
            if (ex->ids[t] < 0 || ex->ids[t] >= vocab)
                rc = err_set("%s: token id %d is outside the model's vocabulary (%d)", where, ex->ids[t], vocab);
        d->n++;
        d->n_cut += cut;
    }
    free(line);
    fclose(f);
    if (!rc && d->n == 0) rc = err_set("%s: no transcripts (the file is empty)", path);
    if (rc) sft_data_free(d);
    return rc;
}

static double sft_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}



// writes config.json (F32), model.safetensors and the tokenizer files of a trained model
static int sft_write_checkpoint(qwen3_t *m, const char *src_dir, const char *out) {
    char path[4200];
    if (checkpoint_mkdirs(out)) return -1;
    qwen3_config_t cfg = m->cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    snprintf(path, sizeof path, "%s/config.json", out);
    if (qwen3_config_write(&cfg, path)) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (qwen3_params_write(m, path)) return -1;
    return checkpoint_write_tokenizer(src_dir, out);
}


int cmd_sft(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(SFT_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long steps, batch, micro, max_len, warmup, seed, threads;
    double lr, min_lr, wd, beta1, beta2, clip;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *data_path = err ? NULL : args_str(&a, "data", NULL, &err);
    const char *out = err ? NULL : args_str(&a, "out", NULL, &err);
    const char *render = err ? NULL : args_str(&a, "render", "episode", &err);
    if (err || args_int(&a, "steps", 100, &steps) || args_int(&a, "batch", 8, &batch) ||
        args_int(&a, "micro-batch", 0, &micro) || args_int(&a, "max-len", 2048, &max_len) ||
        args_float(&a, "lr", 1e-5, &lr) || args_float(&a, "min-lr", -1, &min_lr) ||
        args_int(&a, "warmup", 0, &warmup) || args_float(&a, "weight-decay", 0.01, &wd) ||
        args_float(&a, "beta1", 0.9, &beta1) || args_float(&a, "beta2", 0.999, &beta2) ||
        args_float(&a, "clip", 1.0, &clip) || args_int(&a, "seed", 0, &seed) ||
        args_int(&a, "threads", 0, &threads))
        return cmd_fail("sft");
    int checkpoint = args_flag(&a, "checkpoint"), force = args_flag(&a, "force");
    if (args_finish(&a)) return cmd_fail("sft");
    if (!dir || !data_path || !out) {
        fprintf(stderr, "trustee sft: error: --model DIR, --data FILE.jsonl and --out DIR are required\n\n%s",
                SFT_USAGE);
        return 2;
    }
    if (strcmp(render, "episode") && strcmp(render, "hf")) {
        err_set("--render: expected episode or hf, found '%s'", render);
        return cmd_fail("sft");
    }
    int episode = !strcmp(render, "episode");
    if (micro <= 0) micro = batch;
    if (steps < 1 || batch < 1 || micro < 1 || micro > batch || max_len < 2 || warmup < 0 || seed < 0 ||
        steps > 100000000 || batch > 1000000 || max_len > 1000000) {
        err_set("expected --steps >= 1, --batch >= 1, 1 <= --micro-batch <= --batch, --max-len >= 2, "
                "--warmup >= 0, --seed >= 0");
        return cmd_fail("sft");
    }
    if (min_lr < 0) min_lr = lr / 10;
    int nonempty = checkpoint_dir_nonempty(out);
    if (nonempty < 0) return cmd_fail("sft");
    if (nonempty && !force) {
        err_set("%s is not empty (expected a new or empty directory; --force overwrites)", out);
        return cmd_fail("sft");
    }
    kernels_set_threads((int)threads);

    int rc = 1, loaded = 0, tr_ok = 0, g_ok = 0, o_ok = 0;
    qwen3_t m, g;
    qwen3_train_t tr;
    optim_t opt;
    sft_data_t data = {0};
    int32_t *ids = NULL, *lengths = NULL;
    uint8_t *mask = NULL;
    float *lp = NULL, *dlp = NULL;
    int *order = NULL;
    tokenizer_t *tok = tokenizer_load_dir(dir, 1);
    if (!tok) goto done;
    if (qwen3_load(&m, dir, DEVICE_CPU)) goto done;
    loaded = 1;
    if (sft_data_load(&data, data_path, tok, episode, (int)max_len, m.cfg.vocab_size)) goto done;
    int T_max = 0;
    int64_t n_tokens_all = 0, n_loss_all = 0;
    for (int i = 0; i < data.n; i++) {
        if (data.ex[i].n > T_max) T_max = data.ex[i].n;
        n_tokens_all += data.ex[i].n;
        n_loss_all += data.ex[i].n_loss;
    }
    int M = (int)micro;
    if (qwen3_train_init(&tr, &m, M, T_max, checkpoint)) goto done;
    tr_ok = 1;
    if (qwen3_grads_init(&g, &m)) goto done;
    g_ok = 1;
    optim_config_t oc;
    optim_config_default(&oc);
    oc.lr = lr;
    oc.min_lr = min_lr;
    oc.beta1 = beta1;
    oc.beta2 = beta2;
    oc.weight_decay = wd;
    oc.clip_norm = clip;
    oc.warmup_steps = warmup;
    oc.total_steps = steps;
    if (optim_init_qwen3(&opt, &oc, &m)) goto done;
    o_ok = 1;
    ids = calloc((size_t)M * T_max, sizeof *ids);
    lengths = calloc((size_t)M, sizeof *lengths);
    mask = calloc((size_t)M * T_max, 1);
    lp = calloc((size_t)M * T_max, sizeof *lp);
    dlp = calloc((size_t)M * T_max, sizeof *dlp);
    order = malloc((size_t)data.n * sizeof *order);
    if (!ids || !lengths || !mask || !lp || !dlp || !order) {
        err_set("out of memory");
        goto done;
    }

    printf("sft: model %s (hidden %d, layers %d, vocab %d), data %s: %d transcripts, %lld tokens, %lld "
           "assistant tokens (loss), %s layout\n",
           dir, m.cfg.hidden_size, m.cfg.num_hidden_layers, m.cfg.vocab_size, data_path, data.n,
           (long long)n_tokens_all, (long long)n_loss_all, render);
    if (data.n_cut) printf("sft: %d transcripts cut to --max-len %ld tokens\n", data.n_cut, max_len);
    printf("sft: steps %ld, batch %ld (micro-batch %d), lr %g -> %g (warmup %ld, cosine), weight decay %g, "
           "betas %g %g, clip %g, seed %ld%s\n",
           steps, batch, M, lr, min_lr, warmup, wd, beta1, beta2, clip, seed, checkpoint ? ", checkpointing" : "");
    fflush(stdout);

    // the shuffled order of an epoch: Fisher-Yates with the counter-based generator
    int cursor = data.n, epoch = 0, n_skipped = 0;
    double t_start = sft_now();
    for (long step = 0; step < steps; step++) {
        double t0 = sft_now();
        // pass 0 counts the step's loss tokens (the normalizer of every micro-batch's loss); pass 1
        // replays the same transcripts through forward + backward. Count the step's loss tokens first (the normalizer of every micro-batch's loss)
        int start_cursor = cursor, start_epoch = epoch;
        int64_t step_loss_tokens = 0, step_tokens = 0;
        for (int pass = 0; pass < 2; pass++) {
            cursor = start_cursor;
            epoch = start_epoch;
            double loss_sum = 0;
            int in_micro = 0, Tm = 0;
            if (pass == 1 && qwen3_grads_zero(&g)) goto done;
            for (long k = 0; k < batch; k++) {
                if (cursor == data.n) { // a new epoch
                    for (int i = 0; i < data.n; i++) order[i] = i;
                    for (int i = data.n - 1; i > 0; i--) {
                        int j = (int)(sampler_uniform((uint64_t)seed, (uint64_t)epoch, (uint64_t)i) * (i + 1));
                        int tmp = order[i];
                        order[i] = order[j];
                        order[j] = tmp;
                    }
                    cursor = 0;
                    epoch++;
                }
                const sft_example_t *ex = &data.ex[order[cursor++]];
                if (pass == 0) {
                    step_loss_tokens += ex->n_loss;
                    step_tokens += ex->n;
                    continue;
                }
                // add the transcript to the micro-batch (rows right-padded with id 0, mask 0)
                int b = in_micro++;
                memcpy(ids + (size_t)b * T_max, ex->ids, (size_t)ex->n * sizeof *ids);
                memcpy(mask + (size_t)b * T_max, ex->mask, (size_t)ex->n);
                lengths[b] = ex->n;
                if (ex->n > Tm) Tm = ex->n;
                if (in_micro == M || k == batch - 1) {
                    // repack rows from stride T_max to stride Tm
                    for (int r = 0; r < in_micro; r++) {
                        memmove(ids + (size_t)r * Tm, ids + (size_t)r * T_max, (size_t)Tm * sizeof *ids);
                        memmove(mask + (size_t)r * Tm, mask + (size_t)r * T_max, (size_t)Tm);
                        for (int t = lengths[r]; t < Tm; t++) {
                            ids[(size_t)r * Tm + t] = 0;
                            mask[(size_t)r * Tm + t] = 0;
                        }
                    }
                    qwen3_batch_t qb = {in_micro, Tm, ids, lengths, mask};
                    double part;
                    if (qwen3_train_forward(&m, &tr, &qb, 1.0f, lp, NULL) < 0 ||
                        learner_sft_loss((int64_t)in_micro * Tm, lp, mask, (double)step_loss_tokens, &part, dlp) ||
                        qwen3_train_backward(&m, &tr, dlp, &g))
                        goto done;
                    loss_sum += part;
                    in_micro = 0;
                    Tm = 0;
                }
            }
            if (pass == 1) {
                optim_stats_t st;
                int src = optim_step_qwen3(&opt, &g, 1.0, loss_sum, &st);
                if (src < 0) goto done;
                double dt = sft_now() - t0;
                if (src == 1) {
                    n_skipped++;
                    printf("step %ld/%ld SKIPPED: %s\n", step + 1, steps, st.msg);
                } else {
                    printf("step %ld/%ld loss %.6f lr %.3e grad_norm %.4g tokens %lld (loss %lld) tok/s %.1f\n",
                           step + 1, steps, loss_sum, st.lr, st.grad_norm, (long long)step_tokens,
                           (long long)step_loss_tokens, step_tokens / dt);
                }
                fflush(stdout);
            }
        }
    }
    double t_total = sft_now() - t_start;
    if (sft_write_checkpoint(&m, dir, out)) goto done;
    printf("sft: %ld steps in %.1f s (%d skipped); wrote %s (config.json, model.safetensors, tokenizer files)\n",
           steps, t_total, n_skipped, out);
    rc = 0;
done:
    if (rc) cmd_fail("sft");
    free(ids);
    free(lengths);
    free(mask);
    free(lp);
    free(dlp);
    free(order);
    sft_data_free(&data);
    if (o_ok) optim_free(&opt);
    if (g_ok) qwen3_free(&g);
    if (tr_ok) qwen3_train_free(&tr);
    if (loaded) qwen3_free(&m);
    tokenizer_free(tok);
    return rc;
}
