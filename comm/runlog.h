// comm/runlog: the HDF5 run log (runs/<name>/run.h5). Written by one rank (learner 0), in SWMR mode
// so h5py can read it while the run goes on, flushed after every step. Schema: docs/runlog.md.
//
//   /config                attributes: every resolved setting (int64 / float64 / string)
//   /steps                 one row per training step (runlog_step_t)
//   /curriculum            one row per task (runlog_task_t)
//   /eval                  one row per (phase, env, difficulty) evaluation cell (runlog_eval_t)
//   /trajectories/rows     one row per trajectory (runlog_traj_t); its ragged data lives in flat
//   /trajectories/ids        1-D datasets addressed by start/length columns of the row:
//   /trajectories/logprobs   ids (int32), logprobs (float32), mask (uint8) share tok_start/n_tokens;
//   /trajectories/mask       text (uint8, UTF-8 transcript) uses text_start/text_len;
//   /trajectories/text       details (uint8, JSON) uses details_start/details_len
//   /trajectories/details
//
// Every dataset is chunked with an unlimited max dimension and created before SWMR writing starts
// (the SWMR rules: fixed-size appends to chunked datasets). Strings inside rows are fixed-size,
// NUL-padded.
//
// Resume and crashes: a checkpoint stores runlog_position(); runlog_resume() rebuilds the file with
// exactly the rows before that position (copying them into a new file that is renamed over the
// old one), so rows of a step that was not checkpointed are dropped and none is duplicated. The
// copy opens the old file read-only, and as a SWMR reader when a crash (kill -9) left it marked as
// open for SWMR writing (such a file refuses a normal open, read-write or read-only; checked on
// HDF5 1.10.8). No compression: plain chunked datasets (docs/runlog.md says why).
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "msg.h"

#define RUNLOG_NAME_LEN 32 // fixed string fields (env names, phases), NUL-padded
#define RUNLOG_MAX_ENVS 16 // environments of one run (train's --envs takes at most this many)

typedef struct {
    int64_t step;            // 1-based
    int64_t policy_version;  // the version the step's rollouts used
    int32_t difficulty;      // D before this step's curriculum update (the step's tasks were drawn at the
                             // D after max(0, step - 1 - staleness) updates); one D per environment:
                             // their mean, rounded half up
    int32_t difficulty_next; // D after this step's curriculum update (the same)
    // train --curriculum env: D of environment e (/config env_names order) before / after the step's
    // update; -1 past the last environment, and everywhere with one shared D
    int32_t env_difficulty[RUNLOG_MAX_ENVS];
    int32_t env_difficulty_next[RUNLOG_MAX_ENVS];
    double mean_reward;      // over trained-on trajectories
    double success_rate;     // fraction with reward == 1 (all checks passed / judge score 1)
    double loss, pg_loss, kl, clip_frac, entropy;
    double ratio_min, ratio_max, lp_gap_max; // sampling-vs-learner log-prob gap
    double grad_norm, lr;
    int32_t optim_skipped;   // 1: the NaN guard refused the update
    int32_t n_traj;          // trajectories received
    int32_t n_groups_kept;   // groups with non-zero reward variance
    int64_t tokens;          // trained (masked) tokens
    int64_t total_tokens;    // all tokens of the step's trajectories
    int32_t aborted[TRAJ_N_REASONS]; // trajectories by end reason (index 0 = ok: complete ones)
    double t_rollout, t_sim, t_train, t_sync, t_step; // seconds
    double tokens_per_s;     // sampled tokens / t_rollout
    double wall;             // unix time at the end of the step
} runlog_step_t;

typedef struct {
    int64_t step;
    uint64_t task_id;
    int32_t group;
    char env[RUNLOG_NAME_LEN];
    uint64_t seed;
    int32_t difficulty, soft, tools_available, expected_calls, expected_turns;
    int32_t system_prompt, persona, ambiguity, judge_strictness, distractors;
    double mean_reward;      // over the group's trained-on rollouts
    double success_rate;
} runlog_task_t;

typedef struct {
    int64_t step;            // training steps done when the evaluation ran
    char phase[RUNLOG_NAME_LEN]; // "init", "sft", "grpo", "baseline", or "step"
    char env[RUNLOG_NAME_LEN];   // domain, or "all"
    int32_t difficulty;
    int32_t n, successes;
    double mean_reward;
} runlog_eval_t;

typedef struct {
    int64_t step;
    uint64_t task_id;
    int32_t group, index;
    int64_t policy_version;
    int32_t eval;
    char env[RUNLOG_NAME_LEN];
    int32_t difficulty;
    float reward, score;
    int32_t turns, tool_calls, abort, truncated;
    int64_t tok_start;  // filled by runlog_append_traj
    int32_t n_tokens, n_prompt;
    int64_t text_start, text_len;       // filled by runlog_append_traj
    int64_t details_start, details_len; // filled by runlog_append_traj
} runlog_traj_t;

// rows / elements written so far in each dataset (stored in checkpoints)
typedef struct {
    int64_t steps, curriculum, evals, trajs, tokens, text, details;
} runlog_pos_t;

typedef struct runlog runlog_t;

// Creates path (error if it exists) with the schema, /config attributes from the JSON object
// (integers -> int64, reals -> float64, strings -> string, booleans -> int64 0/1, anything else ->
// its JSON text as a string), and starts SWMR writing. NULL + err_set on failure.
runlog_t *runlog_create(const char *path, const json_t *config);
// Rebuilds path keeping exactly the rows before pos (see above) and reopens it for SWMR writing.
// Errors when the file has fewer rows than pos or is not a trustee run log.
runlog_t *runlog_resume(const char *path, const runlog_pos_t *pos);
// the same, with /config written from `config` (the resumed run's settings) instead of copied
runlog_t *runlog_resume_config(const char *path, const runlog_pos_t *pos, const json_t *config);
int runlog_append_step(runlog_t *r, const runlog_step_t *row);
int runlog_append_task(runlog_t *r, const runlog_task_t *row);
int runlog_append_eval(runlog_t *r, const runlog_eval_t *row);
// appends the row (its *_start / *_len fields are set here) and its ragged data
// (ids / logprobs / mask: row->n_tokens each; text, details: NUL-terminated, may be NULL = "")
int runlog_append_traj(runlog_t *r, runlog_traj_t *row, const int32_t *ids, const float *logprobs,
                       const uint8_t *mask, const char *text, const char *details);
int runlog_flush(runlog_t *r); // H5Dflush of every dataset (readers see everything appended)
void runlog_position(const runlog_t *r, runlog_pos_t *pos);
int runlog_close(runlog_t *r); // flushes and closes; NULL is fine

// ---- reading (trustee inspect) ----
// A read-only SWMR reader: works on a finished run, on one still being written and on one a crashed
// writer left open. Row counts are refreshed on every runlog_reader_rows() call.

typedef enum { // the nine datasets, in the order of the schema above
    RUNLOG_STEPS, RUNLOG_CURRICULUM, RUNLOG_EVAL, RUNLOG_TRAJS, RUNLOG_IDS, RUNLOG_LOGPROBS, RUNLOG_MASK,
    RUNLOG_TEXT, RUNLOG_DETAILS, RUNLOG_N_TABLES
} runlog_table_t;

typedef struct runlog_reader runlog_reader_t;

// opens path for SWMR reading (H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, libver latest) and checks it is
// a trustee run log of this format version. NULL + err_set (missing file, not HDF5, not a run log).
runlog_reader_t *runlog_reader_open(const char *path);
int64_t runlog_reader_rows(runlog_reader_t *r, runlog_table_t t); // rows / elements now; -1 on error
// reads rows [start, start + n) of t into out (runlog_step_t / runlog_task_t / runlog_eval_t /
// runlog_traj_t for the four tables, int32 / float / uint8 for the flat ones)
int runlog_reader_read(runlog_reader_t *r, runlog_table_t t, int64_t start, int64_t n, void *out);
// bytes [start, start + len) of RUNLOG_TEXT or RUNLOG_DETAILS as a NUL-terminated malloc'd string
char *runlog_reader_string(runlog_reader_t *r, runlog_table_t t, int64_t start, int64_t len);
// the name of end reason k (the /steps attribute "reasons" of the file); "?" when out of range
const char *runlog_reader_reason(const runlog_reader_t *r, int k);
void runlog_reader_close(runlog_reader_t *r); // NULL is fine
