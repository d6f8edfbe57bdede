// learner/sft.h + sim/oracle.h as a library, the way `trustee train` warm-starts a policy:
// an oracle dataset of 2 environments x 4 tasks (luaenv_oracle_dataset), rendered with the
// embedded Qwen3 tokenizer (learner_sft_render, episode layout), trains a tiny random-init Qwen3
// with the full Qwen3 vocabulary (hidden 32, 1 layer) in-process (learner_sft_run); ~35 s on one
// core (the LM head over 151,936 ids at the ~640 assistant tokens dominates). Asserts:
//   - the dataset: 8 conversations, envs in order (the first 4 have airline tools, the last 4
//     banking tools), each {"messages", "tools"} whose first message is the system prompt, and the
//     same call again gives the same JSON (a pure function of its arguments);
//   - rendering: assistant tokens only where the mask says, mask[0] = 0, every id < 151,936, the
//     episode layout is longer than the HF one (the empty think block before every tool-call turn
//     but the last), and a max_len below the length is an error naming `where`;
//   - training: the loss falls to less than half of the first step's (ln 151936 = 11.93 at init);
//   - determinism: two short runs from the same initial weights with the same seed give bitwise
//     identical weights (and losses); a different shuffle seed gives different ones;
//   - the token counts: 14 steps x 4 = 7 epochs of the 8 examples.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/err.h"
#include "learner/sft.h"
#include "model/config.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "sim/oracle.h"
#include "test.h"

#define VOCAB 151936
#define HIDDEN 32
#define INTER 64
#define LAYERS 1
#define HEADS 4
#define KV_HEADS 2
#define HEAD_DIM 8

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double normal(uint64_t key, uint64_t i) {
    double u1 = ((double)(mix(key * 2654435761ull + 2 * i + 1) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(mix(key * 2654435761ull + 2 * i + 2) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

// writes a random-init Qwen3 (HF init: matrices ~ normal(0, 0.02), norms 1), tied embeddings
static int make_model(const char *dir) {
    qwen3_config_t c = {.vocab_size = VOCAB, .hidden_size = HIDDEN, .intermediate_size = INTER,
                        .num_hidden_layers = LAYERS, .num_attention_heads = HEADS,
                        .num_key_value_heads = KV_HEADS, .head_dim = HEAD_DIM,
                        .max_position_embeddings = 4096, .rms_norm_eps = 1e-6, .rope_theta = 1000000,
                        .tie_word_embeddings = 1, .bos_token_id = -1, .eos_token_id = 151645};
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    char path[512];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (qwen3_config_write(&c, path)) return -1;
    const int C = HIDDEN, I = INTER, Q = HEADS * HEAD_DIM, K = KV_HEADS * HEAD_DIM, D = HEAD_DIM;
    struct {
        const char *fmt;
        int d0, d1;
    } spec[] = {{"model.layers.%d.input_layernorm.weight", C, 0}, {"model.layers.%d.self_attn.q_proj.weight", Q, C},
                {"model.layers.%d.self_attn.k_proj.weight", K, C}, {"model.layers.%d.self_attn.v_proj.weight", K, C},
                {"model.layers.%d.self_attn.o_proj.weight", C, Q}, {"model.layers.%d.self_attn.q_norm.weight", D, 0},
                {"model.layers.%d.self_attn.k_norm.weight", D, 0},
                {"model.layers.%d.post_attention_layernorm.weight", C, 0},
                {"model.layers.%d.mlp.gate_proj.weight", I, C}, {"model.layers.%d.mlp.up_proj.weight", I, C},
                {"model.layers.%d.mlp.down_proj.weight", C, I}};
    enum { NS = 11, NT = 2 + NS * LAYERS };
    st_tensor_t t[NT];
    char names[NT][96];
    int n = 0, rc = 0;
    for (int k = -1; k < NS * LAYERS + 1; k++) {
        int d0, d1;
        if (k == -1) snprintf(names[n], 96, "model.embed_tokens.weight"), d0 = VOCAB, d1 = C;
        else if (k == NS * LAYERS) snprintf(names[n], 96, "model.norm.weight"), d0 = C, d1 = 0;
        else snprintf(names[n], 96, spec[k % NS].fmt, k / NS), d0 = spec[k % NS].d0, d1 = spec[k % NS].d1;
        int64_t numel = (int64_t)d0 * (d1 ? d1 : 1);
        float *buf = malloc((size_t)numel * sizeof *buf);
        if (!buf) rc = -1;
        for (int64_t i = 0; buf && i < numel; i++)
            buf[i] = d1 ? (float)(0.02 * normal((uint64_t)(k + 2), (uint64_t)i)) : 1.0f;
        t[n] = (st_tensor_t){names[n], DTYPE_F32, d1 ? 2 : 1, {d0, d1}, buf, (size_t)numel * sizeof(float)};
        n++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = safetensors_write(path, t, n);
    for (int i = 0; i < n; i++) free((void *)t[i].data);
    return rc;
}

// 1 when every parameter of a and b is bitwise equal
static int same_weights(qwen3_t *a, qwen3_t *b) {
    qwen3_param_t pa[256], pb[256];
    int na = qwen3_params(a, pa, 256), nb = qwen3_params(b, pb, 256);
    if (na < 0 || na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (tensor_nbytes(pa[i].t) != tensor_nbytes(pb[i].t) ||
            memcmp(pa[i].t->data, pb[i].t->data, tensor_nbytes(pa[i].t)))
            return 0;
    return 1;
}

static const char *tool_name(const json_t *conv, size_t i) {
    return json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(conv, "tools"), i), "function"), "name"));
}

int main(void) {
    // ---- the oracle dataset ----
    const char *envs[] = {"airline", "banking"};
    json_t *ds = luaenv_oracle_dataset(envs, 2, 4, 100, 1, 60);
    REQUIRE(ds, "luaenv_oracle_dataset: %s", err_msg());
    REQUIRE(json_array_size(ds) == 8, "expected 8 conversations, found %zu", json_array_size(ds));
    json_t *ds2 = luaenv_oracle_dataset(envs, 2, 4, 100, 1, 60);
    REQUIRE(ds2, "%s", err_msg());
    CHECK(json_equal(ds, ds2), "the same arguments gave a different dataset");
    json_decref(ds2);
    // airline and banking tool sets are disjoint: the tools name the env of each conversation
    luaenv_t *air = luaenv_open("airline");
    REQUIRE(air, "%s", err_msg());
    json_t *air_info = luaenv_info(air);
    for (size_t i = 0; i < 8; i++) {
        json_t *conv = json_array_get(ds, i);
        json_t *msgs = json_object_get(conv, "messages");
        CHECK(json_is_array(msgs) && json_array_size(msgs) >= 3, "conversation %zu: messages", i);
        CHECK(!strcmp(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system"),
              "conversation %zu: first message is not the system prompt", i);
        const char *t0 = tool_name(conv, 0);
        REQUIRE(t0, "conversation %zu: no tools", i);
        int in_air = 0;
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(air_info, "tools"), j, v)
            in_air |= !strcmp(json_string_value(json_object_get(json_object_get(v, "function"), "name")), t0);
        CHECK(in_air == (i < 4), "conversation %zu: tool %s, expected an %s tool", i, t0, i < 4 ? "airline" : "banking");
    }
    json_decref(air_info);
    luaenv_free(air);
    const char *bad_envs[] = {"airline", "no_such_env"};
    CHECK(!luaenv_oracle_dataset(bad_envs, 2, 1, 0, 1, 1) && strstr(err_msg(), "no_such_env"),
          "an unknown env: %s", err_msg());
    CHECK(!luaenv_oracle_dataset(envs, 2, 1, 0, 0, 100), "d_lo 0 accepted");

    // ---- rendering ----
    tokenizer_t *tok = tokenizer_load_dir(NULL, 1);
    REQUIRE(tok, "tokenizer: %s", err_msg());
    learner_sft_example_t ex[8];
    int64_t n_tok = 0, n_loss = 0;
    for (int i = 0; i < 8; i++) {
        char where[32];
        snprintf(where, sizeof where, "oracle[%d]", i);
        json_t *conv = json_array_get(ds, (size_t)i);
        REQUIRE(learner_sft_render(tok, conv, 1, 4096, where, &ex[i]) == 0, "%s", err_msg());
        int ok = ex[i].mask[0] == 0, cnt = 0;
        for (int t = 0; t < ex[i].n; t++) {
            ok &= ex[i].ids[t] >= 0 && ex[i].ids[t] < VOCAB && ex[i].mask[t] <= 1;
            cnt += ex[i].mask[t];
        }
        CHECK(ok && cnt == ex[i].n_loss && cnt > 0 && !ex[i].cut, "example %d: ids / mask", i);
        // the last target is <|im_end|> (151645) of the final assistant turn, then "\n" (mask 0)
        CHECK(ex[i].ids[ex[i].n - 2] == 151645 && ex[i].mask[ex[i].n - 2] == 1 && ex[i].mask[ex[i].n - 1] == 0,
              "example %d: ends with ids %d %d mask %d %d", i, ex[i].ids[ex[i].n - 2], ex[i].ids[ex[i].n - 1],
              ex[i].mask[ex[i].n - 2], ex[i].mask[ex[i].n - 1]);
        learner_sft_example_t hf;
        REQUIRE(learner_sft_render(tok, conv, 0, 4096, where, &hf) == 0, "%s", err_msg());
        // the oracle calls at least one tool before its final answer: >= one extra empty think block
        CHECK(ex[i].n >= hf.n + 4 && (ex[i].n - hf.n) % 4 == 0, "example %d: episode %d tokens, hf %d", i,
              ex[i].n, hf.n);
        learner_sft_example_free(&hf);
        n_tok += ex[i].n;
        n_loss += ex[i].n_loss;
    }
    learner_sft_example_t tmp;
    CHECK(learner_sft_render(tok, json_array_get(ds, 0), 1, ex[0].n - 1, "oracle[0]", &tmp) == -1 &&
              strstr(err_msg(), "oracle[0]") && strstr(err_msg(), "max_len"),
          "too long: %s", err_msg());
    CHECK(learner_sft_render_cut(tok, json_array_get(ds, 0), 1, ex[0].n - 1, "oracle[0]", &tmp) == 0 &&
              tmp.cut == 1 && tmp.n == ex[0].n - 1 && !memcmp(tmp.ids, ex[0].ids, (size_t)tmp.n * 4),
          "cut: %s", err_msg());
    learner_sft_example_free(&tmp);
    printf("dataset: 8 oracle conversations, %lld tokens, %lld assistant tokens\n", (long long)n_tok,
           (long long)n_loss);

    // ---- training ----
    char dir[] = "/tmp/test_sftlib_XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    REQUIRE(make_model(dir) == 0, "make_model: %s", err_msg());
    qwen3_t m1, m2, m3, m4;
    REQUIRE(qwen3_load(&m1, dir, DEVICE_CPU) == 0, "%s", err_msg());
    REQUIRE(qwen3_load(&m2, dir, DEVICE_CPU) == 0, "%s", err_msg());
    REQUIRE(qwen3_load(&m3, dir, DEVICE_CPU) == 0, "%s", err_msg());
    REQUIRE(qwen3_load(&m4, dir, DEVICE_CPU) == 0, "%s", err_msg());
    CHECK(same_weights(&m1, &m2), "two loads differ");

    learner_sft_opts_t o;
    learner_sft_opts_default(&o);
    CHECK(o.steps == 100 && o.batch == 8 && o.micro_batch == 0 && o.max_len == 2048 && o.lr == 1e-5 &&
              o.min_lr < 0 && o.weight_decay == 0.01 && o.clip_norm == 1.0 && o.beta1 == 0.9 &&
              o.beta2 == 0.999 && o.warmup == 0 && o.seed == 0 && o.recompute == 0,
          "defaults differ from trustee sft's");
    o.steps = 14;
    o.batch = 4;
    o.micro_batch = 2;
    o.max_len = 4096;
    o.lr = 2e-2;
    o.min_lr = 2e-3;
    o.warmup = 1;
    o.seed = 7;
    o.log_every = 2;
    learner_sft_result_t r1, r2, r3, r4;
    REQUIRE(learner_sft_run(&m1, ex, 8, &o, &r1) == 0, "%s", err_msg());
    printf("run 1: %d steps, loss %.4f -> %.4f, %lld tokens (%lld assistant), %.1f s\n", r1.steps_done,
           r1.first_loss, r1.last_loss, (long long)r1.tokens, (long long)r1.loss_tokens, r1.seconds);
    CHECK(r1.steps_done == 14 && r1.n_skipped == 0, "steps %d skipped %d", r1.steps_done, r1.n_skipped);
    CHECK(fabs(r1.first_loss - log((double)VOCAB)) < 0.5, "first loss %.4f, expected about ln V = %.4f",
          r1.first_loss, log((double)VOCAB));
    CHECK(r1.last_loss < 0.5 * r1.first_loss, "loss %.4f -> %.4f: expected below half", r1.first_loss, r1.last_loss);
    // 14 steps x 4 examples = 7 epochs of 8: every example 7 times
    CHECK(r1.tokens == 7 * n_tok && r1.loss_tokens == 7 * n_loss, "tokens %lld (loss %lld), expected 7 x %lld (%lld)",
          (long long)r1.tokens, (long long)r1.loss_tokens, (long long)n_tok, (long long)n_loss);

    // determinism: short runs (one epoch in 4 steps of 2, micro-batches of 1, recomputing activations)
    o.steps = 4;
    o.batch = 2;
    o.micro_batch = 1;
    o.recompute = 1;
    o.log_every = 0;
    REQUIRE(learner_sft_run(&m2, ex, 8, &o, &r2) == 0, "%s", err_msg());
    REQUIRE(learner_sft_run(&m3, ex, 8, &o, &r3) == 0, "%s", err_msg());
    int same23 = same_weights(&m2, &m3);
    CHECK(same23, "two runs with the same seed gave different weights");
    CHECK(r2.first_loss == r3.first_loss && r2.last_loss == r3.last_loss,
          "losses differ: %.17g %.17g vs %.17g %.17g", r2.first_loss, r2.last_loss, r3.first_loss, r3.last_loss);
    CHECK(!same_weights(&m1, &m2), "different options gave the same weights");
    o.seed = 8;
    REQUIRE(learner_sft_run(&m4, ex, 8, &o, &r4) == 0, "%s", err_msg());
    int same24 = same_weights(&m2, &m4);
    CHECK(!same24, "another shuffle seed gave the same weights");
    printf("runs 2, 3 (seed 7): loss %.4f -> %.4f, bitwise identical weights: %s; run 4 (seed 8): loss %.4f -> "
           "%.4f, weights differ: %s\n",
           r2.first_loss, r2.last_loss, same23 ? "yes" : "NO", r4.first_loss, r4.last_loss, same24 ? "NO" : "yes");

    // stop_loss: the run stops at the first step whose last-stop_window mean loss is below it; with
    // a bound every loss is under, that is step stop_window, and the mean is that of its two losses
    learner_sft_opts_t os = o;
    learner_sft_result_t r5, r6;
    os.stop_window = 2, os.stop_loss = 1e9;
    REQUIRE(learner_sft_run(&m4, ex, 8, &os, &r5) == 0, "%s", err_msg());
    CHECK(r5.stopped == 1 && r5.steps_done == 2 && fabs(r5.window_loss - 0.5 * (r5.first_loss + r5.last_loss)) < 1e-12,
          "stop_loss 1e9, window 2: stopped %d after %d steps, window loss %.6f (losses %.6f %.6f)", r5.stopped,
          r5.steps_done, r5.window_loss, r5.first_loss, r5.last_loss);
    os.stop_loss = 1e-9; // never reached: every step runs
    REQUIRE(learner_sft_run(&m4, ex, 8, &os, &r6) == 0, "%s", err_msg());
    CHECK(r6.stopped == 0 && r6.steps_done == o.steps, "stop_loss 1e-9: stopped %d after %d of %d steps", r6.stopped,
          r6.steps_done, o.steps);
    printf("stop_loss: 1e9 stopped after %d steps (window mean %.4f); 1e-9 ran %d of %d\n", r5.steps_done,
           r5.window_loss, r6.steps_done, o.steps);

    // bad input
    learner_sft_opts_t ob = o;
    ob.max_len = ex[0].n - 1;
    CHECK(learner_sft_run(&m3, ex, 1, &ob, NULL) == -1 && strstr(err_msg(), "max_len"), "max_len: %s", err_msg());
    ob = o;
    ob.micro_batch = ob.batch + 1;
    CHECK(learner_sft_run(&m3, ex, 8, &ob, NULL) == -1, "micro_batch > batch accepted");
    ob = o;
    ob.stop_window = -1;
    CHECK(learner_sft_run(&m3, ex, 8, &ob, NULL) == -1 && strstr(err_msg(), "stop_window"), "stop_window -1: %s",
          err_msg());

    for (int i = 0; i < 8; i++) learner_sft_example_free(&ex[i]);
    qwen3_free(&m1);
    qwen3_free(&m2);
    qwen3_free(&m3);
    qwen3_free(&m4);
    tokenizer_free(tok);
    json_decref(ds);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    return test_exit("test_sftlib");
}
