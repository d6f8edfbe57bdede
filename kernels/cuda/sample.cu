// sample.cu: next-token sampling, one block per row of logits (sample.h).
//
// The CPU sampler orders candidates by (e descending, id ascending) and walks cumulative sums in
// that order. Here an element's position in that order is found without sorting: the set of
// elements "before or at" a candidate is a cut {e > tau} + {e == tau, id <= cut id}, and the
// first element whose inclusive cumulative sum satisfies a condition (>= need, or > target) is
// found by bisection over the float bits of tau (each probe: one pass summing e over the
// elements at or above it), then by walking the ties at tau in id order. The same search with
// weight 1 per element finds the k-th element (top-k).
#include <limits.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/sample.h"
#include "kernels/cuda/sampler_rng.h"

#define SAMPLE_THREADS 512          // threads per row (the shared arrays below are sized by it)
#define SAMPLE_ERR_NONFINITE 100    // device error record code: a row with no finite maximum

// model/sampler.c's exp_nonpos (e^x for x <= 0), every product and sum rounded on its own as the
// CPU computes it (no FMA), so both backends get identical values
static __device__ __forceinline__ float sample_exp_nonpos(float x) {
    x = x > -87.0f ? x : -87.0f;
    float k = __fsub_rn(__fadd_rn(__fmul_rn(x, 1.44269504f), 12582912.0f), 12582912.0f);
    float r = __fsub_rn(__fsub_rn(x, __fmul_rn(k, 0.693145752f)), __fmul_rn(k, 1.42860677e-06f));
    float p = __fadd_rn(0.00833333377f, __fmul_rn(r, 0.00138888892f));
    p = __fadd_rn(0.0416666679f, __fmul_rn(r, p));
    p = __fadd_rn(0.166666672f, __fmul_rn(r, p));
    p = __fadd_rn(0.5f, __fmul_rn(r, p));
    p = __fadd_rn(1.0f, __fmul_rn(r, p));
    p = __fadd_rn(1.0f, __fmul_rn(r, p));
    return __fmul_rn(p, __int_as_float(((int)k + 127) << 23));
}

typedef struct {
    const float *x; // (V) the row's logits
    int V;
    float m;     // the row's max
    float inv_t; // 1 / temperature (1 for greedy)
} sample_row_t;

// e_i = e^((x_i - max) * inv_t), as row_exp in model/sampler.c
static __device__ __forceinline__ float row_e(const sample_row_t &r, int i) {
    return sample_exp_nonpos(__fmul_rn(__fsub_rn(r.x[i], r.m), r.inv_t));
}

// a prefix of the order (e desc, id asc): the elements with e > tau, and those with e == tau and
// id <= id. The whole row: tau = -1 (every e is positive).
typedef struct {
    float tau;
    int id;
} sample_cut_t;

static __device__ __forceinline__ bool in_cut(sample_cut_t c, float e, int i) {
    return e > c.tau || (e == c.tau && i <= c.id);
}

// ---- block reductions (every thread gets the result; the summation order is fixed) ----

// max keeping the left operand unless the right one is larger (a NaN on the left stays)
struct reduce_max_keep {
    __device__ float operator()(float a, float b) const { return b > a ? b : a; }
};

static __device__ float block_max_f32(float x) {
    return block_reduce(x, -INFINITY, reduce_max_keep());
}

struct reduce_min_i32 {
    __device__ int operator()(int a, int b) const { return min(a, b); }
};

static __device__ int block_min_i32(int x) { return block_reduce(x, INT_MAX, reduce_min_i32()); }

// sum over the elements of `set` whose e has float bits >= T of e (count: of 1)
static __device__ double mass_from(const sample_row_t &r, sample_cut_t set, uint32_t T, bool count) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < r.V; i += blockDim.x) {
        float e = row_e(r, i);
        if (__float_as_uint(e) >= T && in_cut(set, e, i)) acc += count ? 1.0 : (double)e;
    }
    return block_sum_f64(acc);
}

static __device__ __forceinline__ bool cond_met(double s, bool strict, double goal) {
    return strict ? s > goal : s >= goal;
}

// The first element of `set`, in the order (e desc, id asc), whose inclusive cumulative sum of e
// (count: of 1) is > goal (strict) or >= goal. Returns 1 and the element as a cut (the prefix
// ending with it), or 0 when even the whole set does not get there.
static __device__ int find_first(const sample_row_t &r, sample_cut_t set, bool count, bool strict,
                                 double goal, sample_cut_t *found) {
    __shared__ int cnt[SAMPLE_THREADS];
    __shared__ int pick_j, pick_id;
    if (cond_met(0.0, strict, goal)) { // already met before any element: the first element
        count = true;
        strict = false;
        goal = 1.0;
    }
    if (!cond_met(mass_from(r, set, 0u, count), strict, goal)) return 0;
    // the largest bit pattern T whose "at or above T" sum meets the condition; T + 1 does not, so
    // some element of the set has exactly the value T: that value is tau
    uint32_t lo = 0u, hi = 0x7f800001u;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cond_met(mass_from(r, set, mid, count), strict, goal))
            lo = mid;
        else
            hi = mid;
    }
    const float tau = __uint_as_float(lo);
    const double above = mass_from(r, set, lo + 1u, count), w = count ? 1.0 : (double)tau;

    // the ties at tau in id order: each thread counts those of its contiguous chunk of ids
    const int chunk = (r.V + blockDim.x - 1) / blockDim.x;
    const int b0 = min((int)threadIdx.x * chunk, r.V), b1 = min(b0 + chunk, r.V);
    int c = 0;
    for (int i = b0; i < b1; i++) {
        float e = row_e(r, i);
        c += e == tau && in_cut(set, e, i);
    }
    __syncthreads(); // cnt / pick_* may still be read by a previous call
    cnt[threadIdx.x] = c;
    __syncthreads();
    if (threadIdx.x == 0) {
        int nt = 0;
        for (int t = 0; t < (int)blockDim.x; t++) { // exclusive scan
            int v = cnt[t];
            cnt[t] = nt;
            nt += v;
        }
        // the CPU adds the ties one by one after the elements above them: the first tie whose
        // cumulative sum meets the condition (the last one if rounding says none does)
        double cum = above;
        int j = nt;
        for (int k = 1; k <= nt; k++) {
            cum += w;
            if (cond_met(cum, strict, goal)) {
                j = k;
                break;
            }
        }
        pick_j = j - 1; // 0-based rank among the ties
        pick_id = -1;
    }
    __syncthreads();
    const int j = pick_j, before = cnt[threadIdx.x];
    if (j >= before && j < before + c) {
        int k = before;
        for (int i = b0; i < b1; i++) {
            float e = row_e(r, i);
            if (e == tau && in_cut(set, e, i) && k++ == j) {
                pick_id = i;
                break;
            }
        }
    }
    __syncthreads();
    found->tau = tau;
    found->id = pick_id;
    return pick_id >= 0; // >= 0 always (nt >= 1); guards the caller anyway
}

// the draw without truncation: the first id (in id order) whose cumulative e exceeds target;
// best when rounding left the target past the end
static __device__ int walk_ids(const sample_row_t &r, double target, int best) {
    __shared__ double pre[SAMPLE_THREADS];
    __shared__ int found;
    const int chunk = (r.V + blockDim.x - 1) / blockDim.x;
    const int b0 = min((int)threadIdx.x * chunk, r.V), b1 = min(b0 + chunk, r.V);
    double s = 0.0;
    for (int i = b0; i < b1; i++) s += row_e(r, i);
    __syncthreads();
    pre[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double c = 0.0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            double v = pre[t];
            pre[t] = c;
            c += v;
        }
        found = INT_MAX;
    }
    __syncthreads();
    double cum = pre[threadIdx.x];
    if (cum <= target) // chunks wholly before the crossing cannot hold it; nor can those after
        for (int i = b0; i < b1; i++)
            if ((cum += row_e(r, i)) > target) {
                atomicMin(&found, i);
                break;
            }
    __syncthreads();
    return found == INT_MAX ? best : found;
}

static __global__ void sample_kernel(int32_t *tokens, float *logprobs, const float *logits, int V,
                                     cuda_sample_params_t p, const uint64_t *streams,
                                     const uint64_t *steps, int *err) {
    const int b = blockIdx.x;
    const float *x = logits + (int64_t)b * V;
    // the max (NaN entries ignored, as row_max), then the lowest id holding it
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) m = x[i] > m ? x[i] : m;
    m = block_max_f32(m);
    if (!isfinite(m)) { // uniform: every thread has the same m
        if (threadIdx.x == 0) {
            record_error(err, SAMPLE_ERR_NONFINITE, b, 0, 0);
            tokens[b] = -1;
            logprobs[b] = NAN;
        }
        return;
    }
    int best = INT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        if (x[i] == m) {
            best = i;
            break;
        }
    best = block_min_i32(best);

    const bool greedy = p.temperature == 0.0f;
    sample_row_t r;
    r.x = x;
    r.V = V;
    r.m = m;
    r.inv_t = greedy ? 1.0f : __fdiv_rn(1.0f, p.temperature);
    double total = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) total += row_e(r, i);
    total = block_sum_f64(total);

    int tok;
    if (greedy) {
        tok = best;
    } else {
        const double u = sampler_rng_uniform(p.seed, streams[b], steps[b]);
        const int top_k = p.top_k > 0 && p.top_k < V ? p.top_k : 0;
        const bool top_p = p.top_p < 1.0f;
        if (!top_k && !top_p) {
            tok = walk_ids(r, u * total, best);
        } else {
            sample_cut_t set = {-1.0f, 0}, f;
            double mass = total;
            if (top_k) { // the k best (by count); their mass renormalizes
                if (find_first(r, set, true, false, (double)top_k, &f)) set = f;
                mass = mass_from(r, set, 0u, false);
            }
            sample_cut_t keep = set;
            if (top_p && find_first(r, set, false, false, (double)p.top_p * mass, &f)) keep = f;
            const double kept = mass_from(r, keep, 0u, false);
            if (find_first(r, keep, false, true, u * kept, &f)) {
                tok = f.id;
            } else { // rounding left the target past the end: the last kept element
                double n_keep = mass_from(r, keep, 0u, true);
                tok = find_first(r, keep, true, false, n_keep, &f) ? f.id : best;
            }
        }
    }
    if (threadIdx.x == 0) {
        tokens[b] = tok;
        logprobs[b] = (float)((double)__fmul_rn(__fsub_rn(x[tok], m), r.inv_t) - log(total));
    }
}

extern "C" int cuda_sample(int32_t *tokens, float *logprobs, const float *logits, int B, int V,
                           const cuda_sample_params_t *p, const uint64_t *streams,
                           const uint64_t *steps) {
    if (!(p->temperature >= 0) || isinf(p->temperature))
        return err_set("cuda sample: temperature must be a number >= 0, found %g", p->temperature);
    if (p->top_k < 0) return err_set("cuda sample: top-k must be >= 0 (0: off), found %d", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return err_set("cuda sample: top-p must be in (0, 1] (1: off), found %g", p->top_p);
    if (V <= 0 || B < 0) return err_set("cuda sample: bad shape (%d, %d)", B, V);
    if (B == 0) return 0;
    int *err, rec[4];
    if (cuda_errrec_reset(&err)) return -1;
    sample_kernel<<<(unsigned)B, SAMPLE_THREADS>>>(tokens, logprobs, logits, V, *p, streams, steps,
                                                   err);
    CUDA_CHECK_LAUNCH();
    if (cuda_errrec_read(rec)) return -1;
    if (rec[0] == SAMPLE_ERR_NONFINITE)
        return err_set("cuda sample: row %d: the logits hold no finite maximum (NaN or inf)", rec[1]);
    if (rec[0] != 0) return err_set("cuda sample: device error record %d", rec[0]);
    return 0;
}
