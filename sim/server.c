// The simulator side of the protocol: tasks and episodes of the Lua environments and of the LM
// roles, answered a batch of requests at a time (server.h).
//
// State: a hash map task id -> task. A Lua task keeps its task JSON (luaenv_sample_task) and its
// open episodes (a small array: a group has a handful of rollouts); an LM task keeps the task
// generator's output plus its tool schemas, aspects and system text. The memo (LM tool outputs)
// is keyed by task id and dropped with the task.
//
// One batch: every request is checked and answered in order; LM requests that need the model get
// a role request prepared instead, and all of those run in ONE roles_run call at the end of the
// batch (task_gen, tool_sim, user_sim and judge requests mixed), then their replies are written.
// So an LM task generated in a batch exists only after that batch (requests about it in the same
// batch get "unknown_task").
#include "server.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/err.h"
#include "../model/engine.h"
#include "../model/qwen3.h"
#include "../model/tokenizer.h"
#include "catalog.h"
#include "curriculum.h"
#include "jsonschema.h"
#include "luaenv.h"
#include "memo.h"
#include "reward.h"
#include "roles.h"

static const char *KIND_NAMES[SIMREQ_N_KINDS] = {"task_gen", "tool", "user", "reward", "drop"};

const char *simreq_kind_name(int kind) {
    return kind >= 0 && kind < SIMREQ_N_KINDS ? KIND_NAMES[kind] : "?";
}

// system texts of LM tasks, by the system_prompt aspect (detailed -> moderate -> generic)
static const char *LM_SYSTEM[3] = {
    "You are a helpful assistant that solves the user's request with the tools provided. Before "
    "calling a tool, make sure you know every required argument: ask the user for missing "
    "information instead of guessing it. Call only the tools the request needs, do not repeat a "
    "call, and never state facts that neither a tool output nor the user gave you. When the request "
    "is done, tell the user the outcome in a short final message.",
    "You are a helpful assistant with access to tools. Use them to complete the user's request and "
    "ask the user when information is missing.",
    "You are a helpful assistant.",
};

#define KV_BUDGET_BYTES (4ull << 30) // LM engine: at most this much KV cache (unless one sequence needs more)

// ---- state ----

typedef struct {
    int episode;
    luaenv_episode_t ep;
} sim_ep_t;

typedef struct sim_task {
    uint64_t id;
    struct sim_task *next; // hash chain
    int ready;             // 0 while its LM generation is pending in the current batch
    int lm;                // 1: an LM task, 0: a Lua task
    int env;               // Lua: index into the embedded env names
    json_t *task;          // Lua: the task JSON; LM: {persona, intent, initial_query, expected_calls,
                           //   hidden_user_facts, tools, aspects, system}
    sim_ep_t *eps;         // Lua: open episodes (n_eps)
    int n_eps, cap_eps;
} sim_task_t;

struct simserver {
    // Lua environments, loaded on first use
    int n_envs;
    const char **env_names; // (n_envs) static names, the array malloc'd
    luaenv_t **envs;        // (n_envs) NULL until used
    // tasks
    sim_task_t **buckets;
    size_t n_buckets, n_tasks;
    // LM backend (lm = 1)
    int lm;
    qwen3_t model;
    int model_loaded;
    tokenizer_t *tok;
    engine_t *engine;
    roles_t roles;
    int roles_ok;
    memo_t memo;
    int memo_ok;
    catalog_t catalog;
    simserver_stats_t stats;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static size_t task_hash(uint64_t id, size_t nb) {
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)(id & (nb - 1));
}

static sim_task_t *task_find(simserver_t *s, uint64_t id) {
    for (sim_task_t *t = s->buckets[task_hash(id, s->n_buckets)]; t; t = t->next)
        if (t->id == id) return t;
    return NULL;
}

// a new empty task under id (the caller checked it is absent); NULL on out of memory
static sim_task_t *task_insert(simserver_t *s, uint64_t id) {
    if (s->n_tasks + 1 > s->n_buckets) { // grow: load factor <= 1
        size_t nb = s->n_buckets * 2;
        sim_task_t **b = calloc(nb, sizeof *b);
        if (!b) return NULL;
        for (size_t i = 0; i < s->n_buckets; i++)
            for (sim_task_t *t = s->buckets[i], *nx; t; t = nx) {
                nx = t->next;
                size_t h = task_hash(t->id, nb);
                t->next = b[h];
                b[h] = t;
            }
        free(s->buckets);
        s->buckets = b;
        s->n_buckets = nb;
    }
    sim_task_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->id = id;
    size_t h = task_hash(id, s->n_buckets);
    t->next = s->buckets[h];
    s->buckets[h] = t;
    s->n_tasks++;
    return t;
}

static void task_free(sim_task_t *t) {
    for (int i = 0; i < t->n_eps; i++) luaenv_episode_free(&t->eps[i].ep);
    free(t->eps);
    json_decref(t->task);
    free(t);
}

// unlinks and frees a task (and its memo entries)
static void task_remove(simserver_t *s, uint64_t id) {
    sim_task_t **p = &s->buckets[task_hash(id, s->n_buckets)];
    for (; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            sim_task_t *t = *p;
            *p = t->next;
            if (t->lm && s->memo_ok) memo_drop_task(&s->memo, id);
            task_free(t);
            s->n_tasks--;
            return;
        }
}

static sim_ep_t *ep_find(sim_task_t *t, int episode) {
    for (int i = 0; i < t->n_eps; i++)
        if (t->eps[i].episode == episode) return &t->eps[i];
    return NULL;
}

static void ep_remove(sim_task_t *t, int episode) {
    for (int i = 0; i < t->n_eps; i++)
        if (t->eps[i].episode == episode) {
            luaenv_episode_free(&t->eps[i].ep);
            t->eps[i] = t->eps[--t->n_eps];
            return;
        }
}

// ---- construction ----

static simserver_t *server_alloc(void) {
    simserver_t *s = calloc(1, sizeof *s);
    if (!s) {
        err_set("simserver: out of memory");
        return NULL;
    }
    s->n_buckets = 64;
    s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
    s->n_envs = luaenv_list_embedded(&s->env_names);
    s->envs = calloc(s->n_envs > 0 ? (size_t)s->n_envs : 1, sizeof *s->envs);
    if (!s->buckets || s->n_envs < 0 || !s->envs) {
        if (s->n_envs < 0) s->n_envs = 0;
        simserver_free(s);
        err_set("simserver: out of memory");
        return NULL;
    }
    return s;
}

simserver_t *simserver_new_programmatic(void) { return server_alloc(); }

simserver_t *simserver_new_lm(const simserver_opts_t *opts) {
    if (!opts || !opts->model_dir) {
        err_set("simserver: the LM backend needs a model directory");
        return NULL;
    }
    simserver_t *s = server_alloc();
    if (!s) return NULL;
    s->lm = 1;
    int max_seq_len = opts->max_seq_len > 0 ? opts->max_seq_len : 4096;
    int max_batch = opts->max_batch > 0 ? opts->max_batch : 64;
    device_t dev = kernels_backend_available(DEVICE_CUDA) ? DEVICE_CUDA : DEVICE_CPU;
    if (qwen3_load(&s->model, opts->model_dir, dev)) {
        err_wrap("simserver: simulator model %s: ", opts->model_dir);
        goto fail;
    }
    s->model_loaded = 1;
    s->tok = tokenizer_load_dir(opts->model_dir, 1);
    if (!s->tok) {
        err_wrap("simserver: tokenizer of %s: ", opts->model_dir);
        goto fail;
    }
    // KV cache: enough for max_batch full-length sequences, capped at KV_BUDGET_BYTES (the engine
    // admits sequences as pages free up); at least one full-length sequence
    const qwen3_config_t *cfg = &s->model.cfg;
    const int page = 16, pages_per_seq = (max_seq_len + page - 1) / page;
    unsigned long long tok_bytes = 2ull * (unsigned long long)cfg->num_hidden_layers *
                                   (unsigned long long)cfg->num_key_value_heads * (unsigned long long)cfg->head_dim * 4ull;
    unsigned long long budget_pages = KV_BUDGET_BYTES / (tok_bytes * page + 1);
    long long n_pages = (long long)max_batch * pages_per_seq;
    if ((unsigned long long)n_pages > budget_pages) n_pages = (long long)budget_pages;
    if (n_pages < pages_per_seq) n_pages = pages_per_seq;
    engine_opts_t eo = {max_batch, 4096 > max_batch ? 4096 : max_batch, max_seq_len, page, (int)n_pages, NULL, NULL};
    s->engine = engine_new(&s->model, &eo);
    if (!s->engine) {
        err_wrap("simserver: engine: ");
        goto fail;
    }
    if (roles_init(&s->roles, s->engine, s->tok, cfg->vocab_size, max_seq_len)) goto fail;
    s->roles_ok = 1;
    s->roles.sampling.temperature = opts->temperature > 0 ? opts->temperature : 1.0f;
    s->roles.sampling.seed = opts->seed;
    if (memo_init(&s->memo)) goto fail;
    s->memo_ok = 1;
    if (catalog_load_embedded(&s->catalog)) {
        err_wrap("simserver: tool catalog: ");
        goto fail;
    }
    return s;
fail:;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err_msg());
    simserver_free(s);
    err_set("%s", msg);
    return NULL;
}

void simserver_free(simserver_t *s) {
    if (!s) return;
    if (s->buckets)
        for (size_t i = 0; i < s->n_buckets; i++)
            for (sim_task_t *t = s->buckets[i], *nx; t; t = nx) {
                nx = t->next;
                task_free(t);
            }
    free(s->buckets);
    for (int i = 0; i < s->n_envs; i++) luaenv_free(s->envs[i]);
    free(s->envs);
    free(s->env_names);
    if (s->lm) {
        catalog_free(&s->catalog);
        if (s->memo_ok) memo_free(&s->memo);
        if (s->roles_ok) roles_free(&s->roles);
        engine_free(s->engine);
        tokenizer_free(s->tok);
        if (s->model_loaded) qwen3_free(&s->model);
    }
    free(s);
}

void simserver_stats(const simserver_t *s, simserver_stats_t *st) { *st = s->stats; }

// ---- replies ----

// status 0 with obj as the payload (obj is stolen); -1 on out of memory
static int rep_ok(simserver_rep_t *rep, json_t *obj) {
    rep->status = 0;
    rep->reason[0] = 0;
    rep->payload = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!rep->payload) {
        rep->status = 1;
        snprintf(rep->reason, sizeof rep->reason, "internal");
        return err_set("simserver: out of memory writing a reply");
    }
    return 0;
}

// status 1 with a reason; always 0 (a failed request is not an internal failure)
static int rep_fail(simserver_rep_t *rep, const char *reason) {
    rep->status = 1;
    snprintf(rep->reason, sizeof rep->reason, "%s", reason);
    free(rep->payload);
    rep->payload = NULL;
    return 0;
}

static const char *lua_reason(int code) {
    return code == LUAENV_ABORT_ERROR ? "lua_error" : luaenv_abort_name(code);
}

// ---- payload fields ----

// decimal uint64 (digits only, no overflow) -> 0, else -1
static int parse_u64(const char *str, uint64_t *v) {
    if (!str || !*str || strlen(str) > 20) return -1;
    for (const char *p = str; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(str, &end, 10);
    if (errno || *end) return -1;
    *v = (uint64_t)x;
    return 0;
}

// an optional string field: 0 (*out = value or dflt), -1 when present with another type
static int opt_string(const json_t *obj, const char *key, const char *dflt, const char **out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_string(v)) return -1;
    *out = json_string_value(v);
    return 0;
}

static int env_index(const simserver_t *s, const char *name) {
    for (int i = 0; i < s->n_envs; i++)
        if (strcmp(s->env_names[i], name) == 0) return i;
    return -1;
}

static luaenv_t *env_get(simserver_t *s, int i) {
    if (!s->envs[i]) s->envs[i] = luaenv_load_embedded(s->env_names[i]);
    return s->envs[i];
}

static json_t *tool_names(const json_t *tools) {
    json_t *names = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *f = json_object_get(t, "function");
        const json_t *nm = json_object_get(f ? f : t, "name");
        if (json_is_string(nm)) json_array_append(names, (json_t *)nm);
    }
    return names;
}

// ---- pending LM work of a batch ----

typedef struct {
    int rep;          // index of the request / reply
    int kind;         // simreq_kind_t
    uint64_t task_id;
    json_t *keep;     // TASK_GEN: the task under construction {tools, aspects, system, seed, category};
                      // TOOL: {"name", "arguments"}; REWARD: {"criteria", "truncated"}
} pending_t;

typedef struct {
    simserver_t *s;
    role_req_t *rq; // (n) role requests of the batch
    pending_t *pd;  // (n)
    int np;
} batch_t;

// ---- TASK_GEN ----

static int task_gen_lua(simserver_t *s, uint64_t task_id, int env, uint64_t seed, const curriculum_aspects_t *a,
                        simserver_rep_t *rep) {
    luaenv_t *e = env_get(s, env);
    if (!e) return err_wrap("simserver: env %s: ", s->env_names[env]); // an embedded script that does not load
    json_t *task = luaenv_sample_task(e, seed, a, NULL);
    if (!task) return rep_fail(rep, lua_reason(luaenv_abort_code(e)));
    json_t *tools = luaenv_task_tools(e, task);
    if (!tools) {
        json_decref(task);
        return rep_fail(rep, lua_reason(luaenv_abort_code(e)));
    }
    char seed_s[24];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    const json_t *asp = json_object_get(task, "aspects");
    json_t *meta = json_pack("{s:s, s:O, s:s, s:i, s:O}", "env", s->env_names[env], "family",
                             json_object_get(task, "family"), "seed", seed_s, "difficulty", a->difficulty,
                             "aspects", asp ? asp : json_null());
    json_t *out = meta ? json_pack("{s:O, s:O, s:o, s:o}", "system", json_object_get(task, "system"), "query",
                                   json_object_get(task, "query"), "tools", tools, "meta", meta)
                       : NULL;
    if (!meta) json_decref(tools);
    if (!out) { // the task lacks system / query strings: the script broke the contract
        json_decref(task);
        return rep_fail(rep, "bad_result");
    }
    sim_task_t *t = task_insert(s, task_id);
    if (!t) {
        json_decref(task);
        json_decref(out);
        rep_fail(rep, "internal");
        return err_set("simserver: out of memory");
    }
    t->ready = 1;
    t->env = env;
    t->task = task;
    return rep_ok(rep, out);
}

static int task_gen_lm(batch_t *b, uint64_t task_id, uint64_t seed, const curriculum_aspects_t *a,
                       simserver_rep_t *rep, int rep_i) {
    simserver_t *s = b->s;
    int k = a->tools_available, d = a->distractors;
    if (k > s->catalog.n_tools) k = s->catalog.n_tools;
    if (k < 1) return rep_fail(rep, "bad_request");
    if (d > k - 1) d = k - 1;
    if (d < 0) d = 0;
    int idx[16], core = -1;
    if (k > 16) k = 16;
    if (catalog_sample(&s->catalog, k, d, -1, seed, 0, idx, NULL, &core)) return rep_fail(rep, "bad_request");
    json_t *tools = catalog_tools_json(&s->catalog, idx, k);
    json_t *asp = curriculum_aspects_json(a);
    int sp = a->system_prompt >= 0 && a->system_prompt < 3 ? a->system_prompt : 0;
    char seed_s[24];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    json_t *keep = NULL;
    if (tools && asp) // "o" steals both references, also when json_pack fails
        keep = json_pack("{s:o, s:o, s:s, s:s, s:s}", "tools", tools, "aspects", asp, "system", LM_SYSTEM[sp],
                         "seed", seed_s, "category", core >= 0 ? s->catalog.categories[core] : "");
    else {
        json_decref(tools);
        json_decref(asp);
    }
    if (!keep) {
        rep_fail(rep, "internal");
        return err_set("simserver: out of memory");
    }
    role_req_t *q = &b->rq[b->np];
    if (roles_prepare_task_gen(&s->roles, q, json_object_get(keep, "tools"), json_object_get(keep, "aspects"),
                               a->expected_calls)) {
        role_req_free(q);
        json_decref(keep);
        return rep_fail(rep, "role_prepare");
    }
    sim_task_t *t = task_insert(s, task_id); // placeholder: blocks a duplicate in this batch
    if (!t) {
        role_req_free(q);
        json_decref(keep);
        rep_fail(rep, "internal");
        return err_set("simserver: out of memory");
    }
    t->lm = 1;
    t->ready = 0;
    b->pd[b->np++] = (pending_t){rep_i, SIMREQ_TASK_GEN, task_id, keep};
    return 0;
}

static int do_task_gen(batch_t *b, const simserver_req_t *req, const json_t *p, simserver_rep_t *rep, int rep_i) {
    simserver_t *s = b->s;
    const char *env = json_string_value(json_object_get(p, "env"));
    const char *seed_s = json_string_value(json_object_get(p, "seed"));
    const json_t *aj = json_object_get(p, "aspects");
    uint64_t seed;
    curriculum_aspects_t a;
    if (!env || parse_u64(seed_s, &seed) || !json_is_object(aj) || curriculum_aspects_from_json(aj, &a))
        return rep_fail(rep, "bad_request");
    if (task_find(s, req->task_id)) return rep_fail(rep, "duplicate_task");
    if (strcmp(env, "lm") == 0) {
        if (!s->lm) return rep_fail(rep, "unknown_env");
        return task_gen_lm(b, req->task_id, seed, &a, rep, rep_i);
    }
    int e = env_index(s, env);
    if (e < 0) return rep_fail(rep, "unknown_env");
    return task_gen_lua(s, req->task_id, e, seed, &a, rep);
}

// ---- Lua episodes ----

// the episode, begun at its first request; NULL with rep failed (reason) or err (internal: *internal = 1)
static sim_ep_t *lua_episode(simserver_t *s, sim_task_t *t, int episode, simserver_rep_t *rep, int *internal) {
    *internal = 0;
    sim_ep_t *e = ep_find(t, episode);
    if (e) return e;
    if (t->n_eps == t->cap_eps) {
        int cap = t->cap_eps ? 2 * t->cap_eps : 8;
        sim_ep_t *n = realloc(t->eps, (size_t)cap * sizeof *n);
        if (!n) {
            *internal = 1;
            rep_fail(rep, "internal");
            err_set("simserver: out of memory");
            return NULL;
        }
        t->eps = n;
        t->cap_eps = cap;
    }
    e = &t->eps[t->n_eps];
    memset(e, 0, sizeof *e);
    e->episode = episode;
    luaenv_t *env = env_get(s, t->env);
    if (luaenv_episode_begin(&e->ep, env, t->task)) {
        int code = e->ep.abort ? e->ep.abort : luaenv_abort_code(env);
        luaenv_episode_free(&e->ep);
        rep_fail(rep, lua_reason(code ? code : LUAENV_ABORT_ERROR));
        return NULL;
    }
    t->n_eps++;
    return e;
}

static const char *ep_reason(const sim_ep_t *e) {
    int code = e->ep.abort ? e->ep.abort : luaenv_abort_code(e->ep.env);
    return lua_reason(code ? code : LUAENV_ABORT_ERROR);
}

// ---- TOOL / USER / REWARD ----

static int do_tool(batch_t *b, const simserver_req_t *req, sim_task_t *t, const json_t *p, simserver_rep_t *rep,
                   int rep_i) {
    simserver_t *s = b->s;
    const char *name = json_string_value(json_object_get(p, "name"));
    const json_t *args = json_object_get(p, "arguments");
    const char *history;
    if (!name || opt_string(p, "history", "", &history)) return rep_fail(rep, "bad_request");
    if (!t->lm) {
        int internal;
        sim_ep_t *e = lua_episode(s, t, req->episode, rep, &internal);
        if (!e) return internal ? -1 : 0;
        char *result = NULL;
        if (luaenv_tool_call(&e->ep, name, args, &result)) return rep_fail(rep, ep_reason(e));
        json_t *out = json_pack("{s:s}", "result", result);
        free(result);
        return rep_ok(rep, out);
    }
    // LM: invalid calls answered in C, then the memo, else the tool_sim role (as roles_tool_call,
    // but batched)
    const json_t *tools = json_object_get(t->task, "tools");
    const json_t *tool = NULL;
    size_t i;
    const json_t *tj;
    json_array_foreach(tools, i, tj) {
        const json_t *f = json_object_get(tj, "function");
        const char *nm = json_string_value(json_object_get(f ? f : tj, "name"));
        if (nm && strcmp(nm, name) == 0) tool = f ? f : tj;
    }
    char why[300] = "";
    json_t *empty = NULL;
    if (!args) args = empty = json_object();
    if (!tool) {
        snprintf(why, sizeof why, "unknown tool '%s'", name);
    } else if (!json_is_object(args)) {
        snprintf(why, sizeof why, "arguments must be a JSON object");
    } else {
        const json_t *params = json_object_get(tool, "parameters");
        if (params) {
            int v = jsonschema_validate(params, args, JSONSCHEMA_STRICT, "arguments", why, sizeof why);
            if (v < 0) snprintf(why, sizeof why, "%s", err_msg());
            else if (v == 1) why[0] = 0;
        }
    }
    if (why[0]) {
        json_decref(empty);
        json_t *msg = json_string(why);
        for (size_t len = strlen(why); !msg && len > 0; len--) // snprintf may have cut a UTF-8 character
            msg = json_stringn(why, len - 1);
        json_t *err = json_pack("{s:o}", "error", msg ? msg : json_string("invalid call"));
        char *text = err ? json_dumps(err, JSON_COMPACT) : NULL;
        json_decref(err);
        pthread_mutex_lock(s->roles.mutex);
        s->roles.n_invalid_args++;
        pthread_mutex_unlock(s->roles.mutex);
        json_t *out = text ? json_pack("{s:s}", "result", text) : NULL;
        free(text);
        return rep_ok(rep, out);
    }
    char *hit = NULL;
    int h = memo_get(&s->memo, t->id, name, args, &hit);
    if (h < 0) {
        json_decref(empty);
        rep_fail(rep, "internal");
        return -1;
    }
    if (h == 1) {
        json_decref(empty);
        pthread_mutex_lock(s->roles.mutex);
        s->roles.n_memo_hits++;
        pthread_mutex_unlock(s->roles.mutex);
        json_t *out = json_pack("{s:s}", "result", hit);
        free(hit);
        return rep_ok(rep, out);
    }
    role_req_t *q = &b->rq[b->np];
    const char *intent = json_string_value(json_object_get(t->task, "intent"));
    if (roles_prepare_tool_sim(&s->roles, q, tools, intent, history, name, args)) {
        role_req_free(q);
        json_decref(empty);
        return rep_fail(rep, "role_prepare");
    }
    json_t *keep = json_pack("{s:s, s:O}", "name", name, "arguments", args);
    json_decref(empty);
    if (!keep) {
        role_req_free(q);
        rep_fail(rep, "internal");
        return err_set("simserver: out of memory");
    }
    b->pd[b->np++] = (pending_t){rep_i, SIMREQ_TOOL, t->id, keep};
    return 0;
}

static int do_user(batch_t *b, const simserver_req_t *req, sim_task_t *t, const json_t *p, simserver_rep_t *rep,
                   int rep_i) {
    simserver_t *s = b->s;
    const char *text = json_string_value(json_object_get(p, "text"));
    const char *history;
    if (!text || opt_string(p, "history", "", &history)) return rep_fail(rep, "bad_request");
    if (!t->lm) {
        int internal;
        sim_ep_t *e = lua_episode(s, t, req->episode, rep, &internal);
        if (!e) return internal ? -1 : 0;
        char *reply = NULL;
        int r = luaenv_user_reply(&e->ep, text, &reply);
        if (r < 0) return rep_fail(rep, ep_reason(e));
        json_t *out = r == 1 ? json_pack("{s:s, s:b}", "reply", reply, "end", 0)
                             : json_pack("{s:n, s:b}", "reply", "end", 1);
        free(reply);
        return rep_ok(rep, out);
    }
    role_req_t *q = &b->rq[b->np];
    if (roles_prepare_user_sim(&s->roles, q, json_string_value(json_object_get(t->task, "persona")),
                               json_string_value(json_object_get(t->task, "intent")),
                               json_object_get(t->task, "hidden_user_facts"), history)) {
        role_req_free(q);
        return rep_fail(rep, "role_prepare");
    }
    b->pd[b->np++] = (pending_t){rep_i, SIMREQ_USER, t->id, NULL};
    return 0;
}

static int do_reward(batch_t *b, const simserver_req_t *req, sim_task_t *t, const json_t *p, simserver_rep_t *rep,
                     int rep_i) {
    simserver_t *s = b->s;
    const char *history;
    const json_t *tr = json_object_get(p, "truncated");
    if (opt_string(p, "history", "", &history) || (tr && !json_is_boolean(tr))) return rep_fail(rep, "bad_request");
    int truncated = json_is_true(tr);
    if (!t->lm) {
        int internal;
        sim_ep_t *e = lua_episode(s, t, req->episode, rep, &internal);
        if (!e) return internal ? -1 : 0;
        double score = 0, r = 0;
        json_t *checks = NULL;
        int rc = luaenv_reward(&e->ep, &score, &checks);
        if (rc) rep_fail(rep, ep_reason(e));
        ep_remove(t, req->episode); // REWARD forgets the episode, whatever happened
        if (rc) return 0;
        if (reward_from_score(score, &r)) {
            json_decref(checks);
            return rep_fail(rep, "bad_result");
        }
        json_t *out = json_pack("{s:f, s:f, s:{s:o, s:b}}", "reward", r, "score", score, "details", "checks",
                                checks ? checks : json_array(), "truncated", truncated);
        return rep_ok(rep, out);
    }
    int n = json_integer_value(json_object_get(json_object_get(t->task, "aspects"), "judge_strictness"));
    if (n < 1) n = 1;
    if (n > CURRICULUM_N_CRITERIA) n = CURRICULUM_N_CRITERIA;
    json_t *criteria = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(criteria, json_string(curriculum_criterion_name(i)));
    role_req_t *q = &b->rq[b->np];
    if (roles_prepare_judge(&s->roles, q, history, json_string_value(json_object_get(t->task, "intent")),
                            json_object_get(t->task, "expected_calls"), criteria)) {
        role_req_free(q);
        json_decref(criteria);
        return rep_fail(rep, "role_prepare");
    }
    json_t *keep = json_pack("{s:o, s:b}", "criteria", criteria, "truncated", truncated);
    if (!keep) {
        role_req_free(q);
        rep_fail(rep, "internal");
        return err_set("simserver: out of memory");
    }
    b->pd[b->np++] = (pending_t){rep_i, SIMREQ_REWARD, t->id, keep};
    return 0;
}

// one request, in batch order: answered now, or queued as pending LM work. -1: internal failure
static int handle_one(batch_t *b, const simserver_req_t *req, simserver_rep_t *rep, int rep_i) {
    simserver_t *s = b->s;
    if (req->kind < 0 || req->kind >= SIMREQ_N_KINDS) return rep_fail(rep, "bad_request");
    json_error_t je;
    json_t *p = json_loads(req->payload ? req->payload : "{}", 0, &je);
    if (!json_is_object(p)) {
        json_decref(p);
        return rep_fail(rep, "bad_request");
    }
    int rc;
    if (req->kind == SIMREQ_TASK_GEN) {
        rc = do_task_gen(b, req, p, rep, rep_i);
    } else {
        sim_task_t *t = task_find(s, req->task_id);
        if (!t || !t->ready) {
            rc = rep_fail(rep, "unknown_task");
        } else if (req->kind == SIMREQ_DROP) {
            task_remove(s, req->task_id);
            rc = rep_ok(rep, json_object());
        } else if (req->episode < 0) {
            rc = rep_fail(rep, "bad_request");
        } else if (req->kind == SIMREQ_TOOL) {
            rc = do_tool(b, req, t, p, rep, rep_i);
        } else if (req->kind == SIMREQ_USER) {
            rc = do_user(b, req, t, p, rep, rep_i);
        } else {
            rc = do_reward(b, req, t, p, rep, rep_i);
        }
    }
    json_decref(p);
    return rc;
}

// writes the reply of a finished role request. -1: internal failure
static int finish_one(simserver_t *s, pending_t *pd, role_req_t *q, simserver_rep_t *rep) {
    sim_task_t *t = task_find(s, pd->task_id);
    if (pd->kind == SIMREQ_TASK_GEN) {
        if (!t || t->ready) return rep_fail(rep, "unknown_task"); // dropped while pending
        if (q->status != ROLE_OK) {
            task_remove(s, pd->task_id);
            return rep_fail(rep, role_abort_name(q->status));
        }
        json_t *task = pd->keep;
        pd->keep = NULL;
        const char *keys[] = {"persona", "intent", "initial_query", "expected_calls", "hidden_user_facts"};
        for (int i = 0; i < 5; i++) json_object_set(task, keys[i], json_object_get(q->out, keys[i]));
        t->task = task;
        t->ready = 1;
        json_t *meta = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:o}", "env", "lm", "seed",
                                 json_object_get(task, "seed"), "category", json_object_get(task, "category"),
                                 "persona", json_object_get(task, "persona"), "intent",
                                 json_object_get(task, "intent"), "expected_calls",
                                 json_object_get(task, "expected_calls"), "hidden_user_facts",
                                 json_object_get(task, "hidden_user_facts"), "aspects",
                                 json_object_get(task, "aspects"), "tool_names",
                                 tool_names(json_object_get(task, "tools")));
        json_t *out = meta ? json_pack("{s:O, s:O, s:O, s:o}", "system", json_object_get(task, "system"), "query",
                                       json_object_get(task, "initial_query"), "tools",
                                       json_object_get(task, "tools"), "meta", meta)
                           : NULL;
        return rep_ok(rep, out);
    }
    if (q->status != ROLE_OK) return rep_fail(rep, role_abort_name(q->status));
    if (pd->kind == SIMREQ_TOOL) {
        char *text = json_dumps(q->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text) {
            rep_fail(rep, "internal");
            return err_set("simserver: out of memory");
        }
        const char *name = json_string_value(json_object_get(pd->keep, "name"));
        const json_t *args = json_object_get(pd->keep, "arguments");
        if (t && t->ready) { // first writer wins: a twin call of this batch answers what the memo keeps
            char *kept = NULL;
            if (memo_put(&s->memo, pd->task_id, name, args, text) < 0 || memo_get(&s->memo, pd->task_id, name, args, &kept) < 0) {
                free(text);
                rep_fail(rep, "internal");
                return -1;
            }
            if (kept) {
                free(text);
                text = kept;
            }
        }
        json_t *out = json_pack("{s:s}", "result", text);
        free(text);
        return rep_ok(rep, out);
    }
    if (pd->kind == SIMREQ_USER) {
        int end = json_is_true(json_object_get(q->out, "end"));
        json_t *msg = json_object_get(q->out, "message");
        json_t *out = end ? json_pack("{s:n, s:b}", "reply", "end", 1) : json_pack("{s:O, s:b}", "reply", msg, "end", 0);
        return rep_ok(rep, out);
    }
    // REWARD
    int score = (int)json_integer_value(json_object_get(q->out, "score"));
    double r;
    if (reward_from_judge(score, &r)) return rep_fail(rep, "schema_invalid");
    json_t *out = json_pack("{s:f, s:i, s:{s:O, s:O, s:O}}", "reward", r, "score", score, "details", "reasons",
                            json_object_get(q->out, "reasons"), "criteria", json_object_get(pd->keep, "criteria"),
                            "truncated", json_object_get(pd->keep, "truncated"));
    return rep_ok(rep, out);
}

// the RNG stream of a request's LM sampling: a hash of what the request is (task, episode, kind,
// payload: the payload holds the episode's transcript so far), so a request gets the same output in
// any batch, in any run, after a resume
static uint64_t req_stream(const simserver_req_t *q) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)(q->payload ? q->payload : "");
    for (; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    h ^= q->task_id * 0x9e3779b97f4a7c15ull;
    h = (h ^ (uint64_t)(int64_t)q->episode) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (uint64_t)q->kind) * 0x94d049bb133111ebull;
    return h ? h : 1;
}

int simserver_handle(simserver_t *s, const simserver_req_t *reqs, int n, simserver_rep_t *reps) {
    double t0 = now_s();
    if (n <= 0) return 0;
    batch_t b = {s, calloc((size_t)n, sizeof(role_req_t)), calloc((size_t)n, sizeof(pending_t)), 0};
    if (!b.rq || !b.pd) {
        free(b.rq);
        free(b.pd);
        for (int i = 0; i < n; i++) {
            memset(&reps[i], 0, sizeof reps[i]);
            rep_fail(&reps[i], "internal");
        }
        return err_set("simserver: out of memory");
    }
    int rc = 0;
    char first_err[512] = "";
    for (int i = 0; i < n; i++) {
        memset(&reps[i], 0, sizeof reps[i]);
        int np0 = b.np;
        int hr = handle_one(&b, &reqs[i], &reps[i], i);
        for (int j = np0; j < b.np; j++) b.rq[j].stream = req_stream(&reqs[i]) + (uint64_t)(j - np0);
        if (hr < 0) {
            if (!reps[i].status) rep_fail(&reps[i], "internal");
            if (!rc) snprintf(first_err, sizeof first_err, "%s", err_msg());
            rc = -1;
        }
    }
    if (b.np > 0) {
        if (roles_run(&s->roles, b.rq, b.np) < 0) { // unfinished requests ended with ROLE_ABORT_ENGINE
            if (!rc) snprintf(first_err, sizeof first_err, "simserver: %s", err_msg());
            rc = -1;
        }
        for (int j = 0; j < b.np; j++) {
            if (finish_one(s, &b.pd[j], &b.rq[j], &reps[b.pd[j].rep]) < 0) {
                if (!rc) snprintf(first_err, sizeof first_err, "%s", err_msg());
                rc = -1;
            }
            if (b.pd[j].kind == SIMREQ_TASK_GEN && reps[b.pd[j].rep].status != 0) {
                sim_task_t *t = task_find(s, b.pd[j].task_id);
                if (t && !t->ready) task_remove(s, b.pd[j].task_id); // never leave a placeholder
            }
            json_decref(b.pd[j].keep);
            role_req_free(&b.rq[j]);
        }
    }
    free(b.rq);
    free(b.pd);
    for (int i = 0; i < n; i++) {
        int k = reqs[i].kind >= 0 && reqs[i].kind < SIMREQ_N_KINDS ? reqs[i].kind : -1;
        if (k < 0) continue; // not a kind: answered bad_request, counted nowhere
        s->stats.n_requests[k]++;
        if (reps[i].status) s->stats.n_failed[k]++;
    }
    s->stats.seconds += now_s() - t0;
    if (rc) err_set("%s", first_err);
    return rc;
}
