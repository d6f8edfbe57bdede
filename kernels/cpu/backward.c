// Backward ops on the CPU (cpu_backward.h). Formulas (y the forward output, g = dL/dy):
//   matmul   y = x w^T:              dx = g w,  dw += g^T x
//   rmsnorm  y = x r w, r = (mean(x^2) + eps)^-1/2:
//            dx_c = r w_c g_c - r^3 / C * x_c * sum_j g_j w_j x_j,   dw_c += sum_rows g_c x_c r
//   rope     a rotation per pair: the gradient turns back by the same angle
//   swiglu   y = silu(a) u, silu' = s (1 + a (1 - s)), s = sigmoid(a)
//   logsoftmax gather  lp = z_id - logsumexp(z), z = logits / t:  dlogits = dlp (onehot - p) / t
//   attention (per query row i, keys j <= i): P = softmax(q k^T * scale), O = P V
//            dV_j += P_ij dO_i, dP_ij = dO_i . V_j, dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij),
//            dQ_i = scale sum_j dS_ij K_j, dK_j += scale dS_ij Q_i
#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "cpu_backward.h"
#include "cpu_ops.h"

#define PAR_MIN_WORK (1 << 15)
#define TILE 256

// ---------------------------------------------------------------------------------------------
// matmul: fixed output tiles, each one single-threaded sgemm (as in the forward, matmul.c)

int cpu_op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                           const tensor_t *w, int accumulate) {
    cpu_blas_init();
    const int64_t N = x->shape[0], O = w->shape[0], K = w->shape[1];
    const float *g = dout->data, *xs = x->data, *ws = w->data;
    if (N == 0 || O == 0 || K == 0) {
        if (dx && !accumulate) memset(dx->data, 0, (size_t)(N * K) * sizeof(float));
        return 0;
    }
    if (dx) { // dx (N, K) = g (N, O) @ w (O, K)
        float *d = dx->data;
        const float beta = accumulate ? 1.0f : 0.0f;
        const int64_t rt = (N + TILE - 1) / TILE, ct = (K + TILE - 1) / TILE;
#pragma omp parallel for schedule(dynamic, 1) if (N * O * K >= (1 << 18))
        for (int64_t t = 0; t < rt * ct; t++) {
            int64_t n0 = t / ct * TILE, i0 = t % ct * TILE;
            int64_t tn = N - n0 < TILE ? N - n0 : TILE, ti = K - i0 < TILE ? K - i0 : TILE;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)tn, (int)ti, (int)O, 1.0f,
                        g + n0 * O, (int)O, ws + i0, (int)K, beta, d + n0 * K + i0, (int)K);
        }
    }
    if (dw) { // dw (O, K) += g^T (O, N) @ x (N, K)
        float *d = dw->data;
        const int64_t rt = (O + TILE - 1) / TILE, ct = (K + TILE - 1) / TILE;
#pragma omp parallel for schedule(dynamic, 1) if (N * O * K >= (1 << 18))
        for (int64_t t = 0; t < rt * ct; t++) {
            int64_t o0 = t / ct * TILE, i0 = t % ct * TILE;
            int64_t to = O - o0 < TILE ? O - o0 : TILE, ti = K - i0 < TILE ? K - i0 : TILE;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)to, (int)ti, (int)N, 1.0f,
                        g + o0, (int)O, xs + i0, (int)K, 1.0f, d + o0 * K + i0, (int)K);
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

int cpu_op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                            const tensor_t *w, float eps, int accumulate) {
    const int64_t C = x->shape[x->ndim - 1];
    const int64_t R = C ? tensor_numel(x) / C : 0;
    const float *xs = x->data, *ws = w->data, *g = dout->data;
    float *inv = malloc((size_t)(R > 0 ? R : 1) * sizeof(float)); // (R) r of each row
    if (!inv) return err_set("op_rmsnorm_backward: out of memory (%" PRId64 " rows)", R);
#pragma omp parallel for if (R * C >= PAR_MIN_WORK)
    for (int64_t r = 0; r < R; r++) { // the forward's r: the same expression (double sum -> float)
        const float *xr = xs + r * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        inv[r] = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    }
    if (dw) { // before dx, so dx may alias dout. Columns in blocks of 64, rows summed in order.
        float *dws = dw->data;
        const int64_t nb = (C + 63) / 64;
#pragma omp parallel for if (R * C >= PAR_MIN_WORK)
        for (int64_t blk = 0; blk < nb; blk++) {
            int64_t c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
            double acc[64] = {0};
            for (int64_t r = 0; r < R; r++) {
                const float *xr = xs + r * C, *gr = g + r * C;
                for (int64_t c = c0; c < c1; c++) acc[c - c0] += (double)gr[c] * xr[c] * inv[r];
            }
            for (int64_t c = c0; c < c1; c++) dws[c] += (float)acc[c - c0];
        }
    }
    if (dx) {
#pragma omp parallel for if (R * C >= PAR_MIN_WORK)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = xs + r * C, *gr = g + r * C;
            float *dr = (float *)dx->data + r * C;
            double dot = 0.0;
            for (int64_t c = 0; c < C; c++) dot += (double)gr[c] * ws[c] * xr[c];
            const double ri = inv[r], r3 = ri * ri * ri / (double)C * dot;
            for (int64_t c = 0; c < C; c++) {
                float v = (float)(ri * ws[c] * gr[c] - r3 * xr[c]);
                dr[c] = accumulate ? dr[c] + v : v;
            }
        }
    }
    free(inv);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// rope: the transpose of the forward rotation (same angles, computed the same way)

int cpu_op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta) {
    const int64_t N = dx->shape[0], H = dx->shape[1], D = dx->shape[2], half = D / 2;
    float *xs = dx->data;
    const int32_t *ps = pos->data;
    double inv_freq[half > 0 ? half : 1];
    for (int64_t i = 0; i < half; i++) inv_freq[i] = pow(theta, -2.0 * (double)i / (double)D);
#pragma omp parallel for if (N * H * D >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        float cs[half > 0 ? half : 1], sn[half > 0 ? half : 1];
        for (int64_t i = 0; i < half; i++) {
            double a = (double)ps[n] * inv_freq[i];
            cs[i] = (float)cos(a);
            sn[i] = (float)sin(a);
        }
        for (int64_t h = 0; h < H; h++) {
            float *v = xs + (n * H + h) * D;
            for (int64_t i = 0; i < half; i++) {
                float g0 = v[i], g1 = v[i + half];
                v[i] = g0 * cs[i] + g1 * sn[i];
                v[i + half] = g1 * cs[i] - g0 * sn[i];
            }
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// swiglu, embedding

int cpu_op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout,
                           const tensor_t *gate, const tensor_t *up) {
    const int64_t n = tensor_numel(dout);
    const float *g = dout->data, *a = gate->data, *u = up->data;
    float *da = dgate ? dgate->data : NULL, *du = dup ? dup->data : NULL;
#pragma omp parallel for if (n >= PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], ai = a[i], ui = u[i];
        float s = 1.0f / (1.0f + expf(-ai));
        if (da) da[i] = gi * ui * s * (1.0f + ai * (1.0f - s));
        if (du) du[i] = gi * ai * s;
    }
    return 0;
}

int cpu_op_embedding_backward(tensor_t *dtable, const tensor_t *dout, const tensor_t *ids) {
    const int64_t N = tensor_numel(ids), V = dtable->shape[0], C = dtable->shape[1];
    const int32_t *id = ids->data;
    for (int64_t n = 0; n < N; n++)
        if (id[n] < 0 || id[n] >= V)
            return err_set("op_embedding_backward: id %" PRId32 " at row %" PRId64
                           " is outside the table [0, %" PRId64 ")", id[n], n, V);
    const float *g = dout->data;
    float *d = dtable->data;
    for (int64_t n = 0; n < N; n++) { // rows in order: repeated ids add up the same way every run
        float *row = d + (int64_t)id[n] * C;
        const float *gr = g + n * C;
        for (int64_t c = 0; c < C; c++) row[c] += gr[c];
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// log-softmax gather, entropy

int cpu_op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits,
                                      const tensor_t *ids, const tensor_t *dlp, float temperature) {
    const int64_t N = logits->shape[0], V = logits->shape[1];
    const int32_t *id = ids->data;
    for (int64_t n = 0; n < N; n++)
        if (id[n] < 0 || id[n] >= V)
            return err_set("op_logsoftmax_gather_backward: id %" PRId32 " at row %" PRId64
                           " is outside the vocabulary [0, %" PRId64 ")", id[n], n, V);
    const float *ls = logits->data, *gs = dlp->data;
    float *ds = dlogits->data;
    const float inv_t = 1.0f / temperature;
#pragma omp parallel for if (N * V >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        const float *row = ls + n * V;
        float *drow = ds + n * V;
        float m = -INFINITY;
        for (int64_t i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
        double sum = 0.0; // e^z kept in drow (one expf per entry; drow may be row itself)
        for (int64_t i = 0; i < V; i++) {
            const float e = expf((row[i] - m) * inv_t);
            drow[i] = e;
            sum += e;
        }
        const float scale = gs[n] * inv_t, inv_sum = (float)(1.0 / sum);
        for (int64_t i = 0; i < V; i++) drow[i] = -scale * drow[i] * inv_sum;
        drow[id[n]] += scale;
    }
    return 0;
}

int cpu_op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature) {
    const int64_t N = logits->shape[0], V = logits->shape[1];
    const float *ls = logits->data;
    float *os = out->data;
    const float inv_t = 1.0f / temperature;
#pragma omp parallel for if (N * V >= PAR_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        const float *row = ls + n * V;
        float m = -INFINITY;
        for (int64_t i = 0; i < V; i++) m = row[i] > m ? row[i] : m;
        double sum = 0.0, ez = 0.0; // sum e^z and sum z e^z, z = (logit - max) / t
        for (int64_t i = 0; i < V; i++) {
            double z = (double)((row[i] - m) * inv_t);
            double e = exp(z);
            sum += e;
            ez += z * e;
        }
        os[n] = (float)(log(sum) - ez / sum); // H = log Z - E[z]
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// attention: one (sequence, KV head) pair per work item, which owns dK/dV of that head and dQ of
// its query heads, so nothing is shared between threads. _ref: row by row (the reference);
// cpu_op_attention_backward: tiles of ATT_BWD_TILE query rows on OpenBLAS (below).

int cpu_op_attention_backward_ref(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                                  const tensor_t *q, const tensor_t *k, const tensor_t *v) {
    const int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[2], group = Hq / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    const float *qs = q->data, *ks = k->data, *vs = v->data, *gs = dout->data;
    float *dqs = dq->data, *dks = dk->data, *dvs = dv->data;
    int fail = 0;
#pragma omp parallel if (B * Hkv > 1 && B * T * T * Hq * D >= PAR_MIN_WORK)
    {
        float *p = malloc((size_t)(T > 0 ? T : 1) * sizeof(float));  // (T) probabilities
        float *dp = malloc((size_t)(T > 0 ? T : 1) * sizeof(float)); // (T)
        if (!p || !dp) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < B * Hkv; item++) {
            if (!p || !dp) continue;
            const int64_t b = item / Hkv, kvh = item % Hkv;
#define KV_AT(base, t) ((base) + ((b * T + (t)) * Hkv + kvh) * D)
#define Q_AT(base, t, h) ((base) + ((b * T + (t)) * Hq + (h)) * D)
            for (int64_t t = 0; t < T; t++) {
                memset(KV_AT(dks, t), 0, (size_t)D * sizeof(float));
                memset(KV_AT(dvs, t), 0, (size_t)D * sizeof(float));
            }
            for (int64_t h = kvh * group; h < (kvh + 1) * group; h++)
                for (int64_t i = 0; i < T; i++) {
                    const float *qi = Q_AT(qs, i, h), *gi = Q_AT(gs, i, h);
                    float *dqi = Q_AT(dqs, i, h);
                    // probabilities of query i over keys 0..i (as in the forward)
                    float m = -INFINITY;
                    for (int64_t j = 0; j <= i; j++) {
                        p[j] = cpu_dot(qi, KV_AT(ks, j), D) * scale;
                        m = p[j] > m ? p[j] : m;
                    }
                    double sum = 0.0;
                    for (int64_t j = 0; j <= i; j++) {
                        p[j] = expf(p[j] - m);
                        sum += p[j];
                    }
                    const float inv = (float)(1.0 / sum);
                    double pdp = 0.0; // sum_j P_ij dP_ij
                    for (int64_t j = 0; j <= i; j++) {
                        p[j] *= inv;
                        dp[j] = cpu_dot(gi, KV_AT(vs, j), D);
                        pdp += (double)p[j] * dp[j];
                    }
                    memset(dqi, 0, (size_t)D * sizeof(float));
                    for (int64_t j = 0; j <= i; j++) {
                        const float ds = p[j] * (dp[j] - (float)pdp) * scale;
                        const float *kj = KV_AT(ks, j);
                        float *dkj = KV_AT(dks, j), *dvj = KV_AT(dvs, j);
                        for (int64_t d = 0; d < D; d++) {
                            dqi[d] += ds * kj[d];
                            dkj[d] += ds * qi[d];
                            dvj[d] += p[j] * gi[d];
                        }
                    }
                }
#undef KV_AT
#undef Q_AT
        }
        free(p);
        free(dp);
    }
    if (fail) return err_set("op_attention_backward: out of memory for scratch (%" PRId64 " keys)", T);
    return 0;
}

#define ATT_BWD_TILE 64 // query rows per tile

// Per (sequence b, KV head) item, per query head h of its group, per tile of query rows i0..i1-1
// (keys 0..i1-1 cover the tile: later keys are masked for all of its rows):
//   S (rows, i1) = Q_tile K^T scale, P = softmax with the causal mask (masked entries 0)
//   dP (rows, i1) = dO_tile V^T,  dS = P (dP - rowsum(P dP)) scale
//   dQ_tile = dS K,  dK[0:i1] += dS^T Q_tile,  dV[0:i1] += P^T dO_tile
// Tiles and heads in a fixed order, each GEMM on one thread: the same bits at any thread count.
int cpu_op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                              const tensor_t *q, const tensor_t *k, const tensor_t *v) {
    cpu_blas_init();
    const int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Hkv = k->shape[2], group = Hq / Hkv;
    const int64_t ldq = Hq * D, ldk = Hkv * D; // row strides of one head's (T, D) matrices
    const float scale = 1.0f / sqrtf((float)D);
    const float *qs = q->data, *ks = k->data, *vs = v->data, *gs = dout->data;
    float *dqs = dq->data, *dks = dk->data, *dvs = dv->data;
    const int64_t tile_n = (int64_t)ATT_BWD_TILE * (T > 0 ? T : 1);
    int fail = 0;
#pragma omp parallel if (B * Hkv > 1 && B * T * T * Hq * D >= PAR_MIN_WORK)
    {
        float *p = malloc((size_t)tile_n * sizeof(float));  // (rows, i1) probabilities
        float *dp = malloc((size_t)tile_n * sizeof(float)); // (rows, i1) dP, then dS
        if (!p || !dp) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < B * Hkv; item++) {
            if (!p || !dp) continue;
            const int64_t b = item / Hkv, kvh = item % Hkv;
            const float *kb = ks + b * T * ldk + kvh * D, *vb = vs + b * T * ldk + kvh * D;
            float *dkb = dks + b * T * ldk + kvh * D, *dvb = dvs + b * T * ldk + kvh * D;
            for (int64_t t = 0; t < T; t++) {
                memset(dkb + t * ldk, 0, (size_t)D * sizeof(float));
                memset(dvb + t * ldk, 0, (size_t)D * sizeof(float));
            }
            for (int64_t h = kvh * group; h < (kvh + 1) * group; h++)
                for (int64_t i0 = 0; i0 < T; i0 += ATT_BWD_TILE) {
                    const int64_t rows = T - i0 < ATT_BWD_TILE ? T - i0 : ATT_BWD_TILE, nk = i0 + rows;
                    const int64_t at = (b * T + i0) * ldq + h * D; // the tile's first row of head h
                    const float *qt = qs + at, *gt = gs + at;
                    // P = softmax(Q K^T scale), causal; dP = dO V^T
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nk, (int)D,
                                scale, qt, (int)ldq, kb, (int)ldk, 0.0f, p, (int)nk);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nk, (int)D,
                                1.0f, gt, (int)ldq, vb, (int)ldk, 0.0f, dp, (int)nk);
                    for (int64_t r = 0; r < rows; r++) {
                        float *pr = p + r * nk, *dr = dp + r * nk;
                        const int64_t n = i0 + r + 1; // keys 0..i0+r
                        float lane[16];
                        for (int j = 0; j < 16; j++) lane[j] = -INFINITY;
                        const int64_t n16 = n / 16 * 16;
                        for (int64_t t = 0; t < n16; t += 16)
                            for (int j = 0; j < 16; j++) lane[j] = pr[t + j] > lane[j] ? pr[t + j] : lane[j];
                        float m = -INFINITY;
                        for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
                        for (int64_t t = n16; t < n; t++) m = pr[t] > m ? pr[t] : m;
                        for (int64_t t = 0; t < n; t++) pr[t] = cpu_expf_neg(pr[t] - m);
                        for (int64_t t = n; t < nk; t++) pr[t] = 0.0f;
                        double sl[8] = {0};
                        const int64_t n8 = n / 8 * 8;
                        for (int64_t t = 0; t < n8; t += 8)
                            for (int j = 0; j < 8; j++) sl[j] += (double)pr[t + j];
                        double sum = 0.0;
                        for (int j = 0; j < 8; j++) sum += sl[j];
                        for (int64_t t = n8; t < n; t++) sum += (double)pr[t];
                        const float inv = (float)(1.0 / sum);
                        for (int64_t t = 0; t < n; t++) pr[t] *= inv;
                        double pl[8] = {0}; // sum_j P_ij dP_ij
                        for (int64_t t = 0; t < n8; t += 8)
                            for (int j = 0; j < 8; j++) pl[j] += (double)pr[t + j] * dr[t + j];
                        double pdp = 0.0;
                        for (int j = 0; j < 8; j++) pdp += pl[j];
                        for (int64_t t = n8; t < n; t++) pdp += (double)pr[t] * dr[t];
                        const float c = (float)pdp;
                        for (int64_t t = 0; t < n; t++) dr[t] = pr[t] * (dr[t] - c) * scale;
                        for (int64_t t = n; t < nk; t++) dr[t] = 0.0f;
                    }
                    // dQ_tile = dS K; dK += dS^T Q_tile; dV += P^T dO_tile
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)nk,
                                1.0f, dp, (int)nk, kb, (int)ldk, 0.0f, dqs + at, (int)ldq);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)rows,
                                1.0f, dp, (int)nk, qt, (int)ldq, 1.0f, dkb, (int)ldk);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)rows,
                                1.0f, p, (int)nk, gt, (int)ldq, 1.0f, dvb, (int)ldk);
                }
        }
        free(p);
        free(dp);
    }
    if (fail) return err_set("op_attention_backward: out of memory for scratch (%" PRId64 " keys)", T);
    return 0;
}
