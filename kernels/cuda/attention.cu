// attention.cu: causal GQA attention over the paged KV cache (see op_attention in kernels.h).
//
// Two kernels compute the same thing:
// - attention_kernel (decode, or batches of short query runs): one block per (query row n, query
//   head h). The block's warps split the visible key positions round-robin; a warp computes one
//   score at a time (lanes split the head dim, warp_sum reduces) and keeps its own online-softmax
//   state and output accumulator (lane holds dims lane, lane + 32, ...); at the end the warps'
//   partial states are merged through shared memory.
// - attention_flash_kernel (prefill: on average >= FLASH_MIN_ROWS query rows per sequence, head dim
//   <= FLASH_MAX_D): flash-style tiling. One block per (tile of FLASH_BQ consecutive query rows,
//   query head). The tile's rows are loaded into shared memory once; then key/value tiles of
//   FLASH_BK positions are gathered from the paged pools into shared memory and shared by all the
//   tile's rows, and each row keeps an online softmax (running max, sum, output accumulator in
//   registers), so the (rows x keys) score matrix never exists. Each warp owns FLASH_BQ / 4 rows;
//   within a key tile, lane j scores key j (dot product over D from shared memory, rows padded by
//   one float so the 32 lanes hit 32 banks), then the warp's rows accumulate p_j * v_j with p_j
//   broadcast by shuffle and lanes splitting the head dim. A tile may straddle sequences: it walks
//   the sequences that claim some of its rows, each with its own causal key range.
//
// A first kernel validates seq_info and the page table (one thread per sequence) into the device
// error record; the main kernel does nothing when it is set, so bad indices are never followed.
// As on the CPU backend, a row that no sequence claims gets zeros.
#include <stdlib.h>
#include <string.h>

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

// ---- flash-style prefill ----

#define FLASH_BQ 32       // query rows per block
#define FLASH_BK 32       // key positions per shared-memory tile (= one per lane)
#define FLASH_WARPS 4     // warps per block
#define FLASH_RPW (FLASH_BQ / FLASH_WARPS) // query rows per warp
#define FLASH_MAX_D 128   // largest head dim of this kernel (4 accumulator entries per lane)
#define FLASH_MIN_ROWS 8  // use it when N / B >= this (prefill-like batches)

// dynamic shared memory: q tile (BQ, D + 1), k tile (BK, D + 1), v tile (BK, D), as F32
static size_t flash_smem_bytes(int D) {
    return ((size_t)FLASH_BQ * (D + 1) + (size_t)FLASH_BK * (D + 1) + (size_t)FLASH_BK * D) *
           sizeof(float);
}

// out, q (N, Hq, D); k/v pools (P, S, Hkv, D); grid (ceil(N / BQ), Hq), FLASH_WARPS * 32 threads
static __global__ void attention_flash_kernel(void *out, dtype_t odt, const void *q, dtype_t qdt,
                                              const void *kp, const void *vp, dtype_t kvdt,
                                              const int32_t *seq_info, int B,
                                              const int32_t *page_table, int MP, int S, int Hq,
                                              int Hkv, int D, int N, float scale, const int *err) {
    if (err[0] != CUDA_ERR_NONE) return;
    extern __shared__ float smem[];
    const int ld = D + 1;
    float *qs = smem;                  // (BQ, ld) query rows, pre-scaled by 1/sqrt(D)
    float *ks = qs + FLASH_BQ * ld;    // (BK, ld) keys of the current tile
    float *vs = ks + FLASH_BK * ld;    // (BK, D) values of the current tile
    const int n0 = blockIdx.x * FLASH_BQ, h = blockIdx.y, kvh = h / (Hq / Hkv);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int i = threadIdx.x; i < FLASH_BQ * D; i += blockDim.x) {
        int r = i / D, d = i % D;
        int64_t n = n0 + r;
        qs[r * ld + d] = n < N ? load_f32(q, qdt, (n * Hq + h) * D + d) * scale : 0.0f;
    }

    float acc[FLASH_RPW][FLASH_MAX_D / 32], m[FLASH_RPW], l[FLASH_RPW];
    int claimed[FLASH_RPW]; // row claimed by a sequence (else its output is zeros)
#pragma unroll
    for (int rr = 0; rr < FLASH_RPW; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
        claimed[rr] = 0;
#pragma unroll
        for (int t = 0; t < FLASH_MAX_D / 32; t++)
            acc[rr][t] = 0.0f;
    }

    for (int b = 0; b < B; b++) { // the sequences claiming rows of this tile (block-uniform)
        int q_start = seq_info[3 * b], q_len = seq_info[3 * b + 1], kv_len = seq_info[3 * b + 2];
        int r0 = max(q_start, n0), r1 = min(q_start + q_len, n0 + FLASH_BQ);
        if (r0 >= r1) continue;
        const int32_t *pages = page_table + (int64_t)b * MP;
        int first = kv_len - q_len;        // position of the sequence's row q_start
        int last_pos = first + (r1 - 1 - q_start); // the last key any of these rows sees
        for (int j0 = 0; j0 <= last_pos; j0 += FLASH_BK) {
            __syncthreads(); // the previous tile (and the q tile at first) is complete / consumed
            for (int i = threadIdx.x; i < FLASH_BK * D; i += blockDim.x) {
                int j = i / D, d = i % D, pos = j0 + j;
                float kx = 0.0f, vx = 0.0f;
                if (pos <= last_pos) {
                    int64_t row = (((int64_t)pages[pos / S] * S + pos % S) * Hkv + kvh) * D + d;
                    kx = load_f32(kp, kvdt, row);
                    vx = load_f32(vp, kvdt, row);
                }
                ks[j * ld + d] = kx;
                vs[j * D + d] = vx;
            }
            __syncthreads();
#pragma unroll
            for (int rr = 0; rr < FLASH_RPW; rr++) {
                int r = warp * FLASH_RPW + rr, n = n0 + r;
                if (n < r0 || n >= r1) continue; // warp-uniform
                int pos = first + (n - q_start);
                if (j0 > pos) continue; // this row sees none of the tile's keys
                claimed[rr] = 1;
                int j = j0 + lane;
                float sc = -INFINITY;
                if (j <= pos) {
                    float dot = 0.0f;
                    for (int d = 0; d < D; d++)
                        dot += qs[r * ld + d] * ks[lane * ld + d];
                    sc = dot;
                }
                float m_new = fmaxf(m[rr], warp_max(sc)); // finite: key j0 <= pos is visible
                float p = j <= pos ? expf(sc - m_new) : 0.0f;
                float corr = expf(m[rr] - m_new); // m = -inf: 0
                l[rr] = l[rr] * corr + warp_sum(p);
                m[rr] = m_new;
                int nk = min(FLASH_BK, pos - j0 + 1);
#pragma unroll
                for (int t = 0; t < FLASH_MAX_D / 32; t++)
                    acc[rr][t] *= corr;
                for (int jj = 0; jj < nk; jj++) {
                    float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                    for (int t = 0; t < FLASH_MAX_D / 32; t++) {
                        int d = lane + 32 * t;
                        if (d < D) acc[rr][t] += pj * vs[jj * D + d];
                    }
                }
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < FLASH_RPW; rr++) {
        int64_t n = n0 + warp * FLASH_RPW + rr;
        if (n >= N) continue;
        float inv = claimed[rr] ? 1.0f / l[rr] : 0.0f;
#pragma unroll
        for (int t = 0; t < FLASH_MAX_D / 32; t++) {
            int d = lane + 32 * t;
            if (d < D) store_f32(out, odt, (n * Hq + h) * D + d, acc[rr][t] * inv);
        }
    }
}

// 1 when op_attention should use the flash kernel for this batch
static int attention_use_flash(int64_t N, int64_t B, int64_t D) {
    const char *force = getenv("TRUSTEE_CUDA_ATTENTION"); // "flash" / "rows": tests and benches
    if (force && strcmp(force, "rows") == 0) return 0;
    if (D > FLASH_MAX_D) return 0;
    if (force && strcmp(force, "flash") == 0) return 1;
    return N >= FLASH_MIN_ROWS * B;
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
    if (attention_use_flash(N, B, D)) {
        size_t smem = flash_smem_bytes((int)D);
        static int smem_set = 0; // above 48 KiB a kernel must opt in, once per process
        if (!smem_set) {
            CUDA_CHECK(cudaFuncSetAttribute(attention_flash_kernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)flash_smem_bytes(FLASH_MAX_D)));
            smem_set = 1;
        }
        dim3 grid((unsigned)((N + FLASH_BQ - 1) / FLASH_BQ), (unsigned)Hq);
        attention_flash_kernel<<<grid, FLASH_WARPS * 32, smem>>>(
            out->data, out->dtype, q->data, q->dtype, k_pool->data, v_pool->data, k_pool->dtype,
            si, (int)B, pt, (int)MP, (int)S, (int)Hq, (int)Hkv, (int)D, (int)N, scale, err);
    } else {
        dim3 grid((unsigned)N, (unsigned)Hq);
        attention_kernel<<<grid, ATT_WARPS * 32>>>(
            out->data, out->dtype, q->data, q->dtype, k_pool->data, v_pool->data, k_pool->dtype,
            si, (int)B, pt, (int)MP, (int)S, (int)Hq, (int)Hkv, (int)D, scale, err);
    }
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
