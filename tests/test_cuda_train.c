// test_cuda_train: the CUDA pieces of training and rollout against their CPU references.
//   adamw   kernels/cuda/adamw.cu (cuda_grad_sumsq + cuda_adamw_step) vs learner/optim.c's
//           optim_step over 5 steps, two parameters (odd n = 4099 with decay, n = 3 without),
//           F32 and BF16 gradients, the global-norm clip active, one parameter misaligned (the
//           scalar path). Master / m / v: max |cuda - cpu| / max |cpu| <= 1e-6 (same F32
//           operations in the same order, so 0 is expected); the BF16 copy must equal the
//           master weights rounded to BF16 exactly; the sum of squares rel. err <= 1e-12.
//   sample  kernels/cuda/sample.cu vs model/sampler.c on the same logits: V = 151936 random rows,
//           rows of heavy ties (logits on a grid of 7 values), an all-equal row, a peaked row,
//           and V = 37; temperature 0 / 0.7 / 1 x top-k 0 / 1 / 20 x top-p 1 / 0.9. Tokens must
//           be identical and log-probs within 1e-5. Differences are allowed only where the CPU's
//           draw target lies within 1e-9 (relative) of a cumulative-mass boundary, re-derived
//           here in double; the count is printed and at most 1 such draw in 1000 is tolerated.
//   lmhead  kernels/lmhead.h on CUDA vs its CPU path (op_matmul + op_logsoftmax_gather /
//           op_softmax_entropy) at V = 151936, C = 64, N = 37, chunks of R = 8 rows (5 chunks):
//           |lp| and |entropy| abs. error <= 1e-4 (the logits differ by cuBLAS's summation order,
//           ~1e-6 of |logit| ~ 3); backward dh / dw (F32): max err / max |ref| <= 1e-4.
// Without a usable CUDA device: "SKIP: ..." and exit 77. --self-check runs the CPU references
// against independent double-precision loops instead: optim_step vs the AdamW formula in double
// (and the adamw_scalars_t helper + the kernel's element math replayed in F32 on the host vs
// optim_step, bitwise), the CPU sampler vs a full-sort sampler in double, lmhead_logprob (and its
// backward) vs logits and log-softmax in double.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/sample.h"
#include "kernels/cuda/sampler_rng.h"
#include "kernels/err.h"
#include "kernels/kernels.h"
#include "kernels/lmhead.h"
#include "learner/optim.h"
#include "model/sampler.h"
#ifdef TRUSTEE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif
#include "tests/test.h"
#include "tests/test_rng.h"

static int self_check = 0;

#define OK(call) REQUIRE((call) == 0, "%s: %s", #call, err_msg())

static float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// max |a - b| / max |b|
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e; // NaN propagates
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0 ? d / m : d;
}

// ================================ AdamW ================================

#define AD_STEPS 5
static const int64_t ad_n[2] = {4099, 3};
static const int ad_decay[2] = {1, 0};

// gradients of step s, parameter i (rounded to BF16 when bf16, so both sides see the same values)
static void ad_grads(float *g, int64_t n, int s, int i, int bf16) {
    for (int64_t k = 0; k < n; k++) {
        float x = rng_uniform(-1, 1) * (float)(1 + s + i);
        g[k] = bf16 ? bf16_round(x) : x;
    }
}

static int ad_setup(optim_t *o, tensor_t w[2], optim_config_t *cfg) {
    optim_config_default(cfg);
    cfg->lr = 1e-2;
    cfg->weight_decay = 0.1;
    cfg->clip_norm = 5.0; // the gradients' norm is ~ 40 .. 200: clipped every step
    cfg->warmup_steps = 2;
    cfg->total_steps = 6;
    optim_spec_t sp[2];
    for (int i = 0; i < 2; i++) {
        OK(tensor_alloc(&w[i], DTYPE_F32, DEVICE_CPU, 1, &ad_n[i]));
        float *x = w[i].data;
        for (int64_t k = 0; k < ad_n[i]; k++) x[k] = rng_uniform(-1, 1);
        sp[i].name = i ? "b" : "a";
        sp[i].w = &w[i];
        sp[i].decay = ad_decay[i];
    }
    OK(optim_init(o, cfg, sp, 2));
    return 0;
}

// the kernel's per-element math (adamw.cu) replayed in F32 on the host
static void ad_elem_host(float *w, float *m, float *v, float g, const adamw_scalars_t *s) {
    if (s->grad_scale != 1.0f) g *= s->grad_scale;
    if (s->clip_coef != 1.0f) g *= s->clip_coef;
    if (s->decay) *w *= s->decay_mul;
    float mk = *m * s->beta1 + g * s->one_minus_beta1;
    float vk = *v * s->beta2 + g * g * s->one_minus_beta2;
    float denom = sqrtf(vk) / s->bc2_sqrt + s->eps;
    *w = *w + (-s->step_size) * (mk / denom);
    *m = mk;
    *v = vk;
}

// CPU optim_step vs (a) the AdamW formula in double, (b) adamw_scalars_init + the element math in F32
static int test_adamw_self(void) {
    optim_t o;
    optim_config_t cfg;
    tensor_t w[2];
    if (ad_setup(&o, w, &cfg)) return 1;
    double *dw[2], *dm[2], *dv[2];
    float *fw[2], *fm[2], *fv[2], *g[2];
    for (int i = 0; i < 2; i++) {
        int64_t n = ad_n[i];
        dw[i] = calloc(n, sizeof(double)), dm[i] = calloc(n, sizeof(double)), dv[i] = calloc(n, sizeof(double));
        fw[i] = malloc(n * sizeof(float)), fm[i] = calloc(n, sizeof(float)), fv[i] = calloc(n, sizeof(float));
        g[i] = malloc(n * sizeof(float));
        for (int64_t k = 0; k < n; k++) dw[i][k] = fw[i][k] = ((float *)w[i].data)[k];
    }
    const double gscale = 0.5;
    double worst = 0;
    int bitwise = 1;
    for (int s = 0; s < AD_STEPS; s++) {
        for (int i = 0; i < 2; i++) ad_grads(g[i], ad_n[i], s, i, 0);
        optim_stats_t st;
        OK(optim_step(&o, g, gscale, 1.0, &st));
        // (a) double
        double ss = 0;
        for (int i = 0; i < 2; i++)
            for (int64_t k = 0; k < ad_n[i]; k++) ss += (double)g[i][k] * g[i][k] * gscale * gscale;
        double norm = sqrt(ss), coef = fmin(1.0, cfg.clip_norm / (norm + 1e-6));
        CHECK(fabs(norm - st.grad_norm) <= 1e-12 * norm, "grad norm %g vs %g", st.grad_norm, norm);
        double lr = optim_lr(&cfg, s), t = s + 1;
        for (int i = 0; i < 2; i++)
            for (int64_t k = 0; k < ad_n[i]; k++) {
                double gk = g[i][k] * gscale * coef;
                if (ad_decay[i]) dw[i][k] *= 1 - lr * cfg.weight_decay;
                dm[i][k] = cfg.beta1 * dm[i][k] + (1 - cfg.beta1) * gk;
                dv[i][k] = cfg.beta2 * dv[i][k] + (1 - cfg.beta2) * gk * gk;
                double mh = dm[i][k] / (1 - pow(cfg.beta1, t)), vh = dv[i][k] / (1 - pow(cfg.beta2, t));
                dw[i][k] -= lr * mh / (sqrt(vh) + cfg.eps);
            }
        // (b) the kernel's math with the helper's scalars
        for (int i = 0; i < 2; i++) {
            adamw_scalars_t sc;
            adamw_scalars_init(&sc, st.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, ad_decay[i], s + 1,
                               gscale, st.clip_coef);
            for (int64_t k = 0; k < ad_n[i]; k++) ad_elem_host(&fw[i][k], &fm[i][k], &fv[i][k], g[i][k], &sc);
        }
    }
    for (int i = 0; i < 2; i++) {
        const float *x = w[i].data;
        double d = 0, mx = 0;
        for (int64_t k = 0; k < ad_n[i]; k++) {
            d = fmax(d, fabs(x[k] - dw[i][k]));
            mx = fmax(mx, fabs(dw[i][k]));
        }
        worst = fmax(worst, d / mx);
        bitwise &= memcmp(x, fw[i], ad_n[i] * sizeof(float)) == 0 && memcmp(o.p[i].m, fm[i], ad_n[i] * 4) == 0 &&
                   memcmp(o.p[i].v, fv[i], ad_n[i] * 4) == 0;
    }
    printf("  optim_step vs AdamW in double, %d steps: master rel err %.2e (tol 1e-6)\n", AD_STEPS, worst);
    printf("  adamw_scalars_init + kernel element math (host F32) vs optim_step: %s\n",
           bitwise ? "bitwise equal" : "DIFFERENT");
    CHECK(worst <= 1e-6, "optim_step vs double: %g", worst);
    CHECK(bitwise, "the kernel's element math with adamw_scalars_init differs from optim_step");
    for (int i = 0; i < 2; i++) {
        free(dw[i]), free(dm[i]), free(dv[i]), free(fw[i]), free(fm[i]), free(fv[i]), free(g[i]);
        tensor_free(&w[i]);
    }
    optim_free(&o);
    return 0;
}

#ifdef TRUSTEE_CUDA
static int test_adamw_cuda(int bf16_grads) {
    optim_t o;
    optim_config_t cfg;
    tensor_t w[2];
    if (ad_setup(&o, w, &cfg)) return 1;
    // device buffers: parameter 1 sits one float past an aligned address (the scalar path)
    float *dmaster, *dm, *dv;
    void *dgrad, *dmodel;
    double *dss;
    int64_t off[2] = {0, 4100 + 1}, total = 4100 + 1 + 3;
    OK(cuda_alloc((void **)&dmaster, total * 4));
    OK(cuda_alloc((void **)&dm, total * 4));
    OK(cuda_alloc((void **)&dv, total * 4));
    OK(cuda_alloc(&dgrad, total * 4));
    OK(cuda_alloc(&dmodel, total * 2));
    OK(cuda_alloc((void **)&dss, sizeof(double)));
    OK(cuda_set_zero(dm, total * 4));
    OK(cuda_set_zero(dv, total * 4));
    for (int i = 0; i < 2; i++)
        OK(cuda_memcpy(dmaster + off[i], DEVICE_CUDA, w[i].data, DEVICE_CPU, ad_n[i] * 4));
    const dtype_t gdt = bf16_grads ? DTYPE_BF16 : DTYPE_F32;
    const double gscale = 0.5;
    float *g[2] = {malloc(ad_n[0] * 4), malloc(ad_n[1] * 4)};
    uint16_t *g16 = malloc(ad_n[0] * 2);
    double ss_err = 0;
    for (int s = 0; s < AD_STEPS; s++) {
        for (int i = 0; i < 2; i++) {
            ad_grads(g[i], ad_n[i], s, i, bf16_grads);
            if (bf16_grads) {
                for (int64_t k = 0; k < ad_n[i]; k++) g16[k] = f32_to_bf16(g[i][k]);
                OK(cuda_memcpy((uint16_t *)dgrad + off[i], DEVICE_CUDA, g16, DEVICE_CPU, ad_n[i] * 2));
            } else {
                OK(cuda_memcpy((float *)dgrad + off[i], DEVICE_CUDA, g[i], DEVICE_CPU, ad_n[i] * 4));
            }
        }
        optim_stats_t st;
        OK(optim_step(&o, g, gscale, 1.0, &st));
        // the device: global sum of squares, then the clip coefficient as optim_step computes it
        for (int i = 0; i < 2; i++) {
            const void *gp = bf16_grads ? (const void *)((uint16_t *)dgrad + off[i]) : (const void *)((float *)dgrad + off[i]);
            OK(cuda_grad_sumsq(dss, gp, gdt, ad_n[i], i > 0));
        }
        double ss;
        OK(cuda_memcpy(&ss, DEVICE_CPU, dss, DEVICE_CUDA, sizeof ss));
        double norm = fabs(gscale) * sqrt(ss), coef = 1;
        if (cfg.clip_norm > 0 && cfg.clip_norm / (norm + 1e-6) < 1) coef = cfg.clip_norm / (norm + 1e-6);
        ss_err = fmax(ss_err, fabs(norm - st.grad_norm) / st.grad_norm);
        for (int i = 0; i < 2; i++) {
            adamw_scalars_t sc;
            adamw_scalars_init(&sc, optim_lr(&cfg, s), cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, ad_decay[i],
                               s + 1, gscale, coef);
            const void *gp = bf16_grads ? (const void *)((uint16_t *)dgrad + off[i]) : (const void *)((float *)dgrad + off[i]);
            OK(cuda_adamw_step(dmaster + off[i], dm + off[i], dv + off[i], gp, gdt, (uint16_t *)dmodel + off[i],
                               DTYPE_BF16, ad_n[i], &sc));
        }
    }
    double e_w = 0, e_m = 0, e_v = 0;
    int64_t exact = 0, n_all = 0, bf_bad = 0;
    for (int i = 0; i < 2; i++) {
        int64_t n = ad_n[i];
        float *hw = malloc(n * 4), *hm = malloc(n * 4), *hv = malloc(n * 4);
        uint16_t *hb = malloc(n * 2);
        OK(cuda_memcpy(hw, DEVICE_CPU, dmaster + off[i], DEVICE_CUDA, n * 4));
        OK(cuda_memcpy(hm, DEVICE_CPU, dm + off[i], DEVICE_CUDA, n * 4));
        OK(cuda_memcpy(hv, DEVICE_CPU, dv + off[i], DEVICE_CUDA, n * 4));
        OK(cuda_memcpy(hb, DEVICE_CPU, (uint16_t *)dmodel + off[i], DEVICE_CUDA, n * 2));
        e_w = fmax(e_w, rel_err(hw, w[i].data, n));
        e_m = fmax(e_m, rel_err(hm, o.p[i].m, n));
        e_v = fmax(e_v, rel_err(hv, o.p[i].v, n));
        for (int64_t k = 0; k < n; k++) {
            exact += hw[k] == ((float *)w[i].data)[k];
            bf_bad += hb[k] != f32_to_bf16(hw[k]);
        }
        n_all += n;
        free(hw), free(hm), free(hv), free(hb);
    }
    printf("  adamw %s grads, %d steps, n = 4099 (float4 + tail) and 3 (misaligned): master err %.2e, m %.2e, "
           "v %.2e (tol 1e-6); %lld/%lld master values bit-equal; bf16 copy mismatches %lld; grad-norm rel err %.1e\n",
           bf16_grads ? "BF16" : "F32", AD_STEPS, e_w, e_m, e_v, (long long)exact, (long long)n_all,
           (long long)bf_bad, ss_err);
    CHECK(e_w <= 1e-6 && e_m <= 1e-6 && e_v <= 1e-6, "adamw: errors %g %g %g", e_w, e_m, e_v);
    CHECK(bf_bad == 0, "adamw: %lld bf16 model values are not the master rounded", (long long)bf_bad);
    CHECK(ss_err <= 1e-12, "grad norm rel err %g", ss_err);
    cuda_free(dmaster), cuda_free(dm), cuda_free(dv), cuda_free(dgrad), cuda_free(dmodel), cuda_free(dss);
    free(g[0]), free(g[1]), free(g16);
    for (int i = 0; i < 2; i++) tensor_free(&w[i]);
    optim_free(&o);
    return 0;
}
#endif

static int test_adamw(void) {
    if (self_check) return test_adamw_self();
#ifdef TRUSTEE_CUDA
    return test_adamw_cuda(0) || test_adamw_cuda(1);
#else
    return 0;
#endif
}

// ================================ sampler ================================

#define VBIG 151936
#define S_ROWS 6 // 0, 1: random; 2: ties on a grid; 3: all equal; 4: one peak; 5: V = 37 (random)

static int row_len(int r) { return r == 5 ? 37 : VBIG; }

static void make_row(float *x, int r) {
    int V = row_len(r);
    for (int i = 0; i < V; i++) {
        switch (r) {
        case 2: x[i] = (float)((int)(rng_u32() % 7) - 3) * 0.75f; break;
        case 3: x[i] = 1.5f; break;
        case 4: x[i] = rng_uniform(-4, 0) + (i == 777 ? 14.0f : 0.0f); break;
        default: x[i] = rng_uniform(-6, 6); break;
        }
    }
}

// an independent draw in double: e = exp((l - max) / T), full sort (e desc, id asc), top-k, top-p,
// walk. Also reports how close the target came to a boundary (min |cum - target| / total).
static double *ref_e;
static int ref_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (ref_e[i] != ref_e[j]) return ref_e[i] > ref_e[j] ? -1 : 1;
    return i - j;
}

static int ref_draw(const float *x, int V, const sampler_params_t *p, uint64_t stream, uint64_t step, double *lp,
                    double *margin) {
    double m = -INFINITY;
    for (int i = 0; i < V; i++) m = fmax(m, x[i]);
    double T = p->temperature == 0 ? 1.0 : p->temperature, total = 0;
    double *e = malloc(V * sizeof(double));
    int *idx = malloc(V * sizeof(int));
    for (int i = 0; i < V; i++) total += (e[i] = exp((x[i] - m) / T)), idx[i] = i;
    ref_e = e;
    qsort(idx, V, sizeof(int), ref_cmp);
    int tok;
    *margin = INFINITY;
    if (p->temperature == 0) {
        tok = idx[0];
    } else {
        int n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
        double mass = 0;
        for (int i = 0; i < n; i++) mass += e[idx[i]];
        int keep = n;
        if (p->top_p < 1) {
            double need = p->top_p * mass, cum = 0;
            keep = 0;
            while (keep < n && cum < need) cum += e[idx[keep++]];
            *margin = fmin(*margin, fabs(cum - need) / total);
            if (keep > 1) *margin = fmin(*margin, fabs(cum - e[idx[keep - 1]] - need) / total);
        }
        double kept = 0;
        for (int i = 0; i < keep; i++) kept += e[idx[i]];
        double target = sampler_uniform(p->seed, stream, step) * kept, cum = 0;
        tok = idx[keep - 1];
        if (p->top_k == 0 && p->top_p >= 1) { // the CPU walks the full distribution in id order
            for (int i = 0; i < V; i++) {
                if ((cum += e[i]) > target) {
                    tok = i;
                    *margin = fmin(*margin, fmin(cum - target, target - (cum - e[i])) / total);
                    break;
                }
            }
        } else {
            for (int i = 0; i < keep; i++)
                if ((cum += e[idx[i]]) > target) {
                    tok = idx[i];
                    *margin = fmin(*margin, fmin(cum - target, target - (cum - e[idx[i]])) / total);
                    break;
                }
        }
    }
    *lp = (x[tok] - m) / T - log(total);
    free(e), free(idx);
    return tok;
}

static const float s_temps[3] = {0.0f, 0.7f, 1.0f};
static const int s_topk[3] = {0, 1, 20};
static const float s_topp[2] = {1.0f, 0.9f};
#define S_DRAWS 8 // streams per (row, config)

static int test_sample(void) {
    float *rows[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        rows[r] = malloc(VBIG * sizeof(float));
        make_row(rows[r], r);
    }
    sampler_t smp;
    OK(sampler_init(&smp, VBIG));
    int draws = 0, tok_diff = 0, boundary = 0;
    double lp_err = 0;
#ifdef TRUSTEE_CUDA
    float *dlog = NULL, *dlp = NULL;
    int32_t *dtok = NULL;
    uint64_t *dstream = NULL, *dstep = NULL;
    if (!self_check) {
        OK(cuda_alloc((void **)&dlog, (size_t)S_DRAWS * VBIG * 4));
        OK(cuda_alloc((void **)&dlp, S_DRAWS * 4));
        OK(cuda_alloc((void **)&dtok, S_DRAWS * 4));
        OK(cuda_alloc((void **)&dstream, S_DRAWS * 8));
        OK(cuda_alloc((void **)&dstep, S_DRAWS * 8));
    }
#endif
    for (int r = 0; r < S_ROWS; r++) {
        const int V = row_len(r);
        sampler_t *sp = &smp;
        sampler_t small;
        if (V != VBIG) {
            OK(sampler_init(&small, V));
            sp = &small;
        }
#ifdef TRUSTEE_CUDA
        if (!self_check)
            for (int d = 0; d < S_DRAWS; d++)
                OK(cuda_memcpy(dlog + (size_t)d * V, DEVICE_CUDA, rows[r], DEVICE_CPU, (size_t)V * 4));
#endif
        for (int ti = 0; ti < 3; ti++)
            for (int ki = 0; ki < 3; ki++)
                for (int pi = 0; pi < 2; pi++) {
                    sampler_params_t p = {s_temps[ti], s_topk[ki], s_topp[pi], 1234 + r};
                    uint64_t streams[S_DRAWS], steps[S_DRAWS];
                    int32_t tok[S_DRAWS];
                    float lp[S_DRAWS];
                    for (int d = 0; d < S_DRAWS; d++) {
                        streams[d] = 100 + d;
                        steps[d] = (uint64_t)(ti * 6 + ki * 2 + pi);
                        OK(sampler_sample(sp, &p, rows[r], streams[d], steps[d], &tok[d], &lp[d]));
                    }
                    int32_t got[S_DRAWS];
                    double glp[S_DRAWS], margin[S_DRAWS];
                    if (self_check) {
                        for (int d = 0; d < S_DRAWS; d++)
                            got[d] = ref_draw(rows[r], V, &p, streams[d], steps[d], &glp[d], &margin[d]);
                    } else {
#ifdef TRUSTEE_CUDA
                        cuda_sample_params_t cp = {p.temperature, p.top_k, p.top_p, p.seed};
                        float flp[S_DRAWS];
                        OK(cuda_memcpy(dstream, DEVICE_CUDA, streams, DEVICE_CPU, sizeof streams));
                        OK(cuda_memcpy(dstep, DEVICE_CUDA, steps, DEVICE_CPU, sizeof steps));
                        OK(cuda_sample(dtok, dlp, dlog, S_DRAWS, V, &cp, dstream, dstep));
                        OK(cuda_memcpy(got, DEVICE_CPU, dtok, DEVICE_CUDA, sizeof got));
                        OK(cuda_memcpy(flp, DEVICE_CPU, dlp, DEVICE_CUDA, sizeof flp));
                        for (int d = 0; d < S_DRAWS; d++) {
                            glp[d] = flp[d];
                            double l;
                            ref_draw(rows[r], V, &p, streams[d], steps[d], &l, &margin[d]);
                        }
#endif
                    }
                    for (int d = 0; d < S_DRAWS; d++) {
                        draws++;
                        if (got[d] != tok[d]) {
                            tok_diff++;
                            int at_boundary = margin[d] <= (self_check ? 1e-5 : 1e-9);
                            boundary += at_boundary;
                            fprintf(stderr, "  row %d T %.1f k %d p %.1f stream %d: cpu %d, other %d (margin %.2e)%s\n",
                                    r, p.temperature, p.top_k, p.top_p, d, tok[d], got[d], margin[d],
                                    at_boundary ? " (boundary)" : "");
                            continue;
                        }
                        lp_err = fmax(lp_err, fabs(glp[d] - lp[d]));
                    }
                }
        if (sp == &small) sampler_free(&small);
    }
    printf("  %s vs CPU sampler: %d draws (6 rows incl. ties / all-equal / peak / V=37; 18 configs; %d streams): "
           "%d token differences (%d at a mass boundary), max |log-prob diff| %.2e (tol 1e-5)\n",
           self_check ? "double full-sort reference" : "CUDA", draws, S_DRAWS, tok_diff, boundary, lp_err);
    CHECK(tok_diff == boundary, "%d token differences away from a mass boundary", tok_diff - boundary);
    CHECK(boundary * 1000 <= draws, "%d boundary differences in %d draws", boundary, draws);
    CHECK(lp_err <= 1e-5, "log-prob error %g", lp_err);
#ifdef TRUSTEE_CUDA
    if (!self_check) {
        // a row without a finite max is an error, and the device stays usable
        float bad[37];
        for (int i = 0; i < 37; i++) bad[i] = NAN;
        cuda_sample_params_t cp = {1.0f, 0, 1.0f, 1};
        OK(cuda_memcpy(dlog, DEVICE_CUDA, bad, DEVICE_CPU, sizeof bad));
        CHECK(cuda_sample(dtok, dlp, dlog, 1, 37, &cp, dstream, dstep) != 0, "NaN row accepted");
        printf("  NaN row -> %s\n", err_msg());
        cuda_free(dlog), cuda_free(dlp), cuda_free(dtok), cuda_free(dstream), cuda_free(dstep);
    }
#endif
    sampler_free(&smp);
    for (int r = 0; r < S_ROWS; r++) free(rows[r]);
    return 0;
}

// ================================ lmhead ================================

#define LM_N 37
#define LM_C 64
#define LM_R 8

static int test_lmhead(void) {
    const int64_t N = LM_N, C = LM_C, V = VBIG;
    const size_t cap = (size_t)LM_R * V * sizeof(float);
    CHECK(lmhead_chunk_rows(N, V, cap) == LM_R, "chunk rows %lld", (long long)lmhead_chunk_rows(N, V, cap));
    float *h = malloc(N * C * 4), *w = malloc(V * C * 4), *dlp = malloc(N * 4);
    int32_t ids[LM_N];
    for (int64_t i = 0; i < N * C; i++) h[i] = bf16_round(rng_uniform(-1, 1));
    for (int64_t i = 0; i < V * C; i++) w[i] = bf16_round(rng_uniform(-1, 1));
    for (int i = 0; i < LM_N; i++) ids[i] = (int32_t)(rng_u32() % V), dlp[i] = rng_uniform(-1, 1);
    ids[0] = 0, ids[1] = (int32_t)V - 1;
    const float temp = 0.8f;
    int64_t sh[2] = {N, C}, sw[2] = {V, C}, sn[1] = {N};
    tensor_t th = tensor_view(h, DTYPE_F32, DEVICE_CPU, 2, sh), tw = tensor_view(w, DTYPE_F32, DEVICE_CPU, 2, sw);
    tensor_t ti = tensor_view(ids, DTYPE_I32, DEVICE_CPU, 1, sn), td = tensor_view(dlp, DTYPE_F32, DEVICE_CPU, 1, sn);
    tensor_t lp, ent, dh, dw;
    OK(tensor_alloc(&lp, DTYPE_F32, DEVICE_CPU, 1, sn));
    OK(tensor_alloc(&ent, DTYPE_F32, DEVICE_CPU, 1, sn));
    OK(tensor_alloc(&dh, DTYPE_F32, DEVICE_CPU, 2, sh));
    OK(tensor_alloc(&dw, DTYPE_F32, DEVICE_CPU, 2, sw));
    OK(lmhead_logprob(&lp, &ent, &th, &tw, &ti, temp, cap));
    OK(lmhead_logprob_backward(&dh, &dw, &td, &th, &tw, &ti, temp, cap, 0));
    const float *rlp = lp.data, *rent = ent.data;
    if (self_check) {
        // double: logits, log-softmax, entropy, dlogits, dh, dw
        double *lg = malloc(V * sizeof(double)), *rdh = calloc(N * C, sizeof(double)), *rdw = calloc(V * C, sizeof(double));
        double e_lp = 0, e_ent = 0;
        for (int64_t n = 0; n < N; n++) {
            double m = -INFINITY, s = 0, ez = 0;
            for (int64_t v = 0; v < V; v++) {
                double a = 0;
                for (int64_t c = 0; c < C; c++) a += (double)h[n * C + c] * w[v * C + c];
                lg[v] = a / temp;
                m = fmax(m, lg[v]);
            }
            for (int64_t v = 0; v < V; v++) s += exp(lg[v] - m), ez += (lg[v] - m) * exp(lg[v] - m);
            double lse = m + log(s);
            e_lp = fmax(e_lp, fabs(rlp[n] - (lg[ids[n]] - lse)));
            e_ent = fmax(e_ent, fabs(rent[n] - (log(s) - ez / s)));
            for (int64_t v = 0; v < V; v++) {
                double d = dlp[n] * ((v == ids[n]) - exp(lg[v] - lse)) / temp;
                for (int64_t c = 0; c < C; c++) {
                    rdh[n * C + c] += d * w[v * C + c];
                    rdw[v * C + c] += d * h[n * C + c];
                }
            }
        }
        double e_dh = 0, m_dh = 0, e_dw = 0, m_dw = 0;
        for (int64_t i = 0; i < N * C; i++) e_dh = fmax(e_dh, fabs(((float *)dh.data)[i] - rdh[i])), m_dh = fmax(m_dh, fabs(rdh[i]));
        for (int64_t i = 0; i < V * C; i++) e_dw = fmax(e_dw, fabs(((float *)dw.data)[i] - rdw[i])), m_dw = fmax(m_dw, fabs(rdw[i]));
        printf("  CPU lmhead (R=%d, %lld chunks) vs double: lp err %.2e, entropy err %.2e (tol 1e-4); "
               "dh %.2e, dw %.2e (tol 1e-4)\n", LM_R, (long long)((N + LM_R - 1) / LM_R), e_lp, e_ent, e_dh / m_dh, e_dw / m_dw);
        CHECK(e_lp <= 1e-4 && e_ent <= 1e-4, "lmhead cpu vs double: %g %g", e_lp, e_ent);
        CHECK(e_dh / m_dh <= 1e-4 && e_dw / m_dw <= 1e-4, "lmhead backward cpu vs double: %g %g", e_dh / m_dh, e_dw / m_dw);
        free(lg), free(rdh), free(rdw);
    }
#ifdef TRUSTEE_CUDA
    else {
        const dtype_t combos[3][2] = {{DTYPE_F32, DTYPE_F32}, {DTYPE_F32, DTYPE_BF16}, {DTYPE_BF16, DTYPE_BF16}};
        for (int k = 0; k < 3; k++) {
            tensor_t gh, gw, gi, glp, gent;
            OK(tensor_alloc(&gh, combos[k][0], DEVICE_CUDA, 2, sh));
            OK(tensor_alloc(&gw, combos[k][1], DEVICE_CUDA, 2, sw));
            OK(tensor_alloc(&gi, DTYPE_I32, DEVICE_CUDA, 1, sn));
            OK(tensor_alloc(&glp, DTYPE_F32, DEVICE_CUDA, 1, sn));
            OK(tensor_alloc(&gent, DTYPE_F32, DEVICE_CUDA, 1, sn));
            OK(tensor_copy(&gh, &th));
            OK(tensor_copy(&gw, &tw));
            OK(tensor_copy(&gi, &ti));
            OK(lmhead_logprob(&glp, &gent, &gh, &gw, &gi, temp, cap));
            float hl[LM_N], he[LM_N];
            OK(cuda_memcpy(hl, DEVICE_CPU, glp.data, DEVICE_CUDA, sizeof hl));
            OK(cuda_memcpy(he, DEVICE_CPU, gent.data, DEVICE_CUDA, sizeof he));
            double e_lp = 0, e_ent = 0;
            for (int n = 0; n < LM_N; n++) e_lp = fmax(e_lp, fabs(hl[n] - rlp[n])), e_ent = fmax(e_ent, fabs(he[n] - rent[n]));
            printf("  CUDA lmhead h %s w %s (R=%d): lp err %.2e, entropy err %.2e (tol 1e-4)\n", dtype_name(combos[k][0]),
                   dtype_name(combos[k][1]), LM_R, e_lp, e_ent);
            CHECK(e_lp <= 1e-4 && e_ent <= 1e-4, "lmhead cuda: %g %g", e_lp, e_ent);
            if (k == 0) { // backward (F32)
                tensor_t gd, gdh, gdw;
                OK(tensor_alloc(&gd, DTYPE_F32, DEVICE_CUDA, 1, sn));
                OK(tensor_alloc(&gdh, DTYPE_F32, DEVICE_CUDA, 2, sh));
                OK(tensor_alloc(&gdw, DTYPE_F32, DEVICE_CUDA, 2, sw));
                OK(tensor_copy(&gd, &td));
                OK(lmhead_logprob_backward(&gdh, &gdw, &gd, &gh, &gw, &gi, temp, cap, 0));
                tensor_t hdh, hdw;
                OK(tensor_alloc(&hdh, DTYPE_F32, DEVICE_CPU, 2, sh));
                OK(tensor_alloc(&hdw, DTYPE_F32, DEVICE_CPU, 2, sw));
                OK(tensor_copy(&hdh, &gdh));
                OK(tensor_copy(&hdw, &gdw));
                double e1 = rel_err(hdh.data, dh.data, N * C), e2 = rel_err(hdw.data, dw.data, V * C);
                printf("  CUDA lmhead backward F32 (R=%d): dh err %.2e, dw err %.2e (tol 1e-4)\n", LM_R, e1, e2);
                CHECK(e1 <= 1e-4 && e2 <= 1e-4, "lmhead backward cuda: %g %g", e1, e2);
                tensor_free(&gd), tensor_free(&gdh), tensor_free(&gdw), tensor_free(&hdh), tensor_free(&hdw);
            }
            tensor_free(&gh), tensor_free(&gw), tensor_free(&gi), tensor_free(&glp), tensor_free(&gent);
        }
    }
#endif
    tensor_free(&lp), tensor_free(&ent), tensor_free(&dh), tensor_free(&dw);
    free(h), free(w), free(dlp);
    return 0;
}

int main(int argc, char **argv) {
    rng_state = 0x9e3779b97f4a7c15ull; // this test's inputs
    if (argc > 1 && strcmp(argv[1], "--self-check") == 0) {
        self_check = 1;
    } else if (!kernels_backend_available(DEVICE_CUDA)) {
#ifdef TRUSTEE_CUDA
        printf("SKIP: no usable CUDA device (%s)\n", cuda_unavailable_reason());
#else
        printf("SKIP: no usable CUDA device (built without CUDA)\n");
#endif
        return 77;
    }
    printf("device under test: %s\n", self_check ? "CPU references vs double loops (--self-check)" : "CUDA vs CPU");
    struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {{"adamw", test_adamw}, {"sample", test_sample}, {"lmhead", test_lmhead}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        if (tests[i].fn()) {
            test_failures++;
            fprintf(stderr, "%s: stopped at a setup error\n", tests[i].name);
        }
    }
    return test_exit("test_cuda_train");
}
