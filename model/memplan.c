// Device memory plan of one role (memplan.h): every buffer's bytes in one table.
#include "memplan.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"

#define GIB ((double)(1ll << 30))
#define MIB (1ll << 20)

void memplan_opts_default(memplan_opts_t *o, memplan_role_t role) {
    memset(o, 0, sizeof *o);
    o->role = role;
    o->gpu_gib = 80;
    o->weight_bytes = 2;
    o->master_bytes = 4;
    o->adam_bytes = 4;
    o->grad_bytes = 4;
    o->act_bytes = 2;
    o->kv_bytes = 2;
    o->seq_len = 8192;
    o->micro_tokens = 16384;
    o->checkpointing = 1;
    o->out_vocab = 0;
    o->chunk_rows = 32; // qwen3_train.c DEFAULT_CHUNK_ROWS
    o->learners = 1;
    o->zero_stage = 0;
    o->kv_tokens = 0;
    o->page_size = 16; // engine.c default
    o->max_seqs = 64;
    o->batch_tokens = 2048;
    // cuBLAS API reference (cublasSetWorkspace): 32 MiB recommended on Hopper, 4 MiB before it
    o->cublas_workspace = 32 * MIB;
    // measured on an H100 80GB HBM3 with CUDA 13.0 (cudaMemGetInfo): context 527 MiB + cuBLAS
    // handle 68 MiB = 595 MiB; rounded up (docs/gpu-memory.md)
    o->context_reserve = 640 * MIB;
}

static const char *ROLE_NAMES[] = {"learner", "rollout", "sim"};

const char *memplan_role_name(memplan_role_t role) {
    return role >= 0 && role <= MEMPLAN_SIM ? ROLE_NAMES[role] : "?";
}

int memplan_role_parse(const char *s, memplan_role_t *role) {
    for (int i = 0; i <= MEMPLAN_SIM; i++)
        if (strcmp(s, ROLE_NAMES[i]) == 0) {
            *role = (memplan_role_t)i;
            return 0;
        }
    return err_set("role: expected learner, rollout or sim, found \"%s\"", s);
}

int memplan_preset(qwen3_config_t *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 1000000;
    c->max_position_embeddings = 40960;
    c->bos_token_id = -1;
    c->eos_token_id = 151645;
    c->vocab_size = 151936;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "bfloat16");
    if (strcmp(name, "qwen3-8b") == 0) { // huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
        c->hidden_size = 4096;
        c->intermediate_size = 12288;
        c->num_hidden_layers = 36;
        c->num_attention_heads = 32;
        c->num_key_value_heads = 8;
        c->head_dim = 128;
        c->tie_word_embeddings = 0;
    } else if (strcmp(name, "qwen3-0.6b") == 0) { // huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json
        c->hidden_size = 1024;
        c->intermediate_size = 3072;
        c->num_hidden_layers = 28;
        c->num_attention_heads = 16;
        c->num_key_value_heads = 8;
        c->head_dim = 128;
        c->tie_word_embeddings = 1;
    } else if (strcmp(name, "laptop") == 0) { // trustee train --preset laptop (cmd/train_settings.c)
        c->hidden_size = 128;
        c->intermediate_size = 384;
        c->num_hidden_layers = 2;
        c->num_attention_heads = 4;
        c->num_key_value_heads = 2;
        c->head_dim = 32;
        c->tie_word_embeddings = 1;
    } else {
        return err_set("preset: expected qwen3-8b, qwen3-0.6b or laptop, found \"%s\"", name);
    }
    return 0;
}

int64_t memplan_layer_params(const qwen3_config_t *c) {
    const int64_t C = c->hidden_size, I = c->intermediate_size, Hq = c->num_attention_heads;
    const int64_t Hkv = c->num_key_value_heads, D = c->head_dim;
    return 2 * C                 // input_layernorm, post_attention_layernorm
           + C * Hq * D          // q_proj (Hq*D, C)
           + 2 * C * Hkv * D     // k_proj, v_proj (Hkv*D, C)
           + Hq * D * C          // o_proj (C, Hq*D)
           + 2 * D               // q_norm, k_norm (D)
           + 3 * C * I;          // gate_proj, up_proj (I, C), down_proj (C, I)
}

int64_t memplan_param_count(const qwen3_config_t *c) {
    const int64_t C = c->hidden_size, V = c->vocab_size;
    return V * C * (c->tie_word_embeddings ? 1 : 2) + (int64_t)c->num_hidden_layers * memplan_layer_params(c) + C;
}

// ---------------------------------------------------------------------------------------------

static void add(memplan_t *p, int counted, const char *name, int64_t bytes, const char *fmt, ...) {
    if (p->n >= MEMPLAN_MAX_ENTRIES) return; // cannot happen: the roles add fewer (see the test)
    memplan_entry_t *e = &p->e[p->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->formula, sizeof e->formula, fmt, ap);
    va_end(ap);
    e->bytes = bytes;
    e->counted = counted;
    if (counted) p->total += bytes;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int check_opts(const memplan_opts_t *o) {
    const struct { const char *name; int64_t v; int64_t lo; } pos[] = {
        {"weight bytes", o->weight_bytes, 1}, {"grad bytes", o->grad_bytes, 1},
        {"activation bytes", o->act_bytes, 1}, {"KV bytes", o->kv_bytes, 1},
        {"adam bytes", o->adam_bytes, 1},      {"master bytes", o->master_bytes, 0},
        {"seq-len", o->seq_len, 1},            {"micro-tokens", o->micro_tokens, 1},
        {"chunk rows", o->chunk_rows, 1},      {"learners", o->learners, 1},
        {"out-vocab", o->out_vocab, 0},        {"kv-tokens", o->kv_tokens, 0},
        {"page-size", o->page_size, 1},        {"max-seqs", o->max_seqs, 1},
        {"batch-tokens", o->batch_tokens, 1},  {"cublas workspace", o->cublas_workspace, 0},
        {"context reserve", o->context_reserve, 0},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v < pos[i].lo)
            return err_set("memplan: %s is %lld, expected >= %lld", pos[i].name, (long long)pos[i].v,
                           (long long)pos[i].lo);
    if (o->zero_stage < 0 || o->zero_stage > 2)
        return err_set("memplan: zero stage %d, expected 0, 1 or 2", o->zero_stage);
    if (o->role < MEMPLAN_LEARNER || o->role > MEMPLAN_SIM) return err_set("memplan: unknown role %d", (int)o->role);
    if (!(o->gpu_gib > 0) || o->gpu_gib > 1e6) return err_set("memplan: gpu-gib %g, expected > 0", o->gpu_gib);
    if (o->micro_tokens > ((int64_t)1 << 34) || o->kv_tokens > ((int64_t)1 << 34) ||
        o->batch_tokens > ((int64_t)1 << 34))
        return err_set("memplan: token counts above 2^34 are not plausible");
    return 0;
}

// the learner's table for micro_tokens N (no search)
static void fill_learner(memplan_t *p) {
    const qwen3_config_t *c = &p->cfg;
    const memplan_opts_t *o = &p->opts;
    const int64_t C = c->hidden_size, I = c->intermediate_size, L = c->num_hidden_layers;
    const int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    const int64_t V = c->vocab_size, W = o->out_vocab > 0 ? o->out_vocab : V;
    const int64_t P = p->n_params, N = o->micro_tokens, R = N; // R: loss rows, at most N
    const int64_t B = ceil_div(N, o->seq_len);                   // sequences of a micro-batch
    const int64_t w = o->weight_bytes, g = o->grad_bytes, a = o->act_bytes;
    const int64_t s_opt = o->zero_stage >= 1 ? o->learners : 1, s_grad = o->zero_stage >= 2 ? o->learners : 1;

    add(p, 1, "weights", P * w, "P x w");
    if (o->master_bytes > 0)
        add(p, 1, "master weights", ceil_div(P, s_opt) * o->master_bytes, "P x %d / s1", o->master_bytes);
    add(p, 1, "adam m", ceil_div(P, s_opt) * o->adam_bytes, "P x %d / s1", o->adam_bytes);
    add(p, 1, "adam v", ceil_div(P, s_opt) * o->adam_bytes, "P x %d / s1", o->adam_bytes);
    add(p, 1, "grads", ceil_div(P, s_grad) * g, "P x g / s2");
    if (o->zero_stage >= 2 && o->learners > 1) { // a full gradient of the largest tensor before reduce-scatter
        int64_t big = V * C > memplan_layer_params(c) ? V * C : memplan_layer_params(c);
        add(p, 1, "grad bucket (ZeRO-2)", big * g, "max(V x C, one layer's params) x g");
    }
    if (o->out_vocab > 0) {
        add(p, 1, "W_sub (restricted head)", W * C * w, "W x C x w");
        add(p, 1, "d W_sub", W * C * g, "W x C x g");
    }
    const int64_t per_layer = 4 * C + 3 * Hq * D + 3 * Hkv * D + 2 * I; // the 12 saved tensors
    if (o->checkpointing) {
        add(p, 1, "activations: layer inputs", L * N * C * a, "L x N x C x a (x_in per layer)");
        add(p, 1, "activations: recompute", N * (per_layer - C) * a, "N x (3C + 3Hq*D + 3Hkv*D + 2I) x a");
    } else {
        add(p, 1, "activations: saved", L * N * per_layer * a, "L x N x (4C + 3Hq*D + 3Hkv*D + 2I) x a");
    }
    add(p, 1, "forward buffers", N * (2 * C + I) * a, "N x (2C + I) x a (x, xb, hb)");
    add(p, 1, "backward buffers", N * (2 * C + 2 * Hq * D + 2 * Hkv * D + 2 * I) * a,
        "N x (2C + 2Hq*D + 2Hkv*D + 2I) x a");
    add(p, 1, "loss rows", R * 3 * C * a + R * 3 * 4, "R x 3C x a + R x 3 x 4 (xl, xn, dxn; lp, ent, dlp)");
    add(p, 1, "index tensors", N * 4 * 4 + B * 4 * 4, "N x 4 x 4 + B x 4 x 4 (ids, pos, rows, targets)");
    add(p, 1, "attention workspace", N * Hq * 4 + N * Hq * D * 4, "N x Hq x 4 + N x Hq x D x 4 (LSE, fp32 dq)");
    // allocated (rows, V) even under a restriction (the first W columns are used)
    const int64_t rows = o->chunk_rows < R ? o->chunk_rows : R; // qwen3_train_init: min(32, R)
    add(p, 1, "logits chunk", rows * V * 4, "rows x V x 4");
    add(p, 1, "cuBLAS workspace", o->cublas_workspace, "32 MiB (Hopper)");
    add(p, 1, "CUDA context reserve", o->context_reserve, "context + modules (measured)");
    add(p, 0, "full logits", N * W * 4, "N x W x 4: chunked instead");
    if (o->checkpointing)
        add(p, 0, "activations, no checkpoint", L * N * per_layer * a, "L x N x (4C + 3Hq*D + 3Hkv*D + 2I) x a");
}

// rollout actor / simulator: weights, one forward's buffers, logits, KV cache of kv tokens
static void fill_inference(memplan_t *p, int64_t kv_tokens) {
    const qwen3_config_t *c = &p->cfg;
    const memplan_opts_t *o = &p->opts;
    const int64_t C = c->hidden_size, I = c->intermediate_size;
    const int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    const int64_t V = c->vocab_size, W = o->out_vocab > 0 ? o->out_vocab : V;
    const int64_t N = o->batch_tokens, R = o->max_seqs, B = o->max_seqs;
    const int64_t MP = ceil_div(o->seq_len, o->page_size), a = o->act_bytes;
    add(p, 1, "weights", p->n_params * o->weight_bytes, "P x w");
    if (o->out_vocab > 0) add(p, 1, "W_sub (restricted head)", W * C * o->weight_bytes, "W x C x w");
    add(p, 1, "forward buffers", N * (2 * C + 2 * Hq * D + 2 * Hkv * D + 2 * I) * a,
        "N x (2C + 2Hq*D + 2Hkv*D + 2I) x a");
    // qwen3_state_init allocates (R, V) even under a restriction (the first W columns are used)
    add(p, 1, "logits (decode rows)", R * V * 4 + R * C * a, "R x V x 4 + R x C x a");
    add(p, 1, "index tensors", N * 3 * 4 + R * 4 + B * (3 + MP) * 4, "N x 3 x 4 + R x 4 + B x (3 + MP) x 4");
    add(p, 1, "attention workspace", 0, "none: partials in shared memory");
    add(p, 1, "KV cache", kv_tokens * p->kv_bytes_per_token, "2 x L x Hkv x D x T x kv");
    add(p, 1, "cuBLAS workspace", o->cublas_workspace, "32 MiB (Hopper)");
    add(p, 1, "CUDA context reserve", o->context_reserve, "context + modules (measured)");
}

static void fill(memplan_t *p, int64_t kv_tokens) {
    p->n = 0;
    p->total = 0;
    if (p->opts.role == MEMPLAN_LEARNER) fill_learner(p);
    else fill_inference(p, kv_tokens);
}

int memplan_compute(memplan_t *p, const qwen3_config_t *c, const memplan_opts_t *o) {
    memset(p, 0, sizeof *p);
    if (qwen3_config_validate(c, "memplan config") || check_opts(o)) return -1;
    p->cfg = *c;
    p->opts = *o;
    p->n_params = memplan_param_count(c);
    p->capacity = (int64_t)llround(o->gpu_gib * GIB);
    p->kv_bytes_per_token = 2 * (int64_t)c->num_hidden_layers * c->num_key_value_heads * c->head_dim * o->kv_bytes;
    if (o->role == MEMPLAN_LEARNER) {
        // the largest micro-batch: every N-dependent line grows with N, so bisect
        int64_t lo = 0, hi = (int64_t)1 << 32;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo + 1) / 2;
            p->opts.micro_tokens = mid;
            fill(p, 0);
            if (p->total <= p->capacity) lo = mid;
            else hi = mid - 1;
        }
        p->max_micro_tokens = lo;
        p->opts.micro_tokens = o->micro_tokens;
        fill(p, 0);
        p->fits = p->total <= p->capacity;
        return 0;
    }
    fill(p, 0); // everything but the KV cache
    const int64_t S = o->page_size, room = p->capacity - p->total;
    p->kv_max_tokens = room > 0 ? room / p->kv_bytes_per_token / S * S : 0;
    if (o->kv_tokens > 0) {
        fill(p, ceil_div(o->kv_tokens, S) * S);
        p->fits = p->total <= p->capacity;
    } else {
        fill(p, p->kv_max_tokens);
        p->fits = p->kv_max_tokens >= o->seq_len; // at least one whole sequence
    }
    return 0;
}

int64_t memplan_bytes(const memplan_t *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].name, name) == 0) return p->e[i].bytes;
    return -1;
}

void memplan_print(const memplan_t *p, FILE *f) {
    const qwen3_config_t *c = &p->cfg;
    const memplan_opts_t *o = &p->opts;
    const int learner = o->role == MEMPLAN_LEARNER;
    const int64_t W = o->out_vocab > 0 ? o->out_vocab : c->vocab_size;
    fprintf(f, "memory plan: role %s, %.2f GiB device\n", memplan_role_name(o->role), o->gpu_gib);
    fprintf(f, "model: P = %lld params (%.3f B), C=%d I=%d L=%d Hq=%d Hkv=%d D=%d V=%d W=%lld %s\n",
            (long long)p->n_params, p->n_params / 1e9, c->hidden_size, c->intermediate_size,
            c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, c->head_dim,
            c->vocab_size, (long long)W, c->tie_word_embeddings ? "tied" : "untied");
    if (learner) {
        int s1 = o->zero_stage >= 1 ? o->learners : 1, s2 = o->zero_stage >= 2 ? o->learners : 1;
        fprintf(f, "settings: N=%lld micro tokens (R=N loss rows, B=%lld seqs of %d), checkpointing %s, "
                   "w=%d g=%d a=%d bytes, master %d, adam %d, learners %d, ZeRO-%d (s1=%d s2=%d)\n",
                (long long)o->micro_tokens, (long long)ceil_div(o->micro_tokens, o->seq_len), o->seq_len,
                o->checkpointing ? "on" : "off", o->weight_bytes, o->grad_bytes, o->act_bytes,
                o->master_bytes, o->adam_bytes, o->learners, o->zero_stage, s1, s2);
    } else {
        fprintf(f, "settings: N=%lld rows per forward, R=B=%d sequences, T=KV tokens, pages of %d, "
                   "w=%d a=%d kv=%d bytes, KV %lld bytes/token\n",
                (long long)o->batch_tokens, o->max_seqs, o->page_size, o->weight_bytes, o->act_bytes,
                o->kv_bytes, (long long)p->kv_bytes_per_token);
    }
    fprintf(f, "%-28s %-52s %10s %10s\n", "buffer", "shape", "GiB", "GB");
    for (int i = 0; i < p->n; i++)
        if (p->e[i].counted)
            fprintf(f, "%-28s %-52s %10.3f %10.3f\n", p->e[i].name, p->e[i].formula, p->e[i].bytes / GIB,
                    p->e[i].bytes / 1e9);
    fprintf(f, "%-28s %-52s %10.3f %10.3f\n", "total", "", p->total / GIB, p->total / 1e9);
    fprintf(f, "%-28s %-52s %10.3f %10.3f\n", "device", "", p->capacity / GIB, p->capacity / 1e9);
    fprintf(f, "%-28s %-52s %10.3f %10.3f\n", p->capacity >= p->total ? "headroom" : "SHORT BY", "",
            llabs(p->capacity - p->total) / GIB, llabs(p->capacity - p->total) / 1e9);
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].counted)
            fprintf(f, "not allocated: %-28s %-44s %8.3f GiB\n", p->e[i].name, p->e[i].formula, p->e[i].bytes / GIB);
    if (learner) {
        fprintf(f, "largest micro-batch that fits: %lld tokens\n", (long long)p->max_micro_tokens);
    } else {
        int64_t T = memplan_bytes(p, "KV cache") / p->kv_bytes_per_token;
        fprintf(f, "KV cache: %lld tokens = %lld pages of %d = %lld sequences of %d tokens%s\n", (long long)T,
                (long long)(T / o->page_size), o->page_size, (long long)(T / o->seq_len), o->seq_len,
                o->kv_tokens > 0 ? "" : " (the largest that fits)");
        fprintf(f, "largest KV cache that fits: %lld tokens (%.3f GiB) = %lld sequences of %d tokens\n",
                (long long)p->kv_max_tokens, p->kv_max_tokens * p->kv_bytes_per_token / GIB,
                (long long)(p->kv_max_tokens / o->seq_len), o->seq_len);
    }
    fprintf(f, "%s\n", p->fits ? "fits" : "DOES NOT FIT");
}

void memplan_shortfall(const memplan_t *p, char *buf, size_t cap) {
    int64_t need = p->total;
    if (p->opts.role != MEMPLAN_LEARNER && p->opts.kv_tokens == 0) // auto KV: one sequence must fit
        need = p->total - memplan_bytes(p, "KV cache") + p->opts.seq_len * p->kv_bytes_per_token;
    int n = snprintf(buf, cap, "needs %.1f GiB of %.4g GiB:", need / GIB, p->opts.gpu_gib);
    // the three largest counted lines
    int used[MEMPLAN_MAX_ENTRIES] = {0};
    for (int k = 0; k < 3; k++) {
        int best = -1;
        for (int i = 0; i < p->n; i++)
            if (p->e[i].counted && !used[i] && (best < 0 || p->e[i].bytes > p->e[best].bytes)) best = i;
        if (best < 0 || p->e[best].bytes == 0) break;
        used[best] = 1;
        if (n >= 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - n, "%s %s %.1f GiB", k ? "," : "", p->e[best].name, p->e[best].bytes / GIB);
    }
    const char *hint = p->opts.role != MEMPLAN_LEARNER ? "; lower --kv-tokens, --max-seqs or --batch-tokens"
                       : p->opts.checkpointing ? "; shard the optimizer state (--learners L --zero 1|2) or lower "
                                                 "--micro-tokens"
                                               : "; shard the optimizer state (--learners L --zero 1|2), turn on "
                                                 "--checkpointing 1, or lower --micro-tokens";
    if (n >= 0 && (size_t)n < cap) snprintf(buf + n, cap - n, "%s", hint);
}
