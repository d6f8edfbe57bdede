// qwen3_init_random (model/qwen3.h): a model with random weights made directly on a device and
// storage dtype, no checkpoint.
//   (no argument)  CPU: the weights' statistics and determinism, BF16 storage = the F32 weights
//                  rounded, prefill logits = token-by-token decode logits, an output restriction
//                  gives the listed columns of the full logits.
//   --cuda         the inference path on CUDA with BF16 weights against the CPU forward of the same
//                  weights in F32 (prefill of a batch of two prompts, then batched decode steps,
//                  with and without an output restriction); exits 77 (skip) without a usable device.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/qwen3.h"
#include "test.h"

static qwen3_config_t tiny_config(int tied) {
    qwen3_config_t c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 1024;
    c.hidden_size = 64;
    c.intermediate_size = 192;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.max_position_embeddings = 256;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1e6;
    c.tie_word_embeddings = tied;
    c.bos_token_id = c.eos_token_id = -1;
    return c;
}

// every weight of m in a fixed order (the lm_head view of a tied model is skipped); returns count
static int weights_of(qwen3_t *m, tensor_t **out) {
    int n = 0;
    out[n++] = &m->embed;
    out[n++] = &m->final_norm;
    if (!m->cfg.tie_word_embeddings) out[n++] = &m->lm_head;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        qwen3_layer_t *w = &m->layers[l];
        tensor_t *ts[] = {&w->input_norm, &w->wq, &w->wk, &w->wv, &w->wo, &w->q_norm,
                          &w->k_norm, &w->post_norm, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 11; i++) out[n++] = ts[i];
    }
    return n;
}

static int is_norm(const tensor_t *t) { return t->ndim == 1; }

static void check_statistics(qwen3_t *m) {
    tensor_t *ts[64];
    int n = weights_of(m, ts);
    const double a = 0.02 * sqrt(3.0);
    for (int i = 0; i < n; i++) {
        const float *p = ts[i]->data;
        int64_t k = tensor_numel(ts[i]);
        CHECK(ts[i]->dtype == DTYPE_F32 && ts[i]->device == DEVICE_CPU, "tensor %d", i);
        if (is_norm(ts[i])) {
            int ones = 1;
            for (int64_t j = 0; j < k; j++) ones &= p[j] == 1.0f;
            CHECK(ones, "norm tensor %d is not all ones", i);
            continue;
        }
        double s = 0, s2 = 0, mx = 0;
        for (int64_t j = 0; j < k; j++) {
            s += p[j];
            s2 += (double)p[j] * p[j];
            if (fabs(p[j]) > mx) mx = fabs(p[j]);
        }
        double mean = s / k, sd = sqrt(s2 / k - mean * mean);
        // uniform(-a, a): mean 0 (sd of the sample mean 0.02 / sqrt(k)), sd 0.02 (rel. sd of the
        // sample sd sqrt(0.8 / 4k) for a uniform), bounded by a
        CHECK(fabs(mean) < 5 * 0.02 / sqrt((double)k), "tensor %d: mean %g over %lld", i, mean, (long long)k);
        CHECK(fabs(sd / 0.02 - 1) < 5 * sqrt(0.2 / k) + 1e-6, "tensor %d: sd %g", i, sd);
        CHECK(mx < a && mx > 0.9 * a, "tensor %d: max |w| %g, bound %g", i, mx, a);
    }
    // no two tensors alike: the first elements of wq / wk / layer 1 wq differ
    if (m->cfg.num_hidden_layers > 1) {
        const float *q0 = m->layers[0].wq.data, *k0 = m->layers[0].wk.data, *q1 = m->layers[1].wq.data;
        CHECK(memcmp(q0, k0, 64 * 4) != 0 && memcmp(q0, q1, 64 * 4) != 0, "tensors repeat");
    }
}

static int same_weights(qwen3_t *a, qwen3_t *b) {
    tensor_t *ta[64], *tb[64];
    int n = weights_of(a, ta);
    if (weights_of(b, tb) != n) return 0;
    for (int i = 0; i < n; i++)
        if (tensor_nbytes(ta[i]) != tensor_nbytes(tb[i]) || memcmp(ta[i]->data, tb[i]->data, tensor_nbytes(ta[i])))
            return 0;
    return 1;
}

// a model, a cache and a state on one device
typedef struct {
    qwen3_t m;
    kvcache_t kv;
    qwen3_state_t s;
} rig_t;

static int rig_init(rig_t *r, const qwen3_config_t *c, device_t dev, dtype_t dt, uint64_t seed) {
    memset(r, 0, sizeof *r);
    if (qwen3_init_random(&r->m, c, dev, dt, seed)) return -1;
    if (qwen3_kvcache_init(&r->m, &r->kv, 64, 8, 8, 128)) return -1;
    return qwen3_state_init(&r->s, &r->m, &r->kv, 64, 8, 64);
}

static void rig_free(rig_t *r) {
    qwen3_state_free(&r->s);
    kvcache_free(&r->kv);
    qwen3_free(&r->m);
}

static int32_t token(int i) { return (int32_t)((i * 7919 + 13) % 1024); }

// CPU: prefill of 12 tokens (logits at every row) = one token at a time
static void check_prefill_vs_decode(const qwen3_config_t *c) {
    rig_t r;
    if (rig_init(&r, c, DEVICE_CPU, DTYPE_F32, 11)) {
        CHECK(0, "rig: %s", err_msg());
        rig_free(&r);
        return;
    }
    enum { T = 12 };
    const int V = c->vocab_size;
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = token(i);
    int s1 = kvcache_seq_new(&r.kv), s2 = kvcache_seq_new(&r.kv);
    qwen3_chunk_t ch = {s1, ids, T, T};
    int R = qwen3_forward(&r.m, &r.s, &r.kv, &ch, 1);
    CHECK(R == T, "prefill: %d rows: %s", R, err_msg());
    float *full = malloc(sizeof(float) * T * V);
    memcpy(full, r.s.h_logits, sizeof(float) * T * V);
    double maxdiff = 0, maxabs = 0;
    int finite = 1;
    for (int t = 0; t < T; t++) {
        qwen3_chunk_t d = {s2, ids + t, 1, 1};
        CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &d, 1) == 1, "decode %d: %s", t, err_msg());
        for (int v = 0; v < V; v++) {
            float x = full[t * V + v], y = r.s.h_logits[v];
            finite &= isfinite(x) && isfinite(y);
            if (fabs(x - y) > maxdiff) maxdiff = fabs(x - y);
            if (fabs(x) > maxabs) maxabs = fabs(x);
        }
    }
    CHECK(finite, "non-finite logits");
    CHECK(maxabs > 1e-3, "logits all ~0 (max %g)", maxabs);
    CHECK(maxdiff <= 1e-4 * (1 + maxabs), "prefill vs decode: max diff %g (max |logit| %g)", maxdiff, maxabs);
    printf("cpu: prefill vs decode over %d positions: max |diff| %.3g, max |logit| %.3g\n", T, maxdiff, maxabs);

    // output restriction: compact rows = the listed columns of the full rows (bit-identical)
    int32_t listed[] = {0, 5, 17, 300, 1023};
    const int n = 5;
    CHECK(qwen3_set_output_vocab(&r.m, listed, n) == 0, "%s", err_msg());
    CHECK(r.m.lm_head_sub.dtype == DTYPE_F32, "W_sub dtype %s", dtype_name(r.m.lm_head_sub.dtype));
    int s3 = kvcache_seq_new(&r.kv);
    qwen3_chunk_t c3 = {s3, ids, T, T};
    CHECK(qwen3_forward(&r.m, &r.s, &r.kv, &c3, 1) == T && r.s.logits_cols == n, "%s", err_msg());
    int same = 1;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++) same &= r.s.h_logits[t * n + j] == full[t * V + listed[j]];
    CHECK(same, "restricted logits differ from the full logits' columns");
    free(full);
    rig_free(&r);
}

static int run_cpu(void) {
    for (int tied = 0; tied <= 1; tied++) {
        qwen3_config_t c = tiny_config(tied);
        qwen3_t a, b, d, h;
        REQUIRE(qwen3_init_random(&a, &c, DEVICE_CPU, DTYPE_F32, 7) == 0, "%s", err_msg());
        CHECK(a.lm_head.data == (tied ? a.embed.data : a.lm_head.data) && (tied || a.lm_head.data != a.embed.data),
              "tied %d: lm_head", tied);
        check_statistics(&a);
        REQUIRE(qwen3_init_random(&b, &c, DEVICE_CPU, DTYPE_F32, 7) == 0, "%s", err_msg());
        CHECK(same_weights(&a, &b), "the same seed gave other weights");
        REQUIRE(qwen3_init_random(&d, &c, DEVICE_CPU, DTYPE_F32, 8) == 0, "%s", err_msg());
        CHECK(!same_weights(&a, &d), "another seed gave the same weights");
        // BF16 storage: each value is its F32 counterpart rounded to 8 significant bits
        REQUIRE(qwen3_init_random(&h, &c, DEVICE_CPU, DTYPE_BF16, 7) == 0, "%s", err_msg());
        tensor_t *ta[64], *th[64];
        int n = weights_of(&a, ta);
        CHECK(weights_of(&h, th) == n, "count");
        int64_t bad = 0, exact = 0, total = 0;
        for (int i = 0; i < n; i++) {
            CHECK(th[i]->dtype == DTYPE_BF16, "dtype");
            const float *f = ta[i]->data;
            const uint16_t *g = th[i]->data;
            for (int64_t j = 0; j < tensor_numel(ta[i]); j++) {
                uint32_t bits = (uint32_t)g[j] << 16;
                float x;
                memcpy(&x, &bits, 4);
                double err = fabs((double)x - f[j]);
                if (err > ldexp(fabs(f[j]), -8)) bad++; // half an ulp of an 8-bit significand
                exact += x == f[j];
                total++;
            }
        }
        CHECK(bad == 0, "%lld of %lld BF16 values are not the F32 values rounded", (long long)bad, (long long)total);
        CHECK(exact < total / 2 + 64 * 32, "BF16 values were not rounded (%lld exact)", (long long)exact);
        // the argument checks
        qwen3_t e;
        c.num_key_value_heads = 3;
        CHECK(qwen3_init_random(&e, &c, DEVICE_CPU, DTYPE_F32, 1) == -1, "a bad config was accepted");
        c = tiny_config(tied);
        CHECK(qwen3_init_random(&e, &c, DEVICE_CPU, DTYPE_I32, 1) == -1, "I32 weights were accepted");
        qwen3_free(&a);
        qwen3_free(&b);
        qwen3_free(&d);
        qwen3_free(&h);
        check_prefill_vs_decode(&c);
    }
    return test_exit("model_random");
}

// ---------------------------------------------------------------------------------------------
// CUDA: BF16 weights on the device against the CPU forward of the same weights in F32

// logits of `dev` rows vs reference rows: max |diff| relative to the reference's max |logit|
static double rel_diff(const float *a, const float *ref, int64_t n) {
    double md = 0, ma = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        md = fmax(md, fabs((double)a[i] - ref[i]));
        ma = fmax(ma, fabs((double)ref[i]));
    }
    return md / (ma > 0 ? ma : 1);
}

static int run_cuda(void) {
    if (!kernels_backend_available(DEVICE_CUDA)) {
#ifdef TRUSTEE_CUDA
        printf("SKIP: no usable CUDA device\n");
#else
        printf("SKIP: built without CUDA\n");
#endif
        return 77;
    }
    for (int tied = 0; tied <= 1; tied++) {
        qwen3_config_t c = tiny_config(tied);
        rig_t cpu, gpu;
        REQUIRE(rig_init(&gpu, &c, DEVICE_CUDA, DTYPE_BF16, 5) == 0, "cuda rig: %s", err_msg());
        REQUIRE(rig_init(&cpu, &c, DEVICE_CPU, DTYPE_F32, 5) == 0, "cpu rig: %s", err_msg());
        // the CPU reference holds the same weights rounded to BF16 (bit-exact: compare one back)
        tensor_t *tc[64], *tg[64];
        int n = weights_of(&cpu.m, tc);
        CHECK(weights_of(&gpu.m, tg) == n, "count");
        int64_t mism = 0;
        for (int i = 0; i < n; i++) {
            int64_t k = tensor_numel(tc[i]);
            tensor_t h16;
            REQUIRE(tensor_alloc(&h16, DTYPE_BF16, DEVICE_CPU, tc[i]->ndim, tc[i]->shape) == 0, "alloc");
            REQUIRE(tensor_copy(&h16, tc[i]) == 0 && tensor_copy(tc[i], &h16) == 0, "%s", err_msg());
            tensor_t back;
            REQUIRE(tensor_alloc(&back, DTYPE_BF16, DEVICE_CPU, tc[i]->ndim, tc[i]->shape) == 0, "alloc");
            REQUIRE(tensor_copy(&back, tg[i]) == 0, "%s", err_msg());
            mism += memcmp(back.data, h16.data, (size_t)k * 2) != 0;
            tensor_free(&h16);
            tensor_free(&back);
        }
        CHECK(mism == 0, "%lld CUDA weight tensors differ from the CPU's rounded to BF16", (long long)mism);

        for (int restricted = 0; restricted <= 1; restricted++) {
            if (restricted) {
                int32_t listed[] = {1, 2, 64, 500, 777, 1000};
                CHECK(qwen3_set_output_vocab(&cpu.m, listed, 6) == 0, "%s", err_msg());
                CHECK(qwen3_set_output_vocab(&gpu.m, listed, 6) == 0, "%s", err_msg());
                CHECK(gpu.m.lm_head_sub.dtype == DTYPE_BF16, "W_sub dtype %s", dtype_name(gpu.m.lm_head_sub.dtype));
            }
            // a batch of two prompts (lengths 9 and 20), then 5 batched decode steps
            int32_t p1[9], p2[20];
            for (int i = 0; i < 20; i++) {
                if (i < 9) p1[i] = token(i + 100);
                p2[i] = token(i + 300);
            }
            rig_t *rs[2] = {&cpu, &gpu};
            int seqs[2][2];
            for (int d = 0; d < 2; d++) {
                seqs[d][0] = kvcache_seq_new(&rs[d]->kv);
                seqs[d][1] = kvcache_seq_new(&rs[d]->kv);
            }
            int W = restricted ? 6 : c.vocab_size;
            float *ref = malloc(sizeof(float) * 32 * W);
            double worst = 0;
            for (int step = 0; step <= 5; step++) {
                int R[2];
                for (int d = 0; d < 2; d++) {
                    int32_t t1 = token(step + 50), t2 = token(step + 60);
                    qwen3_chunk_t ch[2];
                    if (step == 0) {
                        ch[0] = (qwen3_chunk_t){seqs[d][0], p1, 9, 2};
                        ch[1] = (qwen3_chunk_t){seqs[d][1], p2, 20, 1};
                    } else {
                        ch[0] = (qwen3_chunk_t){seqs[d][0], &t1, 1, 1};
                        ch[1] = (qwen3_chunk_t){seqs[d][1], &t2, 1, 1};
                    }
                    R[d] = qwen3_forward(&rs[d]->m, &rs[d]->s, &rs[d]->kv, ch, 2);
                    CHECK(R[d] == (step == 0 ? 3 : 2), "%s step %d: %d rows: %s", d ? "cuda" : "cpu", step,
                          R[d], err_msg());
                    CHECK(rs[d]->s.logits_cols == W, "cols");
                    if (d == 0 && R[0] > 0) memcpy(ref, cpu.s.h_logits, sizeof(float) * R[0] * W);
                }
                if (R[0] != R[1] || R[0] <= 0) break;
                double rd = rel_diff(gpu.s.h_logits, ref, (int64_t)R[0] * W);
                worst = fmax(worst, rd);
            }
            // CUDA rounds each matmul input to BF16 (kernels/cuda/cuda_ops.h): ~2^-9 relative per
            // product, a few layers deep
            CHECK(worst < 3e-2, "tied %d restricted %d: CUDA logits differ from the CPU's by %.3g of the max",
                  tied, restricted, worst);
            printf("cuda (bf16 weights) vs cpu (f32), tied %d, restricted %d: max |diff| / max |logit| = %.3g\n",
                   tied, restricted, worst);
            for (int d = 0; d < 2; d++) {
                kvcache_seq_release(&rs[d]->kv, seqs[d][0]);
                kvcache_seq_release(&rs[d]->kv, seqs[d][1]);
            }
            free(ref);
        }
        rig_free(&cpu);
        rig_free(&gpu);
    }
    return test_exit("model_random_cuda");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--cuda") == 0) return run_cuda();
    return run_cpu();
}
