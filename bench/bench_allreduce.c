// bench_allreduce: NCCL all-reduce bandwidth through comm/nccl, one GPU per rank.
//
//   mpirun -np G build/bench_allreduce [MAX_BYTES [ITERS]]     (G = GPUs of the node)
//
// F32 sum in place (nccl_allreduce_start, the learner's call) for message sizes 1 MiB, 2 MiB, ...
// up to MAX_BYTES (default 1G; suffixes K, M, G = powers of 1024). Per size: 5 warm-up calls, then
// ITERS (default 20) timed back to back with CUDA events on the collective stream; the time of a
// size is the slowest rank's mean per call. Bandwidths follow nccl-tests (doc/PERFORMANCE.md):
//   algbw = bytes / time,   busbw = algbw * 2 (n - 1) / n   for n ranks,
// busbw being the rate each GPU's link carries in a ring, comparable to the link's bandwidth.
// With one rank no byte crosses a link: busbw is 0 by that formula and the time is just the cost
// of a one-rank call (a local in-place pass at most), so algbw says nothing about NVLink then.
// Before timing, one 1 MiB all-reduce of ones is checked (every element must equal n).
// Exits 77 without a usable CUDA device or when two ranks would share a GPU.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/nccl.h"
#include "kernels/err.h"

#define MIB ((size_t)1 << 20)

// "64M", "1G", "4096": bytes, or 0 when malformed
static size_t parse_bytes(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return 0;
    switch (*end) {
    case 'K': case 'k': v <<= 10, end++; break;
    case 'M': case 'm': v <<= 20, end++; break;
    case 'G': case 'g': v <<= 30, end++; break;
    default: break;
    }
    return *end ? 0 : (size_t)v;
}

static int fail(int rank, const char *what) {
    fprintf(stderr, "bench_allreduce: rank %d: %s: %s\n", rank, what, err_msg());
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

#define CUDA_OR_FAIL(stmt)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = (stmt);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            err_set("%s: %s", #stmt, cudaGetErrorString(e_));                                      \
            return fail(rank, "CUDA");                                                             \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t max_bytes = argc > 1 ? parse_bytes(argv[1]) : (size_t)1 << 30;
    int iters = argc > 2 ? atoi(argv[2]) : 20;
    if (max_bytes < MIB || iters < 1 || argc > 3) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np G bench_allreduce [MAX_BYTES >= 1M (1G)] [ITERS (20)]\n");
        MPI_Finalize();
        return 2;
    }

    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    int have = e == cudaSuccess && ndev > 0, all_have = 0;
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_have) {
        if (rank == 0)
            printf("SKIP: no usable CUDA device on some rank (rank 0: cudaGetDeviceCount: %s)\n",
                   e == cudaSuccess ? "ok, 0 devices" : cudaGetErrorString(e));
        MPI_Finalize();
        return 77;
    }
    int device, shared;
    if (nccl_device_plan(MPI_COMM_WORLD, &device, &shared)) return fail(rank, "device");
    if (shared) {
        if (rank == 0)
            printf("SKIP: %d ranks but fewer GPUs per node: NCCL needs one GPU per rank\n", size);
        MPI_Finalize();
        return 77;
    }
    nccl_comm_t c;
    if (nccl_comm_init(&c, MPI_COMM_WORLD)) return fail(rank, "nccl_comm_init");

    float *d = NULL;
    CUDA_OR_FAIL(cudaMalloc((void **)&d, max_bytes));
    cudaEvent_t t0, t1;
    CUDA_OR_FAIL(cudaEventCreate(&t0));
    CUDA_OR_FAIL(cudaEventCreate(&t1));

    // correctness: 1 MiB of ones, summed: every element must be n (exact in F32)
    {
        size_t n = MIB / sizeof(float);
        float *h = malloc(MIB);
        if (!h) return fail(rank, "out of memory");
        for (size_t i = 0; i < n; i++) h[i] = 1.0f;
        CUDA_OR_FAIL(cudaMemcpy(d, h, MIB, cudaMemcpyHostToDevice));
        CUDA_OR_FAIL(cudaDeviceSynchronize()); // pageable H2D may return before the DMA lands
        if (nccl_allreduce_start(&c, d, n, DTYPE_F32, 0, NULL) || nccl_sync(&c))
            return fail(rank, "all-reduce");
        CUDA_OR_FAIL(cudaMemcpy(h, d, MIB, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += h[i] != (float)size;
        free(h);
        int all_bad = (int)(bad > 0);
        MPI_Allreduce(MPI_IN_PLACE, &all_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (all_bad) {
            if (bad) fprintf(stderr, "rank %d: %zu of %zu elements != %d\n", rank, bad, n, size);
            MPI_Finalize();
            return 1;
        }
    }
    CUDA_OR_FAIL(cudaMemset(d, 0, max_bytes)); // zeros stay zeros under repeated sums
    CUDA_OR_FAIL(cudaDeviceSynchronize());     // the collective stream does not order after it

    if (rank == 0) {
        int ver = 0;
        ncclGetVersion(&ver);
        struct cudaDeviceProp prop;
        CUDA_OR_FAIL(cudaGetDeviceProperties(&prop, c.device));
        printf("# bench_allreduce: NCCL %d, %d rank(s), rank 0 on %s; F32 sum in place, %d iters "
               "per size; correctness check passed\n", ver, size, prop.name, iters);
        printf("# busbw = algbw * 2(n-1)/n (nccl-tests convention)%s\n",
               size == 1 ? "; n = 1: busbw = 0 by definition, no data crosses a link, algbw is "
                           "the cost of a one-rank call, not a link speed" : "");
        printf("# reference figures (NOT measured here): H100 SXM NVLink4 = 900 GB/s per GPU, "
               "450 GB/s per direction; nccl-tests all_reduce_perf on 8x H100 SXM (NVSwitch) "
               "typically reports ~360-380 GB/s busbw for large messages (more with NVLink SHARP)\n");
        printf("%14s %12s %12s %12s\n", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s");
    }
    for (size_t bytes = MIB; bytes <= max_bytes; bytes *= 2) {
        size_t n = bytes / sizeof(float);
        for (int w = 0; w < 5; w++)
            if (nccl_allreduce_start(&c, d, n, DTYPE_F32, 0, NULL)) return fail(rank, "warm-up");
        if (nccl_sync(&c)) return fail(rank, "warm-up");
        MPI_Barrier(MPI_COMM_WORLD);
        CUDA_OR_FAIL(cudaEventRecord(t0, c.stream));
        for (int k = 0; k < iters; k++)
            if (nccl_allreduce_start(&c, d, n, DTYPE_F32, 0, NULL)) return fail(rank, "all-reduce");
        CUDA_OR_FAIL(cudaEventRecord(t1, c.stream));
        if (nccl_sync(&c)) return fail(rank, "all-reduce");
        CUDA_OR_FAIL(cudaEventSynchronize(t1));
        float ms = 0;
        CUDA_OR_FAIL(cudaEventElapsedTime(&ms, t0, t1));
        double sec = (double)ms * 1e-3 / iters;
        MPI_Allreduce(MPI_IN_PLACE, &sec, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double algbw = (double)bytes / sec * 1e-9;
        double busbw = algbw * 2.0 * (size - 1) / size;
        if (rank == 0) printf("%14zu %12.1f %12.2f %12.2f\n", bytes, sec * 1e6, algbw, busbw);
        fflush(stdout);
    }
    CUDA_OR_FAIL(cudaEventDestroy(t0));
    CUDA_OR_FAIL(cudaEventDestroy(t1));
    CUDA_OR_FAIL(cudaFree(d));
    if (nccl_comm_free(&c)) return fail(rank, "nccl_comm_free");
    MPI_Finalize();
    return 0;
}
