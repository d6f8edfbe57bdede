// Qwen3 training forward and backward (qwen3_train.h). Reads top to bottom:
//   forward:  embed -> per layer qwen3_layer_forward (the inference code, saving activations)
//             -> gather the rows that predict a target -> final norm -> per chunk: lm_head
//             (W_sub under an output restriction), log-softmax gather (+ entropy)
//   backward: per chunk: lm_head again, d log-softmax, d lm_head (or d W_sub, scattered into the
//             lm_head rows after the last chunk), d hidden -> d final norm ->
//             scatter to the rows -> per layer, last to first: [recompute the layer when
//             checkpointing] d MLP block, d attention block -> d embedding
#include "qwen3_train.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"
#ifdef TRUSTEE_CUDA
#include "../kernels/cuda/cuda_ops.h"
#endif
#include "safetensors.h"

#define DEFAULT_CHUNK_ROWS 32

// ---------------------------------------------------------------------------------------------
// gradient containers and the parameter list

// sets a tensor's memory to 0 on its device
static int zero_tensor(tensor_t *t) {
    size_t n = tensor_nbytes(t);
    if (n == 0) return 0;
    if (t->device == DEVICE_CPU) {
        memset(t->data, 0, n);
        return 0;
    }
#ifdef TRUSTEE_CUDA
    return cuda_set_zero(t->data, n);
#else
    return err_set("a tensor is on CUDA, but trustee was built without CUDA");
#endif
}

// copies n bytes between host memory and a tensor's memory (nothing when they are the same memory)
static int to_device(tensor_t *t, const void *host, size_t n) {
    if (t->data == host || n == 0) return 0;
    int64_t n64 = (int64_t)n;
    tensor_t src = tensor_view((void *)host, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){n64 / 4});
    tensor_t dst = tensor_view(t->data, DTYPE_I32, t->device, 1, (int64_t[]){n64 / 4});
    return tensor_copy(&dst, &src); // 4-byte elements: I32 / F32 alike, copied as bytes
}
static int to_host(void *host, const tensor_t *t, size_t n) {
    if (t->data == host || n == 0) return 0;
    int64_t n64 = (int64_t)n;
    tensor_t src = tensor_view(t->data, DTYPE_I32, t->device, 1, (int64_t[]){n64 / 4});
    tensor_t dst = tensor_view(host, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){n64 / 4});
    return tensor_copy(&dst, &src);
}

static int alloc_like(tensor_t *g, const tensor_t *w) {
    return tensor_alloc(g, DTYPE_F32, w->device, w->ndim, w->shape);
}

int qwen3_grads_init(qwen3_t *g, const qwen3_t *m) {
    memset(g, 0, sizeof *g);
    g->cfg = m->cfg;
    g->device = m->device;
    const int L = m->cfg.num_hidden_layers;
    g->layers = calloc((size_t)L, sizeof(qwen3_layer_t));
    if (!g->layers) return err_set("qwen3_grads_init: out of memory");
    int rc = alloc_like(&g->embed, &m->embed) || alloc_like(&g->final_norm, &m->final_norm);
    if (!rc) {
        if (m->cfg.tie_word_embeddings) {
            g->lm_head = g->embed;
            g->lm_head.owned = 0; // a view: both parts add into one tensor
        } else {
            rc = alloc_like(&g->lm_head, &m->lm_head);
        }
    }
    for (int l = 0; l < L && !rc; l++) {
        const qwen3_layer_t *w = &m->layers[l];
        qwen3_layer_t *d = &g->layers[l];
        rc = alloc_like(&d->input_norm, &w->input_norm) || alloc_like(&d->wq, &w->wq) ||
             alloc_like(&d->wk, &w->wk) || alloc_like(&d->wv, &w->wv) || alloc_like(&d->wo, &w->wo) ||
             alloc_like(&d->q_norm, &w->q_norm) || alloc_like(&d->k_norm, &w->k_norm) ||
             alloc_like(&d->post_norm, &w->post_norm) || alloc_like(&d->w_gate, &w->w_gate) ||
             alloc_like(&d->w_up, &w->w_up) || alloc_like(&d->w_down, &w->w_down);
    }
    if (rc) {
        qwen3_free(g);
        return err_wrap("qwen3_grads_init: ");
    }
    return 0;
}

int qwen3_n_params(const qwen3_t *m) {
    return 2 + (m->cfg.tie_word_embeddings ? 0 : 1) + 11 * m->cfg.num_hidden_layers;
}

int qwen3_params(qwen3_t *m, qwen3_param_t *out, int cap) {
    int n = 0;
#define ADD(tensor, ...)                                                                         \
    do {                                                                                         \
        if (n >= cap) return err_set("qwen3_params: more than %d parameters", cap);              \
        snprintf(out[n].name, sizeof out[n].name, __VA_ARGS__);                                  \
        out[n++].t = (tensor);                                                                   \
    } while (0)
    ADD(&m->embed, "model.embed_tokens.weight");
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        qwen3_layer_t *w = &m->layers[l];
        ADD(&w->input_norm, "model.layers.%d.input_layernorm.weight", l);
        ADD(&w->wq, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(&w->wk, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(&w->wv, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(&w->wo, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(&w->q_norm, "model.layers.%d.self_attn.q_norm.weight", l);
        ADD(&w->k_norm, "model.layers.%d.self_attn.k_norm.weight", l);
        ADD(&w->post_norm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(&w->w_gate, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(&w->w_up, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(&w->w_down, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(&m->final_norm, "model.norm.weight");
    if (!m->cfg.tie_word_embeddings) ADD(&m->lm_head, "lm_head.weight");
#undef ADD
    return n;
}

int qwen3_grads_zero(qwen3_t *g) {
    qwen3_param_t ps[qwen3_n_params(g)];
    int n = qwen3_params(g, ps, qwen3_n_params(g));
    if (n < 0) return -1;
    for (int i = 0; i < n; i++)
        if (zero_tensor(ps[i].t)) return err_wrap("qwen3_grads_zero: %s: ", ps[i].name);
    return 0;
}

int qwen3_params_write(qwen3_t *m, const char *path) {
    const int cap = qwen3_n_params(m);
    qwen3_param_t *ps = calloc((size_t)cap, sizeof *ps);
    st_tensor_t *st = calloc((size_t)cap, sizeof *st);
    void **host = calloc((size_t)cap, sizeof *host);
    int n = ps && st && host ? qwen3_params(m, ps, cap) : err_set("%s: out of memory", path);
    int rc = n < 0 ? -1 : 0;
    for (int i = 0; i < n && !rc; i++) {
        tensor_t *t = ps[i].t;
        const void *data = t->data;
        if (t->device != DEVICE_CPU || t->dtype != DTYPE_F32) { // to host F32
            host[i] = malloc((size_t)tensor_numel(t) * 4);
            tensor_t h = tensor_view(host[i], DTYPE_F32, DEVICE_CPU, t->ndim, t->shape);
            if (!host[i] || tensor_copy(&h, t)) rc = err_wrap("%s: tensor %s: ", path, ps[i].name);
            data = host[i];
        }
        st[i].name = ps[i].name;
        st[i].dtype = DTYPE_F32;
        st[i].ndim = t->ndim;
        memcpy(st[i].shape, t->shape, sizeof st[i].shape);
        st[i].data = data;
        st[i].nbytes = (size_t)tensor_numel(t) * 4;
    }
    if (!rc) rc = safetensors_write(path, st, n);
    for (int i = 0; host && i < cap; i++) free(host[i]);
    free(host);
    free(st);
    free(ps);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// activation plan

// the first n rows of a buffer
static tensor_t rows_of(const tensor_t *t, int64_t n) {
    tensor_t v = tensor_view(t->data, t->dtype, t->device, t->ndim, t->shape);
    v.shape[0] = n;
    return v;
}

// rows r0 .. r0+n-1 of a buffer (any device: only the address moves)
static tensor_t rows_at(const tensor_t *t, int64_t r0, int64_t n) {
    const int64_t row = t->shape[0] ? tensor_numel(t) / t->shape[0] : 0;
    tensor_t v = tensor_view((char *)t->data + (size_t)(r0 * row) * dtype_size(t->dtype), t->dtype,
                             t->device, t->ndim, t->shape);
    v.shape[0] = n;
    return v;
}

// a buffer's memory seen with another shape
static tensor_t reshape(const tensor_t *t, int ndim, const int64_t *shape) {
    return tensor_view(t->data, t->dtype, t->device, ndim, shape);
}

static void save_free(qwen3_layer_save_t *s) {
    tensor_t *ts[] = {&s->x_in, &s->xn1, &s->q_raw, &s->k_raw, &s->q, &s->k,
                      &s->v, &s->att, &s->x_mid, &s->xn2, &s->gate, &s->up};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
}

// all fields of a save (with_x_in: also x_in), N rows each
static int save_alloc(qwen3_layer_save_t *s, const qwen3_config_t *c, int64_t N, device_t dev,
                      int with_x_in) {
    const int64_t C = c->hidden_size, I = c->intermediate_size, Hq = c->num_attention_heads;
    const int64_t Hkv = c->num_key_value_heads, D = c->head_dim;
    struct { tensor_t *t; int nd; int64_t a, b; } plan[] = {
        {&s->xn1, 2, C, 0},     {&s->q_raw, 3, Hq, D}, {&s->k_raw, 3, Hkv, D}, {&s->q, 3, Hq, D},
        {&s->k, 3, Hkv, D},     {&s->v, 3, Hkv, D},    {&s->att, 3, Hq, D},    {&s->x_mid, 2, C, 0},
        {&s->xn2, 2, C, 0},     {&s->gate, 2, I, 0},   {&s->up, 2, I, 0},      {&s->x_in, 2, C, 0},
    };
    int n = (int)(sizeof plan / sizeof plan[0]) - (with_x_in ? 0 : 1);
    for (int i = 0; i < n; i++)
        if (tensor_alloc(plan[i].t, DTYPE_F32, dev, plan[i].nd, (int64_t[]){N, plan[i].a, plan[i].b}))
            return -1;
    return 0;
}

void qwen3_train_free(qwen3_train_t *tr) {
    if (tr->saves)
        for (int l = 0; l < tr->n_layers; l++) save_free(&tr->saves[l]);
    free(tr->saves);
    save_free(&tr->scratch);
    tensor_t *ts[] = {&tr->x, &tr->xb, &tr->hb, &tr->pos, &tr->ids, &tr->seq_info,
                      &tr->page_table, &tr->rows, &tr->targets, &tr->xl, &tr->xn, &tr->logits,
                      &tr->lp_rows, &tr->ent_rows, &tr->dlp_rows, &tr->dx, &tr->dxb, &tr->dq,
                      &tr->dk, &tr->dv, &tr->datt, &tr->dgate, &tr->dup, &tr->dxn, &tr->dw_sub};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
    free(tr->h_rows_bt);
    if (tr->h_owned) {
        free(tr->h_ids), free(tr->h_pos), free(tr->h_seq_info), free(tr->h_page_table);
        free(tr->h_rows), free(tr->h_targets), free(tr->h_lp_rows), free(tr->h_ent_rows);
        free(tr->h_dlp_rows);
    }
    memset(tr, 0, sizeof *tr);
}

int qwen3_train_init(qwen3_train_t *tr, const qwen3_t *m, int max_batch, int max_len, int checkpoint) {
    memset(tr, 0, sizeof *tr);
    if (max_batch <= 0 || max_len <= 0)
        return err_set("qwen3_train_init: batch %d x %d, expected both > 0", max_batch, max_len);
    const qwen3_config_t *c = &m->cfg;
    const int64_t N = (int64_t)max_batch * max_len, R = N, B = max_batch;
    const int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t Hq = c->num_attention_heads, Hkv = c->num_key_value_heads, D = c->head_dim;
    const device_t dev = m->device;
    tr->max_batch = max_batch;
    tr->max_len = max_len;
    tr->checkpoint = checkpoint ? 1 : 0;
    tr->chunk_rows = (int)(R < DEFAULT_CHUNK_ROWS ? R : DEFAULT_CHUNK_ROWS);
    tr->n_layers = c->num_hidden_layers;
    tr->saves = calloc((size_t)tr->n_layers, sizeof *tr->saves);
    tr->h_rows_bt = malloc((size_t)R * sizeof(int));
    int rc = tr->saves && tr->h_rows_bt ? 0 : err_set("out of memory");
    for (int l = 0; l < tr->n_layers && !rc; l++) {
        if (checkpoint) rc = tensor_alloc(&tr->saves[l].x_in, DTYPE_F32, dev, 2, (int64_t[]){N, C});
        else rc = save_alloc(&tr->saves[l], c, N, dev, 1);
    }
    if (!rc && checkpoint) rc = save_alloc(&tr->scratch, c, N, dev, 0);
    struct { tensor_t *t; dtype_t dt; int nd; int64_t a, b, c; } plan[] = {
        {&tr->x, DTYPE_F32, 2, N, C, 0},        {&tr->xb, DTYPE_F32, 2, N, C, 0},
        {&tr->hb, DTYPE_F32, 2, N, I, 0},       {&tr->pos, DTYPE_I32, 1, N, 0, 0},
        {&tr->ids, DTYPE_I32, 1, N, 0, 0},      {&tr->seq_info, DTYPE_I32, 2, B, 3, 0},
        {&tr->page_table, DTYPE_I32, 2, B, 1, 0}, {&tr->rows, DTYPE_I32, 1, R, 0, 0},
        {&tr->targets, DTYPE_I32, 1, R, 0, 0},  {&tr->xl, DTYPE_F32, 2, R, C, 0},
        {&tr->xn, DTYPE_F32, 2, R, C, 0},       {&tr->logits, DTYPE_F32, 2, tr->chunk_rows, V, 0},
        {&tr->lp_rows, DTYPE_F32, 1, R, 0, 0},  {&tr->ent_rows, DTYPE_F32, 1, R, 0, 0},
        {&tr->dlp_rows, DTYPE_F32, 1, R, 0, 0}, {&tr->dx, DTYPE_F32, 2, N, C, 0},
        {&tr->dxb, DTYPE_F32, 2, N, C, 0},      {&tr->dq, DTYPE_F32, 3, N, Hq, D},
        {&tr->dk, DTYPE_F32, 3, N, Hkv, D},     {&tr->dv, DTYPE_F32, 3, N, Hkv, D},
        {&tr->datt, DTYPE_F32, 3, N, Hq, D},    {&tr->dgate, DTYPE_F32, 2, N, I, 0},
        {&tr->dup, DTYPE_F32, 2, N, I, 0},      {&tr->dxn, DTYPE_F32, 2, R, C, 0},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0] && !rc; i++)
        rc = tensor_alloc(plan[i].t, plan[i].dt, dev, plan[i].nd,
                          (int64_t[]){plan[i].a, plan[i].b, plan[i].c});
    // the host side of the index / per-row tensors: their own memory on the CPU, staging otherwise
    struct { void **h; const tensor_t *t; } hs[] = {
        {(void **)&tr->h_ids, &tr->ids},         {(void **)&tr->h_pos, &tr->pos},
        {(void **)&tr->h_seq_info, &tr->seq_info}, {(void **)&tr->h_page_table, &tr->page_table},
        {(void **)&tr->h_rows, &tr->rows},       {(void **)&tr->h_targets, &tr->targets},
        {(void **)&tr->h_lp_rows, &tr->lp_rows}, {(void **)&tr->h_ent_rows, &tr->ent_rows},
        {(void **)&tr->h_dlp_rows, &tr->dlp_rows},
    };
    tr->h_owned = dev != DEVICE_CPU;
    for (size_t i = 0; i < sizeof hs / sizeof hs[0] && !rc; i++) {
        *hs[i].h = tr->h_owned ? calloc(1, tensor_nbytes(hs[i].t)) : hs[i].t->data;
        if (!*hs[i].h) rc = err_set("out of memory");
    }
    if (rc) {
        qwen3_train_free(tr);
        return err_wrap("qwen3_train_init (batch %d x %d%s): ", max_batch, max_len,
                        checkpoint ? ", checkpointing" : "");
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// forward

// the io buffers and save slots of layer l for the current batch (N = B*T rows). When
// checkpointing, the layer runs on the scratch save and keeps only its input in saves[l].
static void layer_setup(qwen3_train_t *tr, int l, qwen3_layer_io_t *io, qwen3_layer_save_t *sv,
                        tensor_t *k_pool, tensor_t *v_pool) {
    const int64_t N = (int64_t)tr->B * tr->T;
    const qwen3_layer_save_t *src = tr->checkpoint ? &tr->scratch : &tr->saves[l];
    qwen3_layer_save_t s = {0};
    tensor_t *dst[] = {&s.xn1, &s.q_raw, &s.k_raw, &s.q, &s.k, &s.v, &s.att, &s.x_mid, &s.xn2, &s.gate, &s.up};
    const tensor_t *from[] = {&src->xn1, &src->q_raw, &src->k_raw, &src->q, &src->k, &src->v,
                              &src->att, &src->x_mid, &src->xn2, &src->gate, &src->up};
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) *dst[i] = rows_of(from[i], N);
    s.x_in = rows_of(&tr->saves[l].x_in, N);
    *sv = s;
    const int64_t Hkv = s.k.shape[1], D = s.k.shape[2];
    const int64_t pool_shape[4] = {tr->B, tr->T, Hkv, D}; // B pages of T slots: this batch's rows
    *k_pool = reshape(&s.k, 4, pool_shape);
    *v_pool = reshape(&s.v, 4, pool_shape);
    memset(io, 0, sizeof *io);
    io->x = rows_of(&tr->x, N);
    io->xb = rows_of(&tr->xb, N);
    io->q = s.q;
    io->k = s.k;
    io->v = s.v;
    io->att = s.att;
    io->hb = rows_of(&tr->hb, N);
    io->hb2 = s.up;
    io->pos = rows_of(&tr->pos, N);
    io->k_pool = k_pool;
    io->v_pool = v_pool;
    io->slots = io->pos; // unused: the store is skipped (the pool is k itself)
    io->seq_info = rows_of(&tr->seq_info, tr->B);
    io->page_table = rows_of(&tr->page_table, tr->B);
}

static int check_batch(const qwen3_t *m, const qwen3_train_t *tr, const qwen3_batch_t *bt) {
    const char *fn = "qwen3_train_forward";
    if (bt->B <= 0 || bt->T <= 0 || bt->B > tr->max_batch || bt->T > tr->max_len)
        return err_set("%s: batch %d x %d, the plan holds up to %d x %d", fn, bt->B, bt->T,
                       tr->max_batch, tr->max_len);
    if (!bt->ids || !bt->mask) return err_set("%s: ids and mask are required", fn);
    const int V = m->cfg.vocab_size;
    for (int b = 0; b < bt->B; b++) {
        int len = bt->lengths ? bt->lengths[b] : bt->T;
        if (len < 1 || len > bt->T)
            return err_set("%s: row %d has length %d, expected 1..%d", fn, b, len, bt->T);
        for (int t = 0; t < bt->T; t++) {
            int32_t id = bt->ids[(int64_t)b * bt->T + t];
            uint8_t mk = bt->mask[(int64_t)b * bt->T + t];
            if (id < 0 || id >= V)
                return err_set("%s: token id %" PRId32 " at [%d][%d] is outside the vocabulary (size %d)",
                               fn, id, b, t, V);
            if (mk > 1) return err_set("%s: mask[%d][%d] is %d, expected 0 or 1", fn, b, t, mk);
            if (mk && t == 0)
                return err_set("%s: mask[%d][0] is 1, but nothing predicts the first token", fn, b);
            if (mk && t >= len)
                return err_set("%s: mask[%d][%d] is 1 past the row's length %d", fn, b, t, len);
        }
    }
    return 0;
}

int qwen3_train_forward(const qwen3_t *m, qwen3_train_t *tr, const qwen3_batch_t *batch,
                        float temperature, float *lp, float *entropy) {
    if (check_batch(m, tr, batch)) return -1;
    if (!(temperature > 0)) return err_set("qwen3_train_forward: temperature must be > 0, found %g", temperature);
    const qwen3_config_t *c = &m->cfg;
    const int B = batch->B, T = batch->T;
    const int64_t N = (int64_t)B * T;
    const float eps = (float)c->rms_norm_eps;
    tr->B = B;
    tr->T = T;
    tr->temperature = temperature;
    tr->out_n = m->out_n;
    // the LM head: (V, C), or W_sub (n, C) under an output restriction (targets become columns)
    const int64_t W = m->out_n > 0 ? m->out_n : c->vocab_size;
    const tensor_t *head = m->out_n > 0 ? &m->lm_head_sub : &m->lm_head;

    // index tensors: built on the host, uploaded once (on the CPU the h_* arrays are the tensors)
    int32_t *ids = tr->h_ids, *pos = tr->h_pos, *si = tr->h_seq_info, *pt = tr->h_page_table;
    int32_t *rows = tr->h_rows, *targets = tr->h_targets;
    int R = 0;
    for (int b = 0; b < B; b++) {
        si[b * 3] = b * T; // q_start, q_len, kv_len: the whole row
        si[b * 3 + 1] = T;
        si[b * 3 + 2] = T;
        pt[b] = b; // page b = row b
        for (int t = 0; t < T; t++) {
            int64_t n = (int64_t)b * T + t;
            ids[n] = batch->ids[n];
            pos[n] = t;
            if (batch->mask[n]) { // target t, predicted by row n - 1
                int32_t id = batch->ids[n];
                if (m->out_n > 0 && m->out_pos[id] < 0) {
                    tr->B = 0; // nothing to differentiate
                    return err_set("qwen3_train_forward: target id %" PRId32 " at [%d][%d] is not in the "
                                   "model's output vocabulary (%d ids)", id, b, t, m->out_n);
                }
                rows[R] = (int32_t)(n - 1);
                targets[R] = m->out_n > 0 ? m->out_pos[id] : id;
                tr->h_rows_bt[R] = (int)n;
                R++;
            }
        }
    }
    tr->R = R;
    const size_t i4 = sizeof(int32_t);
    int rc = to_device(&tr->ids, ids, (size_t)N * i4) || to_device(&tr->pos, pos, (size_t)N * i4) ||
             to_device(&tr->seq_info, si, (size_t)B * 3 * i4) || to_device(&tr->page_table, pt, (size_t)B * i4) ||
             to_device(&tr->rows, rows, (size_t)R * i4) || to_device(&tr->targets, targets, (size_t)R * i4);
    if (rc) {
        tr->B = 0;
        return err_wrap("qwen3_train_forward: upload: ");
    }

    tensor_t x = rows_of(&tr->x, N), ids_t = rows_of(&tr->ids, N);
    rc = op_embedding(&x, &m->embed, &ids_t);
    for (int l = 0; l < c->num_hidden_layers && !rc; l++) {
        qwen3_layer_io_t io;
        qwen3_layer_save_t sv;
        tensor_t k_pool, v_pool;
        layer_setup(tr, l, &io, &sv, &k_pool, &v_pool);
        rc = qwen3_layer_forward(m, l, &io, &sv);
    }

    // the rows that predict a target: gather, final norm, then the LM head chunk by chunk
    if (!rc && R > 0) {
        tensor_t xl = rows_of(&tr->xl, R), xn = rows_of(&tr->xn, R), rows_t = rows_of(&tr->rows, R);
        rc = op_embedding(&xl, &x, &rows_t) || op_rmsnorm(&xn, &xl, &m->final_norm, eps);
        for (int r0 = 0; r0 < R && !rc; r0 += tr->chunk_rows) {
            int cr = R - r0 < tr->chunk_rows ? R - r0 : tr->chunk_rows;
            tensor_t logits = reshape(&tr->logits, 2, (int64_t[]){cr, W});          // (cr, W)
            tensor_t xn_c = rows_at(&tr->xn, r0, cr);                                 // (cr, C)
            tensor_t tg = rows_at(&tr->targets, r0, cr), lpc = rows_at(&tr->lp_rows, r0, cr);
            tensor_t enc = rows_at(&tr->ent_rows, r0, cr);
            rc = op_matmul(&logits, &xn_c, head, 0) ||
                 op_logsoftmax_gather(&lpc, &logits, &tg, temperature) ||
                 (entropy && op_softmax_entropy(&enc, &logits, temperature));
        }
    }
    // the loss positions' results back to the host (nothing to copy on the CPU)
    rc = rc || (lp && to_host(tr->h_lp_rows, &tr->lp_rows, (size_t)R * sizeof(float))) ||
         (entropy && to_host(tr->h_ent_rows, &tr->ent_rows, (size_t)R * sizeof(float)));
    if (rc) {
        tr->B = 0;
        return err_wrap("qwen3_train_forward: ");
    }
    if (lp) memset(lp, 0, (size_t)N * sizeof(float));
    if (entropy) memset(entropy, 0, (size_t)N * sizeof(float));
    for (int r = 0; r < R; r++) {
        if (lp) lp[tr->h_rows_bt[r]] = tr->h_lp_rows[r];
        if (entropy) entropy[tr->h_rows_bt[r]] = tr->h_ent_rows[r];
    }
    return R;
}

// ---------------------------------------------------------------------------------------------
// backward

// d of one layer: dx (N, C) holds dL/d(layer output) and becomes dL/d(layer input)
static int layer_backward(const qwen3_t *m, qwen3_train_t *tr, int l, qwen3_t *g) {
    const qwen3_config_t *c = &m->cfg;
    const qwen3_layer_t *w = &m->layers[l];
    qwen3_layer_t *dw = &g->layers[l];
    const float eps = (float)c->rms_norm_eps;
    const int B = tr->B, T = tr->T;
    const int64_t N = (int64_t)B * T, Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    const int64_t D = c->head_dim;
    qwen3_layer_io_t io;
    qwen3_layer_save_t s;
    tensor_t k_pool, v_pool;
    layer_setup(tr, l, &io, &s, &k_pool, &v_pool);
    int rc = 0;
    if (tr->checkpoint) { // recompute this layer's activations from its saved input (same code)
        qwen3_layer_save_t again = s;
        again.x_in.data = NULL; // kept already
        rc = tensor_copy(&io.x, &s.x_in) || qwen3_layer_forward(m, l, &io, &again);
    }
    tensor_t dx = rows_of(&tr->dx, N), dxb = rows_of(&tr->dxb, N);
    tensor_t h = rows_of(&tr->hb, N), dgate = rows_of(&tr->dgate, N), dup = rows_of(&tr->dup, N);
    tensor_t dq = rows_of(&tr->dq, N), dk = rows_of(&tr->dk, N), dv = rows_of(&tr->dv, N);
    tensor_t datt = rows_of(&tr->datt, N);
    const int64_t qs4[4] = {B, T, Hq, D}, ks4[4] = {B, T, Hkv, D};
    tensor_t datt4 = reshape(&datt, 4, qs4), dq4 = reshape(&dq, 4, qs4);
    tensor_t dk4 = reshape(&dk, 4, ks4), dv4 = reshape(&dv, 4, ks4);
    tensor_t q4 = reshape(&s.q, 4, qs4), k4 = reshape(&s.k, 4, ks4), v4 = reshape(&s.v, 4, ks4);
    tensor_t dq_rows = reshape(&dq, 2, (int64_t[]){N * Hq, D}), dk_rows = reshape(&dk, 2, (int64_t[]){N * Hkv, D});
    tensor_t q_raw_rows = reshape(&s.q_raw, 2, (int64_t[]){N * Hq, D});
    tensor_t k_raw_rows = reshape(&s.k_raw, 2, (int64_t[]){N * Hkv, D});
    // MLP block: out = x_mid + down(swiglu(gate(xn2), up(xn2))), xn2 = post_norm(x_mid)
    rc = rc || op_swiglu(&h, &s.gate, &s.up)
      || op_matmul_backward(&dgate, &dw->w_down, &dx, &h, &w->w_down, 0)    // dgate holds dh
      || op_swiglu_backward(&dgate, &dup, &dgate, &s.gate, &s.up)
      || op_matmul_backward(&dxb, &dw->w_gate, &dgate, &s.xn2, &w->w_gate, 0)
      || op_matmul_backward(&dxb, &dw->w_up, &dup, &s.xn2, &w->w_up, 1)
      || op_rmsnorm_backward(&dx, &dw->post_norm, &dxb, &s.x_mid, &w->post_norm, eps, 1);
    // attention block: x_mid = x_in + o_proj(attention(rope(qn(q)), rope(kn(k)), v)), from xn1
    rc = rc || op_matmul_backward(&datt, &dw->wo, &dx, &s.att, &w->wo, 0)
      || op_attention_backward(&dq4, &dk4, &dv4, &datt4, &q4, &k4, &v4)
      || op_rope_backward(&dq, &io.pos, c->rope_theta)
      || op_rope_backward(&dk, &io.pos, c->rope_theta)
      || op_rmsnorm_backward(&dq_rows, &dw->q_norm, &dq_rows, &q_raw_rows, &w->q_norm, eps, 0)
      || op_rmsnorm_backward(&dk_rows, &dw->k_norm, &dk_rows, &k_raw_rows, &w->k_norm, eps, 0)
      || op_matmul_backward(&dxb, &dw->wq, &dq, &s.xn1, &w->wq, 0)
      || op_matmul_backward(&dxb, &dw->wk, &dk, &s.xn1, &w->wk, 1)
      || op_matmul_backward(&dxb, &dw->wv, &dv, &s.xn1, &w->wv, 1)
      || op_rmsnorm_backward(&dx, &dw->input_norm, &dxb, &s.x_in, &w->input_norm, eps, 1);
    return rc ? err_wrap("layer %d: ", l) : 0;
}

int qwen3_train_backward(const qwen3_t *m, qwen3_train_t *tr, const float *dlp, qwen3_t *g) {
    if (tr->B <= 0) return err_set("qwen3_train_backward: no forward to differentiate");
    if (g->cfg.tie_word_embeddings != m->cfg.tie_word_embeddings || !g->layers)
        return err_set("qwen3_train_backward: the gradient container does not match the model");
    const qwen3_config_t *c = &m->cfg;
    const int64_t N = (int64_t)tr->B * tr->T, C = c->hidden_size;
    const int R = tr->R;
    const float eps = (float)c->rms_norm_eps;
    if (m->out_n != tr->out_n)
        return err_set("qwen3_train_backward: the output restriction changed since the forward (%d ids, "
                       "then %d)", tr->out_n, m->out_n);
    // the LM head and its gradient: lm_head, or W_sub and d W_sub (scattered into lm_head below)
    const int64_t W = m->out_n > 0 ? m->out_n : c->vocab_size;
    const tensor_t *head = m->out_n > 0 ? &m->lm_head_sub : &m->lm_head;
    tensor_t *dhead = &g->lm_head;
    if (m->out_n > 0 && R > 0) {
        if (!tr->dw_sub.data || tr->dw_sub.shape[0] < W) {
            tensor_free(&tr->dw_sub);
            if (tensor_alloc(&tr->dw_sub, DTYPE_F32, tr->x.device, 2, (int64_t[]){W, C}))
                return err_wrap("qwen3_train_backward: ");
        }
        tr->dw_sub.shape[0] = W;
        if (zero_tensor(&tr->dw_sub)) return err_wrap("qwen3_train_backward: ");
        dhead = &tr->dw_sub;
    }
    tensor_t dx = rows_of(&tr->dx, N);
    int rc = zero_tensor(&dx);
    if (R > 0 && !rc) {
        float *dl = tr->h_dlp_rows;
        for (int r = 0; r < R; r++) dl[r] = dlp[tr->h_rows_bt[r]];
        rc = to_device(&tr->dlp_rows, dl, (size_t)R * sizeof(float));
        // LM head, chunk by chunk: logits again, d log-softmax in place, d lm_head, d xn
        for (int r0 = 0; r0 < R && !rc; r0 += tr->chunk_rows) {
            int cr = R - r0 < tr->chunk_rows ? R - r0 : tr->chunk_rows;
            tensor_t logits = reshape(&tr->logits, 2, (int64_t[]){cr, W});
            tensor_t xn_c = rows_at(&tr->xn, r0, cr), dxn_c = rows_at(&tr->dxn, r0, cr); // (cr, C)
            tensor_t tg = rows_at(&tr->targets, r0, cr), dlc = rows_at(&tr->dlp_rows, r0, cr);
            rc = op_matmul(&logits, &xn_c, head, 0) ||
                 op_logsoftmax_gather_backward(&logits, &logits, &tg, &dlc, tr->temperature) ||
                 op_matmul_backward(&dxn_c, dhead, &logits, &xn_c, head, 0);
        }
        // d W_sub row j is the gradient of lm_head row out_ids[j] (tied: of the embedding row)
        if (m->out_n > 0) rc = rc || op_embedding_backward(&g->lm_head, &tr->dw_sub, &m->out_ids_t);
        // final norm, then the gathered rows go back to their places in the residual stream
        tensor_t dxn = rows_of(&tr->dxn, R), xl = rows_of(&tr->xl, R), rows_t = rows_of(&tr->rows, R);
        tensor_t dxl = rows_of(&tr->dxb, R);
        rc = rc || op_rmsnorm_backward(&dxl, &g->final_norm, &dxn, &xl, &m->final_norm, eps, 0) ||
             op_embedding_backward(&dx, &dxl, &rows_t);
    }
    for (int l = c->num_hidden_layers - 1; l >= 0 && !rc; l--) rc = layer_backward(m, tr, l, g);
    tensor_t ids = rows_of(&tr->ids, N);
    rc = rc || op_embedding_backward(&g->embed, &dx, &ids);
    return rc ? err_wrap("qwen3_train_backward: ") : 0;
}
