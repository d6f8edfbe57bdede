// bench_gpu: the Qwen3 runtime on one CUDA GPU (bench/gpu.sh runs it beside bench/torch_gpu.py).
//
// A model of the Qwen3-8B shape (or --config) with random BF16 weights made on the GPU
// (qwen3_init_random: bf16 storage, f32 activations and accumulation), then:
//   decode   qwen3_forward with B sequences of one new token each (the engine's step: index
//            uploads, the layers, the logits copied to the host; no sampling), after a prompt of
//            --prompt tokens per sequence and --warmup steps; --steps steps timed
//   prefill  one qwen3_forward over B prompts of T tokens (logits of each prompt's last token)
//   training forward + backward of --train-layers transformer layers through the op_* of
//            kernels.h (the op sequence of model/qwen3_train.c), plus the LM head and loss over
//            the same tokens; the per-layer time is extrapolated to the config's layer count
// Each line is printed beside its roofline: decode against HBM bandwidth (weights + KV cache read
// once per step), prefill and training against dense BF16 tensor throughput.
//
// Times are CUDA events on the default stream (the stream every op runs on), after warm-up.
// --cpu runs the same code on the CPU backend with F32 weights (wall clock), so the bench's code
// paths are checked on machines without a GPU; --dry-run prints the counts and rooflines only.
// usage: bench_gpu [--config config.json] [--layers N] [--dry-run] [--cpu] ... (--help)
// Exit: 0, 2 bad arguments, 77 no usable CUDA device ("SKIP: ..."), 1 a failure.
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/qwen3.h"
#include "model/qwen3_internal.h"
#ifdef TRUSTEE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_ops.h"
#endif

#define MAX_LIST 8

typedef struct {
    const char *config; // NULL: the built-in Qwen3-8B config
    int layers;         // layers to run (0: the config's)
    int dry_run, cpu;
    int decode_b[MAX_LIST], n_decode;
    int prompt, steps, warmup;
    int prefill_b[MAX_LIST], prefill_t[MAX_LIST], n_prefill;
    int train_b, train_t, train_layers, train_iters;
    int no_decode, no_prefill, no_train;
    double hbm_tbs, peak_tflops;
    uint64_t seed;
} opts_t;

// Qwen3-8B (Hugging Face Qwen/Qwen3-8B config.json)
static qwen3_config_t qwen3_8b(void) {
    qwen3_config_t c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 151936;
    c.hidden_size = 4096;
    c.intermediate_size = 12288;
    c.num_hidden_layers = 36;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.max_position_embeddings = 40960;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1e6;
    c.tie_word_embeddings = 0;
    c.bos_token_id = 151643;
    c.eos_token_id = 151645;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "bfloat16");
    return c;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_gpu [options]\n"
            "  --config PATH        HF config.json (default: Qwen3-8B)\n"
            "  --layers N           run N layers of it (rooflines for N layers; full-model estimates too)\n"
            "  --dry-run            print parameter / FLOP counts and rooflines; touch no device\n"
            "  --cpu                run on the CPU backend (F32 weights): checks the bench's code paths\n"
            "  --decode LIST        decode batch sizes (default 1,32,128)\n"
            "  --prompt N --steps N --warmup N   decode prompt length, timed and warm-up steps (128, 64, 3)\n"
            "  --prefill LIST       prefill BxT pairs (default 8x512,2x2048)\n"
            "  --train BxT          training batch (default 4x1024)\n"
            "  --train-layers N     layers of the training measurement (default 2)\n"
            "  --train-iters N      timed training iterations (default 3)\n"
            "  --no-decode --no-prefill --no-train\n"
            "  --hbm-tbs X          HBM bandwidth for the rooflines (default 3.35, H100 SXM)\n"
            "  --peak-tflops X      dense BF16 peak (default 989, H100 SXM)\n"
            "  --seed N\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_list(const char *s, int *out, int *n) {
    *n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= MAX_LIST || parse_int(tok, 1, 1 << 16, &out[*n])) return -1;
        (*n)++;
    }
    return *n > 0 ? 0 : -1;
}

// "BxT" -> b, t
static int parse_bxt(const char *s, int *b, int *t) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (!x) return -1;
    *x = 0;
    return parse_int(buf, 1, 1 << 16, b) || parse_int(x + 1, 1, 1 << 20, t) ? -1 : 0;
}

static int parse_args(opts_t *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->decode_b[0] = 1, o->decode_b[1] = 32, o->decode_b[2] = 128, o->n_decode = 3;
    o->prompt = 128, o->steps = 64, o->warmup = 3;
    o->prefill_b[0] = 8, o->prefill_t[0] = 512, o->prefill_b[1] = 2, o->prefill_t[1] = 2048;
    o->n_prefill = 2;
    o->train_b = 4, o->train_t = 1024, o->train_layers = 2, o->train_iters = 3;
    o->hbm_tbs = 3.35, o->peak_tflops = 989;
    o->seed = 1234;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, used = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--dry-run")) o->dry_run = 1, used = 0;
        else if (!strcmp(a, "--cpu")) o->cpu = 1, used = 0;
        else if (!strcmp(a, "--no-decode")) o->no_decode = 1, used = 0;
        else if (!strcmp(a, "--no-prefill")) o->no_prefill = 1, used = 0;
        else if (!strcmp(a, "--no-train")) o->no_train = 1, used = 0;
        else if (!v) bad = 1;
        else if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--layers")) bad = parse_int(v, 1, 100000, &o->layers);
        else if (!strcmp(a, "--decode")) bad = parse_list(v, o->decode_b, &o->n_decode);
        else if (!strcmp(a, "--prompt")) bad = parse_int(v, 1, 1 << 20, &o->prompt);
        else if (!strcmp(a, "--steps")) bad = parse_int(v, 1, 1 << 20, &o->steps);
        else if (!strcmp(a, "--warmup")) bad = parse_int(v, 0, 1 << 20, &o->warmup);
        else if (!strcmp(a, "--prefill")) {
            o->n_prefill = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok && !bad; tok = strtok_r(NULL, ",", &save)) {
                if (o->n_prefill >= MAX_LIST) bad = 1;
                else bad = parse_bxt(tok, &o->prefill_b[o->n_prefill], &o->prefill_t[o->n_prefill]);
                o->n_prefill++;
            }
        } else if (!strcmp(a, "--train")) bad = parse_bxt(v, &o->train_b, &o->train_t);
        else if (!strcmp(a, "--train-layers")) bad = parse_int(v, 1, 1000, &o->train_layers);
        else if (!strcmp(a, "--train-iters")) bad = parse_int(v, 1, 1000, &o->train_iters);
        else if (!strcmp(a, "--hbm-tbs")) bad = !((o->hbm_tbs = atof(v)) > 0);
        else if (!strcmp(a, "--peak-tflops")) bad = !((o->peak_tflops = atof(v)) > 0);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "bench_gpu: unknown option %s\n", a);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "bench_gpu: bad or missing value for %s\n", a);
            return -1;
        }
        i += used;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// counts: parameters, bytes, FLOPs

typedef struct {
    int64_t per_layer;   // parameters of one transformer layer (norms included)
    int64_t layers;      // all layers' parameters + the final norm: the non-embedding parameters
    int64_t head;        // LM head V*C (tied: the embedding, read again as the head)
    int64_t embed;       // input embedding V*C
    int64_t total;       // distinct parameters (tied: the embedding counted once)
    int64_t n6;          // N of the 6N convention: non-embedding + LM head
    double decode_bytes; // weight bytes read by one decode step (BF16): non-embedding + LM head
} counts_t;

static counts_t count_params(const qwen3_config_t *c, int L) {
    counts_t n;
    const int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    n.per_layer = C * Hq * D + 2 * C * Hkv * D + Hq * D * C // q, k, v, o
                  + 3 * C * I                               // gate, up, down
                  + 2 * C + 2 * D;                          // input/post norm, q/k norm
    n.layers = (int64_t)L * n.per_layer + C;
    n.head = V * C;
    n.embed = V * C;
    n.total = n.layers + n.embed + (c->tie_word_embeddings ? 0 : n.head);
    n.n6 = n.layers + n.head;
    n.decode_bytes = 2.0 * (double)n.n6;
    return n;
}

// KV cache bytes read by one decode step of one sequence at context ctx (F32 K and V, all layers)
static double kv_bytes(const qwen3_config_t *c, int L, double ctx) {
    return 2.0 * 4.0 * L * ctx * c->num_key_value_heads * c->head_dim;
}

// attention FLOPs (QK^T and PV) of one query row at context ctx, all layers
static double attn_flops(const qwen3_config_t *c, int L, double ctx) {
    return 4.0 * L * ctx * c->num_attention_heads * c->head_dim;
}

static void print_counts(const qwen3_config_t *c, int L, const opts_t *o) {
    counts_t n = count_params(c, L);
    printf("config: hidden %d, layers %d (running %d), heads %d q / %d kv, head dim %d, intermediate %d, "
           "vocab %d, %s\n",
           c->hidden_size, c->num_hidden_layers, L, c->num_attention_heads, c->num_key_value_heads,
           c->head_dim, c->intermediate_size, c->vocab_size, c->tie_word_embeddings ? "tied" : "untied");
    printf("params per layer: %" PRId64 "\n", n.per_layer);
    printf("non-embedding params: %" PRId64 " (%.3g)\n", n.layers, (double)n.layers);
    printf("lm head params: %" PRId64 " (%.3g)%s\n", n.head, (double)n.head,
           c->tie_word_embeddings ? " (tied: the embedding)" : "");
    printf("embedding params: %" PRId64 "\n", n.embed);
    printf("total params: %" PRId64 " (%.4g)\n", n.total, (double)n.total);
    printf("N for 6N: %" PRId64 " (%.4g) = non-embedding + lm head\n", n.n6, (double)n.n6);
    printf("decode weight bytes per step (bf16, non-embedding + lm head): %.4g GB\n", n.decode_bytes / 1e9);
    printf("roofline decode batch=1: %.1f tok/s (%.2f TB/s / weight bytes)\n",
           o->hbm_tbs * 1e12 / n.decode_bytes, o->hbm_tbs);
    printf("training FLOPs per token (6N): %.4g; 100%% MFU at %.0f TFLOP/s = %.0f tok/s\n", 6.0 * n.n6,
           o->peak_tflops, o->peak_tflops * 1e12 / (6.0 * n.n6));
}

// ---------------------------------------------------------------------------------------------
// timing: CUDA events on the default stream, or the wall clock on the CPU backend

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    int cuda;
    double t;
#ifdef TRUSTEE_CUDA
    cudaEvent_t ev;
#endif
} mark_t;

static int mark_init(mark_t *m, int cuda) {
    memset(m, 0, sizeof *m);
    m->cuda = cuda;
#ifdef TRUSTEE_CUDA
    if (cuda && cudaEventCreate(&m->ev) != cudaSuccess) return err_set("cudaEventCreate failed");
#endif
    return 0;
}

static void mark_free(mark_t *m) {
#ifdef TRUSTEE_CUDA
    if (m->cuda && m->ev) cudaEventDestroy(m->ev);
#endif
    (void)m;
}

static int mark_now(mark_t *m) {
#ifdef TRUSTEE_CUDA
    if (m->cuda) {
        cudaError_t e = cudaEventRecord(m->ev, 0);
        return e == cudaSuccess ? 0 : err_set("cudaEventRecord: %s", cudaGetErrorString(e));
    }
#endif
    m->t = wall();
    return 0;
}

// seconds from a to b (waits for b)
static double mark_secs(mark_t *a, mark_t *b) {
#ifdef TRUSTEE_CUDA
    if (a->cuda) {
        float ms = 0;
        if (cudaEventSynchronize(b->ev) != cudaSuccess || cudaEventElapsedTime(&ms, a->ev, b->ev) != cudaSuccess)
            return NAN;
        return ms * 1e-3;
    }
#endif
    return b->t - a->t;
}

static int device_sync(int cuda) {
#ifdef TRUSTEE_CUDA
    if (cuda) return cuda_sync();
#endif
    (void)cuda;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// decode and prefill through qwen3_forward

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static int32_t rand_token(int V) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (int32_t)(g_rng % (uint64_t)V);
}

typedef struct {
    qwen3_t m;
    kvcache_t kv;
    qwen3_state_t s;
    int cuda;
    int L_full; // the config's layer count (estimates)
    double hbm, peak;
} rig_t;

static int logits_finite(const rig_t *r, int R) {
    for (int64_t i = 0; i < (int64_t)R * r->s.logits_cols; i++)
        if (!isfinite(r->s.h_logits[i])) return 0;
    return 1;
}

// B sequences of `len` random tokens each, prefilled in forwards of at most max_tokens rows
static int prefill_seqs(rig_t *r, int *seqs, int B, int len, int32_t *ids, qwen3_chunk_t *ch) {
    const int V = r->m.cfg.vocab_size;
    for (int i = 0; i < B * len; i++) ids[i] = rand_token(V);
    int b = 0;
    while (b < B) {
        int nb = 0, rows = 0;
        while (b + nb < B && rows + len <= r->s.max_tokens && nb < r->s.max_seqs) {
            ch[nb] = (qwen3_chunk_t){seqs[b + nb], ids + (int64_t)(b + nb) * len, len, 1};
            rows += len;
            nb++;
        }
        if (nb == 0) return err_set("a prompt of %d tokens is longer than the state's %d rows", len, r->s.max_tokens);
        if (qwen3_forward(&r->m, &r->s, &r->kv, ch, nb) < 0) return -1;
        b += nb;
    }
    return 0;
}

static int new_seqs(rig_t *r, int *seqs, int B) {
    for (int b = 0; b < B; b++)
        if ((seqs[b] = kvcache_seq_new(&r->kv)) < 0) return err_set("no free KV sequence slot");
    return 0;
}

static void release_seqs(rig_t *r, const int *seqs, int B) {
    for (int b = 0; b < B; b++)
        if (seqs[b] >= 0) kvcache_seq_release(&r->kv, seqs[b]);
}

// the first n rows of a buffer
static tensor_t rows_n(const tensor_t *t, int64_t n) {
    tensor_t v = tensor_view(t->data, t->dtype, t->device, t->ndim, t->shape);
    v.shape[0] = n;
    return v;
}

// the matmuls of one decode step alone (every layer's 7 projections + the LM head on B rows,
// back to back on the state's buffers): the part of a step that must read the weights. Seconds
// per step, averaged over `steps`, or -1 with err_set.
static double decode_matmuls(rig_t *r, int B, int steps) {
    const qwen3_t *m = &r->m;
    qwen3_state_t *s = &r->s;
    tensor_t x = rows_n(&s->x, B), xb = rows_n(&s->xb, B), q = rows_n(&s->q, B), k = rows_n(&s->k, B);
    tensor_t v = rows_n(&s->v, B), att = rows_n(&s->att, B), hb = rows_n(&s->hb, B), hb2 = rows_n(&s->hb2, B);
    tensor_t xl = rows_n(&s->xl, B);
    tensor_t logits = tensor_view(s->logits.data, DTYPE_F32, s->logits.device, 2,
                                  (int64_t[]){B, m->cfg.vocab_size});
    mark_t t0, t1;
    int rc = mark_init(&t0, r->cuda) || mark_init(&t1, r->cuda);
    for (int it = 0; it <= steps && !rc; it++) { // it 0: warm-up
        if (it == 1) rc = device_sync(r->cuda) || mark_now(&t0);
        for (int l = 0; l < m->cfg.num_hidden_layers && !rc; l++) {
            const qwen3_layer_t *w = &m->layers[l];
            rc = op_matmul(&q, &xb, &w->wq, 0) || op_matmul(&k, &xb, &w->wk, 0) || op_matmul(&v, &xb, &w->wv, 0) ||
                 op_matmul(&x, &att, &w->wo, 1) || op_matmul(&hb, &xb, &w->w_gate, 0) ||
                 op_matmul(&hb2, &xb, &w->w_up, 0) || op_matmul(&x, &hb, &w->w_down, 1);
        }
        rc = rc || op_matmul(&logits, &xl, &m->lm_head, 0);
    }
    rc = rc || mark_now(&t1);
    double secs = rc ? -1 : mark_secs(&t0, &t1) / steps;
    mark_free(&t0);
    mark_free(&t1);
    return secs;
}

static int bench_decode(rig_t *r, const opts_t *o, int B, double *tok_s_out) {
    const qwen3_config_t *c = &r->m.cfg;
    const int L = c->num_hidden_layers;
    int *seqs = malloc(sizeof(int) * B);
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)B * o->prompt + B));
    qwen3_chunk_t *ch = malloc(sizeof(qwen3_chunk_t) * B);
    mark_t t0, t1;
    int rc = !seqs || !ids || !ch ? err_set("out of memory") : 0;
    for (int b = 0; b < B && seqs; b++) seqs[b] = -1;
    rc = rc || mark_init(&t0, r->cuda) || mark_init(&t1, r->cuda) || new_seqs(r, seqs, B) ||
         prefill_seqs(r, seqs, B, o->prompt, ids, ch);
    int32_t *tok = ids; // (B) this step's tokens
    for (int step = 0; step < o->warmup + o->steps && !rc; step++) {
        if (step == o->warmup) rc = device_sync(r->cuda) || mark_now(&t0);
        for (int b = 0; b < B; b++) {
            tok[b] = rand_token(c->vocab_size);
            ch[b] = (qwen3_chunk_t){seqs[b], tok + b, 1, 1};
        }
        if (!rc && qwen3_forward(&r->m, &r->s, &r->kv, ch, B) != B) rc = -1;
    }
    rc = rc || mark_now(&t1);
    if (!rc) {
        double secs = mark_secs(&t0, &t1), tok_s = (double)B * o->steps / secs;
        *tok_s_out = tok_s;
        // roofline: one step reads the weights once and each sequence's KV cache (at the mean
        // context of the timed steps), and does 2N FLOPs per token (+ attention)
        counts_t n = count_params(c, L);
        double ctx = o->prompt + o->warmup + 0.5 * o->steps;
        double bytes = n.decode_bytes + B * kv_bytes(c, L, ctx);
        double flops = B * (2.0 * n.n6 + attn_flops(c, L, ctx));
        double t_mem = bytes / (r->hbm * 1e12), t_fl = flops / (r->peak * 1e12);
        double roof = B / (t_mem > t_fl ? t_mem : t_fl);
        printf("decode batch=%d: %.1f tok/s (roofline %.0f tok/s, %.1f%%; %.2f ms/step, %s-bound ceiling: "
               "%.3g GB/step incl. F32 KV at context %.0f)\n",
               B, tok_s, roof, 100 * tok_s / roof, 1e3 * secs / o->steps, t_mem > t_fl ? "HBM" : "compute",
               bytes / 1e9, ctx);
        if (L != r->L_full) {
            counts_t nf = count_params(c, r->L_full);
            double bf = nf.decode_bytes + B * kv_bytes(c, r->L_full, ctx);
            printf("  (%d of %d layers run; at the same fraction of its roofline the full model would do "
                   "%.1f tok/s)\n", L, r->L_full, tok_s * bytes / bf);
        }
        if (!logits_finite(r, B)) printf("  WARNING: non-finite logits in the last step\n");
        double mm = decode_matmuls(r, B, o->steps);
        if (mm > 0)
            printf("  decode batch=%d matmuls alone (op_matmul of every projection + LM head): %.2f ms/step, "
                   "%.1f%% of the step; %.0f%% of HBM bandwidth on the weights\n", B, 1e3 * mm,
                   100 * mm / (secs / o->steps), 100 * n.decode_bytes / mm / (r->hbm * 1e12));
        else
            rc = -1;
    }
    if (seqs) release_seqs(r, seqs, B);
    mark_free(&t0);
    mark_free(&t1);
    free(seqs);
    free(ids);
    free(ch);
    return rc ? -1 : 0;
}

static int bench_prefill(rig_t *r, int B, int T, double *tok_s_out) {
    const qwen3_config_t *c = &r->m.cfg;
    const int L = c->num_hidden_layers;
    if ((int64_t)B * T > r->s.max_tokens) return err_set("prefill %dx%d is above the state's %d rows", B, T, r->s.max_tokens);
    int *seqs = malloc(sizeof(int) * B);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T);
    qwen3_chunk_t *ch = malloc(sizeof(qwen3_chunk_t) * B);
    mark_t t0, t1;
    int rc = !seqs || !ids || !ch ? err_set("out of memory") : 0;
    rc = rc || mark_init(&t0, r->cuda) || mark_init(&t1, r->cuda);
    const int reps = 2;
    double secs = 0;
    for (int rep = 0; rep <= reps && !rc; rep++) { // rep 0: warm-up
        for (int b = 0; b < B; b++) seqs[b] = -1;
        rc = new_seqs(r, seqs, B);
        for (int64_t i = 0; i < (int64_t)B * T; i++) ids[i] = rand_token(c->vocab_size);
        for (int b = 0; b < B; b++) ch[b] = (qwen3_chunk_t){seqs[b], ids + (int64_t)b * T, T, 1};
        rc = rc || device_sync(r->cuda) || mark_now(&t0);
        if (!rc && qwen3_forward(&r->m, &r->s, &r->kv, ch, B) != B) rc = -1;
        rc = rc || mark_now(&t1);
        if (!rc && rep > 0) secs += mark_secs(&t0, &t1);
        release_seqs(r, seqs, B);
    }
    if (!rc) {
        secs /= reps;
        double tok_s = (double)B * T / secs;
        *tok_s_out = tok_s;
        counts_t n = count_params(c, L);
        // FLOPs: 2N per token (the LM head only on each prompt's last token) + causal attention
        double flops = (double)B * T * 2.0 * n.layers + B * 2.0 * n.head + B * attn_flops(c, L, 0.5 * (T + 1)) * T;
        double roof = (double)B * T / (flops / (r->peak * 1e12));
        printf("prefill batch=%d len=%d: %.1f tok/s (compute roofline %.0f tok/s, %.1f%%; %.1f ms)\n", B, T, tok_s,
               roof, 100 * tok_s / roof, 1e3 * secs);
        if (!logits_finite(r, B)) printf("  WARNING: non-finite logits\n");
    }
    mark_free(&t0);
    mark_free(&t1);
    free(seqs);
    free(ids);
    free(ch);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// training: forward + backward of a few layers and of the LM head, through the op_* of kernels.h

typedef struct {
    qwen3_layer_save_t *sv; // (TL) saved activations
    qwen3_layer_t *dw;      // (TL) weight gradients (F32)
    tensor_t x, xb, hb, dx, dxb, dq, dk, dv, datt, dgate, dup; // (N, ...)
    tensor_t pos, ids, seq_info, page_table, targets;          // I32
    tensor_t xn, dxn, logits, lp, dlp, dfinal, dhead;
} train_t;

static void train_free(train_t *t, int TL) {
    for (int l = 0; l < TL && t->sv; l++) {
        qwen3_layer_save_t *s = &t->sv[l];
        tensor_t *ts[] = {&s->x_in, &s->xn1, &s->q_raw, &s->k_raw, &s->q, &s->k, &s->v, &s->att,
                          &s->x_mid, &s->xn2, &s->gate, &s->up};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
    }
    for (int l = 0; l < TL && t->dw; l++) {
        qwen3_layer_t *d = &t->dw[l];
        tensor_t *ts[] = {&d->input_norm, &d->wq, &d->wk, &d->wv, &d->wo, &d->q_norm, &d->k_norm,
                          &d->post_norm, &d->w_gate, &d->w_up, &d->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
    }
    free(t->sv);
    free(t->dw);
    tensor_t *ts[] = {&t->x, &t->xb, &t->hb, &t->dx, &t->dxb, &t->dq, &t->dk, &t->dv, &t->datt,
                      &t->dgate, &t->dup, &t->pos, &t->ids, &t->seq_info, &t->page_table, &t->targets,
                      &t->xn, &t->dxn, &t->logits, &t->lp, &t->dlp, &t->dfinal, &t->dhead};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
    memset(t, 0, sizeof *t);
}

#define HEAD_ROWS 1024 // LM-head rows per chunk: the logits chunk is (HEAD_ROWS, V)

static int train_alloc(train_t *t, const qwen3_t *m, int TL, int B, int T) {
    const qwen3_config_t *c = &m->cfg;
    const int64_t N = (int64_t)B * T, C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    const device_t dev = m->device;
    const int64_t CR = N < HEAD_ROWS ? N : HEAD_ROWS;
    memset(t, 0, sizeof *t);
    t->sv = calloc((size_t)TL, sizeof *t->sv);
    t->dw = calloc((size_t)TL, sizeof *t->dw);
    if (!t->sv || !t->dw) return err_set("out of memory");
#define A(tt, dt, nd, a, b, cc) \
    if (tensor_alloc(&(tt), dt, dev, nd, (int64_t[]){a, b, cc})) return -1;
    for (int l = 0; l < TL; l++) {
        qwen3_layer_save_t *s = &t->sv[l];
        A(s->x_in, DTYPE_F32, 2, N, C, 0) A(s->xn1, DTYPE_F32, 2, N, C, 0)
        A(s->q_raw, DTYPE_F32, 3, N, Hq, D) A(s->k_raw, DTYPE_F32, 3, N, Hkv, D)
        A(s->q, DTYPE_F32, 3, N, Hq, D) A(s->k, DTYPE_F32, 3, N, Hkv, D) A(s->v, DTYPE_F32, 3, N, Hkv, D)
        A(s->att, DTYPE_F32, 3, N, Hq, D) A(s->x_mid, DTYPE_F32, 2, N, C, 0) A(s->xn2, DTYPE_F32, 2, N, C, 0)
        A(s->gate, DTYPE_F32, 2, N, I, 0) A(s->up, DTYPE_F32, 2, N, I, 0)
        const qwen3_layer_t *w = &m->layers[l];
        qwen3_layer_t *d = &t->dw[l];
        const tensor_t *ws[] = {&w->input_norm, &w->wq, &w->wk, &w->wv, &w->wo, &w->q_norm, &w->k_norm,
                                &w->post_norm, &w->w_gate, &w->w_up, &w->w_down};
        tensor_t *ds[] = {&d->input_norm, &d->wq, &d->wk, &d->wv, &d->wo, &d->q_norm, &d->k_norm,
                          &d->post_norm, &d->w_gate, &d->w_up, &d->w_down};
        for (int i = 0; i < 11; i++)
            if (tensor_alloc(ds[i], DTYPE_F32, dev, ws[i]->ndim, ws[i]->shape)) return -1;
    }
    A(t->x, DTYPE_F32, 2, N, C, 0) A(t->xb, DTYPE_F32, 2, N, C, 0) A(t->hb, DTYPE_F32, 2, N, I, 0)
    A(t->dx, DTYPE_F32, 2, N, C, 0) A(t->dxb, DTYPE_F32, 2, N, C, 0) A(t->dq, DTYPE_F32, 3, N, Hq, D)
    A(t->dk, DTYPE_F32, 3, N, Hkv, D) A(t->dv, DTYPE_F32, 3, N, Hkv, D) A(t->datt, DTYPE_F32, 3, N, Hq, D)
    A(t->dgate, DTYPE_F32, 2, N, I, 0) A(t->dup, DTYPE_F32, 2, N, I, 0)
    A(t->pos, DTYPE_I32, 1, N, 0, 0) A(t->ids, DTYPE_I32, 1, N, 0, 0) A(t->seq_info, DTYPE_I32, 2, B, 3, 0)
    A(t->page_table, DTYPE_I32, 2, B, 1, 0) A(t->targets, DTYPE_I32, 1, N, 0, 0)
    A(t->xn, DTYPE_F32, 2, N, C, 0) A(t->dxn, DTYPE_F32, 2, N, C, 0) A(t->logits, DTYPE_F32, 2, CR, V, 0)
    A(t->lp, DTYPE_F32, 1, N, 0, 0) A(t->dlp, DTYPE_F32, 1, N, 0, 0) A(t->dfinal, DTYPE_F32, 1, C, 0, 0)
    A(t->dhead, DTYPE_F32, 2, V, C, 0)
#undef A
    // the batch: B rows of T random tokens at positions 0..T-1, one page per row
    int32_t *h = malloc(sizeof(int32_t) * (size_t)(N > 3 * B ? N : 3 * B));
    float *hf = malloc(sizeof(float) * (size_t)N);
    int rc = h && hf ? 0 : err_set("out of memory");
    for (int64_t i = 0; i < N && !rc; i++) h[i] = (int32_t)(i % T);
    rc = rc || tensor_copy(&t->pos, &(tensor_t){.data = h, .dtype = DTYPE_I32, .ndim = 1, .shape = {N}});
    for (int64_t i = 0; i < N && !rc; i++) h[i] = rand_token(c->vocab_size);
    rc = rc || tensor_copy(&t->ids, &(tensor_t){.data = h, .dtype = DTYPE_I32, .ndim = 1, .shape = {N}});
    for (int64_t i = 0; i < N && !rc; i++) h[i] = rand_token(c->vocab_size);
    rc = rc || tensor_copy(&t->targets, &(tensor_t){.data = h, .dtype = DTYPE_I32, .ndim = 1, .shape = {N}});
    for (int64_t i = 0; i < N && !rc; i++) hf[i] = -1.0f / (float)N; // dL/dlp of a mean NLL
    rc = rc || tensor_copy(&t->dlp, &(tensor_t){.data = hf, .dtype = DTYPE_F32, .ndim = 1, .shape = {N}});
    for (int b = 0; b < B && !rc; b++) h[3 * b] = b * T, h[3 * b + 1] = T, h[3 * b + 2] = T;
    rc = rc || tensor_copy(&t->seq_info, &(tensor_t){.data = h, .dtype = DTYPE_I32, .ndim = 2, .shape = {B, 3}});
    for (int b = 0; b < B && !rc; b++) h[b] = b;
    rc = rc || tensor_copy(&t->page_table, &(tensor_t){.data = h, .dtype = DTYPE_I32, .ndim = 2, .shape = {B, 1}});
    free(h);
    free(hf);
    return rc;
}

static tensor_t reshaped(const tensor_t *t, int ndim, const int64_t *shape) {
    return tensor_view(t->data, t->dtype, t->device, ndim, shape);
}

// row block [r0, r0 + n) of a 2-D tensor
static tensor_t row_block(const tensor_t *t, int64_t r0, int64_t n) {
    int64_t cols = t->shape[1];
    return tensor_view((char *)t->data + (size_t)(r0 * cols) * dtype_size(t->dtype), t->dtype, t->device, 2,
                       (int64_t[]){n, cols});
}

static tensor_t elems(const tensor_t *t, int64_t r0, int64_t n) {
    return tensor_view((char *)t->data + (size_t)r0 * dtype_size(t->dtype), t->dtype, t->device, 1, &n);
}

// the io of layer l on its save (as model/qwen3_train.c's layer_setup): K/V rows are the pool
static void layer_io(train_t *t, int l, int B, int T, qwen3_layer_io_t *io, tensor_t *kp, tensor_t *vp) {
    qwen3_layer_save_t *s = &t->sv[l];
    const int64_t pool[4] = {B, T, s->k.shape[1], s->k.shape[2]};
    *kp = reshaped(&s->k, 4, pool);
    *vp = reshaped(&s->v, 4, pool);
    memset(io, 0, sizeof *io);
    io->x = t->x, io->xb = t->xb, io->q = s->q, io->k = s->k, io->v = s->v, io->att = s->att;
    io->hb = t->hb, io->hb2 = s->up, io->pos = t->pos, io->k_pool = kp, io->v_pool = vp;
    io->slots = t->pos, io->seq_info = t->seq_info, io->page_table = t->page_table;
}

// model/qwen3_train.c's layer_backward (without checkpointing): dx holds dL/d(output of layer l)
// and becomes dL/d(its input)
static int layer_backward(const qwen3_t *m, train_t *t, int l, int B, int T) {
    const qwen3_config_t *c = &m->cfg;
    const qwen3_layer_t *w = &m->layers[l];
    qwen3_layer_t *dw = &t->dw[l];
    qwen3_layer_save_t *s = &t->sv[l];
    const float eps = (float)c->rms_norm_eps;
    const int64_t N = (int64_t)B * T, Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    const int64_t D = c->head_dim;
    const int64_t qs4[4] = {B, T, Hq, D}, ks4[4] = {B, T, Hkv, D};
    tensor_t datt4 = reshaped(&t->datt, 4, qs4), dq4 = reshaped(&t->dq, 4, qs4);
    tensor_t dk4 = reshaped(&t->dk, 4, ks4), dv4 = reshaped(&t->dv, 4, ks4);
    tensor_t q4 = reshaped(&s->q, 4, qs4), k4 = reshaped(&s->k, 4, ks4), v4 = reshaped(&s->v, 4, ks4);
    tensor_t dq_rows = reshaped(&t->dq, 2, (int64_t[]){N * Hq, D}), dk_rows = reshaped(&t->dk, 2, (int64_t[]){N * Hkv, D});
    tensor_t q_raw_rows = reshaped(&s->q_raw, 2, (int64_t[]){N * Hq, D});
    tensor_t k_raw_rows = reshaped(&s->k_raw, 2, (int64_t[]){N * Hkv, D});
    int rc = op_swiglu(&t->hb, &s->gate, &s->up)
          || op_matmul_backward(&t->dgate, &dw->w_down, &t->dx, &t->hb, &w->w_down, 0)
          || op_swiglu_backward(&t->dgate, &t->dup, &t->dgate, &s->gate, &s->up)
          || op_matmul_backward(&t->dxb, &dw->w_gate, &t->dgate, &s->xn2, &w->w_gate, 0)
          || op_matmul_backward(&t->dxb, &dw->w_up, &t->dup, &s->xn2, &w->w_up, 1)
          || op_rmsnorm_backward(&t->dx, &dw->post_norm, &t->dxb, &s->x_mid, &w->post_norm, eps, 1)
          || op_matmul_backward(&t->datt, &dw->wo, &t->dx, &s->att, &w->wo, 0)
          || op_attention_backward(&dq4, &dk4, &dv4, &datt4, &q4, &k4, &v4)
          || op_rope_backward(&t->dq, &t->pos, c->rope_theta)
          || op_rope_backward(&t->dk, &t->pos, c->rope_theta)
          || op_rmsnorm_backward(&dq_rows, &dw->q_norm, &dq_rows, &q_raw_rows, &w->q_norm, eps, 0)
          || op_rmsnorm_backward(&dk_rows, &dw->k_norm, &dk_rows, &k_raw_rows, &w->k_norm, eps, 0)
          || op_matmul_backward(&t->dxb, &dw->wq, &t->dq, &s->xn1, &w->wq, 0)
          || op_matmul_backward(&t->dxb, &dw->wk, &t->dk, &s->xn1, &w->wk, 1)
          || op_matmul_backward(&t->dxb, &dw->wv, &t->dv, &s->xn1, &w->wv, 1)
          || op_rmsnorm_backward(&t->dx, &dw->input_norm, &t->dxb, &s->x_in, &w->input_norm, eps, 1);
    return rc ? err_wrap("layer %d backward: ", l) : 0;
}

// LM head + mean NLL over every row, forward and backward (logits recomputed in the backward, as
// model/qwen3_train.c does): x (N, C) final hidden -> dx
static int head_step(const qwen3_t *m, train_t *t, int64_t N) {
    const float eps = (float)m->cfg.rms_norm_eps;
    const int64_t V = m->cfg.vocab_size;
    int rc = op_rmsnorm(&t->xn, &t->x, &m->final_norm, eps);
    for (int64_t r0 = 0; r0 < N && !rc; r0 += HEAD_ROWS) {
        int64_t cr = N - r0 < HEAD_ROWS ? N - r0 : HEAD_ROWS;
        tensor_t lg = tensor_view(t->logits.data, DTYPE_F32, t->logits.device, 2, (int64_t[]){cr, V});
        tensor_t xn = row_block(&t->xn, r0, cr), tg = elems(&t->targets, r0, cr), lp = elems(&t->lp, r0, cr);
        rc = op_matmul(&lg, &xn, &m->lm_head, 0) || op_logsoftmax_gather(&lp, &lg, &tg, 1.0f);
    }
    if (rc) return err_wrap("LM head forward: ");
    for (int64_t r0 = 0; r0 < N && !rc; r0 += HEAD_ROWS) {
        int64_t cr = N - r0 < HEAD_ROWS ? N - r0 : HEAD_ROWS;
        tensor_t lg = tensor_view(t->logits.data, DTYPE_F32, t->logits.device, 2, (int64_t[]){cr, V});
        tensor_t xn = row_block(&t->xn, r0, cr), dxn = row_block(&t->dxn, r0, cr);
        tensor_t tg = elems(&t->targets, r0, cr), dlp = elems(&t->dlp, r0, cr);
        rc = op_matmul(&lg, &xn, &m->lm_head, 0) || op_logsoftmax_gather_backward(&lg, &lg, &tg, &dlp, 1.0f) ||
             op_matmul_backward(&dxn, &t->dhead, &lg, &xn, &m->lm_head, 0);
    }
    rc = rc || op_rmsnorm_backward(&t->dx, &t->dfinal, &t->dxn, &t->x, &m->final_norm, eps, 0);
    return rc ? err_wrap("LM head backward: ") : 0;
}

// which phase failed: 0 forward, 1 backward
static int bench_train(const qwen3_t *m, const opts_t *o, int cuda, int L_full, double *tok_s_out) {
    const qwen3_config_t *c = &m->cfg;
    const int TL = o->train_layers < c->num_hidden_layers ? o->train_layers : c->num_hidden_layers;
    const int B = o->train_b, T = o->train_t;
    const int64_t N = (int64_t)B * T;
    train_t t;
    mark_t e[4];
    for (int i = 0; i < 4; i++) mark_init(&e[i], cuda);
    int rc = train_alloc(&t, m, TL, B, T), phase = 0;
    double fwd = 0, head = 0, bwd = 0;
    for (int it = 0; it <= o->train_iters && !rc; it++) { // it 0: warm-up
        phase = 0;
        rc = device_sync(cuda) || mark_now(&e[0]) || op_embedding(&t.x, &m->embed, &t.ids);
        for (int l = 0; l < TL && !rc; l++) {
            qwen3_layer_io_t io;
            tensor_t kp, vp;
            layer_io(&t, l, B, T, &io, &kp, &vp);
            rc = qwen3_layer_forward(m, l, &io, &t.sv[l]);
        }
        rc = rc || mark_now(&e[1]);
        if (rc) break;
        phase = 1;
        rc = head_step(m, &t, N) || mark_now(&e[2]);
        for (int l = TL - 1; l >= 0 && !rc; l--) rc = layer_backward(m, &t, l, B, T);
        rc = rc || mark_now(&e[3]);
        if (!rc && it > 0) {
            fwd += mark_secs(&e[0], &e[1]);
            head += mark_secs(&e[1], &e[2]);
            bwd += mark_secs(&e[2], &e[3]);
        }
    }
    if (!rc) rc = device_sync(cuda);
    if (rc) {
        const char *msg = err_msg();
        if (phase == 1 && cuda && strstr(msg, "not implemented"))
            printf("training: backward ops not available on CUDA (%s)\n", msg);
        else
            printf("training: failed in the %s (%s)\n", phase ? "backward" : "forward", msg);
    } else {
        fwd /= o->train_iters, head /= o->train_iters, bwd /= o->train_iters;
        double per_layer = (fwd + bwd) / TL, step = L_full * per_layer + head;
        double tok_s = N / step;
        *tok_s_out = tok_s;
        counts_t n = count_params(c, L_full);
        double mfu = tok_s * 6.0 * n.n6 / (o->peak_tflops * 1e12);
        printf("training: %.1f tok/s, MFU %.1f%% (6N, N = %.3g = non-embedding %.3g + LM head %.3g, vs %.0f "
               "TFLOP/s; %d x %d tokens; %d layers' forward+backward measured and extrapolated to %d, LM head + "
               "loss measured; attention FLOPs, embedding backward and optimizer not counted)\n",
               tok_s, 100 * mfu, (double)n.n6, (double)n.layers, (double)n.head, o->peak_tflops, B, T, TL,
               L_full);
        printf("training per layer: forward %.2f ms, backward %.2f ms; LM head + loss fwd+bwd %.2f ms; "
               "step estimate %.1f ms\n", 1e3 * fwd / TL, 1e3 * bwd / TL, 1e3 * head, 1e3 * step);
        // a sanity check on the numbers: the loss gradient reached the first layer's input
        float probe[4] = {0};
        tensor_t pv = tensor_view(probe, DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){4});
        tensor_t d0 = tensor_view(t.dx.data, DTYPE_F32, t.dx.device, 1, (int64_t[]){4});
        if (tensor_copy(&pv, &d0) == 0 && !(isfinite(probe[0]) && isfinite(probe[1])))
            printf("  WARNING: non-finite gradients\n");
    }
    for (int i = 0; i < 4; i++) mark_free(&e[i]);
    train_free(&t, TL);
    return 0; // a training failure is reported in its line; the other lines stand
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    opts_t o;
    if (parse_args(&o, argc, argv)) return 2;
    qwen3_config_t cfg = qwen3_8b();
    if (o.config && qwen3_config_load(&cfg, o.config)) {
        fprintf(stderr, "bench_gpu: %s\n", err_msg());
        return 2;
    }
    const int L_full = cfg.num_hidden_layers;
    const int L = o.layers > 0 ? o.layers : L_full;
    if (o.train_layers > L) o.train_layers = L;
    print_counts(&cfg, L, &o);
    if (o.dry_run) return 0;

    const int cuda = !o.cpu;
    if (cuda && !kernels_backend_available(DEVICE_CUDA)) {
#ifdef TRUSTEE_CUDA
        printf("SKIP: no usable CUDA device (%s)\n", cuda_unavailable_reason());
#else
        printf("SKIP: built without CUDA\n");
#endif
        return 77;
    }
#ifdef TRUSTEE_CUDA
    if (cuda) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
            printf("device: %s, %d SMs, %.1f GiB; rooflines at %.2f TB/s HBM and %.0f TFLOP/s dense BF16\n", p.name,
                   p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, o.hbm_tbs, o.peak_tflops);
    }
#endif
    printf("decode CUDA graph: not used: the decode step cannot be captured: the ops run on the legacy "
           "default stream, qwen3_forward uploads the index tensors and copies the logits back with "
           "synchronous copies, and op_embedding / op_kv_store / op_attention read the device error "
           "record back (a host sync) inside every layer\n");

    rig_t r;
    memset(&r, 0, sizeof r);
    r.cuda = cuda;
    r.L_full = L_full;
    r.hbm = o.hbm_tbs;
    r.peak = o.peak_tflops;
    qwen3_config_t run = cfg;
    run.num_hidden_layers = L;
    double t0 = wall();
    if (qwen3_init_random(&r.m, &run, cuda ? DEVICE_CUDA : DEVICE_CPU, cuda ? DTYPE_BF16 : DTYPE_F32, o.seed) ||
        device_sync(cuda)) {
        fprintf(stderr, "bench_gpu: %s\n", err_msg());
        return 1;
    }
    printf("model: %d layers, random %s weights on %s (%.1f s to make)\n", L, cuda ? "BF16" : "F32",
           cuda ? "CUDA" : "CPU", wall() - t0);

    // one KV cache and state for the decode and prefill runs
    const int S = 16;
    int max_b = 1, max_len = 1, max_rows = 1;
    int64_t pages = 1;
    for (int i = 0; i < o.n_decode && !o.no_decode; i++) {
        int len = o.prompt + o.warmup + o.steps;
        max_b = o.decode_b[i] > max_b ? o.decode_b[i] : max_b;
        max_len = len > max_len ? len : max_len;
        max_rows = o.prompt > max_rows ? o.prompt : max_rows;
        int64_t p = (int64_t)o.decode_b[i] * ((len + S - 1) / S + 1); // +1: a page per sequence spare
        pages = p > pages ? p : pages;
    }
    for (int i = 0; i < o.n_prefill && !o.no_prefill; i++) {
        int B = o.prefill_b[i], T = o.prefill_t[i];
        max_b = B > max_b ? B : max_b;
        max_len = T > max_len ? T : max_len;
        max_rows = B * T > max_rows ? B * T : max_rows;
        int64_t p = (int64_t)B * ((T + S - 1) / S + 1);
        pages = p > pages ? p : pages;
    }
    if (max_rows < 4096 && o.prompt * 8 > max_rows) max_rows = o.prompt * 8 < 4096 ? o.prompt * 8 : 4096;
    int rc = 0;
    if (!o.no_decode || !o.no_prefill) {
        rc = qwen3_kvcache_init(&r.m, &r.kv, (int)pages, S, max_b, max_len) ||
             qwen3_state_init(&r.s, &r.m, &r.kv, max_rows, max_b, max_b);
        if (rc) {
            fprintf(stderr, "bench_gpu: %s\n", err_msg());
            qwen3_free(&r.m);
            return 1;
        }
        printf("kv cache: %" PRId64 " pages of %d tokens (%.2f GB F32); state: %d rows\n", pages, S,
               kv_bytes(&cfg, L, (double)pages * S) / 1e9, max_rows);
    }
    double tok_s;
    for (int i = 0; i < o.n_decode && !o.no_decode && !rc; i++)
        if (bench_decode(&r, &o, o.decode_b[i], &tok_s)) {
            printf("decode batch=%d: failed (%s)\n", o.decode_b[i], err_msg());
            rc = 1;
        }
    for (int i = 0; i < o.n_prefill && !o.no_prefill && !rc; i++)
        if (bench_prefill(&r, o.prefill_b[i], o.prefill_t[i], &tok_s)) {
            printf("prefill batch=%d len=%d: failed (%s)\n", o.prefill_b[i], o.prefill_t[i], err_msg());
            rc = 1;
        }
    qwen3_state_free(&r.s);
    kvcache_free(&r.kv);
    if (!o.no_train && !rc) bench_train(&r.m, &o, cuda, L_full, &tok_s);
    qwen3_free(&r.m);
    fflush(stdout);
    return rc ? 1 : 0;
}
