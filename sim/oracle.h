// sim/oracle: gold transcripts from the oracles of the Lua environments (sim/luaenv.h), as
// supervised data: the conversations `trustee env oracle` writes and `trustee sft` / the SFT warm
// start of `trustee train` (learner/sft.h) render and train on.
//
// Task i (0-based) of an environment has seed seed_base + i and difficulty
//   D_i = d_lo + i * (d_hi - d_lo) / (n - 1)   (integer division; D_0 = d_lo when n = 1)
// so D is spread evenly over [d_lo, d_hi]; its aspects are the curriculum map at D_i
// (curriculum_aspects_at, no soft sampling). Each conversation is
//   {"messages": [system, user query, assistant tool calls / text, tool results, user replies...],
//    "tools": [the task's available tools as OpenAI function schemas]}
// in the form model/chat.h chat_load_json reads (no generation prompt).
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "luaenv.h"

// Appends the oracle conversations of n tasks of e to out (a JSON array), tasks as above; family
// NULL: the script picks. *score_sum (may be NULL) += the oracle's final scores. 0, or -1 with
// err_set (a task or an oracle run failed; out may then hold the conversations before it).
int luaenv_oracle_append(luaenv_t *e, int n, uint64_t seed_base, int d_lo, int d_hi, const char *family,
                         json_t *out, double *score_sum);

// Conversations from the oracle of n_per_env tasks per environment, envs in the given order (a
// shipped name, see luaenv_list_embedded, or the path of a .lua file), each env's tasks as above.
// A new JSON array, or NULL + err_set.
json_t *luaenv_oracle_dataset(const char *const *envs, int n_envs, int n_per_env, uint64_t seed_base,
                              int d_lo, int d_hi);

// opens an environment by shipped name, or from a file when name ends in ".lua"; NULL + err_set
luaenv_t *luaenv_open(const char *name);
