// comm/nccl: NCCL collectives (see nccl.h). Plain C over the CUDA runtime API and NCCL.
#ifdef TRUSTEE_NCCL
#include "comm/nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/check.h"
#include "kernels/err.h"

// a non-negative integer environment variable, or -1 when unset / not a number
static int env_index(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1 << 20) return -1;
    return (int)v;
}

// this process's index among the processes of its node: from the launcher when it says (not
// collective), else over comm's ranks on this node (collective over comm; every rank of comm sees
// the same environment, so either all take the collective path or none)
static int local_rank(MPI_Comm comm, int *local) {
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int v = env_index(vars[i]);
        if (v >= 0) {
            *local = v;
            return 0;
        }
    }
    MPI_Comm node;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return err_set("nccl: MPI_Comm_split_type failed");
    MPI_Comm_rank(node, local);
    MPI_Comm_free(&node);
    return 0;
}

int nccl_device_plan(MPI_Comm comm, int *device, int *shared) {
    *device = -1;
    *shared = 0;
    int local = 0;
    if (local_rank(comm, &local)) return -1; // same outcome on every rank (MPI errors are fatal)

    // local part: never return before the collectives below, or the other ranks would hang
    char why[256] = "";
    int ndev = 0, key = MPI_UNDEFINED; // key: the GPU's PCI address, domain:bus:device
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev < 1) {
        snprintf(why, sizeof why, "no usable CUDA device (cudaGetDeviceCount: %s, %d devices)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "ok", ndev);
    } else {
        *device = local % ndev;
        int dom = 0, bus = 0, dev = 0;
        if ((e = cudaDeviceGetAttribute(&dom, cudaDevAttrPciDomainId, *device)) != cudaSuccess ||
            (e = cudaDeviceGetAttribute(&bus, cudaDevAttrPciBusId, *device)) != cudaSuccess ||
            (e = cudaDeviceGetAttribute(&dev, cudaDevAttrPciDeviceId, *device)) != cudaSuccess)
            snprintf(why, sizeof why, "cudaDeviceGetAttribute(PCI id of device %d): %s", *device,
                     cudaGetErrorString(e));
        else
            key = (dom & 0xffff) << 13 | (bus & 0xff) << 5 | (dev & 0x1f);
    }

    // the ranks of comm on this node that picked the same GPU land in one group of the split
    int flags[2] = {why[0] != 0, 0}; // [0]: some rank failed, [1]: a GPU would be shared
    MPI_Comm node, same;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return err_set("nccl: MPI_Comm_split_type failed");
    int rc = MPI_Comm_split(node, key, 0, &same);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return err_set("nccl: MPI_Comm_split failed");
    if (same != MPI_COMM_NULL) {
        int n_same = 0;
        MPI_Comm_size(same, &n_same);
        flags[1] = n_same > 1;
        MPI_Comm_free(&same);
    }
    if (MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return err_set("nccl: MPI_Allreduce failed");
    *shared = flags[1];
    if (why[0]) return err_set("nccl: %s", why);
    if (flags[0]) return err_set("nccl: another rank has no usable CUDA device");
    return 0;
}

static void free_local(nccl_comm_t *c) {
    if (c->done) cudaEventDestroy(c->done);
    if (c->stream) cudaStreamDestroy(c->stream);
    c->done = NULL;
    c->stream = NULL;
}

// the rank-local part of init: device, stream, event
static int init_local(nccl_comm_t *c) {
    CUDA_CHECK(cudaSetDevice(c->device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming));
    return 0;
}

int nccl_comm_init(nccl_comm_t *c, MPI_Comm comm) {
    memset(c, 0, sizeof *c);
    MPI_Comm_rank(comm, &c->rank);
    MPI_Comm_size(comm, &c->size);
    int shared = 0;
    if (nccl_device_plan(comm, &c->device, &shared)) return err_wrap("nccl_comm_init: ");
    if (shared)
        return err_set("nccl_comm_init: two of the %d ranks on one node would share a GPU "
                       "(fewer GPUs than ranks; NCCL needs one GPU per rank)", c->size);

    int ok = init_local(c) == 0;
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == 0 && ok) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        if (r != ncclSuccess)
            err_set("%s:%d: ncclGetUniqueId failed: %s", __FILE__, __LINE__, ncclGetErrorString(r));
        ok = msg.ok = r == ncclSuccess;
    }
    if (MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, comm) != MPI_SUCCESS) {
        free_local(c);
        return err_set("nccl_comm_init: MPI_Bcast of the NCCL id failed");
    }
    int all_ok = ok && msg.ok;
    if (MPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS) {
        free_local(c);
        return err_set("nccl_comm_init: MPI_Allreduce failed");
    }
    if (!all_ok) {
        free_local(c);
        if (ok) return err_set("nccl_comm_init: another rank failed to set up its device");
        return err_wrap("nccl_comm_init (rank %d): ", c->rank);
    }
    ncclResult_t r = ncclCommInitRank(&c->nccl, c->size, msg.id, c->rank);
    if (r != ncclSuccess) {
        c->nccl = NULL;
        free_local(c);
        return err_set("nccl_comm_init: ncclCommInitRank(%d ranks, rank %d, device %d) failed: %s",
                       c->size, c->rank, c->device, ncclGetErrorString(r));
    }
    return 0;
}

static int nccl_type(dtype_t dt, ncclDataType_t *t) {
    switch (dt) {
    case DTYPE_F32: *t = ncclFloat32; return 0;
    case DTYPE_BF16: *t = ncclBfloat16; return 0;
    case DTYPE_F16: *t = ncclFloat16; return 0;
    case DTYPE_I32: *t = ncclInt32; return 0;
    }
    return err_set("nccl: unsupported dtype %d", (int)dt);
}

// an asynchronous error (a failed peer, a network error) turns into -1 and marks c failed
static int check_async(nccl_comm_t *c, const char *who) {
    if (!c->nccl) return err_set("%s: communicator not initialized", who);
    if (c->failed) return err_set("%s: communicator failed earlier", who);
    ncclResult_t st = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(c->nccl, &st));
    if (st != ncclSuccess && st != ncclInProgress) {
        c->failed = 1;
        return err_set("%s: NCCL asynchronous error: %s (%s)", who, ncclGetErrorString(st),
                       ncclGetLastError(c->nccl));
    }
    return 0;
}

int nccl_allreduce_start(nccl_comm_t *c, void *buf, size_t count, dtype_t dt, int average,
                         cudaEvent_t ready) {
    ncclDataType_t t = ncclFloat32;
    if (check_async(c, "nccl_allreduce_start") || nccl_type(dt, &t)) return -1;
    if (average && dt == DTYPE_I32) return err_set("nccl_allreduce_start: no average of I32");
    if (ready) CUDA_CHECK(cudaStreamWaitEvent(c->stream, ready, 0));
    NCCL_CHECK(ncclAllReduce(buf, buf, count, t, average ? ncclAvg : ncclSum, c->nccl, c->stream));
    CUDA_CHECK(cudaEventRecord(c->done, c->stream));
    return 0;
}

int nccl_broadcast_start(nccl_comm_t *c, void *buf, size_t count, dtype_t dt, int root,
                         cudaEvent_t ready) {
    ncclDataType_t t = ncclFloat32;
    if (check_async(c, "nccl_broadcast_start") || nccl_type(dt, &t)) return -1;
    if (root < 0 || root >= c->size)
        return err_set("nccl_broadcast_start: root %d outside [0, %d)", root, c->size);
    if (ready) CUDA_CHECK(cudaStreamWaitEvent(c->stream, ready, 0));
    NCCL_CHECK(ncclBroadcast(buf, buf, count, t, root, c->nccl, c->stream));
    CUDA_CHECK(cudaEventRecord(c->done, c->stream));
    return 0;
}

int nccl_wait(nccl_comm_t *c, cudaStream_t stream) {
    if (check_async(c, "nccl_wait")) return -1;
    CUDA_CHECK(cudaStreamWaitEvent(stream, c->done, 0));
    return 0;
}

int nccl_sync(nccl_comm_t *c) {
    long sleep_ns = 20000; // 20 us, doubling to 1 ms
    for (;;) {
        if (check_async(c, "nccl_sync")) return -1;
        cudaError_t e = cudaEventQuery(c->done); // an event never recorded counts as done
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady)
            return err_set("%s:%d: cudaEventQuery(done) failed: %s", __FILE__, __LINE__,
                           cudaGetErrorString(e));
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns *= 2;
    }
}

int nccl_comm_free(nccl_comm_t *c) {
    int rc = 0;
    if (c->nccl) {
        if (!c->failed && nccl_sync(c)) rc = -1;
        if (!c->failed && rc == 0) {
            ncclResult_t r = ncclCommFinalize(c->nccl);
            if (r != ncclSuccess)
                rc = err_set("nccl_comm_free: ncclCommFinalize failed: %s", ncclGetErrorString(r));
        }
        if (c->failed || rc) {
            ncclCommAbort(c->nccl);
        } else {
            ncclResult_t r = ncclCommDestroy(c->nccl);
            if (r != ncclSuccess)
                rc = err_set("nccl_comm_free: ncclCommDestroy failed: %s", ncclGetErrorString(r));
        }
    }
    free_local(c);
    memset(c, 0, sizeof *c);
    return rc;
}

#endif // TRUSTEE_NCCL
