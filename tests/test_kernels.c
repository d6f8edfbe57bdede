// Op tests: every op of kernels/kernels.h on the CPU backend against a naive double-precision
// reference written here, over odd shapes (T=1, GQA ratios 1/2/4, page sizes that do not divide the
// lengths, head_dim unrelated to hidden/heads); results at 1 and 2 threads must be bitwise equal;
// argument errors must be reported, never crash.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "kernels/kernels.h"
#include "test.h"

// ---- helpers ----

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { // uniform [0, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static void fill(float *x, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * urand() - 1.0) * scale);
}

static tensor_t f32(int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t shape[4] = {a, b, c, d};
    tensor_t t;
    if (tensor_alloc(&t, DTYPE_F32, DEVICE_CPU, ndim, shape)) {
        fprintf(stderr, "alloc: %s\n", err_msg());
        exit(1);
    }
    return t;
}
static tensor_t i32(int64_t n) {
    tensor_t t;
    if (tensor_alloc(&t, DTYPE_I32, DEVICE_CPU, 1, &n)) exit(1);
    return t;
}
#define F(t) ((float *)(t).data)
#define IP(t) ((int32_t *)(t).data)

// max |got - want| / max |want|
static double rel_err(const float *got, const double *want, int64_t n) {
    double md = 0, mv = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= md)) md = d; // NaN propagates
        if (fabs(want[i]) > mv) mv = fabs(want[i]);
    }
    return mv > 0 ? md / mv : md;
}

// ---- conversions ----

static void test_conversions(void) {
    CHECK(f32_to_bf16(1.0f) == 0x3f80, "bf16(1) = %04x", f32_to_bf16(1.0f));
    CHECK(bf16_to_f32(0xc040) == -3.0f, "bf16 0xc040 = %g", bf16_to_f32(0xc040));
    // ties to even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125 -> 1.0 (even)
    CHECK(f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 tie down %04x", f32_to_bf16(1.0f + 1.0f / 256));
    CHECK(f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82, "bf16 tie up %04x", f32_to_bf16(1.0f + 3.0f / 256));
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))), "bf16 NaN");
    CHECK(f32_to_f16(1.0f) == 0x3c00, "f16(1) = %04x", f32_to_f16(1.0f));
    CHECK(f32_to_f16(65504.0f) == 0x7bff, "f16 max %04x", f32_to_f16(65504.0f));
    CHECK(f32_to_f16(65520.0f) == 0x7c00, "f16 overflow %04x", f32_to_f16(65520.0f));
    CHECK(f32_to_f16(-65519.0f) == 0xfbff, "f16 below overflow %04x", f32_to_f16(-65519.0f));
    CHECK(f32_to_f16(5.9604644775390625e-08f) == 0x0001, "f16 min subnormal %04x",
          f32_to_f16(5.9604644775390625e-08f));
    CHECK(f32_to_f16(2.98e-08f) == 0x0000, "f16 below half min subnormal");
    CHECK(f32_to_f16(6.0975552e-05f) == 0x03ff, "f16 max subnormal %04x", f32_to_f16(6.0975552e-05f));
    CHECK(f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 0x0001 -> %g", f16_to_f32(1));
    CHECK(f16_to_f32(0xc000) == -2.0f, "f16 0xc000");
    CHECK(isinf(f16_to_f32(0x7c00)) && isnan(f16_to_f32(0x7e00)), "f16 inf/nan");
    // every finite 16-bit pattern survives a round trip through f32; values match the formula
    int bad_bf = 0, bad_f16 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float b = bf16_to_f32((uint16_t)h);
        if (!isnan(b) && f32_to_bf16(b) != h) bad_bf++;
        float f = f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        double want = e == 0 ? ldexp((double)m, -24) : ldexp(1.0 + m / 1024.0, (int)e - 15);
        if (h & 0x8000) want = -want;
        if (e != 31 && (double)f != want) bad_f16++;
        if (!isnan(f) && f32_to_f16(f) != h) bad_f16++;
    }
    CHECK(bad_bf == 0, "%d bf16 patterns do not round-trip", bad_bf);
    CHECK(bad_f16 == 0, "%d f16 patterns wrong or do not round-trip", bad_f16);
    // rounding of random f32 to f16 is the nearest representable (ties excluded by randomness)
    int bad_round = 0;
    for (int i = 0; i < 20000; i++) {
        float x = (float)((2 * urand() - 1) * pow(2.0, 30 * urand() - 20));
        float r = f16_to_f32(f32_to_f16(x));
        uint16_t h = f32_to_f16(x);
        float up = f16_to_f32((uint16_t)(h + 1)), dn = f16_to_f32((uint16_t)(h ? h - 1 : 0));
        if (fabsf(x) <= 65504 && (fabs((double)x - r) > fabs((double)x - up) ||
                                  ((h & 0x7fff) && fabs((double)x - r) > fabs((double)x - dn))))
            bad_round++;
    }
    CHECK(bad_round == 0, "%d f16 roundings not nearest", bad_round);

    // tensor_copy converts F32 <-> BF16 <-> F16
    int64_t n = 37;
    tensor_t a = f32(1, n, 0, 0, 0), back = f32(1, n, 0, 0, 0), hb, hf;
    fill(F(a), n, 3.0);
    tensor_alloc(&hb, DTYPE_BF16, DEVICE_CPU, 1, &n);
    tensor_alloc(&hf, DTYPE_F16, DEVICE_CPU, 1, &n);
    CHECK(tensor_copy(&hb, &a) == 0, "%s", err_msg());
    CHECK(tensor_copy(&hf, &hb) == 0, "%s", err_msg());
    CHECK(tensor_copy(&back, &hb) == 0, "%s", err_msg());
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (F(back)[i] != bf16_to_f32(f32_to_bf16(F(a)[i]))) bad++;
        if (((uint16_t *)hf.data)[i] != f32_to_f16(bf16_to_f32(((uint16_t *)hb.data)[i]))) bad++;
    }
    CHECK(bad == 0, "%d tensor_copy conversions differ", bad);
    tensor_t ids = i32(n);
    CHECK(tensor_copy(&ids, &a) != 0, "F32 -> I32 copy must fail");
    tensor_t small = f32(1, n - 1, 0, 0, 0);
    CHECK(tensor_copy(&small, &a) != 0, "numel mismatch must fail");
    CHECK(tensor_nbytes(&hb) == (size_t)n * 2 && dtype_size(DTYPE_F16) == 2 &&
              strcmp(dtype_name(DTYPE_BF16), "BF16") == 0, "sizes/names");
    tensor_free(&a); tensor_free(&back); tensor_free(&hb); tensor_free(&hf);
    tensor_free(&ids); tensor_free(&small);
}

// ---- matmul ----

static void test_matmul(void) {
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 33, 17}, {7, 5, 3}, {13, 64, 31}, {3, 129, 70}};
    for (int s = 0; s < 5; s++) {
        int64_t N = shapes[s][0], K = shapes[s][1], O = shapes[s][2];
        tensor_t x = f32(2, N, K, 0, 0), w = f32(2, O, K, 0, 0), out = f32(2, N, O, 0, 0);
        fill(F(x), N * K, 1.0);
        fill(F(w), O * K, 1.0);
        fill(F(out), N * O, 1.0);
        double *want = malloc(sizeof(double) * N * O);
        for (int acc = 0; acc < 2; acc++) {
            for (int64_t n = 0; n < N; n++)
                for (int64_t o = 0; o < O; o++) {
                    double v = acc ? F(out)[n * O + o] : 0.0;
                    for (int64_t k = 0; k < K; k++) v += (double)F(x)[n * K + k] * F(w)[o * K + k];
                    want[n * O + o] = v;
                }
            CHECK(op_matmul(&out, &x, &w, acc) == 0, "%s", err_msg());
            double e = rel_err(F(out), want, N * O);
            CHECK(e < 1e-6, "matmul N=%ld K=%ld O=%ld acc=%d rel err %g", (long)N, (long)K, (long)O, acc, e);
        }
        free(want);
        tensor_free(&x); tensor_free(&w); tensor_free(&out);
    }
    // x given as (N, H, D) is (N, H*D)
    tensor_t x = f32(3, 2, 3, 4, 0), w = f32(2, 5, 12, 0, 0), out = f32(2, 2, 5, 0, 0);
    fill(F(x), 24, 1.0); fill(F(w), 60, 1.0);
    CHECK(op_matmul(&out, &x, &w, 0) == 0, "3-dim x: %s", err_msg());
    tensor_t wbad = f32(2, 5, 11, 0, 0);
    CHECK(op_matmul(&out, &x, &wbad, 0) != 0 && strstr(err_msg(), "op_matmul"), "shape error: %s", err_msg());
    tensor_free(&x); tensor_free(&w); tensor_free(&out); tensor_free(&wbad);
}

// ---- rmsnorm, add, swiglu, rope, embedding, softmax, logsoftmax ----

static void test_rowwise(void) {
    // rmsnorm over odd widths, also in place and as QK-norm (rows of D)
    const int64_t dims[][2] = {{1, 1}, {1, 64}, {5, 37}, {9, 96}};
    for (int s = 0; s < 4; s++) {
        int64_t R = dims[s][0], C = dims[s][1];
        tensor_t x = f32(2, R, C, 0, 0), w = f32(1, C, 0, 0, 0), out = f32(2, R, C, 0, 0);
        fill(F(x), R * C, 4.0);
        fill(F(w), C, 2.0);
        double *want = malloc(sizeof(double) * R * C);
        for (int64_t r = 0; r < R; r++) {
            double ss = 0;
            for (int64_t c = 0; c < C; c++) ss += (double)F(x)[r * C + c] * F(x)[r * C + c];
            double inv = 1.0 / sqrt(ss / C + 1e-6);
            for (int64_t c = 0; c < C; c++) want[r * C + c] = F(x)[r * C + c] * inv * F(w)[c];
        }
        CHECK(op_rmsnorm(&out, &x, &w, 1e-6f) == 0, "%s", err_msg());
        double e = rel_err(F(out), want, R * C);
        CHECK(e < 1e-6, "rmsnorm %ldx%ld rel err %g", (long)R, (long)C, e);
        CHECK(op_rmsnorm(&x, &x, &w, 1e-6f) == 0, "%s", err_msg());
        e = rel_err(F(x), want, R * C);
        CHECK(e < 1e-6, "rmsnorm in place rel err %g", e);
        free(want);
        tensor_free(&x); tensor_free(&w); tensor_free(&out);
    }

    // add and swiglu
    int64_t n = 1001;
    tensor_t a = f32(1, n, 0, 0, 0), b = f32(1, n, 0, 0, 0), o = f32(1, n, 0, 0, 0);
    fill(F(a), n, 30.0); fill(F(b), n, 3.0);
    double *want = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) want[i] = (double)F(a)[i] + F(b)[i];
    CHECK(op_add(&o, &a, &b) == 0, "%s", err_msg());
    CHECK(rel_err(F(o), want, n) < 1e-7, "add");
    for (int64_t i = 0; i < n; i++) want[i] = F(a)[i] / (1.0 + exp(-(double)F(a)[i])) * F(b)[i];
    CHECK(op_swiglu(&o, &a, &b) == 0, "%s", err_msg());
    double e = rel_err(F(o), want, n);
    CHECK(e < 1e-6, "swiglu rel err %g", e);
    CHECK(op_swiglu(&a, &a, &b) == 0, "%s", err_msg()); // out aliases gate
    CHECK(rel_err(F(a), want, n) < 1e-6, "swiglu aliased");
    F(a)[0] = -200.0f; F(b)[0] = 1.0f; // e^200 overflows to inf: silu -> -0
    CHECK(op_swiglu(&o, &a, &b) == 0 && F(o)[0] == 0.0f, "swiglu of -200 = %g", F(o)[0]);
    free(want);
    tensor_free(&a); tensor_free(&b); tensor_free(&o);

    // rope: odd half width, several heads, large positions
    {
        int64_t N = 4, H = 3, D = 10;
        tensor_t x = f32(3, N, H, D, 0), pos = i32(N);
        fill(F(x), N * H * D, 1.0);
        int32_t ps[4] = {0, 1, 77, 40000};
        memcpy(pos.data, ps, sizeof ps);
        double *wr = malloc(sizeof(double) * N * H * D);
        for (int64_t t = 0; t < N; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < D / 2; i++) {
                    double ang = ps[t] / pow(1e6, 2.0 * i / D);
                    double x0 = F(x)[(t * H + h) * D + i], x1 = F(x)[(t * H + h) * D + i + D / 2];
                    wr[(t * H + h) * D + i] = x0 * cos(ang) - x1 * sin(ang);
                    wr[(t * H + h) * D + i + D / 2] = x1 * cos(ang) + x0 * sin(ang);
                }
        CHECK(op_rope(&x, &pos, 1e6) == 0, "%s", err_msg());
        e = rel_err(F(x), wr, N * H * D);
        CHECK(e < 1e-6, "rope rel err %g", e);
        free(wr);
        tensor_t odd = f32(3, 1, 1, 3, 0), p1 = i32(1);
        CHECK(op_rope(&odd, &p1, 1e4) != 0, "odd head dim must fail");
        tensor_free(&x); tensor_free(&pos); tensor_free(&odd); tensor_free(&p1);
    }

    // embedding: gather rows; an id outside the table is an error naming it
    {
        int64_t V = 11, C = 7, N = 5;
        tensor_t table = f32(2, V, C, 0, 0), out = f32(2, N, C, 0, 0), ids = i32(N);
        fill(F(table), V * C, 1.0);
        int32_t id[5] = {3, 0, 10, 3, 9};
        memcpy(ids.data, id, sizeof id);
        CHECK(op_embedding(&out, &table, &ids) == 0, "%s", err_msg());
        int bad = 0;
        for (int64_t t = 0; t < N; t++)
            for (int64_t c = 0; c < C; c++) bad += F(out)[t * C + c] != F(table)[id[t] * C + c];
        CHECK(bad == 0, "embedding rows differ");
        IP(ids)[2] = 11;
        CHECK(op_embedding(&out, &table, &ids) != 0 && strstr(err_msg(), "11"), "id 11: %s", err_msg());
        IP(ids)[2] = -1;
        CHECK(op_embedding(&out, &table, &ids) != 0, "id -1 must fail");
        tensor_free(&table); tensor_free(&out); tensor_free(&ids);
    }

    // softmax and log-softmax gather (temperature 0.7 and 1)
    {
        int64_t R = 3, V = 1000;
        tensor_t x = f32(2, R, V, 0, 0), lp = f32(1, R, 0, 0, 0), ids = i32(R);
        fill(F(x), R * V, 20.0);
        int32_t id[3] = {0, 999, 500};
        memcpy(ids.data, id, sizeof id);
        double *sm = malloc(sizeof(double) * R * V), wl[3];
        float temps[2] = {0.7f, 1.0f};
        for (int ti = 0; ti < 2; ti++) {
            double T = temps[ti];
            for (int64_t r = 0; r < R; r++) {
                double m = -1e300, s = 0;
                for (int64_t i = 0; i < V; i++) m = fmax(m, F(x)[r * V + i] / T);
                for (int64_t i = 0; i < V; i++) s += exp(F(x)[r * V + i] / T - m);
                wl[r] = F(x)[r * V + id[r]] / T - m - log(s);
            }
            CHECK(op_logsoftmax_gather(&lp, &x, &ids, temps[ti]) == 0, "%s", err_msg());
            for (int r = 0; r < 3; r++)
                CHECK(fabs(F(lp)[r] - wl[r]) < 2e-5 * fmax(1, fabs(wl[r])), "logsoftmax T=%g row %d: %g vs %g",
                      T, r, F(lp)[r], wl[r]);
        }
        CHECK(op_logsoftmax_gather(&lp, &x, &ids, 0.0f) != 0, "T=0 must fail");
        IP(ids)[1] = 1000;
        CHECK(op_logsoftmax_gather(&lp, &x, &ids, 1.0f) != 0 && strstr(err_msg(), "1000"), "%s", err_msg());
        for (int64_t r = 0; r < R; r++) {
            double m = -1e300, s = 0;
            for (int64_t i = 0; i < V; i++) m = fmax(m, F(x)[r * V + i]);
            for (int64_t i = 0; i < V; i++) s += exp(F(x)[r * V + i] - m);
            for (int64_t i = 0; i < V; i++) sm[r * V + i] = exp(F(x)[r * V + i] - m) / s;
        }
        CHECK(op_softmax(&x) == 0, "%s", err_msg());
        e = rel_err(F(x), sm, R * V);
        CHECK(e < 1e-6, "softmax rel err %g", e);
        free(sm);
        tensor_free(&x); tensor_free(&lp); tensor_free(&ids);
    }
}

// ---- paged KV store + attention ----

typedef struct {
    int q_len, kv_len;
} seq_shape_t;

// runs kv_store + attention for B sequences over a pool with shuffled pages and compares with a
// dense double reference; returns the output (caller frees) for cross-thread comparisons
static float *run_attention(int Hq, int Hkv, int D, int S, int B, const seq_shape_t *shp, int check,
                            uint64_t seed) {
    rng_state = seed;
    int MP = 0, N = 0, total_pages = 0;
    for (int b = 0; b < B; b++) {
        int pages = (shp[b].kv_len + S - 1) / S;
        MP = pages > MP ? pages : MP;
        total_pages += pages;
        N += shp[b].q_len;
    }
    int P = total_pages + 3; // spare pages stay unused
    tensor_t kp = f32(4, P, S, Hkv, D), vp = f32(4, P, S, Hkv, D);
    int64_t pts[2] = {B, MP}, sis[2] = {B, 3};
    tensor_t pt, si;
    tensor_alloc(&pt, DTYPE_I32, DEVICE_CPU, 2, pts);
    tensor_alloc(&si, DTYPE_I32, DEVICE_CPU, 2, sis);
    // a random permutation of pages, handed out in order
    int *perm = malloc(sizeof(int) * P);
    for (int i = 0; i < P; i++) perm[i] = i;
    for (int i = P - 1; i > 0; i--) {
        int j = (int)(urand() * (i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    // dense K/V of each sequence (kv_len, Hkv, D); stored through op_kv_store in two rounds:
    // the context before the queries, then the query rows' own K/V (as a forward pass does)
    float **K = malloc(sizeof(float *) * B), **Vv = malloc(sizeof(float *) * B);
    int next = 0, q_start = 0;
    for (int b = 0; b < B; b++) {
        int pages = (shp[b].kv_len + S - 1) / S;
        for (int j = 0; j < pages; j++) IP(pt)[b * MP + j] = perm[next++];
        for (int j = pages; j < MP; j++) IP(pt)[b * MP + j] = -7; // never read
        IP(si)[b * 3] = q_start;
        IP(si)[b * 3 + 1] = shp[b].q_len;
        IP(si)[b * 3 + 2] = shp[b].kv_len;
        q_start += shp[b].q_len;
        K[b] = malloc(sizeof(float) * shp[b].kv_len * Hkv * D);
        Vv[b] = malloc(sizeof(float) * shp[b].kv_len * Hkv * D);
        fill(K[b], (int64_t)shp[b].kv_len * Hkv * D, 1.5);
        fill(Vv[b], (int64_t)shp[b].kv_len * Hkv * D, 1.0);
        int ctx = shp[b].kv_len - shp[b].q_len;
        for (int round = 0; round < 2; round++) {
            int from = round ? ctx : 0, to = round ? shp[b].kv_len : ctx;
            if (to == from) continue;
            tensor_t k = tensor_view(K[b] + (int64_t)from * Hkv * D, DTYPE_F32, DEVICE_CPU, 3,
                                     (int64_t[]){to - from, Hkv, D});
            tensor_t v = tensor_view(Vv[b] + (int64_t)from * Hkv * D, DTYPE_F32, DEVICE_CPU, 3,
                                     (int64_t[]){to - from, Hkv, D});
            tensor_t slots = i32(to - from);
            for (int t = from; t < to; t++) IP(slots)[t - from] = IP(pt)[b * MP + t / S] * S + t % S;
            if (op_kv_store(&kp, &vp, &k, &v, &slots)) fprintf(stderr, "kv_store: %s\n", err_msg());
            tensor_free(&slots);
        }
    }
    tensor_t q = f32(3, N, Hq, D, 0), out = f32(3, N, Hq, D, 0);
    fill(F(q), (int64_t)N * Hq * D, 1.5);
    CHECK(op_attention(&out, &q, &kp, &vp, &si, &pt) == 0, "attention: %s", err_msg());
    if (check) {
        double *want = malloc(sizeof(double) * N * Hq * D);
        double *sc = malloc(sizeof(double) * (MP * S + 1));
        for (int b = 0; b < B; b++) {
            int qs = IP(si)[b * 3], ql = shp[b].q_len, kl = shp[b].kv_len;
            for (int i = 0; i < ql; i++)
                for (int h = 0; h < Hq; h++) {
                    int kvh = h / (Hq / Hkv), last = kl - ql + i;
                    const float *qv = F(q) + ((int64_t)(qs + i) * Hq + h) * D;
                    double m = -1e300, s = 0;
                    for (int t = 0; t <= last; t++) {
                        double d = 0;
                        for (int c = 0; c < D; c++) d += (double)qv[c] * K[b][((int64_t)t * Hkv + kvh) * D + c];
                        sc[t] = d / sqrt((double)D);
                        m = fmax(m, sc[t]);
                    }
                    for (int t = 0; t <= last; t++) s += (sc[t] = exp(sc[t] - m));
                    double *o = want + ((int64_t)(qs + i) * Hq + h) * D;
                    for (int c = 0; c < D; c++) {
                        double acc = 0;
                        for (int t = 0; t <= last; t++) acc += sc[t] * Vv[b][((int64_t)t * Hkv + kvh) * D + c];
                        o[c] = acc / s;
                    }
                }
        }
        double e = rel_err(F(out), want, (int64_t)N * Hq * D);
        CHECK(e < 2e-6, "attention Hq=%d Hkv=%d D=%d S=%d B=%d rel err %g", Hq, Hkv, D, S, B, e);
        free(want);
        free(sc);
    }
    float *res = malloc(sizeof(float) * N * Hq * D);
    memcpy(res, out.data, sizeof(float) * N * Hq * D);
    for (int b = 0; b < B; b++) { free(K[b]); free(Vv[b]); }
    free(K); free(Vv); free(perm);
    tensor_free(&kp); tensor_free(&vp); tensor_free(&pt); tensor_free(&si);
    tensor_free(&q); tensor_free(&out);
    return res;
}

static void test_attention(void) {
    // decode (q_len 1), fresh prefill, a prefill chunk after context, a length-1 sequence
    const seq_shape_t shp[4] = {{1, 11}, {7, 7}, {3, 10}, {1, 1}};
    const int gqa[3][2] = {{2, 2}, {4, 2}, {8, 2}}; // ratios 1, 2, 4
    const int Ds[2] = {6, 40};
    const int Ss[2] = {3, 4}; // neither divides every length
    for (int g = 0; g < 3; g++)
        for (int di = 0; di < 2; di++)
            for (int si = 0; si < 2; si++)
                free(run_attention(gqa[g][0], gqa[g][1], Ds[di], Ss[si], 4, shp, 1, 1234 + g * 10 + di));
    // one KV head for all queries; a single decode row alone (T=1)
    free(run_attention(4, 1, 16, 5, 4, shp, 1, 99));
    free(run_attention(3, 3, 8, 2, 1, shp, 1, 98));

    // bad indices are errors
    tensor_t kp = f32(4, 2, 2, 1, 4), vp = f32(4, 2, 2, 1, 4), q = f32(3, 1, 1, 4, 0), o = f32(3, 1, 1, 4, 0);
    int64_t s2[2] = {1, 2}, s3[2] = {1, 3};
    tensor_t pt, si;
    tensor_alloc(&pt, DTYPE_I32, DEVICE_CPU, 2, s2);
    tensor_alloc(&si, DTYPE_I32, DEVICE_CPU, 2, s3);
    IP(si)[0] = 0; IP(si)[1] = 1; IP(si)[2] = 3;
    IP(pt)[0] = 1; IP(pt)[1] = 2; // page 2 is outside the pool of 2
    CHECK(op_attention(&o, &q, &kp, &vp, &si, &pt) != 0 && strstr(err_msg(), "page"), "%s", err_msg());
    IP(pt)[1] = 0;
    CHECK(op_attention(&o, &q, &kp, &vp, &si, &pt) == 0, "%s", err_msg());
    IP(si)[2] = 5; // kv_len beyond MP * S
    CHECK(op_attention(&o, &q, &kp, &vp, &si, &pt) != 0, "kv_len 5 > 4 must fail");
    tensor_t k = f32(3, 1, 1, 4, 0), slots = i32(1);
    IP(slots)[0] = 4;
    CHECK(op_kv_store(&kp, &vp, &k, &k, &slots) != 0 && strstr(err_msg(), "slot 4"), "%s", err_msg());
    tensor_t kbad = f32(3, 1, 2, 4, 0);
    CHECK(op_kv_store(&kp, &vp, &kbad, &kbad, &slots) != 0, "Hkv mismatch must fail");
    tensor_free(&kp); tensor_free(&vp); tensor_free(&q); tensor_free(&o); tensor_free(&pt);
    tensor_free(&si); tensor_free(&k); tensor_free(&slots); tensor_free(&kbad);
}

// ---- thread-count independence, argument errors ----

static void test_threads(void) {
    const seq_shape_t shp[3] = {{40, 40}, {1, 300}, {17, 90}};
    kernels_set_threads(1);
    CHECK(kernels_get_threads() == 1, "threads %d", kernels_get_threads());
    float *a1 = run_attention(8, 2, 64, 16, 3, shp, 0, 7);
    kernels_set_threads(2);
    float *a2 = run_attention(8, 2, 64, 16, 3, shp, 0, 7);
    CHECK(memcmp(a1, a2, sizeof(float) * 58 * 8 * 64) == 0, "attention differs between 1 and 2 threads");
    free(a1); free(a2);

    // one row (gemv) and many rows (gemm)
    for (int rows = 1; rows <= 3; rows += 2) {
        int64_t n1 = rows, k1 = 257, o1 = 3001;
        tensor_t x1 = f32(2, n1, k1, 0, 0), w1 = f32(2, o1, k1, 0, 0);
        tensor_t y1 = f32(2, n1, o1, 0, 0), y2 = f32(2, n1, o1, 0, 0);
        fill(F(x1), n1 * k1, 1); fill(F(w1), o1 * k1, 1);
        kernels_set_threads(1);
        op_matmul(&y1, &x1, &w1, 0);
        kernels_set_threads(2);
        op_matmul(&y2, &x1, &w1, 0);
        CHECK(memcmp(y1.data, y2.data, tensor_nbytes(&y1)) == 0, "matmul of %d rows differs between 1 and 2 threads", rows);
        tensor_free(&x1); tensor_free(&w1); tensor_free(&y1); tensor_free(&y2);
    }
    int64_t N = 64, K = 300, O = 200;
    tensor_t x = f32(2, N, K, 0, 0), w = f32(2, O, K, 0, 0), nw = f32(1, K, 0, 0, 0);
    tensor_t o1 = f32(2, N, O, 0, 0), o2 = f32(2, N, O, 0, 0), r1 = f32(2, N, K, 0, 0), r2 = f32(2, N, K, 0, 0);
    fill(F(x), N * K, 1); fill(F(w), O * K, 1); fill(F(nw), K, 1);
    kernels_set_threads(1);
    op_matmul(&o1, &x, &w, 0);
    op_rmsnorm(&r1, &x, &nw, 1e-6f);
    kernels_set_threads(2);
    op_matmul(&o2, &x, &w, 0);
    op_rmsnorm(&r2, &x, &nw, 1e-6f);
    CHECK(memcmp(o1.data, o2.data, tensor_nbytes(&o1)) == 0, "matmul differs between 1 and 2 threads");
    CHECK(memcmp(r1.data, r2.data, tensor_nbytes(&r1)) == 0, "rmsnorm differs between 1 and 2 threads");

    // errors: dtype on CPU, mixed devices, CUDA without CUDA
    tensor_t hb;
    tensor_alloc(&hb, DTYPE_BF16, DEVICE_CPU, 2, (int64_t[]){O, K});
    CHECK(op_matmul(&o1, &x, &hb, 0) != 0 && strstr(err_msg(), "F32"), "BF16 w on CPU: %s", err_msg());
    tensor_t fake = tensor_view(o1.data, DTYPE_F32, DEVICE_CUDA, 2, o1.shape);
    CHECK(op_matmul(&fake, &x, &w, 0) != 0 && strstr(err_msg(), "op_matmul") && strstr(err_msg(), "mixed"),
          "mixed devices: %s", err_msg());
#ifndef TRUSTEE_CUDA
    tensor_t fx = tensor_view(x.data, DTYPE_F32, DEVICE_CUDA, 2, x.shape);
    tensor_t fw = tensor_view(w.data, DTYPE_F32, DEVICE_CUDA, 2, w.shape);
    CHECK(op_matmul(&fake, &fx, &fw, 0) != 0 && strstr(err_msg(), "without CUDA"), "%s", err_msg());
    CHECK(!kernels_backend_available(DEVICE_CUDA), "CUDA available without CUDA?");
#endif
    CHECK(kernels_backend_available(DEVICE_CPU), "CPU backend");
    tensor_free(&x); tensor_free(&w); tensor_free(&nw); tensor_free(&o1); tensor_free(&o2);
    tensor_free(&r1); tensor_free(&r2); tensor_free(&hb);
}

int main(void) {
    test_conversions();
    test_matmul();
    test_rowwise();
    test_attention();
    test_threads();
    return test_exit("test_kernels");
}
