// trustee bench-train (hidden): training throughput of one Qwen3 checkpoint, for bench/train.sh.
//
// B random sequences of T ids, every position t >= 1 in the loss (token-mean NLL). Id i of the
// (B, T) batch is splitmix64(seed * 0x9e3779b97f4a7c15 + i) mod min(V, 151643), a rule the torch
// peer (bench/torch_train.py) repeats, so both sides see the same batch and their losses agree. One untimed warm-up step, then N steps of
//   zero the gradients + training forward + SFT loss + backward   (timed: fwd_bwd)
//   AdamW step with the global grad-norm clip                      (timed: optim)
// and prints
//   bench-train batch=B seq_len=T steps=N fwd_bwd_tok_s=X optim_step_ms=Y loss_first=.. loss_last=..
// with fwd_bwd_tok_s = B*T*N / (seconds of the N fwd_bwd parts), optim_step_ms their mean.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "learner/loss.h"
#include "learner/optim.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"

static const char *BENCH_TRAIN_USAGE =
    "usage: trustee bench-train --model DIR --batch B --seq-len T --steps N [--seed S] [--threads N]\n"
    "                           [--checkpoint] [--lr X]\n"
    "Times forward+backward (tokens/s) and the AdamW step (ms) on random ids; see cmd/bench_train.c.\n";

static uint64_t bt_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double bt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int cmd_bench_train(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(BENCH_TRAIN_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long B, T, N, seed, threads;
    double lr;
    const char *dir = args_str(&a, "model", NULL, &err);
    if (err || args_int(&a, "batch", 4, &B) || args_int(&a, "seq-len", 128, &T) || args_int(&a, "steps", 3, &N) ||
        args_int(&a, "seed", 1, &seed) || args_int(&a, "threads", 0, &threads) || args_float(&a, "lr", 1e-4, &lr))
        return cmd_fail("bench-train");
    int checkpoint = args_flag(&a, "checkpoint");
    if (args_finish(&a)) return cmd_fail("bench-train");
    if (!dir) {
        fprintf(stderr, "trustee bench-train: error: --model DIR is required\n%s", BENCH_TRAIN_USAGE);
        return 2;
    }
    if (B < 1 || T < 2 || N < 1 || B > 65536 || T > 1000000 || N > 1000000 || seed < 0) {
        err_set("expected --batch >= 1, --seq-len >= 2, --steps >= 1, --seed >= 0");
        return cmd_fail("bench-train");
    }
    kernels_set_threads((int)threads);

    int rc = 1, loaded = 0, tr_ok = 0, g_ok = 0, o_ok = 0;
    qwen3_t m, g;
    qwen3_train_t tr;
    optim_t opt;
    size_t n = (size_t)B * T;
    int32_t *ids = malloc(n * sizeof *ids);
    uint8_t *mask = malloc(n);
    float *lp = malloc(n * sizeof *lp), *dlp = malloc(n * sizeof *dlp);
    if (!ids || !mask || !lp || !dlp) {
        err_set("out of memory");
        goto done;
    }
    if (qwen3_load(&m, dir, DEVICE_CPU)) goto done;
    loaded = 1;
    int64_t vocab = m.cfg.vocab_size < 151643 ? m.cfg.vocab_size : 151643;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int32_t)(bt_splitmix64((uint64_t)seed * 0x9e3779b97f4a7c15ull + i) % (uint64_t)vocab);
        mask[i] = i % (size_t)T != 0;
    }
    if (qwen3_train_init(&tr, &m, (int)B, (int)T, checkpoint)) goto done;
    tr_ok = 1;
    if (qwen3_grads_init(&g, &m)) goto done;
    g_ok = 1;
    optim_config_t oc;
    optim_config_default(&oc);
    oc.lr = lr;
    if (optim_init_qwen3(&opt, &oc, &m)) goto done;
    o_ok = 1;

    qwen3_batch_t batch = {(int)B, (int)T, ids, NULL, mask};
    double t_fb = 0, t_opt = 0, loss_first = 0, loss = 0;
    for (long s = 0; s <= N; s++) { // s = 0: warm-up
        double t0 = bt_now();
        if (qwen3_grads_zero(&g) || qwen3_train_forward(&m, &tr, &batch, 1.0f, lp, NULL) < 0 ||
            learner_sft_loss((int64_t)n, lp, mask, 0, &loss, dlp) || qwen3_train_backward(&m, &tr, dlp, &g))
            goto done;
        double t1 = bt_now();
        optim_stats_t st;
        if (optim_step_qwen3(&opt, &g, 1.0, loss, &st) < 0) goto done;
        double t2 = bt_now();
        if (s == 0) {
            loss_first = loss;
            continue;
        }
        t_fb += t1 - t0;
        t_opt += t2 - t1;
    }
    printf("bench-train batch=%ld seq_len=%ld steps=%ld threads=%d%s fwd_bwd_tok_s=%.1f optim_step_ms=%.2f "
           "loss_first=%.4f loss_last=%.4f\n",
           B, T, N, kernels_get_threads(), checkpoint ? " checkpoint=1" : "", (double)n * N / t_fb, 1e3 * t_opt / N,
           loss_first, loss);
    rc = 0;
done:
    if (rc) cmd_fail("bench-train");
    if (o_ok) optim_free(&opt);
    if (g_ok) qwen3_free(&g);
    if (tr_ok) qwen3_train_free(&tr);
    if (loaded) qwen3_free(&m);
    free(ids);
    free(mask);
    free(lp);
    free(dlp);
    return rc;
}
