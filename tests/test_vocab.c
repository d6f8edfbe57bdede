// The restricted output vocabulary (qwen3_set_output_vocab) on small random models, tied and untied,
// for lists of 1, 37 and 4000 ids out of V = 5003. Every expectation is computed here from the
// UNRESTRICTED model (its plain full-vocabulary forward), never from the restricted path:
//  (a) engine: the logits of listed ids equal the full model's, every other id is -inf; samples are
//      listed ids; the reported log-prob is log-softmax over the listed ids (temperature 1, 0.7,
//      greedy, top-k); a logits hook sees the widened row and its allowed ids are intersected
//      with the list;
//  (b) learner: log-probs and entropies equal the log-softmax / entropy over the listed ids;
//  (c) gradients equal those of the equivalent REDUCED model (vocabulary = the n listed ids, its
//      embedding and lm_head the listed rows, inputs remapped), run through the unrestricted
//      learner; unlisted rows of the head gradient are 0; plus finite differences through
//      qwen3_output_vocab_refresh;
//  (d) engine sampling-time vs learner log-probs agree within 1e-4;
//  and bad lists / unlisted targets fail with clear errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/err.h"
#include "model/engine.h"
#include "model/qwen3_train.h"
#include "model/safetensors.h"
#include "test.h"

enum { V = 5003, C = 32, L = 2, HQ = 4, HKV = 2, D = 8, I = 64 };

static uint64_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static float rndf(float a) { return a * (2.0f * (float)rnd() / 2147483648.0f - 1.0f); }

// ---- model files ----

typedef struct {
    float *embed, *lm_head, *norm;                    // (V, C), (V, C) untied only, (C)
    float *lw[L][11];                                 // the layer tensors, in the order of names[]
} weights_t;

static const char *lnames[11] = {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                 "self_attn.v_proj.weight", "self_attn.o_proj.weight", "self_attn.q_norm.weight",
                                 "self_attn.k_norm.weight", "post_attention_layernorm.weight",
                                 "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
static const int64_t lshape[11][2] = {{C, 0}, {HQ * D, C}, {HKV * D, C}, {HKV * D, C}, {C, HQ * D}, {D, 0},
                                      {D, 0}, {C, 0},      {I, C},       {I, C},       {C, I}};

static void weights_random(weights_t *w) {
    w->embed = malloc(sizeof(float) * V * C);
    w->lm_head = malloc(sizeof(float) * V * C);
    w->norm = malloc(sizeof(float) * C);
    for (int i = 0; i < V * C; i++) w->embed[i] = rndf(0.6f), w->lm_head[i] = rndf(0.6f);
    for (int i = 0; i < C; i++) w->norm[i] = 1.0f + rndf(0.2f);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 11; k++) {
            int64_t n = lshape[k][0] * (lshape[k][1] ? lshape[k][1] : 1);
            w->lw[l][k] = malloc(sizeof(float) * n);
            int is_norm = lshape[k][1] == 0;
            for (int64_t i = 0; i < n; i++) w->lw[l][k][i] = is_norm ? 1.0f + rndf(0.2f) : rndf(0.25f);
        }
}

// writes a checkpoint: vocabulary = rows (n of them) of embed / lm_head (rows NULL: all V)
static int write_model(const char *dir, const weights_t *w, int tied, const int32_t *rows, int n) {
    int vocab = rows ? n : V;
    float *emb = malloc(sizeof(float) * vocab * C), *head = malloc(sizeof(float) * vocab * C);
    for (int j = 0; j < vocab; j++) {
        int r = rows ? rows[j] : j;
        memcpy(emb + (size_t)j * C, w->embed + (size_t)r * C, sizeof(float) * C);
        memcpy(head + (size_t)j * C, w->lm_head + (size_t)r * C, sizeof(float) * C);
    }
    st_tensor_t ts[3 + 11 * L];
    char names[11 * L][96];
    int k = 0;
    ts[k++] = (st_tensor_t){"model.embed_tokens.weight", DTYPE_F32, 2, {vocab, C}, emb, sizeof(float) * vocab * C};
    ts[k++] = (st_tensor_t){"model.norm.weight", DTYPE_F32, 1, {C}, w->norm, sizeof(float) * C};
    if (!tied) ts[k++] = (st_tensor_t){"lm_head.weight", DTYPE_F32, 2, {vocab, C}, head, sizeof(float) * vocab * C};
    for (int l = 0; l < L; l++)
        for (int j = 0; j < 11; j++) {
            snprintf(names[l * 11 + j], 96, "model.layers.%d.%s", l, lnames[j]);
            int nd = lshape[j][1] ? 2 : 1;
            int64_t numel = lshape[j][0] * (nd == 2 ? lshape[j][1] : 1);
            ts[k++] = (st_tensor_t){names[l * 11 + j], DTYPE_F32, nd, {lshape[j][0], lshape[j][1]}, w->lw[l][j],
                                    sizeof(float) * numel};
        }
    qwen3_config_t cfg = {.vocab_size = vocab, .hidden_size = C, .intermediate_size = I, .num_hidden_layers = L,
                          .num_attention_heads = HQ, .num_key_value_heads = HKV, .head_dim = D,
                          .max_position_embeddings = 256, .rms_norm_eps = 1e-6, .rope_theta = 10000.0,
                          .tie_word_embeddings = tied, .bos_token_id = -1, .eos_token_id = -1};
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    char path[512], cpath[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    int rc = safetensors_write(path, ts, k) || qwen3_config_write(&cfg, cpath);
    free(emb);
    free(head);
    return rc ? -1 : 0;
}

// a random sorted list of n distinct ids in [0, V)
static int32_t *random_list(int n) {
    char *in = calloc(V, 1);
    for (int k = 0; k < n;) {
        int id = (int)(rnd() % V);
        if (!in[id]) in[id] = 1, k++;
    }
    int32_t *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0, k = 0; i < V; i++)
        if (in[i]) ids[k++] = i;
    free(in);
    return ids;
}

// ---- the independent reference: full-vocabulary logits of the unrestricted model ----

// logits (n, V) of every position of one sequence, with the restriction lifted meanwhile
static int full_logits(qwen3_t *m, const int32_t *ids, int n, float *out) {
    int n_out = m->out_n;
    int32_t *list = n_out ? malloc(sizeof(int32_t) * n_out) : NULL;
    if (n_out) memcpy(list, m->out_ids, sizeof(int32_t) * n_out);
    qwen3_set_output_vocab(m, NULL, 0);
    kvcache_t kv;
    qwen3_state_t s;
    int rc = qwen3_kvcache_init(m, &kv, 32, 16, 1, 256) || qwen3_state_init(&s, m, &kv, 256, 1, 256);
    if (!rc) {
        int seq = kvcache_seq_new(&kv);
        qwen3_chunk_t ch = {seq, ids, n, n};
        rc = qwen3_forward(m, &s, &kv, &ch, 1) != n || s.logits_cols != V;
        if (!rc) memcpy(out, s.h_logits, sizeof(float) * n * V);
        qwen3_state_free(&s);
        kvcache_free(&kv);
    }
    if (n_out) rc |= qwen3_set_output_vocab(m, list, n_out);
    free(list);
    return rc ? -1 : 0;
}

// log-softmax (row / t)[target] and the entropy over the ids of `list` (n), in double
static double listed_lp(const float *row, const int32_t *list, int n, int32_t target, double t, double *ent) {
    double mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = fmax(mx, row[list[j]] / t);
    double z = 0, ez = 0;
    for (int j = 0; j < n; j++) {
        double a = row[list[j]] / t - mx, e = exp(a);
        z += e;
        ez += e * a;
    }
    if (ent) *ent = log(z) - ez / z;
    return row[target] / t - mx - log(z);
}

static int listed(const int32_t *list, int n, int32_t id) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (list[mid] == id) return 1;
        if (list[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

// ---- (a) engine, (d) sampling vs learner ----

// a hook that allows only every other listed id plus some unlisted ones (returned as a list)
typedef struct {
    const int32_t *list;
    int n;
    int saw_inf; // 1 when the row it saw had -inf at an unlisted id
} hook_t;

static int half_hook(void *ud, const int32_t *gen, int n_gen, float *logits, int vocab, int32_t *allowed) {
    (void)gen, (void)n_gen;
    hook_t *h = ud;
    int k = 0;
    for (int i = 0; i < vocab; i++) {
        int in = listed(h->list, h->n, i);
        if (!in && isinf(logits[i]) && logits[i] < 0) h->saw_inf = 1;
        int pos = 0;
        if (in) { // its position in the list
            int lo = 0, hi = h->n - 1;
            while (lo <= hi) {
                int mid = (lo + hi) / 2;
                if (h->list[mid] == i) { pos = mid; break; }
                if (h->list[mid] < i) lo = mid + 1; else hi = mid - 1;
            }
        }
        if ((in && pos % 2 == 0) || (!in && i % 97 == 0)) allowed[k++] = i;
        else logits[i] = -INFINITY;
    }
    return k;
}

typedef struct {
    double logit_err, lp_err, learner_lp_err, learner_ent_err, gap;
    int unlisted_samples, bad_inf, argmax_bad, hook_bad;
} engine_result_t;

// samples S sequences on the restricted model, checks them against the full model, then runs the
// learner on them. mode: 0 temperature 1, 1 temperature 0.7 + top-k 50, 2 greedy, 3 the hook
static void check_engine(qwen3_t *m, int mode, engine_result_t *res) {
    const int S = 3, P = 6, G = 10, T = P + G;
    const int n = m->out_n;
    int32_t list[4000]; // a copy: full_logits sets the restriction again (new memory)
    memcpy(list, m->out_ids, sizeof(int32_t) * n);
    engine_opts_t o = {4, 64, 64, 8, 0, NULL, NULL};
    engine_t *e = engine_new(m, &o);
    if (!e) {
        CHECK(0, "engine_new: %s", err_msg());
        return;
    }
    float temp = mode == 1 ? 0.7f : mode == 2 ? 0.0f : 1.0f;
    engine_gen_t g = {{temp, mode == 1 ? 50 : 0, 1.0f, 99}, G, 0, NULL, 0, 1, NULL, 0, NULL, NULL};
    hook_t hk = {list, n, 0};
    if (mode == 3) g.logits_hook = half_hook, g.logits_ud = &hk;
    int h[3];
    int32_t prompt[6];
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < P; i++) prompt[i] = (int32_t)(rnd() % V); // any id may be an input
        g.stream = (uint64_t)s;
        h[s] = engine_add(e, prompt, P, &g, -1);
    }
    float *seen = malloc(sizeof(float) * S * G * V); // engine_last_logits at each step
    engine_event_t ev[8];
    for (int step = 0; step < G; step++) {
        int k = engine_step(e, ev, 8);
        CHECK(k == S, "step %d: %d events (%s)", step, k, err_msg());
        for (int s = 0; s < S; s++) {
            const float *row = engine_last_logits(e, h[s]);
            if (row) memcpy(seen + ((size_t)s * G + step) * V, row, sizeof(float) * V);
            else CHECK(0, "no last logits");
        }
    }
    int32_t ids[3 * 16];
    uint8_t mask[3 * 16] = {0};
    float samp[3 * 16] = {0}, lp[3 * 16], ent[3 * 16];
    float *full = malloc(sizeof(float) * T * V);
    for (int s = 0; s < S; s++) {
        int nt, np, nl;
        const int32_t *tok = engine_tokens(e, h[s], &nt, &np);
        const float *elp = engine_logprobs(e, h[s], &nl);
        CHECK(nt == T && np == P && nl == G, "sequence %d: %d tokens", s, nt);
        memcpy(ids + s * T, tok, sizeof(int32_t) * T);
        for (int t = P; t < T; t++) mask[s * T + t] = 1, samp[s * T + t] = elp[t - P];
        if (full_logits(m, tok, T, full)) {
            CHECK(0, "reference forward: %s", err_msg());
            continue;
        }
        for (int t = P; t < T; t++) {
            const float *ref = full + (size_t)(t - 1) * V, *got = seen + ((size_t)s * G + t - P) * V;
            int32_t y = tok[t];
            if (!listed(list, n, y)) res->unlisted_samples++;
            // the hook: the ids it allowed (every other listed id) form the distribution
            int32_t sub[4000];
            int ns = 0;
            for (int j = 0; j < n; j++)
                if (mode != 3 || j % 2 == 0) sub[ns++] = list[j];
            if (mode == 3 && !listed(sub, ns, y)) res->hook_bad++;
            for (int i = 0, j = 0; i < V; i++) {
                int in = j < n && list[j] == i;
                if (in) j++;
                if (in && (mode != 3 || (j - 1) % 2 == 0)) {
                    double d = fabs((double)got[i] - ref[i]);
                    if (d > res->logit_err) res->logit_err = d;
                } else if (!(isinf(got[i]) && got[i] < 0)) {
                    res->bad_inf++;
                }
            }
            double want = listed_lp(ref, sub, ns, y, mode == 2 ? 1.0 : temp, NULL);
            res->lp_err = fmax(res->lp_err, fabs(want - elp[t - P]));
            if (mode == 2) { // greedy: the listed argmax (lowest id on ties)
                int32_t best = sub[0];
                for (int j = 1; j < ns; j++)
                    if (ref[sub[j]] > ref[best]) best = sub[j];
                if (best != y) res->argmax_bad++;
            }
        }
    }
    if (mode == 3) CHECK(hk.saw_inf, "the hook saw -inf at unlisted ids");
    engine_free(e);
    // learner on the same tokens (not for the hook: the learner has no hook)
    if (mode != 3) {
        float lt = mode == 2 ? 1.0f : temp;
        qwen3_train_t tr;
        qwen3_batch_t batch = {S, T, ids, NULL, mask};
        if (qwen3_train_init(&tr, m, S, T, 0) == 0) {
            int R = qwen3_train_forward(m, &tr, &batch, lt, lp, ent);
            CHECK(R == S * G, "learner forward: %d (%s)", R, err_msg());
            for (int s = 0; s < S; s++) {
                full_logits(m, ids + s * T, T, full);
                for (int t = P; t < T; t++) {
                    double we;
                    double wl = listed_lp(full + (size_t)(t - 1) * V, list, n, ids[s * T + t], lt, &we);
                    res->learner_lp_err = fmax(res->learner_lp_err, fabs(wl - lp[s * T + t]));
                    res->learner_ent_err = fmax(res->learner_ent_err, fabs(we - ent[s * T + t]));
                    res->gap = fmax(res->gap, fabs((double)lp[s * T + t] - samp[s * T + t]));
                }
            }
            qwen3_train_free(&tr);
        } else {
            CHECK(0, "train init: %s", err_msg());
        }
    }
    free(full);
    free(seen);
}

// ---- (c) gradients vs the reduced model ----

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

// max |a - b| / max |b| over n
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    double s = max_abs(b, n);
    return s > 0 ? d / s : d;
}

// restricted model m (inputs drawn from its list) vs the reduced checkpoint red_dir
static double check_grads_reduced(qwen3_t *m, const char *red_dir, int tied, double *lp_err) {
    const int B = 3, T = 12, n = m->out_n;
    const int32_t *list = m->out_ids;
    qwen3_t r;
    if (qwen3_load(&r, red_dir, DEVICE_CPU)) {
        CHECK(0, "reduced model: %s", err_msg());
        return INFINITY;
    }
    int32_t ids[36], rids[36];
    uint8_t mask[36];
    float dlp[36], lp1[36], lp2[36], e1[36], e2[36];
    for (int i = 0; i < B * T; i++) {
        int j = (int)(rnd() % n);
        ids[i] = list[j], rids[i] = j;
        mask[i] = i % T != 0 && rnd() % 4 != 0;
        dlp[i] = rndf(1.0f);
    }
    qwen3_batch_t b1 = {B, T, ids, NULL, mask}, b2 = {B, T, rids, NULL, mask};
    qwen3_train_t t1, t2;
    qwen3_t g1, g2;
    double worst = INFINITY;
    if (qwen3_train_init(&t1, m, B, T, 0) || qwen3_train_init(&t2, &r, B, T, 1) || qwen3_grads_init(&g1, m) ||
        qwen3_grads_init(&g2, &r)) {
        CHECK(0, "init: %s", err_msg());
        return worst;
    }
    t1.chunk_rows = 5; // several chunks, the last one partial
    int R1 = qwen3_train_forward(m, &t1, &b1, 0.9f, lp1, e1);
    int R2 = qwen3_train_forward(&r, &t2, &b2, 0.9f, lp2, e2);
    CHECK(R1 == R2 && R1 > 0, "loss positions %d vs %d (%s)", R1, R2, err_msg());
    *lp_err = 0;
    for (int i = 0; i < B * T; i++) *lp_err = fmax(*lp_err, fmax(fabs(lp1[i] - lp2[i]), fabs(e1[i] - e2[i])));
    CHECK(qwen3_train_backward(m, &t1, dlp, &g1) == 0, "backward: %s", err_msg());
    CHECK(qwen3_train_backward(&r, &t2, dlp, &g2) == 0, "backward (reduced): %s", err_msg());
    worst = 0;
    for (int l = 0; l < L; l++) {
        tensor_t *a[11] = {&g1.layers[l].input_norm, &g1.layers[l].wq, &g1.layers[l].wk, &g1.layers[l].wv,
                           &g1.layers[l].wo, &g1.layers[l].q_norm, &g1.layers[l].k_norm, &g1.layers[l].post_norm,
                           &g1.layers[l].w_gate, &g1.layers[l].w_up, &g1.layers[l].w_down};
        tensor_t *b[11] = {&g2.layers[l].input_norm, &g2.layers[l].wq, &g2.layers[l].wk, &g2.layers[l].wv,
                           &g2.layers[l].wo, &g2.layers[l].q_norm, &g2.layers[l].k_norm, &g2.layers[l].post_norm,
                           &g2.layers[l].w_gate, &g2.layers[l].w_up, &g2.layers[l].w_down};
        for (int k = 0; k < 11; k++) worst = fmax(worst, rel_err(a[k]->data, b[k]->data, tensor_numel(a[k])));
    }
    worst = fmax(worst, rel_err(g1.final_norm.data, g2.final_norm.data, C));
    // the vocabulary rows: listed row j of the full gradient = row j of the reduced one; others 0
    const float *ge = g1.embed.data, *gh = g1.lm_head.data, *re = g2.embed.data, *rh = g2.lm_head.data;
    double scale_e = max_abs(re, (int64_t)n * C), scale_h = max_abs(rh, (int64_t)n * C), de = 0, dh = 0;
    int nonzero_off = 0;
    for (int i = 0, j = 0; i < V; i++) {
        int in = j < n && list[j] == i;
        for (int c = 0; c < C; c++) {
            float a = ge[(size_t)i * C + c], h = gh[(size_t)i * C + c];
            if (in) {
                de = fmax(de, fabs(a - re[(size_t)j * C + c]));
                dh = fmax(dh, fabs(h - rh[(size_t)j * C + c]));
            } else {
                nonzero_off += a != 0 || h != 0; // inputs are listed ids: no lookup gradient either
            }
        }
        j += in;
    }
    CHECK(nonzero_off == 0, "%d gradient entries of unlisted rows are not 0", nonzero_off);
    worst = fmax(worst, de / (scale_e > 0 ? scale_e : 1));
    if (!tied) worst = fmax(worst, dh / (scale_h > 0 ? scale_h : 1));
    qwen3_train_free(&t1);
    qwen3_train_free(&t2);
    qwen3_free(&g1);
    qwen3_free(&g2);
    qwen3_free(&r);
    return worst;
}

typedef struct {
    float *w, *gw; // a weight and its gradient
} probe_t;

// finite differences of L = sum dlp * lp on a few weights (any input ids), through refresh
static double check_grads_fd(qwen3_t *m, int *n_checked) {
    const int B = 2, T = 10, n = m->out_n;
    int32_t ids[20];
    uint8_t mask[20];
    float dlp[20], lp[20];
    for (int i = 0; i < B * T; i++) {
        mask[i] = i % T >= 3;
        ids[i] = mask[i] ? m->out_ids[rnd() % n] : (int32_t)(rnd() % V);
        dlp[i] = rndf(1.0f);
    }
    qwen3_batch_t bt = {B, T, ids, NULL, mask};
    qwen3_train_t tr;
    qwen3_t g;
    if (qwen3_train_init(&tr, m, B, T, 0) || qwen3_grads_init(&g, m)) return INFINITY;
    qwen3_train_forward(m, &tr, &bt, 1.0f, lp, NULL);
    qwen3_train_backward(m, &tr, dlp, &g);
    // probes: lm_head entries of listed ids that are targets, embedding entries of inputs, wq
    probe_t probe[6];
    int np = 0;
    int32_t y = ids[T + 5], x0 = ids[1];
    probe[np++] = (probe_t){(float *)m->lm_head.data + (size_t)y * C + 3, (float *)g.lm_head.data + (size_t)y * C + 3};
    probe[np++] = (probe_t){(float *)m->lm_head.data + (size_t)m->out_ids[n / 2] * C + 7,
                                     (float *)g.lm_head.data + (size_t)m->out_ids[n / 2] * C + 7};
    probe[np++] = (probe_t){(float *)m->embed.data + (size_t)x0 * C + 1, (float *)g.embed.data + (size_t)x0 * C + 1};
    probe[np++] = (probe_t){(float *)m->layers[0].wq.data + 17, (float *)g.layers[0].wq.data + 17};
    probe[np++] = (probe_t){(float *)m->layers[1].w_down.data + 40, (float *)g.layers[1].w_down.data + 40};
    double worst = 0;
    const float h = 1e-2f;
    for (int p = 0; p < np; p++) {
        float w0 = *probe[p].w;
        double L2[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            *probe[p].w = w0 + (sgn ? -h : h);
            qwen3_output_vocab_refresh(m);
            qwen3_train_forward(m, &tr, &bt, 1.0f, lp, NULL);
            double s = 0;
            for (int i = 0; i < B * T; i++) s += (double)dlp[i] * lp[i];
            L2[sgn] = s;
        }
        *probe[p].w = w0;
        double fd = (L2[0] - L2[1]) / (2.0 * h), an = *probe[p].gw;
        double err = fabs(fd - an) / fmax(fabs(an), 1e-2);
        worst = fmax(worst, err);
        if (err > 2e-2) fprintf(stderr, "probe %d: finite difference %.6g, backward %.6g\n", p, fd, an);
    }
    qwen3_output_vocab_refresh(m);
    *n_checked = np;
    qwen3_train_free(&tr);
    qwen3_free(&g);
    return worst;
}

int main(void) {
    kernels_set_threads(2);
    char tmp[] = "/tmp/test_vocab_XXXXXX";
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    weights_t w;
    weights_random(&w);
    const int sizes[3] = {1, 37, 4000};
    int32_t *lists[3];
    for (int k = 0; k < 3; k++) lists[k] = random_list(sizes[k]);

    for (int tied = 1; tied >= 0; tied--) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/%s", tmp, tied ? "tied" : "untied");
        REQUIRE(mkdir(dir, 0700) == 0, "mkdir %s", dir);
        REQUIRE(write_model(dir, &w, tied, NULL, 0) == 0, "write: %s", err_msg());
        qwen3_t m;
        REQUIRE(qwen3_load(&m, dir, DEVICE_CPU) == 0, "load: %s", err_msg());
        const char *tn = tied ? "tied" : "untied";

        // bad lists
        int32_t bad1[3] = {5, 5, 9}, bad2[2] = {9, 5}, bad3[2] = {1, V};
        CHECK(qwen3_set_output_vocab(&m, bad1, 3) == -1 && strstr(err_msg(), "ascending"), "duplicate: %s", err_msg());
        CHECK(qwen3_set_output_vocab(&m, bad2, 2) == -1 && m.out_n == 0, "descending");
        CHECK(qwen3_set_output_vocab(&m, bad3, 2) == -1 && strstr(err_msg(), "5003"), "out of range: %s", err_msg());

        for (int k = 0; k < 3; k++) {
            const int n = sizes[k];
            REQUIRE(qwen3_set_output_vocab(&m, lists[k], n) == 0, "set: %s", err_msg());
            for (int mode = 0; mode < 4; mode++) {
                if (mode == 3 && n < 2) continue; // the hook keeps every other id
                engine_result_t res = {0};
                check_engine(&m, mode, &res);
                const char *mn[4] = {"t=1", "t=0.7 top-k 50", "greedy", "hook"};
                CHECK(res.unlisted_samples == 0 && res.bad_inf == 0 && res.argmax_bad == 0 && res.hook_bad == 0,
                      "%s n=%d %s: %d unlisted samples, %d entries not -inf, %d argmax, %d off the hook's ids", tn, n,
                      mn[mode], res.unlisted_samples, res.bad_inf, res.argmax_bad, res.hook_bad);
                CHECK(res.logit_err < 1e-4 && res.lp_err < 1e-4, "%s n=%d %s: logits %g, log-probs %g", tn, n,
                      mn[mode], res.logit_err, res.lp_err);
                CHECK(res.learner_lp_err < 1e-4 && res.learner_ent_err < 1e-4 && res.gap < 1e-4,
                      "%s n=%d %s: learner lp %g, entropy %g, sampling gap %g", tn, n, mn[mode], res.learner_lp_err,
                      res.learner_ent_err, res.gap);
                printf("%-6s n=%-4d %-15s engine logits |err| %.2g, engine lp %.2g", tn, n, mn[mode], res.logit_err,
                       res.lp_err);
                if (mode != 3)
                    printf(", learner lp %.2g, entropy %.2g, sampling-vs-learner gap %.2g", res.learner_lp_err,
                           res.learner_ent_err, res.gap);
                printf("\n");
            }
            if (n >= 37) {
                char rdir[700];
                snprintf(rdir, sizeof rdir, "%s/reduced-%s-%d", tmp, tn, n);
                mkdir(rdir, 0700);
                REQUIRE(write_model(rdir, &w, tied, lists[k], n) == 0, "write: %s", err_msg());
                double lpe = 0, ge = check_grads_reduced(&m, rdir, tied, &lpe);
                CHECK(ge < 1e-4 && lpe < 1e-5, "%s n=%d: gradients vs the reduced model %g, lp/entropy %g", tn, n, ge, lpe);
                printf("%-6s n=%-4d gradients vs the reduced-vocabulary model: max rel err %.2g (lp/entropy %.2g)\n",
                       tn, n, ge, lpe);
                int nfd = 0;
                double fe = check_grads_fd(&m, &nfd);
                CHECK(fe < 2e-2, "%s n=%d: finite differences %g", tn, n, fe);
                printf("%-6s n=%-4d finite differences (%d probes, through refresh): max rel err %.2g\n", tn, n, nfd, fe);
            }
        }

        // a target outside the list is an error naming it; the full vocabulary comes back with n = 0
        REQUIRE(qwen3_set_output_vocab(&m, lists[1], 37) == 0, "set");
        int32_t ids[4] = {lists[1][0], lists[1][1], 0, lists[1][2]};
        for (int id = 0; listed(lists[1], 37, ids[2]); id++) ids[2] = id;
        uint8_t mask[4] = {0, 1, 1, 1};
        qwen3_batch_t bt = {1, 4, ids, NULL, mask};
        qwen3_train_t tr;
        float lp[4];
        REQUIRE(qwen3_train_init(&tr, &m, 1, 4, 0) == 0, "init");
        char want[128];
        snprintf(want, sizeof want, "target id %d at [0][2] is not in the model's output vocabulary", ids[2]);
        CHECK(qwen3_train_forward(&m, &tr, &bt, 1.0f, lp, NULL) == -1 && strstr(err_msg(), want),
              "unlisted target: %s", err_msg());
        printf("unlisted target -> %s\n", err_msg());
        mask[2] = 0;
        CHECK(qwen3_train_forward(&m, &tr, &bt, 1.0f, lp, NULL) == 2, "unlisted input: %s", err_msg());
        REQUIRE(qwen3_set_output_vocab(&m, NULL, 0) == 0 && m.out_n == 0, "clear");
        qwen3_t g;
        REQUIRE(qwen3_grads_init(&g, &m) == 0, "grads");
        CHECK(qwen3_train_backward(&m, &tr, lp, &g) == -1 && strstr(err_msg(), "restriction changed"),
              "backward after the restriction changed: %s", err_msg());
        mask[2] = 1;
        CHECK(qwen3_train_forward(&m, &tr, &bt, 1.0f, lp, NULL) == 3, "full vocabulary again: %s", err_msg());
        qwen3_train_free(&tr);
        qwen3_free(&g);
        qwen3_free(&m);
    }
    for (int k = 0; k < 3; k++) free(lists[k]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return test_exit("test_vocab");
}
