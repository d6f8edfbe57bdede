// CPU attention on OpenBLAS (kernels/cpu/attention.c, backward.c) against the scalar reference
// kernels kept beside it (cpu_op_attention_ref, cpu_op_attention_backward_ref), on odd shapes:
// T = 1, 17, 300, 1100; GQA 4:1 and 2:1; head dim 32 and 24; paged pools with scattered pages and
// chunked prefill (q_len < kv_len) next to decode rows; right-padded rows. Also: the same bits at
// 1 and 2 threads, padding does not reach real rows' gradients, and cpu_expf_neg against exp()
// in double (at most 2 ulp).
//   max relative error = max |gemm - ref| / max |ref| over a tensor
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backward.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/err.h"
#include "test.h"

#define TOL 2e-5 // F32 sums in another order over up to 1100 keys

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static float *rnd(int64_t n, double scale) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) a[i] = (float)(urand() * scale);
    return a;
}
static double rel_err(const float *a, const float *ref, int64_t n) {
    double e = 0, m = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    return e / m;
}

static double worst_fwd = 0, worst_bwd = 0;

// ---- forward: B sequences (q_len, kv_len) packed, pages of S slots in scattered order ----

typedef struct {
    int q_len, kv_len;
} seq_t;

static void fwd_case(const char *name, int B, const seq_t *sq, int Hq, int Hkv, int D, int S,
                     int scatter) {
    int64_t N = 1, MP = 1, P = 0; // one unclaimed row at the end
    for (int b = 0; b < B; b++) {
        N += sq[b].q_len;
        int np = (sq[b].kv_len + S - 1) / S;
        MP = np > MP ? np : MP;
        P += np;
    }
    float *q = rnd(N * Hq * D, 2.0), *kp = rnd(P * S * Hkv * D, 2.0), *vp = rnd(P * S * Hkv * D, 1.0);
    float *o1 = rnd(N * Hq * D, 1.0), *o2 = rnd(N * Hq * D, 1.0); // garbage: must be overwritten
    int32_t *si = malloc(B * 3 * 4), *pt = calloc(B * MP, 4);
    int32_t *perm = malloc((P > 0 ? P : 1) * 4);
    for (int64_t i = 0; i < P; i++) perm[i] = (int32_t)i;
    for (int64_t i = P - 1; scatter && i > 0; i--) { // pages in random order
        int64_t j = (int64_t)((urand() + 1) / 2 * (double)(i + 1)) % (i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int64_t row = 0, page = 0;
    for (int b = 0; b < B; b++) {
        si[b * 3] = (int32_t)row, si[b * 3 + 1] = sq[b].q_len, si[b * 3 + 2] = sq[b].kv_len;
        row += sq[b].q_len;
        for (int j = 0; j < (sq[b].kv_len + S - 1) / S; j++) pt[b * MP + j] = perm[page++];
    }
    tensor_t tq = tensor_view(q, DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){N, Hq, D});
    tensor_t to1 = tensor_view(o1, DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){N, Hq, D});
    tensor_t to2 = tensor_view(o2, DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){N, Hq, D});
    tensor_t tk = tensor_view(kp, DTYPE_F32, DEVICE_CPU, 4, (int64_t[]){P, S, Hkv, D});
    tensor_t tv = tensor_view(vp, DTYPE_F32, DEVICE_CPU, 4, (int64_t[]){P, S, Hkv, D});
    tensor_t tsi = tensor_view(si, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, 3});
    tensor_t tpt = tensor_view(pt, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, MP});
    CHECK(cpu_op_attention_ref(&to1, &tq, &tk, &tv, &tsi, &tpt) == 0, "%s: ref: %s", name, err_msg());
    CHECK(cpu_op_attention_gemm_min_q(&to2, &tq, &tk, &tv, &tsi, &tpt, 1) == 0, "%s: gemm: %s", name,
          err_msg());
    double e = rel_err(o2, o1, N * Hq * D);
    worst_fwd = fmax(worst_fwd, e);
    printf("forward  %-44s max rel err %.3g\n", name, e);
    CHECK(e < TOL, "%s: forward differs from the reference by %g", name, e);
    // the dispatching op (threshold CPU_ATTENTION_GEMM_MIN_Q) agrees too
    CHECK(cpu_op_attention(&to2, &tq, &tk, &tv, &tsi, &tpt) == 0, "%s", err_msg());
    CHECK(rel_err(o2, o1, N * Hq * D) < TOL, "%s: cpu_op_attention differs", name);
    free(q), free(kp), free(vp), free(o1), free(o2), free(si), free(pt), free(perm);
}

// ---- backward: training layout (B, T, H, D), rows right-padded to lens[b] (dout 0 past it) ----

static void bwd_run(int B, int T, int Hq, int Hkv, int D, const float *q, const float *k,
                    const float *v, const float *g, float *dq, float *dk, float *dv, int ref) {
    int64_t qs[4] = {B, T, Hq, D}, ks[4] = {B, T, Hkv, D};
    tensor_t tq = tensor_view((float *)q, DTYPE_F32, DEVICE_CPU, 4, qs);
    tensor_t tg = tensor_view((float *)g, DTYPE_F32, DEVICE_CPU, 4, qs);
    tensor_t tk = tensor_view((float *)k, DTYPE_F32, DEVICE_CPU, 4, ks);
    tensor_t tv = tensor_view((float *)v, DTYPE_F32, DEVICE_CPU, 4, ks);
    tensor_t tdq = tensor_view(dq, DTYPE_F32, DEVICE_CPU, 4, qs);
    tensor_t tdk = tensor_view(dk, DTYPE_F32, DEVICE_CPU, 4, ks), tdv = tensor_view(dv, DTYPE_F32, DEVICE_CPU, 4, ks);
    int rc = ref ? cpu_op_attention_backward_ref(&tdq, &tdk, &tdv, &tg, &tq, &tk, &tv)
                 : cpu_op_attention_backward(&tdq, &tdk, &tdv, &tg, &tq, &tk, &tv);
    CHECK(rc == 0, "attention backward: %s", err_msg());
}

static void bwd_case(int B, int T, int Hq, int Hkv, int D, const int *lens) {
    const int64_t nq = (int64_t)B * T * Hq * D, nk = (int64_t)B * T * Hkv * D;
    float *q = rnd(nq, 1.5), *k = rnd(nk, 1.5), *v = rnd(nk, 1.0), *g = rnd(nq, 1.0);
    for (int b = 0; b < B; b++) // right padding: no gradient flows in from pad positions
        for (int64_t t = lens[b]; t < T; t++) memset(g + ((int64_t)b * T + t) * Hq * D, 0, (size_t)Hq * D * 4);
    float *r[3] = {rnd(nq, 1), rnd(nk, 1), rnd(nk, 1)}, *a[3] = {rnd(nq, 1), rnd(nk, 1), rnd(nk, 1)};
    bwd_run(B, T, Hq, Hkv, D, q, k, v, g, r[0], r[1], r[2], 1);
    bwd_run(B, T, Hq, Hkv, D, q, k, v, g, a[0], a[1], a[2], 0);
    const int64_t n[3] = {nq, nk, nk};
    const char *nm[3] = {"dq", "dk", "dv"};
    char name[96];
    snprintf(name, sizeof name, "B %d T %d Hq %d Hkv %d D %d, lens %d..%d", B, T, Hq, Hkv, D, lens[0],
             lens[B - 1]);
    double e = 0;
    for (int i = 0; i < 3; i++) {
        double ei = rel_err(a[i], r[i], n[i]);
        CHECK(ei < TOL, "%s: %s differs from the reference by %g", name, nm[i], ei);
        e = fmax(e, ei);
    }
    worst_bwd = fmax(worst_bwd, e);
    printf("backward %-44s max rel err %.3g\n", name, e);

    // padding does not reach real positions: row b alone, cut to lens[b], gives the same gradients
    double ep = 0;
    for (int b = 0; b < B; b++) {
        const int L = lens[b];
        const float *src[4] = {q, k, v, g};
        const int64_t w[4] = {Hq * D, Hkv * D, Hkv * D, Hq * D};
        float *c[4], *d[3] = {rnd((int64_t)L * Hq * D, 1), rnd((int64_t)L * Hkv * D, 1), rnd((int64_t)L * Hkv * D, 1)};
        for (int i = 0; i < 4; i++) {
            c[i] = malloc((size_t)(L * w[i]) * 4);
            memcpy(c[i], src[i] + (int64_t)b * T * w[i], (size_t)(L * w[i]) * 4);
        }
        bwd_run(1, L, Hq, Hkv, D, c[0], c[1], c[2], c[3], d[0], d[1], d[2], 0);
        for (int i = 0; i < 3; i++) {
            const int64_t wi = i == 0 ? w[0] : w[1];
            ep = fmax(ep, rel_err(d[i], a[i] + (int64_t)b * T * wi, L * wi));
        }
        for (int i = 0; i < 4; i++) free(c[i]);
        for (int i = 0; i < 3; i++) free(d[i]);
    }
    CHECK(ep < TOL, "%s: padded rows' gradients differ from the rows alone by %g", name, ep);
    for (int i = 0; i < 3; i++) free(r[i]), free(a[i]);
    free(q), free(k), free(v), free(g);
}

// ---- the same bits at 1 and 2 threads ----

static void threads_case(void) {
    const int B = 3, T = 300, Hq = 4, Hkv = 2, D = 32;
    const int64_t nq = (int64_t)B * T * Hq * D, nk = (int64_t)B * T * Hkv * D;
    float *q = rnd(nq, 1.5), *k = rnd(nk, 1.5), *v = rnd(nk, 1.0), *g = rnd(nq, 1.0);
    float *a[2][3];
    for (int r = 0; r < 2; r++) {
        kernels_set_threads(r + 1);
        a[r][0] = rnd(nq, 1), a[r][1] = rnd(nk, 1), a[r][2] = rnd(nk, 1);
        bwd_run(B, T, Hq, Hkv, D, q, k, v, g, a[r][0], a[r][1], a[r][2], 0);
    }
    CHECK(!memcmp(a[0][0], a[1][0], nq * 4) && !memcmp(a[0][1], a[1][1], nk * 4) &&
              !memcmp(a[0][2], a[1][2], nk * 4),
          "attention backward differs between 1 and 2 threads");
    // forward, training layout (one page per row)
    float *o[2];
    int32_t si[9], pt[3];
    for (int b = 0; b < B; b++) si[b * 3] = b * T, si[b * 3 + 1] = T, si[b * 3 + 2] = T, pt[b] = b;
    tensor_t tq = tensor_view(q, DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B * T, Hq, D});
    tensor_t tk = tensor_view(k, DTYPE_F32, DEVICE_CPU, 4, (int64_t[]){B, T, Hkv, D});
    tensor_t tv = tensor_view(v, DTYPE_F32, DEVICE_CPU, 4, (int64_t[]){B, T, Hkv, D});
    tensor_t tsi = tensor_view(si, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, 3});
    tensor_t tpt = tensor_view(pt, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, 1});
    for (int r = 0; r < 2; r++) {
        kernels_set_threads(r + 1);
        o[r] = rnd(nq, 1);
        tensor_t to = tensor_view(o[r], DTYPE_F32, DEVICE_CPU, 3, (int64_t[]){B * T, Hq, D});
        CHECK(cpu_op_attention(&to, &tq, &tk, &tv, &tsi, &tpt) == 0, "%s", err_msg());
    }
    CHECK(!memcmp(o[0], o[1], nq * 4), "attention forward differs between 1 and 2 threads");
    printf("1 vs 2 threads: forward and backward bitwise equal (B %d T %d)\n", B, T);
    for (int r = 0; r < 2; r++) free(a[r][0]), free(a[r][1]), free(a[r][2]), free(o[r]);
    free(q), free(k), free(v), free(g);
}

// ---- cpu_expf_neg: ulps from exp() in double over [-87, 0] (and -inf, -1000 -> tiny) ----

static void expf_case(void) {
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = (float)(-87.0 * i / 2000000.0);
        float y = cpu_expf_neg(x);
        double ref = exp((double)x);
        double ulp = ldexp(1.0, ilogb(ref) - 23); // one float ulp at ref
        worst = fmax(worst, fabs((double)y - ref) / ulp);
    }
    printf("cpu_expf_neg over [-87, 0]: max error %.2f ulp\n", worst);
    CHECK(worst <= 2.0, "cpu_expf_neg is off by %.2f ulp", worst);
    CHECK(cpu_expf_neg(-INFINITY) < 1e-37f && cpu_expf_neg(-1000.0f) < 1e-37f && cpu_expf_neg(0.0f) == 1.0f,
          "cpu_expf_neg edge values");
}

int main(void) {
    kernels_set_threads(2);
    expf_case();
    // forward: training layout (one page per row), T = 1, 17, 300, 1100
    const int Ts[4] = {1, 17, 300, 1100};
    for (int i = 0; i < 4; i++) {
        seq_t sq[2] = {{Ts[i], Ts[i]}, {Ts[i], Ts[i]}};
        char name[64];
        snprintf(name, sizeof name, "training T %d, GQA 2:1", Ts[i]);
        fwd_case(name, 2, sq, 4, 2, 32, Ts[i], 0);
    }
    // paged: scattered pages of 16, chunked prefill, decode rows, GQA 4:1 and 2:1, D 24
    const seq_t mix[5] = {{300, 300}, {1, 57}, {40, 333}, {17, 17}, {129, 1100}};
    fwd_case("paged S 16, scattered, GQA 4:1 D 32", 5, mix, 8, 2, 32, 16, 1);
    fwd_case("paged S 16, scattered, GQA 2:1 D 24", 5, mix, 4, 2, 24, 16, 1);
    fwd_case("paged S 64, in order, GQA 4:1 D 32", 5, mix, 4, 1, 32, 64, 0);
    // backward: T = 1, 17, 300, 1100; GQA 4:1 and 2:1; right padding
    const int l1[1] = {1}, l17[2] = {17, 9}, l300[3] = {300, 1, 257}, l1100[2] = {1100, 700};
    bwd_case(1, 1, 4, 1, 32, l1);
    bwd_case(2, 17, 4, 2, 32, l17);
    bwd_case(2, 17, 8, 2, 24, l17);
    bwd_case(3, 300, 8, 2, 32, l300);
    bwd_case(3, 300, 4, 2, 24, l300);
    bwd_case(2, 1100, 4, 2, 32, l1100);
    threads_case();
    printf("worst max rel err: forward %.3g, backward %.3g (tolerance %g)\n", worst_fwd, worst_bwd, TOL);
    return test_exit("test_attention_gemm");
}
