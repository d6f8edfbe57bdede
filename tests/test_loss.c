// learner/loss: SFT loss, group advantages and the GRPO loss against the reference case
// tests/data/qwen3-tiny/grpo.json (per-token numbers from an independent PyTorch computation), a
// direct double-precision evaluation of the formulas here, finite differences, and bad input.
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "learner/loss.h"
#include "test.h"

#define MAXN 256

static int read2d(json_t *root, const char *key, int B, int T, float *out) {
    json_t *a = json_object_get(root, key);
    if (!a || (int)json_array_size(a) != B) return -1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) out[b * T + t] = (float)json_number_value(json_array_get(json_array_get(a, b), t));
    return 0;
}

// loss of the GRPO formula, straight from the case file's definition, in double
static double grpo_ref(const learner_grpo_opts_t *o, const learner_grpo_batch_t *in, const double *lp) {
    double sum = 0;
    int n = 0;
    for (int b = 0; b < in->B; b++)
        for (int t = 0; t < in->T; t++) {
            int i = b * in->T + t;
            if (!in->mask[i]) continue;
            double r = exp(lp[i] - in->old_lp[i]), A = in->adv[b];
            double rc = fmin(fmax(r, 1 - o->eps_low), 1 + o->eps_high);
            double s = fmin(r * A, rc * A);
            if (o->dual_clip > 1 && A < 0) s = fmax(s, o->dual_clip * A);
            double d = in->ref_lp[i] - lp[i];
            sum += -s + o->beta * (exp(d) - d - 1);
            n++;
        }
    return sum / n;
}

int main(void) {
    // ---- SFT ----
    float lp[6] = {0, -1, -2, -3, -4, -5}, dlp[6];
    uint8_t mask[6] = {0, 1, 1, 0, 1, 0};
    double loss;
    CHECK(learner_sft_loss(6, lp, mask, 0, &loss, dlp) == 0, "sft");
    CHECK(fabs(loss - 7.0 / 3.0) < 1e-12, "sft loss %g", loss);
    CHECK(dlp[0] == 0 && fabsf(dlp[1] + 1.0f / 3) < 1e-7 && dlp[3] == 0, "sft dlp");
    CHECK(learner_sft_loss(6, lp, mask, 10, &loss, dlp) == 0 && fabs(loss - 0.7) < 1e-12, "global norm");
    uint8_t empty[6] = {0};
    CHECK(learner_sft_loss(6, lp, empty, 0, &loss, dlp) == -1, "empty mask is an error");
    lp[2] = NAN;
    CHECK(learner_sft_loss(6, lp, mask, 0, &loss, dlp) == -1, "NaN log-prob is an error");

    // ---- group advantages: the case file's advantages from its rewards ----
    json_error_t je;
    json_t *root = json_load_file(TEST_DATA_DIR "/qwen3-tiny/grpo.json", 0, &je);
    REQUIRE(root, "grpo.json: %s", je.text);
    const int B = 4, T = (int)json_integer_value(json_object_get(root, "seq_len"));
    REQUIRE(T * B <= MAXN, "size");
    float rew[4], adv[4], adv_ref[4];
    uint8_t keep[3];
    for (int b = 0; b < B; b++) {
        rew[b] = (float)json_number_value(json_array_get(json_object_get(root, "rewards"), b));
        adv_ref[b] = (float)json_number_value(json_array_get(json_object_get(root, "advantages"), b));
    }
    CHECK(learner_group_advantages(rew, 1, 4, 1e-6, adv, keep) == 0 && keep[0] == 1, "advantages");
    for (int b = 0; b < B; b++) CHECK(fabsf(adv[b] - adv_ref[b]) < 1e-6, "adv %d: %g vs %g", b, adv[b], adv_ref[b]);
    float rew3[9] = {1, 0, -1, 0.5f, 0.5f, 0.5f, 2, 2, 4}, adv3[9];
    CHECK(learner_group_advantages(rew3, 3, 3, 1e-6, adv3, keep) == 0, "3 groups");
    CHECK(keep[0] == 1 && keep[1] == 0 && keep[2] == 1 && adv3[3] == 0 && adv3[4] == 0 && adv3[5] == 0,
          "zero-variance group -> 0 and dropped");
    // group 3: mean 8/3, population std sqrt(8/9)
    CHECK(fabsf(adv3[8] - (float)((4 - 8.0 / 3) / (sqrt(8.0 / 9) + 1e-6))) < 1e-6, "population std");
    rew3[1] = NAN;
    CHECK(learner_group_advantages(rew3, 3, 3, 1e-6, adv3, keep) == -1, "NaN reward is an error");

    // ---- GRPO on the reference case: per-token values from the case file ----
    float lpr[MAXN], old[MAXN], ref[MAXN], g[MAXN], ratios[MAXN], ptl[MAXN], clipped[MAXN], mk[MAXN];
    uint8_t m8[MAXN];
    REQUIRE(read2d(root, "target_logprobs", B, T, lpr) == 0 && read2d(root, "old_logprobs", B, T, old) == 0 &&
            read2d(root, "ref_logprobs", B, T, ref) == 0 && read2d(root, "ratios", B, T, ratios) == 0 &&
            read2d(root, "per_token_loss", B, T, ptl) == 0 && read2d(root, "clipped", B, T, clipped) == 0 &&
            read2d(root, "response_mask", B, T, mk) == 0, "grpo.json keys");
    int n_clip = 0;
    for (int i = 0; i < B * T; i++) m8[i] = (uint8_t)mk[i], n_clip += clipped[i] != 0;
    learner_grpo_opts_t o;
    learner_grpo_opts_default(&o);
    CHECK(o.eps_low == 0.2 && o.eps_high == 0.28 && o.beta == 0.001, "defaults");
    learner_grpo_batch_t in = {.B = B, .T = T, .mask = m8, .lp = lpr, .old_lp = old, .ref_lp = ref, .adv = adv_ref};
    learner_grpo_metrics_t met;
    CHECK(learner_grpo_loss(&o, &in, g, &met) == 0, "grpo");
    double want = json_number_value(json_object_get(root, "loss"));
    CHECK(fabs(met.loss - want) / want < 1e-6, "grpo loss %.10g vs %.10g", met.loss, want);
    CHECK(fabs(met.clip_frac - n_clip / 33.0) < 1e-12, "clip fraction %g, expected %d/33", met.clip_frac, n_clip);
    double rmin = 1e9, rmax = -1e9;
    for (int i = 0; i < B * T; i++)
        if (m8[i]) rmin = fmin(rmin, ratios[i]), rmax = fmax(rmax, ratios[i]);
    CHECK(fabs(met.ratio_min - rmin) < 1e-5 * rmin && fabs(met.ratio_max - rmax) < 1e-5 * rmax, "ratio min/max");
    for (int i = 0; i < B * T; i++)
        if (clipped[i]) CHECK(fabsf(g[i] - 0.001f * (1 - expf(ref[i] - lpr[i])) / 33) < 1e-9, "clipped token %d has only the KL gradient", i);
    printf("grpo loss %.10g (reference %.10g), clip fraction %.4f, ratio [%.4f, %.4f], KL %.4g\n", met.loss, want,
           met.clip_frac, met.ratio_min, met.ratio_max, met.kl_mean);

    // ---- gradient vs finite differences of the formula, with dual clip and seq-mean too ----
    double lpd[MAXN];
    for (int i = 0; i < B * T; i++) lpd[i] = lpr[i];
    o.dual_clip = 3.0;
    for (int i = 0; i < B * T; i++) old[i] = m8[i] ? lpr[i] + (i % 5 == 0 ? 1.5f : 0.0f) : 0; // some ratios far out
    CHECK(learner_grpo_loss(&o, &in, g, &met) == 0, "dual clip");
    CHECK(fabs(met.loss - grpo_ref(&o, &in, lpd)) < 1e-6, "dual-clip loss %g vs %g", met.loss, grpo_ref(&o, &in, lpd));
    double worst = 0;
    for (int i = 0; i < B * T; i++) {
        if (!m8[i]) { CHECK(g[i] == 0, "off-mask gradient"); continue; }
        double h = 1e-6, s = lpd[i];
        lpd[i] = s + h;
        double lp1 = grpo_ref(&o, &in, lpd);
        lpd[i] = s - h;
        double lm1 = grpo_ref(&o, &in, lpd);
        lpd[i] = s;
        worst = fmax(worst, fabs((lp1 - lm1) / (2 * h) - g[i]));
    }
    CHECK(worst < 1e-6, "grpo dlp vs finite differences: %g", worst);
    o.dual_clip = 0;
    o.agg = LEARNER_AGG_SEQ_MEAN_TOKEN_MEAN;
    CHECK(learner_grpo_loss(&o, &in, g, &met) == 0, "seq-mean-token-mean");
    double seq_sum = 0;
    for (int b = 0; b < B; b++) {
        learner_grpo_opts_t o1 = o;
        o1.agg = LEARNER_AGG_TOKEN_MEAN;
        learner_grpo_batch_t one = in;
        one.B = 1, one.mask = m8 + b * T, one.lp = lpr + b * T, one.old_lp = old + b * T;
        one.ref_lp = ref + b * T, one.adv = adv_ref + b;
        learner_grpo_metrics_t m1;
        float g1[MAXN];
        CHECK(learner_grpo_loss(&o1, &one, g1, &m1) == 0, "one sequence");
        seq_sum += m1.loss;
    }
    CHECK(fabs(met.loss - seq_sum / B) < 1e-9, "seq-mean-token-mean = mean of per-sequence token means");

    // ---- on-policy: old = lp gives ratio exactly 1; the sampling gap metric ----
    o.agg = LEARNER_AGG_TOKEN_MEAN;
    float samp[MAXN], ent[MAXN];
    for (int i = 0; i < B * T; i++) old[i] = lpr[i], samp[i] = lpr[i] + (i % 7 == 0 ? 0.25f : 0.0f), ent[i] = 2.0f;
    in.sample_lp = samp, in.entropy = ent;
    CHECK(learner_grpo_loss(&o, &in, g, &met) == 0, "on-policy");
    CHECK(met.ratio_min == 1.0 && met.ratio_max == 1.0 && met.clip_frac == 0, "ratios exactly 1");
    CHECK(fabs(met.lp_gap_max - 0.25) < 1e-6 && met.entropy_mean == 2.0, "gap %g, entropy %g", met.lp_gap_max, met.entropy_mean);

    // ---- bad input ----
    float advn[4] = {1, NAN, 0, 0};
    learner_grpo_batch_t bad = in;
    bad.adv = advn;
    CHECK(learner_grpo_loss(&o, &bad, g, &met) == -1, "NaN advantage: %s", "no error");
    bad = in;
    bad.ref_lp = NULL;
    CHECK(learner_grpo_loss(&o, &bad, g, &met) == -1, "beta > 0 without reference");
    o.beta = 0;
    CHECK(learner_grpo_loss(&o, &bad, g, &met) == 0, "beta 0 needs no reference");
    uint8_t z[MAXN] = {0};
    bad.mask = z;
    CHECK(learner_grpo_loss(&o, &bad, g, &met) == -1, "empty mask");
    json_decref(root);
    return test_exit("test_loss");
}
