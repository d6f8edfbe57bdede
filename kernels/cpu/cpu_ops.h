// cpu_ops: the CPU backend of kernels/ (plain C + OpenBLAS + OpenMP), the reference backend.
//
// kernels/kernels.c checks shapes, dtypes and devices, then calls the cpu_op_* of the same name;
// these functions check what needs the data (index ranges) and that every float tensor is F32
// (the CPU backend computes in F32; models convert their weights to F32 when they load).
// Loops are parallel over independent rows (and matmul over fixed tiles) only, so results do not
// depend on the thread count.
#pragma once
#include "../kernels.h"

void cpu_set_threads(int n); // OpenMP threads (OpenBLAS stays single-threaded); n <= 0: all cores
void cpu_blas_init(void);    // makes OpenBLAS single-threaded (once; every matmul calls it)
int cpu_get_threads(void);
// -1 with err_set("<op>: the CPU backend computes in F32; <name> is <dtype>") unless t is F32
int cpu_require_f32(const char *op, const char *name, const tensor_t *t);

// dot product in 16 independent lanes (vectorizable without reordering), lanes summed in order:
// the same bits whatever the thread count
static inline float cpu_dot(const float *a, const float *b, int64_t n) {
    float lane[16] = {0};
    int64_t n16 = n / 16 * 16;
    for (int64_t i = 0; i < n16; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += lane[j];
    for (int64_t i = n16; i < n; i++) s += a[i] * b[i];
    return s;
}

int cpu_op_matmul(tensor_t *out, const tensor_t *x, const tensor_t *w, int accumulate);
int cpu_op_rmsnorm(tensor_t *out, const tensor_t *x, const tensor_t *w, float eps);
int cpu_op_rope(tensor_t *x, const tensor_t *pos, double theta);
int cpu_op_add(tensor_t *out, const tensor_t *a, const tensor_t *b);
int cpu_op_swiglu(tensor_t *out, const tensor_t *gate, const tensor_t *up);
int cpu_op_embedding(tensor_t *out, const tensor_t *table, const tensor_t *ids);
int cpu_op_softmax(tensor_t *x);
int cpu_op_logsoftmax_gather(tensor_t *out, const tensor_t *logits, const tensor_t *ids,
                             float temperature);
int cpu_op_kv_store(tensor_t *k_pool, tensor_t *v_pool, const tensor_t *k, const tensor_t *v,
                    const tensor_t *slots);
int cpu_op_attention(tensor_t *out, const tensor_t *q, const tensor_t *k_pool,
                     const tensor_t *v_pool, const tensor_t *seq_info, const tensor_t *page_table);
