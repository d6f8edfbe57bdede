// Row-wise ops on the CPU: rmsnorm, softmax, log-softmax gather. Each row is computed by one
// thread in a fixed order (sums in double), so results do not depend on the thread count.
#include <inttypes.h>
#include <math.h>

#include "../err.h"
#include "cpu_ops.h"

// parallelize a loop over rows only when the work is worth a thread wake-up
#define PAR_MIN_WORK (1 << 15)

// out (R, C) = x (R, C) * rsqrt(mean(x^2) + eps) * w (C); R = all leading dims. out may alias x.
int cpu_op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps) {
    if (cpu_require_f32("op_rmsnorm", "out", out) || cpu_require_f32("op_rmsnorm", "x", x) ||
        cpu_require_f32("op_rmsnorm", "w", w))
        return -1;
    int64_t C = x->shape[x->ndim - 1];
    int64_t R = C ? tensor_numel(x) / C : 0;
    const float *xs = x->data, *ws = w->data;
    float *os = out->data;
#pragma omp parallel for if (R * C >= PAR_MIN_WORK)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xs + r * C;
        float *orow = os + r * C;
        // sum of squares in 8 independent lanes (vectorizable, fixed order), then the lanes in order
        double lane[8] = {0};
        int64_t c8 = C / 8 * 8;
        for (int64_t c = 0; c < c8; c += 8)
            for (int j = 0; j < 8; j++) lane[j] += (double)xr[c + j] * xr[c + j];
        double ss = 0.0;
        for (int j = 0; j < 8; j++) ss += lane[j];
        for (int64_t c = c8; c < C; c++) ss += (double)xr[c] * xr[c];
        float inv = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t c = 0; c < C; c++) orow[c] = xr[c] * inv * ws[c];
    }
    return 0;
}

// x (R, V): softmax of each row, in place
int cpu_op_softmax(tensor_t *x) {
    if (cpu_require_f32("op_softmax", "x", x)) return -1;
    int64_t V = x->ndim ? x->shape[x->ndim - 1] : 1;
    int64_t R = V ? tensor_numel(x) / V : 0;
    float *xs = x->data;
#pragma omp parallel for if (R * V >= PAR_MIN_WORK)
    for (int64_t r = 0; r < R; r++) {
        float *row = xs + r * V;
        float m = -INFINITY;
        for (int64_t i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
        double sum = 0.0;
        for (int64_t i = 0; i < V; i++) {
            row[i] = expf(row[i] - m);
            sum += row[i];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < V; i++) row[i] *= inv;
    }
    return 0;
}

// out (N) = log_softmax(logits (N, V) / temperature)[ids[n]]
int cpu_op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids,
                             float temperature) {
    const char *op = "op_logsoftmax_gather";
    if (cpu_require_f32(op, "out", out) || cpu_require_f32(op, "logits", logits)) return -1;
    int64_t N = logits->shape[0], V = logits->shape[1];
    const int32_t *id = ids->data;
    for (int64_t n = 0; n < N; n++)
        if (id[n] < 0 || id[n] >= V)
            return err_set("%s: id %" PRId32 " at row %" PRId64 " is outside the vocabulary [0, %" PRId64 ")",
                           op, id[n], n, V);
    const float *ls = logits->data;
    float *os = out->data;
    float inv_t = 1.0f / temperature;
#pragma omp parallel for if (N * V >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        const float *row = ls + n * V;
        float m = -INFINITY;
        for (int64_t i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
        double sum = 0.0;
        for (int64_t i = 0; i < V; i++) sum += expf((row[i] - m) * inv_t);
        os[n] = (float)((double)((row[id[n]] - m) * inv_t) - log(sum));
    }
    return 0;
}
