// Sampler tests on synthetic logits: greedy, top-k = 1 and tiny top-p equal argmax; empirical
// frequencies over many draws match the distribution computed here in double (softmax(l/T), then
// top-k / top-p renormalized); log-probs are those of the full distribution; on a full-size
// vocabulary the exact token drawn equals an independent selection (full sort in the test).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/sampler.h"
#include "test.h"

// the distribution the sampler should draw from, in double: softmax(l / T) over the top-k, then the
// top-p nucleus, renormalized. Ordering: probability descending, id ascending.
static const double *sort_p;
static int by_prob(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_p[i] != sort_p[j]) return sort_p[i] > sort_p[j] ? -1 : 1;
    return i - j;
}

static void reference_dist(const float *l, int V, double T, int top_k, double top_p, double *q,
                           int *order, int *keep_out) {
    double m = -1e300, s = 0;
    double *p = malloc(sizeof(double) * V);
    for (int i = 0; i < V; i++) m = fmax(m, l[i]);
    for (int i = 0; i < V; i++) s += (p[i] = exp(((double)l[i] - m) / T));
    for (int i = 0; i < V; i++) {
        p[i] /= s;
        order[i] = i;
    }
    sort_p = p;
    qsort(order, (size_t)V, sizeof(int), by_prob);
    int keep = top_k > 0 && top_k < V ? top_k : V;
    double mass = 0;
    for (int i = 0; i < keep; i++) mass += p[order[i]];
    if (top_p < 1) {
        double cum = 0;
        int k = 0;
        while (k < keep && cum < top_p * mass) cum += p[order[k++]];
        keep = k;
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += p[order[i]];
    for (int i = 0; i < V; i++) q[i] = 0;
    for (int i = 0; i < keep; i++) q[order[i]] = p[order[i]] / kept;
    *keep_out = keep;
    free(p);
}

static void check_frequencies(const float *l, int V, float T, int top_k, float top_p, int draws) {
    sampler_t s;
    sampler_init(&s, V);
    sampler_params_t p = {T, top_k, top_p, 42};
    int *count = calloc((size_t)V, sizeof(int));
    double *q = malloc(sizeof(double) * V);
    int *order = malloc(sizeof(int) * V), keep;
    reference_dist(l, V, T, top_k, top_p, q, order, &keep);
    double lse_m = -1e300, lse_s = 0; // log-prob reference: full softmax(l / T)
    for (int i = 0; i < V; i++) lse_m = fmax(lse_m, l[i] / (double)T);
    for (int i = 0; i < V; i++) lse_s += exp(l[i] / (double)T - lse_m);
    double worst_lp = 0;
    for (int d = 0; d < draws; d++) {
        int32_t tok;
        float lp;
        if (sampler_sample(&s, &p, l, 7, (uint64_t)d, &tok, &lp)) {
            CHECK(0, "%s", err_msg());
            break;
        }
        count[tok]++;
        double want = l[tok] / (double)T - lse_m - log(lse_s);
        worst_lp = fmax(worst_lp, fabs(lp - want));
    }
    double worst_sigma = 0;
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / draws;
        double sd = sqrt(fmax(q[i] * (1 - q[i]), 1e-12) / draws);
        if (q[i] == 0) CHECK(count[i] == 0, "T=%g k=%d p=%g: token %d outside the kept set drawn %d times",
                             T, top_k, top_p, i, count[i]);
        else worst_sigma = fmax(worst_sigma, fabs(f - q[i]) / sd);
    }
    printf("T=%.2f top_k=%d top_p=%.2f: %d kept, worst deviation %.2f sigma over %d draws, log-prob err %.2g\n",
           T, top_k, top_p, keep, worst_sigma, draws, worst_lp);
    CHECK(worst_sigma < 5, "frequencies off by %.2f sigma", worst_sigma);
    CHECK(worst_lp < 1e-5, "log-prob off by %g", worst_lp);
    free(count); free(q); free(order);
    sampler_free(&s);
}

int main(void) {
    // RNG: deterministic, depends on every input, roughly uniform
    CHECK(sampler_uniform(1, 2, 3) == sampler_uniform(1, 2, 3), "rng not deterministic");
    CHECK(sampler_uniform(1, 2, 3) != sampler_uniform(1, 2, 4) &&
              sampler_uniform(1, 2, 3) != sampler_uniform(1, 3, 3) &&
              sampler_uniform(1, 2, 3) != sampler_uniform(2, 2, 3), "rng ignores an input");
    double mean = 0;
    for (int i = 0; i < 100000; i++) {
        double u = sampler_uniform(9, 0, (uint64_t)i);
        CHECK(u >= 0 && u < 1, "u = %g", u);
        mean += u / 100000;
    }
    CHECK(fabs(mean - 0.5) < 0.005, "rng mean %g", mean);

    // small vocabulary: frequencies against the distribution computed here
    const float l6[6] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.0f};
    check_frequencies(l6, 6, 0.7f, 0, 1.0f, 100000);
    check_frequencies(l6, 6, 1.5f, 0, 1.0f, 100000);
    check_frequencies(l6, 6, 1.0f, 3, 1.0f, 100000);
    check_frequencies(l6, 6, 1.0f, 0, 0.8f, 100000);
    check_frequencies(l6, 6, 0.9f, 4, 0.7f, 100000);

    // sampler_sample_ids on a row that is -INF except at the listed ids: the same token and the
    // same log-prob as sampler_sample on the full row, for several settings and many steps
    {
        int V = 5000, n = 7, mism = 0;
        double worst = 0;
        sampler_t s;
        sampler_init(&s, V);
        float *l = malloc(sizeof(float) * V);
        int32_t ids[7] = {3, 17, 400, 401, 2500, 4098, 4999};
        sampler_params_t ps[4] = {{0, 0, 1, 2}, {1.0f, 0, 1, 2}, {0.7f, 3, 1, 2}, {1.2f, 0, 0.8f, 2}};
        for (int trial = 0; trial < 200; trial++) {
            for (int i = 0; i < V; i++) l[i] = -INFINITY;
            for (int j = 0; j < n; j++) l[ids[j]] = (float)(3 * sampler_uniform(11, (uint64_t)trial, (uint64_t)j));
            for (int k = 0; k < 4; k++) {
                int32_t t1, t2;
                float lp1, lp2;
                sampler_sample(&s, &ps[k], l, 5, (uint64_t)trial, &t1, &lp1);
                sampler_sample_ids(&s, &ps[k], l, ids, n, 5, (uint64_t)trial, &t2, &lp2);
                mism += t1 != t2;
                if (fabs(lp1 - lp2) > worst) worst = fabs(lp1 - lp2);
            }
        }
        CHECK(mism == 0, "sampler_sample_ids differs from sampler_sample in %d of 800 draws", mism);
        CHECK(worst < 1e-5, "sampler_sample_ids log-prob differs by %g", worst);
        printf("sampler_sample_ids vs full row: 800 draws, %d token mismatches, log-prob diff %.2g\n", mism, worst);
        free(l);
        sampler_free(&s);
    }

    // greedy, top-k = 1, tiny top-p: argmax every time (random logits, ties broken to the lowest id)
    {
        int V = 1000, bad = 0;
        sampler_t s;
        sampler_init(&s, V);
        float *l = malloc(sizeof(float) * V);
        for (int trial = 0; trial < 50; trial++) {
            for (int i = 0; i < V; i++) l[i] = (float)(4 * sampler_uniform(5, (uint64_t)trial, (uint64_t)i));
            int am = 0;
            for (int i = 1; i < V; i++) am = l[i] > l[am] ? i : am;
            sampler_params_t greedy = {0, 0, 1, 1}, k1 = {0.8f, 1, 1, 1}, ptiny = {1.3f, 0, 1e-6f, 1};
            int32_t t1, t2, t3;
            float lp1, lp2, lp3;
            sampler_sample(&s, &greedy, l, 3, (uint64_t)trial, &t1, &lp1);
            sampler_sample(&s, &k1, l, 3, (uint64_t)trial, &t2, &lp2);
            sampler_sample(&s, &ptiny, l, 3, (uint64_t)trial, &t3, &lp3);
            bad += t1 != am || t2 != am || t3 != am;
            double ls = 0;
            for (int i = 0; i < V; i++) ls += exp((double)l[i] - l[am]);
            CHECK(fabs(lp1 + log(ls)) < 1e-5, "greedy log-prob %g vs %g", lp1, -log(ls));
        }
        CHECK(bad == 0, "%d of 50 greedy / top-k 1 / tiny top-p draws were not the argmax", bad);
        for (int i = 0; i < V; i++) l[i] = 1.0f; // all tied: greedy takes id 0
        sampler_params_t greedy = {0, 0, 1, 1};
        int32_t t;
        float lp;
        sampler_sample(&s, &greedy, l, 0, 0, &t, &lp);
        CHECK(t == 0 && fabs(lp + log(1000.0)) < 1e-5, "tie: token %d lp %g", t, lp);
        free(l);
        sampler_free(&s);
    }

    // full-size vocabulary: the exact token equals the one an independent full sort selects
    {
        int V = 151936, bad = 0;
        sampler_t s;
        sampler_init(&s, V);
        float *l = malloc(sizeof(float) * V);
        double *q = malloc(sizeof(double) * V);
        int *order = malloc(sizeof(int) * V), keep;
        const sampler_params_t ps[3] = {{0.8f, 0, 0.9f, 11}, {1.0f, 40, 1.0f, 12}, {0.6f, 100, 0.95f, 13}};
        for (int trial = 0; trial < 6; trial++) {
            for (int i = 0; i < V; i++) { // a peaked, realistic-looking row
                double u = sampler_uniform(77, (uint64_t)trial, (uint64_t)i);
                l[i] = (float)(-8 * u + (i % 997 == 0 ? 6 * u : 0));
            }
            const sampler_params_t *p = &ps[trial % 3];
            reference_dist(l, V, p->temperature, p->top_k, p->top_p, q, order, &keep);
            double u = sampler_uniform(p->seed, 5, (uint64_t)trial), cum = 0;
            int want = order[keep - 1];
            for (int i = 0; i < keep; i++)
                if ((cum += q[order[i]]) > u) {
                    want = order[i];
                    break;
                }
            int32_t tok;
            float lp;
            CHECK(sampler_sample(&s, p, l, 5, (uint64_t)trial, &tok, &lp) == 0, "%s", err_msg());
            bad += tok != want;
            if (tok != want) fprintf(stderr, "trial %d: drew %d, reference %d (nucleus of %d)\n", trial, tok, want, keep);
        }
        CHECK(bad == 0, "%d of 6 full-vocabulary draws differ from the reference selection", bad);
        free(l); free(q); free(order);
        sampler_free(&s);
    }

    // parameter errors
    sampler_params_t bad1 = {-1, 0, 1, 0}, bad2 = {1, 0, 0, 0}, bad3 = {1, 0, 1.5f, 0}, bad4 = {1, -2, 1, 0};
    CHECK(sampler_params_check(&bad1) < 0 && strstr(err_msg(), "temperature"), "%s", err_msg());
    CHECK(sampler_params_check(&bad2) < 0 && strstr(err_msg(), "top-p"), "%s", err_msg());
    CHECK(sampler_params_check(&bad3) < 0, "top-p 1.5 must fail");
    CHECK(sampler_params_check(&bad4) < 0 && strstr(err_msg(), "top-k"), "%s", err_msg());
    return test_exit("test_sampler");
}
