// gemm.cu: cuBLASLt GEMMs with a per-shape plan cache (see gemm.h).
//
// A plan is everything cublasLtMatmul needs besides the pointers: the operation descriptor
// (compute type, transposes), the three layouts and the algorithm the heuristic picked for the
// shape with our workspace and the pointers' alignment (the heuristic otherwise assumes 256-byte
// aligned buffers, and a view into a tensor at a row offset may be aligned less: the alignment of
// each pointer, capped at 256, is part of the plan's key). Plans live in a small table keyed by the shape; when it is full, the
// oldest is destroyed (round robin). The workspace (GEMM_WORKSPACE bytes) is allocated once.
// When the heuristic has no algorithm for a shape (should not happen for these dtypes), the call
// falls back to cublasGemmEx, which also computes in F32; so does a call cuBLASLt refuses as not
// supported.
#include <cublasLt.h>
#include <stdint.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"

#define GEMM_PLANS 128                       // cached shapes
#define GEMM_WORKSPACE (32u * 1024u * 1024u) // cuBLASLt workspace, bytes (Hopper wants 32 MiB)

#define CUBLASLT_CHECK(stmt) CUBLAS_CHECK(stmt) // cuBLASLt reports cublasStatus_t as well

typedef struct {
    int used;
    int ta, tb, m, n, k, lda, ldb, ldd;
    dtype_t ab, dd;
    int beta_zero; // the heuristic may choose differently when D is read
    int align_a, align_b, align_d; // bytes: the largest power of two <= 256 dividing the pointer
    int has_algo;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} gemm_plan_t;

static cublasLtHandle_t g_lt;
static void *g_ws;
static gemm_plan_t g_plans[GEMM_PLANS];
static int g_next; // the slot the next new plan takes
static long g_built, g_hits;

static cudaDataType_t gemm_type(dtype_t dt) {
    switch (dt) {
    case DTYPE_BF16: return CUDA_R_16BF;
    case DTYPE_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

static void gemm_plan_destroy(gemm_plan_t *p) {
    if (!p->used) return;
    cublasLtMatrixLayoutDestroy(p->la);
    cublasLtMatrixLayoutDestroy(p->lb);
    cublasLtMatrixLayoutDestroy(p->ld);
    cublasLtMatmulDescDestroy(p->op);
    p->used = 0;
}

static int gemm_plan_build(gemm_plan_t *p) {
    cublasOperation_t ta = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    // stored shapes: A is (m, k) or, transposed, (k, m); B is (k, n) or (n, k)
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->la, gemm_type(p->ab), p->ta ? p->k : p->m,
                                              p->ta ? p->m : p->k, p->lda));
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, gemm_type(p->ab), p->tb ? p->n : p->k,
                                              p->tb ? p->k : p->n, p->ldb));
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->ld, gemm_type(p->dd), p->m, p->n, p->ldd));
    p->used = 1;
    cublasLtMatmulPreference_t pref;
    CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = GEMM_WORKSPACE;
    uint32_t aa = (uint32_t)p->align_a, ab = (uint32_t)p->align_b, ad = (uint32_t)p->align_d;
    // the workspace bound, then the pointers' alignments (C and D are the same buffer)
    const struct { cublasLtMatmulPreferenceAttributes_t attr; const void *v; size_t n; } prefs[] = {
        {CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof ad},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad},
    };
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    for (size_t i = 0; i < sizeof prefs / sizeof prefs[0] && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, prefs[i].attr, prefs[i].v, prefs[i].n);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(g_lt, p->op, p->la, p->lb, p->ld, p->ld, pref, 1, &res,
                                           &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->has_algo = s == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->has_algo) p->algo = res.algo;
    g_built++;
    return 0;
}

// the largest power of two <= 256 that divides the address
static int gemm_align(const void *ptr) {
    uintptr_t a = (uintptr_t)ptr;
    int al = 256;
    while (al > 1 && a % (uintptr_t)al != 0)
        al /= 2;
    return al;
}

int cuda_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
              const void *A, int lda, const void *B, int ldb, dtype_t ab_dtype,
              float beta, void *D, int ldd, dtype_t d_dtype) {
    if (m == 0 || n == 0) return 0;
    if (!g_lt) {
        CUBLASLT_CHECK(cublasLtCreate(&g_lt));
        CUDA_CHECK(cudaMalloc(&g_ws, GEMM_WORKSPACE));
    }
    int beta_zero = beta == 0.0f;
    int al_a = gemm_align(A), al_b = gemm_align(B), al_d = gemm_align(D);
    gemm_plan_t *p = NULL;
    for (int i = 0; i < GEMM_PLANS && !p; i++) {
        gemm_plan_t *c = &g_plans[i];
        if (c->used && c->ta == trans_a && c->tb == trans_b && c->m == m && c->n == n &&
            c->k == k && c->lda == lda && c->ldb == ldb && c->ldd == ldd && c->ab == ab_dtype &&
            c->dd == d_dtype && c->beta_zero == beta_zero && c->align_a == al_a &&
            c->align_b == al_b && c->align_d == al_d)
            p = c;
    }
    if (p) {
        g_hits++;
    } else {
        p = &g_plans[g_next];
        g_next = (g_next + 1) % GEMM_PLANS;
        gemm_plan_destroy(p);
        p->ta = trans_a, p->tb = trans_b, p->m = m, p->n = n, p->k = k;
        p->lda = lda, p->ldb = ldb, p->ldd = ldd, p->ab = ab_dtype, p->dd = d_dtype;
        p->beta_zero = beta_zero;
        p->align_a = al_a, p->align_b = al_b, p->align_d = al_d;
        if (gemm_plan_build(p)) {
            gemm_plan_destroy(p);
            return -1;
        }
    }
    if (p->has_algo) {
        cublasStatus_t st = cublasLtMatmul(g_lt, p->op, &alpha, A, p->la, B, p->lb, &beta, D, p->ld,
                                           D, p->ld, &p->algo, g_ws, GEMM_WORKSPACE, 0);
        if (st == CUBLAS_STATUS_SUCCESS) return 0;
        if (st != CUBLAS_STATUS_NOT_SUPPORTED)
            return err_set("%s:%d: cublasLtMatmul (m=%d n=%d k=%d) failed: %s", __FILE__, __LINE__,
                           m, n, k, cublasGetStatusString(st));
        p->has_algo = 0; // refused for this plan: cublasGemmEx from now on
    }
    cublasHandle_t h = cuda_blas();
    if (!h) return -1;
    CUBLAS_CHECK(cublasGemmEx(h, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                              trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, A,
                              gemm_type(ab_dtype), lda, B, gemm_type(ab_dtype), ldb, &beta, D,
                              gemm_type(d_dtype), ldd, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return 0;
}

void cuda_gemm_stats(long *plans_built, long *cache_hits) {
    if (plans_built) *plans_built = g_built;
    if (cache_hits) *cache_hits = g_hits;
}
