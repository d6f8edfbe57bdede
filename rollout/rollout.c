// rollout: episodes over the policy engine, deterministic rounds (see rollout.h).
#include "rollout.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "sim/server.h"

enum { EP_START = 0, EP_READY, EP_GEN, EP_SIM, EP_DONE };

typedef struct {
    char *system, *query;
    json_t *tools, *meta;
    int ok;        // TASK_GEN succeeded
    int root;      // engine handle of the prefilled shared prompt, -1 when none yet
    int n_open;    // episodes of the task not DONE
    char reason[48];
} task_state_t;

typedef struct {
    int task, index;
    int state;
    chat_t chat;
    float *lp;         // (chat.ids.n) sampling-time log-prob of each sampled id, 0 elsewhere
    int lp_cap;
    int n_prompt;      // ids of the first prompt
    int seq;           // engine handle while generating
    int turns, tool_calls;
    int reason, truncated;
    int want_reward;   // the next round asks for the reward
    float reward, score;
    json_t *details;
    // the current round's tool results
    int n_results;
    char **results;
    int end_after;     // apply: 1 when the episode must be scored after the tool results
} episode_t;

struct rollout {
    const qwen3_t *policy;
    const tokenizer_t *tok;
    rollout_opts_t o;
    engine_t *engine;
    engine_event_t *events;
    int max_seqs, max_seq_len;
    rollout_sim_fn sim;
    void *sim_ud;
    uint64_t next_req;
    int n_tok_ids; // ids the tokenizer knows (the sampler's upper bound)
};

void rollout_opts_default(rollout_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->max_turns = 8;
    o->max_new_tokens = 256;
    o->max_episode_tokens = 4096;
    o->max_active = 64;
    o->max_tasks = 16;
    o->sampling = (sampler_params_t){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    o->eval_sampling = (sampler_params_t){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    o->page_size = 16;
    o->share_prompt = 1;
}

// The model's vocabulary is padded past the tokenizer's ids (151,936 vs 151,669 for Qwen3): those
// ids have no text, so the sampler never picks them (logit -inf). The learner's log-probs are taken
// over the full row, so this mask is part of the sampling-vs-learner gap the run log reports.
static int mask_padding_ids(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab,
                            int32_t *allowed) {
    int n_ids = *(const int *)ud;
    for (int i = n_ids; i < vocab; i++) logits[i] = -INFINITY;
    return 0;
}

// A copy of n bytes with every invalid UTF-8 sequence replaced by U+FFFD: sampled tokens may end in
// the middle of a character, and text that goes into JSON or the run log must be valid UTF-8 (the
// token ids stay the exact record).
static char *utf8_clean(const char *s, size_t n) {
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && p + len <= end && !(c == 0);
        for (int i = 1; ok && i < len; i++) ok = (p[i] & 0xC0) == 0x80;
        if (ok && len == 2) ok = c >= 0xC2;
        if (ok && len == 3) ok = !(c == 0xE0 && p[1] < 0xA0) && !(c == 0xED && p[1] >= 0xA0);
        if (ok && len == 4) ok = !(c == 0xF0 && p[1] < 0x90) && !(c == 0xF4 && p[1] >= 0x90) && c <= 0xF4;
        if (ok) {
            memcpy(o, p, (size_t)len);
            o += len, p += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3, p++;
        }
    }
    *o = 0;
    return out;
}

static json_t *json_text_clean(const char *s, size_t n) {
    char *c = utf8_clean(s ? s : "", s ? n : 0);
    json_t *j = c ? json_string(c) : NULL;
    free(c);
    return j ? j : json_string("");
}

static json_t *history_json(const chat_t *c) { return json_text_clean(c->text, c->text ? c->text_len : 0); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

rollout_t *rollout_new(const qwen3_t *policy, const tokenizer_t *tok, const rollout_opts_t *o,
                       rollout_sim_fn sim, void *sim_ud) {
    if (o->max_turns < 1 || o->max_new_tokens < 1 || o->max_episode_tokens < 16 || o->max_active < 1 ||
        o->max_tasks < 1) {
        err_set("rollout: expected max_turns, max_new_tokens, max_active, max_tasks >= 1 and "
                "max_episode_tokens >= 16, found %d, %d, %d, %d, %d",
                o->max_turns, o->max_new_tokens, o->max_active, o->max_tasks, o->max_episode_tokens);
        return NULL;
    }
    if (sampler_params_check(&o->sampling) || sampler_params_check(&o->eval_sampling)) return NULL;
    rollout_t *r = calloc(1, sizeof *r);
    if (!r) {
        err_set("out of memory");
        return NULL;
    }
    r->policy = policy, r->tok = tok, r->o = *o, r->sim = sim, r->sim_ud = sim_ud;
    r->n_tok_ids = tokenizer_n_ids(tok);
    r->max_seq_len = o->max_episode_tokens;
    if (policy->cfg.max_position_embeddings > 0 && r->max_seq_len > policy->cfg.max_position_embeddings)
        r->max_seq_len = policy->cfg.max_position_embeddings;
    r->max_seqs = o->max_active + o->max_tasks;
    engine_opts_t eo = {.max_seqs = r->max_seqs, .max_batch_tokens = 2048, .max_seq_len = r->max_seq_len,
                        .page_size = o->page_size > 0 ? o->page_size : 16, .n_pages = 0};
    r->engine = engine_new(policy, &eo);
    r->events = malloc((size_t)r->max_seqs * sizeof *r->events);
    if (!r->engine || !r->events) {
        if (r->engine) err_set("out of memory");
        err_wrap("rollout engine: ");
        rollout_free(r);
        return NULL;
    }
    return r;
}

void rollout_free(rollout_t *r) {
    if (!r) return;
    engine_free(r->engine);
    free(r->events);
    free(r);
}

// ---- small helpers ----

static int lp_fit(episode_t *ep) {
    int n = ep->chat.ids.n;
    if (n <= ep->lp_cap) return 0;
    int cap = ep->lp_cap ? ep->lp_cap : 1024;
    while (cap < n) cap *= 2;
    float *p = realloc(ep->lp, (size_t)cap * sizeof *p);
    if (!p) return err_set("out of memory");
    memset(p + ep->lp_cap, 0, (size_t)(cap - ep->lp_cap) * sizeof *p);
    ep->lp = p, ep->lp_cap = cap;
    return 0;
}

static void ep_results_clear(episode_t *ep) {
    for (int i = 0; i < ep->n_results; i++) free(ep->results[i]);
    free(ep->results);
    ep->results = NULL, ep->n_results = 0;
}

static char *json_text(json_t *j) { // steals j
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    return s;
}

typedef struct {
    msg_sim_req_t *reqs;
    int *ep, *slot; // episode (or -1 for task-level) and result slot of each request
    int n, cap;
} reqq_t;

static int reqq_push(rollout_t *r, reqq_t *q, int kind, uint64_t task_id, int episode, char *payload, int ep,
                     int slot) {
    if (!payload) return err_set("out of memory (simulator request)");
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 64;
        msg_sim_req_t *a = realloc(q->reqs, (size_t)cap * sizeof *a);
        if (a) q->reqs = a;
        int *b = realloc(q->ep, (size_t)cap * sizeof *b);
        if (b) q->ep = b;
        int *c = realloc(q->slot, (size_t)cap * sizeof *c);
        if (c) q->slot = c;
        if (!a || !b || !c) {
            free(payload);
            return err_set("out of memory");
        }
        q->cap = cap;
    }
    q->reqs[q->n] = (msg_sim_req_t){.req_id = r->next_req++, .kind = kind, .task_id = task_id,
                                    .episode = episode, .payload = payload};
    q->ep[q->n] = ep, q->slot[q->n] = slot;
    q->n++;
    return 0;
}

static void reqq_clear(reqq_t *q) {
    for (int i = 0; i < q->n; i++) free(q->reqs[i].payload);
    q->n = 0;
}

static void reqq_free(reqq_t *q) {
    reqq_clear(q);
    free(q->reqs), free(q->ep), free(q->slot);
}

static int sim_call(rollout_t *r, reqq_t *q, msg_sim_rep_t **reps, rollout_stats_t *st) {
    double t0 = now_s();
    int rc = r->sim(r->sim_ud, q->reqs, q->n, reps);
    st->t_sim += now_s() - t0;
    st->n_sim_requests += q->n;
    st->n_rounds++;
    if (rc) return err_wrap("simulator: ");
    for (int i = 0; i < q->n; i++)
        if ((*reps)[i].req_id != q->reqs[i].req_id) {
            msg_sim_reps_free(*reps, q->n);
            *reps = NULL;
            return err_set("simulator: reply %d answers request %llu, expected %llu", i,
                           (unsigned long long)(*reps)[i].req_id, (unsigned long long)q->reqs[i].req_id);
        }
    return 0;
}

// ---- episode transitions ----

static int ep_request_reward(rollout_t *r, reqq_t *q, episode_t *ep, const msg_task_t *t, int e) {
    json_t *p = json_object();
    json_object_set_new(p, "history", history_json(&ep->chat));
    json_object_set_new(p, "truncated", json_boolean(ep->truncated));
    ep->state = EP_SIM;
    return reqq_push(r, q, SIMREQ_REWARD, t->task_id, ep->index, json_text(p), e, -1);
}

static void ep_fail(episode_t *ep, task_state_t *ts, int reason, const char *why) {
    ep->state = EP_DONE;
    ep->reason = reason;
    ep->reward = 0, ep->score = 0;
    if (!ep->details) ep->details = json_object();
    json_object_set_new(ep->details, "error", json_string(why));
    ts->n_open--;
}

// starts the next turn of episode e: prompt = the conversation so far + the generation prompt
static int ep_start_turn(rollout_t *r, episode_t *ep, int e, const msg_task_t *t, task_state_t *ts, reqq_t *q,
                         rollout_stats_t *st) {
    if (ep->state == EP_START) {
        if (chat_init(&ep->chat, r->tok)) return -1;
        if (ts->system && ts->system[0] && chat_add_system(&ep->chat, ts->system)) return -1;
        if (ts->tools && chat_set_tools(&ep->chat, ts->tools)) return -1;
        if (chat_add_user(&ep->chat, ts->query ? ts->query : "")) return -1;
    }
    if (chat_begin_assistant(&ep->chat)) return -1;
    if (lp_fit(ep)) return -1;
    int n = ep->chat.ids.n;
    if (ep->state == EP_START) ep->n_prompt = n;
    int budget = r->o.max_episode_tokens - n;
    int room = r->max_seq_len - n;
    if (budget < 1 || room < 1) {
        ep->truncated = 1;
        ep->reason = budget < 1 ? TRAJ_TOKEN_CAP : TRAJ_CONTEXT_FULL;
        if (ep->state == EP_START) { // nothing to score: the task's prompt alone does not fit
            ep_fail(ep, ts, ep->reason, "the first prompt does not fit the episode's token budget");
            return 0;
        }
        return ep_request_reward(r, q, ep, t, e);
    }
    int max_new = r->o.max_new_tokens;
    if (max_new > budget) max_new = budget;
    if (max_new > room) max_new = room;
    engine_gen_t g = {.sampling = t->eval ? r->o.eval_sampling : r->o.sampling, .max_new_tokens = max_new,
                      .stream = mix64(t->task_id * 0x9e3779b97f4a7c15ull + (uint64_t)ep->index * 1000003ull +
                                      (uint64_t)ep->turns)};
    // (a restricted output vocabulary, qwen3_set_output_vocab, lists no padding id: no hook needed)
    if (r->policy->out_n == 0 && r->n_tok_ids < r->policy->cfg.vocab_size)
        g.logits_hook = mask_padding_ids, g.logits_ud = &r->n_tok_ids;
    ep->seq = engine_add(r->engine, ep->chat.ids.ids, n, &g, ts->root >= 0 ? ts->root : -1);
    if (ep->seq < 0) return err_wrap("engine_add (episode %d of task %llu): ", ep->index,
                                     (unsigned long long)t->task_id);
    ep->state = EP_GEN;
    st->prefill_tokens += n;
    return 0;
}

// the turn of episode e finished: append it, then decide what the simulator must answer
static int ep_end_turn(rollout_t *r, episode_t *ep, int e, const msg_task_t *t, task_state_t *ts, reqq_t *q,
                       int finish, rollout_stats_t *st) {
    int n, np, nl;
    const int32_t *tok = engine_tokens(r->engine, ep->seq, &n, &np);
    const float *slp = engine_logprobs(r->engine, ep->seq, &nl);
    int ns = n - np;
    if (!tok || ns < 0 || nl != ns || np != ep->chat.ids.n)
        return err_set("rollout: engine sequence of episode %d has %d tokens (%d prompt, %d log-probs), expected "
                       "a prompt of %d",
                       ep->index, n, np, nl, ep->chat.ids.n);
    int old = ep->chat.ids.n;
    if (chat_add_assistant_ids(&ep->chat, tok + np, ns)) return -1;
    if (lp_fit(ep)) return -1;
    for (int i = 0; i < ns; i++) ep->lp[old + i] = slp[i];
    st->sampled_tokens += ns;
    // text of the turn without its stop id
    int nt = ns;
    if (nt > 0 && finish == ENGINE_STOP_ID) nt--;
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(r->tok, tok + np, nt, &text, &len)) return -1;
    engine_release(r->engine, ep->seq);
    ep->seq = -1;
    ep->turns++;
    int budget_left = r->o.max_episode_tokens - ep->chat.ids.n;
    if (finish == ENGINE_STOP_LENGTH && budget_left <= 0) { // the episode's token budget is spent
        free(text);
        ep->truncated = 1, ep->reason = TRAJ_TOKEN_CAP;
        return ep_request_reward(r, q, ep, t, e);
    }
    chat_parsed_t p;
    if (chat_parse_assistant(text, len, &p)) {
        free(text);
        return -1;
    }
    free(text);
    int rc = 0;
    ep->state = EP_SIM;
    if (p.n_calls > 0) {
        ep->n_results = p.n_calls;
        ep->results = calloc((size_t)p.n_calls, sizeof *ep->results);
        if (!ep->results) rc = err_set("out of memory");
        ep->tool_calls += p.n_calls;
        for (int i = 0; i < p.n_calls && !rc; i++) {
            chat_parsed_call_t *c = &p.calls[i];
            if (c->status != CHAT_CALL_OK) { // answered here: the simulator never sees malformed calls
                char buf[160];
                snprintf(buf, sizeof buf, "{\"success\": false, \"error\": \"malformed tool call: %s\"}",
                         chat_call_status_name(c->status));
                ep->results[i] = strdup(buf);
                continue;
            }
            json_t *pl = json_object();
            json_object_set_new(pl, "name", json_string(c->name));
            json_object_set(pl, "arguments", c->arguments);
            json_object_set_new(pl, "history", history_json(&ep->chat));
            rc = reqq_push(r, q, SIMREQ_TOOL, t->task_id, ep->index, json_text(pl), e, i);
        }
        ep->end_after = ep->turns >= r->o.max_turns;
    } else {
        json_t *pl = json_object();
        json_object_set_new(pl, "text", json_text_clean(p.content, p.content ? p.content_len : 0));
        json_object_set_new(pl, "history", history_json(&ep->chat));
        rc = reqq_push(r, q, SIMREQ_USER, t->task_id, ep->index, json_text(pl), e, -1);
    }
    chat_parsed_free(&p);
    return rc;
}

// applies the replies of one round; requests for the next round go into q2
static int apply_replies(rollout_t *r, reqq_t *q, msg_sim_rep_t *reps, episode_t *eps, task_state_t *tss,
                         const msg_task_t *tasks, reqq_t *q2) {
    for (int i = 0; i < q->n; i++) {
        int e = q->ep[i];
        if (e < 0) continue; // task-level (DROP)
        episode_t *ep = &eps[e];
        task_state_t *ts = &tss[ep->task];
        if (ep->state == EP_DONE) continue; // an earlier request of this round failed
        msg_sim_rep_t *rp = &reps[i];
        json_t *pl = NULL;
        if (rp->status == 0) {
            pl = json_loads(rp->payload ? rp->payload : "", 0, NULL);
            if (!json_is_object(pl)) {
                json_decref(pl);
                pl = NULL;
            }
        }
        int kind = q->reqs[i].kind;
        if (!pl) {
            char why[160];
            snprintf(why, sizeof why, "simulator %s request failed: %s", simreq_kind_name(kind),
                     rp->status ? (rp->reason && rp->reason[0] ? rp->reason : "error") : "reply is not a JSON object");
            ep_results_clear(ep);
            ep_fail(ep, ts, TRAJ_SIM_ERROR, why);
            continue;
        }
        if (kind == SIMREQ_TOOL) {
            json_t *res = json_object_get(pl, "result");
            const char *s = json_is_string(res) ? json_string_value(res) : NULL;
            char *copy = s ? strdup(s) : json_dumps(res ? res : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
            free(ep->results[q->slot[i]]);
            ep->results[q->slot[i]] = copy;
        } else if (kind == SIMREQ_USER) {
            json_t *reply = json_object_get(pl, "reply");
            int end = json_is_true(json_object_get(pl, "end")) || !json_is_string(reply);
            if (end) ep->want_reward = 1;
            else if (chat_add_user(&ep->chat, json_string_value(reply))) {
                json_decref(pl);
                return -1;
            } else if (ep->turns >= r->o.max_turns) {
                ep->truncated = 1, ep->reason = TRAJ_TURN_CAP, ep->want_reward = 1;
            } else ep->state = EP_READY;
        } else if (kind == SIMREQ_REWARD) {
            double rw = json_number_value(json_object_get(pl, "reward"));
            double sc = json_number_value(json_object_get(pl, "score"));
            if (!json_is_number(json_object_get(pl, "reward")) || rw < -1 || rw > 1) {
                json_decref(pl);
                ep_fail(ep, ts, TRAJ_SIM_ERROR, "simulator reward reply: \"reward\" missing or outside [-1, 1]");
                continue;
            }
            ep->reward = (float)rw, ep->score = (float)sc;
            json_t *d = json_object_get(pl, "details");
            if (!ep->details) ep->details = json_object();
            if (d) json_object_set(ep->details, "sim", d);
            ep->state = EP_DONE;
            ts->n_open--;
        }
        json_decref(pl);
    }
    // episodes whose tool results are all in: append them in call order
    for (int i = 0; i < q->n; i++) {
        int e = q->ep[i];
        if (e < 0) continue;
        episode_t *ep = &eps[e];
        if (ep->state != EP_SIM || !ep->results) continue;
        for (int k = 0; k < ep->n_results; k++)
            if (chat_add_tool(&ep->chat, ep->results[k] ? ep->results[k] : "")) return -1;
        ep_results_clear(ep);
        if (ep->end_after) ep->truncated = 1, ep->reason = TRAJ_TURN_CAP, ep->want_reward = 1;
        else ep->state = EP_READY;
    }
    // reward requests
    for (int i = 0; i < q->n; i++) {
        int e = q->ep[i];
        if (e < 0) continue;
        episode_t *ep = &eps[e];
        if (ep->want_reward && ep->state != EP_DONE) {
            ep->want_reward = 0;
            if (ep_request_reward(r, q2, ep, &tasks[ep->task], e)) return -1;
        }
    }
    return 0;
}

static int build_traj(const msg_task_t *t, episode_t *ep, msg_traj_t *tr) {
    memset(tr, 0, sizeof *tr);
    tr->step = t->step, tr->task_id = t->task_id, tr->group = t->group, tr->index = ep->index;
    tr->group_size = t->group_size, tr->policy_version = t->policy_version, tr->eval = t->eval;
    tr->difficulty = t->difficulty;
    tr->env = strdup(t->env ? t->env : "");
    tr->aspects = strdup(t->aspects ? t->aspects : "{}");
    if (ep->chat.tok && chat_flush(&ep->chat)) return -1;
    int n = ep->chat.ids.n;
    tr->n_tokens = n, tr->n_prompt = ep->n_prompt;
    tr->ids = malloc((size_t)(n ? n : 1) * sizeof *tr->ids);
    tr->logprobs = calloc((size_t)(n ? n : 1), sizeof *tr->logprobs);
    tr->mask = calloc((size_t)(n ? n : 1), 1);
    if (!tr->ids || !tr->logprobs || !tr->mask) return err_set("out of memory");
    if (n) {
        memcpy(tr->ids, ep->chat.ids.ids, (size_t)n * sizeof *tr->ids);
        memcpy(tr->mask, ep->chat.mask, (size_t)n);
        for (int i = 0; i < n && i < ep->lp_cap; i++) tr->logprobs[i] = tr->mask[i] ? ep->lp[i] : 0.0f;
    }
    tr->reward = ep->reward, tr->score = ep->score, tr->turns = ep->turns, tr->tool_calls = ep->tool_calls;
    tr->abort = ep->reason, tr->truncated = ep->truncated;
    tr->reward_details = json_text(ep->details ? json_incref(ep->details) : json_object());
    tr->transcript = utf8_clean(ep->chat.text ? ep->chat.text : "", ep->chat.text ? ep->chat.text_len : 0);
    if (!tr->env || !tr->aspects || !tr->reward_details || !tr->transcript) return err_set("out of memory");
    return 0;
}

// prefills the shared prompt of every task that has episodes still to start
static int prefill_roots(rollout_t *r, const msg_task_t *tasks, task_state_t *tss, int n, episode_t *eps, int n_eps,
                         rollout_stats_t *st) {
    int added = 0;
    for (int i = 0; i < n; i++) {
        task_state_t *ts = &tss[i];
        if (!ts->ok || ts->root >= 0) continue;
        int waiting = 0;
        for (int e = 0; e < n_eps && !waiting; e++) waiting = eps[e].task == i && eps[e].state == EP_START;
        if (!waiting) continue;
        chat_t c;
        if (chat_init(&c, r->tok)) return -1;
        int rc = (ts->system && ts->system[0] && chat_add_system(&c, ts->system)) ||
                 (ts->tools && chat_set_tools(&c, ts->tools)) || chat_add_user(&c, ts->query ? ts->query : "") ||
                 chat_begin_assistant(&c);
        if (!rc && c.ids.n >= r->max_seq_len) { // no episode of this task can start: they fail at start
            chat_free(&c);
            continue;
        }
        engine_gen_t g0 = {.sampling = r->o.sampling, .max_new_tokens = 0};
        if (!rc) ts->root = engine_add(r->engine, c.ids.ids, c.ids.n, &g0, -1);
        if (!rc && ts->root >= 0) st->prefill_tokens += c.ids.n;
        chat_free(&c);
        if (rc || ts->root < 0) return err_wrap("rollout: prompt of task %llu: ", (unsigned long long)tasks[i].task_id);
        added++;
    }
    while (added && engine_pending(r->engine) > 0)
        if (engine_step(r->engine, r->events, r->max_seqs) < 0) return err_wrap("rollout engine (prefill): ");
    return 0;
}

int rollout_run(rollout_t *r, const msg_task_t *tasks, int n, msg_traj_t **out, int *n_out, rollout_stats_t *st_out,
                volatile int *stop) {
    *out = NULL, *n_out = 0;
    rollout_stats_t st = {0};
    if (n < 0 || n > r->o.max_tasks)
        return err_set("rollout: %d tasks in one batch, expected 0..max_tasks %d", n, r->o.max_tasks);
    int n_eps = 0;
    for (int i = 0; i < n; i++) {
        if (tasks[i].group_size < 1 || tasks[i].group_size > 4096)
            return err_set("rollout: task %d has group size %d (expected 1..4096)", i, tasks[i].group_size);
        n_eps += tasks[i].group_size;
    }
    task_state_t *tss = calloc((size_t)(n ? n : 1), sizeof *tss);
    episode_t *eps = calloc((size_t)(n_eps ? n_eps : 1), sizeof *eps);
    reqq_t q = {0}, q2 = {0};
    msg_sim_rep_t *reps = NULL;
    int rc = 0;
    if (!tss || !eps) {
        rc = err_set("out of memory");
        goto done;
    }
    // ---- TASK_GEN for every task, one simulator batch ----
    for (int i = 0; i < n && !rc; i++) {
        tss[i].root = -1;
        json_t *p = json_object();
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)tasks[i].seed);
        json_object_set_new(p, "env", json_string(tasks[i].env ? tasks[i].env : ""));
        json_object_set_new(p, "seed", json_string(seed));
        json_t *asp = json_loads(tasks[i].aspects ? tasks[i].aspects : "{}", 0, NULL);
        json_object_set_new(p, "aspects", asp ? asp : json_object());
        rc = reqq_push(r, &q, SIMREQ_TASK_GEN, tasks[i].task_id, -1, json_text(p), -1, i);
    }
    if (rc || (n > 0 && (rc = sim_call(r, &q, &reps, &st)))) goto done;
    for (int i = 0, e = 0; i < n; i++) {
        task_state_t *ts = &tss[i];
        json_t *pl = reps[i].status == 0 ? json_loads(reps[i].payload ? reps[i].payload : "", 0, NULL) : NULL;
        const char *sys = json_string_value(json_object_get(pl, "system"));
        const char *qu = json_string_value(json_object_get(pl, "query"));
        json_t *tools = json_object_get(pl, "tools");
        if (pl && qu && json_is_array(tools)) {
            ts->ok = 1;
            ts->system = strdup(sys ? sys : "");
            ts->query = strdup(qu);
            ts->tools = json_incref(tools);
            ts->meta = json_incref(json_object_get(pl, "meta"));
        } else
            snprintf(ts->reason, sizeof ts->reason, "%s",
                     reps[i].status ? (reps[i].reason && reps[i].reason[0] ? reps[i].reason : "error") : "bad_reply");
        json_decref(pl);
        ts->n_open = tasks[i].group_size;
        for (int k = 0; k < tasks[i].group_size; k++, e++) {
            eps[e].task = i, eps[e].index = k, eps[e].seq = -1, eps[e].state = EP_START;
            if (!ts->ok) {
                char why[96];
                snprintf(why, sizeof why, "task generation failed: %s", ts->reason);
                ep_fail(&eps[e], ts, TRAJ_SIM_ERROR, why);
            }
        }
    }
    msg_sim_reps_free(reps, q.n);
    reps = NULL;
    reqq_clear(&q);

    // ---- rounds ----
    int next_start = 0; // episodes start in order (task, index)
    for (;;) {
        if (stop && *stop) {
            rc = err_set("interrupted");
            goto done;
        }
        // each task's shared prompt (system + tools + query + generation prompt) is prefilled once
        // for the whole group, alone, before any episode of the round starts; it stays cached until
        // every episode of the task is done, so later turns share it too
        if (r->o.share_prompt && (rc = prefill_roots(r, tasks, tss, n, eps, n_eps, &st))) goto done;
        int active = 0;
        // admit: continuing episodes first (they hold context), then new ones up to max_active
        for (int e = 0; e < n_eps && !rc; e++)
            if (eps[e].state == EP_READY) {
                rc = ep_start_turn(r, &eps[e], e, &tasks[eps[e].task], &tss[eps[e].task], &q, &st);
                active += eps[e].state == EP_GEN;
            }
        while (!rc && active < r->o.max_active && next_start < n_eps) {
            episode_t *ep = &eps[next_start++];
            if (ep->state != EP_START) continue;
            rc = ep_start_turn(r, ep, next_start - 1, &tasks[ep->task], &tss[ep->task], &q, &st);
            active += ep->state == EP_GEN;
        }
        if (rc) goto done;
        // the engine runs until every generating episode has finished its turn
        double t0 = now_s();
        while (active > 0) {
            int ne = engine_step(r->engine, r->events, r->max_seqs);
            if (ne < 0) {
                rc = err_wrap("rollout engine: ");
                goto done;
            }
            for (int k = 0; k < ne; k++) {
                engine_event_t *ev = &r->events[k];
                if (ev->finish == ENGINE_RUNNING || ev->finish == ENGINE_PREFILLED) continue;
                int e = -1;
                for (int j = 0; j < n_eps; j++)
                    if (eps[j].state == EP_GEN && eps[j].seq == ev->seq) {
                        e = j;
                        break;
                    }
                if (e < 0) continue;
                episode_t *ep = &eps[e];
                if ((rc = ep_end_turn(r, ep, e, &tasks[ep->task], &tss[ep->task], &q, ev->finish, &st))) goto done;
                active--;
                // refill: a new episode takes the free place at once
                while (active < r->o.max_active && next_start < n_eps) {
                    episode_t *nx = &eps[next_start++];
                    if (nx->state != EP_START) continue;
                    if ((rc = ep_start_turn(r, nx, next_start - 1, &tasks[nx->task], &tss[nx->task], &q, &st)))
                        goto done;
                    if (nx->state == EP_GEN) {
                        active++;
                        break;
                    }
                }
            }
            if (ne == 0 && engine_pending(r->engine) == 0) break;
        }
        st.t_gen += now_s() - t0;
        // release the shared prompt of tasks whose episodes are all done
        for (int i = 0; i < n; i++)
            if (tss[i].root >= 0 && tss[i].n_open == 0) {
                engine_release(r->engine, tss[i].root);
                tss[i].root = -1;
            }
        // episodes whose turn had only malformed calls: their results are already here
        for (int e = 0; e < n_eps; e++) {
            episode_t *ep = &eps[e];
            if (ep->state != EP_SIM || !ep->results) continue;
            int waiting = 0;
            for (int i = 0; i < q.n && !waiting; i++) waiting = q.ep[i] == e;
            if (waiting) continue;
            for (int k = 0; k < ep->n_results; k++)
                if ((rc = chat_add_tool(&ep->chat, ep->results[k] ? ep->results[k] : ""))) goto done;
            ep_results_clear(ep);
            if (ep->end_after) {
                ep->truncated = 1, ep->reason = TRAJ_TURN_CAP;
                if ((rc = ep_request_reward(r, &q, ep, &tasks[ep->task], e))) goto done;
            } else ep->state = EP_READY;
        }
        if (q.n == 0) {
            int open = 0;
            for (int e = 0; e < n_eps; e++) open += eps[e].state != EP_DONE;
            int ready = 0;
            for (int e = 0; e < n_eps; e++) ready += eps[e].state == EP_READY || eps[e].state == EP_START;
            if (!open) break;
            if (!ready) {
                rc = err_set("rollout: %d episodes wait for nothing (internal error)", open);
                goto done;
            }
            continue;
        }
        if ((rc = sim_call(r, &q, &reps, &st))) goto done;
        rc = apply_replies(r, &q, reps, eps, tss, tasks, &q2);
        msg_sim_reps_free(reps, q.n);
        reps = NULL;
        reqq_clear(&q);
        if (rc) goto done;
        reqq_t tmp = q;
        q = q2, q2 = tmp; // reward requests made while applying go out next round
    }
    // ---- forget the tasks on the simulator ----
    for (int i = 0; i < n && !rc; i++)
        if (tss[i].ok) rc = reqq_push(r, &q, SIMREQ_DROP, tasks[i].task_id, -1, strdup("{}"), -1, -1);
    if (!rc && q.n) {
        rc = sim_call(r, &q, &reps, &st);
        if (!rc) msg_sim_reps_free(reps, q.n);
        reps = NULL;
        reqq_clear(&q);
    }
    if (rc) goto done;
    // ---- trajectories ----
    *out = calloc((size_t)(n_eps ? n_eps : 1), sizeof **out);
    if (!*out) {
        rc = err_set("out of memory");
        goto done;
    }
    for (int e = 0; e < n_eps && !rc; e++) {
        episode_t *ep = &eps[e];
        rc = build_traj(&tasks[ep->task], ep, &(*out)[e]);
        if (!rc && tss[ep->task].meta) {
            // keep the task's meta (family, intent, ...) in the details
            json_t *d = json_loads((*out)[e].reward_details, 0, NULL);
            if (d) {
                json_object_set(d, "task", tss[ep->task].meta);
                free((*out)[e].reward_details);
                (*out)[e].reward_details = json_text(d);
            }
        }
    }
    *n_out = n_eps;
    if (rc) {
        for (int e = 0; e < n_eps; e++) msg_traj_free(&(*out)[e]);
        free(*out);
        *out = NULL, *n_out = 0;
    }
done:
    if (reps) msg_sim_reps_free(reps, q.n);
    for (int e = 0; eps && e < n_eps; e++) {
        if (eps[e].state == EP_GEN && eps[e].seq >= 0) engine_release(r->engine, eps[e].seq);
        if (eps[e].chat.tok || eps[e].chat.ids.ids) chat_free(&eps[e].chat);
        free(eps[e].lp);
        ep_results_clear(&eps[e]);
        json_decref(eps[e].details);
    }
    for (int i = 0; tss && i < n; i++) {
        if (tss[i].root >= 0) engine_release(r->engine, tss[i].root);
        free(tss[i].system), free(tss[i].query);
        json_decref(tss[i].tools), json_decref(tss[i].meta);
    }
    free(eps), free(tss);
    reqq_free(&q), reqq_free(&q2);
    if (st_out) *st_out = st;
    return rc;
}
