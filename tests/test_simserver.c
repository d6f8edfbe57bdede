// sim/server, programmatic backend: for every embedded Lua environment at D = 1 / 50 / 100 and a few
// seeds, TASK_GEN gives the same system / query / tools as the environment itself (the first two
// messages of luaenv_run_oracle on an independently sampled copy of the task), replaying the
// task's oracle through TOOL / USER requests gives the same tool results and user replies as an
// episode run directly and reward 1 / score 1; doing nothing scores 0 (reward -1, the contract of
// docs/environments.md section 6); episodes of one task are independent; REWARD forgets the
// episode, DROP the task; malformed requests fail with a reason and leave the server usable;
// 200 tasks in flight at once; the stats count what was sent.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "sim/curriculum.h"
#include "sim/luaenv.h"
#include "sim/server.h"
#include "test.h"

static uint64_t sent[SIMREQ_N_KINDS], failed[SIMREQ_N_KINDS];

// one request -> reply payload parsed (NULL when status != 0; *reason copied)
static json_t *call1(simserver_t *s, int kind, uint64_t task, int episode, const char *payload, char *reason) {
    simserver_req_t q = {kind, task, episode, payload};
    simserver_rep_t r;
    int rc = simserver_handle(s, &q, 1, &r);
    CHECK(rc == 0, "simserver_handle: %s", err_msg());
    if (kind >= 0 && kind < SIMREQ_N_KINDS) {
        sent[kind]++;
        failed[kind] += r.status != 0;
    }
    if (reason) snprintf(reason, 32, "%s", r.reason);
    if (r.status) {
        CHECK(r.payload == NULL && r.reason[0], "a failed reply has a reason and no payload");
        return NULL;
    }
    CHECK(r.reason[0] == 0 && r.payload, "an ok reply has a payload and no reason");
    json_t *j = r.payload ? json_loads(r.payload, 0, NULL) : NULL;
    CHECK(json_is_object(j), "reply payload is a JSON object: %s", r.payload ? r.payload : "(null)");
    free(r.payload);
    return j;
}

static char *pack(json_t *v) { // steals v
    char *t = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return t;
}

static void expect_fail(simserver_t *s, int kind, uint64_t task, int episode, const char *payload, const char *reason) {
    char why[32];
    json_t *j = call1(s, kind, task, episode, payload, why);
    CHECK(j == NULL, "kind %d payload %s: expected a failure, got ok", kind, payload ? payload : "(null)");
    json_decref(j);
    if (reason) CHECK(strcmp(why, reason) == 0, "payload %s: reason '%s', expected '%s'", payload ? payload : "(null)", why, reason);
}

static char *gen_payload(const char *env, uint64_t seed, const curriculum_aspects_t *a) {
    char seed_s[24];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    return pack(json_pack("{s:s, s:s, s:o}", "env", env, "seed", seed_s, "aspects", curriculum_aspects_json(a)));
}

// replays the task's oracle through the server (episode ep) and through a direct episode; checks
// every tool result / user reply agrees and the reply shapes. Returns the number of steps replayed.
static int replay_oracle(simserver_t *s, luaenv_t *e, const json_t *task, uint64_t id, int ep) {
    luaenv_episode_t direct;
    if (luaenv_episode_begin(&direct, e, task)) {
        CHECK(0, "direct episode: %s", err_msg());
        return 0;
    }
    const json_t *steps = json_object_get(task, "oracle"), *st;
    size_t i;
    json_array_foreach(steps, i, st) {
        const json_t *calls = json_object_get(st, "calls"), *c;
        if (calls) {
            size_t j;
            json_array_foreach(calls, j, c) {
                const char *name = json_string_value(json_object_get(c, "name"));
                char *p = pack(json_pack("{s:s, s:O, s:s}", "name", name, "arguments", json_object_get(c, "args"), "history", ""));
                json_t *rep = call1(s, SIMREQ_TOOL, id, ep, p, NULL);
                char *want = NULL;
                CHECK(luaenv_tool_call(&direct, name, json_object_get(c, "args"), &want) == 0, "%s", err_msg());
                const char *got = json_string_value(json_object_get(rep, "result"));
                CHECK(got && want && strcmp(got, want) == 0, "tool %s: server '%s' direct '%s'", name, got ? got : "(null)", want ? want : "(null)");
                json_t *res = got ? json_loads(got, 0, NULL) : NULL;
                CHECK(json_is_boolean(json_object_get(res, "success")), "tool result has success: %s", got ? got : "(null)");
                json_decref(res);
                free(want);
                free(p);
                json_decref(rep);
            }
            continue;
        }
        const char *say = json_string_value(json_object_get(st, "say"));
        const char *text = say ? say : json_string_value(json_object_get(st, "text"));
        char *p = pack(json_pack("{s:s, s:s}", "text", text, "history", "(ignored)"));
        json_t *rep = call1(s, SIMREQ_USER, id, ep, p, NULL);
        char *want = NULL;
        int w = luaenv_user_reply(&direct, text, &want);
        const json_t *reply = json_object_get(rep, "reply");
        CHECK(json_is_boolean(json_object_get(rep, "end")), "user reply has end");
        if (say) { // the final message asks nothing: the user ends
            CHECK(w == 0 && json_is_null(reply) && json_is_true(json_object_get(rep, "end")), "say: user ends");
        } else {
            CHECK(w == 1 && json_is_string(reply) && json_is_false(json_object_get(rep, "end")), "ask: user replies");
            CHECK(want && json_is_string(reply) && strcmp(json_string_value(reply), want) == 0, "user reply '%s' vs direct '%s'",
                  json_string_value(reply) ? json_string_value(reply) : "(null)", want ? want : "(null)");
        }
        free(want);
        free(p);
        json_decref(rep);
    }
    luaenv_episode_free(&direct);
    return (int)i;
}

static void check_reward(simserver_t *s, uint64_t id, int ep, double want_r, double want_s) {
    json_t *rep = call1(s, SIMREQ_REWARD, id, ep, "{\"history\": \"\", \"truncated\": false}", NULL);
    double r = json_number_value(json_object_get(rep, "reward")), sc = json_number_value(json_object_get(rep, "score"));
    CHECK(rep && json_is_number(json_object_get(rep, "reward")) && fabs(r - want_r) < 1e-9 && fabs(sc - want_s) < 1e-9,
          "task %llu ep %d: reward %g score %g, expected %g %g", (unsigned long long)id, ep, r, sc, want_r, want_s);
    // independent: r = 2 s - 1, the checks listed with their results
    const json_t *checks = json_object_get(json_object_get(rep, "details"), "checks"), *c;
    CHECK(json_is_array(checks) && json_array_size(checks) >= 2, "details.checks");
    size_t i, passed = 0;
    json_array_foreach(checks, i, c) passed += json_is_true(json_object_get(c, "passed"));
    if (json_array_size(checks))
        CHECK(fabs((double)passed / (double)json_array_size(checks) - sc) < 1e-9, "score = passed / total");
    json_decref(rep);
}

int main(void) {
    simserver_t *s = simserver_new_programmatic();
    REQUIRE(s, "%s", err_msg());
    CHECK(strcmp(simreq_kind_name(SIMREQ_REWARD), "reward") == 0 && strcmp(simreq_kind_name(9), "?") == 0, "kind names");
    const char **names;
    int n_envs = luaenv_list_embedded(&names);
    REQUIRE(n_envs >= 1, "no embedded envs");
    const int Ds[3] = {1, 50, 100};
    const uint64_t seeds[3] = {0, 7, 123456789012345ull};
    int n_tasks = 0;
    for (int ei = 0; ei < n_envs; ei++) {
        luaenv_t *e = luaenv_load_embedded(names[ei]);
        REQUIRE(e, "%s", err_msg());
        for (int di = 0; di < 3; di++)
            for (int si = 0; si < 3; si++) {
                curriculum_aspects_t a;
                curriculum_aspects_at(Ds[di], &a);
                uint64_t id = 1000003ull * (uint64_t)(ei + 1) + 1000ull * (uint64_t)di + (uint64_t)si;
                char *p = gen_payload(names[ei], seeds[si], &a);
                json_t *g = call1(s, SIMREQ_TASK_GEN, id, -1, p, NULL);
                free(p);
                REQUIRE(g, "TASK_GEN %s D %d seed %llu failed", names[ei], Ds[di], (unsigned long long)seeds[si]);
                n_tasks++;
                // the same task sampled here, independently of the server
                json_t *task = luaenv_sample_task(e, seeds[si], &a, NULL);
                REQUIRE(task, "%s", err_msg());
                json_t *msgs = json_array();
                double so = -1;
                CHECK(luaenv_run_oracle(e, task, -1, msgs, &so) == 0 && so == 1.0, "direct oracle: %s", err_msg());
                const char *sys0 = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
                const char *usr1 = json_string_value(json_object_get(json_array_get(msgs, 1), "content"));
                const char *sys = json_string_value(json_object_get(g, "system"));
                const char *qry = json_string_value(json_object_get(g, "query"));
                CHECK(sys && sys0 && strcmp(sys, sys0) == 0, "%s: system differs from the oracle's first message", names[ei]);
                CHECK(qry && usr1 && strcmp(qry, usr1) == 0, "%s: query differs from the oracle's second message", names[ei]);
                CHECK(!strcmp(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system") &&
                      !strcmp(json_string_value(json_object_get(json_array_get(msgs, 1), "role")), "user"), "oracle roles");
                json_t *tools = luaenv_task_tools(e, task);
                CHECK(json_equal(tools, json_object_get(g, "tools")), "%s: tools differ", names[ei]);
                // tools shown = the task's available names, in that order
                const json_t *avail = json_object_get(task, "available");
                CHECK(json_array_size(avail) == json_array_size(json_object_get(g, "tools")), "tools count");
                for (size_t k = 0; k < json_array_size(avail); k++)
                    CHECK(!strcmp(json_string_value(json_array_get(avail, k)),
                                  json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(g, "tools"), k), "function"), "name"))),
                          "tool %zu name", k);
                const json_t *meta = json_object_get(g, "meta");
                char seed_s[24];
                snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seeds[si]);
                CHECK(!strcmp(json_string_value(json_object_get(meta, "env")), names[ei]) &&
                      !strcmp(json_string_value(json_object_get(meta, "seed")), seed_s) &&
                      json_equal(json_object_get(meta, "family"), json_object_get(task, "family")) &&
                      json_integer_value(json_object_get(meta, "difficulty")) == Ds[di], "meta");
                // no secrets to the agent: the reply does not carry the oracle or the facts
                CHECK(!json_object_get(g, "oracle") && !json_object_get(g, "facts"), "reply leaks the task");

                // episode 1 starts first and does nothing (the user ends on "ok")
                json_t *u = call1(s, SIMREQ_USER, id, 1, "{\"text\": \"ok\"}", NULL);
                CHECK(u && json_is_null(json_object_get(u, "reply")) && json_is_true(json_object_get(u, "end")), "ok ends");
                json_decref(u);
                // episode 0: the oracle (changes its own state)
                int nst = replay_oracle(s, e, task, id, 0);
                CHECK(nst == luaenv_oracle_steps(task), "replayed %d of %d steps", nst, luaenv_oracle_steps(task));
                // episode 1 saw none of it: every check fails on the initial state (doc section 6)
                check_reward(s, id, 1, -1.0, 0.0);
                check_reward(s, id, 0, 1.0, 1.0);
                // REWARD forgot episode 0: the same index is a fresh episode now
                check_reward(s, id, 0, -1.0, 0.0);
                // an episode with no request at all before its REWARD
                check_reward(s, id, 5, -1.0, 0.0);
                json_decref(tools);
                json_decref(msgs);
                json_decref(task);
                json_decref(g);
            }
        // DROP: the task is gone; its other tasks stay
        uint64_t id0 = 1000003ull * (uint64_t)(ei + 1);
        json_t *d = call1(s, SIMREQ_DROP, id0, -1, "{}", NULL);
        CHECK(d && json_object_size(d) == 0, "DROP replies {}");
        json_decref(d);
        expect_fail(s, SIMREQ_TOOL, id0, 0, "{\"name\": \"x\", \"arguments\": {}}", "unknown_task");
        expect_fail(s, SIMREQ_REWARD, id0, 0, "{}", "unknown_task");
        expect_fail(s, SIMREQ_DROP, id0, -1, "{}", "unknown_task");
        check_reward(s, id0 + 1, 2, -1.0, 0.0);
        luaenv_free(e);
    }

    // ---- malformed requests: a reason, no crash, the server stays usable ----
    curriculum_aspects_t a;
    curriculum_aspects_at(30, &a);
    char *good = gen_payload(names[0], 5, &a);
    char *asp = pack(curriculum_aspects_json(&a));
    char bad[4096];
    const uint64_t T = 77;
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, "{", "bad_request");
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, "[1, 2]", "bad_request");
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, "", "bad_request");
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, NULL, "bad_request");
    snprintf(bad, sizeof bad, "{\"seed\": \"1\", \"aspects\": %s}", asp); // no env
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    snprintf(bad, sizeof bad, "{\"env\": \"%s\", \"aspects\": %s}", names[0], asp); // no seed
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    const char *bad_seeds[] = {"1", "\"\"", "\"-1\"", "\"1x\"", "\" 1\"", "\"18446744073709551616\"", "true", "null"};
    for (int i = 0; i < 8; i++) {
        snprintf(bad, sizeof bad, "{\"env\": \"%s\", \"seed\": %s, \"aspects\": %s}", names[0], bad_seeds[i], asp);
        expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    }
    snprintf(bad, sizeof bad, "{\"env\": \"%s\", \"seed\": \"1\"}", names[0]); // no aspects
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    snprintf(bad, sizeof bad, "{\"env\": \"%s\", \"seed\": \"1\", \"aspects\": {\"difficulty\": 3}}", names[0]);
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    snprintf(bad, sizeof bad, "{\"env\": 3, \"seed\": \"1\", \"aspects\": %s}", asp);
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "bad_request");
    snprintf(bad, sizeof bad, "{\"env\": \"no_such_env\", \"seed\": \"1\", \"aspects\": %s}", asp);
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "unknown_env");
    snprintf(bad, sizeof bad, "{\"env\": \"lm\", \"seed\": \"1\", \"aspects\": %s}", asp); // no LM here
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, bad, "unknown_env");
    expect_fail(s, 7, T, 0, "{}", "bad_request");
    expect_fail(s, -1, T, 0, "{}", "bad_request");
    expect_fail(s, SIMREQ_TOOL, T, 0, "{\"name\": \"x\"}", "unknown_task");
    json_t *g = call1(s, SIMREQ_TASK_GEN, T, -1, good, NULL); // still usable
    CHECK(g != NULL, "TASK_GEN after malformed requests");
    json_decref(g);
    expect_fail(s, SIMREQ_TASK_GEN, T, -1, good, "duplicate_task");
    expect_fail(s, SIMREQ_TOOL, T, 0, "{\"arguments\": {}}", "bad_request");
    expect_fail(s, SIMREQ_TOOL, T, 0, "{\"name\": 5}", "bad_request");
    expect_fail(s, SIMREQ_TOOL, T, 0, "{\"name\": \"x\", \"history\": 3}", "bad_request");
    expect_fail(s, SIMREQ_TOOL, T, -1, "{\"name\": \"x\"}", "bad_request");
    expect_fail(s, SIMREQ_USER, T, 0, "{}", "bad_request");
    expect_fail(s, SIMREQ_USER, T, 0, "{\"text\": [1]}", "bad_request");
    expect_fail(s, SIMREQ_USER, T, 0, "not json", "bad_request");
    expect_fail(s, SIMREQ_REWARD, T, 0, "{\"truncated\": \"yes\"}", "bad_request");
    // an unknown tool or bad arguments are the agent's mistakes: a success=false result, status 0
    json_t *tr = call1(s, SIMREQ_TOOL, T, 0, "{\"name\": \"no_such_tool\", \"arguments\": {\"a\": 1}}", NULL);
    json_t *res = json_loads(json_string_value(json_object_get(tr, "result")) ? json_string_value(json_object_get(tr, "result")) : "", 0, NULL);
    CHECK(json_is_false(json_object_get(res, "success")) && json_is_string(json_object_get(res, "error")), "unknown tool result");
    json_decref(res);
    json_decref(tr);
    tr = call1(s, SIMREQ_TOOL, T, 0, "{\"name\": \"no_such_tool\", \"arguments\": \"oops\"}", NULL);
    CHECK(tr != NULL, "non-object arguments: a result");
    json_decref(tr);
    // a long non-ASCII tool name (error messages that cut it must stay valid UTF-8)
    char longname[1300] = "{\"name\": \"";
    for (int i = 0; i < 300; i++) strcat(longname, "\u00e9");
    strcat(longname, "\", \"arguments\": {}}");
    tr = call1(s, SIMREQ_TOOL, T, 0, longname, NULL);
    json_decref(tr);
    // after the user ended an episode, another text turn misuses it: a reason, not a crash
    json_t *u = call1(s, SIMREQ_USER, T, 3, "{\"text\": \"thanks\"}", NULL);
    CHECK(u && json_is_true(json_object_get(u, "end")), "thanks ends");
    json_decref(u);
    char why[32];
    u = call1(s, SIMREQ_USER, T, 3, "{\"text\": \"what is your user id?\"}", why);
    if (!u) CHECK(why[0] != 0, "a reason");
    json_decref(u);
    check_reward(s, T, 3, -1.0, 0.0);

    // ---- 200 tasks in flight, one batch each way ----
    enum { NB = 200 };
    simserver_req_t reqs[NB];
    simserver_rep_t reps[NB];
    char *pl[NB];
    for (int i = 0; i < NB; i++) {
        curriculum_aspects_t ai;
        curriculum_aspects_at(1 + i % 100, &ai);
        pl[i] = gen_payload(names[i % n_envs], (uint64_t)i, &ai);
        reqs[i] = (simserver_req_t){SIMREQ_TASK_GEN, 0xabc0000000ull + (uint64_t)i * 0x9e3779b9ull, -1, pl[i]};
    }
    REQUIRE(simserver_handle(s, reqs, NB, reps) == 0, "%s", err_msg());
    int n_ok = 0;
    for (int i = 0; i < NB; i++) {
        n_ok += reps[i].status == 0;
        free(reps[i].payload);
        free(pl[i]);
        reqs[i].kind = SIMREQ_REWARD;
        reqs[i].episode = i % 3;
        reqs[i].payload = "{}";
    }
    sent[SIMREQ_TASK_GEN] += NB;
    failed[SIMREQ_TASK_GEN] += (uint64_t)(NB - n_ok);
    CHECK(n_ok == NB, "%d of %d tasks generated", n_ok, NB);
    REQUIRE(simserver_handle(s, reqs, NB, reps) == 0, "%s", err_msg());
    n_ok = 0;
    for (int i = 0; i < NB; i++) {
        json_t *j = reps[i].payload ? json_loads(reps[i].payload, 0, NULL) : NULL;
        n_ok += reps[i].status == 0 && json_number_value(json_object_get(j, "reward")) == -1.0;
        failed[SIMREQ_REWARD] += reps[i].status != 0;
        json_decref(j);
        free(reps[i].payload);
        reqs[i].kind = SIMREQ_DROP;
    }
    sent[SIMREQ_REWARD] += NB;
    CHECK(n_ok == NB, "%d of %d do-nothing rewards are -1", n_ok, NB);
    REQUIRE(simserver_handle(s, reqs, NB, reps) == 0, "%s", err_msg());
    for (int i = 0; i < NB; i++) {
        CHECK(reps[i].status == 0, "drop %d", i);
        failed[SIMREQ_DROP] += reps[i].status != 0;
        free(reps[i].payload);
    }
    sent[SIMREQ_DROP] += NB;
    // stats: what this test sent and saw fail
    simserver_stats_t st;
    simserver_stats(s, &st);
    for (int k = 0; k < SIMREQ_N_KINDS; k++)
        CHECK(st.n_requests[k] == sent[k] && st.n_failed[k] == failed[k], "stats %s: %llu/%llu requests, %llu/%llu failed",
              simreq_kind_name(k), (unsigned long long)st.n_requests[k], (unsigned long long)sent[k],
              (unsigned long long)st.n_failed[k], (unsigned long long)failed[k]);
    CHECK(st.seconds > 0, "seconds");
    printf("test_simserver: %d envs, %d tasks replayed, %llu requests\n", n_envs, n_tasks,
           (unsigned long long)(st.n_requests[0] + st.n_requests[1] + st.n_requests[2] + st.n_requests[3] + st.n_requests[4]));
    free(good);
    free(asp);
    free(names);
    simserver_free(s);
    return test_exit("test_simserver");
}
