// Backward ops (kernels.h "ops (backward)") against central finite differences of forward
// functions written here in double precision (independent of kernels/), on odd shapes: N = 1,
// odd sizes, T = 1, GQA 4:1 and 2:1, head dim != hidden / heads.
//
// For an op y = f(inputs) and a random cotangent G, the loss is L = sum(G * y); the backward op
// given dout = G must return dL/d(input), which the test compares with (L(p + h) - L(p - h)) / 2h
// for every entry of every input, in double.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void) { // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static void fill(float *a, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) a[i] = (float)(urand() * scale);
}

// loss over all inputs packed in p (double); ctx carries shapes
typedef double (*loss_fn)(const double *p, const void *ctx);

// compares got (n floats, the gradient of entries p[off .. off+n)) with central differences
static double fd_check(const char *what, loss_fn f, const void *ctx, double *p, int64_t off, int64_t n,
                       const float *got) {
    const double h = 1e-6;
    double max_ref = 0.0, max_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double save = p[off + i];
        p[off + i] = save + h;
        double lp = f(p, ctx);
        p[off + i] = save - h;
        double lm = f(p, ctx);
        p[off + i] = save;
        double fd = (lp - lm) / (2 * h);
        max_ref = fmax(max_ref, fabs(fd));
        max_err = fmax(max_err, fabs(fd - got[i]));
    }
    double rel = max_err / (max_ref + 1e-12);
    CHECK(rel < 1e-4, "%s: max |backward - finite difference| / max |fd| = %.3e (max |fd| %.3e)", what, rel, max_ref);
    printf("  %-44s rel err %.2e\n", what, rel);
    return rel;
}

static tensor_t t2(float *d, int64_t a, int64_t b) { return tensor_view(d, DTYPE_F32, DEVICE_CPU, 2, (int64_t[]){a, b}); }
static tensor_t t1(float *d, int64_t a) { return tensor_view(d, DTYPE_F32, DEVICE_CPU, 1, (int64_t[]){a}); }

// ---------------------------------------------------------------------------------------------
// matmul: y (N, O) = x (N, K) w (O, K)^T ; p = [x, w, G]

typedef struct { int64_t N, K, O; } mm_ctx;
static double mm_loss(const double *p, const void *c) {
    const mm_ctx *m = c;
    const double *x = p, *w = p + m->N * m->K, *G = w + m->O * m->K;
    double L = 0;
    for (int64_t n = 0; n < m->N; n++)
        for (int64_t o = 0; o < m->O; o++) {
            double y = 0;
            for (int64_t k = 0; k < m->K; k++) y += x[n * m->K + k] * w[o * m->K + k];
            L += G[n * m->O + o] * y;
        }
    return L;
}

static void test_matmul(int64_t N, int64_t K, int64_t O) {
    mm_ctx c = {N, K, O};
    int64_t nx = N * K, nw = O * K, ng = N * O;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *G = malloc(ng * 4), *dx = malloc(nx * 4), *dw = calloc(nw, 4);
    fill(x, nx, 1), fill(w, nw, 1), fill(G, ng, 1);
    for (int64_t i = 0; i < nx; i++) dx[i] = 123.0f; // overwritten (accumulate = 0)
    tensor_t tx = t2(x, N, K), tw = t2(w, O, K), tg = t2(G, N, O), tdx = t2(dx, N, K), tdw = t2(dw, O, K);
    CHECK(op_matmul_backward(&tdx, &tdw, &tg, &tx, &tw, 0) == 0, "matmul backward");
    double *p = malloc((nx + nw + ng) * 8);
    for (int64_t i = 0; i < nx; i++) p[i] = x[i];
    for (int64_t i = 0; i < nw; i++) p[nx + i] = w[i];
    for (int64_t i = 0; i < ng; i++) p[nx + nw + i] = G[i];
    char name[96];
    snprintf(name, sizeof name, "matmul dx (N %lld, K %lld, O %lld)", (long long)N, (long long)K, (long long)O);
    fd_check(name, mm_loss, &c, p, 0, nx, dx);
    snprintf(name, sizeof name, "matmul dw (N %lld, K %lld, O %lld)", (long long)N, (long long)K, (long long)O);
    fd_check(name, mm_loss, &c, p, nx, nw, dw);
    // accumulate: dw adds, dx adds when asked
    float *dx2 = malloc(nx * 4);
    memcpy(dx2, dx, nx * 4);
    tensor_t tdx2 = t2(dx2, N, K);
    CHECK(op_matmul_backward(&tdx2, &tdw, &tg, &tx, &tw, 1) == 0, "matmul backward accumulate");
    double err = 0;
    for (int64_t i = 0; i < nx; i++) err = fmax(err, fabs(dx2[i] - 2 * dx[i]));
    CHECK(err < 1e-5, "accumulate = 1 adds into dx (err %g)", err);
    free(x), free(w), free(G), free(dx), free(dw), free(dx2), free(p);
}

// ---------------------------------------------------------------------------------------------
// rmsnorm: y (R, C) = x r w ; p = [x, w, G]

typedef struct { int64_t R, C; double eps; } rn_ctx;
static double rn_loss(const double *p, const void *c) {
    const rn_ctx *m = c;
    const double *x = p, *w = p + m->R * m->C, *G = w + m->C;
    double L = 0;
    for (int64_t r = 0; r < m->R; r++) {
        double ss = 0;
        for (int64_t j = 0; j < m->C; j++) ss += x[r * m->C + j] * x[r * m->C + j];
        double inv = 1.0 / sqrt(ss / m->C + m->eps);
        for (int64_t j = 0; j < m->C; j++) L += G[r * m->C + j] * x[r * m->C + j] * inv * w[j];
    }
    return L;
}

static void test_rmsnorm(int64_t R, int64_t C, const char *label) {
    rn_ctx c = {R, C, 1e-6};
    int64_t nx = R * C;
    float *x = malloc(nx * 4), *w = malloc(C * 4), *G = malloc(nx * 4), *dx = malloc(nx * 4), *dw = calloc(C, 4);
    fill(x, nx, 2), fill(w, C, 1), fill(G, nx, 1);
    tensor_t tx = t2(x, R, C), tw = t1(w, C), tg = t2(G, R, C), tdx = t2(dx, R, C), tdw = t1(dw, C);
    CHECK(op_rmsnorm_backward(&tdx, &tdw, &tg, &tx, &tw, 1e-6f, 0) == 0, "rmsnorm backward");
    double *p = malloc((2 * nx + C) * 8);
    for (int64_t i = 0; i < nx; i++) p[i] = x[i], p[nx + C + i] = G[i];
    for (int64_t i = 0; i < C; i++) p[nx + i] = w[i];
    char name[96];
    snprintf(name, sizeof name, "%s dx (%lld x %lld)", label, (long long)R, (long long)C);
    fd_check(name, rn_loss, &c, p, 0, nx, dx);
    snprintf(name, sizeof name, "%s dw (%lld x %lld)", label, (long long)R, (long long)C);
    fd_check(name, rn_loss, &c, p, nx, C, dw);
    // dx may alias dout
    float *g2 = malloc(nx * 4);
    memcpy(g2, G, nx * 4);
    tensor_t tg2 = t2(g2, R, C);
    float *dw2 = calloc(C, 4);
    tensor_t tdw2 = t1(dw2, C);
    CHECK(op_rmsnorm_backward(&tg2, &tdw2, &tg2, &tx, &tw, 1e-6f, 0) == 0, "in place");
    CHECK(memcmp(g2, dx, nx * 4) == 0 && memcmp(dw2, dw, C * 4) == 0, "rmsnorm backward in place differs");
    free(x), free(w), free(G), free(dx), free(dw), free(p), free(g2), free(dw2);
}

// ---------------------------------------------------------------------------------------------
// rope: y (N, H, D) = rotate(x) ; p = [x, G]

typedef struct { int64_t N, H, D; const int32_t *pos; double theta; } rope_ctx;
static double rope_loss(const double *p, const void *c) {
    const rope_ctx *m = c;
    const int64_t n_x = m->N * m->H * m->D, half = m->D / 2;
    const double *x = p, *G = p + n_x;
    double L = 0;
    for (int64_t n = 0; n < m->N; n++)
        for (int64_t h = 0; h < m->H; h++)
            for (int64_t i = 0; i < half; i++) {
                double a = m->pos[n] * pow(m->theta, -2.0 * i / m->D);
                int64_t o = (n * m->H + h) * m->D;
                double x0 = x[o + i], x1 = x[o + i + half];
                L += G[o + i] * (x0 * cos(a) - x1 * sin(a)) + G[o + i + half] * (x1 * cos(a) + x0 * sin(a));
            }
    return L;
}

static void test_rope(void) {
    const int64_t N = 3, H = 2, D = 6, n = N * H * D;
    int32_t pos[3] = {0, 5, 17};
    rope_ctx c = {N, H, D, pos, 10000.0};
    float *x = malloc(n * 4), *G = malloc(n * 4), *dx = malloc(n * 4);
    fill(x, n, 1), fill(G, n, 1);
    memcpy(dx, G, n * 4);
    tensor_t tdx = tensor_view(dx, DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){N, H, D});
    tensor_t tp = tensor_view(pos, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){N});
    CHECK(op_rope_backward(&tdx, &tp, 10000.0) == 0, "rope backward");
    double *p = malloc(2 * n * 8);
    for (int64_t i = 0; i < n; i++) p[i] = x[i], p[n + i] = G[i];
    fd_check("rope dx (N 3, H 2, D 6, pos 0/5/17)", rope_loss, &c, p, 0, n, dx);
    free(x), free(G), free(dx), free(p);
}

// ---------------------------------------------------------------------------------------------
// swiglu: y = silu(a) u ; p = [a, u, G]

static double sw_loss(const double *p, const void *c) {
    const int64_t n = *(const int64_t *)c;
    double L = 0;
    for (int64_t i = 0; i < n; i++) L += p[2 * n + i] * p[i] / (1 + exp(-p[i])) * p[n + i];
    return L;
}

static void test_swiglu(void) {
    int64_t n = 11;
    float *a = malloc(n * 4), *u = malloc(n * 4), *G = malloc(n * 4), *da = malloc(n * 4), *du = malloc(n * 4);
    fill(a, n, 4), fill(u, n, 1), fill(G, n, 1);
    tensor_t ta = t1(a, n), tu = t1(u, n), tg = t1(G, n), tda = t1(da, n), tdu = t1(du, n);
    CHECK(op_swiglu_backward(&tda, &tdu, &tg, &ta, &tu) == 0, "swiglu backward");
    double *p = malloc(3 * n * 8);
    for (int64_t i = 0; i < n; i++) p[i] = a[i], p[n + i] = u[i], p[2 * n + i] = G[i];
    fd_check("swiglu dgate (n 11)", sw_loss, &n, p, 0, n, da);
    fd_check("swiglu dup (n 11)", sw_loss, &n, p, n, n, du);
    free(a), free(u), free(G), free(da), free(du), free(p);
}

// ---------------------------------------------------------------------------------------------
// embedding: y (N, C) = table[ids] ; p = [table, G]

typedef struct { int64_t V, C, N; const int32_t *ids; } emb_ctx;
static double emb_loss(const double *p, const void *c) {
    const emb_ctx *m = c;
    const double *tab = p, *G = p + m->V * m->C;
    double L = 0;
    for (int64_t n = 0; n < m->N; n++)
        for (int64_t j = 0; j < m->C; j++) L += G[n * m->C + j] * tab[m->ids[n] * m->C + j];
    return L;
}

static void test_embedding(void) {
    const int64_t V = 5, C = 3, N = 4;
    int32_t ids[4] = {3, 0, 3, 4}; // a repeated id adds up
    emb_ctx c = {V, C, N, ids};
    float *tab = malloc(V * C * 4), *G = malloc(N * C * 4), *dt = calloc(V * C, 4);
    fill(tab, V * C, 1), fill(G, N * C, 1);
    tensor_t tdt = t2(dt, V, C), tg = t2(G, N, C), ti = tensor_view(ids, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){N});
    CHECK(op_embedding_backward(&tdt, &tg, &ti) == 0, "embedding backward");
    double *p = malloc((V * C + N * C) * 8);
    for (int64_t i = 0; i < V * C; i++) p[i] = tab[i];
    for (int64_t i = 0; i < N * C; i++) p[V * C + i] = G[i];
    fd_check("embedding dtable (V 5, C 3, ids 3,0,3,4)", emb_loss, &c, p, 0, V * C, dt);
    int32_t bad[4] = {3, 0, 5, 4};
    tensor_t tb = tensor_view(bad, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){N});
    CHECK(op_embedding_backward(&tdt, &tg, &tb) == -1, "an id outside the table is an error");
    free(tab), free(G), free(dt), free(p);
}

// ---------------------------------------------------------------------------------------------
// log-softmax gather: lp (N) = log_softmax(z / t)[id] ; L = sum(G * lp) ; p = [z, G]

typedef struct { int64_t N, V; const int32_t *ids; double t; } ls_ctx;
static double ls_loss(const double *p, const void *c) {
    const ls_ctx *m = c;
    double L = 0;
    for (int64_t n = 0; n < m->N; n++) {
        const double *z = p + n * m->V;
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < m->V; i++) mx = fmax(mx, z[i] / m->t);
        for (int64_t i = 0; i < m->V; i++) s += exp(z[i] / m->t - mx);
        L += p[m->N * m->V + n] * (z[m->ids[n]] / m->t - mx - log(s));
    }
    return L;
}

static void test_logsoftmax(double temp) {
    const int64_t N = 3, V = 11;
    int32_t ids[3] = {0, 10, 4};
    ls_ctx c = {N, V, ids, temp};
    float *z = malloc(N * V * 4), *G = malloc(N * 4), *dz = malloc(N * V * 4), *ent = malloc(N * 4);
    fill(z, N * V, 3), fill(G, N, 1);
    tensor_t tz = t2(z, N, V), tg = t1(G, N), tdz = t2(dz, N, V), te = t1(ent, N);
    tensor_t ti = tensor_view(ids, DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){N});
    CHECK(op_logsoftmax_gather_backward(&tdz, &tz, &ti, &tg, (float)temp) == 0, "logsoftmax backward");
    double *p = malloc((N * V + N) * 8);
    for (int64_t i = 0; i < N * V; i++) p[i] = z[i];
    for (int64_t i = 0; i < N; i++) p[N * V + i] = G[i];
    char name[96];
    snprintf(name, sizeof name, "logsoftmax gather dlogits (N 3, V 11, t %.2f)", temp);
    fd_check(name, ls_loss, &c, p, 0, N * V, dz);
    // in place gives the same
    float *z2 = malloc(N * V * 4);
    memcpy(z2, z, N * V * 4);
    tensor_t tz2 = t2(z2, N, V);
    CHECK(op_logsoftmax_gather_backward(&tz2, &tz2, &ti, &tg, (float)temp) == 0 &&
          memcmp(z2, dz, N * V * 4) == 0, "logsoftmax backward in place differs");
    // entropy against a double computation
    CHECK(op_softmax_entropy(&te, &tz, (float)temp) == 0, "entropy");
    for (int64_t n = 0; n < N; n++) {
        double mx = -INFINITY, s = 0, H = 0;
        for (int64_t i = 0; i < V; i++) mx = fmax(mx, z[n * V + i] / temp);
        for (int64_t i = 0; i < V; i++) s += exp(z[n * V + i] / temp - mx);
        for (int64_t i = 0; i < V; i++) {
            double q = exp(z[n * V + i] / temp - mx) / s;
            H -= q * log(q);
        }
        CHECK(fabs(H - ent[n]) < 1e-5, "entropy row %lld: %g vs %g", (long long)n, ent[n], H);
    }
    free(z), free(G), free(dz), free(ent), free(p), free(z2);
}

// ---------------------------------------------------------------------------------------------
// attention: causal GQA, (B, T, H, D) ; p = [q, k, v, G]

typedef struct { int64_t B, T, Hq, Hkv, D; } at_ctx;
static double at_loss(const double *p, const void *c) {
    const at_ctx *m = c;
    const int64_t nq = m->B * m->T * m->Hq * m->D, nk = m->B * m->T * m->Hkv * m->D;
    const double *q = p, *k = p + nq, *v = k + nk, *G = v + nk;
    const double scale = 1.0 / sqrt((double)m->D);
    double L = 0, s[64];
    for (int64_t b = 0; b < m->B; b++)
        for (int64_t h = 0; h < m->Hq; h++) {
            int64_t kh = h / (m->Hq / m->Hkv);
            for (int64_t i = 0; i < m->T; i++) {
                const double *qi = q + ((b * m->T + i) * m->Hq + h) * m->D;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; j++) {
                    const double *kj = k + ((b * m->T + j) * m->Hkv + kh) * m->D;
                    s[j] = 0;
                    for (int64_t d = 0; d < m->D; d++) s[j] += qi[d] * kj[d];
                    s[j] *= scale;
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
                const double *gi = G + ((b * m->T + i) * m->Hq + h) * m->D;
                for (int64_t j = 0; j <= i; j++) {
                    const double *vj = v + ((b * m->T + j) * m->Hkv + kh) * m->D;
                    for (int64_t d = 0; d < m->D; d++) L += gi[d] * s[j] / sum * vj[d];
                }
            }
        }
    return L;
}

static void test_attention(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
    at_ctx c = {B, T, Hq, Hkv, D};
    const int64_t nq = B * T * Hq * D, nk = B * T * Hkv * D;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *G = malloc(nq * 4);
    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    fill(q, nq, 1.5), fill(k, nk, 1.5), fill(v, nk, 1), fill(G, nq, 1);
    int64_t qs[4] = {B, T, Hq, D}, ks[4] = {B, T, Hkv, D};
    tensor_t tq = tensor_view(q, DTYPE_F32, DEVICE_CPU, 4, qs), tg = tensor_view(G, DTYPE_F32, DEVICE_CPU, 4, qs);
    tensor_t tk = tensor_view(k, DTYPE_F32, DEVICE_CPU, 4, ks), tv = tensor_view(v, DTYPE_F32, DEVICE_CPU, 4, ks);
    tensor_t tdq = tensor_view(dq, DTYPE_F32, DEVICE_CPU, 4, qs);
    tensor_t tdk = tensor_view(dk, DTYPE_F32, DEVICE_CPU, 4, ks), tdv = tensor_view(dv, DTYPE_F32, DEVICE_CPU, 4, ks);
    CHECK(op_attention_backward(&tdq, &tdk, &tdv, &tg, &tq, &tk, &tv) == 0, "attention backward");
    double *p = malloc((2 * nq + 2 * nk) * 8);
    for (int64_t i = 0; i < nq; i++) p[i] = q[i], p[nq + 2 * nk + i] = G[i];
    for (int64_t i = 0; i < nk; i++) p[nq + i] = k[i], p[nq + nk + i] = v[i];
    char name[96];
    snprintf(name, sizeof name, "attention dq (B %lld T %lld Hq %lld Hkv %lld D %lld)", (long long)B,
             (long long)T, (long long)Hq, (long long)Hkv, (long long)D);
    fd_check(name, at_loss, &c, p, 0, nq, dq);
    name[11] = 'k';
    fd_check(name, at_loss, &c, p, nq, nk, dk);
    name[11] = 'v';
    fd_check(name, at_loss, &c, p, nq + nk, nk, dv);
    free(q), free(k), free(v), free(G), free(dq), free(dk), free(dv), free(p);
}

int main(void) {
    kernels_set_threads(2);
    test_matmul(3, 5, 7);
    test_matmul(1, 9, 4);   // one row
    test_matmul(300, 3, 5); // more rows than one tile
    test_rmsnorm(3, 7, "rmsnorm");
    test_rmsnorm(3 * 4, 6, "QK-norm (N*H rows over D)");
    test_rmsnorm(2, 70, "rmsnorm (C > one 64-column block)");
    test_rope();
    test_swiglu();
    test_embedding();
    test_logsoftmax(1.0);
    test_logsoftmax(0.7);
    test_attention(2, 5, 4, 1, 6);  // GQA 4:1, D = 6 (not C / heads)
    test_attention(1, 7, 4, 2, 10); // GQA 2:1
    test_attention(3, 1, 2, 2, 4);  // T = 1, MHA
    // a CUDA tensor mixed with CPU tensors is refused ("mixed devices")
    float d[4] = {0};
    tensor_t cu = tensor_view(d, DTYPE_F32, DEVICE_CUDA, 2, (int64_t[]){2, 2});
    tensor_t cpu = t2(d, 2, 2);
    CHECK(op_matmul_backward(&cu, NULL, &cpu, &cpu, &cpu, 0) == -1, "CUDA tensors are refused");
    return test_exit("test_grad_ops");
}
