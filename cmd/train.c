// trustee train: the TRUSTEE loop as one MPI job (docs/distributed.md, docs/runlog.md).
//
//   learner 0   makes each step's tasks from the curriculum, sends them to the rollout ranks, takes
//               the trajectories, runs the GRPO update with the other learners, pushes the new
//               weights, updates the curriculum, writes the run log and the checkpoints
//   learners    their share of whole groups: GRPO forward/backward, gradient all-reduce, AdamW
//   rollout     episodes over the policy engine (rollout/rollout.h); simulator requests go to the
//               simulator ranks, or to an in-process simulator when there are none
//   simulator   batches the requests of every rollout rank (sim/server.h)
// One process (no launcher) plays every role through the same messages.
//
// Reproducibility: step n's tasks are drawn from the curriculum after update max(0, n-1-s) and
// rolled out with policy version max(0, n-1-s) (s = --staleness), whatever the timing; each rollout
// rank plays a step's tasks as one deterministic batch (rollout.h). So a run resumed from a
// checkpoint continues exactly as if it had not stopped.
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "comm/comm.h"
#include "comm/msg.h"
#include "comm/runlog.h"
#include "kernels/err.h"
#include "learner/grpo_step.h"
#include "learner/optim.h"
#include "learner/sft.h"
#include "model/chat.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "rollout/rollout.h"
#include "sim/copytask.h"
#include "sim/curriculum.h"
#include "sim/luaenv.h"
#include "sim/oracle.h"
#include "sim/server.h"
#include "train_settings.h"

#define EXIT_PREEMPTED 3
#define BATCH_SHIFT 20                  // task_id = batch << 20 | index in the batch
#define EVAL_BATCH_BASE (1ull << 30)    // batch numbers of evaluation batches
#define EVAL_SEED_BASE (1ull << 62)     // held-out task seeds live above this; training seeds below
#define SFT_SEED_BASE (1ull << 61)      // oracle transcripts for the warm start
#define COPY_MAX_TOKENS 512             // copy warm-up: longer transcripts are left out
#define COPY_MAX_EXAMPLES 20000         // copy warm-up: transcripts made (fresh values each)
#define COPY_KEEP_REPEAT 0.3            // copy warm-up, second part: share of repeat transcripts kept in it
#define COPY_STOP_WINDOW 50            // copy warm-up, repeat part: copy_stop_loss is a mean over this many steps
#define COPY_WARMUP 30                  // copy warm-up, second part: linear learning-rate warmup steps
#define MAX_VERSIONS 8

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------------------------
// state of one rank

typedef struct {
    int64_t version;
    float *data;
} version_t;

typedef struct {
    int64_t batch;
    int eval, expect, n, cap;
    msg_task_t *tasks;
} rbatch_t;

typedef struct {
    int64_t step; // batch key (training step, or EVAL_BATCH_BASE + k)
    int n, cap;
    msg_traj_t *t;
} tbatch_t;

typedef struct {
    settings_t s;
    comm_t c;
    tokenizer_t *tok;
    char envs[RUNLOG_MAX_ENVS][RUNLOG_NAME_LEN];
    int n_envs;
    int eval_d[8], n_eval_d;
    char init_dir[512], raw_dir[512], ckpt_root[512], log_path[512];
    int32_t *vocab;      // --vocab envs: the output vocabulary (sorted ids), n_vocab of them
    int n_vocab;
    int do_sft;          // a new policy warm-started by SFT (no --policy, sft_steps > 0, Lua envs)
    double grpo_seconds; // wall time of the GRPO steps so far (all sessions of the run)
    double t_grpo_start; // this session's start of the GRPO loop
    int64_t eval_step;   // GRPO steps done when the current evaluation runs (its /eval "step")
    int64_t n_floats;
    // learner
    qwen3_t model, grads, ref;
    int have_model, have_ref;
    qwen3_train_t tr;
    int have_tr;
    optim_t opt;
    int have_opt;
    // learner 0 (coordinator)
    runlog_t *log;
    curriculum_t *cur;   // (steps + 1) x n_cur: the curriculum states after v updates (cur_at)
    int n_cur;           // 1 (--curriculum shared) or n_envs (env: one per environment, in envs[] order)
    int64_t trained;     // updates done = current policy version
    int64_t dispatched;  // last training step whose tasks went out
    double *t_dispatch;  // (steps + 2) when each step's tasks went out
    float *snap[MAX_VERSIONS]; // learner 0: the weights of recent versions (ring of s + 1)
    int64_t snap_ver[MAX_VERSIONS];
    MPI_Request push_req;
    int push_pending;
    double t_last_step, t_start;
    // trajectories received (training batches by step, evaluation batches)
    tbatch_t *tb;
    int n_tb, cap_tb;
    // rollout
    qwen3_t rmodel;
    int have_rmodel;
    int64_t rmodel_ver;
    rollout_t *ro;
    version_t vers[MAX_VERSIONS];
    int n_vers;
    rbatch_t *rb;
    int n_rb, cap_rb;
    // simulator (own ranks, or in-process when there are none)
    simserver_t *sim;
    int shutdown;        // a shutdown message arrived
    int exit_code;
    double sft_seconds;
} train_t;

// the name of the evaluation before GRPO: "sft" after the warm start, "init" for a new policy that
// was not warm-started, "start" for a given --policy
static const char *phase_before(const train_t *T) {
    if (T->s.policy[0]) return "start";
    return T->s.sft_steps > 0 && strcmp(T->s.sim, "lm") != 0 ? "sft" : "init";
}

static int parse_lists(train_t *T) {
    const char *e = T->s.envs;
    if (!strcmp(T->s.sim, "lm")) {
        strcpy(T->envs[0], "lm");
        T->n_envs = 1;
    } else if (!strcmp(e, "all")) {
        const char **names;
        int n = luaenv_list_embedded(&names);
        if (n < 1) return err_set("no embedded environments");
        for (int i = 0; i < n && i < RUNLOG_MAX_ENVS; i++) snprintf(T->envs[T->n_envs++], RUNLOG_NAME_LEN, "%s", names[i]);
        free(names);
    } else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", e);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (T->n_envs == RUNLOG_MAX_ENVS) return err_set("envs: at most %d", RUNLOG_MAX_ENVS);
            luaenv_t *le = luaenv_load_embedded(tok);
            if (!le) return err_wrap("envs: ");
            luaenv_free(le);
            snprintf(T->envs[T->n_envs++], 32, "%s", tok);
        }
        if (!T->n_envs) return err_set("envs: empty list");
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s", T->s.eval_difficulties);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int d = atoi(tok);
        if (d < 1 || d > 100 || T->n_eval_d == 8)
            return err_set("eval_difficulties: expected up to 8 values in 1..100, found \"%s\"", tok);
        T->eval_d[T->n_eval_d++] = d;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// weights as one flat F32 vector (qwen3_params order)

static int64_t params_numel(qwen3_t *m) {
    qwen3_param_t ps[512];
    int n = qwen3_params(m, ps, 512);
    int64_t k = 0;
    for (int i = 0; i < n; i++) k += tensor_numel(ps[i].t);
    return k;
}

static void params_pack(qwen3_t *m, float *out) {
    qwen3_param_t ps[512];
    int n = qwen3_params(m, ps, 512);
    for (int i = 0; i < n; i++) {
        int64_t k = tensor_numel(ps[i].t);
        memcpy(out, ps[i].t->data, (size_t)k * sizeof(float));
        out += k;
    }
}

static void params_unpack(qwen3_t *m, const float *in) {
    qwen3_param_t ps[512];
    int n = qwen3_params(m, ps, 512);
    for (int i = 0; i < n; i++) {
        int64_t k = tensor_numel(ps[i].t);
        memcpy(ps[i].t->data, in, (size_t)k * sizeof(float));
        in += k;
    }
}

// a flat vector written as F32 safetensors under the HF names of m's parameters
static int params_write_flat(qwen3_t *m, const float *data, const char *path) {
    qwen3_param_t ps[512];
    int n = qwen3_params(m, ps, 512);
    st_tensor_t *t = calloc((size_t)n, sizeof *t);
    if (!t) return err_set("out of memory");
    for (int i = 0; i < n; i++) {
        int64_t k = tensor_numel(ps[i].t);
        t[i].name = ps[i].name, t[i].dtype = DTYPE_F32, t[i].ndim = ps[i].t->ndim;
        for (int d = 0; d < ps[i].t->ndim; d++) t[i].shape[d] = ps[i].t->shape[d];
        t[i].data = data, t[i].nbytes = (size_t)k * sizeof(float);
        data += k;
    }
    int rc = safetensors_write(path, t, n);
    free(t);
    return rc;
}

static int params_read_flat(qwen3_t *m, const char *path, float *out) {
    safetensors_t st;
    if (safetensors_open(&st, path)) return -1;
    qwen3_param_t ps[512];
    int n = qwen3_params(m, ps, 512), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t k = tensor_numel(ps[i].t);
        const st_tensor_t *x = safetensors_find(&st, ps[i].name);
        if (!x || x->dtype != DTYPE_F32 || x->nbytes != (size_t)k * sizeof(float))
            rc = err_set("%s: tensor %s: expected F32 with %lld values", path, ps[i].name, (long long)k);
        else memcpy(out, x->data, x->nbytes);
        out += k;
    }
    safetensors_close(&st);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// tasks

static int64_t version_for_step(const train_t *T, int64_t n) {
    int64_t v = n - 1 - T->s.staleness;
    return v < 0 ? 0 : v;
}

static int n_eval_tasks(const train_t *T) { return T->n_envs * T->n_eval_d * (int)T->s.eval_tasks; }

static int batch_size(const train_t *T, int eval) { return eval ? n_eval_tasks(T) : (int)T->s.tasks; }

// tasks of this batch that go to rollout rank r
static int batch_share(const train_t *T, int eval, int r) {
    int n = batch_size(T, eval), k = 0;
    for (int i = 0; i < n; i++) k += i % T->c.n_rollout == r;
    return k;
}

static int send_task(train_t *T, const msg_task_t *t, int idx) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = msg_task_encode(t, &sb);
    if (!rc) rc = comm_send(&T->c, comm_rank_of(&T->c, COMM_ROLLOUT, idx % T->c.n_rollout), MSG_TASK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

// the curriculum of environment e after v updates (e is ignored with one shared curriculum)
static curriculum_t *cur_at(const train_t *T, int64_t v, int e) {
    return &T->cur[v * T->n_cur + (T->n_cur > 1 ? e : 0)];
}

static int env_index(const train_t *T, const char *name) {
    for (int e = 0; e < T->n_envs; e++)
        if (!strcmp(T->envs[e], name)) return e;
    return -1;
}

static int dispatch_step(train_t *T, int64_t n) {
    for (int g = 0; g < T->s.tasks; g++) {
        uint64_t h = mix64(mix64((uint64_t)T->s.seed) ^ ((uint64_t)n << 24) ^ (uint64_t)g);
        int e = (int)(mix64(h) % (uint64_t)T->n_envs);
        curriculum_aspects_t a;
        curriculum_task_aspects(cur_at(T, version_for_step(T, n), e), (uint64_t)g, &a);
        json_t *aj = curriculum_aspects_json(&a);
        char *asp = json_dumps(aj, JSON_COMPACT);
        json_decref(aj);
        msg_task_t t = {.step = n, .task_id = ((uint64_t)n << BATCH_SHIFT) | (uint64_t)g, .group = g,
                        .group_size = (int32_t)T->s.group, .policy_version = version_for_step(T, n), .eval = 0,
                        .difficulty = a.difficulty, .seed = h >> 2, // training seeds < 2^62
                        .env = T->envs[e], .aspects = asp};
        int rc = asp ? send_task(T, &t, g) : err_set("out of memory");
        free(asp);
        if (rc) return -1;
    }
    T->t_dispatch[n] = now_s();
    T->dispatched = n;
    return 0;
}

// the held-out set: every (env, D, k), aspects = the curriculum map at D, seeds above EVAL_SEED_BASE
static int dispatch_eval(train_t *T, int64_t k) {
    int i = 0;
    for (int e = 0; e < T->n_envs; e++)
        for (int d = 0; d < T->n_eval_d; d++)
            for (int j = 0; j < T->s.eval_tasks; j++, i++) {
                curriculum_aspects_t a;
                curriculum_aspects_at(T->eval_d[d], &a);
                json_t *aj = curriculum_aspects_json(&a);
                char *asp = json_dumps(aj, JSON_COMPACT);
                json_decref(aj);
                uint64_t seed = EVAL_SEED_BASE + (mix64(((uint64_t)e << 40) ^ ((uint64_t)T->eval_d[d] << 20) ^ (uint64_t)j) >> 3);
                msg_task_t t = {.step = 0, .task_id = ((EVAL_BATCH_BASE + (uint64_t)k) << BATCH_SHIFT) | (uint64_t)i,
                                .group = i, .group_size = 1, .policy_version = T->trained, .eval = 1,
                                .difficulty = T->eval_d[d], .seed = seed, .env = T->envs[e], .aspects = asp};
                int rc = asp ? send_task(T, &t, i) : err_set("out of memory");
                free(asp);
                if (rc) return -1;
            }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the simulator transport of the rollout role

static int sim_local(train_t *T, const msg_sim_req_t *reqs, int n, msg_sim_rep_t **reps) {
    // through the codecs, as between ranks
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msg_sim_req_t *dr = NULL;
    int dn = 0, rc = msg_sim_reqs_encode(reqs, n, &sb);
    if (!rc) rc = msg_sim_reqs_decode(sb.data, sb.size, &dr, &dn);
    msgpack_sbuffer_destroy(&sb);
    if (rc) return -1;
    simserver_req_t *q = calloc((size_t)(dn ? dn : 1), sizeof *q);
    simserver_rep_t *p = calloc((size_t)(dn ? dn : 1), sizeof *p);
    msg_sim_rep_t *mr = calloc((size_t)(dn ? dn : 1), sizeof *mr);
    if (!q || !p || !mr) rc = err_set("out of memory");
    for (int i = 0; i < dn && !rc; i++)
        q[i] = (simserver_req_t){dr[i].kind, dr[i].task_id, dr[i].episode, dr[i].payload};
    if (!rc) rc = simserver_handle(T->sim, q, dn, p);
    if (!rc) {
        for (int i = 0; i < dn; i++)
            mr[i] = (msg_sim_rep_t){.req_id = dr[i].req_id, .status = p[i].status, .reason = p[i].reason,
                                    .payload = p[i].payload ? p[i].payload : ""};
        msgpack_sbuffer_init(&sb);
        rc = msg_sim_reps_encode(mr, dn, &sb);
        int m = 0;
        if (!rc) rc = msg_sim_reps_decode(sb.data, sb.size, reps, &m);
        msgpack_sbuffer_destroy(&sb);
        if (!rc && m != n) rc = err_set("simulator: %d replies to %d requests", m, n);
        for (int i = 0; i < dn; i++) free(p[i].payload);
    }
    free(q), free(p), free(mr);
    msg_sim_reqs_free(dr, dn);
    return rc;
}

static int check_shutdown(train_t *T) {
    char *b;
    size_t len;
    int r = comm_try_recv(&T->c, MSG_SHUTDOWN, MPI_ANY_SOURCE, &b, &len, NULL);
    if (r == 1) {
        msg_shutdown_t m = {0};
        if (msg_shutdown_decode(b, len, &m) == 0) T->exit_code = m.code;
        msg_shutdown_free(&m);
        free(b);
        T->shutdown = 1;
    }
    return T->shutdown;
}

static int sim_transport(void *ud, const msg_sim_req_t *reqs, int n, msg_sim_rep_t **reps) {
    train_t *T = ud;
    *reps = NULL;
    if (T->c.n_sim == 0) return sim_local(T, reqs, n, reps);
    const int K = T->c.n_sim;
    int *dst = malloc((size_t)(n ? n : 1) * sizeof *dst);
    msg_sim_req_t *sub = malloc((size_t)(n ? n : 1) * sizeof *sub);
    msg_sim_rep_t *out = calloc((size_t)(n ? n : 1), sizeof *out);
    int rc = (!dst || !sub || !out) ? err_set("out of memory") : 0;
    for (int i = 0; i < n && !rc; i++) dst[i] = (int)(reqs[i].task_id % (uint64_t)K);
    // one message per simulator rank, then one reply from each
    for (int k = 0; k < K && !rc; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (dst[i] == k) sub[m++] = reqs[i];
        if (!m) continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rc = msg_sim_reqs_encode(sub, m, &sb);
        if (!rc) rc = comm_send(&T->c, comm_rank_of(&T->c, COMM_SIM, k), MSG_SIM_REQ, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    for (int k = 0; k < K && !rc; k++) {
        int m = 0;
        for (int i = 0; i < n; i++) m += dst[i] == k;
        if (!m) continue;
        char *b = NULL;
        size_t len = 0;
        for (;;) {
            int r = comm_try_recv(&T->c, MSG_SIM_REP, comm_rank_of(&T->c, COMM_SIM, k), &b, &len, NULL);
            if (r < 0) {
                rc = -1;
                break;
            }
            if (r == 1) break;
            if (check_shutdown(T)) {
                rc = err_set("shut down while waiting for the simulator");
                break;
            }
            comm_idle(&T->c);
        }
        if (rc) break;
        msg_sim_rep_t *got = NULL;
        int gn = 0;
        rc = msg_sim_reps_decode(b, len, &got, &gn);
        free(b);
        if (!rc && gn != m) rc = err_set("simulator rank %d: %d replies to %d requests", k, gn, m);
        for (int i = 0, j = 0; i < n && !rc; i++)
            if (dst[i] == k) {
                out[i] = got[j];
                memset(&got[j], 0, sizeof got[j]);
                j++;
            }
        msg_sim_reps_free(got, gn);
    }
    free(dst), free(sub);
    if (rc) {
        msg_sim_reps_free(out, n);
        return -1;
    }
    *reps = out;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// roles: simulator rank

static int sim_poll(train_t *T) {
    // drain every request batch that is here, answer them as one batch
    enum { MAXB = 64 };
    char *bufs[MAXB];
    size_t lens[MAXB];
    int from[MAXB], nb = 0;
    while (nb < MAXB) {
        int r = comm_try_recv(&T->c, MSG_SIM_REQ, MPI_ANY_SOURCE, &bufs[nb], &lens[nb], &from[nb]);
        if (r < 0) return -1;
        if (r == 0) break;
        nb++;
    }
    if (!nb) return 0;
    msg_sim_req_t *rq[MAXB] = {0};
    int rn[MAXB] = {0}, total = 0, rc = 0;
    for (int b = 0; b < nb; b++) {
        if (msg_sim_reqs_decode(bufs[b], lens[b], &rq[b], &rn[b])) {
            // a malformed batch: answer nothing to it but keep serving (the sender will time out)
            fprintf(stderr, "trustee train (sim rank %d): dropped a malformed request batch from rank %d: %s\n",
                    T->c.sim, from[b], err_msg());
            rq[b] = NULL, rn[b] = 0;
        }
        total += rn[b];
        free(bufs[b]);
    }
    simserver_req_t *q = calloc((size_t)(total ? total : 1), sizeof *q);
    simserver_rep_t *p = calloc((size_t)(total ? total : 1), sizeof *p);
    if (!q || !p) rc = err_set("out of memory");
    for (int b = 0, k = 0; b < nb && !rc; b++)
        for (int i = 0; i < rn[b]; i++, k++)
            q[k] = (simserver_req_t){rq[b][i].kind, rq[b][i].task_id, rq[b][i].episode, rq[b][i].payload};
    if (!rc) rc = simserver_handle(T->sim, q, total, p);
    for (int b = 0, k = 0; b < nb && !rc; b++) {
        if (!rq[b]) continue;
        msg_sim_rep_t *mr = calloc((size_t)(rn[b] ? rn[b] : 1), sizeof *mr);
        if (!mr) {
            rc = err_set("out of memory");
            break;
        }
        for (int i = 0; i < rn[b]; i++, k++)
            mr[i] = (msg_sim_rep_t){.req_id = rq[b][i].req_id, .status = p[k].status, .reason = p[k].reason,
                                    .payload = p[k].payload ? p[k].payload : ""};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rc = msg_sim_reps_encode(mr, rn[b], &sb);
        if (!rc) rc = comm_send(&T->c, from[b], MSG_SIM_REP, &sb);
        msgpack_sbuffer_destroy(&sb);
        free(mr);
    }
    for (int k = 0; k < total; k++) free(p[k].payload);
    free(q), free(p);
    for (int b = 0; b < nb; b++) msg_sim_reqs_free(rq[b], rn[b]);
    return rc ? -1 : 1;
}

// learner 0 keeps the weights of versions n-s .. n in ring slots 0..s; the special versions of the
// evaluations outside GRPO (-1: the random init, -2: the SFT baseline) get the last slots
static int snap_slot(const train_t *T, int64_t v) {
    return v < 0 ? MAX_VERSIONS + (int)(v < -2 ? -2 : v) : (int)(v % (T->s.staleness + 1));
}

// ---------------------------------------------------------------------------------------------
// roles: rollout rank

static int rollout_take_weights(train_t *T) {
    char *b;
    size_t len;
    int got = 0;
    for (;;) {
        int r = comm_try_recv(&T->c, MSG_WEIGHTS, comm_rank_of(&T->c, COMM_LEARNER, 0), &b, &len, NULL);
        if (r <= 0) return r < 0 ? -1 : got;
        msg_weights_t w;
        int rc = msg_weights_decode(b, len, &w);
        free(b);
        if (rc) return -1;
        if (w.n_floats != T->n_floats)
            return err_set("weights version %lld: %lld values, expected %lld", (long long)w.version,
                           (long long)w.n_floats, (long long)T->n_floats);
        // a free slot: the oldest version below every queued batch's need
        if (T->n_vers == MAX_VERSIONS) return err_set("more than %d policy versions queued", MAX_VERSIONS);
        version_t *v = &T->vers[T->n_vers];
        if (!v->data) v->data = malloc((size_t)T->n_floats * sizeof(float));
        if (!v->data) return err_set("out of memory (policy weights)");
        if (T->c.single) memcpy(v->data, T->snap[snap_slot(T, w.version)], (size_t)T->n_floats * sizeof(float));
        else {
            for (int64_t off = 0; off < T->n_floats; off += (1 << 30)) {
                int cnt = (int)(T->n_floats - off < (1 << 30) ? T->n_floats - off : (1 << 30));
                MPI_Request req;
                if (MPI_Ibcast(v->data + off, cnt, MPI_FLOAT, 0, T->c.push_comm, &req) != MPI_SUCCESS ||
                    comm_wait_request(&T->c, &req))
                    return err_set("weights broadcast failed");
            }
        }
        if (msg_checksum(v->data, (size_t)T->n_floats * sizeof(float)) != w.checksum)
            return err_set("weights version %lld: checksum mismatch", (long long)w.version);
        v->version = w.version;
        T->n_vers++;
        got = 1;
    }
}

static int rollout_take_tasks(train_t *T) {
    char *b;
    size_t len;
    int got = 0;
    for (;;) {
        int r = comm_try_recv(&T->c, MSG_TASK, comm_rank_of(&T->c, COMM_LEARNER, 0), &b, &len, NULL);
        if (r <= 0) return r < 0 ? -1 : got;
        msg_task_t t;
        int rc = msg_task_decode(b, len, &t);
        free(b);
        if (rc) return -1;
        int64_t key = (int64_t)(t.task_id >> BATCH_SHIFT);
        rbatch_t *rb = NULL;
        for (int i = 0; i < T->n_rb; i++)
            if (T->rb[i].batch == key) rb = &T->rb[i];
        if (!rb) {
            if (T->n_rb == T->cap_rb) {
                int cap = T->cap_rb ? 2 * T->cap_rb : 8;
                rbatch_t *x = realloc(T->rb, (size_t)cap * sizeof *x);
                if (!x) return err_set("out of memory");
                T->rb = x, T->cap_rb = cap;
            }
            rb = &T->rb[T->n_rb++];
            memset(rb, 0, sizeof *rb);
            rb->batch = key, rb->eval = t.eval, rb->expect = batch_share(T, t.eval, T->c.rollout);
        }
        if (rb->n == rb->cap) {
            int cap = rb->cap ? 2 * rb->cap : 16;
            msg_task_t *x = realloc(rb->tasks, (size_t)cap * sizeof *x);
            if (!x) return err_set("out of memory");
            rb->tasks = x, rb->cap = cap;
        }
        rb->tasks[rb->n++] = t;
        got = 1;
    }
}

static int send_traj(train_t *T, const msg_traj_t *t) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = msg_traj_encode(t, &sb);
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    // training trajectories go to the learner of their group, and to learner 0 for the run log
    int learner = t->eval ? 0 : t->group % T->c.n_learn;
    rc = comm_send_bytes(&T->c, comm_rank_of(&T->c, COMM_LEARNER, learner), MSG_TRAJ, sb.data, sb.size);
    if (!rc && learner != 0) rc = comm_send_bytes(&T->c, comm_rank_of(&T->c, COMM_LEARNER, 0), MSG_TRAJ, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int rollout_poll(train_t *T) {
    int progress = 0, r;
    if ((r = rollout_take_weights(T)) < 0) return -1;
    progress |= r;
    if ((r = rollout_take_tasks(T)) < 0) return -1;
    progress |= r;
    char *b;
    size_t len;
    while (comm_try_recv(&T->c, MSG_CURRIC, MPI_ANY_SOURCE, &b, &len, NULL) == 1) {
        msg_curric_t m = {0};
        int rc = msg_curric_decode(b, len, &m);
        free(b);
        msg_curric_free(&m);
        if (rc) return -1;
        progress = 1;
    }
    if (!T->n_rb || T->rb[0].n < T->rb[0].expect) return progress;
    rbatch_t *rb = &T->rb[0];
    int64_t need = rb->tasks[0].policy_version;
    int vi = -1;
    for (int i = 0; i < T->n_vers; i++)
        if (T->vers[i].version == need) vi = i;
    if (vi < 0) return progress; // its weights have not arrived yet
    if (T->rmodel_ver != need) {
        params_unpack(&T->rmodel, T->vers[vi].data);
        if (qwen3_output_vocab_refresh(&T->rmodel)) return -1;
        T->rmodel_ver = need;
    }
    // versions older than this one are never needed again (batches come in version order)
    for (int i = 0; i < T->n_vers;) {
        if (T->vers[i].version < need) {
            version_t old = T->vers[i];
            memmove(&T->vers[i], &T->vers[i + 1], (size_t)(T->n_vers - i - 1) * sizeof old);
            T->vers[T->n_vers - 1] = old; // keep the buffer for reuse
            T->vers[T->n_vers - 1].version = -1;
            T->n_vers--;
        } else i++;
    }
    // the batch in chunks of at most max_tasks tasks (evaluation batches can be large)
    rollout_stats_t st;
    int rc = 0;
    int chunk = rb->eval ? 32 : (int)T->s.tasks;
    for (int a = 0; a < rb->n && !rc; a += chunk) {
        int m = rb->n - a < chunk ? rb->n - a : chunk;
        msg_traj_t *tr = NULL;
        int nt = 0;
        rc = rollout_run(T->ro, rb->tasks + a, m, &tr, &nt, &st, NULL);
        for (int i = 0; i < nt; i++) {
            // this rank's rollout timing rides along in the details (the run log's time split)
            json_t *d = json_loads(tr[i].reward_details, 0, NULL);
            if (d) {
                json_t *ro = json_object();
                json_object_set_new(ro, "t_gen", json_real(st.t_gen));
                json_object_set_new(ro, "t_sim", json_real(st.t_sim));
                json_object_set_new(ro, "sampled_tokens", json_integer(st.sampled_tokens));
                json_object_set_new(d, "rollout", ro);
                char *s = json_dumps(d, JSON_COMPACT);
                json_decref(d);
                if (s) free(tr[i].reward_details), tr[i].reward_details = s;
            }
            if (!rc) rc = send_traj(T, &tr[i]);
            msg_traj_free(&tr[i]);
        }
        free(tr);
    }
    for (int i = 0; i < rb->n; i++) msg_task_free(&rb->tasks[i]);
    free(rb->tasks);
    memmove(&T->rb[0], &T->rb[1], (size_t)(T->n_rb - 1) * sizeof *T->rb);
    T->n_rb--;
    return rc ? -1 : 1;
}

// ---------------------------------------------------------------------------------------------
// roles: learners

static tbatch_t *tbatch_get(train_t *T, int64_t step, int create) {
    for (int i = 0; i < T->n_tb; i++)
        if (T->tb[i].step == step) return &T->tb[i];
    if (!create) return NULL;
    if (T->n_tb == T->cap_tb) {
        int cap = T->cap_tb ? 2 * T->cap_tb : 8;
        tbatch_t *x = realloc(T->tb, (size_t)cap * sizeof *x);
        if (!x) return NULL;
        T->tb = x, T->cap_tb = cap;
    }
    tbatch_t *b = &T->tb[T->n_tb++];
    memset(b, 0, sizeof *b);
    b->step = step;
    return b;
}

static void tbatch_drop(train_t *T, int64_t step) {
    for (int i = 0; i < T->n_tb; i++)
        if (T->tb[i].step == step) {
            for (int k = 0; k < T->tb[i].n; k++) msg_traj_free(&T->tb[i].t[k]);
            free(T->tb[i].t);
            T->tb[i] = T->tb[--T->n_tb];
            return;
        }
}

static int learner_take_trajs(train_t *T) {
    char *b;
    size_t len;
    int got = 0;
    for (;;) {
        int r = comm_try_recv(&T->c, MSG_TRAJ, MPI_ANY_SOURCE, &b, &len, NULL);
        if (r <= 0) return r < 0 ? -1 : got;
        msg_traj_t t;
        int rc = msg_traj_decode(b, len, &t);
        free(b);
        if (rc) return -1;
        int64_t key = t.eval ? (int64_t)(t.task_id >> BATCH_SHIFT) : t.step;
        tbatch_t *tb = tbatch_get(T, key, 1);
        if (!tb) {
            msg_traj_free(&t);
            return err_set("out of memory");
        }
        if (tb->n == tb->cap) {
            int cap = tb->cap ? 2 * tb->cap : 64;
            msg_traj_t *x = realloc(tb->t, (size_t)cap * sizeof *x);
            if (!x) {
                msg_traj_free(&t);
                return err_set("out of memory");
            }
            tb->t = x, tb->cap = cap;
        }
        tb->t[tb->n++] = t;
        got = 1;
    }
}

// trajectories this learner trains on in a step (learner 0 also holds everyone's for the log)
static int mine(const train_t *T, const msg_traj_t *t) { return t->group % T->c.n_learn == T->c.learner; }

static int expected_here(const train_t *T) {
    int k = 0;
    for (int g = 0; g < T->s.tasks; g++)
        k += (T->c.learner == 0 || g % T->c.n_learn == T->c.learner) ? (int)T->s.group : 0;
    return k;
}

// ---------------------------------------------------------------------------------------------
// learner 0: weights push, run log, checkpoints

static int push_weights(train_t *T, int64_t version) {
    int slot = snap_slot(T, version);
    if (T->push_pending) { // the previous broadcast must finish before its buffer can change
        if (comm_wait_request(&T->c, &T->push_req)) return -1;
        T->push_pending = 0;
    }
    if (!T->snap[slot]) T->snap[slot] = malloc((size_t)T->n_floats * sizeof(float));
    if (!T->snap[slot]) return err_set("out of memory (weights snapshot)");
    if (T->snap_ver[slot] != version) params_pack(&T->model, T->snap[slot]);
    T->snap_ver[slot] = version;
    msg_weights_t w = {.version = version, .step = version > 0 ? version : 0, .n_floats = T->n_floats,
                       .checksum = msg_checksum(T->snap[slot], (size_t)T->n_floats * sizeof(float))};
    for (int r = 0; r < T->c.n_rollout; r++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        int rc = msg_weights_encode(&w, &sb);
        if (!rc) rc = comm_send(&T->c, comm_rank_of(&T->c, COMM_ROLLOUT, r), MSG_WEIGHTS, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (rc) return -1;
    }
    if (!T->c.single) {
        if (T->n_floats > (1 << 30)) return err_set("weights push: more than 2^30 values per broadcast");
        if (MPI_Ibcast(T->snap[slot], (int)T->n_floats, MPI_FLOAT, 0, T->c.push_comm, &T->push_req) != MPI_SUCCESS)
            return err_set("MPI_Ibcast (weights) failed");
        T->push_pending = 1;
    }
    return 0;
}

// a snapshot slot filled from a file (resume) without pushing
static int snap_load(train_t *T, int64_t version, const char *path) {
    int slot = snap_slot(T, version);
    if (!T->snap[slot]) T->snap[slot] = malloc((size_t)T->n_floats * sizeof(float));
    if (!T->snap[slot]) return err_set("out of memory");
    if (params_read_flat(&T->model, path, T->snap[slot])) return -1;
    T->snap_ver[slot] = version;
    return 0;
}

static int rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    return rmdir(path);
}

// checkpoint steps present in ckpt_root, ascending
static int ckpt_list(const train_t *T, int64_t *steps, int cap) {
    DIR *d = opendir(T->ckpt_root);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        long long s;
        char tail;
        if (sscanf(e->d_name, "step-%lld%c", &s, &tail) == 1) steps[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            int64_t x = steps[j];
            steps[j] = steps[j - 1], steps[j - 1] = x;
        }
    return n;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set("%s: cannot write", path);
    int ok = fputs(text, f) >= 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : err_set("%s: write failed", path);
}

static int checkpoint_save(train_t *T, int64_t step) {
    char dir[700], tmp[720], p[800];
    snprintf(dir, sizeof dir, "%s/step-%06lld", T->ckpt_root, (long long)step);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rm_rf(tmp);
    if (checkpoint_mkdirs(tmp)) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (qwen3_params_write(&T->model, p)) return -1;
    qwen3_config_t cfg = T->model.cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    snprintf(p, sizeof p, "%s/config.json", tmp);
    if (qwen3_config_write(&cfg, p)) return -1;
    if (checkpoint_write_tokenizer(T->init_dir, tmp)) return -1;
    snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
    if (optim_save(&T->opt, p)) return -1;
    // the older versions the next steps' rollouts still need (staleness)
    for (int64_t v = step - T->s.staleness; v < step; v++) {
        if (v < 0) continue;
        int slot = snap_slot(T, v);
        if (T->snap_ver[slot] != v) return err_set("checkpoint: weights of version %lld are not at hand", (long long)v);
        snprintf(p, sizeof p, "%s/policy-v%lld.safetensors", tmp, (long long)v);
        if (params_write_flat(&T->model, T->snap[slot], p)) return -1;
    }
    json_t *st = json_object();
    json_object_set_new(st, "format", json_string("trustee-checkpoint"));
    json_object_set_new(st, "format_version", json_integer(1));
    json_object_set_new(st, "step", json_integer(step));
    json_object_set_new(st, "grpo_seconds", json_real(T->grpo_seconds + (now_s() - T->t_grpo_start)));
    json_object_set_new(st, "settings", settings_json(&T->s));
    json_t *cur = json_array();
    for (int64_t v = step - T->s.staleness; v <= step; v++) {
        if (v < 0) continue;
        for (int e = 0; e < T->n_cur; e++) {
            char *c = curriculum_to_json(cur_at(T, v, e));
            json_t *o = json_object();
            json_object_set_new(o, "version", json_integer(v));
            if (T->n_cur > 1) json_object_set_new(o, "env", json_string(T->envs[e]));
            json_object_set_new(o, "state", json_string(c ? c : ""));
            free(c);
            json_array_append_new(cur, o);
        }
    }
    json_object_set_new(st, "curriculum", cur);
    runlog_pos_t pos;
    runlog_position(T->log, &pos);
    json_t *pj = json_object();
    json_object_set_new(pj, "steps", json_integer(pos.steps));
    json_object_set_new(pj, "curriculum", json_integer(pos.curriculum));
    json_object_set_new(pj, "evals", json_integer(pos.evals));
    json_object_set_new(pj, "trajs", json_integer(pos.trajs));
    json_object_set_new(pj, "tokens", json_integer(pos.tokens));
    json_object_set_new(pj, "text", json_integer(pos.text));
    json_object_set_new(pj, "details", json_integer(pos.details));
    json_object_set_new(st, "runlog", pj);
    char *text = json_dumps(st, JSON_INDENT(1));
    json_decref(st);
    snprintf(p, sizeof p, "%s/state.json", tmp);
    int rc = text ? write_file(p, text) : err_set("out of memory");
    free(text);
    if (rc) return -1;
    rm_rf(dir);
    if (rename(tmp, dir)) return err_set("%s: rename to %s failed: %s", tmp, dir, strerror(errno));
    // keep the last keep_ckpts
    int64_t steps[4096];
    int n = ckpt_list(T, steps, 4096);
    for (int i = 0; i + T->s.keep_ckpts < n; i++) {
        snprintf(p, sizeof p, "%s/step-%06lld", T->ckpt_root, (long long)steps[i]);
        rm_rf(p);
    }
    return 0;
}

static void wilson(int k, int n, double *lo, double *hi) {
    if (n == 0) {
        *lo = 0, *hi = 1;
        return;
    }
    double z = 1.96, p = (double)k / n, d = 1 + z * z / n;
    double c = (p + z * z / (2.0 * n)) / d, h = z * sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
    *lo = c - h < 0 ? 0 : c - h, *hi = c + h > 1 ? 1 : c + h;
}

// the rollout rank's timing rides in a trajectory's details under "rollout"; it is taken out here
// (timings are not part of the reproducible record) and returned
static void take_rollout_timing(msg_traj_t *t, double *t_gen, double *t_sim) {
    json_t *d = json_loads(t->reward_details, 0, NULL);
    json_t *ro = json_object_get(d, "rollout");
    if (ro) {
        double g = json_number_value(json_object_get(ro, "t_gen")), s = json_number_value(json_object_get(ro, "t_sim"));
        if (t_gen && g > *t_gen) *t_gen = g;
        if (t_sim && s > *t_sim) *t_sim = s;
        json_object_del(d, "rollout");
        char *txt = json_dumps(d, JSON_COMPACT);
        if (txt) free(t->reward_details), t->reward_details = txt;
    }
    json_decref(d);
}

typedef struct {
    int64_t version; // the policy version evaluated
    int n[16][8], ok[16][8];
    double rw[16][8];
} eval_table_t;

static int log_eval(train_t *T, tbatch_t *tb, const char *phase, eval_table_t *et) {
    memset(et, 0, sizeof *et);
    et->version = T->trained;
    for (int i = 0; i < tb->n; i++) {
        msg_traj_t *t = &tb->t[i];
        int e = 0, d = 0;
        while (e < T->n_envs && strcmp(T->envs[e], t->env)) e++;
        while (d < T->n_eval_d && T->eval_d[d] != t->difficulty) d++;
        if (e == T->n_envs || d == T->n_eval_d) continue;
        take_rollout_timing(t, NULL, NULL);
        et->n[e][d]++;
        et->ok[e][d] += t->abort != TRAJ_SIM_ERROR && t->reward >= 1.0f - 1e-6f;
        et->rw[e][d] += t->abort != TRAJ_SIM_ERROR ? t->reward : -1.0;
        runlog_traj_t row = {.step = T->eval_step, .task_id = t->task_id, .group = t->group, .index = t->index,
                             .policy_version = t->policy_version, .eval = 1, .difficulty = t->difficulty,
                             .reward = t->reward, .score = t->score, .turns = t->turns, .tool_calls = t->tool_calls,
                             .abort = t->abort, .truncated = t->truncated, .n_tokens = t->n_tokens,
                             .n_prompt = t->n_prompt};
        snprintf(row.env, sizeof row.env, "%s", t->env);
        if (runlog_append_traj(T->log, &row, t->ids, t->logprobs, t->mask, t->transcript, t->reward_details))
            return -1;
    }
    for (int d = 0; d < T->n_eval_d; d++) {
        int N = 0, K = 0;
        double R = 0;
        for (int e = 0; e <= T->n_envs; e++) {
            runlog_eval_t row = {.step = T->eval_step, .difficulty = T->eval_d[d]};
            snprintf(row.phase, sizeof row.phase, "%s", phase);
            if (e < T->n_envs) {
                snprintf(row.env, sizeof row.env, "%s", T->envs[e]);
                row.n = et->n[e][d], row.successes = et->ok[e][d];
                row.mean_reward = et->n[e][d] ? et->rw[e][d] / et->n[e][d] : 0;
                N += row.n, K += row.successes, R += et->rw[e][d];
            } else {
                snprintf(row.env, sizeof row.env, "all");
                row.n = N, row.successes = K, row.mean_reward = N ? R / N : 0;
            }
            if (runlog_append_eval(T->log, &row)) return -1;
        }
    }
    return runlog_flush(T->log);
}

static void print_eval(const train_t *T, const char *phase, const eval_table_t *et) {
    printf("held-out success (%s, policy version %lld; %ld tasks per environment and difficulty, greedy):\n", phase,
           (long long)et->version, T->s.eval_tasks);
    for (int d = 0; d < T->n_eval_d; d++) {
        int N = 0, K = 0;
        for (int e = 0; e < T->n_envs; e++) N += et->n[e][d], K += et->ok[e][d];
        double lo, hi;
        wilson(K, N, &lo, &hi);
        printf("  D=%-3d %3d/%-3d = %5.1f%%  (95%% CI %4.1f-%4.1f%%) |", T->eval_d[d], K, N, N ? 100.0 * K / N : 0,
               100 * lo, 100 * hi);
        for (int e = 0; e < T->n_envs; e++) printf(" %s %d/%d", T->envs[e], et->ok[e][d], et->n[e][d]);
        printf("\n");
    }
    fflush(stdout);
}

// runs an evaluation batch (learner 0 dispatches, every role works until it is back)
static int run_eval(train_t *T, int64_t k, const char *phase, eval_table_t *et);

// step n's curriculum update, from the states after update n - 1: one shared D moved by the batch
// mean (the learners' all-reduced sums), or one D per environment moved by the mean reward of that
// environment's trajectories (learner 0 has them all); an environment without a trajectory this
// step stays where it is. The same trajectories count as for the batch mean: all but simulator
// failures. cs[e]: what update e did; all: the whole step's (with one D per environment: their
// mean D before and after, rounded half up, and the batch-mean reward).
static int update_curricula(train_t *T, int64_t n, const tbatch_t *tb, const learner_step_stats_t *st,
                            curriculum_stats_t *cs, curriculum_stats_t *all) {
    double batch_mean = st->n_rewarded ? st->reward_sum / st->n_rewarded : 0;
    for (int e = 0; e < T->n_cur; e++) *cur_at(T, n, e) = *cur_at(T, n - 1, e);
    if (T->n_cur == 1) {
        if (curriculum_update_mean(cur_at(T, n, 0), batch_mean, st->n_rewarded, &cs[0])) return -1;
        *all = cs[0];
        return 0;
    }
    double sum[RUNLOG_MAX_ENVS] = {0};
    int k[RUNLOG_MAX_ENVS] = {0};
    for (int i = 0; i < tb->n; i++) {
        const msg_traj_t *t = &tb->t[i];
        int e = env_index(T, t->env);
        if (e < 0) return err_set("step %lld: a trajectory of environment \"%s\", not one of --envs", (long long)n, t->env);
        if (t->abort != TRAJ_SIM_ERROR) sum[e] += t->reward, k[e]++;
    }
    int d0 = 0, d1 = 0;
    for (int e = 0; e < T->n_cur; e++) {
        if (curriculum_update_mean(cur_at(T, n, e), k[e] ? sum[e] / k[e] : 0, k[e], &cs[e])) return -1;
        d0 += cs[e].d_before, d1 += cs[e].d_after;
    }
    *all = cs[0];
    all->d_before = (2 * d0 + T->n_cur) / (2 * T->n_cur);
    all->d_after = (2 * d1 + T->n_cur) / (2 * T->n_cur);
    all->move = (all->d_after > all->d_before) - (all->d_after < all->d_before);
    all->mean_reward = batch_mean, all->n_rewards = st->n_rewarded;
    return 0;
}

// the curriculum states after update v as JSON text (malloc'd): the state, or an array of one per
// environment
static char *curricula_json(const train_t *T, int64_t v) {
    if (T->n_cur == 1) return curriculum_to_json(cur_at(T, v, 0));
    size_t len = 0;
    char *out = NULL;
    for (int e = 0; e < T->n_cur; e++) {
        char *c = curriculum_to_json(cur_at(T, v, e));
        if (!c) return free(out), NULL;
        size_t k = strlen(c);
        char *o = realloc(out, len + k + 3); // ',' or '[' + the state + ']' + NUL
        if (!o) return free(c), free(out), (char *)NULL;
        out = o;
        out[len++] = e ? ',' : '[';
        memcpy(out + len, c, k);
        len += k;
        free(c);
    }
    out[len++] = ']';
    out[len] = 0;
    return out;
}

// cs: one per curriculum (T->n_cur); all: the whole step's (update_curricula)
static int log_step(train_t *T, int64_t n, tbatch_t *tb, const learner_step_stats_t *st, const curriculum_stats_t *cs,
                    const curriculum_stats_t *all, double t_rollout, double t_step) {
    double t_sim = 0, t_gen = 0;
    int64_t sampled = 0;
    // per task rows (/curriculum) and every trajectory
    for (int g = 0; g < T->s.tasks; g++) {
        runlog_task_t row = {.step = n, .group = g};
        double rs = 0;
        int k = 0, ok = 0, found = 0;
        for (int i = 0; i < tb->n; i++) {
            msg_traj_t *t = &tb->t[i];
            if (t->group != g) continue;
            if (!found) {
                found = 1;
                row.task_id = t->task_id;
                snprintf(row.env, sizeof row.env, "%s", t->env);
                curriculum_aspects_t a;
                json_t *aj = json_loads(t->aspects, 0, NULL);
                if (aj && curriculum_aspects_from_json(aj, &a) == 0) {
                    row.difficulty = a.difficulty, row.soft = a.soft, row.tools_available = a.tools_available;
                    row.expected_calls = a.expected_calls, row.expected_turns = a.expected_turns;
                    row.system_prompt = a.system_prompt, row.persona = a.persona, row.ambiguity = a.ambiguity;
                    row.judge_strictness = a.judge_strictness, row.distractors = a.distractors;
                }
                json_decref(aj);
            }
            if (t->abort != TRAJ_SIM_ERROR) rs += t->reward, k++, ok += t->reward >= 1.0f - 1e-6f;
        }
        row.seed = 0;
        row.mean_reward = k ? rs / k : 0, row.success_rate = k ? (double)ok / k : 0;
        if (runlog_append_task(T->log, &row)) return -1;
    }
    for (int i = 0; i < tb->n; i++) {
        msg_traj_t *t = &tb->t[i];
        take_rollout_timing(t, &t_gen, &t_sim);
        for (int j = 0; j < t->n_tokens; j++) sampled += t->mask[j] != 0;
        runlog_traj_t row = {.step = n, .task_id = t->task_id, .group = t->group, .index = t->index,
                             .policy_version = t->policy_version, .eval = 0, .difficulty = t->difficulty,
                             .reward = t->reward, .score = t->score, .turns = t->turns, .tool_calls = t->tool_calls,
                             .abort = t->abort, .truncated = t->truncated, .n_tokens = t->n_tokens,
                             .n_prompt = t->n_prompt};
        snprintf(row.env, sizeof row.env, "%s", t->env);
        if (runlog_append_traj(T->log, &row, t->ids, t->logprobs, t->mask, t->transcript, t->reward_details))
            return -1;
    }
    int shared = T->n_cur == 1;
    runlog_step_t r = {.step = n, .policy_version = version_for_step(T, n),
                       .difficulty = all->d_before, .difficulty_next = all->d_after,
                       .mean_reward = st->n_rewarded ? st->reward_sum / st->n_rewarded : 0,
                       .success_rate = st->n_rewarded ? (double)st->successes / st->n_rewarded : 0,
                       .loss = st->loss, .pg_loss = st->pg_loss, .kl = st->kl, .clip_frac = st->clip_frac,
                       .entropy = st->entropy, .ratio_min = st->ratio_min, .ratio_max = st->ratio_max,
                       .lp_gap_max = st->lp_gap_max, .grad_norm = st->grad_norm, .lr = st->lr,
                       .optim_skipped = st->skipped, .n_traj = st->n_traj, .n_groups_kept = st->n_groups_kept,
                       .tokens = st->tokens, .total_tokens = st->total_tokens, .t_rollout = t_rollout,
                       .t_sim = t_sim, .t_train = st->t_train, .t_sync = st->t_sync, .t_step = t_step,
                       .tokens_per_s = t_gen > 0 ? (double)sampled / t_gen : 0, .wall = (double)time(NULL)};
    memcpy(r.aborted, st->aborted, sizeof r.aborted);
    for (int e = 0; e < RUNLOG_MAX_ENVS; e++) {
        r.env_difficulty[e] = !shared && e < T->n_cur ? cs[e].d_before : -1;
        r.env_difficulty_next[e] = !shared && e < T->n_cur ? cs[e].d_after : -1;
    }
    if (runlog_append_step(T->log, &r)) return -1;
    if (runlog_flush(T->log)) return -1;
    // the progress line
    double elapsed = now_s() - T->t_start;
    int64_t done = n - (T->t_last_step > 0 ? 0 : 0);
    (void)done;
    double per = t_step;
    long left = (long)((T->s.steps - n) * per);
    int ab = 0;
    for (int i = 1; i < TRAJ_N_REASONS; i++) ab += st->aborted[i];
    // D per environment: "airline 4 -> 7, banking 1, ..." (the arrow only where D moved)
    char dl[RUNLOG_MAX_ENVS * 48] = "";
    for (int e = 0; !shared && e < T->n_cur; e++) {
        size_t k = strlen(dl);
        if (cs[e].d_after != cs[e].d_before)
            snprintf(dl + k, sizeof dl - k, "%s%s %d -> %d", e ? ", " : " (", T->envs[e], cs[e].d_before, cs[e].d_after);
        else
            snprintf(dl + k, sizeof dl - k, "%s%s %d", e ? ", " : " (", T->envs[e], cs[e].d_before);
    }
    if (!shared) strncat(dl, ")", sizeof dl - strlen(dl) - 1);
    printf("step %lld/%ld | D %d -> %d%s | reward %+.3f | success %.2f | KL %.4f | loss %+.4f | %d traj, %lld tok, "
           "%.0f tok/s | aborted %d | %.1f s (rollout %.1f, sim %.1f, train %.1f, sync %.2f) | ETA %ldm%02lds\n",
           (long long)n, T->s.steps, r.difficulty, r.difficulty_next, dl, r.mean_reward, r.success_rate, st->kl, st->loss,
           st->n_traj, (long long)st->total_tokens, r.tokens_per_s, ab, t_step, t_rollout, t_sim, st->t_train,
           st->t_sync, left / 60, left % 60);
    (void)elapsed;
    fflush(stdout);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the event loop of every rank

static int shutdown_all(train_t *T, int code, const char *why) {
    msg_shutdown_t m = {.code = code, .reason = (char *)why};
    for (int r = 0; r < T->c.size; r++) {
        if (r == T->c.rank) continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        int rc = msg_shutdown_encode(&m, &sb);
        if (!rc) rc = comm_send(&T->c, r, MSG_SHUTDOWN, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (rc) return -1;
    }
    return 0;
}

// one pass of the roles this rank plays that are not learner 0's coordination; 1 when it did work
static int poll_roles(train_t *T) {
    int p = 0, r;
    if (T->c.sim >= 0) {
        if ((r = sim_poll(T)) < 0) return -1;
        p |= r;
    }
    if (T->c.rollout >= 0) {
        if ((r = rollout_poll(T)) < 0) return -1;
        p |= r;
    }
    if (T->c.learner >= 0) {
        if ((r = learner_take_trajs(T)) < 0) return -1;
        p |= r;
    }
    return p;
}

static int run_eval(train_t *T, int64_t k, const char *phase, eval_table_t *et) {
    if (n_eval_tasks(T) == 0) {
        memset(et, 0, sizeof *et);
        return 0;
    }
    T->eval_step = T->trained > 0 ? T->trained : T->dispatched > 0 ? T->dispatched : 0;
    if (dispatch_eval(T, k)) return -1;
    int64_t key = (int64_t)(EVAL_BATCH_BASE + (uint64_t)k);
    for (;;) {
        int p = poll_roles(T);
        if (p < 0) return -1;
        tbatch_t *tb = tbatch_get(T, key, 0);
        if (tb && tb->n >= n_eval_tasks(T)) {
            int rc = log_eval(T, tb, phase, et);
            tbatch_drop(T, key);
            return rc;
        }
        if (g_stop) {
            err_set("interrupted during evaluation");
            return -2;
        }
        if (!p) comm_idle(&T->c);
    }
}

// learner 0's loop: dispatch, train, log, checkpoint until `steps` or a stop signal
static int coordinate(train_t *T) {
    T->t_last_step = now_s();
    for (;;) {
        // dispatch every step the staleness rule allows
        while (!g_stop && T->dispatched < T->s.steps && T->dispatched + 1 <= T->trained + 1 + T->s.staleness)
            if (dispatch_step(T, T->dispatched + 1)) return -1;
        int p = poll_roles(T);
        if (p < 0) return -1;
        int64_t n = T->trained + 1;
        if (n > T->s.steps) return 0;
        tbatch_t *tb = tbatch_get(T, n, 0);
        if (tb && tb->n >= expected_here(T)) {
            double t_rollout = now_s() - T->t_dispatch[n];
            // this rank's share of the batch -> one GRPO update with the other learners
            msg_traj_t *my = malloc((size_t)tb->n * sizeof *my);
            int nm = 0;
            for (int i = 0; my && i < tb->n; i++)
                if (mine(T, &tb->t[i])) my[nm++] = tb->t[i];
            learner_step_stats_t st;
            learner_step_opts_t lo = {.micro_batch = (int)T->s.micro_batch, .temperature = (float)T->s.temperature,
                                      .comm = T->c.learn_comm};
            learner_grpo_opts_default(&lo.loss);
            lo.loss.eps_low = T->s.clip_low, lo.loss.eps_high = T->s.clip_high, lo.loss.beta = T->s.kl;
            int rc = my ? learner_grpo_step(&T->model, T->have_ref ? &T->ref : NULL, &T->tr, &T->grads, &T->opt,
                                            my, nm, &lo, &st)
                        : err_set("out of memory");
            free(my);
            if (rc) return -1;
            // the whole batch's numbers come from the all-reduce; learner 0 has every trajectory
            T->trained = n;
            curriculum_stats_t cs[RUNLOG_MAX_ENVS], all = {0};
            if (update_curricula(T, n, tb, &st, cs, &all)) return -1;
            if (push_weights(T, n)) return -1;
            msg_curric_t mc = {.step = n, .update = all.update, .d_before = all.d_before, .d_after = all.d_after,
                               .mean_reward = all.mean_reward, .n_rewards = all.n_rewards, .move = all.move};
            mc.state = curricula_json(T, n);
            for (int r = 0; r < T->c.n_rollout; r++) {
                msgpack_sbuffer sb;
                msgpack_sbuffer_init(&sb);
                rc = msg_curric_encode(&mc, &sb);
                if (!rc) rc = comm_send(&T->c, comm_rank_of(&T->c, COMM_ROLLOUT, r), MSG_CURRIC, &sb);
                msgpack_sbuffer_destroy(&sb);
                if (rc) break;
            }
            free(mc.state);
            if (rc) return -1;
            double t = now_s(), t_step = t - T->t_last_step;
            T->t_last_step = t;
            if (log_step(T, n, tb, &st, cs, &all, t_rollout, t_step)) return -1;
            tbatch_drop(T, n);
            if (n % T->s.ckpt_every == 0 || n == T->s.steps || g_stop)
                if (checkpoint_save(T, n)) return -1;
            continue;
        }
        if (g_stop) { // stop: the last completed step is checkpointed, in-flight rollouts are dropped
            if (T->trained > 0) {
                char p[700];
                snprintf(p, sizeof p, "%s/step-%06lld", T->ckpt_root, (long long)T->trained);
                struct stat sbuf;
                if (stat(p, &sbuf) != 0 && checkpoint_save(T, T->trained)) return -1;
            }
            return 1;
        }
        if (!p) comm_idle(&T->c);
    }
}

// a learner other than 0: train whenever its share of the next step is here
static int learn_follow(train_t *T) {
    int64_t n = T->trained + 1;
    for (;;) {
        if (check_shutdown(T)) return 0;
        int p = poll_roles(T);
        if (p < 0) return -1;
        tbatch_t *tb = tbatch_get(T, n, 0);
        if (tb && tb->n >= expected_here(T)) {
            learner_step_stats_t st;
            learner_step_opts_t lo = {.micro_batch = (int)T->s.micro_batch, .temperature = (float)T->s.temperature,
                                      .comm = T->c.learn_comm};
            learner_grpo_opts_default(&lo.loss);
            lo.loss.eps_low = T->s.clip_low, lo.loss.eps_high = T->s.clip_high, lo.loss.beta = T->s.kl;
            if (learner_grpo_step(&T->model, T->have_ref ? &T->ref : NULL, &T->tr, &T->grads, &T->opt, tb->t, tb->n,
                                  &lo, &st))
                return -1;
            tbatch_drop(T, n);
            T->trained = n++;
            continue;
        }
        if (!p) comm_idle(&T->c);
    }
}

// rollout and simulator ranks
static int serve(train_t *T) {
    for (;;) {
        if (check_shutdown(T)) return 0;
        int p = poll_roles(T);
        if (p < 0) return T->shutdown ? 0 : -1;
        if (!p) comm_idle(&T->c);
    }
}

// ---------------------------------------------------------------------------------------------
// set-up

// The output vocabulary of `--vocab envs`: every id of the rendered oracle transcripts of many
// training tasks (all roles: system prompts, tool schemas, queries, calls, tool results, user
// replies) at difficulties over 1..100, plus every single-byte token (so any text stays spellable)
// and every special token. Seeds come from the reserved SFT range, never from held-out tasks.
// Returns the count and a malloc'd sorted id list, or -1.
static int build_output_vocab(train_t *T, int32_t **out) {
    *out = NULL;
    const int n_ids = tokenizer_n_ids(T->tok);
    uint8_t *seen = calloc((size_t)n_ids, 1);
    if (!seen) return err_set("out of memory");
    const char *names[16];
    for (int i = 0; i < T->n_envs; i++) names[i] = T->envs[i];
    // the SFT warm start's transcripts (its targets must be listed) and many more training tasks
    int per = (int)((T->s.sft_examples + T->n_envs - 1) / T->n_envs);
    json_t *data = luaenv_oracle_dataset(names, T->n_envs, per, SFT_SEED_BASE + (uint64_t)T->s.seed * 1000003ull, 1,
                                         (int)T->s.sft_d_max);
    json_t *more = data ? luaenv_oracle_dataset(names, T->n_envs, 200, SFT_SEED_BASE + 7777777ull, 1, 100) : NULL;
    if (more) json_array_extend(data, more);
    json_decref(more);
    int rc = data && more ? 0 : -1;
    for (size_t i = 0; !rc && i < json_array_size(data); i++) {
        chat_t c;
        if ((rc = chat_init(&c, T->tok))) break;
        rc = chat_load_json_episode(&c, json_array_get(data, i), "oracle transcript");
        for (int k = 0; !rc && k < c.ids.n; k++)
            if (c.ids.ids[k] >= 0 && c.ids.ids[k] < n_ids) seen[c.ids.ids[k]] = 1;
        chat_free(&c);
    }
    json_decref(data);
    for (int id = 0; !rc && id < n_ids; id++) {
        size_t len = 0;
        const char *b = tokenizer_token_bytes(T->tok, id, &len);
        if ((b && len == 1) || id >= 151643) seen[id] = 1; // single bytes; <|endoftext|> and the other added tokens
    }
    int n = 0;
    for (int id = 0; id < n_ids; id++) n += seen[id];
    int32_t *ids = rc ? NULL : malloc((size_t)n * sizeof *ids);
    if (!rc && !ids) rc = err_set("out of memory");
    for (int id = 0, k = 0; !rc && id < n_ids; id++)
        if (seen[id]) ids[k++] = id;
    free(seen);
    if (rc) {
        free(ids);
        return err_wrap("output vocabulary: ");
    }
    *out = ids;
    return n;
}

// learner 0, fresh run without --policy: a random-init Qwen3 written to dir (HF format, F32)
static int make_raw_policy(train_t *T, const char *dir) {
    struct stat sb;
    char done[600];
    snprintf(done, sizeof done, "%s/model.safetensors", dir);
    if (stat(done, &sb) == 0) return 0; // made by an earlier attempt of this run
    char tmp[560];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rm_rf(tmp);
    char seed[32], h[32], l[32], q[32], k[32], d[32], in[32], th[32], qk[32];
    snprintf(seed, sizeof seed, "%ld", T->s.seed);
    snprintf(h, sizeof h, "%ld", T->s.init_hidden);
    snprintf(l, sizeof l, "%ld", T->s.init_layers);
    snprintf(q, sizeof q, "%ld", T->s.init_heads);
    snprintf(k, sizeof k, "%ld", T->s.init_kv_heads);
    snprintf(d, sizeof d, "%ld", T->s.init_head_dim);
    snprintf(in, sizeof in, "%ld", T->s.init_intermediate);
    snprintf(th, sizeof th, "%.17g", T->s.init_rope_theta);
    snprintf(qk, sizeof qk, "%.17g", T->s.init_qk_norm);
    char *argv[] = {"init-model", "--out", tmp, "--seed", seed, "--hidden", h, "--layers", l, "--heads", q,
                    "--kv-heads", k, "--head-dim", d, "--intermediate", in, "--rope-theta", th, "--qk-norm", qk, "--dtype", "f32", "--force", NULL};
    printf("policy: a new Qwen3 (hidden %ld, %ld layers) -> %s\n", T->s.init_hidden, T->s.init_layers, dir);
    fflush(stdout);
    if (cmd_init_model((int)(sizeof argv / sizeof argv[0]) - 1, argv) != 0) return err_set("init-model failed (see above)");
    rm_rf(dir);
    if (rename(tmp, dir)) return err_set("%s: rename failed: %s", tmp, strerror(errno));
    return 0;
}

// the oracle transcripts of the SFT warm start (and of the copy warm-up): sft_examples tasks spread
// over the environments and over D = 1..sft_d_max, from a reserved seed range (never the seeds of
// training or held-out tasks)
static json_t *sft_oracle(const train_t *T) {
    const char *names[16];
    for (int i = 0; i < T->n_envs; i++) names[i] = T->envs[i];
    int per = (int)((T->s.sft_examples + T->n_envs - 1) / T->n_envs);
    return luaenv_oracle_dataset(names, T->n_envs, per, SFT_SEED_BASE + (uint64_t)T->s.seed * 1000003ull, 1,
                                 (int)T->s.sft_d_max);
}

// SFT examples: the oracle transcripts rendered (episode layout)
static int sft_data(train_t *T, learner_sft_example_t **out, int *n_out, int *maxlen) {
    json_t *data = sft_oracle(T);
    if (!data) return -1;
    int n = (int)json_array_size(data), rc = 0;
    *maxlen = 16;
    learner_sft_example_t *ex = calloc((size_t)(n ? n : 1), sizeof *ex);
    if (!ex) rc = err_set("out of memory");
    for (int i = 0; i < n && !rc; i++) {
        char where[64];
        snprintf(where, sizeof where, "oracle transcript %d", i);
        rc = learner_sft_render(T->tok, json_array_get(data, (size_t)i), 1, (int)T->s.max_episode_tokens, where, &ex[i]);
        if (!rc && ex[i].n > *maxlen) *maxlen = ex[i].n;
    }
    json_decref(data);
    if (rc) {
        for (int i = 0; ex && i < n; i++) learner_sft_example_free(&ex[i]);
        free(ex);
        return -1;
    }
    *out = ex, *n_out = n;
    return 0;
}

// learner 0: SFT of the learner's model in place. max_seconds > 0: a time budget (the baseline)
static int run_sft(train_t *T, const char *what, int steps, double lr, double min_lr, uint64_t seed,
                   double max_seconds, learner_sft_result_t *res) {
    learner_sft_example_t *ex = NULL;
    int n = 0, maxlen = 0;
    if (sft_data(T, &ex, &n, &maxlen)) return -1;
    learner_sft_opts_t so;
    learner_sft_opts_default(&so);
    so.steps = steps, so.batch = (int)T->s.sft_batch;
    so.micro_batch = (int)(T->s.micro_batch < T->s.sft_batch ? T->s.micro_batch : T->s.sft_batch);
    so.max_len = maxlen, so.lr = lr, so.min_lr = min_lr, so.seed = seed, so.log_every = 10;
    so.log = stdout, so.max_seconds = max_seconds;
    if (max_seconds > 0)
        printf("%s: SFT on %d oracle transcripts for %.1f s (the GRPO wall time)\n", what, n, max_seconds);
    else
        printf("%s: SFT on %d oracle transcripts from %d environments, %d steps\n", what, n, T->n_envs, steps);
    fflush(stdout);
    int rc = learner_sft_run(&T->model, ex, n, &so, res);
    for (int i = 0; i < n; i++) learner_sft_example_free(&ex[i]);
    free(ex);
    if (rc) return -1;
    printf("%s: loss %.4f -> %.4f, %d steps, %lld tokens, %.1f s\n", what, res->first_loss, res->last_loss,
           res->steps_done, (long long)res->tokens, res->seconds);
    fflush(stdout);
    return 0;
}

// the output vocabulary holds id (always, without --vocab envs)
static int in_output_vocab(const train_t *T, int32_t id) {
    int lo = 0, hi = T->n_vocab - 1;
    if (!T->n_vocab) return 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (T->vocab[mid] == id) return 1;
        if (T->vocab[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

// learner 0: one phase of the copy warm-up (sim/copytask.h): `steps` SFT steps of copy_batch short
// transcripts made from the oracle transcripts with fresh values (p_window / p_repeat: the kinds);
// const_lr: the learning rate stays at sft_lr (else a cosine decay to sft_lr / 10)
static int run_copy_phase(train_t *T, const json_t *oracle, const char *what, int steps, double p_window,
                          double p_repeat, int const_lr, double stop_loss, uint64_t seed) {
    int batch = (int)T->s.copy_batch, max_len = COPY_MAX_TOKENS;
    int n = steps * batch < COPY_MAX_EXAMPLES ? steps * batch : COPY_MAX_EXAMPLES;
    json_t *convs = copytask_make(oracle, n, p_window, p_repeat, (int)T->s.copy_fresh_words, seed);
    if (!convs) return err_wrap("%s: ", what);
    learner_sft_example_t *ex = calloc((size_t)n, sizeof *ex);
    if (!ex) return json_decref(convs), err_set("out of memory");
    int m = 0, too_long = 0, out_of_vocab = 0, longest = 16, rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        learner_sft_example_t *e = &ex[m];
        rc = learner_sft_render(T->tok, json_array_get(convs, (size_t)i), 1, 1 << 20, "copy transcript", e);
        if (rc) break;
        int ok = e->n <= max_len;
        too_long += !ok;
        for (int k = 0; ok && k < e->n; k++)
            if (e->mask[k] && !in_output_vocab(T, e->ids[k])) ok = 0, out_of_vocab++;
        if (!ok) {
            learner_sft_example_free(e);
            continue;
        }
        if (e->n > longest) longest = e->n;
        m++;
    }
    json_decref(convs);
    learner_sft_result_t res;
    if (!rc && m == 0) rc = err_set("%s: every transcript was cut or used tokens outside the output vocabulary", what);
    if (!rc) {
        learner_sft_opts_t so;
        learner_sft_opts_default(&so);
        so.steps = steps, so.batch = batch, so.micro_batch = batch < 4 ? batch : 4, so.max_len = longest;
        so.lr = T->s.sft_lr;
        so.warmup = const_lr ? 0 : COPY_WARMUP; // a fresh AdamW's first full-size steps on new data can undo the circuit
        so.min_lr = const_lr ? so.lr : -1, so.seed = (uint64_t)T->s.seed, so.log_every = 100, so.log = stdout;
        if (stop_loss > 0) so.stop_loss = stop_loss, so.stop_window = COPY_STOP_WINDOW;
        printf("%s: %d short transcripts with fresh values (%d over %d tokens and %d with tokens outside the "
               "output vocabulary left out), %d steps x %d\n", what, m, too_long, max_len, out_of_vocab, steps, batch);
        fflush(stdout);
        rc = learner_sft_run(&T->model, ex, m, &so, &res);
    }
    for (int i = 0; i < m; i++) learner_sft_example_free(&ex[i]);
    free(ex);
    if (rc) return -1;
    if (res.stopped)
        printf("%s: the mean loss of the last %d steps fell to %.4f (< %g) at step %d of %d: stopped there\n", what,
               COPY_STOP_WINDOW, res.window_loss, stop_loss, res.steps_done, steps);
    printf("%s: loss %.4f -> %.4f, %d steps, %lld tokens, %.1f s\n", what, res.first_loss, res.last_loss,
           res.steps_done, (long long)res.tokens, res.seconds);
    fflush(stdout);
    return 0;
}

// learner 0: the copy warm-up before the SFT warm start. First up to copy_repeat_steps steps of repeat
// transcripts at a constant learning rate (the policy learns to find a value said earlier and go on
// from there, an induction circuit: its loss falls abruptly, at a step that depends on the seed:
// near 700, 800 and 1,500 for seeds 1, 2 and 3), stopped once the mean loss of the last 50 steps is
// below copy_stop_loss (a policy without the circuit stays near 0.6 and fails almost every task;
// seed 3 with a fixed 1,000 steps: 5% at D = 1 after SFT, stopped at step 1,546: 20%),
// then copy_steps steps of schema / window transcripts (copying values into tool calls), with
// repeat transcripts still mixed in and a short warmup so that the circuit survives the change.
static int run_copy_warmup(train_t *T) {
    json_t *oracle = sft_oracle(T);
    if (!oracle) return -1;
    uint64_t seed = mix64(0x636f7079ull ^ (uint64_t)T->s.seed);
    int rc = 0;
    if (T->s.copy_repeat_steps > 0)
        rc = run_copy_phase(T, oracle, "copy warm-up (repeat)", (int)T->s.copy_repeat_steps, 0, 1, 1,
                            T->s.copy_stop_loss, seed + 1);
    if (!rc && T->s.copy_steps > 0)
        rc = run_copy_phase(T, oracle, "copy warm-up", (int)T->s.copy_steps, T->s.copy_p_window,
                            T->s.copy_repeat_steps > 0 ? fmin(COPY_KEEP_REPEAT, 1 - T->s.copy_p_window) : 0, 0, 0, seed);
    json_decref(oracle);
    return rc;
}

// writes the learner's model as an HF checkpoint dir (atomically)
static int write_policy_dir(train_t *T, const char *dir, const char *tok_src) {
    char tmp[560], p[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    rm_rf(tmp);
    if (checkpoint_mkdirs(tmp)) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (qwen3_params_write(&T->model, p)) return -1;
    qwen3_config_t cfg = T->model.cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    snprintf(p, sizeof p, "%s/config.json", tmp);
    if (qwen3_config_write(&cfg, p)) return -1;
    if (checkpoint_write_tokenizer(tok_src, tmp)) return -1;
    rm_rf(dir);
    if (rename(tmp, dir)) return err_set("%s: rename failed: %s", tmp, strerror(errno));
    return 0;
}

static int load_learner(train_t *T, const char *dir) {
    if (qwen3_load(&T->model, dir, DEVICE_CPU)) return -1;
    T->have_model = 1;
    if (qwen3_grads_init(&T->grads, &T->model)) return -1;
    if (qwen3_train_init(&T->tr, &T->model, (int)T->s.micro_batch, (int)T->s.max_episode_tokens, (int)T->s.recompute))
        return -1;
    T->have_tr = 1;
    optim_config_t oc;
    optim_config_default(&oc);
    oc.lr = T->s.lr, oc.min_lr = T->s.min_lr, oc.weight_decay = T->s.weight_decay, oc.clip_norm = T->s.grad_clip;
    oc.warmup_steps = (int64_t)T->s.warmup;
    oc.total_steps = T->s.min_lr > 0 || T->s.warmup > 0 ? T->s.steps : 0;
    if (optim_init_qwen3(&T->opt, &oc, &T->model)) return -1;
    T->have_opt = 1;
    T->n_floats = params_numel(&T->model);
    return 0;
}

static int checkpoint_latest(train_t *T, char *dir, size_t cap) {
    int64_t steps[4096];
    int n = ckpt_list(T, steps, 4096);
    if (!n) return 0;
    snprintf(dir, cap, "%s/step-%06lld", T->ckpt_root, (long long)steps[n - 1]);
    return 1;
}

static json_t *read_state(const char *dir) {
    char p[800];
    snprintf(p, sizeof p, "%s/state.json", dir);
    json_error_t je;
    json_t *st = json_load_file(p, 0, &je);
    if (!st) err_set("%s:%d: %s", p, je.line, je.text);
    else if (!json_is_object(st) || strcmp(json_string_value(json_object_get(st, "format")) ? json_string_value(json_object_get(st, "format")) : "", "trustee-checkpoint")) {
        json_decref(st);
        st = NULL;
        err_set("%s: not a trustee checkpoint state (format != trustee-checkpoint)", p);
    }
    return st;
}

// --resume: the settings must match the checkpoint's except these
static int check_resume_settings(const train_t *T, const json_t *saved) {
    static const char *may_change[] = {"steps", "ckpt_every", "keep_ckpts", "sim_ranks", "rollout_ranks",
                                       "max_active", "eval_tasks", "run_dir", NULL};
    json_t *now = settings_json(&T->s);
    const char *key;
    json_t *v;
    char diff[512] = "";
    json_object_foreach(now, key, v) {
        int skip = 0;
        for (int i = 0; may_change[i]; i++) skip |= !strcmp(key, may_change[i]);
        if (skip) continue;
        json_t *o = json_object_get(saved, key);
        if (!o || !json_equal(o, v)) {
            if (strlen(diff) < 400) {
                strcat(diff, diff[0] ? ", " : "");
                strcat(diff, key);
            }
        }
    }
    json_decref(now);
    if (diff[0]) return err_set("--resume: these settings differ from the checkpoint's: %s (only steps, ckpt_every, "
                                "keep_ckpts, sim_ranks, rollout_ranks, max_active, eval_tasks may change)", diff);
    return 0;
}

// /config of the run log: the resolved settings and the actual role split
static json_t *run_config(const train_t *T) {
    json_t *cfg = settings_json(&T->s);
    json_object_set_new(cfg, "world_size", json_integer(T->c.size));
    json_object_set_new(cfg, "learner_ranks", json_integer(T->c.n_learn));
    json_object_set_new(cfg, "rollout_ranks_actual", json_integer(T->c.n_rollout));
    json_object_set_new(cfg, "sim_ranks_actual", json_integer(T->c.n_sim));
    // the environments in the order of /steps env_difficulty (--envs all expanded)
    char names[RUNLOG_MAX_ENVS * (RUNLOG_NAME_LEN + 1)] = "";
    for (int e = 0; e < T->n_envs; e++) {
        if (e) strcat(names, ",");
        strcat(names, T->envs[e]);
    }
    json_object_set_new(cfg, "env_names", json_string(names));
    return cfg;
}

// --vocab envs: the same output vocabulary on every model of the run (sampler and learner)
static int apply_vocab(train_t *T, qwen3_t *m) {
    if (!T->n_vocab) return 0;
    return qwen3_set_output_vocab(m, T->vocab, T->n_vocab) ? err_wrap("output vocabulary: ") : 0;
}

// a broadcast from world rank 0 that does not spin while it waits
static int bcast_wait(train_t *T, void *buf, int count, MPI_Datatype type, MPI_Comm comm) {
    MPI_Request r;
    if (MPI_Ibcast(buf, count, type, 0, comm, &r) != MPI_SUCCESS) return err_set("MPI_Ibcast failed");
    return comm_wait_request(&T->c, &r);
}

// the learners' model weights from learner 0 (after its SFT), F32 in chunks
static int bcast_model(train_t *T) {
    if (T->c.n_learn < 2) return 0;
    qwen3_param_t ps[512];
    int n = qwen3_params(&T->model, ps, 512);
    for (int i = 0; i < n; i++) {
        int64_t k = tensor_numel(ps[i].t);
        float *d = ps[i].t->data;
        for (int64_t off = 0; off < k; off += (1 << 30))
            if (bcast_wait(T, d + off, (int)(k - off < (1 << 30) ? k - off : (1 << 30)), MPI_FLOAT, T->c.learn_comm))
                return -1;
    }
    return 0;
}

static int load_ref(train_t *T) { // the KL reference: the policy GRPO starts from (version 0)
    if (T->s.kl <= 0 || T->have_ref) return 0;
    if (qwen3_load(&T->ref, T->init_dir, DEVICE_CPU)) return -1;
    T->have_ref = 1;
    if (apply_vocab(T, &T->ref)) return -1;
    return 0;
}

// a signal stopped an evaluation: exit 3 like any preemption (the newest checkpoint, if any, is
// where --resume continues; without one the run starts again)
static int preempted(train_t *T, const char *where) {
    printf("stopped by a signal %s; continue with --resume (exit %d)\n", where, EXIT_PREEMPTED);
    T->exit_code = EXIT_PREEMPTED;
    return 0;
}

#define RUN_EVAL(k, phase, tab)                                                                     \
    do {                                                                                            \
        int er_ = run_eval(T, (k), (phase), (tab));                                                 \
        if (er_ == -2) return preempted(T, "during the evaluation");                                \
        if (er_) return -1;                                                                         \
    } while (0)

static int train_main(train_t *T) {
    const settings_t *s = &T->s;
    comm_t *c = &T->c;
    int lead = c->learner == 0;
    // no --run-dir: a new directory runs/run-<UTC date and time> (learner 0 names it for everyone)
    if (!T->s.run_dir[0]) {
        if (T->s.resume) return err_set("--resume needs --run-dir (the run to continue)");
        if (lead) {
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            char name[64];
            strftime(name, sizeof name, "runs/run-%Y%m%d-%H%M%S", &tm);
            snprintf(T->s.run_dir, sizeof T->s.run_dir, "%s", name);
            struct stat sb;
            for (int k = 2; stat(T->s.run_dir, &sb) == 0 && k < 100; k++)
                snprintf(T->s.run_dir, sizeof T->s.run_dir, "%s-%d", name, k);
        }
        if (bcast_wait(T, T->s.run_dir, sizeof T->s.run_dir, MPI_CHAR, MPI_COMM_WORLD)) return -1;
        if (lead) printf("run directory: %s\n", T->s.run_dir);
    }
    snprintf(T->ckpt_root, sizeof T->ckpt_root, "%s/checkpoints", s->run_dir);
    snprintf(T->log_path, sizeof T->log_path, "%s/run.h5", s->run_dir);
    snprintf(T->raw_dir, sizeof T->raw_dir, "%s/policy-raw", s->run_dir);
    if (s->policy[0]) snprintf(T->init_dir, sizeof T->init_dir, "%s", s->policy);
    else snprintf(T->init_dir, sizeof T->init_dir, "%s/policy-init", s->run_dir);
    T->do_sft = !s->policy[0] && s->sft_steps > 0 && strcmp(s->sim, "lm") != 0;
    if (parse_lists(T)) return -1;
    T->tok = tokenizer_load_dir(s->policy[0] ? s->policy : NULL, 1);
    if (!T->tok) return -1;
    char ckdir[800] = "";
    int resuming = 0;
    // ---- learner 0 prepares the run directory and the initial policy; the others wait ----
    int ok = 1;
    if (lead) {
        struct stat sb;
        int rc = checkpoint_mkdirs(s->run_dir);
        if (!rc && s->resume) {
            resuming = checkpoint_latest(T, ckdir, sizeof ckdir);
            if (!resuming) printf("--resume: no checkpoint in %s yet: starting from the beginning\n", T->ckpt_root);
        }
        if (!rc && !resuming && stat(T->log_path, &sb) == 0) {
            if (s->resume) rm_rf(T->log_path); // a run that stopped before its first checkpoint
            else rc = err_set("%s exists: this run directory holds a run (continue it with --resume, or choose "
                              "another --run-dir)", T->log_path);
        }
        if (!rc && !resuming && !s->policy[0]) rc = make_raw_policy(T, T->do_sft ? T->raw_dir : T->init_dir);
        if (rc) {
            fprintf(stderr, "trustee train: %s\n", err_msg());
            ok = 0;
        }
    }
    int flags[2] = {ok, resuming};
    if (bcast_wait(T, flags, 2, MPI_INT, MPI_COMM_WORLD)) return -1;
    if (!flags[0]) return err_set("learner 0 failed to set up the run");
    resuming = flags[1];
    if (bcast_wait(T, ckdir, sizeof ckdir, MPI_CHAR, MPI_COMM_WORLD)) return -1;
    const char *load_dir = resuming ? ckdir : T->do_sft ? T->raw_dir : T->init_dir;
    // ---- the output vocabulary (--vocab envs; the LM simulator's tasks are not known in advance) ----
    if (!strcmp(s->vocab, "envs") && strcmp(s->sim, "lm") != 0) {
        int n = 0;
        if (lead && (n = build_output_vocab(T, &T->vocab)) < 0) return -1;
        if (bcast_wait(T, &n, 1, MPI_INT, MPI_COMM_WORLD)) return -1;
        if (!lead && !(T->vocab = malloc((size_t)n * sizeof *T->vocab))) return err_set("out of memory");
        if (bcast_wait(T, T->vocab, n, MPI_INT32_T, MPI_COMM_WORLD)) return -1;
        T->n_vocab = n;
        if (lead) printf("output vocabulary: %d of %d ids (--vocab envs)\n", n, tokenizer_n_ids(T->tok));
    }
    // ---- every rank loads what its roles need ----
    if (c->learner >= 0 && (load_learner(T, load_dir) || apply_vocab(T, &T->model))) return -1;
    if (c->rollout >= 0) {
        if (qwen3_load(&T->rmodel, load_dir, DEVICE_CPU) || apply_vocab(T, &T->rmodel)) return -1;
        T->have_rmodel = 1;
        T->rmodel_ver = INT64_MIN;
        T->n_floats = params_numel(&T->rmodel);
        rollout_opts_t ro;
        rollout_opts_default(&ro);
        ro.max_turns = (int)s->max_turns, ro.max_new_tokens = (int)s->max_new_tokens;
        ro.max_episode_tokens = (int)s->max_episode_tokens, ro.max_active = (int)s->max_active;
        ro.share_prompt = (int)s->share_prompt;
        ro.max_tasks = (int)(s->tasks > 32 ? s->tasks : 32);
        ro.sampling = (sampler_params_t){.temperature = (float)s->temperature, .top_k = 0, .top_p = 1.0f,
                                         .seed = (uint64_t)s->seed};
        ro.eval_sampling = (sampler_params_t){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0}; // greedy
        T->ro = rollout_new(&T->rmodel, T->tok, &ro, sim_transport, T);
        if (!T->ro) return -1;
    }
    if (c->sim >= 0 || (c->rollout >= 0 && c->n_sim == 0)) {
        if (!strcmp(s->sim, "lm")) {
            simserver_opts_t so = {.model_dir = s->sim_model, .seed = (uint64_t)s->seed, .temperature = 1.0f,
                                   .max_seq_len = 4096, .max_batch = 64};
            T->sim = simserver_new_lm(&so);
        } else T->sim = simserver_new_programmatic();
        if (!T->sim) return -1;
    }
    // ---- the other learners: the SFT'd weights from learner 0, then follow ----
    if (!lead) {
        if (c->learner >= 0) {
            if (!resuming && T->do_sft && (bcast_model(T) || qwen3_output_vocab_refresh(&T->model))) return -1;
            if (load_ref(T)) return -1;
            if (resuming) {
                json_t *st = read_state(ckdir);
                if (!st) return -1;
                T->trained = json_integer_value(json_object_get(st, "step"));
                json_decref(st);
                char p[900];
                snprintf(p, sizeof p, "%s/optimizer.safetensors", ckdir);
                if (optim_load(&T->opt, p)) return -1;
            }
            return learn_follow(T);
        }
        return serve(T);
    }
    // ---- learner 0: curriculum history, run log, the weights the rollouts need ----
    T->n_cur = strcmp(s->curriculum, "env") ? 1 : T->n_envs;
    T->cur = calloc(((size_t)s->steps + 1) * (size_t)T->n_cur, sizeof *T->cur);
    T->t_dispatch = calloc((size_t)s->steps + 2, sizeof *T->t_dispatch);
    if (!T->cur || !T->t_dispatch) return err_set("out of memory");
    for (int i = 0; i < MAX_VERSIONS; i++) T->snap_ver[i] = INT64_MIN;
    T->t_start = now_s();
    printf("trustee train: %d rank(s): %d learner, %d rollout, %d simulator; %s simulator (%s); %ld steps x %ld "
           "tasks x %ld rollouts; staleness %ld\n",
           c->size, c->n_learn, c->n_rollout, c->n_sim, s->sim, s->sim[0] == 'l' ? s->sim_model : s->envs, s->steps,
           s->tasks, s->group, s->staleness);
    fflush(stdout);
    eval_table_t tabs[4];
    int have[4] = {0};
    const char *phase_names[4] = {"init", phase_before(T), "grpo", "baseline"};
    if (!resuming) {
        for (int e = 0; e < T->n_cur; e++)
            if (curriculum_init(cur_at(T, 0, e), (int)s->d_start, (uint64_t)s->seed) ||
                curriculum_set(cur_at(T, 0, e), (int)s->d_step, 0.5, 0.0, s->p_soft))
                return -1;
        json_t *cfg = run_config(T);
        T->log = runlog_create(T->log_path, cfg);
        json_decref(cfg);
        if (!T->log) return -1;
        T->trained = 0;
        if (T->do_sft) {
            // held-out success of the random init, then the SFT warm start
            T->trained = -1; // the evaluation below is of version -1
            if (push_weights(T, -1)) return -1;
            RUN_EVAL(0, "init", &tabs[0]);
            have[0] = 1;
            T->trained = 0;
            learner_sft_result_t res;
            if ((s->copy_steps > 0 || s->copy_repeat_steps > 0) && run_copy_warmup(T)) return -1;
            if (run_sft(T, "SFT warm start", (int)s->sft_steps, s->sft_lr, -1, (uint64_t)s->seed, 0, &res)) return -1;
            T->sft_seconds = res.seconds;
            if (write_policy_dir(T, T->init_dir, NULL)) return -1;
            if (bcast_model(T)) return -1;
        }
        if (load_ref(T)) return -1;
        if (push_weights(T, 0)) return -1;
        RUN_EVAL(1, phase_names[1], &tabs[1]);
        have[1] = 1;
        for (int k = 0; k < 2; k++)
            if (have[k] && n_eval_tasks(T)) print_eval(T, phase_names[k], &tabs[k]);
    } else {
        json_t *st = read_state(ckdir);
        if (!st) return -1;
        int rc = check_resume_settings(T, json_object_get(st, "settings"));
        int64_t N = json_integer_value(json_object_get(st, "step"));
        T->grpo_seconds = json_number_value(json_object_get(st, "grpo_seconds"));
        if (!rc && N > s->steps) rc = err_set("--resume: the checkpoint is at step %lld, beyond --steps %ld", (long long)N, s->steps);
        json_t *cj = json_object_get(st, "curriculum");
        for (size_t i = 0; !rc && i < json_array_size(cj); i++) {
            json_t *o = json_array_get(cj, i);
            int64_t v = json_integer_value(json_object_get(o, "version"));
            const char *en = json_string_value(json_object_get(o, "env"));
            int e = en ? env_index(T, en) : 0;
            if (v < 0 || v > N) rc = err_set("%s/state.json: curriculum version %lld out of range", ckdir, (long long)v);
            else if (e < 0 || (T->n_cur > 1) != (en != NULL))
                rc = err_set("%s/state.json: curriculum entry of version %lld: %s%s%s does not fit --curriculum %s", ckdir,
                             (long long)v, en ? "environment \"" : "no environment", en ? en : "", en ? "\"" : "",
                             s->curriculum);
            else rc = curriculum_from_json(cur_at(T, v, e), json_string_value(json_object_get(o, "state")));
        }
        json_t *pj = json_object_get(st, "runlog");
        runlog_pos_t pos = {json_integer_value(json_object_get(pj, "steps")),
                            json_integer_value(json_object_get(pj, "curriculum")),
                            json_integer_value(json_object_get(pj, "evals")),
                            json_integer_value(json_object_get(pj, "trajs")),
                            json_integer_value(json_object_get(pj, "tokens")),
                            json_integer_value(json_object_get(pj, "text")),
                            json_integer_value(json_object_get(pj, "details"))};
        json_decref(st);
        if (rc) return -1;
        char p[900];
        snprintf(p, sizeof p, "%s/optimizer.safetensors", ckdir);
        if (optim_load(&T->opt, p)) return -1;
        if (load_ref(T)) return -1;
        json_t *cfg = run_config(T);
        T->log = runlog_resume_config(T->log_path, &pos, cfg);
        json_decref(cfg);
        if (!T->log) return -1;
        T->trained = N, T->dispatched = N;
        printf("resumed from %s: step %lld done, run log at %lld steps\n", ckdir, (long long)N, (long long)pos.steps);
        // the versions the next steps' rollouts use, in order
        for (int64_t v = N - s->staleness; v < N; v++) {
            if (v < 0) continue;
            snprintf(p, sizeof p, "%s/policy-v%lld.safetensors", ckdir, (long long)v);
            if (snap_load(T, v, p)) return -1;
        }
        for (int64_t v = N - s->staleness; v <= N; v++)
            if (v >= 0 && push_weights(T, v)) return -1;
    }
    // ---- GRPO ----
    T->t_grpo_start = now_s();
    int r = coordinate(T);
    if (r < 0) return -1;
    if (r == 1) {
        printf("stopped by a signal after step %lld: checkpoint written; continue with --resume (exit %d)\n",
               (long long)T->trained, EXIT_PREEMPTED);
        T->exit_code = EXIT_PREEMPTED;
        return 0;
    }
    double grpo_s = T->grpo_seconds + (now_s() - T->t_grpo_start);
    RUN_EVAL(2, "grpo", &tabs[2]);
    have[2] = 1;
    // ---- the baseline: the SFT warm start continued for the wall time GRPO took ----
    if (T->do_sft && s->baseline) {
        char p[700];
        snprintf(p, sizeof p, "%s/model.safetensors", T->init_dir);
        float *w = malloc((size_t)T->n_floats * sizeof *w);
        int rc = w ? params_read_flat(&T->model, p, w) : err_set("out of memory");
        if (!rc) params_unpack(&T->model, w);
        free(w);
        if (!rc) rc = qwen3_output_vocab_refresh(&T->model);
        learner_sft_result_t res;
        if (!rc) rc = run_sft(T, "baseline (SFT continued)", 1 << 20, s->sft_lr * 0.1, s->sft_lr * 0.1,
                              (uint64_t)s->seed + 1, grpo_s, &res);
        if (rc) return -1;
        int64_t keep = T->trained;
        T->trained = -2;
        if (push_weights(T, -2)) return -1;
        RUN_EVAL(3, "baseline", &tabs[3]);
        T->trained = keep;
        have[3] = 1;
    }
    if (n_eval_tasks(T)) {
        printf("\nheld-out evaluation (%d tasks per phase: %d environments x %d difficulties x %ld):\n",
               n_eval_tasks(T), T->n_envs, T->n_eval_d, s->eval_tasks);
        for (int k = 0; k < 4; k++)
            if (have[k]) print_eval(T, phase_names[k], &tabs[k]);
        if (resuming) printf("(the evaluations before GRPO ran in an earlier session: see /eval in the run log)\n");
    }
    printf("done: %lld steps, GRPO %.1f s, total %.1f s this session; run log %s; checkpoints in %s\n",
           (long long)T->trained, grpo_s, now_s() - T->t_start, T->log_path, T->ckpt_root);
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_t *T = calloc(1, sizeof *T);
    if (!T) return 1;
    int pr = settings_parse(&T->s, argc, argv);
    if (pr) {
        free(T);
        if (pr > 0) return 0;
        fprintf(stderr, "trustee train: %s\n", err_msg());
        return 2;
    }
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rc = comm_init(&T->c, (int)T->s.sim_ranks, (int)T->s.rollout_ranks);
    if (!rc && T->c.learner == 0) {
        printf("settings:\n");
        settings_print(&T->s, stdout);
        fflush(stdout);
    }
    if (!rc) rc = train_main(T);
    int code = rc ? 1 : T->exit_code;
    if (rc) fprintf(stderr, "trustee train (rank %d): %s\n", T->c.rank, err_msg());
    if (T->c.learner == 0) {
        // the last weights broadcast completes first (the rollout ranks still poll for it), then
        // everyone is told to stop
        if (rc == 0 && T->push_pending) comm_wait_request(&T->c, &T->push_req);
        T->push_pending = 0;
        if (rc == 0 || T->log) shutdown_all(T, code, rc ? "learner 0 failed" : "done");
        runlog_close(T->log);
    }
    comm_drain(&T->c, 10.0);
    if (rc && T->c.size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    // free everything
    rollout_free(T->ro);
    simserver_free(T->sim);
    if (T->have_rmodel) qwen3_free(&T->rmodel);
    if (T->have_tr) qwen3_train_free(&T->tr);
    if (T->have_opt) optim_free(&T->opt);
    if (T->have_model) {
        qwen3_free(&T->grads);
        qwen3_free(&T->model);
    }
    if (T->have_ref) qwen3_free(&T->ref);
    for (int i = 0; i < MAX_VERSIONS; i++) free(T->vers[i].data), free(T->snap[i]);
    for (int i = 0; i < T->n_rb; i++) {
        for (int k = 0; k < T->rb[i].n; k++) msg_task_free(&T->rb[i].tasks[k]);
        free(T->rb[i].tasks);
    }
    free(T->rb);
    while (T->n_tb) tbatch_drop(T, T->tb[0].step);
    free(T->tb);
    free(T->cur), free(T->t_dispatch), free(T->vocab);
    tokenizer_free(T->tok);
    comm_free(&T->c);
    MPI_Finalize();
    free(T);
    return code;
}
