// cuda_harness: what the CUDA op harnesses (test_cuda_ops.c, test_cuda_backward.c) share: the
// device under test, seeded random inputs, a tensor pair (the same host values as a CPU F32
// reference tensor and as a device tensor in a given dtype) and the normalized-error comparison
//   err = max |dev - ref| / max |ref|   (NaN where only one side has NaN: +inf)
// Header-only (static functions): each harness is one program. Include after tests/test.h.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "kernels/kernels.h"
#include "tests/test.h"

static device_t dut = DEVICE_CUDA; // the device under test
static int self_check = 0;         // 1: dut is the CPU (checks the harness)

// ---- inputs ----

// rng_state, rng_u32, rng_uniform (harnesses may set their own seed)
#include "tests/test_rng.h"

// n random floats in [lo, hi); rounded to BF16 values when dt is BF16, so that the CPU side (F32)
// and the device side (dt) hold exactly the same numbers
static float *rand_vals(int64_t n, float lo, float hi, dtype_t dt) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        x[i] = rng_uniform(lo, hi);
        if (dt == DTYPE_BF16) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
    }
    return x;
}

// the same host data as a CPU F32 tensor (ref) and as a dut tensor stored as dt (dev)
typedef struct {
    tensor_t ref, dev;
} pair_t;

static int pair_init(pair_t *p, dtype_t dt, int ndim, const int64_t *shape, const void *host,
                     dtype_t host_dt) {
    memset(p, 0, sizeof *p);
    tensor_t h = tensor_view((void *)host, host_dt, DEVICE_CPU, ndim, shape);
    dtype_t rdt = host_dt == DTYPE_I32 ? DTYPE_I32 : DTYPE_F32;
    if (tensor_alloc(&p->ref, rdt, DEVICE_CPU, ndim, shape) || tensor_copy(&p->ref, &h)) return -1;
    if (tensor_alloc(&p->dev, dt, dut, ndim, shape) || tensor_copy(&p->dev, &h)) return -1;
    return 0;
}

static void pair_free(pair_t *p) {
    tensor_free(&p->ref);
    tensor_free(&p->dev);
}

// a pair from random floats in [lo, hi)
static int pair_rand(pair_t *p, dtype_t dt, int ndim, const int64_t *shape, float lo, float hi) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *x = rand_vals(n, lo, hi, dt);
    int rc = pair_init(p, dt, ndim, shape, x, DTYPE_F32);
    free(x);
    return rc;
}

static int pair_i32(pair_t *p, int ndim, const int64_t *shape, const int32_t *vals) {
    return pair_init(p, DTYPE_I32, ndim, shape, vals, DTYPE_I32);
}

// a setup step that must work: on failure print the error and fail the current case
#define OK(call) REQUIRE((call) == 0, "%s: %s", #call, err_msg())

// the normalized error of the dut result against the reference (NaN mismatches -> +inf)
static int norm_err(const tensor_t *dev, const tensor_t *ref, double *err) {
    tensor_t got;
    OK(tensor_alloc(&got, DTYPE_F32, DEVICE_CPU, dev->ndim, dev->shape));
    OK(tensor_copy(&got, dev));
    const float *a = got.data, *b = ref->data;
    int64_t n = tensor_numel(ref), nan_mismatch = 0;
    double maxdiff = 0.0, maxref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            nan_mismatch += isnan(a[i]) != isnan(b[i]);
            continue;
        }
        double d = fabs((double)a[i] - b[i]);
        if (d > maxdiff) maxdiff = d;
        if (fabs(b[i]) > maxref) maxref = fabs(b[i]);
    }
    *err = nan_mismatch ? INFINITY : maxref > 0 ? maxdiff / maxref : maxdiff;
    tensor_free(&got);
    return 0;
}

// compares the dut result with the reference; prints one line per case
static int compare(const char *what, const tensor_t *dev, const tensor_t *ref, double tol) {
    double e;
    if (norm_err(dev, ref, &e)) return 1;
    printf("  %-66s err %.2e (tol %.0e)\n", what, e, tol);
    CHECK(e <= tol, "%s: normalized error %g > %g", what, e, tol);
    return 0;
}

// the dtypes the device side stores float tensors in (the CPU backend is F32 only)
static int n_dtypes(void) { return self_check ? 1 : 2; }
static const dtype_t dtypes[] = {DTYPE_F32, DTYPE_BF16};

// rope (backward = 0) or its backward (= 1) on N rows of every length in Ns, H = 2 / 8 heads, head
// dims 64 / 128, positions up to 40000 (the first at 0); one compare per case
static int harness_rope_cases(int backward, const int64_t *Ns, int nN) {
    const int64_t Hs[] = {2, 8}, Ds[] = {64, 128};
    for (int a = 0; a < nN; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++)
                for (int t = 0; t < n_dtypes(); t++) {
                    int64_t N = Ns[a], shape[3] = {N, Hs[b], Ds[c]};
                    int32_t *pos = malloc((size_t)N * sizeof *pos);
                    for (int64_t n = 0; n < N; n++)
                        pos[n] = n == 0 ? 0 : (int32_t)(rng_u32() % 40000);
                    pair_t x, p;
                    OK(pair_rand(&x, dtypes[t], 3, shape, -2, 2));
                    OK(pair_i32(&p, 1, &N, pos));
                    if (backward) {
                        OK(op_rope_backward(&x.ref, &p.ref, 1000000.0));
                        OK(op_rope_backward(&x.dev, &p.dev, 1000000.0));
                    } else {
                        OK(op_rope(&x.ref, &p.ref, 1000000.0));
                        OK(op_rope(&x.dev, &p.dev, 1000000.0));
                    }
                    char what[128];
                    snprintf(what, sizeof what, "%s N=%lld H=%lld D=%lld %s",
                             backward ? "rope_bwd" : "rope", (long long)N, (long long)Hs[b],
                             (long long)Ds[c], dtype_name(dtypes[t]));
                    if (compare(what, &x.dev, &x.ref, dtypes[t] == DTYPE_BF16 ? 1e-2 : 1e-5))
                        return 1;
                    pair_free(&x);
                    pair_free(&p);
                    free(pos);
                }
    return 0;
}
