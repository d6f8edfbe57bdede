// The four LM roles: prompts, output schemas, batched constrained generation, validation, retries
// (roles.h).
#include "roles.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"
#include "../model/chat.h"
#include "data.h"
#include "jsonschema.h"
#include "reward.h"

static const char *KIND_NAMES[ROLE_N] = {"task_gen", "tool_sim", "user_sim", "judge", "rubric"};
static const char *ABORT_NAMES[ROLE_ABORT_N] = {"ok", "schema_invalid", "bad_json", "empty",
                                                "budget_exhausted", "prompt_too_long", "engine"};

const char *role_kind_name(role_kind_t k) { return k < ROLE_N ? KIND_NAMES[k] : "?"; }
const char *role_abort_name(role_abort_t a) { return a < ROLE_ABORT_N ? ABORT_NAMES[a] : "?"; }

int roles_init(roles_t *r, engine_t *engine, const tokenizer_t *tok, int vocab_size, int max_seq_len) {
    memset(r, 0, sizeof *r);
    r->engine = engine;
    r->tok = tok;
    r->vocab_size = vocab_size;
    r->max_seq_len = max_seq_len;
    const int budgets[ROLE_N] = {160, 128, 96, 96, 64};
    memcpy(r->max_tokens, budgets, sizeof budgets);
    r->max_retries = 2;
    r->sampling = (sampler_params_t){1.0f, 0, 1.0f, 0};
    gram_opts_default(&r->gram_opts);
    r->vocab = gram_vocab_qwen(tok, vocab_size);
    if (!r->vocab) return err_wrap("roles: ");
    pthread_mutex_t *mu = malloc(sizeof *mu);
    if (!mu) return err_set("roles: out of memory");
    pthread_mutex_init(mu, NULL);
    r->mutex = mu;
    return 0;
}

void roles_free(roles_t *r) {
    for (int i = 0; i < r->n_grams; i++) {
        gram_free(r->grams[i]);
        free(r->gram_keys[i]);
    }
    free(r->grams);
    free(r->gram_keys);
    gram_vocab_free(r->vocab);
    if (r->mutex) {
        pthread_mutex_destroy(r->mutex);
        free(r->mutex);
    }
    memset(r, 0, sizeof *r);
}

void role_req_free(role_req_t *q) {
    ids_free(&q->prompt);
    json_decref(q->schema);
    json_decref(q->out);
    memset(q, 0, sizeof *q);
}

// the compiled grammar of a schema (cached by its compact text, so tasks with the same tools
// share one token-mask cache)
static gram_t *roles_grammar(roles_t *r, const json_t *schema) {
    char *key = json_dumps(schema, JSON_COMPACT | JSON_SORT_KEYS);
    if (!key) {
        err_set("roles: cannot serialize a schema");
        return NULL;
    }
    for (int i = 0; i < r->n_grams; i++)
        if (strcmp(r->gram_keys[i], key) == 0) {
            free(key);
            return r->grams[i];
        }
    gram_t *g = gram_compile(schema, &r->gram_opts, r->vocab);
    gram_t **ng = g ? realloc(r->grams, (size_t)(r->n_grams + 1) * sizeof *ng) : NULL;
    char **nk = ng ? realloc(r->gram_keys, (size_t)(r->n_grams + 1) * sizeof *nk) : NULL;
    if (ng) r->grams = ng;
    if (nk) r->gram_keys = nk;
    if (!g || !ng || !nk) {
        if (g && (!ng || !nk)) err_set("roles: out of memory");
        gram_free(g);
        free(key);
        return NULL;
    }
    r->grams[r->n_grams] = g;
    r->gram_keys[r->n_grams++] = key;
    return g;
}

// ---- prompts ----

// appends text[0..n) to a growing string
static int sb_add(char **s, size_t *len, size_t *cap, const char *text, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *t = realloc(*s, c);
        if (!t) return err_set("roles: out of memory");
        *s = t;
        *cap = c;
    }
    memcpy(*s + *len, text, n);
    *len += n;
    (*s)[*len] = 0;
    return 0;
}

// fills {{name}} placeholders of tmpl[0..n); an unknown placeholder is an error naming the file
static char *fill(const char *file, const char *tmpl, size_t n, const char *const *names,
                  const char *const *values, int nv) {
    char *s = NULL;
    size_t len = 0, cap = 0;
    if (sb_add(&s, &len, &cap, "", 0)) return NULL;
    for (size_t i = 0; i < n;) {
        const char *open = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (tmpl[j] == '{' && tmpl[j + 1] == '{') {
                open = tmpl + j;
                break;
            }
        if (!open) {
            if (sb_add(&s, &len, &cap, tmpl + i, n - i)) goto fail;
            break;
        }
        if (sb_add(&s, &len, &cap, tmpl + i, (size_t)(open - (tmpl + i)))) goto fail;
        const char *close = strstr(open, "}}");
        if (!close || close > tmpl + n) {
            err_set("%s: '{{' without '}}'", file);
            goto fail;
        }
        size_t kl = (size_t)(close - open - 2);
        int k = -1;
        for (int v = 0; v < nv; v++)
            if (strlen(names[v]) == kl && memcmp(names[v], open + 2, kl) == 0) k = v;
        if (k < 0) {
            err_set("%s: unknown placeholder {{%.*s}}", file, (int)kl, open + 2);
            goto fail;
        }
        if (sb_add(&s, &len, &cap, values[k], strlen(values[k]))) goto fail;
        i = (size_t)(close + 2 - tmpl);
    }
    return s;
fail:
    free(s);
    return NULL;
}

int roles_render(roles_t *r, role_kind_t kind, const char *const *names, const char *const *values,
                 int n, ids_t *out) {
    char file[64];
    snprintf(file, sizeof file, "prompts/%s.txt", role_kind_name(kind));
    size_t len;
    const char *t = sim_data_file(file, &len);
    if (!t) return err_set("roles: no embedded prompt %s", file);
    const char *sep = strstr(t, "\n---\n");
    if (!sep) return err_set("%s: expected a line \"---\" between the system and the user text", file);
    char *sys = fill(file, t, (size_t)(sep - t), names, values, n);
    char *user = sys ? fill(file, sep + 5, len - (size_t)(sep + 5 - t), names, values, n) : NULL;
    int rc = -1;
    chat_t c;
    if (user && chat_init(&c, r->tok) == 0) {
        if (chat_add_system(&c, sys) == 0 && chat_add_user(&c, user) == 0 && chat_render_gen_prompt(&c, out) == 0)
            rc = 0;
        chat_free(&c);
    }
    free(sys);
    free(user);
    return rc;
}

// ---- schemas ----

static json_t *str_schema(int max_len) {
    return json_pack("{s:s, s:i}", "type", "string", "maxLength", max_len);
}

static int req_setup(roles_t *r, role_req_t *q, role_kind_t kind, json_t *schema) {
    q->kind = kind;
    q->schema = schema;
    q->max_tokens = r->max_tokens[kind];
    if (!schema) return err_set("roles: cannot build the %s schema", role_kind_name(kind));
    q->gram = roles_grammar(r, schema);
    return q->gram ? 0 : -1;
}

static char *dumps_or_empty(const json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    return s ? s : strdup("");
}

int roles_prepare_task_gen(roles_t *r, role_req_t *q, const json_t *tools, const json_t *aspects, int n_calls) {
    memset(q, 0, sizeof *q);
    json_t *names = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *f = json_object_get(t, "function");
        const char *nm = json_string_value(json_object_get(f ? f : t, "name"));
        if (!nm) {
            json_decref(names);
            return err_set("roles: tool %zu has no name", i);
        }
        json_array_append_new(names, json_string(nm));
    }
    if (json_array_size(names) == 0) {
        json_decref(names);
        return err_set("roles: the task generator needs at least one tool");
    }
    if (n_calls < 1) n_calls = 1;
    json_t *call = json_pack("{s:s, s:{s:{s:s, s:o}, s:{s:s}}}", "type", "object", "properties",
                             "name", "type", "string", "enum", names, "arguments", "type", "object");
    json_t *fact = json_pack("{s:s, s:{s:o, s:o}}", "type", "object", "properties", "key", str_schema(40),
                             "value", str_schema(120));
    json_t *schema = json_pack("{s:s, s:{s:o, s:o, s:o, s:{s:s, s:o, s:i, s:i}, s:{s:s, s:o, s:i, s:i}}, s:[s,s,s,s,s]}",
        "type", "object", "properties",
        "persona", str_schema(200), "intent", str_schema(300), "initial_query", str_schema(300),
        "expected_calls", "type", "array", "items", call, "minItems", 1, "maxItems", 3,
        "hidden_user_facts", "type", "array", "items", fact, "minItems", 0, "maxItems", 4,
        "required", "persona", "intent", "initial_query", "expected_calls", "hidden_user_facts");
    if (req_setup(r, q, ROLE_TASK_GEN, schema)) return -1;
    char *ts = dumps_or_empty(tools), *as = dumps_or_empty(aspects), nc[16];
    snprintf(nc, sizeof nc, "%d", n_calls);
    const char *names_[] = {"tools", "aspects", "n_calls"}, *vals[] = {ts, as, nc};
    int rc = roles_render(r, ROLE_TASK_GEN, names_, vals, 3, &q->prompt);
    free(ts);
    free(as);
    return rc;
}

int roles_prepare_tool_sim(roles_t *r, role_req_t *q, const json_t *tools, const char *intent,
                           const char *history, const char *name, const json_t *arguments) {
    memset(q, 0, sizeof *q);
    if (req_setup(r, q, ROLE_TOOL_SIM, json_pack("{s:s}", "type", "object"))) return -1;
    json_t *call = json_pack("{s:s, s:O}", "name", name, "arguments", arguments ? arguments : json_object());
    char *ts = dumps_or_empty(tools), *cs = dumps_or_empty(call);
    json_decref(call);
    const char *names[] = {"tools", "intent", "history", "call"}, *vals[] = {ts, intent ? intent : "", history ? history : "", cs};
    int rc = roles_render(r, ROLE_TOOL_SIM, names, vals, 4, &q->prompt);
    free(ts);
    free(cs);
    return rc;
}

int roles_prepare_user_sim(roles_t *r, role_req_t *q, const char *persona, const char *intent,
                           const json_t *facts, const char *history) {
    memset(q, 0, sizeof *q);
    json_t *schema = json_pack("{s:s, s:{s:o, s:{s:s}}, s:[s,s]}", "type", "object", "properties",
                               "message", str_schema(400), "end", "type", "boolean", "required", "message", "end");
    if (req_setup(r, q, ROLE_USER_SIM, schema)) return -1;
    char *fs = dumps_or_empty(facts);
    const char *names[] = {"persona", "intent", "facts", "history"},
               *vals[] = {persona ? persona : "", intent ? intent : "", fs, history ? history : ""};
    int rc = roles_render(r, ROLE_USER_SIM, names, vals, 4, &q->prompt);
    free(fs);
    return rc;
}

int roles_prepare_judge(roles_t *r, role_req_t *q, const char *trajectory, const char *intent,
                        const json_t *expected_calls, const json_t *criteria) {
    memset(q, 0, sizeof *q);
    json_t *schema = json_pack("{s:s, s:{s:{s:s, s:[i,i,i]}, s:o}, s:[s,s]}", "type", "object", "properties",
                               "score", "type", "integer", "enum", -1, 0, 1, "reasons", str_schema(300),
                               "required", "score", "reasons");
    if (req_setup(r, q, ROLE_JUDGE, schema)) return -1;
    char *es = dumps_or_empty(expected_calls), *cs = dumps_or_empty(criteria);
    const char *names[] = {"trajectory", "intent", "expected_calls", "criteria"},
               *vals[] = {trajectory ? trajectory : "", intent ? intent : "", es, cs};
    int rc = roles_render(r, ROLE_JUDGE, names, vals, 4, &q->prompt);
    free(es);
    free(cs);
    return rc;
}

static json_t *bools_schema(size_t n) {
    return json_pack("{s:s, s:{s:s}, s:i, s:i}", "type", "array", "items", "type", "boolean",
                     "minItems", (int)n, "maxItems", (int)n);
}

int roles_prepare_rubric(roles_t *r, role_req_t *q, const char *trajectory, const json_t *forbidden,
                         const json_t *subgoals, const json_t *interactions) {
    memset(q, 0, sizeof *q);
    json_t *schema = json_pack("{s:s, s:{s:o, s:o, s:o}, s:[s,s,s]}", "type", "object", "properties",
                               "forbidden", bools_schema(json_array_size(forbidden)),
                               "subgoals", bools_schema(json_array_size(subgoals)),
                               "interactions", bools_schema(json_array_size(interactions)),
                               "required", "forbidden", "subgoals", "interactions");
    if (req_setup(r, q, ROLE_RUBRIC, schema)) return -1;
    char *fs = dumps_or_empty(forbidden), *ss = dumps_or_empty(subgoals), *is = dumps_or_empty(interactions);
    const char *names[] = {"trajectory", "forbidden", "subgoals", "interactions"},
               *vals[] = {trajectory ? trajectory : "", fs, ss, is};
    int rc = roles_render(r, ROLE_RUBRIC, names, vals, 4, &q->prompt);
    free(fs);
    free(ss);
    free(is);
    return rc;
}

int roles_rubric_reward(const json_t *out, double *reward) {
    reward_rubric_t rb = {0};
    const json_t *f = json_object_get(out, "forbidden"), *s = json_object_get(out, "subgoals"),
                 *in = json_object_get(out, "interactions");
    if (!json_is_array(f) || !json_is_array(s) || !json_is_array(in))
        return err_set("roles: a rubric output needs arrays forbidden, subgoals, interactions");
    for (size_t i = 0; i < json_array_size(f); i++) rb.forbidden |= json_is_true(json_array_get(f, i));
    rb.n_subgoals = (int)json_array_size(s);
    for (size_t i = 0; i < json_array_size(s); i++) rb.subgoals_met += json_is_true(json_array_get(s, i));
    rb.n_interactions = (int)json_array_size(in);
    for (size_t i = 0; i < json_array_size(in); i++) rb.interactions_done += json_is_true(json_array_get(in, i));
    return reward_from_rubric(&rb, reward);
}

// ---- running ----

typedef struct {
    role_req_t *q;
    gram_seq_t gs;
    int seq;       // engine handle, -1 when not running
    int done;      // finished (ok or aborted)
} slot_t;

// checks one finished attempt: 1 valid (q->out set), 0 not (why / status set)
static int attempt_check(roles_t *r, role_req_t *q, const int32_t *ids, int n, role_abort_t *fail) {
    int32_t end = r->vocab ? tokenizer_token_id(r->tok, "<|im_end|>") : -1;
    if (n > 0 && ids[n - 1] == end) n--;
    if (n == 0) {
        *fail = ROLE_ABORT_EMPTY;
        snprintf(q->why, sizeof q->why, "nothing generated");
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(r->tok, ids, n, &text, &len)) {
        *fail = ROLE_ABORT_BAD_JSON;
        snprintf(q->why, sizeof q->why, "cannot decode: %s", err_msg());
        return 0;
    }
    json_error_t je;
    json_t *v = json_loadb(text, len, 0, &je);
    free(text);
    if (!v) {
        *fail = ROLE_ABORT_BAD_JSON;
        snprintf(q->why, sizeof q->why, "not JSON: %s (column %d)", je.text, je.column);
        return 0;
    }
    int ok = jsonschema_validate(q->schema, v, 0, "output", q->why, sizeof q->why);
    if (ok != 1) {
        if (ok < 0) snprintf(q->why, sizeof q->why, "%s", err_msg());
        json_decref(v);
        *fail = ROLE_ABORT_SCHEMA_INVALID;
        return 0;
    }
    q->out = v;
    q->n_tokens = n;
    return 1;
}

static void count(roles_t *r, role_req_t *q, int tokens) {
    pthread_mutex_lock(r->mutex);
    r->n_attempts[q->kind]++;
    r->n_tokens[q->kind] += (uint64_t)tokens;
    pthread_mutex_unlock(r->mutex);
}

static void finish(roles_t *r, slot_t *s, role_abort_t status) {
    role_req_t *q = s->q;
    q->status = status;
    s->done = 1;
    pthread_mutex_lock(r->mutex);
    if (status == ROLE_OK) {
        r->n_ok[q->kind]++;
        if (q->first_ok) r->n_first_ok[q->kind]++;
    } else {
        r->n_aborts[q->kind][status]++;
    }
    pthread_mutex_unlock(r->mutex);
}

// starts an attempt of a request in the engine (or finishes it when it cannot run)
static int start(roles_t *r, slot_t *s) {
    role_req_t *q = s->q;
    q->attempts++;
    int tmin = gram_min_tokens(q->gram);
    if (tmin < 0) return -1;
    if (tmin > q->max_tokens) {
        snprintf(q->why, sizeof q->why, "budget of %d tokens, the shortest valid output takes %d", q->max_tokens, tmin);
        finish(r, s, ROLE_ABORT_BUDGET_EXHAUSTED);
        return 0;
    }
    if (q->prompt.n + q->max_tokens > r->max_seq_len) {
        snprintf(q->why, sizeof q->why, "prompt of %d tokens + budget %d > %d", q->prompt.n, q->max_tokens, r->max_seq_len);
        finish(r, s, ROLE_ABORT_PROMPT_TOO_LONG);
        return 0;
    }
    gram_seq_init(&s->gs, q->gram, q->max_tokens);
    engine_gen_t gen = {0};
    gen.sampling = r->sampling;
    gen.max_new_tokens = q->max_tokens;
    gen.stream = q->stream ? q->stream + (uint64_t)q->attempts * 0x9e3779b97f4a7c15ull : r->next_stream++;
    gen.logits_hook = gram_engine_hook;
    gen.logits_ud = &s->gs;
    s->seq = engine_add(r->engine, q->prompt.ids, q->prompt.n, &gen, -1);
    if (s->seq < 0) {
        q->attempts--; // not started (the engine is full): tried again later
        return -1;
    }
    return 0;
}

int roles_run(roles_t *r, role_req_t *reqs, int n) {
    slot_t *slots = calloc((size_t)(n ? n : 1), sizeof *slots);
    int *queue = malloc((size_t)(n ? n : 1) * sizeof(int)); // slots waiting for an attempt (FIFO ring)
    engine_event_t *ev = malloc(4096 * sizeof *ev);
    if (!slots || !queue || !ev) {
        free(slots);
        free(queue);
        free(ev);
        return err_set("roles: out of memory");
    }
    int qh = 0, qn = 0, running = 0, max_running = n, rc = 0;
    pthread_mutex_lock(r->mutex);
    for (int i = 0; i < n; i++) r->n_requests[reqs[i].kind]++;
    pthread_mutex_unlock(r->mutex);
    for (int i = 0; i < n; i++) {
        slots[i].q = &reqs[i];
        slots[i].seq = -1;
        json_decref(reqs[i].out);
        reqs[i].out = NULL;
        reqs[i].attempts = reqs[i].first_ok = reqs[i].n_tokens = 0;
        reqs[i].status = ROLE_OK;
        if (!reqs[i].gram) {
            snprintf(reqs[i].why, sizeof reqs[i].why, "no grammar (prepare failed)");
            finish(r, &slots[i], ROLE_ABORT_SCHEMA_INVALID);
        } else {
            queue[(qh + qn++) % n] = i;
        }
    }
    for (;;) {
        // start waiting attempts while the engine takes them
        while (qn > 0 && running < max_running) {
            slot_t *s = &slots[queue[qh]];
            if (start(r, s)) {
                if (running == 0) { // nothing runs and this cannot start: a real error
                    rc = -1;
                    break;
                }
                err_clear();
                max_running = running; // the engine's slots are full: wait for one to finish
                break;
            }
            qh = (qh + 1) % n, qn--;
            if (!s->done) running++;
        }
        if (rc || running == 0) break;
        int k = engine_step(r->engine, ev, 4096);
        if (k < 0) {
            rc = -1;
            break;
        }
        for (int e = 0; e < k; e++) {
            if (!ev[e].finish) continue;
            slot_t *s = NULL;
            for (int i = 0; i < n && !s; i++)
                if (slots[i].seq == ev[e].seq && !slots[i].done) s = &slots[i];
            if (!s) continue;
            int nt, np;
            const int32_t *ids = engine_tokens(r->engine, s->seq, &nt, &np);
            role_abort_t fail = ROLE_OK;
            int ok = attempt_check(r, s->q, ids + np, nt - np, &fail);
            count(r, s->q, nt - np);
            engine_release(r->engine, s->seq);
            s->seq = -1;
            running--;
            if (ok) {
                s->q->first_ok = s->q->attempts == 1;
                finish(r, s, ROLE_OK);
            } else if (s->q->attempts > r->max_retries) {
                finish(r, s, fail);
            } else {
                // retried: queued again, with a new RNG stream when it starts
                queue[(qh + qn++) % n] = (int)(s - slots);
            }
        }
        if (k == 0 && engine_pending(r->engine) == 0 && running > 0) {
            rc = err_set("roles: the engine has nothing to run while %d requests wait", running);
            break;
        }
    }
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", err_msg());
        for (int i = 0; i < n; i++)
            if (!slots[i].done) {
                if (slots[i].seq >= 0) engine_release(r->engine, slots[i].seq);
                snprintf(reqs[i].why, sizeof reqs[i].why, "%s", msg);
                finish(r, &slots[i], ROLE_ABORT_ENGINE);
            }
        err_set("%s", msg);
    }
    free(ev);
    free(queue);
    free(slots);
    return rc;
}

// ---- the tool simulator end to end ----

int roles_tool_call(roles_t *r, memo_t *memo, uint64_t task, const json_t *tools, const char *intent,
                    const char *history, const char *name, const json_t *arguments, char **output,
                    role_abort_t *status) {
    *output = NULL;
    *status = ROLE_OK;
    const json_t *tool = NULL;
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *f = json_object_get(t, "function");
        if (name && json_is_string(json_object_get(f ? f : t, "name")) &&
            strcmp(json_string_value(json_object_get(f ? f : t, "name")), name) == 0)
            tool = f ? f : t;
    }
    char why[300] = "";
    if (!tool) {
        snprintf(why, sizeof why, "unknown tool '%s'", name ? name : "(none)");
    } else if (!json_is_object(arguments)) {
        snprintf(why, sizeof why, "arguments must be a JSON object");
    } else {
        const json_t *params = json_object_get(tool, "parameters");
        if (params) {
            int v = jsonschema_validate(params, arguments, JSONSCHEMA_STRICT, "arguments", why, sizeof why);
            if (v < 0) return err_wrap("roles: tool '%s': ", name);
            if (v == 1) why[0] = 0;
        }
    }
    if (why[0]) { // invalid call: answered in C
        json_t *err = json_pack("{s:s}", "error", why);
        *output = json_dumps(err, JSON_COMPACT);
        json_decref(err);
        pthread_mutex_lock(r->mutex);
        r->n_invalid_args++;
        pthread_mutex_unlock(r->mutex);
        return *output ? 0 : err_set("roles: out of memory");
    }
    if (memo) {
        int hit = memo_get(memo, task, name, arguments, output);
        if (hit < 0) return -1;
        if (hit) {
            pthread_mutex_lock(r->mutex);
            r->n_memo_hits++;
            pthread_mutex_unlock(r->mutex);
            return 0;
        }
    }
    role_req_t q;
    if (roles_prepare_tool_sim(r, &q, tools, intent, history, name, arguments)) {
        role_req_free(&q);
        return -1;
    }
    int rc = roles_run(r, &q, 1);
    *status = q.status;
    if (rc == 0 && q.status == ROLE_OK) {
        *output = json_dumps(q.out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!*output) rc = err_set("roles: out of memory");
        else if (memo && memo_put(memo, task, name, arguments, *output) < 0) rc = -1;
    }
    role_req_free(&q);
    return rc;
}
