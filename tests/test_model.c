// Qwen3 forward on tests/data/qwen3-tiny against the independent PyTorch reference (expected.json):
// last-position logits within 1e-4 relative for the BF16 and the F32 checkpoint, argmax at every
// position, 16 greedy tokens through the KV cache. Then properties of the paged cache and the
// packed batch: incremental decode == full recompute, a mixed batch (sequences joining, leaving,
// forked from a shared prompt) == each sequence alone, an id outside the vocabulary is an error.
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/err.h"
#include "model/qwen3.h"
#include "model/safetensors.h"
#include "test.h"

static double rel_diff(const float *a, const float *b, int n) {
    double md = 0, mv = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d;
        if (fabs(b[i]) > mv) mv = fabs(b[i]);
    }
    return mv > 0 ? md / mv : md;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// a model with its own cache and activations
typedef struct {
    qwen3_t m;
    kvcache_t kv;
    qwen3_state_t s;
} runner_t;

static device_t run_device = DEVICE_CPU;

static int runner_init(runner_t *r, const char *dir, int page_size, int n_pages) {
    if (qwen3_load(&r->m, dir, run_device)) return -1;
    if (qwen3_kvcache_init(&r->m, &r->kv, n_pages, page_size, 16, 256)) return -1;
    return qwen3_state_init(&r->s, &r->m, &r->kv, 256, 16, 64);
}

static void runner_free(runner_t *r) {
    qwen3_state_free(&r->s);
    kvcache_free(&r->kv);
    qwen3_free(&r->m);
}

// ---- expected.json ----

static json_t *expected;

static void check_reference(const char *dir, const char *label) {
    runner_t r;
    if (runner_init(&r, dir, 5, 64)) {
        CHECK(0, "%s: %s", label, err_msg());
        return;
    }
    const int V = r.m.cfg.vocab_size;
    json_t *cases = json_object_get(expected, "cases");
    size_t ci;
    json_t *cs;
    json_array_foreach(cases, ci, cs) {
        const char *name = json_string_value(json_object_get(cs, "name"));
        json_t *jids = json_object_get(cs, "input_ids");
        int n = (int)json_array_size(jids);
        int32_t ids[64];
        for (int i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(jids, i));
        // prefill with logits at every position
        int seq = kvcache_seq_new(&r.kv);
        qwen3_chunk_t ch = {seq, ids, n, n};
        int R = qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1);
        CHECK(R == n, "%s %s: forward: %s", label, name, err_msg());
        if (R != n) continue;
        // last position: all V logits
        json_t *jl = json_object_get(cs, "logits_last");
        float *want = malloc(sizeof(float) * V);
        for (int i = 0; i < V; i++) want[i] = (float)json_real_value(json_array_get(jl, i));
        const float *last = r.s.h_logits + (size_t)(n - 1) * V;
        double e = rel_diff(last, want, V);
        printf("%s %-12s last-position logits rel diff %.3g\n", label, name, e);
        CHECK(e < 1e-4, "%s %s: last logits rel diff %g", label, name, e);
        // every position: argmax and the first 8 logits
        json_t *am = json_object_get(cs, "argmax_per_position");
        json_t *f8 = json_object_get(cs, "logits_all_positions_first8");
        for (int t = 0; t < n; t++) {
            const float *row = r.s.h_logits + (size_t)t * V;
            int want_am = (int)json_integer_value(json_array_get(am, t));
            CHECK(argmax(row, V) == want_am, "%s %s: argmax at %d is %d, expected %d", label, name, t,
                  argmax(row, V), want_am);
            for (int i = 0; i < 8; i++) {
                double w8 = json_real_value(json_array_get(json_array_get(f8, t), i));
                CHECK(fabs(row[i] - w8) < 1e-4 * 16, "%s %s: logit [%d][%d] %g vs %g", label, name, t, i,
                      row[i], w8);
            }
        }
        // 16 greedy tokens, one decode step each
        json_t *g = json_object_get(cs, "greedy_16");
        int32_t tok = argmax(last, V);
        int ok = 1;
        for (int i = 0; i < 16; i++) {
            int want_tok = (int)json_integer_value(json_array_get(g, i));
            if (tok != want_tok) {
                CHECK(0, "%s %s: greedy token %d is %d, expected %d", label, name, i, tok, want_tok);
                ok = 0;
                break;
            }
            qwen3_chunk_t d = {seq, &tok, 1, 1};
            if (qwen3_forward(&r.m, &r.s, &r.kv, &d, 1) != 1) {
                CHECK(0, "%s: decode: %s", label, err_msg());
                ok = 0;
                break;
            }
            tok = argmax(r.s.h_logits, V);
        }
        if (ok) printf("%s %-12s 16 greedy tokens match\n", label, name);
        kvcache_seq_release(&r.kv, seq);
        free(want);
    }
    CHECK(kvcache_free_pages(&r.kv) == 64, "%s: pages leaked: %d free", label, kvcache_free_pages(&r.kv));
    runner_free(&r);
}

// ---- incremental decode == full recompute ----

static void check_decode_vs_recompute(const char *dir) {
    runner_t r;
    if (runner_init(&r, dir, 3, 64)) {
        CHECK(0, "%s", err_msg());
        return;
    }
    const int V = r.m.cfg.vocab_size, T = 20;
    int32_t ids[20];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 397 + 11) % V);
    float *inc = malloc(sizeof(float) * T * V);
    // incremental: a 2-token prefill, then one token per step
    int seq = kvcache_seq_new(&r.kv);
    qwen3_chunk_t ch = {seq, ids, 2, 2};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1) == 2, "%s", err_msg());
    memcpy(inc, r.s.h_logits, sizeof(float) * 2 * V);
    for (int t = 2; t < T; t++) {
        qwen3_chunk_t d = {seq, ids + t, 1, 1};
        CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &d, 1) == 1, "%s", err_msg());
        memcpy(inc + (size_t)t * V, r.s.h_logits, sizeof(float) * V);
    }
    kvcache_seq_release(&r.kv, seq);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        int s2 = kvcache_seq_new(&r.kv);
        qwen3_chunk_t full = {s2, ids, t + 1, 1};
        CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &full, 1) == 1, "%s", err_msg());
        double e = rel_diff(inc + (size_t)t * V, r.s.h_logits, V);
        worst = e > worst ? e : worst;
        kvcache_seq_release(&r.kv, s2);
    }
    printf("decode vs recompute: max rel diff %.3g over %d positions\n", worst, T);
    CHECK(worst < 1e-5, "decode vs recompute rel diff %g", worst);
    free(inc);
    runner_free(&r);
}

// ---- a mixed batch == each sequence alone ----

#define NSEQ 5
#define STEPS 8

// greedy decode of one sequence alone: logits (STEPS, V) of each step, tokens (STEPS)
static void run_alone(runner_t *r, const int32_t *prompt, int n, int steps, float *logits, int32_t *toks) {
    const int V = r->m.cfg.vocab_size;
    int seq = kvcache_seq_new(&r->kv);
    qwen3_chunk_t ch = {seq, prompt, n, 1};
    if (qwen3_forward(&r->m, &r->s, &r->kv, &ch, 1) != 1) CHECK(0, "%s", err_msg());
    for (int i = 0; i < steps; i++) {
        memcpy(logits + (size_t)i * V, r->s.h_logits, sizeof(float) * V);
        toks[i] = argmax(r->s.h_logits, V);
        qwen3_chunk_t d = {seq, &toks[i], 1, 1};
        if (i + 1 < steps && qwen3_forward(&r->m, &r->s, &r->kv, &d, 1) != 1) CHECK(0, "%s", err_msg());
    }
    kvcache_seq_release(&r->kv, seq);
}

static void check_batch_vs_alone(const char *dir) {
    runner_t r;
    if (runner_init(&r, dir, 4, 128)) {
        CHECK(0, "%s", err_msg());
        return;
    }
    const int V = r.m.cfg.vocab_size;
    const int lens[NSEQ] = {1, 5, 13, 16, 7};
    const int join_at[NSEQ] = {0, 0, 3, 0, 1}; // step at which the sequence enters the batch
    const int steps[NSEQ] = {STEPS, 4, STEPS - 3, STEPS, 6}; // sequence 1 leaves early
    int32_t prompts[NSEQ][16];
    for (int b = 0; b < NSEQ; b++)
        for (int i = 0; i < lens[b]; i++) prompts[b][i] = (int32_t)((b * 131 + i * 29 + 5) % V);
    float *alone = malloc(sizeof(float) * NSEQ * STEPS * V);
    int32_t alone_tok[NSEQ][STEPS];
    for (int b = 0; b < NSEQ; b++)
        run_alone(&r, prompts[b], lens[b], steps[b], alone + (size_t)b * STEPS * V, alone_tok[b]);

    // together: at each step, new sequences prefill while running ones decode, in one forward
    int seq[NSEQ], done[NSEQ] = {0}, next[NSEQ];
    int32_t toks[NSEQ][STEPS];
    double worst = 0;
    int tok_bad = 0;
    for (int step = 0; step < STEPS + 3; step++) {
        qwen3_chunk_t ch[NSEQ];
        int who[NSEQ], nc = 0;
        for (int b = 0; b < NSEQ; b++) {
            if (step == join_at[b]) {
                seq[b] = kvcache_seq_new(&r.kv);
                next[b] = 0;
                ch[nc] = (qwen3_chunk_t){seq[b], prompts[b], lens[b], 1};
                who[nc++] = b;
            } else if (step > join_at[b] && !done[b]) {
                ch[nc] = (qwen3_chunk_t){seq[b], &toks[b][next[b] - 1], 1, 1};
                who[nc++] = b;
            }
        }
        if (!nc) break;
        int R = qwen3_forward(&r.m, &r.s, &r.kv, ch, nc);
        CHECK(R == nc, "batched forward: %s", err_msg());
        if (R != nc) break;
        for (int j = 0; j < nc; j++) {
            int b = who[j];
            const float *row = r.s.h_logits + (size_t)j * V;
            double e = rel_diff(row, alone + ((size_t)b * STEPS + next[b]) * V, V);
            worst = e > worst ? e : worst;
            toks[b][next[b]] = argmax(row, V);
            tok_bad += toks[b][next[b]] != alone_tok[b][next[b]];
            if (++next[b] == steps[b]) { // leaves: its pages go back while others run
                done[b] = 1;
                kvcache_seq_release(&r.kv, seq[b]);
            }
        }
    }
    printf("mixed batch vs alone: max rel diff %.3g, %d token mismatches\n", worst, tok_bad);
    CHECK(worst < 1e-5, "batch vs alone rel diff %g", worst);
    CHECK(tok_bad == 0, "%d greedy tokens differ between batch and alone", tok_bad);
    CHECK(kvcache_free_pages(&r.kv) == 128, "pages leaked: %d free", kvcache_free_pages(&r.kv));

    // forks: a 10-token prompt (pages of 4: two full, one half full) shared by 3 children that
    // continue differently, run in one batch; each must equal its full sequence run alone
    int32_t prompt[10], cont[3][3];
    for (int i = 0; i < 10; i++) prompt[i] = (int32_t)((i * 71 + 3) % V);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 3; i++) cont[c][i] = (int32_t)((c * 300 + i * 17 + 1) % V);
    int parent = kvcache_seq_new(&r.kv);
    qwen3_chunk_t pc = {parent, prompt, 10, 0};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &pc, 1) == 0, "%s", err_msg());
    int free_before = kvcache_free_pages(&r.kv);
    int kids[3];
    for (int c = 0; c < 3; c++) kids[c] = kvcache_seq_fork(&r.kv, parent);
    CHECK(kvcache_free_pages(&r.kv) == free_before, "fork took pages");
    CHECK(r.kv.refcount[kvcache_seq_pages(&r.kv, parent)[0]] == 4, "shared page count %d",
          r.kv.refcount[kvcache_seq_pages(&r.kv, parent)[0]]);
    kvcache_seq_release(&r.kv, parent); // the children keep the prompt alive
    qwen3_chunk_t kc[3];
    for (int c = 0; c < 3; c++) kc[c] = (qwen3_chunk_t){kids[c], cont[c], 3, 3};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, kc, 3) == 9, "%s", err_msg());
    // 3 children: the half page was copied by two of them (the last owner writes in place),
    // and each needs one new page for positions 12..12
    CHECK(kvcache_free_pages(&r.kv) == free_before - 2 - 3, "free pages %d, expected %d",
          kvcache_free_pages(&r.kv), free_before - 5);
    float *fork_logits = malloc(sizeof(float) * 9 * V);
    memcpy(fork_logits, r.s.h_logits, sizeof(float) * 9 * V);
    double fworst = 0;
    for (int c = 0; c < 3; c++) {
        int32_t full[13];
        memcpy(full, prompt, sizeof prompt);
        memcpy(full + 10, cont[c], sizeof cont[c]);
        int s1 = kvcache_seq_new(&r.kv);
        qwen3_chunk_t f = {s1, full, 13, 3};
        CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &f, 1) == 3, "%s", err_msg());
        double e = rel_diff(fork_logits + (size_t)c * 3 * V, r.s.h_logits, 3 * V);
        fworst = e > fworst ? e : fworst;
        kvcache_seq_release(&r.kv, s1);
    }
    printf("forked children vs alone: max rel diff %.3g\n", fworst);
    CHECK(fworst < 1e-5, "fork rel diff %g", fworst);
    for (int c = 0; c < 3; c++) kvcache_seq_release(&r.kv, kids[c]);
    CHECK(kvcache_free_pages(&r.kv) == 128, "pages leaked after forks: %d free", kvcache_free_pages(&r.kv));

    // truncate back into a shared page, then diverge: still equal to running alone
    int a = kvcache_seq_new(&r.kv);
    qwen3_chunk_t ac = {a, prompt, 10, 0};
    qwen3_forward(&r.m, &r.s, &r.kv, &ac, 1);
    int b2 = kvcache_seq_fork(&r.kv, a);
    CHECK(kvcache_seq_truncate(&r.kv, b2, 6) == 0, "%s", err_msg());
    qwen3_chunk_t bc = {b2, cont[0], 3, 1};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &bc, 1) == 1, "%s", err_msg());
    float *tr = malloc(sizeof(float) * V);
    memcpy(tr, r.s.h_logits, sizeof(float) * V);
    qwen3_chunk_t a2 = {a, cont[1], 1, 1}; // the original continues in its own pages
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &a2, 1) == 1, "%s", err_msg());
    int32_t full[9];
    memcpy(full, prompt, 6 * sizeof(int32_t));
    memcpy(full + 6, cont[0], 3 * sizeof(int32_t));
    int s3 = kvcache_seq_new(&r.kv);
    qwen3_chunk_t f3 = {s3, full, 9, 1};
    qwen3_forward(&r.m, &r.s, &r.kv, &f3, 1);
    double te = rel_diff(tr, r.s.h_logits, V);
    CHECK(te < 1e-5, "truncated fork rel diff %g", te);
    kvcache_seq_release(&r.kv, a);
    kvcache_seq_release(&r.kv, b2);
    kvcache_seq_release(&r.kv, s3);
    CHECK(kvcache_free_pages(&r.kv) == 128, "pages leaked after truncate: %d free", kvcache_free_pages(&r.kv));
    free(tr);
    free(fork_logits);
    free(alone);
    runner_free(&r);
}

// ---- untied and F16 checkpoints ----

// last-position logits of ids through a checkpoint directory (V floats, caller frees), NULL on error
static float *last_logits(const char *dir, const int32_t *ids, int n) {
    runner_t r;
    if (runner_init(&r, dir, 4, 16)) return NULL;
    int seq = kvcache_seq_new(&r.kv);
    qwen3_chunk_t ch = {seq, ids, n, 1};
    float *out = NULL;
    if (qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1) == 1) {
        out = malloc(sizeof(float) * r.m.cfg.vocab_size);
        memcpy(out, r.s.h_logits, sizeof(float) * r.m.cfg.vocab_size);
    }
    runner_free(&r);
    return out;
}

// rewrites the tiny checkpoint (F32 copy) as: untied (lm_head.weight = embed_tokens), and as F16;
// both must give the tied BF16 model's logits (F16 within its rounding)
static void check_untied_and_f16(void) {
    safetensors_t st;
    if (safetensors_open(&st, TEST_DATA_DIR "/qwen3-tiny/model-f32.safetensors")) {
        CHECK(0, "%s", err_msg());
        return;
    }
    qwen3_config_t cfg;
    CHECK(qwen3_config_load(&cfg, TEST_DATA_DIR "/qwen3-tiny/config.json") == 0, "%s", err_msg());
    char dir[] = "/tmp/test_model_untied_XXXXXX";
    if (!mkdtemp(dir)) return;
    char path[512], cpath[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    int32_t ids[5] = {1, 2, 3, 4, 5};
    float *ref = last_logits(TEST_DATA_DIR "/qwen3-tiny", ids, 5);
    const int V = cfg.vocab_size;

    // untied: n + 1 tensors, lm_head.weight a copy of the embedding
    st_tensor_t *ts = calloc((size_t)st.n + 1, sizeof(st_tensor_t));
    memcpy(ts, st.tensors, sizeof(st_tensor_t) * st.n);
    const st_tensor_t *emb = safetensors_find(&st, "model.embed_tokens.weight");
    ts[st.n] = *emb;
    ts[st.n].name = "lm_head.weight";
    cfg.tie_word_embeddings = 0;
    CHECK(safetensors_write(path, ts, st.n + 1) == 0 && qwen3_config_write(&cfg, cpath) == 0, "%s", err_msg());
    float *untied = last_logits(dir, ids, 5);
    CHECK(untied && ref && rel_diff(untied, ref, V) == 0.0, "untied logits differ from tied");
    // untied without lm_head.weight: a clear error
    CHECK(safetensors_write(path, ts, st.n) == 0, "%s", err_msg());
    qwen3_t m;
    CHECK(qwen3_load(&m, dir, DEVICE_CPU) < 0 && strstr(err_msg(), "lm_head.weight"), "missing lm_head: %s", err_msg());

    // F16: every tensor converted
    cfg.tie_word_embeddings = 1;
    uint16_t **bufs = calloc((size_t)st.n, sizeof(uint16_t *));
    for (int i = 0; i < st.n; i++) {
        size_t numel = st.tensors[i].nbytes / 4;
        bufs[i] = malloc(numel * 2);
        for (size_t k = 0; k < numel; k++) bufs[i][k] = f32_to_f16(((const float *)st.tensors[i].data)[k]);
        ts[i].dtype = DTYPE_F16;
        ts[i].data = bufs[i];
        ts[i].nbytes = numel * 2;
    }
    CHECK(safetensors_write(path, ts, st.n) == 0 && qwen3_config_write(&cfg, cpath) == 0, "%s", err_msg());
    float *f16 = last_logits(dir, ids, 5);
    double e = f16 && ref ? rel_diff(f16, ref, V) : 1.0;
    printf("untied checkpoint: identical logits; F16 checkpoint: rel diff %.3g\n", e);
    CHECK(e < 1e-2 && argmax(f16, V) == argmax(ref, V), "F16 logits rel diff %g", e);
    for (int i = 0; i < st.n; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    free(ref);
    free(untied);
    free(f16);
    unlink(path);
    unlink(cpath);
    rmdir(dir);
    safetensors_close(&st);
}

// ---- errors ----

static void check_errors(const char *dir) {
    runner_t r;
    if (runner_init(&r, dir, 4, 4)) {
        CHECK(0, "%s", err_msg());
        return;
    }
    int seq = kvcache_seq_new(&r.kv);
    int32_t bad[2] = {5, 1024};
    qwen3_chunk_t ch = {seq, bad, 2, 1};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1) < 0 && strstr(err_msg(), "1024") &&
              strstr(err_msg(), "vocabulary"), "id 1024: %s", err_msg());
    bad[1] = -3;
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1) < 0 && strstr(err_msg(), "-3"), "id -3: %s", err_msg());
    CHECK(kvcache_seq_len(&r.kv, seq) == 0, "failed forward changed the cache");
    // 4 pages of 4 tokens: 17 tokens do not fit; the cache stays as it was
    int32_t many[17] = {0};
    qwen3_chunk_t big = {seq, many, 17, 1};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &big, 1) < 0 && strstr(err_msg(), "pages"), "full: %s", err_msg());
    CHECK(kvcache_seq_len(&r.kv, seq) == 0 && kvcache_free_pages(&r.kv) == 4, "cache changed");
    qwen3_chunk_t two[2] = {{seq, many, 3, 1}, {seq, many, 2, 1}};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, two, 2) < 0, "the same sequence twice must fail");
    runner_free(&r);
    qwen3_t m;
    CHECK(qwen3_load(&m, "/nonexistent-dir", DEVICE_CPU) < 0 && strstr(err_msg(), "nonexistent"), "%s", err_msg());
}

int main(void) {
    const char *tiny = TEST_DATA_DIR "/qwen3-tiny";
    json_error_t jerr;
    expected = json_load_file(TEST_DATA_DIR "/qwen3-tiny/expected.json", 0, &jerr);
    REQUIRE(expected, "expected.json: %s", jerr.text);

    // the F32 copy of the weights, as model.safetensors of a scratch directory
    char tmp[] = "/tmp/test_model_XXXXXX";
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/config.json", tmp);
    REQUIRE(symlink(TEST_DATA_DIR "/qwen3-tiny/config.json", a) == 0, "symlink");
    snprintf(b, sizeof b, "%s/model.safetensors", tmp);
    REQUIRE(symlink(TEST_DATA_DIR "/qwen3-tiny/model-f32.safetensors", b) == 0, "symlink");

    check_reference(tiny, "bf16");
    check_reference(tmp, "f32");
    if (kernels_backend_available(DEVICE_CUDA)) { // the same reference through the CUDA backend
        run_device = DEVICE_CUDA;
        check_reference(tiny, "cuda-bf16");
        check_reference(tmp, "cuda-f32");
        run_device = DEVICE_CPU;
    } else {
        printf("no usable CUDA device: the CUDA backend was not checked\n");
    }
    unlink(a);
    unlink(b);
    rmdir(tmp);
    check_decode_vs_recompute(tiny);
    check_batch_vs_alone(tiny);
    check_errors(tiny);
    check_untied_and_f16();
    json_decref(expected);
    return test_exit("test_model");
}
