// Paged KV cache store and causal GQA attention on the CPU.
//
//   k_pool, v_pool (P, S, Hkv, D)   slot = page * S + offset; one slot holds Hkv * D floats
//   q, out         (N, Hq, D)      packed rows of B sequences
//   seq_info       I32 (B, 3)      q_start, q_len, kv_len
//   page_table     I32 (B, MP)
// Two paths, chosen per sequence by its query rows (cpu_ops.h CPU_ATTENTION_GEMM_MIN_Q):
//  - row by row (decode; the reference): work split over (row, query head) pairs, each computed by
//    one thread start to end;
//  - GEMM (prefill, the training forward): work split over (sequence, query head, tile of
//    ATT_TILE query rows); per tile S = Q K^T scale over the keys the tile's last row sees
//    (OpenBLAS, one thread per call), causal mask + softmax, O = P V. K/V rows come straight from
//    the pool when the sequence's pages are consecutive (a strided matrix), else gathered into
//    scratch first.
// Either way a result does not depend on the thread count or on which other sequences share the
// batch.
#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "cpu_ops.h"

int cpu_op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                    const tensor_t *slots) {
    const char *op = "op_kv_store";
    if (cpu_require_f32(op, "k_pool", k_pool) || cpu_require_f32(op, "v_pool", v_pool) ||
        cpu_require_f32(op, "k", k) || cpu_require_f32(op, "v", v))
        return -1;
    int64_t N = k->shape[0], row = k->shape[1] * k->shape[2];
    int64_t n_slots = k_pool->shape[0] * k_pool->shape[1];
    const int32_t *sl = slots->data;
    for (int64_t n = 0; n < N; n++)
        if (sl[n] < 0 || sl[n] >= n_slots)
            return err_set("%s: slot %" PRId32 " of row %" PRId64 " is outside the pool [0, %" PRId64 ")",
                           op, sl[n], n, n_slots);
    float *kp = k_pool->data, *vp = v_pool->data;
    const float *ks = k->data, *vs = v->data;
    for (int64_t n = 0; n < N; n++) {
        memcpy(kp + (int64_t)sl[n] * row, ks + n * row, (size_t)row * sizeof(float));
        memcpy(vp + (int64_t)sl[n] * row, vs + n * row, (size_t)row * sizeof(float));
    }
    return 0;
}

#define ATT_TILE 64 // query rows per GEMM tile

// one query row of one head, scalar (the reference path): scores (last + 1) scratch
static void attention_row(float *o, const float *qv, const float *kp, const float *vp,
                          const int32_t *pages, int64_t S, int64_t slot_stride, int64_t kvh,
                          int64_t D, int64_t last, float scale, float *scores, float *acc) {
    // scores and their max
    float m = -INFINITY;
    for (int64_t t = 0; t <= last; t++) {
        int64_t slot = (int64_t)pages[t / S] * S + t % S;
        float s = cpu_dot(qv, kp + slot * slot_stride + kvh * D, D) * scale;
        scores[t] = s;
        m = s > m ? s : m;
    }
    // softmax weights and the weighted sum of values
    float sum = 0.0f;
    for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
    for (int64_t t = 0; t <= last; t++) {
        int64_t slot = (int64_t)pages[t / S] * S + t % S;
        float p = expf(scores[t] - m);
        sum += p;
        const float *vv = vp + slot * slot_stride + kvh * D;
        for (int64_t d = 0; d < D; d++) acc[d] += p * vv[d];
    }
    float inv = 1.0f / sum;
    for (int64_t d = 0; d < D; d++) o[d] = acc[d] * inv;
}

// row r of a tile of scores s (rows, ld) with keys 0..last valid: s <- softmax weights, the keys
// past last <- 0; returns 1 / sum. Max and sum in 16 lanes (vectorized, fixed order).
static float attention_softmax_row(float *s, int64_t last, int64_t ld) {
    float lane[16];
    for (int j = 0; j < 16; j++) lane[j] = -INFINITY;
    const int64_t n = last + 1, n16 = n / 16 * 16;
    for (int64_t t = 0; t < n16; t += 16)
        for (int j = 0; j < 16; j++) lane[j] = s[t + j] > lane[j] ? s[t + j] : lane[j];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
    for (int64_t t = n16; t < n; t++) m = s[t] > m ? s[t] : m;
    for (int64_t t = 0; t < n; t++) s[t] = cpu_expf_neg(s[t] - m);
    for (int64_t t = n; t < ld; t++) s[t] = 0.0f;
    double dl[8] = {0};
    const int64_t n8 = n / 8 * 8;
    for (int64_t t = 0; t < n8; t += 8)
        for (int j = 0; j < 8; j++) dl[j] += (double)s[t + j];
    double sum = 0.0;
    for (int j = 0; j < 8; j++) sum += dl[j];
    for (int64_t t = n8; t < n; t++) sum += (double)s[t];
    return (float)(1.0 / sum);
}

// checks every index before touching memory; maps each row to its sequence (row_seq (N), -1 for
// rows no sequence claims) and returns the longest kv_len in *max_kv
static int attention_check(const tensor_t *q, const tensor_t *k_pool, const tensor_t *seq_info,
                           const tensor_t *page_table, int32_t **row_seq_out, int64_t *max_kv_out) {
    const char *op = "op_attention";
    int64_t N = q->shape[0];
    int64_t P = k_pool->shape[0], S = k_pool->shape[1];
    int64_t B = seq_info->shape[0], MP = page_table->shape[1];
    const int32_t *si = seq_info->data, *pt = page_table->data;
    int32_t *row_seq = malloc((size_t)(N > 0 ? N : 1) * sizeof(int32_t)); // (N)
    if (!row_seq) return err_set("%s: out of memory", op);
    for (int64_t n = 0; n < N; n++) row_seq[n] = -1;
    int64_t max_kv = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t q_start = si[b * 3], q_len = si[b * 3 + 1], kv_len = si[b * 3 + 2];
        if (q_start < 0 || q_len < 0 || q_start + q_len > N || q_len > kv_len || kv_len > MP * S) {
            free(row_seq);
            return err_set("%s: sequence %" PRId64 " has q_start %" PRId64 ", q_len %" PRId64
                           ", kv_len %" PRId64 "; expected rows within [0, %" PRId64
                           ") and q_len <= kv_len <= MP*S = %" PRId64,
                           op, b, q_start, q_len, kv_len, N, MP * S);
        }
        for (int64_t j = 0; j < (kv_len + S - 1) / S; j++) {
            int32_t page = pt[b * MP + j];
            if (page < 0 || page >= P) {
                free(row_seq);
                return err_set("%s: sequence %" PRId64 " page %" PRId64 " is %" PRId32
                               ", outside the pool [0, %" PRId64 ")", op, b, j, page, P);
            }
        }
        for (int64_t n = q_start; n < q_start + q_len; n++) {
            if (row_seq[n] >= 0) {
                int32_t other = row_seq[n];
                free(row_seq);
                return err_set("%s: row %" PRId64 " belongs to sequences %" PRId32 " and %" PRId64,
                               op, n, other, b);
            }
            row_seq[n] = (int32_t)b;
        }
        if (kv_len > max_kv) max_kv = kv_len;
    }
    *row_seq_out = row_seq;
    *max_kv_out = max_kv;
    return 0;
}

int cpu_op_attention_gemm_min_q(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                                const tensor_t *v_pool, const tensor_t *seq_info,
                                const tensor_t *page_table, int64_t gemm_min_q) {
    const char *op = "op_attention";
    if (cpu_require_f32(op, "out", out) || cpu_require_f32(op, "q", q) ||
        cpu_require_f32(op, "k_pool", k_pool) || cpu_require_f32(op, "v_pool", v_pool))
        return -1;
    cpu_blas_init();
    int64_t N = q->shape[0], Hq = q->shape[1], D = q->shape[2];
    int64_t S = k_pool->shape[1], Hkv = k_pool->shape[2];
    int64_t B = seq_info->shape[0], MP = page_table->shape[1];
    const int32_t *si = seq_info->data, *pt = page_table->data;
    int32_t *row_seq;
    int64_t max_kv;
    if (attention_check(q, k_pool, seq_info, page_table, &row_seq, &max_kv)) return -1;

    // GEMM work items (sequence, query head, tile), for sequences with >= gemm_min_q rows
    int64_t n_items = 0, max_gather = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t q_len = si[b * 3 + 1];
        if (q_len >= gemm_min_q && q_len > 0) n_items += Hq * ((q_len + ATT_TILE - 1) / ATT_TILE);
    }
    int64_t *items = malloc((size_t)(n_items > 0 ? n_items : 1) * 3 * sizeof(int64_t)); // (n, 3)
    uint8_t *contig = malloc((size_t)(B > 0 ? B : 1));                                   // (B)
    if (!items || !contig) {
        free(row_seq), free(items), free(contig);
        return err_set("%s: out of memory", op);
    }
    n_items = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t q_len = si[b * 3 + 1], kv_len = si[b * 3 + 2];
        const int32_t *pages = pt + b * MP;
        contig[b] = 1; // pages p, p+1, ...: K/V of one head is a matrix with row stride Hkv * D
        for (int64_t j = 1; j < (kv_len + S - 1) / S; j++) contig[b] &= pages[j] == pages[0] + j;
        if (!(q_len >= gemm_min_q && q_len > 0)) continue;
        if (!contig[b] && kv_len > max_gather) max_gather = kv_len;
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i0 = 0; i0 < q_len; i0 += ATT_TILE) {
                items[n_items * 3] = b, items[n_items * 3 + 1] = h, items[n_items * 3 + 2] = i0;
                n_items++;
            }
    }

    const float *qs = q->data, *kp = k_pool->data, *vp = v_pool->data;
    float *os = out->data;
    const int64_t group = Hq / Hkv;      // query heads per KV head
    const int64_t slot_stride = Hkv * D; // floats per slot
    const float scale = 1.0f / sqrtf((float)D);
    int fail = 0;
#pragma omp parallel if (N * Hq * max_kv * D >= (1 << 16))
    {
        float *scores = malloc((size_t)(max_kv > 0 ? max_kv : 1) * sizeof(float)); // (kv_len)
        float *acc = malloc((size_t)(D > 0 ? D : 1) * sizeof(float));               // (D)
        float *tile = NULL, *kg = NULL, *vg = NULL, *inv = NULL;
        if (n_items) {
            tile = malloc((size_t)(ATT_TILE * (max_kv > 0 ? max_kv : 1)) * sizeof(float)); // (ATT_TILE, kv)
            inv = malloc(ATT_TILE * sizeof(float));                                         // (ATT_TILE)
        }
        if (max_gather) {
            kg = malloc((size_t)(max_gather * D) * sizeof(float)); // (kv_len, D)
            vg = malloc((size_t)(max_gather * D) * sizeof(float)); // (kv_len, D)
        }
        int ok = scores && acc && (!n_items || (tile && inv)) && (!max_gather || (kg && vg));
        if (!ok) {
#pragma omp atomic write
            fail = 1;
        }
        // rows of short sequences (decode), row by row
#pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < N * Hq; item++) {
            if (!ok) continue;
            int64_t n = item / Hq, h = item % Hq;
            float *o = os + (n * Hq + h) * D;
            int32_t b = row_seq[n];
            if (b < 0) { // a row no sequence claims: zeros
                memset(o, 0, (size_t)D * sizeof(float));
                continue;
            }
            int64_t q_start = si[b * 3], q_len = si[b * 3 + 1], kv_len = si[b * 3 + 2];
            if (q_len >= gemm_min_q) continue; // the GEMM loop below
            int64_t last = kv_len - q_len + (n - q_start); // this query's position; sees 0..last
            attention_row(o, qs + (n * Hq + h) * D, kp, vp, pt + (int64_t)b * MP, S, slot_stride,
                          h / group, D, last, scale, scores, acc);
        }
        // tiles of long sequences (prefill), on OpenBLAS
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < n_items; it++) {
            if (!ok) continue;
            const int64_t b = items[it * 3], h = items[it * 3 + 1], i0 = items[it * 3 + 2];
            const int64_t q_start = si[b * 3], q_len = si[b * 3 + 1], kv_len = si[b * 3 + 2];
            const int64_t rows = q_len - i0 < ATT_TILE ? q_len - i0 : ATT_TILE;
            const int64_t first = kv_len - q_len + i0; // position of the tile's first query
            const int64_t nk = first + rows;           // keys 0..nk-1 cover the whole tile
            const int32_t *pages = pt + b * MP;
            const int64_t kvh = h / group;
            const float *kb, *vb; // (nk, D) with row stride ld
            int64_t ld;
            if (contig[b]) {
                kb = kp + (int64_t)pages[0] * S * slot_stride + kvh * D;
                vb = vp + (int64_t)pages[0] * S * slot_stride + kvh * D;
                ld = slot_stride;
            } else {
                for (int64_t t = 0; t < nk; t++) {
                    int64_t slot = (int64_t)pages[t / S] * S + t % S;
                    memcpy(kg + t * D, kp + slot * slot_stride + kvh * D, (size_t)D * sizeof(float));
                    memcpy(vg + t * D, vp + slot * slot_stride + kvh * D, (size_t)D * sizeof(float));
                }
                kb = kg, vb = vg, ld = D;
            }
            const float *qt = qs + ((q_start + i0) * Hq + h) * D; // (rows, D), row stride Hq * D
            float *ot = os + ((q_start + i0) * Hq + h) * D;
            // S (rows, nk) = Q K^T * scale; P = softmax over keys 0..first + r of row r
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nk, (int)D, scale,
                        qt, (int)(Hq * D), kb, (int)ld, 0.0f, tile, (int)nk);
            for (int64_t r = 0; r < rows; r++) inv[r] = attention_softmax_row(tile + r * nk, first + r, nk);
            // O (rows, D) = P V, then each row / its sum
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)nk, 1.0f,
                        tile, (int)nk, vb, (int)ld, 0.0f, ot, (int)(Hq * D));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t d = 0; d < D; d++) ot[r * Hq * D + d] *= inv[r];
        }
        free(scores), free(acc), free(tile), free(inv), free(kg), free(vg);
    }
    free(row_seq), free(items), free(contig);
    if (fail) return err_set("%s: out of memory for scratch (%" PRId64 " keys)", op, max_kv);
    return 0;
}

int cpu_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                     const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table) {
    return cpu_op_attention_gemm_min_q(out, q, k_pool, v_pool, seq_info, page_table,
                                       CPU_ATTENTION_GEMM_MIN_Q);
}

int cpu_op_attention_ref(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                         const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table) {
    return cpu_op_attention_gemm_min_q(out, q, k_pool, v_pool, seq_info, page_table, INT64_MAX);
}
