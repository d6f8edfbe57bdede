// The training forward/backward of the whole model (model/qwen3_train) on the tiny checkpoint:
//  - learner log-probs equal the reference log-probs of tests/data/qwen3-tiny/sft.json (PyTorch,
//    float64) and the engine's sampling-time log-probs (model/engine.h) at temperature 1 and 0.7;
//  - the first GRPO update's ratios are exactly 1 when old log-probs are the learner's own;
//  - checkpointing (recompute per layer) gives byte-identical gradients;
//  - the LM-head chunk size does not change the result; entropies are filled on the mask only.
// (Gradients against the PyTorch reference files are checked through `trustee grad`, grad_cli.sh.)
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "learner/loss.h"
#include "model/engine.h"
#include "model/qwen3_train.h"
#include "test.h"

static qwen3_t model;

// sft.json: ids, mask, reference log-probs
static int load_case(const char *path, int *B, int *T, int32_t **ids, uint8_t **mask, double **ref) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return err_set("%s: %s", path, je.text);
    json_t *ids_j = json_object_get(root, "input_ids");
    *B = (int)json_array_size(ids_j);
    *T = (int)json_array_size(json_array_get(ids_j, 0));
    *ids = malloc((size_t)*B * *T * sizeof(int32_t));
    *mask = malloc((size_t)*B * *T);
    *ref = malloc((size_t)*B * *T * sizeof(double));
    for (int b = 0; b < *B; b++)
        for (int t = 0; t < *T; t++) {
            int i = b * *T + t;
            (*ids)[i] = (int32_t)json_integer_value(json_array_get(json_array_get(ids_j, b), t));
            (*mask)[i] = (uint8_t)json_integer_value(json_array_get(json_array_get(json_object_get(root, "loss_mask"), b), t));
            (*ref)[i] = json_number_value(json_array_get(json_array_get(json_object_get(root, "target_logprobs"), b), t));
        }
    json_decref(root);
    return 0;
}

// 1 when every gradient of two containers is byte-identical
static int grads_equal(qwen3_t *a, qwen3_t *b) {
    int n = qwen3_n_params(a);
    qwen3_param_t pa[n], pb[n];
    qwen3_params(a, pa, n);
    qwen3_params(b, pb, n);
    for (int i = 0; i < n; i++)
        if (memcmp(pa[i].t->data, pb[i].t->data, tensor_nbytes(pa[i].t)) != 0) {
            fprintf(stderr, "gradient %s differs\n", pa[i].name);
            return 0;
        }
    return 1;
}

// engine samples at `temp`, then the learner's forward on the same tokens: max |lp gap|
static double sampling_gap(float temp) {
    engine_opts_t o = {4, 64, 64, 8, 0, NULL, NULL};
    engine_t *e = engine_new(&model, &o);
    if (!e) {
        CHECK(0, "engine_new: %s", err_msg());
        return INFINITY;
    }
    const int S = 3, P = 5, G = 14, T = P + G;
    int32_t prompts[3][5] = {{865, 910, 147, 983, 946}, {1, 2, 3, 4, 5}, {700, 12, 999, 31, 400}};
    engine_gen_t g = {{temp, 0, 1.0f, 1234}, G, 0, NULL, 0, 1, NULL, 0};
    int h[3];
    for (int s = 0; s < S; s++) {
        g.stream = (uint64_t)s;
        h[s] = engine_add(e, prompts[s], P, &g, -1);
    }
    engine_event_t ev[8];
    for (int step = 0; step < 100 && engine_pending(e); step++)
        if (engine_step(e, ev, 8) < 0) CHECK(0, "engine_step: %s", err_msg());
    int32_t ids[3 * 19];
    uint8_t mask[3 * 19];
    float samp[3 * 19], lp[3 * 19];
    memset(mask, 0, sizeof mask);
    for (int s = 0; s < S; s++) {
        int n, np, nl;
        const int32_t *tok = engine_tokens(e, h[s], &n, &np);
        const float *elp = engine_logprobs(e, h[s], &nl);
        CHECK(n == T && np == P && nl == G, "sequence %d: %d tokens, %d prompt, %d log-probs", s, n, np, nl);
        for (int t = 0; t < T; t++) {
            ids[s * T + t] = tok[t];
            mask[s * T + t] = t >= P;
            samp[s * T + t] = t >= P ? elp[t - P] : 0.0f;
        }
    }
    engine_free(e);
    qwen3_train_t tr;
    if (qwen3_train_init(&tr, &model, S, T, 0)) {
        CHECK(0, "train init: %s", err_msg());
        return INFINITY;
    }
    qwen3_batch_t batch = {S, T, ids, NULL, mask};
    CHECK(qwen3_train_forward(&model, &tr, &batch, temp, lp, NULL) == S * G, "forward: %s", err_msg());
    double gap = 0;
    for (int i = 0; i < S * T; i++)
        if (mask[i]) gap = fmax(gap, fabs((double)lp[i] - samp[i]));
    qwen3_train_free(&tr);
    return gap;
}

int main(void) {
    kernels_set_threads(2);
    REQUIRE(qwen3_load(&model, TEST_DATA_DIR "/qwen3-tiny", DEVICE_CPU) == 0, "load: %s", err_msg());
    int B = 0, T = 0;
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    double *ref = NULL;
    REQUIRE(load_case(TEST_DATA_DIR "/qwen3-tiny/sft.json", &B, &T, &ids, &mask, &ref) == 0, "%s", err_msg());
    const int N = B * T;
    int32_t lengths[2] = {23, 17};
    qwen3_batch_t batch = {B, T, ids, lengths, mask};

    // ---- log-probs vs the PyTorch reference (every masked position) ----
    qwen3_train_t tr, trc;
    REQUIRE(qwen3_train_init(&tr, &model, B, T, 0) == 0, "%s", err_msg());
    REQUIRE(qwen3_train_init(&trc, &model, B, T, 1) == 0, "%s", err_msg());
    float *lp = calloc(N, 4), *lp2 = calloc(N, 4), *ent = calloc(N, 4), *dlp = calloc(N, 4);
    int R = qwen3_train_forward(&model, &tr, &batch, 1.0f, lp, ent);
    CHECK(R == 28, "28 loss positions, found %d (%s)", R, err_msg());
    double worst = 0;
    for (int i = 0; i < N; i++) {
        if (mask[i]) worst = fmax(worst, fabs(lp[i] - ref[i]));
        else CHECK(lp[i] == 0 && ent[i] == 0, "off-mask entries are 0");
        if (mask[i]) CHECK(ent[i] > 0 && ent[i] <= logf(1024.0f) + 1e-4f, "entropy %g", ent[i]);
    }
    CHECK(worst < 1e-4, "learner log-probs vs the PyTorch reference: max gap %g", worst);
    printf("learner log-probs vs PyTorch float64 reference: max |gap| %.3g\n", worst);

    // ---- the chunk size of the LM head does not matter ----
    tr.chunk_rows = 3;
    CHECK(qwen3_train_forward(&model, &tr, &batch, 1.0f, lp2, NULL) == R, "forward");
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(lp[i] - lp2[i]));
    CHECK(worst < 1e-5, "chunks of 3 rows vs 28: %g", worst);
    tr.chunk_rows = trc.chunk_rows;

    // ---- first GRPO update: old log-probs recomputed by the learner -> ratios exactly 1 ----
    CHECK(qwen3_train_forward(&model, &tr, &batch, 1.0f, lp2, NULL) == R, "forward");
    float adv[2] = {1.0f, -1.0f};
    learner_grpo_opts_t o;
    learner_grpo_opts_default(&o);
    o.beta = 0;
    learner_grpo_batch_t in = {.B = B, .T = T, .mask = mask, .lp = lp2, .old_lp = lp, .adv = adv};
    learner_grpo_metrics_t met;
    CHECK(learner_grpo_loss(&o, &in, dlp, &met) == 0, "grpo: %s", err_msg());
    CHECK(met.ratio_min == 1.0 && met.ratio_max == 1.0 && met.clip_frac == 0.0,
          "first-update ratios [%.17g, %.17g]", met.ratio_min, met.ratio_max);
    printf("first GRPO update: ratios in [%.17g, %.17g]\n", met.ratio_min, met.ratio_max);

    // ---- checkpointing gives identical gradients (temperature 0.8, GRPO dL/dlp) ----
    qwen3_t g1, g2;
    REQUIRE(qwen3_grads_init(&g1, &model) == 0 && qwen3_grads_init(&g2, &model) == 0, "%s", err_msg());
    CHECK(qwen3_train_forward(&model, &tr, &batch, 0.8f, lp, NULL) == R, "forward");
    CHECK(qwen3_train_forward(&model, &trc, &batch, 0.8f, lp2, NULL) == R, "forward (checkpoint)");
    CHECK(memcmp(lp, lp2, N * 4) == 0, "checkpointing changed the log-probs");
    CHECK(qwen3_train_backward(&model, &tr, dlp, &g1) == 0, "backward: %s", err_msg());
    CHECK(qwen3_train_backward(&model, &trc, dlp, &g2) == 0, "backward (checkpoint): %s", err_msg());
    CHECK(grads_equal(&g1, &g2), "checkpointing changed the gradients");
    // accumulation: a second backward doubles the gradients; zeroing clears them
    CHECK(qwen3_train_backward(&model, &tr, dlp, &g1) == 0, "backward again");
    float *e1 = g1.layers[0].wq.data, *e2 = g2.layers[0].wq.data;
    CHECK(e1[5] == 2 * e2[5] && e1[77] == 2 * e2[77], "gradients accumulate");
    CHECK(qwen3_grads_zero(&g1) == 0 && e1[5] == 0, "zero");

    // ---- bad batches ----
    uint8_t bad_mask[2 * 23];
    memcpy(bad_mask, mask, N);
    bad_mask[0] = 1;
    qwen3_batch_t bad = batch;
    bad.mask = bad_mask;
    CHECK(qwen3_train_forward(&model, &tr, &bad, 1.0f, lp, NULL) == -1, "mask on token 0 is an error");
    bad_mask[0] = 0;
    bad_mask[T + 20] = 1; // past row 1's length 17
    CHECK(qwen3_train_forward(&model, &tr, &bad, 1.0f, lp, NULL) == -1, "mask past the length is an error");
    bad = batch;
    bad.T = T + 1;
    CHECK(qwen3_train_forward(&model, &tr, &bad, 1.0f, lp, NULL) == -1, "a batch larger than the plan");

    // ---- sampling-time (engine) vs learner log-probs ----
    double gap1 = sampling_gap(1.0f), gap07 = sampling_gap(0.7f);
    CHECK(gap1 < 1e-4 && gap07 < 1e-4, "engine vs learner log-probs: %g (t 1), %g (t 0.7)", gap1, gap07);
    printf("engine sampling-time vs learner log-probs: max |gap| %.3g at temperature 1, %.3g at 0.7\n", gap1, gap07);

    qwen3_free(&g1);
    qwen3_free(&g2);
    qwen3_train_free(&tr);
    qwen3_train_free(&trc);
    qwen3_free(&model);
    free(lp), free(lp2), free(ent), free(dlp), free(ids), free(mask), free(ref);
    return test_exit("test_grad_model");
}
