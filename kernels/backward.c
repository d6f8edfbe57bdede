// backward.c: argument checks and dispatch of the backward ops (kernels.h, "ops (backward)").
// The CPU backend is in kernels/cpu/backward.c, the CUDA backend in kernels/cuda/backward.cu.
#include <inttypes.h>

#include "cpu/cpu_backward.h"
#include "err.h"
#include "kernels.h"
#ifdef TRUSTEE_CUDA
#include "cuda/cuda_ops.h"
#endif

// every non-NULL tensor on one device (*dev) with data: I32 where bit i of i32 is set, else a float
// tensor: F32 on the CPU, F32 / BF16 / F16 on CUDA (whose kernels load any float dtype)
static int check_all(const char *op, int n, const tensor_t *const *ts, const char *const *names,
                     unsigned i32, device_t *dev) {
    const char *first = NULL;
    for (int i = 0; i < n; i++) {
        const tensor_t *t = ts[i];
        if (!t) continue;
        if (!first) {
            first = names[i];
            *dev = t->device;
        } else if (t->device != *dev)
            return err_set("%s: mixed devices: %s is on %s but %s is on %s", op, first,
                           *dev == DEVICE_CUDA ? "CUDA" : "CPU", names[i],
                           t->device == DEVICE_CUDA ? "CUDA" : "CPU");
#ifndef TRUSTEE_CUDA
        if (t->device == DEVICE_CUDA)
            return err_set("%s: %s is a CUDA tensor, but trustee was built without CUDA", op, names[i]);
#endif
        if (!t->data && tensor_numel(t) > 0) return err_set("%s: %s has no data", op, names[i]);
        int want_i32 = (i32 >> i) & 1;
        if (want_i32 && t->dtype != DTYPE_I32)
            return err_set("%s: %s must be I32, found %s", op, names[i], dtype_name(t->dtype));
        int is_float = t->dtype == DTYPE_F32 ||
                       (t->device == DEVICE_CUDA && (t->dtype == DTYPE_BF16 || t->dtype == DTYPE_F16));
        if (!want_i32 && !is_float)
            return err_set("%s: %s must be F32%s, found %s", op, names[i],
                           t->device == DEVICE_CUDA ? ", BF16 or F16" : "", dtype_name(t->dtype));
    }
    return 0;
}

// calls the backend of dev
#ifdef TRUSTEE_CUDA
#define BWD_DISPATCH(name, dev, ...)                                                         \
    return (dev) == DEVICE_CUDA ? cuda_op_##name(__VA_ARGS__) : cpu_op_##name(__VA_ARGS__)
#else
#define BWD_DISPATCH(name, dev, ...) return cpu_op_##name(__VA_ARGS__)
#endif

static int64_t rows_of(const tensor_t *t) { return t->ndim ? t->shape[0] : 1; }
static int64_t cols_of(const tensor_t *t) { return rows_of(t) ? tensor_numel(t) / rows_of(t) : 0; }
static int64_t last_dim(const tensor_t *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

int op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                       const tensor_t *w, int accumulate) {
    const char *op = "op_matmul_backward";
    const tensor_t *ts[] = {dx, dw, dout, x, w};
    const char *nm[] = {"dx", "dw", "dout", "x", "w"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 5, ts, nm, 0x0, &dev)) return -1;
    if (w->ndim != 2) return err_set("%s: w must be (O, I)", op);
    int64_t N = rows_of(x), I = cols_of(x), O = w->shape[0];
    if (w->shape[1] != I || rows_of(dout) != N || cols_of(dout) != O)
        return err_set("%s: x (%" PRId64 ", %" PRId64 "), w (%" PRId64 ", %" PRId64 "), dout (%" PRId64
                       ", %" PRId64 ") do not fit", op, N, I, w->shape[0], w->shape[1], rows_of(dout),
                       cols_of(dout));
    if (dx && (rows_of(dx) != N || cols_of(dx) != I)) return err_set("%s: dx must be shaped like x", op);
    if (dw && tensor_numel(dw) != O * I) return err_set("%s: dw must be shaped like w", op);
    BWD_DISPATCH(matmul_backward, dev, dx, dw, dout, x, w, accumulate);
}

int op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                        const tensor_t *w, float eps, int accumulate) {
    const char *op = "op_rmsnorm_backward";
    const tensor_t *ts[] = {dx, dw, dout, x, w};
    const char *nm[] = {"dx", "dw", "dout", "x", "w"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 5, ts, nm, 0x0, &dev)) return -1;
    int64_t C = last_dim(x);
    if (tensor_numel(w) != C || (dw && tensor_numel(dw) != C))
        return err_set("%s: w and dw must have %" PRId64 " elements (x's last dim)", op, C);
    if (tensor_numel(dout) != tensor_numel(x) || (dx && tensor_numel(dx) != tensor_numel(x)))
        return err_set("%s: dout and dx must be shaped like x", op);
    BWD_DISPATCH(rmsnorm_backward, dev, dx, dw, dout, x, w, eps, accumulate);
}

int op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta) {
    const char *op = "op_rope_backward";
    const tensor_t *ts[] = {dx, pos};
    const char *nm[] = {"dx", "pos"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 2, ts, nm, 0x2, &dev)) return -1;
    if (dx->ndim != 3 || dx->shape[2] % 2 || tensor_numel(pos) != dx->shape[0])
        return err_set("%s: dx must be (N, H, D) with D even and pos (N)", op);
    if (!(theta > 0)) return err_set("%s: theta must be > 0, found %g", op, theta);
    BWD_DISPATCH(rope_backward, dev, dx, pos, theta);
}

int op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout, const tensor_t *gate,
                       const tensor_t *up) {
    const char *op = "op_swiglu_backward";
    const tensor_t *ts[] = {dgate, dup, dout, gate, up};
    const char *nm[] = {"dgate", "dup", "dout", "gate", "up"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 5, ts, nm, 0x0, &dev)) return -1;
    int64_t n = tensor_numel(dout);
    if (tensor_numel(gate) != n || tensor_numel(up) != n || (dgate && tensor_numel(dgate) != n) ||
        (dup && tensor_numel(dup) != n))
        return err_set("%s: element counts differ", op);
    BWD_DISPATCH(swiglu_backward, dev, dgate, dup, dout, gate, up);
}

int op_embedding_backward(tensor_t *dtable, const tensor_t *dout, const tensor_t *ids) {
    const char *op = "op_embedding_backward";
    const tensor_t *ts[] = {dtable, dout, ids};
    const char *nm[] = {"dtable", "dout", "ids"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 3, ts, nm, 0x4, &dev)) return -1;
    if (dtable->ndim != 2) return err_set("%s: dtable must be (V, C)", op);
    int64_t N = tensor_numel(ids), C = dtable->shape[1];
    if (rows_of(dout) != N || cols_of(dout) != C)
        return err_set("%s: dout must be (%" PRId64 ", %" PRId64 "), found (%" PRId64 ", %" PRId64 ")",
                       op, N, C, rows_of(dout), cols_of(dout));
    BWD_DISPATCH(embedding_backward, dev, dtable, dout, ids);
}

int op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits, const tensor_t *ids,
                                  const tensor_t *dlp, float temperature) {
    const char *op = "op_logsoftmax_gather_backward";
    const tensor_t *ts[] = {dlogits, logits, ids, dlp};
    const char *nm[] = {"dlogits", "logits", "ids", "dlp"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 4, ts, nm, 0x4, &dev)) return -1;
    if (logits->ndim != 2) return err_set("%s: logits must be (N, V)", op);
    int64_t N = logits->shape[0];
    if (tensor_numel(dlogits) != tensor_numel(logits) || tensor_numel(ids) != N || tensor_numel(dlp) != N)
        return err_set("%s: logits (%" PRId64 " rows), dlogits, ids and dlp do not fit", op, N);
    if (!(temperature > 0)) return err_set("%s: temperature must be > 0, found %g", op, temperature);
    BWD_DISPATCH(logsoftmax_gather_backward, dev, dlogits, logits, ids, dlp, temperature);
}

int op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature) {
    const char *op = "op_softmax_entropy";
    const tensor_t *ts[] = {out, logits};
    const char *nm[] = {"out", "logits"};
    device_t dev = DEVICE_CPU;
    if (check_all(op, 2, ts, nm, 0x0, &dev)) return -1;
    if (logits->ndim != 2 || tensor_numel(out) != logits->shape[0])
        return err_set("%s: logits must be (N, V) and out (N)", op);
    if (!(temperature > 0)) return err_set("%s: temperature must be > 0, found %g", op, temperature);
    BWD_DISPATCH(softmax_entropy, dev, out, logits, temperature);
}

int op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                          const tensor_t *q, const tensor_t *k, const tensor_t *v) {
    const char *op = "op_attention_backward";
    const tensor_t *ts[] = {dq, dk, dv, dout, q, k, v};
    const char *nm[] = {"dq", "dk", "dv", "dout", "q", "k", "v"};
    if (!dq || !dk || !dv) return err_set("%s: dq, dk and dv are required", op);
    device_t dev = DEVICE_CPU;
    if (check_all(op, 7, ts, nm, 0x0, &dev)) return -1;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return err_set("%s: q, k, v must be (B, T, H, D)", op);
    for (int i = 0; i < 4; i++)
        if (k->shape[i] != v->shape[i] || (i != 2 && q->shape[i] != k->shape[i]))
            return err_set("%s: q (B, T, Hq, D) and k, v (B, T, Hkv, D) disagree in dim %d", op, i);
    int64_t Hq = q->shape[2], Hkv = k->shape[2];
    if (Hkv <= 0 || Hq % Hkv)
        return err_set("%s: query heads (%" PRId64 ") must be a multiple of KV heads (%" PRId64 ")", op,
                       Hq, Hkv);
    if (tensor_numel(dout) != tensor_numel(q) || tensor_numel(dq) != tensor_numel(q) ||
        tensor_numel(dk) != tensor_numel(k) || tensor_numel(dv) != tensor_numel(v))
        return err_set("%s: gradients must be shaped like their inputs", op);
    BWD_DISPATCH(attention_backward, dev, dq, dk, dv, dout, q, k, v);
}
