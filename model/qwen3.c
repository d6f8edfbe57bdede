// Qwen3 weights and forward pass (qwen3.h). The forward reads top to bottom like llama2.c:
//   embed -> per layer [rmsnorm -> q,k,v proj -> q_norm/k_norm -> RoPE -> kv_store -> paged
//   attention -> o_proj (+ residual) -> rmsnorm -> gate/up -> swiglu -> down (+ residual)]
//   -> gather the rows that want logits -> final norm -> lm_head (or W_sub: the listed rows only)
#include "qwen3.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"
#include "qwen3_internal.h"
#include "safetensors.h"

// ---------------------------------------------------------------------------------------------
// weights

// one tensor of the checkpoint, checked against its expected shape, converted to F32 on `dev`
static int load_weight(const st_set_t *set, const char *name, int ndim, int64_t d0, int64_t d1,
                       device_t dev, tensor_t *out) {
    int64_t shape[2] = {d0, d1};
    const st_tensor_t *st = st_set_get(set, name, ndim, shape);
    if (!st) return -1;
    if (st->dtype == DTYPE_I32) return err_set("tensor %s: expected a float dtype, found I32", name);
    tensor_t src = tensor_view((void *)st->data, st->dtype, DEVICE_CPU, ndim, shape);
    if (tensor_alloc(out, DTYPE_F32, dev, ndim, shape) || tensor_copy(out, &src))
        return err_wrap("tensor %s: ", name);
    return 0;
}

int qwen3_load(qwen3_t *m, const char *dir, device_t device) {
    memset(m, 0, sizeof *m);
    m->device = device;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (qwen3_config_load(&m->cfg, path)) return -1;
    const qwen3_config_t *c = &m->cfg;
    int64_t V = c->vocab_size, C = c->hidden_size, I = c->intermediate_size;
    int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;

    st_set_t set;
    if (st_set_open_dir(&set, dir)) return -1;
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof(qwen3_layer_t));
    if (!m->layers) {
        st_set_close(&set);
        return err_set("%s: out of memory", dir);
    }
    int rc = load_weight(&set, "model.embed_tokens.weight", 2, V, C, device, &m->embed);
    if (!rc) rc = load_weight(&set, "model.norm.weight", 1, C, 0, device, &m->final_norm);
    if (!rc) {
        if (c->tie_word_embeddings) {
            m->lm_head = m->embed;
            m->lm_head.owned = 0; // a view
        } else {
            rc = load_weight(&set, "lm_head.weight", 2, V, C, device, &m->lm_head);
        }
    }
    for (int l = 0; l < c->num_hidden_layers && !rc; l++) {
        qwen3_layer_t *ly = &m->layers[l];
        char name[256];
#define LOAD(field, suffix, nd, a, b)                                                            \
    if (!rc) {                                                                                   \
        snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                            \
        rc = load_weight(&set, name, nd, a, b, device, &ly->field);                              \
    }
        LOAD(input_norm, "input_layernorm.weight", 1, C, 0);
        LOAD(wq, "self_attn.q_proj.weight", 2, Hq * D, C);
        LOAD(wk, "self_attn.k_proj.weight", 2, Hkv * D, C);
        LOAD(wv, "self_attn.v_proj.weight", 2, Hkv * D, C);
        LOAD(wo, "self_attn.o_proj.weight", 2, C, Hq * D);
        LOAD(q_norm, "self_attn.q_norm.weight", 1, D, 0);
        LOAD(k_norm, "self_attn.k_norm.weight", 1, D, 0);
        LOAD(post_norm, "post_attention_layernorm.weight", 1, C, 0);
        LOAD(w_gate, "mlp.gate_proj.weight", 2, I, C);
        LOAD(w_up, "mlp.up_proj.weight", 2, I, C);
        LOAD(w_down, "mlp.down_proj.weight", 2, C, I);
#undef LOAD
    }
    st_set_close(&set);
    if (rc) {
        qwen3_free(m);
        return -1;
    }
    return 0;
}

// a 64-bit hash of a counter (splitmix64's finalizer): the random weights are a pure function of
// (seed, tensor, element), so they can be generated in parallel and in chunks
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// fills tensor t (any device, any float dtype) with uniform(-a, a) values, or `value` when a == 0;
// F32 values are generated on the host in chunks and converted into t by tensor_copy
static int fill_random(tensor_t *t, uint64_t seed, uint64_t k, float a, float value) {
    const int64_t n = tensor_numel(t), chunk = (int64_t)1 << 22;
    const int direct = t->device == DEVICE_CPU && t->dtype == DTYPE_F32;
    float *buf = direct ? t->data : malloc((size_t)(n < chunk ? n : chunk) * sizeof(float));
    if (!buf) return err_set("qwen3_init_random: out of memory");
    const uint64_t base = mix64(seed ^ mix64(k + 1));
    int rc = 0;
    for (int64_t i0 = 0; i0 < n && !rc; i0 += direct ? n : chunk) {
        int64_t m = direct ? n : (n - i0 < chunk ? n - i0 : chunk);
#pragma omp parallel for if (m > (1 << 16))
        for (int64_t j = 0; j < m; j++) { // element i0 + j
            // 24 random bits -> u in [0, 1), exact in F32; the value is (2u - 1) a
            float u = (float)(mix64(base + (uint64_t)(i0 + j)) >> 40) * (1.0f / 16777216.0f);
            buf[j] = a > 0 ? (2.0f * u - 1.0f) * a : value;
        }
        if (!direct) {
            tensor_t src = tensor_view(buf, DTYPE_F32, DEVICE_CPU, 1, &m);
            tensor_t dst_t = tensor_view((char *)t->data + (size_t)i0 * dtype_size(t->dtype), t->dtype,
                                         t->device, 1, &m);
            rc = tensor_copy(&dst_t, &src);
        }
    }
    if (!direct) free(buf);
    return rc;
}

int qwen3_init_random(qwen3_t *m, const qwen3_config_t *cfg, device_t device, dtype_t dtype,
                      uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (qwen3_config_validate(cfg, "qwen3_init_random")) return -1;
    if (dtype != DTYPE_F32 && dtype != DTYPE_BF16 && dtype != DTYPE_F16)
        return err_set("qwen3_init_random: weights must be F32, BF16 or F16, found %s", dtype_name(dtype));
    m->cfg = *cfg;
    m->device = device;
    const qwen3_config_t *c = &m->cfg;
    int64_t V = c->vocab_size, C = c->hidden_size, I = c->intermediate_size;
    int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof(qwen3_layer_t));
    if (!m->layers) return err_set("qwen3_init_random: out of memory");
    const float a = 0.02f * 1.7320508f; // uniform(-a, a) has std a / sqrt(3) = 0.02
    uint64_t k = 0;                     // tensor counter (qwen3_free's order)
    int rc = 0;
#define MAKE(t, a0, a1, nd, is_norm)                                                                 if (!rc) {                                                                                           rc = tensor_alloc(&(t), dtype, device, nd, (int64_t[]){a0, a1}) ||                                    fill_random(&(t), seed, k, (is_norm) ? 0.0f : a, 1.0f);                                     k++;                                                                                         }
    MAKE(m->embed, V, C, 2, 0);
    MAKE(m->final_norm, C, 0, 1, 1);
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
        m->lm_head.owned = 0; // a view
        k++;
    } else {
        MAKE(m->lm_head, V, C, 2, 0);
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        qwen3_layer_t *ly = &m->layers[l];
        MAKE(ly->input_norm, C, 0, 1, 1);
        MAKE(ly->wq, Hq * D, C, 2, 0);
        MAKE(ly->wk, Hkv * D, C, 2, 0);
        MAKE(ly->wv, Hkv * D, C, 2, 0);
        MAKE(ly->wo, C, Hq * D, 2, 0);
        MAKE(ly->q_norm, D, 0, 1, 1);
        MAKE(ly->k_norm, D, 0, 1, 1);
        MAKE(ly->post_norm, C, 0, 1, 1);
        MAKE(ly->w_gate, I, C, 2, 0);
        MAKE(ly->w_up, I, C, 2, 0);
        MAKE(ly->w_down, C, I, 2, 0);
    }
#undef MAKE
    if (rc) {
        qwen3_free(m);
        return err_wrap("qwen3_init_random (%s on %s): ", dtype_name(dtype),
                        device == DEVICE_CUDA ? "CUDA" : "CPU");
    }
    return 0;
}

// drops the output restriction (qwen3_set_output_vocab)
static void output_vocab_clear(qwen3_t *m) {
    free(m->out_ids);
    free(m->out_pos);
    tensor_free(&m->out_ids_t);
    tensor_free(&m->lm_head_sub);
    m->out_ids = m->out_pos = NULL;
    m->out_n = 0;
}

int qwen3_set_output_vocab(qwen3_t *m, const int32_t *ids, int n) {
    const int V = m->cfg.vocab_size;
    const int64_t C = m->cfg.hidden_size;
    output_vocab_clear(m);
    if (n == 0 || !ids) return 0;
    if (n < 0 || n > V) return err_set("qwen3_set_output_vocab: %d ids, expected 0 .. %d", n, V);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V || (i > 0 && ids[i] <= ids[i - 1]))
            return err_set("qwen3_set_output_vocab: id %" PRId32 " at position %d is outside [0, %d) or "
                           "not above the one before (the list must be ascending and unique)", ids[i], i, V);
    m->out_ids = malloc((size_t)n * sizeof(int32_t));
    m->out_pos = malloc((size_t)V * sizeof(int32_t));
    int rc = m->out_ids && m->out_pos ? 0 : err_set("out of memory");
    if (!rc) {
        memcpy(m->out_ids, ids, (size_t)n * sizeof(int32_t));
        for (int i = 0; i < V; i++) m->out_pos[i] = -1;
        for (int i = 0; i < n; i++) m->out_pos[ids[i]] = i;
        int64_t n64 = n;
        tensor_t host = tensor_view(m->out_ids, DTYPE_I32, DEVICE_CPU, 1, &n64);
        rc = tensor_alloc(&m->out_ids_t, DTYPE_I32, m->device, 1, &n64) || tensor_copy(&m->out_ids_t, &host) ||
             tensor_alloc(&m->lm_head_sub, m->lm_head.dtype, m->device, 2, (int64_t[]){n, C});
    }
    m->out_n = n;
    if (rc || qwen3_output_vocab_refresh(m)) {
        output_vocab_clear(m);
        return err_wrap("qwen3_set_output_vocab (%d ids): ", n);
    }
    return 0;
}

int qwen3_output_vocab_refresh(qwen3_t *m) {
    if (m->out_n == 0) return 0;
    // W_sub (n, C) = lm_head (V, C)[out_ids]: a row gather
    return op_embedding(&m->lm_head_sub, &m->lm_head, &m->out_ids_t) ? err_wrap("qwen3_output_vocab_refresh: ") : 0;
}

void qwen3_free(qwen3_t *m) {
    output_vocab_clear(m);
    tensor_free(&m->embed);
    tensor_free(&m->final_norm);
    tensor_free(&m->lm_head); // no-op for the tied view
    if (m->layers)
        for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
            qwen3_layer_t *ly = &m->layers[l];
            tensor_t *ts[] = {&ly->input_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->q_norm,
                              &ly->k_norm, &ly->post_norm, &ly->w_gate, &ly->w_up, &ly->w_down};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
        }
    free(m->layers);
    memset(m, 0, sizeof *m);
}

int qwen3_kvcache_init(const qwen3_t *m, kvcache_t *kv, int n_pages, int page_size, int max_seqs,
                       int max_seq_len) {
    return kvcache_init(kv, m->cfg.num_hidden_layers, m->cfg.num_key_value_heads, m->cfg.head_dim,
                        n_pages, page_size, max_seqs, max_seq_len, m->device);
}

// ---------------------------------------------------------------------------------------------
// activations

int qwen3_state_init(qwen3_state_t *s, const qwen3_t *m, const kvcache_t *kv, int max_tokens,
                     int max_seqs, int max_logits) {
    memset(s, 0, sizeof *s);
    if (max_tokens <= 0 || max_seqs <= 0 || max_logits <= 0)
        return err_set("qwen3_state_init: sizes must be positive (tokens %d, sequences %d, logits %d)",
                       max_tokens, max_seqs, max_logits);
    const qwen3_config_t *c = &m->cfg;
    int64_t N = max_tokens, B = max_seqs, R = max_logits, MP = kv->max_pages_per_seq;
    int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    s->max_tokens = max_tokens;
    s->max_seqs = max_seqs;
    s->max_logits = max_logits;
    s->max_pages = kv->max_pages_per_seq;
    s->logits_cols = (int)V;
    device_t dev = m->device;
    struct { tensor_t *t; dtype_t dt; int nd; int64_t a, b, c; } plan[] = {
        {&s->x, DTYPE_F32, 2, N, C, 0},       {&s->xb, DTYPE_F32, 2, N, C, 0},
        {&s->q, DTYPE_F32, 3, N, Hq, D},      {&s->k, DTYPE_F32, 3, N, Hkv, D},
        {&s->v, DTYPE_F32, 3, N, Hkv, D},     {&s->att, DTYPE_F32, 3, N, Hq, D},
        {&s->hb, DTYPE_F32, 2, N, I, 0},      {&s->hb2, DTYPE_F32, 2, N, I, 0},
        {&s->xl, DTYPE_F32, 2, R, C, 0},      {&s->logits, DTYPE_F32, 2, R, V, 0},
        {&s->ids, DTYPE_I32, 1, N, 0, 0},     {&s->pos, DTYPE_I32, 1, N, 0, 0},
        {&s->slots, DTYPE_I32, 1, N, 0, 0},   {&s->rows, DTYPE_I32, 1, R, 0, 0},
        {&s->seq_info, DTYPE_I32, 2, B, 3, 0}, {&s->page_table, DTYPE_I32, 2, B, MP, 0},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        int64_t shape[3] = {plan[i].a, plan[i].b, plan[i].c};
        if (tensor_alloc(plan[i].t, plan[i].dt, dev, plan[i].nd, shape)) {
            qwen3_state_free(s);
            return err_wrap("qwen3_state_init (%d tokens, %d logit rows): ", max_tokens, max_logits);
        }
    }
    if (dev == DEVICE_CPU) { // the index tensors and logits are host memory already
        s->h_ids = s->ids.data;
        s->h_pos = s->pos.data;
        s->h_slots = s->slots.data;
        s->h_rows = s->rows.data;
        s->h_seq_info = s->seq_info.data;
        s->h_page_table = s->page_table.data;
        s->h_logits = s->logits.data;
    } else {
        s->h_owned = 1;
        s->h_ids = malloc((size_t)N * 4);
        s->h_pos = malloc((size_t)N * 4);
        s->h_slots = malloc((size_t)N * 4);
        s->h_rows = malloc((size_t)R * 4);
        s->h_seq_info = malloc((size_t)B * 3 * 4);
        s->h_page_table = malloc((size_t)(B * MP) * 4);
        s->h_logits = malloc((size_t)(R * V) * 4);
        if (!s->h_ids || !s->h_pos || !s->h_slots || !s->h_rows || !s->h_seq_info ||
            !s->h_page_table || !s->h_logits) {
            qwen3_state_free(s);
            return err_set("qwen3_state_init: out of host memory");
        }
    }
    return 0;
}

void qwen3_state_free(qwen3_state_t *s) {
    tensor_t *ts[] = {&s->x, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->hb, &s->hb2, &s->xl,
                      &s->logits, &s->ids, &s->pos, &s->slots, &s->rows, &s->seq_info, &s->page_table};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
    if (s->h_owned) {
        free(s->h_ids);
        free(s->h_pos);
        free(s->h_slots);
        free(s->h_rows);
        free(s->h_seq_info);
        free(s->h_page_table);
        free(s->h_logits);
    }
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------------------------
// forward

// the first n rows of a buffer, keeping its other dims
static tensor_t first_rows(const tensor_t *t, int64_t n) {
    tensor_t v = tensor_view(t->data, t->dtype, t->device, t->ndim, t->shape);
    v.shape[0] = n;
    return v;
}

// a buffer's first `numel` elements seen as (a, b)
static tensor_t as_2d(const tensor_t *t, int64_t a, int64_t b) {
    return tensor_view(t->data, t->dtype, t->device, 2, (int64_t[]){a, b});
}

// host index array -> its tensor (a no-op on the CPU, where they are the same memory)
static int upload_i32(tensor_t *t, const int32_t *host, int64_t n) {
    if (t->data == host || n == 0) return 0;
    tensor_t src = tensor_view((void *)host, DTYPE_I32, DEVICE_CPU, 1, &n);
    tensor_t dst = tensor_view(t->data, DTYPE_I32, t->device, 1, &n);
    return tensor_copy(&dst, &src);
}

// checks the batch and reserves its KV slots; fills the host index arrays. Returns N, or -1 with
// the cache unchanged.
static int forward_plan(const qwen3_t *m, qwen3_state_t *s, kvcache_t *kv, const qwen3_chunk_t *chunks,
                        int n_chunks, int *n_rows_out) {
    const int V = m->cfg.vocab_size;
    if (n_chunks <= 0 || n_chunks > s->max_seqs)
        return err_set("qwen3_forward: %d chunks, expected 1..%d", n_chunks, s->max_seqs);
    if (kv->max_pages_per_seq != s->max_pages)
        return err_set("qwen3_forward: the state was sized for %d pages per sequence, the cache has %d",
                       s->max_pages, kv->max_pages_per_seq);
    int64_t N = 0, R = 0;
    for (int b = 0; b < n_chunks; b++) {
        const qwen3_chunk_t *ch = &chunks[b];
        if (kvcache_seq_len(kv, ch->seq) < 0)
            return err_set("qwen3_forward: chunk %d: no sequence %d in the KV cache", b, ch->seq);
        if (ch->n < 1 || ch->n_logits < 0 || ch->n_logits > ch->n)
            return err_set("qwen3_forward: chunk %d: %d tokens with %d logit rows (expected n >= 1, "
                           "0 <= n_logits <= n)", b, ch->n, ch->n_logits);
        for (int j = 0; j < b; j++)
            if (chunks[j].seq == ch->seq)
                return err_set("qwen3_forward: chunks %d and %d both extend sequence %d", j, b, ch->seq);
        for (int i = 0; i < ch->n; i++)
            if (ch->ids[i] < 0 || ch->ids[i] >= V)
                return err_set("token id %" PRId32 " is outside the vocabulary (size %d)", ch->ids[i], V);
        N += ch->n;
        R += ch->n_logits;
    }
    if (N > s->max_tokens || R > s->max_logits)
        return err_set("qwen3_forward: the batch has %" PRId64 " tokens and %" PRId64
                       " logit rows; the state holds at most %d and %d", N, R, s->max_tokens, s->max_logits);
    // reserve slots; undo everything if one sequence does not fit
    int64_t row = 0, r = 0;
    const int MP = s->max_pages;
    for (int b = 0; b < n_chunks; b++) {
        const qwen3_chunk_t *ch = &chunks[b];
        int start = kvcache_seq_len(kv, ch->seq);
        if (kvcache_seq_append(kv, ch->seq, ch->n, s->h_slots + row)) {
            for (int j = 0; j < b; j++) kvcache_seq_truncate(kv, chunks[j].seq, s->h_pos[s->h_seq_info[j * 3]]);
            return -1;
        }
        for (int i = 0; i < ch->n; i++) {
            s->h_ids[row + i] = ch->ids[i];
            s->h_pos[row + i] = start + i;
        }
        for (int i = ch->n - ch->n_logits; i < ch->n; i++) s->h_rows[r++] = (int32_t)(row + i);
        s->h_seq_info[b * 3] = (int32_t)row;
        s->h_seq_info[b * 3 + 1] = ch->n;
        s->h_seq_info[b * 3 + 2] = start + ch->n;
        const int32_t *pages = kvcache_seq_pages(kv, ch->seq);
        int np = kvcache_pages_for(kv, start + ch->n);
        for (int j = 0; j < MP; j++) s->h_page_table[b * MP + j] = j < np ? pages[j] : 0;
        row += ch->n;
    }
    *n_rows_out = (int)R;
    return (int)N;
}

// copies an activation into its save slot (skipped when not saved, or when it is the same memory)
static int save_copy(const tensor_t *dst, const tensor_t *src) {
    if (!dst->data || dst->data == src->data) return 0;
    tensor_t d = *dst;
    return tensor_copy(&d, src);
}

int qwen3_layer_forward(const qwen3_t *m, int l, qwen3_layer_io_t *io, const qwen3_layer_save_t *save) {
    const qwen3_config_t *c = &m->cfg;
    const qwen3_layer_t *w = &m->layers[l];
    const float eps = (float)c->rms_norm_eps;
    const int64_t N = io->x.shape[0], Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    const int64_t D = c->head_dim;
    tensor_t *x = &io->x, *xb = &io->xb, *q = &io->q, *k = &io->k, *v = &io->v, *att = &io->att;
    tensor_t *hb = &io->hb, *hb2 = &io->hb2;
    tensor_t q_heads = as_2d(q, N * Hq, D), k_heads = as_2d(k, N * Hkv, D); // QK-norm rows
    const int store = io->k_pool->data != k->data; // training: K/V rows are the pool already
    int rc = 0;
    // attention block: x += o_proj(attention(rope(norm(q)), rope(norm(k)), v))
    if (save) rc = save_copy(&save->x_in, x);
    rc = rc || op_rmsnorm(xb, x, &w->input_norm, eps)
      || op_matmul(q, xb, &w->wq, 0)
      || op_matmul(k, xb, &w->wk, 0)
      || op_matmul(v, xb, &w->wv, 0);
    if (save && !rc)
        rc = save_copy(&save->xn1, xb) || save_copy(&save->q_raw, q) || save_copy(&save->k_raw, k) ||
             save_copy(&save->v, v);
    rc = rc || op_rmsnorm(&q_heads, &q_heads, &w->q_norm, eps)
      || op_rmsnorm(&k_heads, &k_heads, &w->k_norm, eps)
      || op_rope(q, &io->pos, c->rope_theta)
      || op_rope(k, &io->pos, c->rope_theta)
      || (store && op_kv_store(io->k_pool, io->v_pool, k, v, &io->slots))
      || op_attention(att, q, io->k_pool, io->v_pool, &io->seq_info, &io->page_table);
    if (save && !rc) rc = save_copy(&save->q, q) || save_copy(&save->k, k) || save_copy(&save->att, att);
    rc = rc || op_matmul(x, att, &w->wo, 1);
    // MLP block: x += down(silu(gate(norm(x))) * up(norm(x)))
    if (save && !rc) rc = save_copy(&save->x_mid, x);
    rc = rc || op_rmsnorm(xb, x, &w->post_norm, eps)
      || op_matmul(hb, xb, &w->w_gate, 0)
      || op_matmul(hb2, xb, &w->w_up, 0);
    if (save && !rc) rc = save_copy(&save->xn2, xb) || save_copy(&save->gate, hb) || save_copy(&save->up, hb2);
    rc = rc || op_swiglu(hb, hb, hb2)
      || op_matmul(x, hb, &w->w_down, 1);
    return rc ? -1 : 0;
}

int qwen3_forward(const qwen3_t *m, qwen3_state_t *s, kvcache_t *kv, const qwen3_chunk_t *chunks,
                  int n_chunks) {
    const qwen3_config_t *c = &m->cfg;
    const int64_t V = c->vocab_size;
    const float eps = (float)c->rms_norm_eps;
    int R = 0;
    int N = forward_plan(m, s, kv, chunks, n_chunks, &R);
    if (N < 0) return -1;
    int B = n_chunks;
    const int64_t MP = s->max_pages;

    // the index tensors of this batch
    tensor_t ids = first_rows(&s->ids, N), pos = first_rows(&s->pos, N);
    tensor_t slots = first_rows(&s->slots, N), rows = first_rows(&s->rows, R);
    tensor_t seq_info = first_rows(&s->seq_info, B), page_table = first_rows(&s->page_table, B);
    int rc = upload_i32(&ids, s->h_ids, N) || upload_i32(&pos, s->h_pos, N) ||
             upload_i32(&slots, s->h_slots, N) || upload_i32(&rows, s->h_rows, R) ||
             upload_i32(&seq_info, s->h_seq_info, (int64_t)B * 3) ||
             upload_i32(&page_table, s->h_page_table, (int64_t)B * MP);

    // activations of this batch
    tensor_t x = first_rows(&s->x, N), xb = first_rows(&s->xb, N);            // (N, C)
    tensor_t q = first_rows(&s->q, N), att = first_rows(&s->att, N);          // (N, Hq, D)
    tensor_t k = first_rows(&s->k, N), v = first_rows(&s->v, N);              // (N, Hkv, D)
    tensor_t hb = first_rows(&s->hb, N), hb2 = first_rows(&s->hb2, N);        // (N, I)

    // token embeddings
    if (!rc) rc = op_embedding(&x, &m->embed, &ids);

    qwen3_layer_io_t io = {.x = x, .xb = xb, .q = q, .k = k, .v = v, .att = att, .hb = hb,
                           .hb2 = hb2, .pos = pos, .slots = slots, .seq_info = seq_info,
                           .page_table = page_table};
    for (int l = 0; l < c->num_hidden_layers && !rc; l++) {
        io.k_pool = &kv->k[l];
        io.v_pool = &kv->v[l];
        rc = qwen3_layer_forward(m, l, &io, NULL);
    }

    // logits only at the requested rows: gather them, final norm, lm_head. Under an output
    // restriction the head is W_sub and the rows are compact: (R, W) with W = n, the logits of
    // the listed ids (the buffer, sized (R, V), holds them).
    const int64_t W = m->out_n > 0 ? m->out_n : V;
    const tensor_t *head = m->out_n > 0 ? &m->lm_head_sub : &m->lm_head;
    s->logits_cols = (int)W;
    if (!rc && R > 0) {
        tensor_t xl = first_rows(&s->xl, R);                                            // (R, C)
        tensor_t logits = tensor_view(s->logits.data, DTYPE_F32, s->logits.device, 2, (int64_t[]){R, W});
        rc = op_embedding(&xl, &x, &rows) // a row gather
          || op_rmsnorm(&xl, &xl, &m->final_norm, eps)
          || op_matmul(&logits, &xl, head, 0);
        if (!rc && s->h_logits != s->logits.data) {
            tensor_t host = tensor_view(s->h_logits, DTYPE_F32, DEVICE_CPU, 2, (int64_t[]){R, W});
            rc = tensor_copy(&host, &logits);
        }
    }
    if (rc) { // undo the KV reservation, so the cache is as it was
        for (int b = 0; b < B; b++) kvcache_seq_truncate(kv, chunks[b].seq, s->h_pos[s->h_seq_info[b * 3]]);
        return err_wrap("qwen3_forward: ");
    }
    return R;
}
