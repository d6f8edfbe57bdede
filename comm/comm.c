// comm/comm: role split, framed msgpack messages over MPI, non-spinning waits (see comm.h).
#include "comm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "msg.h"

static double comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mpi_err(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return err_set("%s: %s", what, s);
}

int comm_init(comm_t *c, int n_sim, int n_rollout) {
    memset(c, 0, sizeof *c);
    c->learn_comm = MPI_COMM_NULL;
    c->push_comm = MPI_COMM_NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    if (c->size == 1) {
        c->single = 1;
        c->n_learn = 1, c->n_rollout = 1, c->n_sim = 0;
        c->learner = 0, c->rollout = 0, c->sim = -1;
    } else {
        if (n_sim < 0 || n_rollout < 1)
            return err_set("role split: %d ranks with --sim-ranks %d --rollout-ranks %d: expected "
                           "--rollout-ranks >= 1 and --sim-ranks >= 0",
                           c->size, n_sim, n_rollout);
        if (n_sim + n_rollout >= c->size)
            return err_set("role split: %d ranks with --sim-ranks %d --rollout-ranks %d leave no learner "
                           "(expected sim + rollout ranks < %d)",
                           c->size, n_sim, n_rollout, c->size);
        c->n_sim = n_sim, c->n_rollout = n_rollout, c->n_learn = c->size - n_sim - n_rollout;
        c->learner = c->rollout = c->sim = -1;
        if (c->rank < c->n_learn) c->learner = c->rank;
        else if (c->rank < c->n_learn + c->n_rollout) c->rollout = c->rank - c->n_learn;
        else c->sim = c->rank - c->n_learn - c->n_rollout;
    }
    // learners: their own communicator (gradient all-reduce, metric reductions)
    if (mpi_err(MPI_Comm_split(MPI_COMM_WORLD, c->learner >= 0 ? 0 : MPI_UNDEFINED, c->rank, &c->learn_comm),
                "MPI_Comm_split (learners)"))
        return -1;
    // push: learner 0 (key 0 -> root 0) + the rollout ranks
    int in_push = c->learner == 0 || c->rollout >= 0;
    if (mpi_err(MPI_Comm_split(MPI_COMM_WORLD, in_push ? 0 : MPI_UNDEFINED, c->learner == 0 ? 0 : c->rank + 1,
                               &c->push_comm),
                "MPI_Comm_split (weights push)"))
        return -1;
    return 0;
}

void comm_free(comm_t *c) {
    for (int i = 0; i < c->n_sends; i++) {
        MPI_Cancel(&c->sends[i].req);
        MPI_Request_free(&c->sends[i].req);
        free(c->sends[i].data);
    }
    free(c->sends);
    if (c->learn_comm != MPI_COMM_NULL) MPI_Comm_free(&c->learn_comm);
    if (c->push_comm != MPI_COMM_NULL) MPI_Comm_free(&c->push_comm);
    memset(c, 0, sizeof *c);
}

int comm_rank_of(const comm_t *c, int role, int index) {
    if (c->single) return 0;
    switch (role) {
    case COMM_LEARNER: return index;
    case COMM_ROLLOUT: return c->n_learn + index;
    default: return c->n_learn + c->n_rollout + index;
    }
}

static int comm_post(comm_t *c, int dst, int type, char *data, size_t n) {
    if (n > (size_t)INT32_MAX) {
        free(data);
        return err_set("message of type %s is %zu bytes (more than one MPI message holds)", msg_type_name(type), n);
    }
    if (c->n_sends == c->cap_sends) {
        int cap = c->cap_sends ? 2 * c->cap_sends : 16;
        comm_send_t *s = realloc(c->sends, (size_t)cap * sizeof *s);
        if (!s) {
            free(data);
            return err_set("out of memory (send queue)");
        }
        c->sends = s, c->cap_sends = cap;
    }
    comm_send_t *s = &c->sends[c->n_sends];
    s->data = data;
    int rc = MPI_Isend(data, (int)n, MPI_BYTE, dst, COMM_TAG(type), MPI_COMM_WORLD, &s->req);
    if (rc != MPI_SUCCESS) {
        free(data);
        return mpi_err(rc, "MPI_Isend");
    }
    c->n_sends++;
    comm_progress(c);
    return 0;
}

int comm_send(comm_t *c, int dst, int type, msgpack_sbuffer *buf) {
    char *data = buf->data;
    size_t n = buf->size;
    if (!data) { // an empty sbuffer: send zero bytes from a real allocation
        data = malloc(1);
        if (!data) return err_set("out of memory");
        n = 0;
    }
    buf->data = NULL, buf->size = 0, buf->alloc = 0;
    return comm_post(c, dst, type, data, n);
}

int comm_send_bytes(comm_t *c, int dst, int type, const void *data, size_t n) {
    char *copy = malloc(n ? n : 1);
    if (!copy) return err_set("out of memory (%zu bytes)", n);
    if (n) memcpy(copy, data, n);
    return comm_post(c, dst, type, copy, n);
}

int comm_progress(comm_t *c) {
    int j = 0;
    for (int i = 0; i < c->n_sends; i++) {
        int done = 0;
        MPI_Test(&c->sends[i].req, &done, MPI_STATUS_IGNORE);
        if (done) free(c->sends[i].data);
        else c->sends[j++] = c->sends[i];
    }
    c->n_sends = j;
    return j;
}

int comm_try_recv(comm_t *c, int type, int src, char **buf, size_t *n, int *from) {
    *buf = NULL, *n = 0;
    comm_progress(c);
    int flag = 0;
    MPI_Status st;
    int rc = MPI_Iprobe(src, COMM_TAG(type), MPI_COMM_WORLD, &flag, &st);
    if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Iprobe");
    if (!flag) return 0;
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    char *b = malloc((size_t)count + 1);
    if (!b) return err_set("out of memory (message of %d bytes)", count);
    rc = MPI_Recv(b, count, MPI_BYTE, st.MPI_SOURCE, COMM_TAG(type), MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        free(b);
        return mpi_err(rc, "MPI_Recv");
    }
    b[count] = 0;
    *buf = b, *n = (size_t)count;
    if (from) *from = st.MPI_SOURCE;
    comm_busy(c);
    return 1;
}

int comm_recv(comm_t *c, int type, int src, char **buf, size_t *n, int *from, volatile sig_atomic_t *stop) {
    for (;;) {
        int r = comm_try_recv(c, type, src, buf, n, from);
        if (r != 0) return r < 0 ? -1 : 0;
        if (stop && *stop) return err_set("interrupted");
        comm_idle(c);
    }
}

void comm_idle(comm_t *c) {
    // 50 us doubling up to 2 ms: a message that arrives while we sleep waits at most 2 ms
    int us = 50 << (c->idle < 6 ? c->idle : 6);
    if (us > 2000) us = 2000;
    if (c->idle < 16) c->idle++;
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
    c->t_idle += us * 1e-6;
}

void comm_busy(comm_t *c) { c->idle = 0; }

int comm_wait_request(comm_t *c, MPI_Request *req) {
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Test");
        if (done) {
            comm_busy(c);
            return 0;
        }
        comm_progress(c);
        comm_idle(c);
    }
}

int comm_barrier(comm_t *c, MPI_Comm comm) {
    if (comm == MPI_COMM_NULL) return 0;
    MPI_Request r;
    if (mpi_err(MPI_Ibarrier(comm, &r), "MPI_Ibarrier")) return -1;
    return comm_wait_request(c, &r);
}

void comm_drain(comm_t *c, double timeout_s) {
    double t0 = comm_now();
    MPI_Request bar;
    int bar_done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &bar);
    while (comm_now() - t0 < timeout_s) {
        int got = 0;
        for (int t = 1; t < MSG_N_TYPES; t++) {
            char *b;
            size_t n;
            if (comm_try_recv(c, t, MPI_ANY_SOURCE, &b, &n, NULL) == 1) {
                free(b);
                got = 1;
            }
        }
        if (!bar_done) MPI_Test(&bar, &bar_done, MPI_STATUS_IGNORE);
        if (bar_done && comm_progress(c) == 0 && !got) break;
        if (!got) comm_idle(c);
    }
    // (a barrier still open after the timeout is left as is: collectives cannot be cancelled)
    for (int i = 0; i < c->n_sends; i++) {
        MPI_Cancel(&c->sends[i].req);
        MPI_Request_free(&c->sends[i].req);
        free(c->sends[i].data);
    }
    c->n_sends = 0;
}
