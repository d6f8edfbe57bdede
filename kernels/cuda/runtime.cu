// runtime.cu: device discovery, memory, copies, dtype conversion, and the resources the ops share
// (cuBLAS handle, scratch buffer, device error record).
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

// ---- availability ----

static int g_available = -1; // -1 unknown, 0 no, 1 yes
static char g_reason[256];

extern "C" int cuda_available(void) {
    if (g_available >= 0) return g_available;
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess) {
        // without a driver this is 35 (cudaErrorInsufficientDriver), not 100 (no device)
        snprintf(g_reason, sizeof g_reason, "cudaGetDeviceCount: %s (%d)", cudaGetErrorString(e),
                 (int)e);
        cudaGetLastError(); // clear it, so later calls do not see it
        g_available = 0;
    } else if (ndev < 1) {
        snprintf(g_reason, sizeof g_reason, "cudaGetDeviceCount: no CUDA device");
        g_available = 0;
    } else {
        g_reason[0] = '\0';
        g_available = 1;
    }
    return g_available;
}

extern "C" const char *cuda_unavailable_reason(void) {
    cuda_available();
    return g_reason;
}

// ---- memory ----

extern "C" int cuda_alloc(void **p, size_t n) {
    *p = NULL;
    if (n == 0) return 0;
    cudaError_t e = cudaMalloc(p, n);
    if (e != cudaSuccess) {
        *p = NULL;
        return err_set("cudaMalloc of %zu bytes failed: %s", n, cudaGetErrorString(e));
    }
    return 0;
}

extern "C" void cuda_free(void *p) {
    if (p) cudaFree(p); // nothing useful to do with an error while freeing
}

extern "C" int cuda_memcpy(void *dst, device_t dd, const void *src, device_t sd, size_t n) {
    if (n == 0) return 0;
    if (dd == DEVICE_CPU && sd == DEVICE_CPU) {
        memmove(dst, src, n);
        return 0;
    }
    cudaMemcpyKind kind = dd == DEVICE_CPU   ? cudaMemcpyDeviceToHost
                          : sd == DEVICE_CPU ? cudaMemcpyHostToDevice
                                             : cudaMemcpyDeviceToDevice;
    CUDA_CHECK(cudaMemcpy(dst, src, n, kind));
    return 0;
}

extern "C" int cuda_set_zero(void *p, size_t n) {
    if (n == 0) return 0;
    CUDA_CHECK(cudaMemset(p, 0, n));
    return 0;
}

extern "C" int cuda_sync(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

// ---- dtype conversion ----

static __global__ void convert_kernel(void *dst, dtype_t ddt, const void *src, dtype_t sdt,
                                      int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        store_f32(dst, ddt, i, load_f32(src, sdt, i));
}

extern "C" int cuda_convert(void *dst, dtype_t ddt, const void *src, dtype_t sdt, int64_t n) {
    if (n <= 0) return 0;
    if (ddt == sdt) {
        CUDA_CHECK(cudaMemcpy(dst, src, (size_t)n * dtype_size(ddt), cudaMemcpyDeviceToDevice));
        return 0;
    }
    if (cuda_check_float("convert", "destination", ddt) ||
        cuda_check_float("convert", "source", sdt))
        return -1;
    convert_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dst, ddt, src, sdt, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

// ---- shared resources ----

static cublasHandle_t g_blas;

cublasHandle_t cuda_blas(void) {
    if (g_blas) return g_blas;
    cublasHandle_t h;
    cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        err_set("cublasCreate failed: %s", cublasGetStatusString(s));
        return NULL;
    }
    // plain FP32 arithmetic: no TF32 for F32 inputs, so results match the CPU backend to ~1e-6
    s = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        err_set("cublasSetMathMode failed: %s", cublasGetStatusString(s));
        cublasDestroy(h);
        return NULL;
    }
    g_blas = h;
    return g_blas;
}

static void *g_scratch;
static size_t g_scratch_size;

void *cuda_scratch(size_t n) {
    if (n <= g_scratch_size) return g_scratch;
    if (g_scratch) {
        cudaFree(g_scratch); // synchronizes: no queued kernel still reads the old buffer
        g_scratch = NULL;
        g_scratch_size = 0;
    }
    cudaError_t e = cudaMalloc(&g_scratch, n);
    if (e != cudaSuccess) {
        g_scratch = NULL;
        err_set("cuda scratch: cudaMalloc of %zu bytes failed: %s", n, cudaGetErrorString(e));
        return NULL;
    }
    g_scratch_size = n;
    return g_scratch;
}

static int *g_errrec; // int[4] on the device

int cuda_errrec_reset(int **rec) {
    if (!g_errrec) CUDA_CHECK(cudaMalloc((void **)&g_errrec, 4 * sizeof(int)));
    CUDA_CHECK(cudaMemsetAsync(g_errrec, 0, 4 * sizeof(int)));
    *rec = g_errrec;
    return 0;
}

int cuda_errrec_read(int out[4]) {
    CUDA_CHECK(cudaMemcpy(out, g_errrec, 4 * sizeof(int), cudaMemcpyDeviceToHost));
    return 0;
}
