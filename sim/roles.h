// sim/roles: the four LM roles of a simulated environment (TRUSTEE), played by one frozen LM:
// task generator, tool simulator, user simulator, judge (+ a rubric mode, SynthAgent).
//
// Each role: render its prompt template (sim/data/prompts/<role>.txt: system text, a line "---",
// user text; {{name}} placeholders) with model/chat.h into ids -> generate under the role's
// output schema (constrained decoding, sim/grammar.h) with the engine -> parse with jansson ->
// validate against the schema (sim/jsonschema.h) -> on failure retry (at most max_retries more
// attempts, new RNG stream) -> then abort with a reason code, counted per role.
//
// Output schemas (properties always emitted in this order):
//   task_gen : {"persona": str<=200, "intent": str<=300, "initial_query": str<=300,
//               "expected_calls": [{"name": enum(tool names), "arguments": object}] (1..3; the
//               prompt asks for n_calls: one grammar, one mask cache per tool set),
//               "hidden_user_facts": [{"key": str<=40, "value": str<=120}] (0..4)}
//   tool_sim : any JSON object (an error is {"error": "..."})
//   user_sim : {"message": str<=400, "end": bool}
//   judge    : {"score": -1|0|1, "reasons": str<=300}
//   rubric   : {"forbidden": [bool x nf], "subgoals": [bool x ns], "interactions": [bool x ni]}
//
// Requests are batched: roles_run() puts every request of a batch into the engine at once.
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "../model/engine.h"
#include "../model/tokenizer.h"
#include "grammar.h"
#include "memo.h"

typedef enum { ROLE_TASK_GEN = 0, ROLE_TOOL_SIM, ROLE_USER_SIM, ROLE_JUDGE, ROLE_RUBRIC, ROLE_N } role_kind_t;

typedef enum {
    ROLE_OK = 0,
    ROLE_ABORT_SCHEMA_INVALID,   // parsed, but the schema validator rejected it on every attempt
    ROLE_ABORT_BAD_JSON,         // not parseable JSON on every attempt
    ROLE_ABORT_EMPTY,            // nothing generated
    ROLE_ABORT_BUDGET_EXHAUSTED, // the token budget cannot hold even the shortest valid output
    ROLE_ABORT_PROMPT_TOO_LONG,  // prompt + budget exceed the engine's sequence length
    ROLE_ABORT_ENGINE,           // the engine failed (err_msg)
    ROLE_ABORT_N
} role_abort_t;
const char *role_abort_name(role_abort_t a);
const char *role_kind_name(role_kind_t k);

typedef struct {
    engine_t *engine;       // the simulator LM (not owned)
    const tokenizer_t *tok; // (not owned)
    gram_vocab_t *vocab;    // owned
    int vocab_size;
    int max_seq_len;        // the engine's, to check prompt + budget
    int max_tokens[ROLE_N]; // token budget per role (defaults 160, 128, 96, 96, 64)
    int max_retries;        // extra attempts after a failed one (default 2)
    sampler_params_t sampling; // default temperature 1, seed 0
    uint64_t next_stream;   // RNG stream of the next attempt
    gram_opts_t gram_opts;
    // compiled grammars, by schema text (the token-mask cache lives in them)
    int n_grams;
    char **gram_keys;
    gram_t **grams;
    // counters (per role)
    uint64_t n_requests[ROLE_N];
    uint64_t n_first_ok[ROLE_N];      // valid at the first attempt
    uint64_t n_ok[ROLE_N];            // valid after retries
    uint64_t n_attempts[ROLE_N];
    uint64_t n_tokens[ROLE_N];        // generated tokens, all attempts
    uint64_t n_aborts[ROLE_N][ROLE_ABORT_N];
    uint64_t n_invalid_args;          // tool calls answered by the C validator
    uint64_t n_memo_hits;             // tool calls answered by the memo
    void *mutex;                      // counters are updated under it (pthread_mutex_t)
} roles_t;

int roles_init(roles_t *r, engine_t *engine, const tokenizer_t *tok, int vocab_size, int max_seq_len);
void roles_free(roles_t *r);

// one role request: filled by a roles_prepare_* function, then run by roles_run
typedef struct {
    role_kind_t kind;
    ids_t prompt;          // rendered prompt ids
    gram_t *gram;          // output grammar (owned by roles_t)
    json_t *schema;        // output schema (owned)
    int max_tokens;
    uint64_t stream;       // nonzero: attempt k samples with RNG stream (stream + k), so a request's
                           // output depends only on its own content, not on the batch (0: the
                           // roles_t counter next_stream, as before)
    // results
    role_abort_t status;
    json_t *out;           // the validated output (owned), NULL when aborted
    int attempts;
    int first_ok;          // valid at the first attempt
    int n_tokens;          // tokens of the accepted attempt
    char why[256];         // last validation failure
} role_req_t;

void role_req_free(role_req_t *q);

// renders a role prompt from its template with (name, value) pairs (values inserted as given)
int roles_render(roles_t *r, role_kind_t kind, const char *const *names, const char *const *values,
                 int n, ids_t *out);

// tools: JSON array of tool schemas; aspects: curriculum_aspects_json object; n_calls: 1..3
int roles_prepare_task_gen(roles_t *r, role_req_t *q, const json_t *tools, const json_t *aspects, int n_calls);
// history / trajectory: transcript text
int roles_prepare_tool_sim(roles_t *r, role_req_t *q, const json_t *tools, const char *intent,
                           const char *history, const char *name, const json_t *arguments);
int roles_prepare_user_sim(roles_t *r, role_req_t *q, const char *persona, const char *intent,
                           const json_t *facts, const char *history);
// criteria: JSON array of criterion names (curriculum_criterion_name)
int roles_prepare_judge(roles_t *r, role_req_t *q, const char *trajectory, const char *intent,
                        const json_t *expected_calls, const json_t *criteria);
// forbidden / subgoals / interactions: JSON arrays of strings
int roles_prepare_rubric(roles_t *r, role_req_t *q, const char *trajectory, const json_t *forbidden,
                         const json_t *subgoals, const json_t *interactions);

// runs the requests as one batch (retrying failures); every request ends with a status.
// Returns 0, or -1 when the engine failed (then the unfinished requests get ROLE_ABORT_ENGINE).
int roles_run(roles_t *r, role_req_t *reqs, int n);

// a rubric output -> reward in [-1, 1] (sim/reward.h)
int roles_rubric_reward(const json_t *rubric_out, double *reward);

// The tool simulator, end to end: an unknown tool or arguments that fail the tool's parameter
// schema get a C-made {"error": "..."} without the LM; otherwise the memo (task, name, canonical
// args) answers when it can; otherwise the LM (tool_sim role), and the answer goes into the memo.
// *output: malloc'd JSON text. Returns 0 or -1; *status says how the role ended.
int roles_tool_call(roles_t *r, memo_t *memo, uint64_t task, const json_t *tools, const char *intent,
                    const char *history, const char *name, const json_t *arguments, char **output,
                    role_abort_t *status);
