// Times the CPU attention ops on the training layout, for bench/attention.sh.
// usage: bench_attention B T HQ HKV D THREADS [REPEATS]
// Random q, k, v (B, T, H, D) after RoPE; op_attention runs as the training forward calls it (one
// page per row: q_len = kv_len = T), op_attention_backward on the same tensors. Prints the best
// time of REPEATS calls (default 3) of each:
//   attention_forward_ms <ms> attention_backward_ms <ms>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/err.h"
#include "kernels/kernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static void fill(float *a, int64_t n, float scale) { // uniform in [-scale, scale)
    for (int64_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        a[i] = scale * (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_attention B T HQ HKV D THREADS [REPEATS]\n");
        return 2;
    }
    const int64_t B = atoi(argv[1]), T = atoi(argv[2]), Hq = atoi(argv[3]), Hkv = atoi(argv[4]);
    const int64_t D = atoi(argv[5]);
    const int threads = atoi(argv[6]), repeats = argc > 7 ? atoi(argv[7]) : 3;
    if (B < 1 || T < 1 || Hq < 1 || Hkv < 1 || Hq % Hkv || D < 1 || repeats < 1) {
        fprintf(stderr, "bench_attention: bad shape\n");
        return 2;
    }
    kernels_set_threads(threads);
    const int64_t nq = B * T * Hq * D, nk = B * T * Hkv * D;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4);
    float *g = malloc(nq * 4), *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    int32_t *si = malloc(B * 3 * 4), *pt = malloc(B * 4);
    if (!q || !k || !v || !o || !g || !dq || !dk || !dv || !si || !pt) {
        fprintf(stderr, "bench_attention: out of memory\n");
        return 1;
    }
    fill(q, nq, 2.0f), fill(k, nk, 2.0f), fill(v, nk, 1.0f), fill(g, nq, 1.0f);
    for (int64_t b = 0; b < B; b++) {
        si[b * 3] = (int32_t)(b * T), si[b * 3 + 1] = (int32_t)T, si[b * 3 + 2] = (int32_t)T;
        pt[b] = (int32_t)b;
    }
    const int64_t q3[3] = {B * T, Hq, D}, q4[4] = {B, T, Hq, D}, k4[4] = {B, T, Hkv, D};
    tensor_t tq3 = tensor_view(q, DTYPE_F32, DEVICE_CPU, 3, q3), to3 = tensor_view(o, DTYPE_F32, DEVICE_CPU, 3, q3);
    tensor_t tq = tensor_view(q, DTYPE_F32, DEVICE_CPU, 4, q4), tg = tensor_view(g, DTYPE_F32, DEVICE_CPU, 4, q4);
    tensor_t tk = tensor_view(k, DTYPE_F32, DEVICE_CPU, 4, k4), tv = tensor_view(v, DTYPE_F32, DEVICE_CPU, 4, k4);
    tensor_t tdq = tensor_view(dq, DTYPE_F32, DEVICE_CPU, 4, q4);
    tensor_t tdk = tensor_view(dk, DTYPE_F32, DEVICE_CPU, 4, k4), tdv = tensor_view(dv, DTYPE_F32, DEVICE_CPU, 4, k4);
    tensor_t tsi = tensor_view(si, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, 3});
    tensor_t tpt = tensor_view(pt, DTYPE_I32, DEVICE_CPU, 2, (int64_t[]){B, 1});

    double fwd = 1e30, bwd = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        if (op_attention(&to3, &tq3, &tk, &tv, &tsi, &tpt)) goto fail;
        double t1 = now();
        if (op_attention_backward(&tdq, &tdk, &tdv, &tg, &tq, &tk, &tv)) goto fail;
        double t2 = now();
        fwd = fmin(fwd, t1 - t0);
        bwd = fmin(bwd, t2 - t1);
    }
    double cs = 0; // a checksum, so a broken build shows
    for (int64_t i = 0; i < nq; i++) cs += fabs(o[i]) + fabs(dq[i]);
    printf("attention_forward_ms %.2f attention_backward_ms %.2f checksum %.6g\n", 1e3 * fwd, 1e3 * bwd, cs);
    return 0;
fail:
    fprintf(stderr, "bench_attention: %s\n", err_msg());
    return 1;
}
