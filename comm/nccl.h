// comm/nccl: GPU collectives between ranks with NCCL: the learners' gradient all-reduce and the
// weight broadcast from learner 0 to the rollout ranks (comm.h: learn_comm, push_comm).
//
// Defined only when TRUSTEE_NCCL is (CMake found nccl.h and libnccl next to the CUDA toolkit);
// callers guard their calls with #ifdef TRUSTEE_NCCL. Open MPI here is not CUDA-aware: device
// buffers go through NCCL, never through MPI. MPI only carries NCCL's unique id at init.
//
// One GPU per rank: a rank uses device (node-local rank % device count), the node-local rank taken
// from the launcher (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID), or computed over
// the communicator when none is set. NCCL refuses two ranks of one communicator on one GPU;
// nccl_comm_init reports that case as an error on every rank (nccl_device_plan tells it ahead).
// A process may hold several nccl_comm_t at once (learner 0: learners + push), all on its device.
//
// Streams: each communicator owns a collective stream, created non-blocking, so it never
// synchronizes implicitly with the legacy default stream the CUDA backend computes on. Ordering is
// explicit, with events, and never blocks the host:
//
//     gradients of a bucket written on the compute stream (default stream: 0)
//     cudaEventRecord(ready, 0);
//     nccl_allreduce_start(&nc, bucket, n, DTYPE_F32, 1, ready); // waits on ready, then NCCL
//     ... the rest of the backward keeps running on stream 0, overlapping the all-reduce ...
//     nccl_wait(&nc, 0);  // stream 0 waits for every collective queued so far; host returns
//     optimizer step on stream 0
//
// Between start and wait the caller neither writes nor reads the buffer and keeps it allocated.
// Counts are in ELEMENTS of the given dtype (not bytes). Every rank of the communicator calls each
// collective, in the same order, with the same count, dtype and root (NCCL's rule).
// The CUDA device current at the calls must be c->device (nccl_comm_init makes it current): call
// nccl_comm_init before the CUDA backend's first use, whose cuBLAS handle and scratch buffer live
// on the device current then. Layout [learners, rollout, sim] (comm.h) keeps the GPU ranks first
// on a node, so simulator ranks (no GPU) do not push GPU ranks into wrapping modulo the count.
// Errors: 0, or -1 with err_set() (file:line, the call, ncclGetErrorString; for asynchronous
// errors also ncclGetLastError). After an asynchronous error the communicator is unusable:
// c->failed is set and nccl_comm_free aborts it.
#pragma once
#ifdef TRUSTEE_NCCL
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>
#include <stddef.h>

#include "kernels/kernels.h" // dtype_t

typedef struct {
    ncclComm_t nccl;     // NULL when not initialized
    cudaStream_t stream; // the collective stream (non-blocking)
    cudaEvent_t done;    // recorded on stream after the last queued collective
    int rank, size;      // this rank and the rank count, as in the MPI communicator given to init
    int device;          // this rank's CUDA device
    int failed;          // 1 after an asynchronous NCCL error
} nccl_comm_t;

// Collective over comm. Picks this rank's device (node-local rank % device count) and sets *shared
// = 1 (on every rank of comm) when two ranks of comm on one node would get the same GPU (PCI
// addresses are compared), else 0. -1 with err_set when this rank or another has no usable CUDA
// device (every rank returns -1 then).
int nccl_device_plan(MPI_Comm comm, int *device, int *shared);

// Collective over comm (every rank of comm calls it; MPI must be initialized). Makes the device of
// nccl_device_plan current (cudaSetDevice), creates the collective stream and event; rank 0 of comm
// makes the NCCL unique id, MPI_Bcast sends it, then ncclCommInitRank. NCCL ranks = ranks in comm.
// A failure on one rank before ncclCommInitRank makes every rank return -1 (no hang).
int nccl_comm_init(nccl_comm_t *c, MPI_Comm comm);

// Queues an in-place all-reduce of count elements of buf (device memory): sum, or the average
// over ranks when average != 0 (ncclAvg). The collective stream first waits on `ready` (an event
// recorded on the compute stream after buf was written; NULL: no wait, the caller has ordered it
// otherwise). Returns once queued. dtype: F32, BF16, F16 or I32 (I32 sums only).
int nccl_allreduce_start(nccl_comm_t *c, void *buf, size_t count, dtype_t dt, int average,
                         cudaEvent_t ready);

// Queues an in-place broadcast of count elements of buf from the rank `root` of the communicator
// (e.g. learner 0 = root 0 of push_comm) to all its ranks, after `ready` (NULL: no wait).
int nccl_broadcast_start(nccl_comm_t *c, void *buf, size_t count, dtype_t dt, int root,
                         cudaEvent_t ready);

// Makes `stream` (0: the legacy default stream) wait for every collective queued on c so far
// (cudaStreamWaitEvent: the host does not block). Checks ncclCommGetAsyncError first.
int nccl_wait(nccl_comm_t *c, cudaStream_t stream);

// Blocks the host until every collective queued on c has finished, polling the done event with a
// sleeping backoff and checking ncclCommGetAsyncError meanwhile (a failed peer is reported, not
// waited on forever when NCCL detects it).
int nccl_sync(nccl_comm_t *c);

// Collective over the communicator: waits for queued work, then ncclCommFinalize +
// ncclCommDestroy (ncclCommAbort after an error); frees the stream and event. A zeroed or already
// freed c is fine. Returns -1 (err_set) when finalizing reported an error; resources are freed
// either way.
int nccl_comm_free(nccl_comm_t *c);

#endif // TRUSTEE_NCCL
