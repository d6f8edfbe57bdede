// attention.cu: causal GQA attention over the paged KV cache (see op_attention in kernels.h).
//
// Straightforward first version, correct before fast: one block per (query row n, query head h).
// The block's warps split the visible key positions round-robin; a warp computes one score at a
// time (lanes split the head dim, warp_sum reduces) and keeps its own online-softmax state and
// output accumulator (lane holds dims lane, lane + 32, ...). At the end the warps' partial states
// are merged through shared memory. A flash-style tiled kernel replaces this later.
//
// A first kernel validates seq_info and the page table (one thread per sequence) into the device
// error record; the main kernel does nothing when it is set, so bad indices are never followed.
// As on the CPU backend, a row that no sequence claims gets zeros.
#include "kernels/cuda/common.cuh"

#define ATT_WARPS 4                   // warps per block
#define ATT_MAX_D 256                 // largest head dim
#define ATT_PER_LANE (ATT_MAX_D / 32) // accumulator entries per lane

// which seq_info field a CUDA_ERR_SEQ record names
enum { SEQ_Q_START = 0, SEQ_Q_LEN = 1, SEQ_KV_LEN = 2 };

// seq_info (B, 3): q_start, q_len, kv_len; page_table (B, MP): pages in [0, P)
static __global__ void attention_check_kernel(const int32_t *seq_info, int B,
                                              const int32_t *page_table, int MP, int P, int S,
                                              int N, int *err) {
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < B; b += gridDim.x * blockDim.x) {
        int q_start = seq_info[3 * b], q_len = seq_info[3 * b + 1], kv_len = seq_info[3 * b + 2];
        if (q_start < 0 || q_start > N) {
            record_error(err, CUDA_ERR_SEQ, b, SEQ_Q_START, q_start);
            continue;
        }
        if (q_len < 0 || q_len > N - q_start) {
            record_error(err, CUDA_ERR_SEQ, b, SEQ_Q_LEN, q_len);
            continue;
        }
        if (q_len == 0) continue; // no rows: nothing is read
        if (kv_len < q_len || kv_len > (int64_t)MP * S) {
            record_error(err, CUDA_ERR_SEQ, b, SEQ_KV_LEN, kv_len);
            continue;
        }
        for (int c = 0; c < (kv_len + S - 1) / S; c++) {
            int page = page_table[(int64_t)b * MP + c];
            if (page < 0 || page >= P) {
                record_error(err, CUDA_ERR_PAGE, b, c, page);
                break;
            }
        }
        for (int o = 0; o < b; o++) { // query rows belong to one sequence only
            int o_start = seq_info[3 * o], o_len = seq_info[3 * o + 1];
            if (o_len > 0 && o_start < q_start + q_len && q_start < o_start + o_len) {
                record_error(err, CUDA_ERR_OVERLAP, b, o, 0);
                break;
            }
        }
    }
}

// out, q (N, Hq, D); k/v pools (P, S, Hkv, D); grid (N, Hq), ATT_WARPS * 32 threads
static __global__ void attention_kernel(void *out, dtype_t odt, const void *q, dtype_t qdt,
                                        const void *kp, const void *vp, dtype_t kvdt,
                                        const int32_t *seq_info, int B, const int32_t *page_table,
                                        int MP, int S, int Hq, int Hkv, int D, float scale,
                                        const int *err) {
    if (err[0] != CUDA_ERR_NONE) return; // the check kernel found bad indices
    int64_t n = blockIdx.x;
    int h = blockIdx.y;

    // the sequence holding row n, and the position of row n in it (uniform over the block)
    int b = -1, pos = 0;
    for (int s = 0; s < B; s++) {
        int q_start = seq_info[3 * s], q_len = seq_info[3 * s + 1];
        if (n >= q_start && n < q_start + q_len) {
            b = s;
            pos = seq_info[3 * s + 2] - q_len + (int)(n - q_start);
            break;
        }
    }
    if (b < 0) { // a row of no sequence: zeros
        for (int d = threadIdx.x; d < D; d += blockDim.x)
            store_f32(out, odt, (n * Hq + h) * D + d, 0.0f);
        return;
    }
    int kvh = h / (Hq / Hkv);
    const int32_t *pages = page_table + (int64_t)b * MP;

    __shared__ float qs[ATT_MAX_D]; // (D) this query row
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        qs[d] = load_f32(q, qdt, (n * Hq + h) * D + d);
    __syncthreads();

    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float acc[ATT_PER_LANE]; // dims lane + 32 t
#pragma unroll
    for (int t = 0; t < ATT_PER_LANE; t++)
        acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = warp; j <= pos; j += ATT_WARPS) { // key positions 0..pos, round-robin over warps
        int64_t row = (((int64_t)pages[j / S] * S + j % S) * Hkv + kvh) * D;
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_PER_LANE; t++) {
            int d = lane + 32 * t;
            if (d < D) dot += qs[d] * load_f32(kp, kvdt, row + d);
        }
        rowops_attn_step_t st = rowops_attn_step(&m, &l, warp_sum(dot) * scale);
#pragma unroll
        for (int t = 0; t < ATT_PER_LANE; t++) {
            int d = lane + 32 * t;
            if (d < D) acc[t] = acc[t] * st.corr + st.p * load_f32(vp, kvdt, row + d);
        }
    }

    // merge the warps' partial states
    __shared__ float wm[ATT_WARPS], wl[ATT_WARPS];
    __shared__ float wacc[ATT_WARPS][ATT_MAX_D];
    if (lane == 0) {
        wm[warp] = m;
        wl[warp] = l;
    }
#pragma unroll
    for (int t = 0; t < ATT_PER_LANE; t++) {
        int d = lane + 32 * t;
        if (d < D) wacc[warp][d] = acc[t];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < ATT_WARPS; w++)
        M = fmaxf(M, wm[w]);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        L += wl[w] * rowops_attn_rescale(wm[w], M);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            o += wacc[w][d] * rowops_attn_rescale(wm[w], M);
        store_f32(out, odt, (n * Hq + h) * D + d, o / L);
    }
}

extern "C" int cuda_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                                 const tensor_t *v_pool, const tensor_t *seq_info,
                                 const tensor_t *page_table) {
    if (cuda_check_float("attention", "out", out->dtype) ||
        cuda_check_float("attention", "q", q->dtype) ||
        cuda_check_float("attention", "k_pool", k_pool->dtype) ||
        cuda_check_i32("attention", "seq_info", seq_info) ||
        cuda_check_i32("attention", "page_table", page_table))
        return -1;
    if (v_pool->dtype != k_pool->dtype)
        return err_set("cuda attention: expected v_pool in the dtype of k_pool (%s), found %s",
                       dtype_name(k_pool->dtype), dtype_name(v_pool->dtype));
    if (k_pool->ndim != 4 || page_table->ndim != 2 || seq_info->ndim != 2)
        return err_set("cuda attention: expected k_pool (P, S, Hkv, D), page_table (B, MP), "
                       "seq_info (B, 3); found %d, %d and %d dims",
                       k_pool->ndim, page_table->ndim, seq_info->ndim);
    int64_t P = k_pool->shape[0], S = k_pool->shape[1], Hkv = k_pool->shape[2];
    int64_t D = k_pool->shape[3], N = q->shape[0];
    int64_t B = seq_info->shape[0], MP = page_table->shape[1];
    int64_t Hq = N > 0 && D > 0 ? tensor_numel(q) / (N * D) : 0;
    if (N == 0 || B == 0 || Hq == 0) return 0;
    if (D > ATT_MAX_D)
        return err_set("cuda attention: head dim %lld is above the kernel's maximum %d",
                       (long long)D, ATT_MAX_D);
    if (Hkv <= 0 || Hq % Hkv != 0)
        return err_set("cuda attention: %lld query heads are not a multiple of %lld KV heads",
                       (long long)Hq, (long long)Hkv);
    if (N > INT32_MAX || P > INT32_MAX || S <= 0 || B * MP > INT32_MAX || Hq > 65535 ||
        P * S > INT32_MAX)
        return err_set("cuda attention: sizes N=%lld P=%lld S=%lld B=%lld MP=%lld Hq=%lld exceed "
                       "the kernel's int range",
                       (long long)N, (long long)P, (long long)S, (long long)B, (long long)MP,
                       (long long)Hq);

    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    const int32_t *si = (const int32_t *)seq_info->data, *pt = (const int32_t *)page_table->data;
    attention_check_kernel<<<cuda_blocks(B), CUDA_THREADS>>>(si, (int)B, pt, (int)MP, (int)P,
                                                             (int)S, (int)N, err);
    CUDA_CHECK_LAUNCH();
    float scale = 1.0f / sqrtf((float)D);
    dim3 grid((unsigned)N, (unsigned)Hq);
    attention_kernel<<<grid, ATT_WARPS * 32>>>(
        out->data, out->dtype, q->data, q->dtype, k_pool->data, v_pool->data, k_pool->dtype, si,
        (int)B, pt, (int)MP, (int)S, (int)Hq, (int)Hkv, (int)D, scale, err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == CUDA_ERR_SEQ) {
        static const char *field[] = {"q_start", "q_len", "kv_len"};
        return err_set("cuda attention: seq_info[%d].%s = %d is out of range (N=%lld rows, at most "
                       "%lld KV positions per sequence, kv_len >= q_len)",
                       rec[1], field[rec[2]], rec[3], (long long)N, (long long)(MP * S));
    }
    if (rec[0] == CUDA_ERR_OVERLAP)
        return err_set("cuda attention: sequences %d and %d claim the same query rows", rec[2],
                       rec[1]);
    if (rec[0] == CUDA_ERR_PAGE)
        return err_set(
            "cuda attention: page_table[%d][%d] = %d is outside the pool's pages [0, %lld)", rec[1],
            rec[2], rec[3], (long long)P);
    return 0;
}
