// check.h: the check-macro family of the CUDA code (CUDA runtime, cuBLAS, NCCL). Plain C as well
// as CUDA C++, so that the C files calling the CUDA runtime (comm/nccl.c) report errors exactly as
// the .cu files do: on failure, err_set("file:line: <statement> failed: <library message>") and
// `return -1` from the enclosing function (which must return int).
//
// Only the CUDA runtime header is included here. CUBLAS_CHECK needs <cublas_v2.h> (for
// cublasGetStatusString) and NCCL_CHECK needs <nccl.h> (for ncclGetErrorString) included where the
// macro is used; common.cuh includes cuBLAS for every .cu file.
#pragma once
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "kernels/err.h"
#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(stmt)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (stmt);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return err_set("%s:%d: %s failed: %s", __FILE__, __LINE__, #stmt,                      \
                           cudaGetErrorString(e_));                                                \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                         \
    do {                                                                                           \
        cublasStatus_t s_ = (stmt);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return err_set("%s:%d: %s failed: %s", __FILE__, __LINE__, #stmt,                      \
                           cublasGetStatusString(s_));                                             \
    } while (0)

// ncclInProgress counts as a failure: trustee creates blocking communicators only
#define NCCL_CHECK(stmt)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (stmt);                                                                  \
        if (r_ != ncclSuccess)                                                                     \
            return err_set("%s:%d: %s failed: %s", __FILE__, __LINE__, #stmt,                      \
                           ncclGetErrorString(r_));                                                \
    } while (0)
