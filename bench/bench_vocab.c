// bench_vocab: the cost of the LM head with and without an output restriction
// (qwen3_set_output_vocab) on one checkpoint, for issue 9's laptop preset. Run by hand:
//   bench_vocab MODEL_DIR N_IDS [THREADS]
// N_IDS = 0: the full vocabulary; else a fixed pseudo-random list of N_IDS ids below 151,643
// (the same list every run). Prints two lines:
//   decode: G sequences x 64 new tokens after 64-token prompts (temperature 1): generated tokens/s
//           over the decode steps (prefill timed apart)
//   train:  forward + backward of a (8, 128) batch, every position t >= 1 in the loss: ms per step
//           (mean of 5 after one warm-up)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "model/engine.h"
#include "model/qwen3_train.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_vocab MODEL_DIR N_IDS [THREADS]\n");
        return 2;
    }
    int n_ids = atoi(argv[2]), threads = argc > 3 ? atoi(argv[3]) : 1;
    kernels_set_threads(threads);
    qwen3_t m;
    if (qwen3_load(&m, argv[1], DEVICE_CPU)) {
        fprintf(stderr, "%s\n", err_msg());
        return 1;
    }
    const int V = m.cfg.vocab_size, top = V < 151643 ? V : 151643;
    int32_t *list = NULL;
    if (n_ids > 0) { // n_ids distinct ids below `top`, ascending
        char *in = calloc((size_t)V, 1);
        list = malloc((size_t)n_ids * sizeof(int32_t));
        for (int k = 0, i = 0; k < n_ids; i++) {
            int id = (int)(mix((uint64_t)i) % (uint64_t)top);
            if (!in[id]) in[id] = 1, k++;
        }
        for (int i = 0, k = 0; i < V; i++)
            if (in[i]) list[k++] = i;
        free(in);
        if (qwen3_set_output_vocab(&m, list, n_ids)) {
            fprintf(stderr, "%s\n", err_msg());
            return 1;
        }
    }
    // ---- decode ----
    const int G = 8, P = 64, NEW = 64;
    engine_opts_t o = {G, 256, P + NEW + 1, 16, 0, NULL, NULL};
    engine_t *e = engine_new(&m, &o);
    if (!e) {
        fprintf(stderr, "%s\n", err_msg());
        return 1;
    }
    int32_t prompt[64];
    engine_gen_t g = {{1.0f, 0, 1.0f, 7}, NEW, 0, NULL, 0, 1, NULL, 0, NULL, NULL};
    for (int s = 0; s < G; s++) {
        for (int i = 0; i < P; i++) prompt[i] = (int32_t)(mix((uint64_t)(s * P + i + 1000)) % (uint64_t)top);
        g.stream = (uint64_t)s;
        engine_add(e, prompt, P, &g, -1);
    }
    engine_event_t ev[64];
    double t0 = now();
    int got = engine_step(e, ev, 64), generated = 0; // prefill (+ the first token of each)
    double t1 = now();
    while (got > 0) {
        got = engine_step(e, ev, 64);
        generated += got > 0 ? got : 0;
    }
    double t2 = now();
    if (got < 0) {
        fprintf(stderr, "%s\n", err_msg());
        return 1;
    }
    printf("n_ids=%d threads=%d decode: prefill %d x %d tokens %.1f ms, %d decode tokens %.3f s = %.0f tok/s\n",
           n_ids, threads, G, P, 1e3 * (t1 - t0), generated, t2 - t1, generated / (t2 - t1));
    engine_free(e);

    // ---- train ----
    const int B = 8, T = 128;
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    uint8_t *mask = malloc((size_t)B * T);
    float *lp = malloc(sizeof(float) * B * T), *dlp = malloc(sizeof(float) * B * T);
    for (int i = 0; i < B * T; i++) {
        uint64_t r = mix((uint64_t)i + 99999);
        ids[i] = list ? list[r % (uint64_t)n_ids] : (int32_t)(r % (uint64_t)top);
        mask[i] = i % T != 0;
        dlp[i] = -1.0f / (B * (T - 1));
    }
    qwen3_train_t tr;
    qwen3_t gr;
    if (qwen3_train_init(&tr, &m, B, T, 0) || qwen3_grads_init(&gr, &m)) {
        fprintf(stderr, "%s\n", err_msg());
        return 1;
    }
    qwen3_batch_t bt = {B, T, ids, NULL, mask};
    double fwd = 0, bwd = 0;
    for (int it = 0; it < 6; it++) {
        double a = now();
        if (qwen3_train_forward(&m, &tr, &bt, 1.0f, lp, NULL) < 0) {
            fprintf(stderr, "%s\n", err_msg());
            return 1;
        }
        double b = now();
        if (qwen3_train_backward(&m, &tr, dlp, &gr)) {
            fprintf(stderr, "%s\n", err_msg());
            return 1;
        }
        double c = now();
        if (it > 0) fwd += b - a, bwd += c - b;
    }
    printf("n_ids=%d threads=%d train (%d x %d): forward %.1f ms + backward %.1f ms = %.1f ms per step\n", n_ids,
           threads, B, T, 1e3 * fwd / 5, 1e3 * bwd / 5, 1e3 * (fwd + bwd) / 5);
    qwen3_train_free(&tr);
    qwen3_free(&gr);
    qwen3_free(&m);
    free(list), free(ids), free(mask), free(lp), free(dlp);
    return 0;
}
