// sim/server: the simulator side of the protocol. A simulator rank (or, with no simulator ranks, the
// rollout rank itself) answers batches of requests about tasks and their episodes. Two backends:
//   programmatic: the Lua environments (sim/luaenv.h): tasks from luaenv_sample_task, tools and the
//                 user are the script's, the reward is its checks (r = 2 s - 1)
//   lm:           the four LM roles (sim/roles.h) on a frozen simulator model: task generator over
//                 tools sampled from the catalog, tool simulator (+ memo), user simulator, judge
// A task's state (and every episode of its group) lives on the one server that instantiated it:
// requests about a task must all go to the same server (the rollout routes by task id).
//
// Request payloads and reply payloads are JSON texts (docs/protocol.md):
//   SIMREQ_TASK_GEN {"env": "airline" | "lm", "seed": "<uint64 decimal>", "aspects": {...}}
//                (aspects: curriculum_aspects_json; env: an embedded Lua env on either backend,
//                 "lm" on the lm backend only. lm: the tools are catalog_sample(tools_available,
//                 distractors, seed, stream 0), the system text one of three by system_prompt)
//                -> {"system": str, "query": str, "tools": [OpenAI function schemas],
//                    "meta": {...what the log should keep: family, intent, ...}}
//   SIMREQ_TOOL     {"name": str, "arguments": {...}, "history": str}
//                -> {"result": "<the tool output as JSON text>"}
//   SIMREQ_USER     {"text": "<the agent's text turn>", "history": str}
//                -> {"reply": str | null, "end": bool}      (end: the user ends the episode)
//   SIMREQ_REWARD   {"history": str, "truncated": bool}
//                -> {"reward": r in [-1, 1], "score": s, "details": {...}}   (forgets the episode)
//   SIMREQ_DROP     {} -> {}                                  (forgets the task and its episodes)
// Backend specifics: meta = Lua {"env","family","seed","difficulty","aspects"}, LM {"env":"lm",
// "seed","category","persona","intent","expected_calls","hidden_user_facts","aspects","tool_names"};
// REWARD score = Lua s = checks passed / total in [0, 1] (r = 2 s - 1), details {"checks":
// [{"name","passed"}], "truncated"}; LM the judge's score in {-1, 0, 1} (r = score), details
// {"reasons", "criteria": the judge_strictness first criteria, "truncated"}.
// "history" is the episode transcript as text (used by the LM roles; the Lua backend ignores it).
// Episodes start implicitly at their first request.
//
// Failures: a request the simulator cannot answer (Lua error or limit, LM output invalid after
// retries, unknown task/env, malformed payload) gets status != 0 and a reason name; the server
// itself stays usable. Only an internal failure (out of memory, engine failure) makes
// simserver_handle return -1.
#pragma once
#include <stdint.h>

typedef enum {
    SIMREQ_TASK_GEN = 0,
    SIMREQ_TOOL = 1,
    SIMREQ_USER = 2,
    SIMREQ_REWARD = 3,
    SIMREQ_DROP = 4,
    SIMREQ_N_KINDS
} simreq_kind_t;
const char *simreq_kind_name(int kind); // "task_gen", "tool", "user", "reward", "drop"

typedef struct {
    int kind;             // simreq_kind_t
    uint64_t task_id;
    int episode;          // rollout index in the group, -1 for task-level requests
    const char *payload;  // JSON text (not owned)
} simserver_req_t;

typedef struct {
    int status;           // 0 ok
    char reason[32];      // "" when ok; else one of: request errors "bad_request" (not JSON, a
                          // missing / mistyped field, an unknown kind, episode < 0), "unknown_task",
                          // "unknown_env", "duplicate_task" (TASK_GEN of a task id in use);
                          // Lua aborts "lua_error", "insn_limit", "mem_limit", "forbidden",
                          // "bad_result", "usage" (a text turn after the user ended);
                          // LM role aborts (role_abort_name) "schema_invalid", "bad_json", "empty",
                          // "budget_exhausted", "prompt_too_long", "engine"; "role_prepare",
                          // "internal"
    char *payload;        // malloc'd JSON text ("{}" at least when ok; NULL when status != 0)
} simserver_rep_t;

typedef struct {
    const char *model_dir;   // lm backend: the simulator model (HF dir: config + safetensors +
                             // tokenizer; a dir without tokenizer.json uses the embedded Qwen3 one)
    uint64_t seed;           // sampling seed of the LM roles
    float temperature;       // LM roles' sampling temperature (default 1 when 0)
    int max_seq_len;         // LM engine sequence length (0: 4096)
    int max_batch;           // LM engine: sequences at once (0: 64)
} simserver_opts_t;

typedef struct simserver simserver_t;

simserver_t *simserver_new_programmatic(void);                   // NULL + err_set on failure
simserver_t *simserver_new_lm(const simserver_opts_t *opts);      // NULL + err_set on failure
void simserver_free(simserver_t *s);
// Answers n requests (reps[i] for reqs[i]; the caller frees reps[i].payload). Requests are taken
// in order; the LM requests of one batch (task_gen, tool_sim, user_sim, judge mixed) are generated
// together by ONE roles_run call at the end of the batch, so an LM task generated in a batch
// exists only after it (requests about it in the same batch get "unknown_task"). LM tool calls
// with an unknown tool or arguments that fail the tool's schema are answered in C
// ({"error": ...}), repeated calls of a task from the memo (identical text). 0, or -1 on an
// internal failure (err_msg; every reps[i] is still filled, the failed ones with "internal" /
// "engine").
int simserver_handle(simserver_t *s, const simserver_req_t *reqs, int n, simserver_rep_t *reps);
// counters for the run log: requests handled, failed, seconds spent
typedef struct {
    uint64_t n_requests[SIMREQ_N_KINDS];
    uint64_t n_failed[SIMREQ_N_KINDS];
    double seconds;
} simserver_stats_t;
void simserver_stats(const simserver_t *s, simserver_stats_t *st);
