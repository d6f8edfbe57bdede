// Paged KV cache store and causal GQA attention on the CPU.
//
//   k_pool, v_pool (P, S, Hkv, D)   slot = page * S + offset; one slot holds Hkv * D floats
//   q, out         (N, Hq, D)      packed rows of B sequences
//   seq_info       I32 (B, 3)      q_start, q_len, kv_len
//   page_table     I32 (B, MP)
// Work is split over (row, query head) pairs; each pair is computed by one thread start to end, so
// the result does not depend on the thread count or on which other sequences share the batch.
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

int cpu_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                     const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table) {
    const char *op = "op_attention";
    if (cpu_require_f32(op, "out", out) || cpu_require_f32(op, "q", q) ||
        cpu_require_f32(op, "k_pool", k_pool) || cpu_require_f32(op, "v_pool", v_pool))
        return -1;
    int64_t N = q->shape[0], Hq = q->shape[1], D = q->shape[2];
    int64_t P = k_pool->shape[0], S = k_pool->shape[1], Hkv = k_pool->shape[2];
    int64_t B = seq_info->shape[0], MP = page_table->shape[1];
    const int32_t *si = seq_info->data, *pt = page_table->data;

    // check every index before touching memory; map each row to its sequence
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

    const float *qs = q->data, *kp = k_pool->data, *vp = v_pool->data;
    float *os = out->data;
    const int64_t group = Hq / Hkv;           // query heads per KV head
    const int64_t slot_stride = Hkv * D;      // floats per slot
    const float scale = 1.0f / sqrtf((float)D);
    int fail = 0;
#pragma omp parallel if (N * Hq * max_kv * D >= (1 << 16))
    {
        float *scores = malloc((size_t)(max_kv > 0 ? max_kv : 1) * sizeof(float)); // (kv_len)
        float *acc = malloc((size_t)(D > 0 ? D : 1) * sizeof(float));               // (D)
        if (!scores || !acc) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < N * Hq; item++) {
            if (!scores || !acc) continue;
            int64_t n = item / Hq, h = item % Hq;
            float *o = os + (n * Hq + h) * D;
            int32_t b = row_seq[n];
            if (b < 0) { // a row no sequence claims: zeros
                memset(o, 0, (size_t)D * sizeof(float));
                continue;
            }
            int64_t q_start = si[b * 3], q_len = si[b * 3 + 1], kv_len = si[b * 3 + 2];
            int64_t last = kv_len - q_len + (n - q_start); // this query's position; sees 0..last
            const float *qv = qs + (n * Hq + h) * D;
            const int32_t *pages = pt + (int64_t)b * MP;
            int64_t kvh = h / group;
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
        free(scores);
        free(acc);
    }
    free(row_seq);
    if (fail) return err_set("%s: out of memory for scratch (%" PRId64 " scores)", op, max_kv);
    return 0;
}
