// Batched generation: scheduling of prefill chunks and decode rows, sampling, stop conditions
// (engine.h).
#include "engine.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"
#include "tokenizer.h"

const int32_t ENGINE_DEFAULT_STOP_IDS[ENGINE_N_DEFAULT_STOP_IDS] = {151645, 151643};

const char *engine_tokenizer_bytes(const void *tokenizer, int32_t id, size_t *len) {
    return tokenizer_token_bytes((const tokenizer_t *)tokenizer, id, len);
}

enum { SEQ_FREE = 0, SEQ_WAITING, SEQ_RUNNING, SEQ_KEPT, SEQ_FINISHED };

typedef struct {
    int state;
    int kv;              // KV cache sequence, -1 when none
    int32_t *tokens;     // (max_seq_len) prompt + generated
    float *logprobs;     // (max_seq_len) of the generated tokens
    int n_tokens, n_prompt;
    int n_cached;        // tokens whose K/V are in the cache
    int n_generated;
    int final_len;       // the longest it may grow: pages are reserved for it once admitted
    int admitted;
    int forked;          // started from a parent's pages (its first write may copy a page)
    uint64_t order;      // submission order (prefill is first come, first served)
    engine_gen_t gen;    // stop_ids / stop_strings point at the copies below
    int32_t *stop_ids;
    char **stop_strings;
    size_t *stop_lens;
    size_t max_stop_len;
    char *tail;          // last decoded bytes (for stop strings)
    size_t tail_len, tail_cap;
    int logit_row;       // row of h_logits sampled this step, -1 when none
    int in_batch;        // 1 while being scheduled into this step's batch
} eseq_t;

struct engine {
    const qwen3_t *m;
    engine_opts_t o;
    kvcache_t kv;
    qwen3_state_t st;
    eseq_t *seqs;        // (max_seqs)
    uint64_t next_order;
    sampler_t *samplers; // one per thread
    int32_t **allowed;   // (n_samplers, V) ids a logits hook allowed, one per thread
    float **wide;        // (n_samplers, V) a compact row widened for a logits hook, one per thread
    int n_samplers;
    float *last_wide;    // (V) engine_last_logits' widened row (restricted output)
    qwen3_chunk_t *chunks; // (max_seqs)
    int *chunk_seq;        // (max_seqs) engine sequence of each chunk
};

// ---------------------------------------------------------------------------------------------

engine_t *engine_new(const qwen3_t *m, const engine_opts_t *opts) {
    engine_opts_t o = *opts;
    if (o.max_seq_len <= 0) o.max_seq_len = m->cfg.max_position_embeddings;
    if (o.page_size <= 0) o.page_size = 16;
    if (o.max_seqs <= 0 || o.max_batch_tokens < o.max_seqs) {
        err_set("engine: need max_seqs >= 1 and max_batch_tokens >= max_seqs (found %d and %d)",
                o.max_seqs, o.max_batch_tokens);
        return NULL;
    }
    int pages_per_seq = (o.max_seq_len + o.page_size - 1) / o.page_size;
    if (o.n_pages <= 0) o.n_pages = o.max_seqs * pages_per_seq;
    engine_t *e = calloc(1, sizeof *e);
    if (!e) {
        err_set("engine: out of memory");
        return NULL;
    }
    e->m = m;
    e->o = o;
    e->seqs = calloc((size_t)o.max_seqs, sizeof(eseq_t));
    e->chunks = calloc((size_t)o.max_seqs, sizeof(qwen3_chunk_t));
    e->chunk_seq = calloc((size_t)o.max_seqs, sizeof(int));
    if (!e->seqs || !e->chunks || !e->chunk_seq) {
        err_set("engine: out of memory");
        engine_free(e);
        return NULL;
    }
    for (int i = 0; i < o.max_seqs; i++) {
        e->seqs[i].kv = -1;
        e->seqs[i].tokens = malloc((size_t)o.max_seq_len * sizeof(int32_t));
        e->seqs[i].logprobs = malloc((size_t)o.max_seq_len * sizeof(float));
        if (!e->seqs[i].tokens || !e->seqs[i].logprobs) {
            err_set("engine: out of memory");
            engine_free(e);
            return NULL;
        }
    }
    e->last_wide = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    if (!e->last_wide) {
        err_set("engine: out of memory");
        engine_free(e);
        return NULL;
    }
    if (qwen3_kvcache_init(m, &e->kv, o.n_pages, o.page_size, o.max_seqs, o.max_seq_len) ||
        qwen3_state_init(&e->st, m, &e->kv, o.max_batch_tokens, o.max_seqs, o.max_seqs)) {
        err_wrap("engine: ");
        engine_free(e);
        return NULL;
    }
    return e;
}

static void seq_clear_gen(eseq_t *s) {
    free(s->stop_ids);
    for (int i = 0; i < s->gen.n_stop_strings; i++) free(s->stop_strings[i]);
    free(s->stop_strings);
    free(s->stop_lens);
    free(s->tail);
    s->stop_ids = NULL;
    s->stop_strings = NULL;
    s->stop_lens = NULL;
    s->tail = NULL;
    s->tail_len = s->tail_cap = 0;
    s->gen.n_stop_strings = 0;
}

void engine_free(engine_t *e) {
    if (!e) return;
    if (e->seqs)
        for (int i = 0; i < e->o.max_seqs; i++) {
            seq_clear_gen(&e->seqs[i]);
            free(e->seqs[i].tokens);
            free(e->seqs[i].logprobs);
        }
    for (int i = 0; i < e->n_samplers; i++) {
        sampler_free(&e->samplers[i]);
        free(e->allowed[i]);
        free(e->wide[i]);
    }
    free(e->samplers);
    free(e->allowed);
    free(e->wide);
    free(e->last_wide);
    qwen3_state_free(&e->st);
    kvcache_free(&e->kv);
    free(e->seqs);
    free(e->chunks);
    free(e->chunk_seq);
    free(e);
}

// ---------------------------------------------------------------------------------------------
// submitting and releasing

static int seq_valid(const engine_t *e, int seq) {
    return seq >= 0 && seq < e->o.max_seqs && e->seqs[seq].state != SEQ_FREE;
}

// copies the stop ids / strings of gen into the sequence
static int seq_set_gen(engine_t *e, eseq_t *s, const engine_gen_t *gen) {
    s->gen = *gen;
    s->gen.n_stop_strings = 0;
    const int32_t *ids = gen->stop_ids ? gen->stop_ids : ENGINE_DEFAULT_STOP_IDS;
    int n_ids = gen->stop_ids ? gen->n_stop_ids : ENGINE_N_DEFAULT_STOP_IDS;
    s->stop_ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof(int32_t));
    if (!s->stop_ids) return err_set("engine: out of memory");
    memcpy(s->stop_ids, ids, (size_t)n_ids * sizeof(int32_t));
    s->gen.stop_ids = s->stop_ids;
    s->gen.n_stop_ids = n_ids;
    s->max_stop_len = 0;
    if (gen->n_stop_strings > 0) {
        if (!e->o.token_bytes)
            return err_set("engine: stop strings need a token decoder (engine_opts_t.token_bytes)");
        s->stop_strings = calloc((size_t)gen->n_stop_strings, sizeof(char *));
        s->stop_lens = calloc((size_t)gen->n_stop_strings, sizeof(size_t));
        if (!s->stop_strings || !s->stop_lens) return err_set("engine: out of memory");
        for (int i = 0; i < gen->n_stop_strings; i++) {
            size_t len = strlen(gen->stop_strings[i]);
            if (len == 0) return err_set("engine: stop string %d is empty", i);
            s->stop_strings[i] = malloc(len + 1);
            if (!s->stop_strings[i]) return err_set("engine: out of memory");
            memcpy(s->stop_strings[i], gen->stop_strings[i], len + 1);
            s->stop_lens[i] = len;
            s->gen.n_stop_strings = i + 1;
            if (len > s->max_stop_len) s->max_stop_len = len;
        }
    }
    s->gen.stop_strings = (const char *const *)s->stop_strings;
    return 0;
}

int engine_add(engine_t *e, const int32_t *prompt, int n, const engine_gen_t *gen, int parent) {
    const int V = e->m->cfg.vocab_size;
    if (n < 1) return err_set("engine_add: the prompt is empty (need at least one token)");
    if (n >= e->o.max_seq_len)
        return err_set("engine_add: the prompt has %d tokens; the engine holds at most %d per sequence "
                       "(prompt + generated)", n, e->o.max_seq_len);
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return err_set("engine_add: token id %d at position %d is outside the vocabulary (size %d)",
                           prompt[i], i, V);
    if (sampler_params_check(&gen->sampling)) return err_wrap("engine_add: ");
    if (gen->max_new_tokens < 0) return err_set("engine_add: max_new_tokens must be >= 0, found %d", gen->max_new_tokens);
    if (parent >= 0 && (!seq_valid(e, parent) || e->seqs[parent].kv < 0))
        return err_set("engine_add: parent %d holds no cached tokens", parent);
    // a free slot, else the slot of the oldest finished sequence
    int id = -1;
    for (int i = 0; i < e->o.max_seqs && id < 0; i++)
        if (e->seqs[i].state == SEQ_FREE) id = i;
    for (int i = 0; i < e->o.max_seqs && id < 0; i++)
        if (e->seqs[i].state == SEQ_FINISHED && (id < 0 || e->seqs[i].order < e->seqs[id].order)) id = i;
    if (id < 0) return err_set("engine_add: all %d sequence slots are in use", e->o.max_seqs);
    if (e->seqs[id].state == SEQ_FINISHED) engine_release(e, id);
    eseq_t *s = &e->seqs[id];
    if (seq_set_gen(e, s, gen)) {
        seq_clear_gen(s);
        return -1;
    }
    // start from the parent's cache when the prompts share a prefix (at least one token is left
    // to run, so the last prompt position produces logits)
    int share = 0;
    if (parent >= 0) {
        const eseq_t *p = &e->seqs[parent];
        while (share < n - 1 && share < p->n_cached && p->tokens[share] == prompt[share]) share++;
    }
    s->forked = share > 0;
    if (share > 0) e->seqs[parent].forked = 1; // its last page is shared now: it may copy it too
    s->kv = share > 0 ? kvcache_seq_fork(&e->kv, e->seqs[parent].kv) : kvcache_seq_new(&e->kv);
    if (s->kv < 0 || (share > 0 && kvcache_seq_truncate(&e->kv, s->kv, share))) {
        if (s->kv >= 0) kvcache_seq_release(&e->kv, s->kv);
        s->kv = -1;
        seq_clear_gen(s);
        return err_wrap("engine_add: ");
    }
    memcpy(s->tokens, prompt, (size_t)n * sizeof(int32_t));
    s->n_tokens = s->n_prompt = n;
    s->n_cached = share;
    s->n_generated = 0;
    s->final_len = n + gen->max_new_tokens < e->o.max_seq_len ? n + gen->max_new_tokens : e->o.max_seq_len;
    s->admitted = 0;
    s->order = e->next_order++;
    s->logit_row = -1;
    s->state = SEQ_WAITING;
    return id;
}

static void seq_drop_cache(engine_t *e, eseq_t *s) {
    if (s->kv >= 0) kvcache_seq_release(&e->kv, s->kv);
    s->kv = -1;
}

void engine_release(engine_t *e, int seq) {
    if (!seq_valid(e, seq)) return;
    eseq_t *s = &e->seqs[seq];
    seq_drop_cache(e, s);
    seq_clear_gen(s);
    s->state = SEQ_FREE;
}

int engine_pending(const engine_t *e) {
    int n = 0;
    for (int i = 0; i < e->o.max_seqs; i++)
        n += e->seqs[i].state == SEQ_WAITING || e->seqs[i].state == SEQ_RUNNING;
    return n;
}

const int32_t *engine_tokens(const engine_t *e, int seq, int *n, int *n_prompt) {
    if (!seq_valid(e, seq)) return NULL;
    if (n) *n = e->seqs[seq].n_tokens;
    if (n_prompt) *n_prompt = e->seqs[seq].n_prompt;
    return e->seqs[seq].tokens;
}

const float *engine_logprobs(const engine_t *e, int seq, int *n) {
    if (!seq_valid(e, seq)) return NULL;
    if (n) *n = e->seqs[seq].n_generated;
    return e->seqs[seq].logprobs;
}

const kvcache_t *engine_kvcache(const engine_t *e) { return &e->kv; }

// a compact row (the logits of m->out_ids) as a vocabulary row: -inf at every other id
static void widen_row(const qwen3_t *m, const float *row, float *wide) {
    for (int i = 0; i < m->cfg.vocab_size; i++) wide[i] = -INFINITY;
    for (int j = 0; j < m->out_n; j++) wide[m->out_ids[j]] = row[j];
}

const float *engine_last_logits(const engine_t *e, int seq) {
    if (!seq_valid(e, seq) || e->seqs[seq].logit_row < 0) return NULL;
    const int W = e->st.logits_cols;
    const float *row = e->st.h_logits + (size_t)e->seqs[seq].logit_row * W;
    if (e->m->out_n == 0) return W == e->m->cfg.vocab_size ? row : NULL;
    if (W != e->m->out_n) return NULL; // the restriction changed since the step
    widen_row(e->m, row, e->last_wide);
    return e->last_wide;
}

// ---------------------------------------------------------------------------------------------
// one step

// pages a sequence may still take from the free list until it reaches final_len
static int seq_pages_to_come(const engine_t *e, const eseq_t *s) {
    int have = kvcache_pages_for(&e->kv, s->n_cached);
    int need = kvcache_pages_for(&e->kv, s->final_len) - have + s->forked; // + a copied page
    return need > 0 ? need : 0;
}

// appends the bytes of token id to the decoded tail; 1 when a stop string now occurs in it
static int seq_stop_string(engine_t *e, eseq_t *s, int32_t id) {
    if (s->gen.n_stop_strings == 0) return 0;
    size_t len = 0;
    const char *bytes = e->o.token_bytes(e->o.token_bytes_ud, id, &len);
    if (!bytes) len = 0;
    if (s->tail_len + len > s->tail_cap) {
        size_t cap = (s->tail_len + len) * 2 + 16;
        char *t = realloc(s->tail, cap);
        if (!t) return 0; // out of memory: no stop-string check for this token
        s->tail = t;
        s->tail_cap = cap;
    }
    memcpy(s->tail + s->tail_len, bytes, len);
    s->tail_len += len;
    // the tail kept from earlier tokens is shorter than every stop string, so any match is new
    for (int i = 0; i < s->gen.n_stop_strings; i++) {
        size_t L = s->stop_lens[i];
        for (size_t at = 0; at + L <= s->tail_len; at++)
            if (memcmp(s->tail + at, s->stop_strings[i], L) == 0) return 1;
    }
    size_t keep = s->max_stop_len - 1;
    if (s->tail_len > keep) {
        memmove(s->tail, s->tail + s->tail_len - keep, keep);
        s->tail_len = keep;
    }
    return 0;
}

static int ensure_samplers(engine_t *e) {
    int want = omp_get_max_threads();
    if (want <= e->n_samplers) return 0;
    sampler_t *ns = realloc(e->samplers, (size_t)want * sizeof(sampler_t));
    if (ns) e->samplers = ns;
    int32_t **na = ns ? realloc(e->allowed, (size_t)want * sizeof(int32_t *)) : NULL;
    if (na) e->allowed = na;
    float **nw = na ? realloc(e->wide, (size_t)want * sizeof(float *)) : NULL;
    if (!nw) return err_set("engine: out of memory");
    e->wide = nw;
    for (int i = e->n_samplers; i < want; i++) {
        if (sampler_init(&e->samplers[i], e->m->cfg.vocab_size)) return -1;
        e->allowed[i] = malloc((size_t)e->m->cfg.vocab_size * sizeof(int32_t));
        e->wide[i] = malloc((size_t)e->m->cfg.vocab_size * sizeof(float));
        if (!e->allowed[i] || !e->wide[i]) {
            sampler_free(&e->samplers[i]);
            free(e->allowed[i]);
            free(e->wide[i]);
            return err_set("engine: out of memory");
        }
        e->n_samplers = i + 1;
    }
    return 0;
}

// samples the next token of s from its logits row (compact under an output restriction) on
// sampling thread th: 0, -1 (err_set), or -2 when its logits hook failed
static int sample_row(engine_t *e, eseq_t *s, int th, int32_t *tok, float *lp) {
    const qwen3_t *m = e->m;
    const int V = m->cfg.vocab_size;
    sampler_t *sm = &e->samplers[th];
    float *logits = e->st.h_logits + (size_t)s->logit_row * e->st.logits_cols;
    const sampler_params_t *sp = &s->gen.sampling;
    const uint64_t step = (uint64_t)s->n_generated;
    int32_t *allowed = e->allowed[th];
    const int32_t *gen = s->tokens + s->n_prompt;
    if (m->out_n == 0) { // the full vocabulary
        int n_allowed = 0; // > 0: the hook listed the only finite entries
        if (s->gen.logits_hook &&
            (n_allowed = s->gen.logits_hook(s->gen.logits_ud, gen, s->n_generated, logits, V, allowed)) < 0)
            return -2;
        return n_allowed > 0 ? sampler_sample_ids(sm, sp, logits, allowed, n_allowed, s->gen.stream, step, tok, lp)
                             : sampler_sample(sm, sp, logits, s->gen.stream, step, tok, lp);
    }
    // restricted output: the compact row holds the listed ids' logits only
    if (!s->gen.logits_hook)
        return sampler_sample_compact(sm, sp, logits, m->out_ids, m->out_n, s->gen.stream, step, tok, lp);
    // with a hook: it sees the widened row (-inf off the list); sampling stays on the list (the
    // hook's allowed ids, when it lists them, intersected with it)
    float *wide = e->wide[th];
    widen_row(m, logits, wide);
    int n_allowed = s->gen.logits_hook(s->gen.logits_ud, gen, s->n_generated, wide, V, allowed);
    if (n_allowed < 0) return -2;
    const int32_t *ids = m->out_ids;
    if (n_allowed > 0) {
        int k = 0;
        for (int i = 0; i < n_allowed; i++)
            if (allowed[i] >= 0 && allowed[i] < V && m->out_pos[allowed[i]] >= 0) allowed[k++] = allowed[i];
        if (k == 0)
            return err_set("the logits hook allowed %d ids, none of them in the model's output vocabulary "
                           "(%d ids)", n_allowed, m->out_n);
        ids = allowed;
        n_allowed = k;
    } else {
        n_allowed = m->out_n;
    }
    for (int j = 0; j < m->out_n; j++) logits[j] = wide[m->out_ids[j]]; // engine_last_logits shows the hook's row
    return sampler_sample_ids(sm, sp, wide, ids, n_allowed, s->gen.stream, step, tok, lp);
}

int engine_step(engine_t *e, engine_event_t *events, int cap) {
    const int MS = e->o.max_seqs;
    if (cap < MS) return err_set("engine_step: room for %d events, need max_seqs = %d", cap, MS);
    if (ensure_samplers(e)) return -1;
    for (int i = 0; i < MS; i++) {
        e->seqs[i].logit_row = -1;
        e->seqs[i].in_batch = 0;
    }

    // the batch: one row per decoding sequence, then prompt chunks first come first served
    int nc = 0, budget = e->o.max_batch_tokens, reserved = 0;
    for (int i = 0; i < MS; i++) {
        eseq_t *s = &e->seqs[i];
        if (s->state == SEQ_RUNNING || (s->state == SEQ_WAITING && s->admitted))
            reserved += seq_pages_to_come(e, s);
        if (s->state != SEQ_RUNNING) continue;
        e->chunks[nc] = (qwen3_chunk_t){s->kv, &s->tokens[s->n_tokens - 1], 1, 1};
        e->chunk_seq[nc++] = i;
        s->in_batch = 1;
        budget--;
    }
    int free_pages = kvcache_free_pages(&e->kv), waiting = 0;
    for (;;) { // the oldest waiting sequence not yet in the batch
        int pick = -1;
        for (int i = 0; i < MS; i++) {
            eseq_t *s = &e->seqs[i];
            if (s->state == SEQ_WAITING && !s->in_batch && (pick < 0 || s->order < e->seqs[pick].order))
                pick = i;
        }
        if (pick < 0 || budget == 0) break;
        eseq_t *s = &e->seqs[pick];
        waiting++;
        if (!s->admitted) { // reserve pages for its whole life, or wait for others to finish
            int need = seq_pages_to_come(e, s);
            if (need > free_pages - reserved) break;
            s->admitted = 1;
            reserved += need;
        }
        int left = s->n_prompt - s->n_cached, take = left < budget ? left : budget;
        int last = take == left;
        e->chunks[nc] = (qwen3_chunk_t){s->kv, s->tokens + s->n_cached, take,
                                        last && s->gen.max_new_tokens > 0};
        e->chunk_seq[nc++] = pick;
        s->in_batch = 1;
        budget -= take;
    }
    if (nc == 0) {
        if (waiting)
            return err_set("engine: the KV cache (%d pages of %d tokens) cannot hold the next waiting "
                           "sequence even with nothing else running", e->kv.n_pages, e->kv.page_size);
        return 0;
    }

    if (qwen3_forward(e->m, &e->st, &e->kv, e->chunks, nc) < 0) return -1;

    // sample every sequence whose logits came out, in parallel (each row is independent)
    int row = 0, n_ev = 0;
    for (int j = 0; j < nc; j++) {
        eseq_t *s = &e->seqs[e->chunk_seq[j]];
        s->n_cached += e->chunks[j].n;
        if (e->chunks[j].n_logits) s->logit_row = row++;
    }
    int fail = -1; // a chunk whose sampling failed (its message in fail_msg)
    int hook_fail = -1; // a chunk whose logits hook failed
    char fail_msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1) if (row > 1)
    for (int j = 0; j < nc; j++) {
        eseq_t *s = &e->seqs[e->chunk_seq[j]];
        if (!e->chunks[j].n_logits) continue;
        int32_t tok;
        float lp;
        int rc = sample_row(e, s, omp_get_thread_num(), &tok, &lp);
        if (rc == -2) {
#pragma omp atomic write
            hook_fail = j;
            continue;
        }
        if (rc) {
#pragma omp critical(engine_fail)
            {
                fail = j;
                snprintf(fail_msg, sizeof fail_msg, "%s", err_msg());
            }
            continue;
        }
        s->tokens[s->n_tokens] = tok;
        s->logprobs[s->n_generated] = lp;
    }
    if (hook_fail >= 0)
        return err_set("engine: sequence %d: the logits hook failed", e->chunk_seq[hook_fail]);
    if (fail >= 0) return err_set("engine: sequence %d: %s", e->chunk_seq[fail], fail_msg);

    // stop conditions and events, in batch order
    for (int j = 0; j < nc; j++) {
        int id = e->chunk_seq[j];
        eseq_t *s = &e->seqs[id];
        if (!e->chunks[j].n_logits) {
            if (s->n_cached == s->n_prompt && s->gen.max_new_tokens == 0) { // prefill-only: keep
                s->state = SEQ_KEPT;
                events[n_ev++] = (engine_event_t){id, -1, 0.0f, ENGINE_PREFILLED};
            }
            continue;
        }
        int32_t tok = s->tokens[s->n_tokens];
        float lp = s->logprobs[s->n_generated];
        s->n_tokens++;
        s->n_generated++;
        int finish = ENGINE_RUNNING;
        if (!s->gen.ignore_stop_ids)
            for (int i = 0; i < s->gen.n_stop_ids; i++)
                if (tok == s->stop_ids[i]) finish = ENGINE_STOP_ID;
        if (!finish && seq_stop_string(e, s, tok)) finish = ENGINE_STOP_STRING;
        if (!finish && (s->n_generated >= s->gen.max_new_tokens || s->n_tokens >= e->o.max_seq_len))
            finish = ENGINE_STOP_LENGTH;
        if (finish) {
            s->state = SEQ_FINISHED;
            seq_drop_cache(e, s);
        } else {
            s->state = SEQ_RUNNING;
        }
        events[n_ev++] = (engine_event_t){id, tok, lp, finish};
    }
    return n_ev;
}
