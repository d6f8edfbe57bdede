// Next-token sampling (sampler.h): greedy, temperature, top-k, top-p with a counter-based RNG.
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/sampler_rng.h"
#include "../kernels/err.h"

// ---- counter-based RNG: splitmix64's finalizer as a hash of (seed, stream, step) ----
// (kernels/cuda/sampler_rng.h: shared with the CUDA sampler, which must draw the same uniforms)

double sampler_uniform(uint64_t seed, uint64_t stream, uint64_t step) {
    return sampler_rng_uniform(seed, stream, step);
}

// ---- row helpers: max and e^((x - max) / T) of a whole vocabulary row ----
// A vocabulary row is 151,936 floats per sequence per step, so these loops must vectorize.
// -fno-trapping-math (only FP exception flags, never results) lets GCC turn the selects into
// vector max instructions; expf from libm would not vectorize at all.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// e^x for x <= 0 (inputs below -87 give ~0): 2^k * p(r) with k = round(x / ln2), r = x - k ln2 in
// [-ln2/2, ln2/2], p a degree-6 Taylor polynomial; relative error below 3e-7
static inline float exp_nonpos(float x) {
    x = x > -87.0f ? x : -87.0f;
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round to nearest (1.5 * 2^23 trick)
    float r = (x - k * 0.693145752f) - k * 1.42860677e-06f;  // ln2 as hi + lo: k * hi is exact
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f +
              r * (0.00833333377f + r * 0.00138888892f)))));
    union { int32_t i; float f; } two_k = {((int32_t)k + 127) << 23};
    return p * two_k.f;
}

// Both are also built for AVX2 (8 float lanes instead of SSE2's 4), picked at load time. No FMA:
// every element is computed with the same roundings on either path, so results are identical.
#define ROW_CLONES __attribute__((target_clones("avx2", "default")))

// the max in 16 independent lanes (a select per lane vectorizes; a single running max does not)
ROW_CLONES static float row_max(const float *x, int n) {
    float lane[16];
    for (int j = 0; j < 16; j++) lane[j] = -INFINITY;
    int n16 = n / 16 * 16;
    for (int i = 0; i < n16; i += 16)
        for (int j = 0; j < 16; j++) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
    for (int i = n16; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

// e[i] = e^((x[i] - m) * inv_t); returns their sum (8 double lanes, summed in a fixed order)
ROW_CLONES static double row_exp(const float *x, int n, float m, float inv_t, float *e) {
    double lane[8] = {0};
    int n8 = n / 8 * 8;
    for (int i = 0; i < n8; i += 8)
        for (int j = 0; j < 8; j++) lane[j] += (e[i + j] = exp_nonpos((x[i + j] - m) * inv_t));
    double sum = 0;
    for (int j = 0; j < 8; j++) sum += lane[j];
    for (int i = n8; i < n; i++) sum += (e[i] = exp_nonpos((x[i] - m) * inv_t));
    return sum;
}
#pragma GCC pop_options

// ---- scratch ----

int sampler_init(sampler_t *s, int vocab_size) {
    memset(s, 0, sizeof *s);
    if (vocab_size <= 0) return err_set("sampler_init: vocabulary size must be positive, found %d", vocab_size);
    s->vocab_size = vocab_size;
    s->prob = malloc((size_t)vocab_size * sizeof(float));
    s->idx = malloc((size_t)vocab_size * sizeof(int32_t));
    if (!s->prob || !s->idx) {
        sampler_free(s);
        return err_set("sampler_init: out of memory");
    }
    return 0;
}

void sampler_free(sampler_t *s) {
    free(s->prob);
    free(s->idx);
    memset(s, 0, sizeof *s);
}

int sampler_params_check(const sampler_params_t *p) {
    if (!(p->temperature >= 0) || isinf(p->temperature))
        return err_set("temperature must be a number >= 0, found %g", p->temperature);
    if (p->top_k < 0) return err_set("top-k must be >= 0 (0: off), found %d", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return err_set("top-p must be in (0, 1] (1: off), found %g", p->top_p);
    return 0;
}

// ---- candidate ordering: probability descending, then id ascending (a total order) ----

static _Thread_local const float *tl_prob;

static int cand_before(const float *prob, int32_t a, int32_t b) {
    return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
}

static int cand_cmp(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (cand_before(tl_prob, a, b)) return -1;
    if (cand_before(tl_prob, b, a)) return 1;
    return 0;
}

// keeps the k best of idx[0..n) in idx[0..k), sorted best first (a bounded min-heap: O(n log k))
static int select_top_k(const float *prob, int32_t *idx, int n, int k) {
    if (k >= n) {
        tl_prob = prob;
        qsort(idx, (size_t)n, sizeof *idx, cand_cmp);
        return n;
    }
    // heap of the k best so far in idx[0..k), worst at the root
    int size = 0;
    for (int i = 0; i < n; i++) {
        int32_t c = idx[i];
        if (size == k && !cand_before(prob, c, idx[0])) continue;
        int pos;
        if (size < k) {
            pos = size++;
            while (pos > 0 && cand_before(prob, idx[(pos - 1) / 2], c)) { // parent better: move down
                idx[pos] = idx[(pos - 1) / 2];
                pos = (pos - 1) / 2;
            }
        } else { // replace the root and sift down
            pos = 0;
            for (;;) {
                int l = 2 * pos + 1, r = l + 1, worst = pos;
                int32_t wv = c;
                if (l < size && cand_before(prob, wv, idx[l])) worst = l, wv = idx[l];
                if (r < size && cand_before(prob, wv, idx[r])) worst = r, wv = idx[r];
                if (worst == pos) break;
                idx[pos] = idx[worst];
                pos = worst;
            }
        }
        idx[pos] = c;
    }
    tl_prob = prob;
    qsort(idx, (size_t)size, sizeof *idx, cand_cmp);
    return size;
}

// the candidates: ids[0..n) when ids is given (ascending), else 0..n-1 (the whole row)
static inline int32_t cand_id(const int32_t *ids, int i) { return ids ? ids[i] : (int32_t)i; }

// draws from e (unnormalized probabilities, summing to total over the n candidates) with the
// uniform u, applying top-k / top-p; best: the most likely candidate (the lowest id on ties)
static int32_t sample_from(sampler_t *s, const sampler_params_t *p, const float *e, const int32_t *ids,
                           int n_cand, double total, int32_t best, double u) {
    int32_t tok = -1;
    int top_k = p->top_k > 0 && p->top_k < n_cand ? p->top_k : 0;
    int top_p = p->top_p < 1.0f;
    if (!top_k && !top_p) { // the full distribution, walked in id order
        double target = u * total, cum = 0;
        for (int i = 0; i < n_cand && tok < 0; i++)
            if ((cum += e[cand_id(ids, i)]) > target) tok = cand_id(ids, i);
        return tok < 0 ? best : tok; // rounding left the target past the end
    }
    int32_t *idx = s->idx;
    int n = 0;
    if (top_k) {
        for (int i = 0; i < n_cand; i++) idx[i] = cand_id(ids, i);
        n = select_top_k(e, idx, n_cand, top_k);
    } else {
        // top-p alone: a token whose probability is below (1 - p) / (n_cand - 1) can never be in
        // the nucleus unless it is the best one; sort only the rest (checked below)
        double cut = (1.0 - p->top_p) / (double)(n_cand > 1 ? n_cand - 1 : 1) * total;
        for (int i = 0; i < n_cand; i++)
            if (e[cand_id(ids, i)] >= cut || cand_id(ids, i) == best) idx[n++] = cand_id(ids, i);
        tl_prob = e;
        qsort(idx, (size_t)n, sizeof *idx, cand_cmp);
    }
    double mass = 0; // of the candidates (the top-k set, renormalized, when top-k is on)
    if (top_k)
        for (int i = 0; i < n; i++) mass += e[idx[i]];
    else
        mass = total;
    int keep = n;
    if (top_p) { // smallest prefix with cumulative mass >= top_p * mass
        double need = (double)p->top_p * mass, cum = 0;
        keep = 0;
        while (keep < n && cum < need) cum += e[idx[keep++]];
        if (cum < need && !top_k) { // the cut was too eager (tiny vocab / tiny p): sort all
            for (int i = 0; i < n_cand; i++) idx[i] = cand_id(ids, i);
            tl_prob = e;
            qsort(idx, (size_t)n_cand, sizeof *idx, cand_cmp);
            n = n_cand, keep = 0, cum = 0;
            while (keep < n && cum < need) cum += e[idx[keep++]];
        }
        if (keep == 0) keep = 1;
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += e[idx[i]];
    double target = u * kept, cum = 0;
    for (int i = 0; i < keep && tok < 0; i++)
        if ((cum += e[idx[i]]) > target) tok = idx[i];
    return tok < 0 ? idx[keep - 1] : tok;
}

// the draw over a dense row of n <= vocab_size logits: writes the index drawn and its log-prob
static int sample_dense(sampler_t *s, const sampler_params_t *p, const float *logits, int n, uint64_t stream,
                        uint64_t step, int32_t *token, float *logprob) {
    if (sampler_params_check(p)) return -1;
    const float m = row_max(logits, n);
    if (!isfinite(m)) return err_set("sampler: the logits hold no finite maximum (NaN or inf)");
    int best = 0; // the argmax: the lowest id holding the max
    while (logits[best] != m) best++;

    // greedy: the argmax, and its log-prob at temperature 1
    float *e = s->prob;
    if (p->temperature == 0) {
        *token = best;
        *logprob = (float)(-log(row_exp(logits, n, m, 1.0f, e))); // logits[best] - m == 0
        return 0;
    }

    // e_i = exp((l_i - max) / T); sum over all n gives the full distribution's normalizer
    const float inv_t = 1.0f / p->temperature;
    double total = row_exp(logits, n, m, inv_t, e);
    int32_t tok = sample_from(s, p, e, NULL, n, total, best, sampler_uniform(p->seed, stream, step));
    *token = tok;
    *logprob = (float)((double)((logits[tok] - m) * inv_t) - log(total));
    return 0;
}

int sampler_sample(sampler_t *s, const sampler_params_t *p, const float *logits, uint64_t stream,
                   uint64_t step, int32_t *token, float *logprob) {
    return sample_dense(s, p, logits, s->vocab_size, stream, step, token, logprob);
}

int sampler_sample_compact(sampler_t *s, const sampler_params_t *p, const float *logits, const int32_t *ids,
                           int n, uint64_t stream, uint64_t step, int32_t *token, float *logprob) {
    if (n < 1 || n > s->vocab_size)
        return err_set("sampler: a compact row of %d logits (expected 1 .. %d)", n, s->vocab_size);
    int32_t j;
    if (sample_dense(s, p, logits, n, stream, step, &j, logprob)) return -1;
    *token = ids[j];
    return 0;
}

int sampler_sample_ids(sampler_t *s, const sampler_params_t *p, const float *logits, const int32_t *ids,
                       int n, uint64_t stream, uint64_t step, int32_t *token, float *logprob) {
    if (sampler_params_check(p)) return -1;
    const int V = s->vocab_size;
    if (n < 1 || n > V) return err_set("sampler: %d allowed ids (expected 1 .. %d)", n, V);
    float m = -INFINITY;
    int32_t best = -1; // the first (lowest) id holding the max
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V || (i > 0 && ids[i] <= ids[i - 1]))
            return err_set("sampler: allowed id %d at %d is out of range [0, %d) or not ascending", ids[i], i, V);
        if (logits[ids[i]] > m) m = logits[ids[i]], best = ids[i];
    }
    if (!isfinite(m)) return err_set("sampler: the allowed logits hold no finite maximum (NaN or inf)");
    // as sampler_sample, with e = 0 off the list (greedy: temperature 1 for the log-prob)
    const float inv_t = p->temperature == 0 ? 1.0f : 1.0f / p->temperature;
    float *e = s->prob;
    double total = 0;
    for (int i = 0; i < n; i++) total += (e[ids[i]] = exp_nonpos((logits[ids[i]] - m) * inv_t));
    int32_t tok = p->temperature == 0 ? best
                : sample_from(s, p, e, ids, n, total, best, sampler_uniform(p->seed, stream, step));
    *token = tok;
    *logprob = (float)((double)((logits[tok] - m) * inv_t) - log(total));
    return 0;
}
