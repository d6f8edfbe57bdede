// trustee sft: supervised fine-tuning of a Qwen3 checkpoint on chat transcripts (JSONL), loss on
// the assistant's tokens only, AdamW; writes the trained model as a Hugging Face checkpoint.
//
// The rendering and the training loop are learner/sft.h (learner_sft_render_cut, learner_sft_run):
// this command parses the arguments, loads the JSONL, and writes the checkpoint.
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "learner/sft.h"
#include "model/config.h"
#include "model/checkpoint.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"
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
    learner_sft_example_t *ex;
    int n, cap;
    int n_cut; // transcripts cut to max_len
} sft_data_t;

static void sft_data_free(sft_data_t *d) {
    for (int i = 0; i < d->n; i++) learner_sft_example_free(&d->ex[i]);
    free(d->ex);
    memset(d, 0, sizeof *d);
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
            learner_sft_example_t *ne = realloc(d->ex, (size_t)d->cap * sizeof *ne);
            if (!ne) {
                json_decref(root);
                rc = err_set("out of memory");
                break;
            }
            d->ex = ne;
        }
        learner_sft_example_t *ex = &d->ex[d->n];
        rc = learner_sft_render_cut(tok, root, episode, max_len, where, ex);
        json_decref(root);
        if (rc) break;
        for (int t = 0; t < ex->n && !rc; t++)
            if (ex->ids[t] < 0 || ex->ids[t] >= vocab)
                rc = err_set("%s: token id %d is outside the model's vocabulary (%d)", where, ex->ids[t], vocab);
        d->n++;
        d->n_cut += ex->cut;
    }
    free(line);
    fclose(f);
    if (!rc && d->n == 0) rc = err_set("%s: no transcripts (the file is empty)", path);
    if (rc) sft_data_free(d);
    return rc;
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
    learner_sft_opts_t def;
    learner_sft_opts_default(&def);
    int err = 0;
    long steps, batch, micro, max_len, warmup, seed, threads;
    double lr, min_lr, wd, beta1, beta2, clip;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *data_path = err ? NULL : args_str(&a, "data", NULL, &err);
    const char *out = err ? NULL : args_str(&a, "out", NULL, &err);
    const char *render = err ? NULL : args_str(&a, "render", "episode", &err);
    if (err || args_int(&a, "steps", def.steps, &steps) || args_int(&a, "batch", def.batch, &batch) ||
        args_int(&a, "micro-batch", def.micro_batch, &micro) || args_int(&a, "max-len", def.max_len, &max_len) ||
        args_float(&a, "lr", def.lr, &lr) || args_float(&a, "min-lr", def.min_lr, &min_lr) ||
        args_int(&a, "warmup", def.warmup, &warmup) || args_float(&a, "weight-decay", def.weight_decay, &wd) ||
        args_float(&a, "beta1", def.beta1, &beta1) || args_float(&a, "beta2", def.beta2, &beta2) ||
        args_float(&a, "clip", def.clip_norm, &clip) || args_int(&a, "seed", (long)def.seed, &seed) ||
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
        steps > 100000000 || batch > 1000000 || max_len > 1000000 || warmup > 100000000) {
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

    learner_sft_opts_t so;
    learner_sft_opts_default(&so);
    so.steps = (int)steps;
    so.batch = (int)batch;
    so.micro_batch = (int)micro;
    so.max_len = (int)max_len;
    so.lr = lr;
    so.min_lr = min_lr;
    so.weight_decay = wd;
    so.beta1 = beta1;
    so.beta2 = beta2;
    so.clip_norm = clip;
    so.warmup = (int)warmup;
    so.seed = (uint64_t)seed;
    so.recompute = checkpoint;
    so.log_every = 1;
    so.log = stdout;

    int rc = 1, loaded = 0;
    qwen3_t m;
    sft_data_t data = {0};
    tokenizer_t *tok = tokenizer_load_dir(dir, 1);
    if (!tok) goto done;
    if (qwen3_load(&m, dir, DEVICE_CPU)) goto done;
    loaded = 1;
    if (sft_data_load(&data, data_path, tok, episode, (int)max_len, m.cfg.vocab_size)) goto done;
    int64_t n_tokens_all = 0, n_loss_all = 0;
    for (int i = 0; i < data.n; i++) {
        n_tokens_all += data.ex[i].n;
        n_loss_all += data.ex[i].n_loss;
    }
    printf("sft: model %s (hidden %d, layers %d, vocab %d), data %s: %d transcripts, %lld tokens, %lld "
           "assistant tokens (loss), %s layout\n",
           dir, m.cfg.hidden_size, m.cfg.num_hidden_layers, m.cfg.vocab_size, data_path, data.n,
           (long long)n_tokens_all, (long long)n_loss_all, render);
    if (data.n_cut) printf("sft: %d transcripts cut to --max-len %ld tokens\n", data.n_cut, max_len);
    printf("sft: steps %ld, batch %ld (micro-batch %ld), lr %g -> %g (warmup %ld, cosine), weight decay %g, "
           "betas %g %g, clip %g, seed %ld%s\n",
           steps, batch, micro, lr, min_lr, warmup, wd, beta1, beta2, clip, seed, checkpoint ? ", checkpointing" : "");
    fflush(stdout);

    learner_sft_result_t res;
    if (learner_sft_run(&m, data.ex, data.n, &so, &res)) goto done;
    if (sft_write_checkpoint(&m, dir, out)) goto done;
    printf("sft: %ld steps in %.1f s (%d skipped); wrote %s (config.json, model.safetensors, tokenizer files)\n",
           steps, res.seconds, res.n_skipped, out);
    rc = 0;
done:
    if (rc) cmd_fail("sft");
    sft_data_free(&data);
    if (loaded) qwen3_free(&m);
    tokenizer_free(tok);
    return rc;
}
