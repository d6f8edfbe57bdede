// test_cuda_backward: every backward op of kernels/kernels.h ("ops (backward)") on the CUDA
// backend against the CPU backend (the reference), on the same inputs: odd shapes (N = 1, 37,
// 300), GQA ratios 1/2/4, head dims 64 and 128 (and 256, the CUDA maximum), T not a multiple of 16,
// accumulate = 0 and 1 (gradients pre-filled with random values, so that += is checked), the
// aliasing the header allows (dx = dout for rmsnorm, dgate/dup = dout for swiglu, dlogits =
// logits), and NULL gradients.
//
// Error measure: max |cuda - cpu| / max |cpu| over the whole output, tolerances below:
//   TOL_EXACT  both backends compute the same formula on the same values in F32; only the order of
//              the sums and expf/sqrtf's last bits differ (~1e-7 relative, a few ulps per sum).
//   TOL_ATTN   attention backward: dS = P (dP - delta) is a difference of nearly equal terms,
//              and dK/dV sum T * group such terms; the CPU tiles with OpenBLAS and double-precision
//              row sums, CUDA sums per warp in F32 in another order, so the cancellation amplifies
//              the F32 rounding (seen on an H100: <= 6e-7 at T <= 300; 1e-4 leaves room for
//              long rows and other GPUs).
//   TOL_BF16   the CUDA side rounds to BF16 on the way (relative step 2^-8): a BF16 output, or a
//              matmul product whose other operand is BF16 (the F32 one is rounded to BF16 first,
//              see kernels/cuda/cuda_ops.h).
// embedding_backward must give the same bits on two runs (and, in F32, the CPU's bits: both add
// the rows of one id in increasing n); bad ids must be reported as errors, leave the gradient
// untouched, and the device must stay usable afterwards.
//
// Without a usable CUDA device it prints "SKIP: ..." and exits 77. With --self-check it runs the
// same harness with the CPU backend as the device under test (F32 cases only), which checks the
// harness itself on machines without a GPU. The host-side math of kernels/cuda/rowops_bwd.h is
// checked against double-precision formulas in every mode.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/rowops_bwd.h"
#include "kernels/err.h"
#include "kernels/kernels.h"
#ifdef TRUSTEE_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif
#include "tests/test.h"
#include "tests/cuda_harness.h"

#define TOL_EXACT 1e-5
#define TOL_ATTN 1e-4
#define TOL_BF16 1e-2

// 1 when two tensors of one device hold the same bytes
static int same_bits(const tensor_t *a, const tensor_t *b, int *same) {
    size_t n = tensor_nbytes(a);
    void *ha = malloc(n ? n : 1), *hb = malloc(n ? n : 1);
    tensor_t va = tensor_view(ha, a->dtype, DEVICE_CPU, a->ndim, a->shape);
    tensor_t vb = tensor_view(hb, b->dtype, DEVICE_CPU, b->ndim, b->shape);
    int rc = tensor_copy(&va, a) || tensor_copy(&vb, b);
    *same = rc == 0 && tensor_nbytes(b) == n && memcmp(ha, hb, n) == 0;
    free(ha);
    free(hb);
    REQUIRE(rc == 0, "same_bits: %s", err_msg());
    return 0;
}

// a fresh dut tensor holding a copy of t
static int dup_tensor(tensor_t *out, const tensor_t *t) {
    OK(tensor_alloc(out, t->dtype, t->device, t->ndim, t->shape));
    OK(tensor_copy(out, t));
    return 0;
}

// ---- rowops_bwd.h on the host ----

static int test_rowops_bwd(void) {
    double worst = 0.0;
    for (int it = 0; it < 2000; it++) {
        float g = rng_uniform(-3, 3), a = rng_uniform(-12, 12), u = rng_uniform(-3, 3);
        float da, du;
        rowops_swiglu_bwd(g, a, u, &da, &du);
        double s = 1.0 / (1.0 + exp(-(double)a));
        double rda = (double)g * u * s * (1.0 + a * (1.0 - s)), rdu = (double)g * a * s;
        // relative to the magnitudes of the terms (1 + a (1 - s) cancels near a = -1.28)
        double e1 = fabs(da - rda) / (fabs((double)g * u * s) * (1.0 + fabs(a * (1.0 - s))) + 1e-30);
        double e2 = fabs(du - rdu) / (fabs(rdu) + 1e-30);
        worst = e1 > worst ? e1 : worst;
        worst = e2 > worst ? e2 : worst;
        // rmsnorm: one element with coef from a made-up row
        float x = rng_uniform(-3, 3), w = rng_uniform(0.5f, 1.5f), inv = rng_uniform(0.2f, 3);
        float dot = rng_uniform(-50, 50);
        float coef = rowops_rmsnorm_bwd_coef(inv, dot, 100);
        double rc = (double)inv * inv * inv / 100.0 * dot, rdx = (double)inv * w * g - rc * x;
        // relative to the terms' magnitudes (the difference may cancel)
        double mag = fabs((double)inv * w * g) + fabs(rc * x) + 1e-30;
        double e3 = fabs(rowops_rmsnorm_bwd_elem(g, x, w, inv, coef) - rdx) / mag;
        worst = e3 > worst ? e3 : worst;
        // rope: the backward rotation undoes the forward one
        float c = rng_uniform(-1, 1), sn = sqrtf(1.0f - c * c), p0 = g, p1 = u;
        rowops_rope_pair(&p0, &p1, c, sn);
        rowops_rope_pair_bwd(&p0, &p1, c, sn);
        double e4 = fmax(fabs(p0 - g), fabs(p1 - u)) / 3.0;
        worst = e4 > worst ? e4 : worst;
    }
    // log-softmax gather element and entropy of a known distribution
    float v = rowops_lsm_gather_bwd_elem(0.5f, 0.25f, 2.0f, 0), vid = rowops_lsm_gather_bwd_elem(0.5f, 0.25f, 2.0f, 1);
    CHECK(fabsf(v + 0.25f) < 1e-7f && fabsf(vid - 1.75f) < 1e-7f, "lsm_gather_bwd_elem %g %g", v, vid);
    // uniform over 8: z = 0 everywhere, entropy log 8
    float h = rowops_entropy_finish(8.0, 0.0);
    CHECK(fabs(h - log(8.0)) < 1e-6, "entropy of uniform(8): %g", h);
    printf("  rowops_bwd host math: worst relative error %.2e (tol 1e-5)\n", worst);
    CHECK(worst < 1e-5, "rowops_bwd: worst relative error %g", worst);
    return 0;
}

// ---- matmul ----

static int case_matmul(int64_t N, int64_t I, int64_t O, dtype_t gdt, dtype_t xdt, dtype_t wdt,
                       int accumulate, int want_dx, int want_dw) {
    int64_t xs[2] = {N, I}, ws[2] = {O, I}, gs[2] = {N, O};
    pair_t g, x, w, dx, dw;
    OK(pair_rand(&g, gdt, 2, gs, -1, 1));
    OK(pair_rand(&x, xdt, 2, xs, -1, 1));
    OK(pair_rand(&w, wdt, 2, ws, -1, 1));
    OK(pair_rand(&dx, DTYPE_F32, 2, xs, -1, 1)); // prior contents matter when accumulating
    OK(pair_rand(&dw, DTYPE_F32, 2, ws, -1, 1)); // dw always accumulates
    OK(op_matmul_backward(want_dx ? &dx.ref : NULL, want_dw ? &dw.ref : NULL, &g.ref, &x.ref, &w.ref,
                          accumulate));
    OK(op_matmul_backward(want_dx ? &dx.dev : NULL, want_dw ? &dw.dev : NULL, &g.dev, &x.dev, &w.dev,
                          accumulate));
    char what[160];
    snprintf(what, sizeof what, "matmul_bwd N=%lld I=%lld O=%lld dout %s x %s w %s acc %d",
             (long long)N, (long long)I, (long long)O, dtype_name(gdt), dtype_name(xdt),
             dtype_name(wdt), accumulate);
    char w2[200];
    snprintf(w2, sizeof w2, "%s dx%s", what, want_dx ? "" : " (NULL: untouched)");
    if (compare(w2, &dx.dev, &dx.ref, gdt != wdt ? TOL_BF16 : TOL_EXACT)) return 1;
    snprintf(w2, sizeof w2, "%s dw%s", what, want_dw ? "" : " (NULL: untouched)");
    if (compare(w2, &dw.dev, &dw.ref, gdt != xdt ? TOL_BF16 : TOL_EXACT)) return 1;
    pair_free(&g);
    pair_free(&x);
    pair_free(&w);
    pair_free(&dx);
    pair_free(&dw);
    return 0;
}

static int test_matmul(void) {
    const int64_t shapes[][3] = {{1, 64, 96}, {37, 128, 200}, {300, 70, 33}, {5, 3, 7}};
    // dout, x, w dtypes (gradients are F32)
    const dtype_t combos[][3] = {{DTYPE_F32, DTYPE_F32, DTYPE_F32},
                                 {DTYPE_F32, DTYPE_F32, DTYPE_BF16},
                                 {DTYPE_F32, DTYPE_BF16, DTYPE_BF16}};
    int ncombos = self_check ? 1 : 3;
    for (int s = 0; s < 4; s++)
        for (int c = 0; c < ncombos; c++)
            for (int acc = 0; acc < 2; acc++)
                if (case_matmul(shapes[s][0], shapes[s][1], shapes[s][2], combos[c][0],
                                combos[c][1], combos[c][2], acc, 1, 1))
                    return 1;
    if (case_matmul(37, 128, 200, DTYPE_F32, DTYPE_F32, DTYPE_F32, 0, 1, 0)) return 1;
    if (case_matmul(37, 128, 200, DTYPE_F32, DTYPE_F32, DTYPE_F32, 1, 0, 1)) return 1;
    return 0;
}

// ---- rmsnorm ----

static int test_rmsnorm(void) {
    // (ndim, shape): a decode row, 37 rows, 300 rows, and QK-norm over (N, H, D) with w (D)
    const int64_t shapes[][3] = {{1, 64, 0}, {37, 1000, 0}, {300, 96, 0}, {300, 8, 128}};
    const int ndims[] = {2, 2, 2, 3};
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < n_dtypes(); t++)
            for (int mode = 0; mode < 4; mode++) { // bit 0: accumulate, bit 1: dx aliases dout
                int acc = mode & 1, alias = mode >> 1;
                dtype_t dt = dtypes[t];
                int nd = ndims[s];
                int64_t C = shapes[s][nd - 1];
                pair_t x, w, g, dx, dw;
                OK(pair_rand(&x, dt, nd, shapes[s], -3, 3));
                OK(pair_rand(&w, dt, 1, &C, 0.5f, 1.5f));
                OK(pair_rand(&g, DTYPE_F32, nd, shapes[s], -1, 1));
                OK(pair_rand(&dw, DTYPE_F32, 1, &C, -1, 1));
                pair_t *d = &g;
                if (!alias) {
                    OK(pair_rand(&dx, DTYPE_F32, nd, shapes[s], -1, 1));
                    d = &dx;
                }
                OK(op_rmsnorm_backward(&d->ref, &dw.ref, &g.ref, &x.ref, &w.ref, 1e-6f, acc));
                OK(op_rmsnorm_backward(&d->dev, &dw.dev, &g.dev, &x.dev, &w.dev, 1e-6f, acc));
                char what[160];
                snprintf(what, sizeof what, "rmsnorm_bwd rows=%lld C=%lld x/w %s acc %d%s",
                         (long long)(tensor_numel(&x.ref) / C), (long long)C, dtype_name(dt), acc,
                         alias ? " (dx = dout)" : "");
                char w2[200];
                snprintf(w2, sizeof w2, "%s dx", what);
                if (compare(w2, &d->dev, &d->ref, TOL_EXACT)) return 1;
                snprintf(w2, sizeof w2, "%s dw", what);
                if (compare(w2, &dw.dev, &dw.ref, TOL_EXACT)) return 1;
                pair_free(&x);
                pair_free(&w);
                pair_free(&g);
                pair_free(&dw);
                if (!alias) pair_free(&dx);
            }
    return 0;
}

// ---- rope ----

static int test_rope(void) {
    const int64_t Ns[] = {1, 37, 300};
    return harness_rope_cases(1, Ns, 3);
}

// ---- swiglu ----

static int test_swiglu(void) {
    const int64_t shapes[][2] = {{1, 96}, {37, 333}, {300, 100}};
    // 0: separate outputs, 1: dgate = dout, 2: dup = dout, 3: dgate NULL, 4: dup NULL
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < n_dtypes(); t++)
            for (int mode = 0; mode < 5; mode++) {
                dtype_t dt = dtypes[t];
                pair_t g, a, u, da, du;
                OK(pair_rand(&g, DTYPE_F32, 2, shapes[s], -2, 2));
                OK(pair_rand(&a, dt, 2, shapes[s], -8, 8));
                OK(pair_rand(&u, dt, 2, shapes[s], -3, 3));
                OK(pair_rand(&da, DTYPE_F32, 2, shapes[s], -1, 1));
                OK(pair_rand(&du, DTYPE_F32, 2, shapes[s], -1, 1));
                pair_t *pa = mode == 1 ? &g : &da, *pu = mode == 2 ? &g : &du;
                OK(op_swiglu_backward(mode == 3 ? NULL : &pa->ref, mode == 4 ? NULL : &pu->ref,
                                      &g.ref, &a.ref, &u.ref));
                OK(op_swiglu_backward(mode == 3 ? NULL : &pa->dev, mode == 4 ? NULL : &pu->dev,
                                      &g.dev, &a.dev, &u.dev));
                static const char *names[] = {"", " (dgate = dout)", " (dup = dout)",
                                              " (dgate NULL)", " (dup NULL)"};
                char what[160];
                snprintf(what, sizeof what, "swiglu_bwd (%lld, %lld) gate/up %s%s dgate",
                         (long long)shapes[s][0], (long long)shapes[s][1], dtype_name(dt),
                         names[mode]);
                if (compare(what, &pa->dev, &pa->ref, TOL_EXACT)) return 1;
                what[strlen(what) - 5] = 0;
                strcat(what, "dup");
                if (compare(what, &pu->dev, &pu->ref, TOL_EXACT)) return 1;
                pair_free(&g);
                pair_free(&a);
                pair_free(&u);
                pair_free(&da);
                pair_free(&du);
            }
    return 0;
}

// ---- embedding ----

static int test_embedding(void) {
    const int64_t V = 500;
    const int64_t Cs[] = {96, 1000}, Ns[] = {1, 37, 300};
    for (int ci = 0; ci < 2; ci++)
        for (int ni = 0; ni < 3; ni++) {
            int64_t C = Cs[ci], N = Ns[ni], tshape[2] = {V, C}, gshape[2] = {N, C};
            int32_t *ids = malloc((size_t)N * sizeof *ids);
            for (int64_t n = 0; n < N; n++) // few distinct ids: many repeats
                ids[n] = (int32_t)(rng_u32() % 50) * 10;
            ids[0] = (int32_t)(V - 1);
            pair_t dt, g, id;
            OK(pair_rand(&dt, DTYPE_F32, 2, tshape, -1, 1)); // += onto old values
            OK(pair_rand(&g, DTYPE_F32, 2, gshape, -1, 1));
            OK(pair_i32(&id, 1, &N, ids));
            tensor_t before, second;
            OK(dup_tensor(&before, &dt.dev));
            OK(op_embedding_backward(&dt.ref, &g.ref, &id.ref));
            OK(op_embedding_backward(&dt.dev, &g.dev, &id.dev));
            char what[128];
            snprintf(what, sizeof what, "embedding_bwd V=%lld C=%lld N=%lld", (long long)V,
                     (long long)C, (long long)N);
            if (compare(what, &dt.dev, &dt.ref, TOL_EXACT)) return 1;
            int same, same_cpu;
            tensor_t ref_as_dut;
            OK(tensor_alloc(&ref_as_dut, DTYPE_F32, dut, 2, tshape));
            OK(tensor_copy(&ref_as_dut, &dt.ref));
            if (same_bits(&dt.dev, &ref_as_dut, &same_cpu)) return 1;
            // a second run from the same start: the same bits
            OK(dup_tensor(&second, &before));
            OK(op_embedding_backward(&second, &g.dev, &id.dev));
            if (same_bits(&second, &dt.dev, &same)) return 1;
            printf("  %s: two runs bitwise %s; CPU's bits: %s\n", what, same ? "identical" : "DIFFERENT",
                   same_cpu ? "yes" : "no");
            CHECK(same, "%s: two runs differ", what);
            // bad ids: an error, the gradient untouched, the device usable afterwards
            for (int k = 0; k < 2; k++) {
                int32_t keep = ids[N - 1];
                ids[N - 1] = k ? -1 : (int32_t)V;
                pair_t bad;
                OK(pair_i32(&bad, 1, &N, ids));
                OK(tensor_copy(&second, &before));
                err_clear();
                int rc = op_embedding_backward(&second, &g.dev, &bad.dev);
                CHECK(rc != 0, "embedding_bwd: id %d was accepted", ids[N - 1]);
                CHECK(strstr(err_msg(), "outside") != NULL, "embedding_bwd: message '%s'", err_msg());
                printf("  embedding_bwd id %d -> %s\n", ids[N - 1], err_msg());
                if (same_bits(&second, &before, &same)) return 1;
                CHECK(same, "embedding_bwd: a rejected call wrote into dtable");
                ids[N - 1] = keep;
                pair_free(&bad);
            }
            OK(tensor_copy(&second, &before)); // still usable: the good ids again, same bits
            OK(op_embedding_backward(&second, &g.dev, &id.dev));
            if (same_bits(&second, &dt.dev, &same)) return 1;
            CHECK(same, "embedding_bwd: after a rejected call the result differs");
            tensor_free(&before);
            tensor_free(&second);
            tensor_free(&ref_as_dut);
            pair_free(&dt);
            pair_free(&g);
            pair_free(&id);
            free(ids);
        }
    return 0;
}

// ---- log-softmax gather backward, entropy ----

static int test_logsoftmax(void) {
    const int64_t shapes[][2] = {{1, 151}, {37, 1000}, {300, 5000}};
    const float temps[] = {1.0f, 0.7f};
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < n_dtypes(); t++)
            for (int k = 0; k < 2; k++)
                for (int alias = 0; alias < 2; alias++) {
                    dtype_t dt = dtypes[t];
                    int64_t N = shapes[s][0], V = shapes[s][1];
                    int32_t *ids = malloc((size_t)N * sizeof *ids);
                    for (int64_t n = 0; n < N; n++)
                        ids[n] = (int32_t)(rng_u32() % V);
                    ids[0] = (int32_t)(V - 1);
                    pair_t l, id, dlp, dl, ent;
                    OK(pair_rand(&l, dt, 2, shapes[s], -15, 15));
                    OK(pair_i32(&id, 1, &N, ids));
                    OK(pair_rand(&dlp, DTYPE_F32, 1, &N, -2, 2));
                    OK(pair_rand(&ent, DTYPE_F32, 1, &N, 0, 0));
                    char what[160];
                    // entropy first (the in-place backward overwrites the logits)
                    OK(op_softmax_entropy(&ent.ref, &l.ref, temps[k]));
                    OK(op_softmax_entropy(&ent.dev, &l.dev, temps[k]));
                    snprintf(what, sizeof what, "softmax_entropy (%lld, %lld) %s T=%.1f", (long long)N,
                             (long long)V, dtype_name(dt), temps[k]);
                    if (!alias && compare(what, &ent.dev, &ent.ref, TOL_EXACT)) return 1;
                    pair_t *d = &l;
                    if (!alias) {
                        OK(pair_rand(&dl, DTYPE_F32, 2, shapes[s], -1, 1));
                        d = &dl;
                    }
                    // a bad id first: an error, nothing written, the device usable afterwards
                    pair_t bad;
                    int32_t keep = ids[N - 1];
                    ids[N - 1] = (int32_t)V;
                    OK(pair_i32(&bad, 1, &N, ids));
                    ids[N - 1] = keep;
                    tensor_t before;
                    OK(dup_tensor(&before, &d->dev));
                    err_clear();
                    CHECK(op_logsoftmax_gather_backward(&d->dev, &l.dev, &bad.dev, &dlp.dev,
                                                        temps[k]) != 0,
                          "logsoftmax_gather_bwd: id %lld was accepted", (long long)V);
                    CHECK(strstr(err_msg(), "outside") != NULL,
                          "logsoftmax_gather_bwd: message '%s'", err_msg());
                    int same;
                    if (same_bits(&before, &d->dev, &same)) return 1;
                    CHECK(same, "logsoftmax_gather_bwd: a rejected call wrote into dlogits");
                    tensor_free(&before);
                    pair_free(&bad);

                    OK(op_logsoftmax_gather_backward(&d->ref, &l.ref, &id.ref, &dlp.ref, temps[k]));
                    OK(op_logsoftmax_gather_backward(&d->dev, &l.dev, &id.dev, &dlp.dev, temps[k]));
                    snprintf(what, sizeof what, "logsoftmax_gather_bwd (%lld, %lld) %s T=%.1f%s",
                             (long long)N, (long long)V, dtype_name(dt), temps[k],
                             alias ? " (dlogits = logits)" : "");
                    if (compare(what, &d->dev, &d->ref,
                                d->dev.dtype == DTYPE_BF16 ? TOL_BF16 : TOL_EXACT))
                        return 1;
                    pair_free(&l);
                    pair_free(&id);
                    pair_free(&dlp);
                    pair_free(&ent);
                    if (!alias) pair_free(&dl);
                    free(ids);
                }
    return 0;
}

// ---- attention ----

static int case_attention(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, dtype_t dt) {
    int64_t qs[4] = {B, T, Hq, D}, ks[4] = {B, T, Hkv, D};
    pair_t q, k, v, g, dq, dk, dv;
    OK(pair_rand(&q, dt, 4, qs, -2, 2));
    OK(pair_rand(&k, dt, 4, ks, -2, 2));
    OK(pair_rand(&v, dt, 4, ks, -1, 1));
    OK(pair_rand(&g, DTYPE_F32, 4, qs, -1, 1));
    OK(pair_rand(&dq, DTYPE_F32, 4, qs, -1, 1)); // written (=): old values must not leak in
    OK(pair_rand(&dk, DTYPE_F32, 4, ks, -1, 1));
    OK(pair_rand(&dv, DTYPE_F32, 4, ks, -1, 1));
    OK(op_attention_backward(&dq.ref, &dk.ref, &dv.ref, &g.ref, &q.ref, &k.ref, &v.ref));
    OK(op_attention_backward(&dq.dev, &dk.dev, &dv.dev, &g.dev, &q.dev, &k.dev, &v.dev));
    char what[160], w2[200];
    snprintf(what, sizeof what, "attention_bwd B=%lld T=%lld Hq=%lld Hkv=%lld D=%lld %s",
             (long long)B, (long long)T, (long long)Hq, (long long)Hkv, (long long)D, dtype_name(dt));
    const char *nm[] = {"dq", "dk", "dv"};
    pair_t *outs[] = {&dq, &dk, &dv};
    for (int i = 0; i < 3; i++) {
        snprintf(w2, sizeof w2, "%s %s", what, nm[i]);
        if (compare(w2, &outs[i]->dev, &outs[i]->ref, TOL_ATTN)) return 1;
    }
    // deterministic: a second run gives the same bits
    tensor_t dq2, dk2, dv2;
    OK(dup_tensor(&dq2, &dq.dev));
    OK(dup_tensor(&dk2, &dk.dev));
    OK(dup_tensor(&dv2, &dv.dev));
    OK(op_attention_backward(&dq2, &dk2, &dv2, &g.dev, &q.dev, &k.dev, &v.dev));
    int s1, s2, s3;
    if (same_bits(&dq2, &dq.dev, &s1) || same_bits(&dk2, &dk.dev, &s2) ||
        same_bits(&dv2, &dv.dev, &s3))
        return 1;
    CHECK(s1 && s2 && s3, "%s: two runs differ (dq %d dk %d dv %d)", what, s1, s2, s3);
    tensor_free(&dq2);
    tensor_free(&dk2);
    tensor_free(&dv2);
    pair_t *all[] = {&q, &k, &v, &g, &dq, &dk, &dv};
    for (int i = 0; i < 7; i++)
        pair_free(all[i]);
    return 0;
}

static int test_attention(void) {
    // (B, T): one token, T not a multiple of 16, two sequences
    const int64_t bts[][2] = {{1, 1}, {1, 37}, {2, 75}};
    // (Hq, Hkv, D): GQA ratios 1, 2, 4; head dims 64 and 128
    const int64_t heads[][3] = {{4, 4, 64}, {8, 4, 128}, {8, 2, 64}, {4, 1, 128}};
    for (int b = 0; b < 3; b++)
        for (int h = 0; h < 4; h++)
            for (int t = 0; t < n_dtypes(); t++)
                if (case_attention(bts[b][0], bts[b][1], heads[h][0], heads[h][1], heads[h][2],
                                   dtypes[t]))
                    return 1;
    if (case_attention(1, 300, 2, 1, 64, DTYPE_F32)) return 1;  // a longer row
    if (case_attention(1, 20, 2, 2, 256, DTYPE_F32)) return 1;  // the largest CUDA head dim
    if (case_attention(2, 19, 6, 3, 40, DTYPE_F32)) return 1;   // D not a multiple of 32
    return 0;
}

int main(int argc, char **argv) {
    rng_state = 0x9e3779b97f4a7c15ull; // this harness's inputs
    if (argc > 1 && strcmp(argv[1], "--self-check") == 0) {
        self_check = 1;
        dut = DEVICE_CPU;
    } else if (!kernels_backend_available(DEVICE_CUDA)) {
        printf("rowops_bwd (host)\n");
        test_rowops_bwd();
#ifdef TRUSTEE_CUDA
        printf("SKIP: no usable CUDA device (%s)\n", cuda_unavailable_reason());
#else
        printf("SKIP: no usable CUDA device (built without CUDA)\n");
#endif
        return test_failures ? 1 : 77;
    }
    printf("device under test: %s; reference: CPU\n", self_check ? "CPU (--self-check)" : "CUDA");
    struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {{"rowops_bwd (host)", test_rowops_bwd},
                 {"matmul_backward", test_matmul},
                 {"rmsnorm_backward", test_rmsnorm},
                 {"rope_backward", test_rope},
                 {"swiglu_backward", test_swiglu},
                 {"embedding_backward", test_embedding},
                 {"logsoftmax_gather_backward / softmax_entropy", test_logsoftmax},
                 {"attention_backward", test_attention}};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("%s\n", tests[i].name);
        if (tests[i].fn()) {
            test_failures++;
            fprintf(stderr, "%s: stopped at a setup error\n", tests[i].name);
        }
    }
    return test_exit("test_cuda_backward");
}
