// test_nccl: comm/nccl collectives over as many ranks as mpirun gives, one GPU per rank.
//
//   mpirun -np G build/test_nccl      on a node with G GPUs: G ranks, one GPU each
//   build/test_nccl                   one rank (MPI singleton); ctest runs `mpirun -np 1`
//
// Checks, each against values computed on the host from what every rank holds (double sums):
//   all-reduce sum of x_i = r + i*1e-3 (rank r) in F32 and in BF16, the average (ncclAvg) in F32,
//   an exact I32 sum; broadcasts from root 0 and from the last rank over a sub-communicator
//   {0} + the upper half of the ranks (the shape of push_comm: learner 0 + the rollout ranks),
//   alive at the same time as the world communicator; and the overlap pattern of the learner:
//   gradients written by a CUDA-backend op on the default stream, an event, the all-reduce on the
//   collective stream while more ops run on the default stream, nccl_wait, a consumer op.
// With one rank a sum / average / broadcast leaves the data as it was, so the single-rank run checks
// the plumbing (init, dtypes, events, streams, exactness) but cannot observe ordering races: run it
// with G >= 2 GPUs for that.
// `test_nccl --self-check` (no GPU, no MPI) checks the result checkers themselves (see self_check).
// Exits 77 ("SKIP: ...") without a usable CUDA device on every rank, or when two ranks would share
// a GPU (NCCL refuses that).
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/nccl.h"
#include "kernels/err.h"
#include "kernels/kernels.h"
#include "test.h"

static int g_rank, g_size;

#define CUDA_OK(stmt)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (stmt);                                                                   \
        CHECK(e_ == cudaSuccess, "%s: %s", #stmt, cudaGetErrorString(e_));                         \
        if (e_ != cudaSuccess) return 1;                                                           \
    } while (0)

#define OK(stmt)                                                                                   \
    do {                                                                                           \
        int r_ = (stmt);                                                                           \
        CHECK(r_ == 0, "%s: %s", #stmt, err_msg());                                                \
        if (r_ != 0) return 1;                                                                     \
    } while (0)

static float x_of(int r, int64_t i) { return (float)r + (float)i * 1e-3f; }

// upload host data to buf (device), record `ready` on the default stream, all-reduce, make the
// default stream wait, download (cudaMemcpy on the default stream: ordered after the wait)
static int allreduce_roundtrip(nccl_comm_t *c, void *dbuf, void *host, size_t n, dtype_t dt,
                               int average, cudaEvent_t ready) {
    size_t bytes = n * dtype_size(dt);
    CUDA_OK(cudaMemcpy(dbuf, host, bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaEventRecord(ready, 0));
    OK(nccl_allreduce_start(c, dbuf, n, dt, average, ready));
    OK(nccl_wait(c, 0));
    CUDA_OK(cudaMemcpy(host, dbuf, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

// ---- checkers of an all-reduce result against double sums of what every rank held ----
// Each returns the number of elements off (printing the first few when verbose) and the largest
// error in *worst. Tolerances: NCCL adds the ranks' values pairwise in some order (ring, tree,
// NVLS), at most size - 1 roundings of a partial sum bounded by sum_r |x_r|:
//   F32  sum  (size - 1) u sum|x|, u = 2^-24; average (ncclAvg: 1/size rounded, products rounded,
//        or a rounded division at the end) adds 2 u: tol (size + 2) u sum|x| / size
//   BF16 sum  partial sums stored as BF16 between steps, u = 2^-8: tol size u sum|x|
// One rank: the data is untouched, so the tolerance is 0 (exact).

static size_t check_f32(const float *got, size_t n, int size, int average, int verbose,
                        double *worst) {
    size_t bad = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0, mag = 0;
        for (int r = 0; r < size; r++) {
            want += x_of(r, (int64_t)i);
            mag += fabs(x_of(r, (int64_t)i));
        }
        if (average) want /= size, mag /= size;
        double tol = size == 1 ? 0 : (size + 2) * ldexp(1, -24) * mag;
        double err = isnan(got[i]) ? INFINITY : fabs(got[i] - want);
        if (err > *worst) *worst = err;
        if (err > tol && bad++ < 3 && verbose)
            fprintf(stderr, "F32 %s [%zu]: got %.9g want %.9g (tol %.3g)\n",
                    average ? "avg" : "sum", i, got[i], want, tol);
    }
    return bad;
}

static size_t check_bf16(const uint16_t *got, size_t n, int size, int verbose, double *worst) {
    size_t bad = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0, mag = 0;
        for (int r = 0; r < size; r++) {
            double v = bf16_to_f32(f32_to_bf16(x_of(r, (int64_t)i)));
            want += v;
            mag += fabs(v);
        }
        double tol = size == 1 ? 0 : size * ldexp(1, -8) * mag;
        double g = bf16_to_f32(got[i]), err = isnan(g) ? INFINITY : fabs(g - want);
        if (err > *worst) *worst = err;
        if (err > tol && bad++ < 3 && verbose)
            fprintf(stderr, "BF16 sum [%zu]: got %.6g want %.6g (tol %.3g)\n", i, g, want, tol);
    }
    return bad;
}

// --self-check (no GPU): the checkers against host emulations of NCCL's reductions (F32 roundings
// in ring order starting at a different rank per chunk, ncclAvg both ways, BF16 partial sums rounded
// to BF16 after each step) for 1..8 ranks: all must pass; and against wrong results (one rank's own
// data unreduced, one rank missing, a small relative error, a NaN): each must be caught.
static int self_check(void) {
    const size_t n = ((size_t)1 << 20) + 3;
    float *f = malloc(n * sizeof *f), *fb = malloc(n * sizeof *fb);
    uint16_t *b = malloc(n * sizeof *b);
    REQUIRE(f && fb && b, "out of memory");
    for (int size = 1; size <= 8; size++) {
        float inv = (float)(1.0 / size);
        for (int mode = 0; mode < 3; mode++) { // 0 sum, 1 avg by premultiplying, 2 avg by dividing
            for (size_t i = 0; i < n; i++) {
                int s0 = (int)((i / 1024) % (size_t)size);
                float acc = 0;
                for (int k = 0; k < size; k++) {
                    float v = x_of((s0 + k) % size, (int64_t)i);
                    if (mode == 1) v *= inv;
                    acc = k == 0 ? v : acc + v;
                }
                f[i] = mode == 2 ? acc / (float)size : acc;
            }
            double worst;
            size_t bad = check_f32(f, n, size, mode != 0, 1, &worst);
            CHECK(bad == 0, "emulated F32 mode %d over %d ranks rejected (%zu off)", mode, size, bad);
            if (mode == 0 && size >= 2) { // wrong results must be caught
                memcpy(fb, f, n * sizeof *f);
                fb[12345] = x_of(0, 12345);                            // unreduced
                fb[777] -= x_of(size - 1, 777);                        // a rank missing
                fb[99999] *= 1.0f + 1e-4f;                             // small error
                fb[n - 1] = NAN;
                CHECK(check_f32(fb, n, size, 0, 0, &worst) == 4,
                      "F32 over %d ranks: corrupted elements not all caught", size);
            }
        }
        for (size_t i = 0; i < n; i++) {
            int s0 = (int)((i / 1024) % (size_t)size);
            uint16_t acc = 0;
            for (int k = 0; k < size; k++) {
                uint16_t v = f32_to_bf16(x_of((s0 + k) % size, (int64_t)i));
                acc = k == 0 ? v : f32_to_bf16(bf16_to_f32(acc) + bf16_to_f32(v));
            }
            b[i] = acc;
        }
        double worst;
        size_t bad = check_bf16(b, n, size, 1, &worst);
        CHECK(bad == 0, "emulated BF16 over %d ranks rejected (%zu off)", size, bad);
        if (size >= 2) {
            uint16_t keep[3] = {b[12345], b[777], b[n - 1]};
            b[12345] = f32_to_bf16(x_of(1, 12345));
            b[777] = f32_to_bf16(bf16_to_f32(b[777]) - x_of(size - 1, 777));
            b[n - 1] = 0x7fc0; // NaN
            CHECK(check_bf16(b, n, size, 0, &worst) == 3,
                  "BF16 over %d ranks: corrupted elements not all caught", size);
            b[12345] = keep[0], b[777] = keep[1], b[n - 1] = keep[2];
        }
        printf("self-check %d rank(s): emulated F32 sum / avg / BF16 sum accepted%s\n", size,
               size >= 2 ? ", corrupted results caught" : "");
    }
    free(f), free(fb), free(b);
    return 0;
}

// all-reduce sum / average in F32 and BF16, exact sum in I32
static int test_allreduce(nccl_comm_t *c) {
    const size_t n = ((size_t)1 << 20) + 3; // not a multiple of any chunk size
    void *d = NULL;
    float *hf = malloc(n * sizeof *hf);
    uint16_t *hb = malloc(n * sizeof *hb);
    int32_t *hi = malloc(n * sizeof *hi);
    REQUIRE(hf && hb && hi, "out of memory");
    cudaEvent_t ready;
    CUDA_OK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CUDA_OK(cudaMalloc(&d, n * sizeof(float)));

    for (int average = 0; average <= 1; average++) {
        for (size_t i = 0; i < n; i++) hf[i] = x_of(g_rank, (int64_t)i);
        if (allreduce_roundtrip(c, d, hf, n, DTYPE_F32, average, ready)) return 1;
        double worst;
        size_t bad = check_f32(hf, n, g_size, average, 1, &worst);
        CHECK(bad == 0, "F32 %s: %zu of %zu elements off", average ? "avg" : "sum", bad, n);
        if (g_rank == 0)
            printf("allreduce F32 %s: %zu elements over %d ranks, max |err| %.3g\n",
                   average ? "avg" : "sum", n, g_size, worst);
    }

    // BF16: inputs rounded to BF16 on the host
    for (size_t i = 0; i < n; i++) hb[i] = f32_to_bf16(x_of(g_rank, (int64_t)i));
    if (allreduce_roundtrip(c, d, hb, n, DTYPE_BF16, 0, ready)) return 1;
    {
        double worst;
        size_t bad = check_bf16(hb, n, g_size, 1, &worst);
        CHECK(bad == 0, "BF16 sum: %zu of %zu elements off", bad, n);
        if (g_rank == 0)
            printf("allreduce BF16 sum: %zu elements over %d ranks, max |err| %.3g\n", n, g_size,
                   worst);
    }

    // I32: exact
    for (size_t i = 0; i < n; i++) hi[i] = (int32_t)(i % 1000) * 1000 + g_rank;
    if (allreduce_roundtrip(c, d, hi, n, DTYPE_I32, 0, ready)) return 1;
    {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t want = (int64_t)(i % 1000) * 1000 * g_size + (int64_t)g_size * (g_size - 1) / 2;
            if (hi[i] != want && bad++ < 3) CHECK(0, "I32 sum [%zu]: got %d want %lld", i, hi[i], (long long)want);
        }
        CHECK(bad == 0, "I32 sum: %zu of %zu elements off", bad, n);
    }
    // argument checks (local, no collective is queued)
    CHECK(nccl_allreduce_start(c, d, n, DTYPE_I32, 1, NULL) == -1, "I32 average accepted");
    CHECK(nccl_broadcast_start(c, d, n, DTYPE_F32, g_size, NULL) == -1, "root out of range accepted");

    OK(nccl_sync(c));
    CUDA_OK(cudaFree(d));
    CUDA_OK(cudaEventDestroy(ready));
    free(hf), free(hb), free(hi);
    return 0;
}

// broadcasts over a sub-communicator shaped like push_comm, while `world` stays alive
static int test_broadcast(void) {
    int member = g_rank == 0 || g_rank >= g_size / 2;
    MPI_Comm sub;
    MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, g_rank, &sub);
    if (!member) return 0;
    nccl_comm_t c;
    OK(nccl_comm_init(&c, sub));
    const size_t n = ((size_t)3 << 18) + 5;
    float *h = malloc(n * sizeof *h);
    REQUIRE(h, "out of memory");
    void *d = NULL;
    cudaEvent_t ready;
    CUDA_OK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CUDA_OK(cudaMalloc(&d, n * sizeof(float)));
    int roots[2] = {0, c.size - 1};
    for (int k = 0; k < 2; k++) {
        int root = roots[k];
        for (size_t i = 0; i < n; i++)
            h[i] = c.rank == root ? (float)i * 0.25f - 1000.0f + (float)root : -7.0f;
        CUDA_OK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_OK(cudaEventRecord(ready, 0));
        OK(nccl_broadcast_start(&c, d, n, DTYPE_F32, root, ready));
        OK(nccl_wait(&c, 0));
        CUDA_OK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want = (float)i * 0.25f - 1000.0f + (float)root;
            if (h[i] != want && bad++ < 3) CHECK(0, "broadcast root %d [%zu]: got %g want %g", root, i, h[i], want);
        }
        CHECK(bad == 0, "broadcast root %d: %zu of %zu elements off", root, bad, n);
        if (c.rank == 0)
            printf("broadcast F32: %zu elements, root %d of a %d-rank sub-communicator: %s\n", n,
                   root, c.size, bad ? "WRONG" : "exact");
    }
    CUDA_OK(cudaFree(d));
    CUDA_OK(cudaEventDestroy(ready));
    free(h);
    OK(nccl_comm_free(&c));
    MPI_Comm_free(&sub);
    return 0;
}

// the learner's pattern: gradient bucket g = a + b written by op_add on the default stream, event,
// all-reduce (sum) on the collective stream while h += a runs K times on the default stream,
// nccl_wait, then a consumer op out = g + one on the default stream
static int test_overlap(nccl_comm_t *c) {
    const int64_t n = ((int64_t)1 << 24) + 1; // 64 MiB of F32: long enough to race if unordered
    const int K = 8;
    int64_t shape[1] = {n};
    float *ha = malloc((size_t)n * sizeof(float)), *hb = malloc((size_t)n * sizeof(float));
    float *hout = malloc((size_t)n * sizeof(float)), *hh = malloc((size_t)n * sizeof(float));
    REQUIRE(ha && hb && hout && hh, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        ha[i] = x_of(g_rank, i % 100003);
        hb[i] = 0.5f * (float)(i % 7);
    }
    tensor_t a, b, g, h, one, out;
    tensor_t ta = tensor_view(ha, DTYPE_F32, DEVICE_CPU, 1, shape);
    tensor_t tb = tensor_view(hb, DTYPE_F32, DEVICE_CPU, 1, shape);
    OK(tensor_alloc(&a, DTYPE_F32, DEVICE_CUDA, 1, shape));
    OK(tensor_alloc(&b, DTYPE_F32, DEVICE_CUDA, 1, shape));
    OK(tensor_alloc(&g, DTYPE_F32, DEVICE_CUDA, 1, shape));
    OK(tensor_alloc(&h, DTYPE_F32, DEVICE_CUDA, 1, shape)); // zeroed
    OK(tensor_alloc(&one, DTYPE_F32, DEVICE_CUDA, 1, shape));
    OK(tensor_alloc(&out, DTYPE_F32, DEVICE_CUDA, 1, shape));
    OK(tensor_copy(&a, &ta));
    OK(tensor_copy(&b, &tb));
    for (int64_t i = 0; i < n; i++) hout[i] = 1.0f;
    tensor_t thout = tensor_view(hout, DTYPE_F32, DEVICE_CPU, 1, shape);
    OK(tensor_copy(&one, &thout));
    CUDA_OK(cudaMemset(g.data, 0xff, (size_t)n * sizeof(float))); // NaN: a stale read shows
    CUDA_OK(cudaDeviceSynchronize());
    MPI_Barrier(MPI_COMM_WORLD);

    cudaEvent_t ready;
    CUDA_OK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    OK(op_add(&g, &a, &b)); // the "gradients" of the bucket
    CUDA_OK(cudaEventRecord(ready, 0));
    OK(nccl_allreduce_start(c, g.data, (size_t)n, DTYPE_F32, 0, ready));
    for (int k = 0; k < K; k++) OK(op_add(&h, &h, &a)); // the rest of the backward
    OK(nccl_wait(c, 0));
    OK(op_add(&out, &g, &one)); // the optimizer reads the reduced bucket
    tensor_t tout = tensor_view(hout, DTYPE_F32, DEVICE_CPU, 1, shape);
    tensor_t th = tensor_view(hh, DTYPE_F32, DEVICE_CPU, 1, shape);
    OK(tensor_copy(&tout, &out));
    OK(tensor_copy(&th, &h));

    size_t bad = 0, bad_h = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double sum = 0, mag = 0;
        for (int r = 0; r < g_size; r++) {
            float gr = x_of(r, i % 100003) + 0.5f * (float)(i % 7); // each rank's g, F32 add
            sum += gr;
            mag += fabs(gr);
        }
        double want = (double)((float)sum + 1.0f);
        double tol = g_size == 1 ? 0 : (g_size + 1) * ldexp(1, -24) * (mag + 1);
        double err = isnan(hout[i]) ? INFINITY : fabs(hout[i] - want);
        if (err > worst) worst = err;
        if (err > tol && bad++ < 3) CHECK(0, "overlap [%lld]: got %.9g want %.9g", (long long)i, hout[i], want);
        float hw = 0;
        for (int k = 0; k < K; k++) hw += ha[i];
        if (hh[i] != hw && bad_h++ < 3) CHECK(0, "overlap h [%lld]: got %.9g want %.9g", (long long)i, hh[i], hw);
    }
    CHECK(bad == 0, "overlap: %zu of %lld reduced elements off", bad, (long long)n);
    CHECK(bad_h == 0, "overlap: %zu of %lld side-work elements off", bad_h, (long long)n);
    if (g_rank == 0)
        printf("overlap: %lld-element bucket all-reduced beside %d ops on the default stream, "
               "max |err| %.3g, side work %s\n", (long long)n, K, worst, bad_h ? "WRONG" : "exact");
    CUDA_OK(cudaEventDestroy(ready));
    tensor_free(&a), tensor_free(&b), tensor_free(&g), tensor_free(&h), tensor_free(&one),
        tensor_free(&out);
    free(ha), free(hb), free(hout), free(hh);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--self-check") == 0) { // no MPI, no GPU
        if (self_check()) test_failures++;
        return test_exit("test_nccl --self-check");
    }
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);

    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    int have = e == cudaSuccess && ndev > 0, all_have = 0;
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_have) {
        if (g_rank == 0)
            printf("SKIP: no usable CUDA device on some rank (rank 0: cudaGetDeviceCount: %s, "
                   "%d devices)\n", e == cudaSuccess ? "ok" : cudaGetErrorString(e), ndev);
        MPI_Finalize();
        return 77;
    }
    int device = -1, shared = 0;
    if (nccl_device_plan(MPI_COMM_WORLD, &device, &shared)) {
        fprintf(stderr, "rank %d: %s\n", g_rank, err_msg());
        MPI_Finalize();
        return 1;
    }
    if (shared) {
        if (g_rank == 0)
            printf("SKIP: %d ranks but fewer GPUs per node (rank 0 sees %d): two ranks would share "
                   "a GPU and NCCL refuses that; run mpirun -np <number of GPUs>\n", g_size, ndev);
        MPI_Finalize();
        return 77;
    }
    int ver = 0;
    ncclGetVersion(&ver);
    if (g_rank == 0) printf("NCCL %d, %d ranks, %d GPUs visible on rank 0\n", ver, g_size, ndev);

    int fatal = 0;
    nccl_comm_t world;
    if (nccl_comm_init(&world, MPI_COMM_WORLD)) {
        fprintf(stderr, "rank %d: %s\n", g_rank, err_msg());
        MPI_Finalize();
        return 1;
    }
    CHECK(world.size == g_size && world.rank == g_rank && world.device == device,
          "comm fields: size %d rank %d device %d (plan %d)", world.size, world.rank, world.device,
          device);
    fatal |= test_allreduce(&world);
    if (!fatal) fatal |= test_broadcast();
    if (!fatal) fatal |= test_overlap(&world);
    if (!fatal && nccl_comm_free(&world)) CHECK(0, "nccl_comm_free: %s", err_msg());
    CHECK(world.nccl == NULL, "comm not cleared by free");
    if (fatal) {
        // a rank that stopped half-way cannot join the others' collectives: end the job
        fprintf(stderr, "rank %d: fatal failure\n", g_rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int fails = test_failures, checks = test_checks;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &checks, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    test_failures = fails, test_checks = checks;
    int rc = 0;
    if (g_rank == 0) rc = test_exit("test_nccl");
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
