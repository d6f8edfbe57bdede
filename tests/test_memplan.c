// memplan (model/memplan.h) against independent references:
//  1. parameter counts written out tensor by tensor here, for Qwen3-8B and Qwen3-0.6B, and the
//     Hugging Face model cards' rounded totals (huggingface.co/Qwen/Qwen3-8B: "Number of
//     Parameters: 8.2B, Non-Embedding: 6.95B"; huggingface.co/Qwen/Qwen3-0.6B: "0.6B, Non-Embedding
//     0.44B", tied embeddings: 596.05 M counted once, 0.75 B if the embedding were counted twice);
//  2. the sum of numels in checkpoints made by torch (tests/data/qwen3-tiny: tied model, untied grads);
//  3. the bytes the code REALLY allocates: qwen3_train_init (with and without checkpointing),
//     qwen3_state_init and kvcache_init on the tiny model (F32 today: act/kv bytes = 4), summed
//     here buffer by buffer against the plan's lines;
//  4. hand-computed Qwen3-8B budget lines (bf16 weights 16.38 GB, KV 144 KiB per token, ...).
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/err.h"
#include "model/memplan.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"
#include "model/safetensors.h"
#include "test.h"

static int64_t nb(const tensor_t *t) { return t->data ? (int64_t)tensor_nbytes(t) : 0; }

static int64_t bytes_of(const memplan_t *p, const char *name) {
    int64_t b = memplan_bytes(p, name);
    CHECK(b >= 0, "no line \"%s\" in the plan", name);
    return b;
}

static int64_t save_bytes(const qwen3_layer_save_t *s) {
    return nb(&s->x_in) + nb(&s->xn1) + nb(&s->q_raw) + nb(&s->k_raw) + nb(&s->q) + nb(&s->k) + nb(&s->v) +
           nb(&s->att) + nb(&s->x_mid) + nb(&s->xn2) + nb(&s->gate) + nb(&s->up);
}

static int64_t st_numel_sum(const char *path) {
    safetensors_t st;
    if (safetensors_open(&st, path)) {
        fprintf(stderr, "%s\n", err_msg());
        return -1;
    }
    int64_t n = 0;
    for (int i = 0; i < st.n; i++) {
        int64_t e = 1;
        for (int d = 0; d < st.tensors[i].ndim; d++) e *= st.tensors[i].shape[d];
        n += e;
    }
    safetensors_close(&st);
    return n;
}

static void test_param_counts(void) {
    qwen3_config_t c;
    CHECK(memplan_preset(&c, "qwen3-8b") == 0, "preset");
    // Qwen3-8B, tensor by tensor (HF config.json: hidden 4096, 36 layers, 32 heads, 8 KV heads,
    // head_dim 128, intermediate 12288, vocab 151936, tie_word_embeddings false)
    int64_t embed = 151936LL * 4096, lm_head = 151936LL * 4096;
    int64_t q = 4096LL * 4096, k = 1024LL * 4096, v = 1024LL * 4096, o = 4096LL * 4096;
    int64_t mlp = 12288LL * 4096 * 3, norms = 4096 * 2 + 128 * 2;
    int64_t p8 = embed + lm_head + 36 * (q + k + v + o + mlp + norms) + 4096;
    CHECK(p8 == 8190735360LL, "hand count %lld", (long long)p8);
    CHECK(memplan_param_count(&c) == p8, "8B: memplan %lld, hand %lld", (long long)memplan_param_count(&c),
          (long long)p8);
    CHECK(p8 > 8.15e9 && p8 < 8.25e9, "8B card: 8.2B");
    int64_t non_emb = p8 - embed - lm_head;
    CHECK(non_emb > 6.945e9 && non_emb < 6.955e9, "8B card non-embedding 6.95B: %lld", (long long)non_emb);
    printf("Qwen3-8B: %lld params (%lld non-embedding)\n", (long long)p8, (long long)non_emb);

    CHECK(memplan_preset(&c, "qwen3-0.6b") == 0, "preset");
    // Qwen3-0.6B: hidden 1024, 28 layers, 16 heads (Hq*D = 2048 != hidden), 8 KV heads, head_dim
    // 128, intermediate 3072, tied
    int64_t e06 = 151936LL * 1024;
    int64_t l06 = 2048LL * 1024 + 1024LL * 1024 * 2 + 1024LL * 2048 + 3072LL * 1024 * 3 + 1024 * 2 + 128 * 2;
    int64_t p06 = e06 + 28 * l06 + 1024;
    CHECK(p06 == 596049920LL, "hand 0.6B %lld", (long long)p06);
    CHECK(memplan_param_count(&c) == p06, "0.6B: memplan %lld, hand %lld", (long long)memplan_param_count(&c),
          (long long)p06);
    CHECK(p06 - e06 > 0.435e9 && p06 - e06 < 0.445e9, "0.6B card non-embedding 0.44B");
    CHECK(p06 + e06 > 0.75e9 && p06 + e06 < 0.76e9, "0.6B with the embedding counted twice: 0.75B");
    printf("Qwen3-0.6B: %lld params (tied), %lld if untied\n", (long long)p06, (long long)(p06 + e06));

    // torch-made checkpoints (tests/data/qwen3-tiny: config.json tied; the untied grads list lm_head)
    CHECK(qwen3_config_load(&c, TEST_DATA_DIR "/qwen3-tiny/config.json") == 0, "%s", err_msg());
    int64_t tied = st_numel_sum(TEST_DATA_DIR "/qwen3-tiny/model.safetensors");
    CHECK(tied == memplan_param_count(&c), "tiny tied: safetensors %lld, memplan %lld", (long long)tied,
          (long long)memplan_param_count(&c));
    // untied: the same tensors plus lm_head.weight (its shape from the torch-made untied gradients)
    c.tie_word_embeddings = 0;
    int64_t untied = tied;
    safetensors_t st;
    if (safetensors_open(&st, TEST_DATA_DIR "/qwen3-tiny/sft-grads-untied.safetensors") == 0) {
        const st_tensor_t *h = safetensors_find(&st, "lm_head.weight");
        CHECK(h && h->ndim == 2, "lm_head.weight in the untied gradients");
        if (h) untied += h->shape[0] * h->shape[1];
        safetensors_close(&st);
    } else {
        CHECK(0, "%s", err_msg());
    }
    CHECK(untied == memplan_param_count(&c), "tiny untied: safetensors %lld, memplan %lld", (long long)untied,
          (long long)memplan_param_count(&c));
}

// the learner's activation lines vs qwen3_train_init's real allocations (F32: a = 4)
static void test_learner_vs_train(const qwen3_t *m, int ckpt) {
    const int B = 3, T = 20;
    qwen3_train_t tr;
    if (qwen3_train_init(&tr, m, B, T, ckpt)) {
        CHECK(0, "qwen3_train_init: %s", err_msg());
        return;
    }
    memplan_opts_t o;
    memplan_opts_default(&o, MEMPLAN_LEARNER);
    o.act_bytes = 4;
    o.micro_tokens = B * T;
    o.seq_len = T;
    o.checkpointing = ckpt;
    memplan_t p;
    CHECK(memplan_compute(&p, &m->cfg, &o) == 0, "%s", err_msg());
    int64_t saves = save_bytes(&tr.scratch);
    for (int l = 0; l < tr.n_layers; l++) saves += save_bytes(&tr.saves[l]);
    int64_t plan_act = ckpt ? bytes_of(&p, "activations: layer inputs") + bytes_of(&p, "activations: recompute")
                            : bytes_of(&p, "activations: saved");
    CHECK(saves == plan_act, "ckpt %d: saved activations %lld, plan %lld", ckpt, (long long)saves, (long long)plan_act);
    int64_t fwd = nb(&tr.x) + nb(&tr.xb) + nb(&tr.hb);
    CHECK(fwd == bytes_of(&p, "forward buffers"), "forward buffers %lld", (long long)fwd);
    int64_t bwd = nb(&tr.dx) + nb(&tr.dxb) + nb(&tr.dq) + nb(&tr.dk) + nb(&tr.dv) + nb(&tr.datt) + nb(&tr.dgate) +
                  nb(&tr.dup);
    CHECK(bwd == bytes_of(&p, "backward buffers"), "backward buffers %lld vs %lld", (long long)bwd,
          (long long)bytes_of(&p, "backward buffers"));
    int64_t loss = nb(&tr.xl) + nb(&tr.xn) + nb(&tr.dxn) + nb(&tr.lp_rows) + nb(&tr.ent_rows) + nb(&tr.dlp_rows);
    CHECK(loss == bytes_of(&p, "loss rows"), "loss rows %lld", (long long)loss);
    int64_t idx = nb(&tr.ids) + nb(&tr.pos) + nb(&tr.rows) + nb(&tr.targets) + nb(&tr.seq_info) + nb(&tr.page_table);
    CHECK(idx == bytes_of(&p, "index tensors"), "index tensors %lld vs %lld", (long long)idx,
          (long long)bytes_of(&p, "index tensors"));
    CHECK(nb(&tr.logits) == bytes_of(&p, "logits chunk"), "logits chunk %lld", (long long)nb(&tr.logits));
    printf("learner (tiny, %d x %d, checkpointing %d): activations %lld + buffers %lld bytes, as allocated\n", B, T,
           ckpt, (long long)saves, (long long)(fwd + bwd + loss + idx + nb(&tr.logits)));
    qwen3_train_free(&tr);
}

// the rollout lines vs qwen3_state_init + kvcache_init (F32: a = kv = 4)
static void test_rollout_vs_state(const qwen3_t *m) {
    const int N = 40, B = 5, S = 16, P = 12, max_len = 100;
    kvcache_t kv;
    qwen3_state_t st;
    if (qwen3_kvcache_init(m, &kv, P, S, B, max_len) || qwen3_state_init(&st, m, &kv, N, B, B)) {
        CHECK(0, "init: %s", err_msg());
        return;
    }
    memplan_opts_t o;
    memplan_opts_default(&o, MEMPLAN_ROLLOUT);
    o.act_bytes = o.kv_bytes = 4;
    o.batch_tokens = N;
    o.max_seqs = B;
    o.page_size = S;
    o.seq_len = max_len;
    o.kv_tokens = P * S;
    memplan_t p;
    CHECK(memplan_compute(&p, &m->cfg, &o) == 0, "%s", err_msg());
    int64_t fwd = nb(&st.x) + nb(&st.xb) + nb(&st.q) + nb(&st.k) + nb(&st.v) + nb(&st.att) + nb(&st.hb) + nb(&st.hb2);
    CHECK(fwd == bytes_of(&p, "forward buffers"), "forward %lld", (long long)fwd);
    CHECK(nb(&st.logits) + nb(&st.xl) == bytes_of(&p, "logits (decode rows)"), "logits");
    int64_t idx = nb(&st.ids) + nb(&st.pos) + nb(&st.slots) + nb(&st.rows) + nb(&st.seq_info) + nb(&st.page_table);
    CHECK(idx == bytes_of(&p, "index tensors"), "index %lld vs %lld", (long long)idx,
          (long long)bytes_of(&p, "index tensors"));
    int64_t kvb = 0;
    for (int l = 0; l < kv.n_layers; l++) kvb += nb(&kv.k[l]) + nb(&kv.v[l]);
    CHECK(kvb == bytes_of(&p, "KV cache"), "KV %lld vs %lld", (long long)kvb, (long long)bytes_of(&p, "KV cache"));
    CHECK(p.kv_bytes_per_token * P * S == kvb, "KV per token");
    printf("rollout (tiny): KV %lld bytes for %d tokens, forward %lld bytes, as allocated\n", (long long)kvb, P * S,
           (long long)fwd);
    qwen3_state_free(&st);
    kvcache_free(&kv);
}

static void test_qwen3_8b_budget(void) {
    qwen3_config_t c;
    memplan_preset(&c, "qwen3-8b");
    const int64_t P = 8190735360LL, GiB = 1LL << 30;
    memplan_opts_t o;
    memplan_opts_default(&o, MEMPLAN_LEARNER); // 1 learner, full state: does not fit 80 GiB
    memplan_t p;
    CHECK(memplan_compute(&p, &c, &o) == 0, "%s", err_msg());
    CHECK(bytes_of(&p, "weights") == P * 2, "bf16 weights");
    CHECK(bytes_of(&p, "weights") == 16381470720LL, "16.38 GB");
    CHECK(bytes_of(&p, "master weights") == P * 4 && bytes_of(&p, "adam m") == P * 4 && bytes_of(&p, "adam v") == P * 4,
          "fp32 master + Adam");
    CHECK(bytes_of(&p, "grads") == P * 4, "fp32 grads");
    const int64_t N = 16384, C = 4096, L = 36, I = 12288;
    CHECK(bytes_of(&p, "activations: layer inputs") == L * N * C * 2, "checkpoints");
    // recompute scratch: xn1, x_mid, xn2 (C), q_raw, q, att (32*128), k_raw, k, v (8*128), gate, up (I)
    CHECK(bytes_of(&p, "activations: recompute") == N * (3 * C + 3 * 4096 + 3 * 1024 + 2 * I) * 2, "scratch");
    CHECK(!p.fits, "8B learner with full fp32 state on 80 GiB must not fit");
    CHECK(p.total > 4 * P * 4, "at least master + m + v + grads");
    int64_t fixed = P * (2 + 4 + 4 + 4 + 4);
    CHECK(p.total > fixed && p.total < fixed + 30 * GiB, "total %lld", (long long)p.total);
    CHECK(p.max_micro_tokens == 0, "nothing fits: %lld", (long long)p.max_micro_tokens);
    char msg[512];
    memplan_shortfall(&p, msg, sizeof msg);
    CHECK(strncmp(msg, "needs ", 6) == 0 && strstr(msg, "of 80 GiB:"), "shortfall: %s", msg);
    printf("8B learner, 1 GPU: %s\n", msg);

    // 8 learners, ZeRO-2: master + Adam and grads divided by 8, plus one gradient bucket
    o.learners = 8;
    o.zero_stage = 2;
    CHECK(memplan_compute(&p, &c, &o) == 0, "%s", err_msg());
    CHECK(bytes_of(&p, "adam m") == P * 4 / 8 && bytes_of(&p, "grads") == P * 4 / 8, "sharded / 8");
    CHECK(bytes_of(&p, "grad bucket (ZeRO-2)") == 151936LL * 4096 * 4, "bucket = V x C fp32");
    CHECK(p.fits, "8 learners ZeRO-2 fit: total %.2f GiB", p.total / (double)GiB);
    CHECK(p.max_micro_tokens >= N, "largest micro-batch %lld", (long long)p.max_micro_tokens);
    // the largest micro-batch is the edge: it fits, one more token does not
    memplan_t q;
    o.micro_tokens = p.max_micro_tokens;
    memplan_compute(&q, &c, &o);
    CHECK(q.fits, "max fits");
    o.micro_tokens = p.max_micro_tokens + 1;
    memplan_compute(&q, &c, &o);
    CHECK(!q.fits, "max + 1 does not");

    // rollout actor: KV per token 2 x 36 x 8 x 128 x 2 = 147456 bytes (144 KiB)
    memplan_opts_default(&o, MEMPLAN_ROLLOUT);
    CHECK(memplan_compute(&p, &c, &o) == 0, "%s", err_msg());
    CHECK(p.kv_bytes_per_token == 2 * 36 * 8 * 128 * 2, "KV bytes per token %lld", (long long)p.kv_bytes_per_token);
    CHECK(p.kv_bytes_per_token == 147456, "144 KiB");
    int64_t rest = p.total - bytes_of(&p, "KV cache");
    CHECK(bytes_of(&p, "KV cache") == p.kv_max_tokens * 147456, "auto KV = the largest");
    CHECK(p.kv_max_tokens % 16 == 0, "whole pages");
    CHECK(rest + p.kv_max_tokens * 147456 <= p.capacity && rest + (p.kv_max_tokens + 16) * 147456 > p.capacity,
          "largest KV: one more page would not fit");
    CHECK(p.fits && p.kv_max_tokens / 8192 >= 50, "8k sequences that fit: %lld", (long long)(p.kv_max_tokens / 8192));
    printf("8B rollout: %lld KV tokens = %lld sequences of 8192\n", (long long)p.kv_max_tokens,
           (long long)(p.kv_max_tokens / 8192));
    o.kv_tokens = p.kv_max_tokens + 16; // one page over
    memplan_compute(&p, &c, &o);
    CHECK(!p.fits, "one page over the largest must not fit");

    // sim: same buffers as the rollout actor (no grads, no optimizer)
    memplan_opts_default(&o, MEMPLAN_SIM);
    CHECK(memplan_compute(&p, &c, &o) == 0, "%s", err_msg());
    CHECK(memplan_bytes(&p, "grads") < 0 && memplan_bytes(&p, "adam m") < 0, "sim has no grads / optimizer");
    CHECK(p.n <= MEMPLAN_MAX_ENTRIES - 4, "entry table has room");

    // invalid settings are errors, not plans
    memplan_opts_default(&o, MEMPLAN_LEARNER);
    o.zero_stage = 3;
    CHECK(memplan_compute(&p, &c, &o) == -1, "ZeRO-3 rejected");
    memplan_opts_default(&o, MEMPLAN_LEARNER);
    o.micro_tokens = 0;
    CHECK(memplan_compute(&p, &c, &o) == -1, "0 tokens rejected");
}

int main(void) {
    test_param_counts();
    qwen3_t m;
    if (qwen3_load(&m, TEST_DATA_DIR "/qwen3-tiny", DEVICE_CPU)) {
        fprintf(stderr, "%s\n", err_msg());
        return 1;
    }
    test_learner_vs_train(&m, 0);
    test_learner_vs_train(&m, 1);
    test_rollout_vs_state(&m);
    // weights as loaded (F32) = P x 4
    qwen3_param_t ps[qwen3_n_params(&m)];
    int n = qwen3_params(&m, ps, qwen3_n_params(&m));
    int64_t wb = 0;
    for (int i = 0; i < n; i++) wb += nb(ps[i].t);
    CHECK(wb == memplan_param_count(&m.cfg) * 4, "loaded weights %lld", (long long)wb);
    qwen3_free(&m);
    test_qwen3_8b_budget();
    return test_exit("test_memplan");
}
