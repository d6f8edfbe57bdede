// comm/msg: every message that crosses ranks, as msgpack. One struct, one encode and one decode per
// type; the wire format of each is written down in docs/protocol.md.
//
// Every message is a msgpack map whose first two keys are "t" (the type, MSG_*) and "v" (the
// format version of that type, MSG_VERSION); the other keys are the struct's fields under the names
// given in docs/protocol.md. Encoders write into a msgpack_sbuffer (the caller inits and destroys
// it). Decoders take untrusted bytes: anything malformed (wrong type or version, a missing or
// mistyped field, sizes that disagree, trailing bytes, strings with NUL bytes) gives -1 with
// err_set naming the field, never a crash; on success the struct owns malloc'd copies of every
// string and array (free with the matching msg_*_free, which also accepts a zeroed struct); on
// failure nothing is allocated and the struct is zeroed (batches: *r = NULL, *n = 0). Encoders
// check the same ranges the decoders check (an invalid struct gives -1 and appends nothing); a
// NULL string encodes as "".
//
// Framing over MPI (comm/comm.h): one message per MPI send, received with MPI_Iprobe +
// MPI_Get_count(MPI_BYTE) + MPI_Recv. msg_peek_type() tells which decoder to call.
#pragma once
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_VERSION 1

typedef enum {
    MSG_TASK = 1,     // learner 0 -> rollout rank: run a group of rollouts of one task
    MSG_SIM_REQ = 2,  // rollout rank -> sim rank: a batch of simulator requests
    MSG_SIM_REP = 3,  // sim rank -> rollout rank: the replies, same order
    MSG_TRAJ = 4,     // rollout rank -> learner: one finished trajectory
    MSG_CURRIC = 5,   // learner 0 -> rollout ranks: curriculum state after an update
    MSG_WEIGHTS = 6,  // learner 0 -> rollout ranks: a new policy version follows (raw bytes)
    MSG_SHUTDOWN = 7, // learner 0 -> everyone: stop (reason)
    MSG_N_TYPES
} msg_type_t;
const char *msg_type_name(int type); // "task", "sim_req", ... ("?" when unknown)

// the type of an encoded message (reads only the "t" key), or -1 (err_set) when malformed
int msg_peek_type(const char *buf, size_t n);

// ---- task ----
typedef struct {
    int64_t step;           // training step (1-based); 0 for an evaluation task
    uint64_t task_id;       // unique in the run
    int32_t group;          // index of this task in its step's batch (0..n_tasks-1)
    int32_t group_size;     // rollouts of this task (>= 1)
    int64_t policy_version; // the rollouts must use exactly this policy version (-1: random init,
                            // -2: SFT baseline; both only for evaluation)
    int32_t eval;           // 1: held-out evaluation task (not trained on)
    int32_t difficulty;     // D the aspects were drawn at
    uint64_t seed;          // the task's seed (environment sampling)
    char *env;              // environment name ("airline", ...) or "lm" (LM simulator)
    char *aspects;          // JSON text: curriculum_aspects_json of the task
} msg_task_t;
int msg_task_encode(const msg_task_t *m, msgpack_sbuffer *out);
int msg_task_decode(const char *buf, size_t n, msg_task_t *m);
void msg_task_free(msg_task_t *m);

// ---- simulator requests / replies (batched: one MPI message carries n of them) ----
// request kinds: simreq_kind_t of sim/server.h (SIMREQ_TASK_GEN, SIMREQ_TOOL, ...)

typedef struct {
    uint64_t req_id;  // unique per sending rank; the reply carries it back
    int32_t kind;     // simreq_kind_t (sim/server.h); decoders accept 0..15
    uint64_t task_id;
    int32_t episode;  // rollout index in the group; -1 for task-level requests
    char *payload;    // JSON text (docs/protocol.md, per kind)
} msg_sim_req_t;

typedef struct {
    uint64_t req_id;
    int32_t status;   // 0 ok; otherwise the simulator failed this request (abort the episode)
    char *reason;     // abort reason name ("" when ok), e.g. "lua_error", "schema_invalid"
    char *payload;    // JSON text (docs/protocol.md, per kind); "" when status != 0
} msg_sim_rep_t;

// n may be 0; decode allocates *reqs (n entries), free with msg_sim_reqs_free
int msg_sim_reqs_encode(const msg_sim_req_t *r, int n, msgpack_sbuffer *out);
int msg_sim_reqs_decode(const char *buf, size_t len, msg_sim_req_t **r, int *n);
void msg_sim_reqs_free(msg_sim_req_t *r, int n);
int msg_sim_reps_encode(const msg_sim_rep_t *r, int n, msgpack_sbuffer *out);
int msg_sim_reps_decode(const char *buf, size_t len, msg_sim_rep_t **r, int *n);
void msg_sim_reps_free(msg_sim_rep_t *r, int n);

// ---- trajectory ----
// How an episode ended besides normally (msg_traj_t.abort). SIM_ERROR trajectories are dropped
// from their group (not trained on); the cap reasons end the episode early but it is still scored
// and trained on (msg_traj_t.truncated = 1). The run log counts all of them per step.
typedef enum {
    TRAJ_OK = 0,
    TRAJ_SIM_ERROR = 1,    // the simulator failed a request (Lua error, invalid LM output, ...)
    TRAJ_TURN_CAP = 2,     // the agent-turn cap was reached
    TRAJ_TOKEN_CAP = 3,    // the episode's token cap was reached
    TRAJ_CONTEXT_FULL = 4, // the next turn no longer fits the model's sequence length
    TRAJ_N_REASONS
} traj_reason_t;
const char *traj_reason_name(int reason); // "ok", "sim_error", "turn_cap", "token_cap", "context_full"

typedef struct {
    int64_t step;           // the step whose batch this belongs to (0: evaluation)
    uint64_t task_id;
    int32_t group;          // the task's index in its step
    int32_t index;          // rollout index in the group (0..group_size-1)
    int32_t group_size;
    int64_t policy_version; // the version that sampled it
    int32_t eval;
    int32_t difficulty;
    char *env;
    char *aspects;          // JSON text
    int32_t n_tokens;       // ids / logprobs / mask all have n_tokens entries
    int32_t n_prompt;       // the first n_prompt ids are the initial prompt (mask 0)
    int32_t *ids;           // (n_tokens) the whole episode: prompt, sampled turns, sim turns
    float *logprobs;        // (n_tokens) sampling-time log-prob of each sampled token, 0 elsewhere
    uint8_t *mask;          // (n_tokens) 1 on tokens the policy sampled (token-aligned, mask[0]=0)
    float reward;           // in [-1, 1] (sim/reward.h); 0 when aborted
    float score;            // raw environment score (checks passed / total) or judge score
    int32_t turns;          // agent turns
    int32_t tool_calls;
    int32_t abort;          // traj_reason_t: TRAJ_OK (0) or why the episode ended early
    int32_t truncated;      // 1: ended by the turn or token cap (kept, scored as is)
    char *reward_details;   // JSON text (per-check results, judge reasons, ...)
    char *transcript;       // the episode as readable text
} msg_traj_t;
int msg_traj_encode(const msg_traj_t *m, msgpack_sbuffer *out);
int msg_traj_decode(const char *buf, size_t n, msg_traj_t *m);
void msg_traj_free(msg_traj_t *m);

// ---- curriculum statistics / state ----
typedef struct {
    int64_t step;        // the training step that produced this update
    int64_t update;      // curriculum update index
    int32_t d_before, d_after;
    double mean_reward;
    int32_t n_rewards;
    int32_t move;        // +1 / -1 / 0
    char *state;         // JSON text: curriculum_to_json (the whole state after the update)
} msg_curric_t;
int msg_curric_encode(const msg_curric_t *m, msgpack_sbuffer *out);
int msg_curric_decode(const char *buf, size_t n, msg_curric_t *m);
void msg_curric_free(msg_curric_t *m);

// ---- weights announcement (the F32 parameters follow as raw bytes, MPI_Bcast / NCCL) ----
typedef struct {
    int64_t version;     // weights after `version` updates
    int64_t step;
    int64_t n_floats;    // total F32 values that follow (all parameters, qwen3_params order)
    uint64_t checksum;   // FNV-1a 64 of the raw bytes (checked by the receiver)
} msg_weights_t;
int msg_weights_encode(const msg_weights_t *m, msgpack_sbuffer *out);
int msg_weights_decode(const char *buf, size_t n, msg_weights_t *m);
uint64_t msg_checksum(const void *data, size_t n); // FNV-1a 64

// ---- shutdown ----
typedef struct {
    int32_t code;        // 0 done; otherwise the exit code the ranks should use
    char *reason;        // text
} msg_shutdown_t;
int msg_shutdown_encode(const msg_shutdown_t *m, msgpack_sbuffer *out);
int msg_shutdown_decode(const char *buf, size_t n, msg_shutdown_t *m);
void msg_shutdown_free(msg_shutdown_t *m);
