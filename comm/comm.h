// comm/comm: the MPI role split and the message transport of a run.
//
// Ranks are laid out by role: [0, L) learners (rank 0 = learner 0, which coordinates: it makes the
// tasks, writes the run log and the checkpoints), [L, L+M) rollout ranks, [L+M, W) simulator ranks,
// with M = --rollout-ranks, K = W - L - M = --sim-ranks. One process (W = 1) plays every role: it
// sends its messages to itself through the same codecs and the same MPI calls (MPI works as a
// singleton without a launcher), so a laptop run and a many-rank run exercise one code path.
//
// Messages (comm/msg.h) travel one per MPI message, tag COMM_TAG(type), sent with MPI_Isend (the
// buffer is kept until the send completes: comm_progress) and received with MPI_Iprobe +
// MPI_Get_count + MPI_Recv. A rank that waits never spins a core: comm_idle sleeps with an
// exponential backoff (50 us .. 2 ms) whenever a poll found nothing.
//
// Policy weights go from learner 0 to the rollout ranks as an MSG_WEIGHTS announcement followed by
// the raw F32 values on push_comm (learner 0 + rollout ranks, root 0) with MPI_Ibcast / MPI_Bcast.
#pragma once
#include <mpi.h>
#include <msgpack.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define COMM_TAG(type) (100 + (type))

enum { COMM_LEARNER = 0, COMM_ROLLOUT = 1, COMM_SIM = 2 };

typedef struct {
    MPI_Request req;
    char *data; // owned until the send completes
} comm_send_t;

typedef struct {
    int rank, size;          // MPI_COMM_WORLD
    int n_learn, n_rollout, n_sim;
    int single;              // size == 1: this rank plays every role
    int learner, rollout, sim; // this rank's index within each role, -1 when it does not play it
    MPI_Comm learn_comm;     // the learner ranks (MPI_COMM_NULL elsewhere)
    MPI_Comm push_comm;      // learner 0 + the rollout ranks (MPI_COMM_NULL elsewhere)
    comm_send_t *sends;      // pending non-blocking sends
    int n_sends, cap_sends;
    int idle;                // backoff state of comm_idle
    double t_idle;           // seconds slept in comm_idle
} comm_t;

// Splits MPI_COMM_WORLD (MPI must be initialized). n_sim / n_rollout are ignored when size == 1.
// Errors (err_set) when the counts leave no learner or no rollout rank.
int comm_init(comm_t *c, int n_sim, int n_rollout);
void comm_free(comm_t *c); // frees communicators; pending sends are cancelled
// the world rank of the index-th rank of a role
int comm_rank_of(const comm_t *c, int role, int index);

// sends the sbuffer's bytes as one message of `type` to dst (takes the sbuffer's data: the caller
// must not destroy it afterwards; it is re-initialized empty)
int comm_send(comm_t *c, int dst, int type, msgpack_sbuffer *buf);
// copies n bytes and sends them (for callers that keep their buffer)
int comm_send_bytes(comm_t *c, int dst, int type, const void *data, size_t n);
// non-blocking receive of one message of `type` from src (MPI_ANY_SOURCE allowed): 1 and a
// malloc'd *buf of *n bytes (*from = the sender) when one was there, 0 when none, -1 on error
int comm_try_recv(comm_t *c, int type, int src, char **buf, size_t *n, int *from);
// blocking receive (polls with backoff); returns -1 with err_set("interrupted") when *stop becomes
// nonzero (stop may be NULL)
int comm_recv(comm_t *c, int type, int src, char **buf, size_t *n, int *from,
              volatile sig_atomic_t *stop);
// completes finished sends (frees their buffers); returns the number still pending
int comm_progress(comm_t *c);
// call after a poll that found nothing: sleeps with backoff; comm_busy resets the backoff
void comm_idle(comm_t *c);
void comm_busy(comm_t *c);
// waits for a non-blocking request without spinning (MPI_Test + backoff)
int comm_wait_request(comm_t *c, MPI_Request *req);
// a barrier over comm that does not spin (MPI_Ibarrier + comm_wait_request)
int comm_barrier(comm_t *c, MPI_Comm comm);
// end of the run: waits (bounded by timeout_s) until every pending send completed, receiving and
// discarding whatever still arrives for this rank, then cancels what is left
void comm_drain(comm_t *c, double timeout_s);
