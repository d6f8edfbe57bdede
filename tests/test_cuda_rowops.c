// test_cuda_rowops: the per-element / per-row math of the CUDA kernels (kernels/cuda/rowops.h),
// compiled here as plain C on the host, against straightforward double-precision references.
// Needs no GPU: the CUDA kernels call these same functions, so this checks their numerics.
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/rowops.h"
#include "tests/test.h"

#include "tests/test_rng.h"

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// ---- bf16 ----

// the bf16 nearest to f, ties to the even mantissa, decided in double from the two neighbours
static uint16_t ref_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (isnan(f)) return 0xffff; // any NaN; checked separately
    if (isinf(f)) return (uint16_t)(u >> 16);
    uint16_t lo = (uint16_t)(u >> 16); // truncation: the neighbour towards zero
    double dlo = (double)f32_from_bits((uint32_t)lo << 16);
    // the neighbour away from zero; above the largest finite bf16 it is 2^128 (= inf after
    // rounding)
    double dhi = (lo & 0x7fffu) == 0x7f7fu ? ldexp(f < 0 ? -1.0 : 1.0, 128)
                                           : (double)f32_from_bits((uint32_t)(lo + 1) << 16);
    double el = fabs((double)f - dlo), eh = fabs(dhi - (double)f);
    if (el < eh || (el == eh && (lo & 1u) == 0)) return lo;
    return (uint16_t)(lo + 1); // 0x7f7f + 1 = 0x7f80: inf
}

static void test_bf16(void) {
    // every bf16 pattern with a set of low halves (exact, tie, just above/below a tie, random)
    const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000};
    long bad = 0, checked = 0;
    for (uint32_t hi = 0; hi < 0x10000u; hi++) {
        for (int k = 0; k < 9; k++) {
            uint32_t low = k < 8 ? lows[k] : (rng_u32() & 0xffffu);
            float f = f32_from_bits(hi << 16 | low);
            uint16_t got = rowops_f32_to_bf16(f);
            checked++;
            if (isnan(f)) {
                // NaN must stay NaN (quiet bit set), keeping the sign
                if ((got & 0x7f80u) != 0x7f80u || (got & 0x7fu) == 0 || (got >> 15) != (hi >> 15))
                    bad++;
            } else if (got != ref_f32_to_bf16(f)) {
                if (bad < 5)
                    fprintf(stderr, "bf16(%a) = 0x%04x, want 0x%04x\n", (double)f, got,
                            ref_f32_to_bf16(f));
                bad++;
            }
        }
        // bf16 -> f32 is exact: the upper half of the f32
        float back = rowops_bf16_to_f32((uint16_t)hi);
        uint32_t bu;
        memcpy(&bu, &back, sizeof bu);
        if (bu != hi << 16) bad++;
    }
    CHECK(bad == 0, "bf16 conversions: %ld of %ld wrong", bad, checked);
    CHECK(rowops_f32_to_bf16(FLT_MAX) == 0x7f80u, "FLT_MAX must round to +inf, got 0x%04x",
          rowops_f32_to_bf16(FLT_MAX));
    CHECK(rowops_f32_to_bf16(1.0f) == 0x3f80u, "bf16(1) = 0x%04x", rowops_f32_to_bf16(1.0f));
    CHECK(rowops_f32_to_bf16(-0.0f) == 0x8000u, "bf16(-0) = 0x%04x", rowops_f32_to_bf16(-0.0f));
    printf("bf16: %ld conversions checked\n", checked);
}

// ---- rmsnorm ----

static void test_rmsnorm(void) {
    const int64_t sizes[] = {1, 7, 64, 128, 1000, 4096};
    double worst = 0.0;
    for (int k = 0; k < 6; k++) {
        int64_t C = sizes[k];
        float *x = malloc(C * sizeof *x), *w = malloc(C * sizeof *w);
        float scale = k % 2 ? 1e-3f : 30.0f; // small and large magnitudes
        float ss = 0.0f;
        double ssd = 0.0;
        for (int64_t i = 0; i < C; i++) {
            x[i] = rng_uniform(-scale, scale);
            w[i] = rng_uniform(0.5f, 1.5f);
            ss += x[i] * x[i];
            ssd += (double)x[i] * x[i];
        }
        float eps = 1e-6f;
        float inv = rowops_rms_inv(ss, C, eps);
        double inv_ref = 1.0 / sqrt(ssd / (double)C + (double)eps);
        double e = fabs(inv - inv_ref) / inv_ref;
        CHECK(e < 1e-5, "rms_inv C=%lld: %g, want %g (rel %g)", (long long)C, inv, inv_ref, e);
        for (int64_t i = 0; i < C; i++) {
            double ref = (double)x[i] * inv_ref * w[i];
            double got = rowops_rmsnorm_elem(x[i], inv, w[i]);
            double rel = fabs(got - ref) / (fabs(ref) + 1e-30);
            if (rel > worst) worst = rel;
        }
        free(x);
        free(w);
    }
    CHECK(worst < 1e-5, "rmsnorm elements: worst relative error %g", worst);
    printf("rmsnorm: worst relative error %.3g\n", worst);
}

// ---- rope ----

static void test_rope(void) {
    const int Ds[] = {64, 128};
    const double thetas[] = {10000.0, 1000000.0};
    const int32_t positions[] = {0, 1, 17, 1000, 40959, 131071};
    double worst_angle = 0.0, worst_cs = 0.0, worst_pair = 0.0;
    for (int a = 0; a < 2; a++)
        for (int t = 0; t < 2; t++)
            for (int p = 0; p < 6; p++)
                for (int i = 0; i < Ds[a] / 2; i++) {
                    int D = Ds[a];
                    int32_t pos = positions[p];
                    // reference angle through exp/log instead of pow
                    double ref = (double)pos * exp(-2.0 * i / D * log(thetas[t]));
                    double got = rowops_rope_angle(pos, i, D, thetas[t]);
                    double ea = fabs(got - ref) / (fabs(ref) + 1e-300);
                    if (ea > worst_angle) worst_angle = ea;
                    float c, s;
                    rowops_rope_cos_sin(pos, i, D, thetas[t], &c, &s);
                    double ec = fmax(fabs(c - cos(ref)), fabs(s - sin(ref)));
                    if (ec > worst_cs) worst_cs = ec;
                    float x0 = rng_uniform(-2, 2), x1 = rng_uniform(-2, 2), y0 = x0, y1 = x1;
                    rowops_rope_pair(&y0, &y1, c, s);
                    double r0 = x0 * cos(ref) - x1 * sin(ref), r1 = x1 * cos(ref) + x0 * sin(ref);
                    double ep = fmax(fabs(y0 - r0), fabs(y1 - r1)) / (hypot(x0, x1) + 1e-30);
                    if (ep > worst_pair) worst_pair = ep;
                }
    // the angle is computed in double: relative ~1e-15 even at position 131071
    CHECK(worst_angle < 1e-12, "rope angle: worst relative error %g", worst_angle);
    CHECK(worst_cs < 1e-7, "rope cos/sin: worst error %g", worst_cs);
    CHECK(worst_pair < 1e-6, "rope pair: worst error %g (relative to the pair's norm)", worst_pair);
    printf("rope: angle %.3g, cos/sin %.3g, pair %.3g\n", worst_angle, worst_cs, worst_pair);
}

// ---- swiglu ----

static void test_swiglu(void) {
    double worst = 0.0;
    for (int k = 0; k < 20000; k++) {
        float g = k < 10000 ? rng_uniform(-20, 20) : rng_uniform(-200, 200), u = rng_uniform(-3, 3);
        double ref = (double)g / (1.0 + exp(-(double)g)) * u;
        double got = rowops_swiglu(g, u);
        double e = fabs(got - ref) / (fabs(ref) + 1e-30);
        if (fabs(ref) < 1e-30) e = fabs(got); // underflow region: must be ~0
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-5, "swiglu: worst relative error %g", worst);
    // e^-g overflows to inf for g < -88.7: the limit 0, never NaN
    float v = rowops_swiglu(-1e4f, 2.0f);
    CHECK(v == 0.0f && !isnan(v), "swiglu(-1e4, 2) = %g, want 0", v);
    CHECK(rowops_swiglu(1e4f, 2.0f) == 2e4f, "swiglu(1e4, 2) = %g", rowops_swiglu(1e4f, 2.0f));
    CHECK(rowops_swiglu(0.0f, 5.0f) == 0.0f, "swiglu(0, 5) = %g", rowops_swiglu(0.0f, 5.0f));
    printf("swiglu: worst relative error %.3g\n", worst);
}

// ---- online softmax ----

// the state of x[0..n) pushed in `parts` round-robin parts, merged pairwise like a tree (as the
// block reduction does)
static rowops_softmax_t softmax_state(const float *x, int n, int parts) {
    rowops_softmax_t st[64];
    for (int p = 0; p < parts; p++)
        st[p] = rowops_softmax_init();
    for (int i = 0; i < n; i++)
        st[i % parts] = rowops_softmax_push(st[i % parts], x[i]);
    for (int stride = 1; stride < parts; stride *= 2)
        for (int p = 0; p + stride < parts; p += 2 * stride)
            st[p] = rowops_softmax_merge(st[p], st[p + stride]);
    return st[0];
}

static void test_softmax(void) {
    const int lens[] = {1, 2, 31, 151, 1000, 5000};
    const int parts[] = {1, 2, 32, 64};
    double worst_s = 0.0, worst_p = 0.0, worst_l = 0.0;
    float *x = malloc(5000 * sizeof *x);
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 4; b++)
            for (int mode = 0; mode < 3; mode++) {
                int n = lens[a];
                for (int i = 0; i < n; i++) {
                    x[i] = mode == 0 ? rng_uniform(-5, 5) : rng_uniform(-30, 30);
                    if (mode == 1) x[i] += 1e4f; // large offset: no overflow
                    if (mode == 2 && i % 3 == 1 && n > 1) x[i] = -INFINITY; // masked entries
                }
                rowops_softmax_t st = softmax_state(x, n, parts[b]);
                double m = -INFINITY, s = 0.0;
                for (int i = 0; i < n; i++)
                    m = fmax(m, x[i]);
                for (int i = 0; i < n; i++)
                    s += exp((double)x[i] - m);
                CHECK(st.m == (float)m, "softmax max %g, want %g (n=%d parts=%d)", st.m, m, n,
                      parts[b]);
                double es = fabs(st.s - s) / s;
                if (es > worst_s) worst_s = es;
                for (int i = 0; i < n; i++) {
                    double p = exp((double)x[i] - m) / s, lp = (double)x[i] - m - log(s);
                    double ep = fabs(rowops_softmax_elem(st, x[i]) - p);
                    if (ep > worst_p) worst_p = ep;
                    if (isinf(lp)) {
                        CHECK(rowops_logsoftmax_elem(st, x[i]) == -INFINITY, "log-softmax of -inf");
                        continue;
                    }
                    double el = fabs(rowops_logsoftmax_elem(st, x[i]) - lp) / fmax(1.0, fabs(lp));
                    if (el > worst_l) worst_l = el;
                }
            }
    free(x);
    CHECK(worst_s < 1e-5, "softmax sum: worst relative error %g", worst_s);
    CHECK(worst_p < 1e-6, "softmax probabilities: worst absolute error %g", worst_p);
    CHECK(worst_l < 1e-5, "log-softmax: worst error %g", worst_l);
    // an empty part merges as the identity; NaN propagates
    rowops_softmax_t e = rowops_softmax_init(), one = rowops_softmax_push(e, 3.0f);
    rowops_softmax_t r = rowops_softmax_merge(e, one);
    CHECK(r.m == 3.0f && r.s == 1.0f, "merge with empty: (%g, %g)", r.m, r.s);
    r = rowops_softmax_merge(one, e);
    CHECK(r.m == 3.0f && r.s == 1.0f, "merge with empty: (%g, %g)", r.m, r.s);
    r = rowops_softmax_push(one, NAN);
    CHECK(isnan(r.s) || isnan(r.m), "NaN must poison the state");
    printf("softmax: sum %.3g, p %.3g, log p %.3g\n", worst_s, worst_p, worst_l);
}

// ---- attention's online softmax with a weighted sum ----

#define AD 8 // value width of the test

static void test_attention_step(void) {
    const int lens[] = {1, 3, 16, 45, 300};
    double worst = 0.0;
    for (int a = 0; a < 5; a++)
        for (int parts = 1; parts <= 4; parts *= 2) {
            int n = lens[a];
            float score[300], v[300][AD];
            for (int j = 0; j < n; j++) {
                score[j] = rng_uniform(-8, 8);
                for (int d = 0; d < AD; d++)
                    v[j][d] = rng_uniform(-1, 1);
            }
            // as the kernel: part w takes keys w, w + parts, ...; then the parts merge
            float pm[4], pl[4], pacc[4][AD];
            for (int w = 0; w < parts; w++) {
                float m = -INFINITY, l = 0.0f, acc[AD] = {0};
                for (int j = w; j < n; j += parts) {
                    rowops_attn_step_t st = rowops_attn_step(&m, &l, score[j]);
                    for (int d = 0; d < AD; d++)
                        acc[d] = acc[d] * st.corr + st.p * v[j][d];
                }
                pm[w] = m;
                pl[w] = l;
                memcpy(pacc[w], acc, sizeof acc);
            }
            float M = -INFINITY, L = 0.0f;
            for (int w = 0; w < parts; w++)
                M = fmaxf(M, pm[w]);
            for (int w = 0; w < parts; w++)
                L += pl[w] * rowops_attn_rescale(pm[w], M);
            double m = -INFINITY, s = 0.0;
            for (int j = 0; j < n; j++)
                m = fmax(m, score[j]);
            for (int j = 0; j < n; j++)
                s += exp(score[j] - m);
            for (int d = 0; d < AD; d++) {
                float o = 0.0f;
                for (int w = 0; w < parts; w++)
                    o += pacc[w][d] * rowops_attn_rescale(pm[w], M);
                o /= L;
                double ref = 0.0;
                for (int j = 0; j < n; j++)
                    ref += exp(score[j] - m) / s * v[j][d];
                if (fabs(o - ref) > worst) worst = fabs(o - ref);
            }
        }
    CHECK(worst < 1e-6, "attention online softmax: worst absolute error %g", worst);
    // a masked score changes nothing; a part that saw nothing rescales to 0
    float m = 1.0f, l = 2.0f;
    rowops_attn_step_t st = rowops_attn_step(&m, &l, -INFINITY);
    CHECK(st.corr == 1.0f && st.p == 0.0f && m == 1.0f && l == 2.0f,
          "masked step changed the state");
    CHECK(rowops_attn_rescale(-INFINITY, 0.0f) == 0.0f, "empty part must rescale to 0");
    printf("attention step: worst absolute error %.3g\n", worst);
}

int main(void) {
    rng_state = 0x9e3779b97f4a7c15ull; // this test's inputs
    test_bf16();
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_softmax();
    test_attention_step();
    return test_exit("test_cuda_rowops");
}
