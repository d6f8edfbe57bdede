// Element-wise and gather ops on the CPU: add, swiglu, rope, embedding.
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "../err.h"
#include "cpu_ops.h"

#define PAR_MIN_WORK (1 << 15)

// out = a + b (out may alias a or b)
int cpu_op_add(tensor_t *out, const tensor_t *a, const tensor_t *b) {
    if (cpu_require_f32("op_add", "out", out) || cpu_require_f32("op_add", "a", a) ||
        cpu_require_f32("op_add", "b", b))
        return -1;
    int64_t n = tensor_numel(out);
    const float *as = a->data, *bs = b->data;
    float *os = out->data;
#pragma omp parallel for if (n >= PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) os[i] = as[i] + bs[i];
    return 0;
}

// out = silu(gate) * up = gate / (1 + e^-gate) * up (out may alias gate or up)
int cpu_op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up) {
    if (cpu_require_f32("op_swiglu", "out", out) || cpu_require_f32("op_swiglu", "gate", gate) ||
        cpu_require_f32("op_swiglu", "up", up))
        return -1;
    int64_t n = tensor_numel(out);
    const float *g = gate->data, *u = up->data;
    float *os = out->data;
#pragma omp parallel for if (n >= PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) os[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    return 0;
}

// x (N, H, D) rotated in place, HF rotate-half: the pair (x[i], x[i + D/2]) of every head turns
// by the angle pos[n] * theta^(-2i/D) (angles in double, so long positions keep their precision)
int cpu_op_rope(tensor_t *x, const tensor_t *pos, double theta) {
    if (cpu_require_f32("op_rope", "x", x)) return -1;
    int64_t N = x->shape[0], H = x->shape[1], D = x->shape[2], half = D / 2;
    float *xs = x->data;
    const int32_t *ps = pos->data;
    double inv_freq[half > 0 ? half : 1]; // (D/2)
    for (int64_t i = 0; i < half; i++) inv_freq[i] = pow(theta, -2.0 * (double)i / (double)D);
#pragma omp parallel for if (N * H * D >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        float cs[half > 0 ? half : 1], sn[half > 0 ? half : 1]; // (D/2) cos, sin of this position
        for (int64_t i = 0; i < half; i++) {
            double a = (double)ps[n] * inv_freq[i];
            cs[i] = (float)cos(a);
            sn[i] = (float)sin(a);
        }
        for (int64_t h = 0; h < H; h++) {
            float *v = xs + (n * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * cs[i] - x1 * sn[i];
                v[i + half] = x1 * cs[i] + x0 * sn[i];
            }
        }
    }
    return 0;
}

// out (N, C) = table (V, C)[ids[n]]
int cpu_op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids) {
    const char *op = "op_embedding";
    if (cpu_require_f32(op, "out", out) || cpu_require_f32(op, "table", table)) return -1;
    int64_t N = tensor_numel(ids), V = table->shape[0], C = table->shape[1];
    const int32_t *id = ids->data;
    for (int64_t n = 0; n < N; n++)
        if (id[n] < 0 || id[n] >= V)
            return err_set("%s: id %" PRId32 " at row %" PRId64 " is outside the table [0, %" PRId64 ")",
                           op, id[n], n, V);
    const float *ts = table->data;
    float *os = out->data;
    for (int64_t n = 0; n < N; n++) memcpy(os + n * C, ts + (int64_t)id[n] * C, (size_t)C * sizeof(float));
    return 0;
}
