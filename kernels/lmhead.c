// lmhead: chunked log-prob through the LM head (lmhead.h); the CPU path is the reference, built
// from the ops of kernels.h.
#include "lmhead.h"

#include <math.h>
#include <string.h>

#include "err.h"

int64_t lmhead_chunk_rows(int64_t N, int64_t V, size_t workspace_bytes) {
    int64_t R = V > 0 ? (int64_t)(workspace_bytes / ((size_t)V * sizeof(float))) : N;
    if (R > N) R = N;
    if (R < 1) R = 1;
    return R;
}

// a 1-D F32 (N) tensor on dev, or a NULL one when optional
static int lmhead_check_vec(const char *op, const char *name, const tensor_t *t, int64_t N, device_t dev) {
    if (t->dtype != DTYPE_F32 || tensor_numel(t) != N || t->device != dev)
        return err_set("%s: %s: expected F32 (%lld) on the device of h, found %s with %lld elements", op, name,
                       (long long)N, dtype_name(t->dtype), (long long)tensor_numel(t));
    return 0;
}

// the shapes shared by forward and backward; sets *N, *C, *V
static int lmhead_check(const char *op, const tensor_t *h, const tensor_t *w, const tensor_t *ids,
                        float temperature, int64_t *N, int64_t *C, int64_t *V) {
    if (h->ndim != 2 || w->ndim != 2 || h->shape[1] != w->shape[1])
        return err_set("%s: expected h (N, C) and w (V, C), found %d-D and %d-D tensors (C %lld vs %lld)", op,
                       h->ndim, w->ndim, (long long)h->shape[h->ndim - 1], (long long)w->shape[w->ndim - 1]);
    *N = h->shape[0], *C = h->shape[1], *V = w->shape[0];
    if (*V < 1) return err_set("%s: empty vocabulary", op);
    if (ids->dtype != DTYPE_I32 || tensor_numel(ids) != *N)
        return err_set("%s: ids: expected I32 (%lld), found %s with %lld elements", op, (long long)*N,
                       dtype_name(ids->dtype), (long long)tensor_numel(ids));
    if (w->device != h->device || ids->device != h->device)
        return err_set("%s: h, w and ids must be on one device", op);
    if (!(temperature > 0) || isinf(temperature))
        return err_set("%s: temperature must be a finite number > 0, found %g", op, temperature);
    return 0;
}

// rows [n0, n0 + r) of a row-major tensor with `cols` elements per row
static tensor_t rows_view(const tensor_t *t, int64_t n0, int64_t r, int64_t cols) {
    int64_t shape[2] = {r, cols};
    char *base = (char *)t->data + (size_t)(n0 * cols) * dtype_size(t->dtype);
    return tensor_view(base, t->dtype, t->device, cols == 1 ? 1 : 2, shape);
}

int lmhead_logprob(tensor_t *lp, tensor_t *ent, const tensor_t *h, const tensor_t *w, const tensor_t *ids,
                   float temperature, size_t workspace_bytes) {
    const char *op = "lmhead_logprob";
    int64_t N, C, V;
    if (lmhead_check(op, h, w, ids, temperature, &N, &C, &V) || lmhead_check_vec(op, "lp", lp, N, h->device) ||
        (ent && lmhead_check_vec(op, "ent", ent, N, h->device)))
        return -1;
    if (N == 0) return 0;
    const int64_t R = lmhead_chunk_rows(N, V, workspace_bytes);
    if (h->device == DEVICE_CUDA) {
#ifdef TRUSTEE_CUDA
        return cuda_lmhead_logprob(lp, ent, h, w, ids, temperature, R);
#else
        return err_set("%s: built without CUDA", op);
#endif
    }
    tensor_t logits;
    int64_t ls[2] = {R, V};
    if (tensor_alloc(&logits, DTYPE_F32, DEVICE_CPU, 2, ls)) return -1;
    int rc = 0;
    for (int64_t n0 = 0; n0 < N && rc == 0; n0 += R) {
        const int64_t r = N - n0 < R ? N - n0 : R;
        tensor_t hv = rows_view(h, n0, r, C), lv = rows_view(&logits, 0, r, V);
        tensor_t iv = rows_view(ids, n0, r, 1), pv = rows_view(lp, n0, r, 1);
        rc = op_matmul(&lv, &hv, w, 0) || op_logsoftmax_gather(&pv, &lv, &iv, temperature);
        if (rc == 0 && ent) {
            tensor_t ev = rows_view(ent, n0, r, 1);
            rc = op_softmax_entropy(&ev, &lv, temperature);
        }
    }
    tensor_free(&logits);
    return rc ? -1 : 0;
}

int lmhead_logprob_backward(tensor_t *dh, tensor_t *dw, const tensor_t *dlp, const tensor_t *h,
                            const tensor_t *w, const tensor_t *ids, float temperature, size_t workspace_bytes,
                            int accumulate) {
    const char *op = "lmhead_logprob_backward";
    int64_t N, C, V;
    if (lmhead_check(op, h, w, ids, temperature, &N, &C, &V) || lmhead_check_vec(op, "dlp", dlp, N, h->device))
        return -1;
    if (dh && (tensor_numel(dh) != N * C || dh->device != h->device))
        return err_set("%s: dh: expected (%lld, %lld) on the device of h", op, (long long)N, (long long)C);
    if (dw && (tensor_numel(dw) != V * C || dw->device != h->device))
        return err_set("%s: dw: expected (%lld, %lld) on the device of h", op, (long long)V, (long long)C);
    if (N == 0 || (!dh && !dw)) return 0;
    const int64_t R = lmhead_chunk_rows(N, V, workspace_bytes);
    if (h->device == DEVICE_CUDA) {
#ifdef TRUSTEE_CUDA
        return cuda_lmhead_logprob_backward(dh, dw, dlp, h, w, ids, temperature, R, accumulate);
#else
        return err_set("%s: built without CUDA", op);
#endif
    }
    tensor_t logits;
    int64_t ls[2] = {R, V};
    if (tensor_alloc(&logits, DTYPE_F32, DEVICE_CPU, 2, ls)) return -1;
    int rc = 0;
    for (int64_t n0 = 0; n0 < N && rc == 0; n0 += R) {
        const int64_t r = N - n0 < R ? N - n0 : R;
        tensor_t hv = rows_view(h, n0, r, C), lv = rows_view(&logits, 0, r, V);
        tensor_t iv = rows_view(ids, n0, r, 1), dv = rows_view(dlp, n0, r, 1);
        tensor_t dhv = dh ? rows_view(dh, n0, r, C) : (tensor_t){0};
        rc = op_matmul(&lv, &hv, w, 0) || op_logsoftmax_gather_backward(&lv, &lv, &iv, &dv, temperature) ||
             op_matmul_backward(dh ? &dhv : NULL, dw, &lv, &hv, w, accumulate);
    }
    tensor_free(&logits);
    return rc ? -1 : 0;
}
