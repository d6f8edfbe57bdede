// sim/luaenv: programmatic environments written in Lua 5.4 (EnvScaler-style state + tools + rule
// checks, SynthAgent-style hidden user facts and a scripted user), run in a sandbox.
// The contract a script follows is docs/environments.md; sim/data/envs/airline.lua is the example.
//
// One luaenv_t = one loaded script in its own lua_State (not thread-safe: one per thread).
//   luaenv_sample_task   (seed, aspects[, family]) -> task JSON (pure data, replayable)
//   luaenv_episode_begin (task) -> an episode on a fresh copy of the task's state; then
//   luaenv_tool_call     (name, args) -> result JSON {"success":true,"data":..} | {"success":false,"error":..}
//   luaenv_user_reply    (agent text) -> the scripted user's reply, or the end of the episode
//   luaenv_reward        -> s = checks passed / checks total in [0, 1], per-check results;
//                           the reward in [-1, 1] is r = 2 s - 1 (sim/reward.h reward_from_checks).
// Many episodes (of one or several tasks) may be open at once on one luaenv_t.
//
// Sandbox: base (no dofile/loadfile/load/collectgarbage/print), string (no dump), table, math
// (math.random = our seeded RNG, no randomseed), utf8; no io/os/require/package/debug/coroutine.
// An instruction limit per call (count hook), a memory limit per lua_State (allocator), and pcall /
// xpcall that cannot swallow a limit. Any failure inside Lua (error, limit, forbidden library,
// malformed result) makes the call return -1 with err_msg() naming the script and line and the
// abort code in luaenv_abort_code(); an episode that failed is aborted (every later call fails),
// and the luaenv_t stays usable.
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "curriculum.h"

#define LUAENV_MEM_LIMIT (64u << 20) // bytes per lua_State
#define LUAENV_INSN_LIMIT 20000000L  // VM instructions per call into Lua
#define LUAENV_MAX_TOOL_CALLS 32     // per episode; beyond: the episode ends
#define LUAENV_MAX_USER_TURNS 8      // user replies per episode; beyond: the episode ends

// why a trajectory was aborted (counted by the caller)
typedef enum {
    LUAENV_OK = 0,
    LUAENV_ABORT_ERROR,      // a Lua runtime error in the script
    LUAENV_ABORT_INSN_LIMIT, // instruction limit exceeded (e.g. an infinite loop)
    LUAENV_ABORT_MEM_LIMIT,  // memory limit exceeded
    LUAENV_ABORT_FORBIDDEN,  // the script used io / os / require / ... (not in the sandbox)
    LUAENV_ABORT_BAD_RESULT, // a script function returned something of the wrong shape
    LUAENV_ABORT_USAGE,      // the caller misused the API (episode already ended / aborted)
    LUAENV_N_ABORT
} luaenv_abort_t;
const char *luaenv_abort_name(int code); // "error", "insn_limit", "mem_limit", ...

typedef struct luaenv luaenv_t;

// Loads a script. chunkname names it in every message (e.g. "envs/airline.lua"); its stem must
// equal the env's `name`. mem_limit / insn_limit 0 = the defaults above. NULL + err_set on failure
// (syntax errors, structure errors: "envs/x.lua:12: tool 'foo': ...").
luaenv_t *luaenv_load(const char *chunkname, const char *text, size_t len, size_t mem_limit,
                      long insn_limit);
luaenv_t *luaenv_load_file(const char *path);        // chunkname = path
luaenv_t *luaenv_load_embedded(const char *name);    // "airline" -> sim/data/envs/airline.lua
void luaenv_free(luaenv_t *e);

// names of the shipped (embedded) environments, sorted; returns the count, *names malloc'd array
// of pointers into static data (free the array only)
int luaenv_list_embedded(const char ***names);

const char *luaenv_name(const luaenv_t *e);
const char *luaenv_description(const luaenv_t *e);
int luaenv_n_families(const luaenv_t *e);
const char *luaenv_family(const luaenv_t *e, int i);
int luaenv_n_tools(const luaenv_t *e);
// {"name","description","tools":[OpenAI function schemas],"families":[{"name","description"}]}
json_t *luaenv_info(luaenv_t *e);
// abort code of the last failed call (LUAENV_OK when the last call succeeded)
int luaenv_abort_code(const luaenv_t *e);

// A task (new reference), a pure function of (script, seed, aspects, family). family NULL: the
// script picks. Fields: env seed family query system facts fact_phrases state tools available
// checks oracle aspects (docs/environments.md section 1).
json_t *luaenv_sample_task(luaenv_t *e, uint64_t seed, const curriculum_aspects_t *a,
                           const char *family);
// the OpenAI function schemas of the task's available tools (new reference, a JSON array)
json_t *luaenv_task_tools(luaenv_t *e, const json_t *task);

typedef struct {
    luaenv_t *env;
    json_t *task;      // the task (own reference)
    int ref;           // registry ref of the episode's Lua table {task, state, calls, revealed, ...}
    int n_tool_calls;
    int n_user_turns;
    int ended;         // the user ended the episode or a limit was reached
    int abort;         // LUAENV_OK, or why the episode was aborted
} luaenv_episode_t;

int luaenv_episode_begin(luaenv_episode_t *ep, luaenv_t *e, const json_t *task);
void luaenv_episode_free(luaenv_episode_t *ep);

// Runs a tool call. *result = malloc'd canonical JSON text of {"success":..,"data"|"error":..}:
// invalid arguments or a tool not available give success=false results (return 0). args may be
// NULL ({}). Returns 0, or -1 when the episode is aborted (err_msg, ep->abort).
int luaenv_tool_call(luaenv_episode_t *ep, const char *name, const json_t *args, char **result);
// The scripted user's answer to an agent text message without tool calls: returns 1 and *reply
// (malloc'd) when the user reveals asked-for facts, 0 (reply NULL) when the user ends the episode
// (nothing asked, or the turn limit), -1 on abort.
int luaenv_user_reply(luaenv_episode_t *ep, const char *agent_text, char **reply);
// Runs the task's checks on the current state: *s = passed / total; *checks (may be NULL) = new
// array [{"name":..,"passed":bool}]. -1 on abort (a check raised an error).
int luaenv_reward(luaenv_episode_t *ep, double *s, json_t **checks);

// Replays the first n_steps steps of the task's oracle (n_steps < 0: all) as the agent, through
// the episode API. messages (may be NULL): an array the chat messages are appended to
// (system, user query, assistant tool_calls / text, tool results, user replies) in the form
// model/chat.h chat_load_json reads. *s = the final score. 0, or -1 on abort.
int luaenv_run_oracle(luaenv_t *e, const json_t *task, int n_steps, json_t *messages, double *s);
// the number of steps of a task's oracle
int luaenv_oracle_steps(const json_t *task);
