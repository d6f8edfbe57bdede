// SFT and GRPO losses and group advantages (loss.h). Sums in double, in index order.
#include "loss.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "../kernels/err.h"

int learner_sft_loss(int64_t n, const float *lp, const uint8_t *mask, double norm, double *loss,
                     float *dlp) {
    if (n <= 0 || !lp || !mask || !dlp)
        return err_set("learner_sft_loss: %" PRId64 " entries (expected > 0) or a NULL array", n);
    int64_t count = 0;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (mask[i] > 1) return err_set("learner_sft_loss: mask[%" PRId64 "] is %d, expected 0 or 1", i, mask[i]);
        if (!mask[i]) continue;
        if (!isfinite(lp[i]))
            return err_set("learner_sft_loss: log-prob %" PRId64 " is %g (expected finite)", i, lp[i]);
        count++;
        sum += lp[i];
    }
    if (count == 0) return err_set("learner_sft_loss: the loss mask is empty (no target tokens)");
    double denom = norm > 0 ? norm : (double)count;
    *loss = -sum / denom;
    float g = (float)(-1.0 / denom);
    for (int64_t i = 0; i < n; i++) dlp[i] = mask[i] ? g : 0.0f;
    return 0;
}

int learner_group_advantages(const float *rewards, int n_groups, int group_size, double eps,
                             float *adv, uint8_t *keep) {
    if (n_groups <= 0 || group_size <= 0)
        return err_set("learner_group_advantages: %d groups of %d (expected both > 0)", n_groups, group_size);
    if (!(eps >= 0)) return err_set("learner_group_advantages: eps %g, expected >= 0", eps);
    for (int g = 0; g < n_groups; g++) {
        const float *r = rewards + (int64_t)g * group_size;
        float *a = adv + (int64_t)g * group_size;
        double mean = 0.0;
        for (int i = 0; i < group_size; i++) {
            if (!isfinite(r[i]))
                return err_set("learner_group_advantages: reward %d of group %d is %g", i, g, r[i]);
            mean += r[i];
        }
        mean /= group_size;
        double var = 0.0;
        for (int i = 0; i < group_size; i++) var += (r[i] - mean) * (r[i] - mean);
        var /= group_size; // population variance
        double sd = sqrt(var);
        int flat = 1;
        for (int i = 1; i < group_size; i++) flat &= r[i] == r[0];
        for (int i = 0; i < group_size; i++) a[i] = flat ? 0.0f : (float)((r[i] - mean) / (sd + eps));
        if (keep) keep[g] = flat ? 0 : 1;
    }
    return 0;
}

void learner_grpo_opts_default(learner_grpo_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->eps_low = 0.2;
    o->eps_high = 0.28;
    o->dual_clip = 0.0;
    o->beta = 0.001;
    o->agg = LEARNER_AGG_TOKEN_MEAN;
    o->norm = 0.0;
}

int learner_grpo_loss(const learner_grpo_opts_t *o, const learner_grpo_batch_t *in, float *dlp,
                      learner_grpo_metrics_t *metrics) {
    const char *fn = "learner_grpo_loss";
    if (in->B <= 0 || in->T <= 0) return err_set("%s: batch is %d x %d, expected both > 0", fn, in->B, in->T);
    if (!in->mask || !in->lp || !in->old_lp || !in->adv || !dlp || !metrics)
        return err_set("%s: mask, lp, old_lp, adv, dlp and metrics are required", fn);
    if (o->beta != 0 && !in->ref_lp) return err_set("%s: beta is %g but no reference log-probs were given", fn, o->beta);
    if (!(o->eps_low >= 0 && o->eps_low < 1 && o->eps_high >= 0))
        return err_set("%s: clip range eps_low %g, eps_high %g (expected 0 <= eps_low < 1, eps_high >= 0)",
                       fn, o->eps_low, o->eps_high);
    if (o->dual_clip != 0 && !(o->dual_clip > 1))
        return err_set("%s: dual clip c = %g, expected c > 1 (or 0: off)", fn, o->dual_clip);
    if (o->agg != LEARNER_AGG_TOKEN_MEAN && o->agg != LEARNER_AGG_SEQ_MEAN_TOKEN_MEAN)
        return err_set("%s: unknown aggregation %d", fn, (int)o->agg);
    const int B = in->B, T = in->T;
    // validate and count
    int64_t n_tok = 0;
    int n_seq = 0;
    for (int b = 0; b < B; b++) {
        int64_t nb = 0;
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            if (in->mask[i] > 1) return err_set("%s: mask[%d][%d] is %d, expected 0 or 1", fn, b, t, in->mask[i]);
            if (!in->mask[i]) continue;
            nb++;
            if (!isfinite(in->lp[i])) return err_set("%s: lp[%d][%d] is %g", fn, b, t, in->lp[i]);
            if (!isfinite(in->old_lp[i])) return err_set("%s: old_lp[%d][%d] is %g", fn, b, t, in->old_lp[i]);
            if (o->beta != 0 && !isfinite(in->ref_lp[i]))
                return err_set("%s: ref_lp[%d][%d] is %g", fn, b, t, in->ref_lp[i]);
            if (in->sample_lp && !isfinite(in->sample_lp[i]))
                return err_set("%s: sample_lp[%d][%d] is %g", fn, b, t, in->sample_lp[i]);
        }
        if (nb > 0 && !isfinite(in->adv[b])) return err_set("%s: advantage of sequence %d is %g", fn, b, in->adv[b]);
        n_tok += nb;
        n_seq += nb > 0;
    }
    if (n_tok == 0) return err_set("%s: the loss mask is empty (no response tokens)", fn);

    const double lo = 1.0 - o->eps_low, hi = 1.0 + o->eps_high;
    double total = 0.0, pg_total = 0.0, kl_sum = 0.0, ent_sum = 0.0, gap_sum = 0.0, gap_max = 0.0;
    double rmin = INFINITY, rmax = -INFINITY;
    int64_t n_clip = 0;
    for (int b = 0; b < B; b++) {
        int64_t nb = 0;
        for (int t = 0; t < T; t++) nb += in->mask[(int64_t)b * T + t];
        // weight of each token of this sequence in the loss
        double denom;
        if (o->agg == LEARNER_AGG_TOKEN_MEAN) denom = o->norm > 0 ? o->norm : (double)n_tok;
        else denom = (o->norm > 0 ? o->norm : (double)n_seq) * (double)(nb ? nb : 1);
        const double A = in->adv[b];
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            if (!in->mask[i]) {
                dlp[i] = 0.0f;
                continue;
            }
            const double lp = in->lp[i];
            const double ratio = exp(lp - in->old_lp[i]);
            // surrogate s and ds/dlp
            const double rc = ratio < lo ? lo : (ratio > hi ? hi : ratio);
            double s, ds;
            if (ratio * A <= rc * A) { // the unclipped branch is the minimum: gradient flows
                s = ratio * A;
                ds = ratio * A;
            } else {
                s = rc * A;
                ds = 0.0;
            }
            if (o->dual_clip > 1 && A < 0 && s < o->dual_clip * A) { // dual clip: bound the loss
                s = o->dual_clip * A;
                ds = 0.0;
            }
            if (ds == 0.0 && A != 0.0) n_clip++;
            double pt = -s, dpt = -ds;
            if (o->beta != 0 || in->ref_lp) {
                double d = in->ref_lp[i] - lp;
                double kl = exp(d) - d - 1.0;
                kl_sum += kl;
                if (o->beta != 0) {
                    pt += o->beta * kl;
                    dpt += o->beta * (-exp(d) + 1.0); // d kl / d lp
                }
            }
            pg_total += -s / denom;
            total += pt / denom;
            dlp[i] = (float)(dpt / denom);
            rmin = ratio < rmin ? ratio : rmin;
            rmax = ratio > rmax ? ratio : rmax;
            if (in->entropy) ent_sum += in->entropy[i];
            if (in->sample_lp) {
                double g = fabs((double)in->sample_lp[i] - in->old_lp[i]);
                gap_sum += g;
                gap_max = g > gap_max ? g : gap_max;
            }
        }
    }
    if (!isfinite(total)) return err_set("%s: the loss is %g (overflowing ratios?)", fn, total);
    {
        memset(metrics, 0, sizeof *metrics);
        metrics->loss = total;
        metrics->pg_loss = pg_total;
        metrics->kl_mean = kl_sum / (double)n_tok;
        metrics->clip_frac = (double)n_clip / (double)n_tok;
        metrics->ratio_min = rmin;
        metrics->ratio_max = rmax;
        metrics->entropy_mean = in->entropy ? ent_sum / (double)n_tok : 0.0;
        metrics->lp_gap_max = gap_max;
        metrics->lp_gap_mean = in->sample_lp ? gap_sum / (double)n_tok : 0.0;
        metrics->n_tokens = n_tok;
        metrics->n_seqs = n_seq;
    }
    return 0;
}
