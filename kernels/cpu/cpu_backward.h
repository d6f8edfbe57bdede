// cpu_backward: the CPU backend of the backward ops (kernels.h, "ops (backward)"); argument checks
// are in kernels/backward.c. Every loop is parallel over outputs that one thread owns, with sums
// in a fixed order, so gradients do not depend on the thread count.
#pragma once
#include "../kernels.h"

int cpu_op_matmul_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                           const tensor_t *w, int accumulate);
int cpu_op_rmsnorm_backward(tensor_t *dx, tensor_t *dw, const tensor_t *dout, const tensor_t *x,
                            const tensor_t *w, float eps, int accumulate);
int cpu_op_rope_backward(tensor_t *dx, const tensor_t *pos, double theta);
int cpu_op_swiglu_backward(tensor_t *dgate, tensor_t *dup, const tensor_t *dout,
                           const tensor_t *gate, const tensor_t *up);
int cpu_op_embedding_backward(tensor_t *dtable, const tensor_t *dout, const tensor_t *ids);
int cpu_op_logsoftmax_gather_backward(tensor_t *dlogits, const tensor_t *logits,
                                      const tensor_t *ids, const tensor_t *dlp, float temperature);
int cpu_op_softmax_entropy(tensor_t *out, const tensor_t *logits, float temperature);
// attention: tiles of query rows on OpenBLAS (S, P, dP, dS per tile; dQ, dK, dV by GEMMs);
// _ref: the scalar row-by-row loop, the reference the tests compare with
int cpu_op_attention_backward(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                              const tensor_t *q, const tensor_t *k, const tensor_t *v);
int cpu_op_attention_backward_ref(tensor_t *dq, tensor_t *dk, tensor_t *dv, const tensor_t *dout,
                                  const tensor_t *q, const tensor_t *k, const tensor_t *v);
