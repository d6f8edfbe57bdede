// sim/server, LM backend, on a tiny random-weight Qwen3 made by `trustee init-model` (argv[1]):
// batch 1 = TASK_GEN of two LM tasks (+ one Lua task: one server serves both); batch 2 = TOOL (a
// valid call made from the tool's own schema, twice) + an invalid TOOL + USER + REWARD for each LM
// task, all run together; batch 3 = the valid TOOL again (the memo answers the same text). Every
// reply is status 0 with the documented shape, or status != 0 with a role reason name. Random
// weights under constrained decoding give schema-valid JSON, so the task_gen replies must be ok.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "sim/curriculum.h"
#include "sim/server.h"
#include "test.h"

static const char *ROLE_REASONS[] = {"schema_invalid", "bad_json", "empty", "budget_exhausted", "prompt_too_long", "engine"};

static int is_role_reason(const char *r) {
    for (size_t i = 0; i < sizeof ROLE_REASONS / sizeof *ROLE_REASONS; i++)
        if (!strcmp(r, ROLE_REASONS[i])) return 1;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static char *pack(json_t *v) {
    char *t = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return t;
}

// arguments that satisfy a tool's parameter schema: every required property, a value of its type
static json_t *make_args(const json_t *params) {
    json_t *args = json_object();
    const json_t *props = json_object_get(params, "properties"), *req = json_object_get(params, "required"), *k;
    size_t i;
    json_array_foreach(req, i, k) {
        const json_t *p = json_object_get(props, json_string_value(k));
        const char *type = json_string_value(json_object_get(p, "type"));
        const json_t *en = json_object_get(p, "enum");
        json_t *v;
        if (json_is_array(en) && json_array_size(en)) v = json_deep_copy(json_array_get(en, 0));
        else if (!strcmp(type, "string")) v = json_string("abc");
        else if (!strcmp(type, "integer")) v = json_integer(json_is_number(json_object_get(p, "minimum")) ? (json_int_t)json_number_value(json_object_get(p, "minimum")) + 1 : 1);
        else if (!strcmp(type, "number")) v = json_real(json_is_number(json_object_get(p, "minimum")) ? json_number_value(json_object_get(p, "minimum")) : 1.0);
        else if (!strcmp(type, "boolean")) v = json_true();
        else if (!strcmp(type, "array")) v = json_array();
        else if (!strcmp(type, "object")) v = json_object();
        else v = json_null();
        json_object_set_new(args, json_string_value(k), v);
    }
    return args;
}

// checks a reply: ok -> parsed payload, else NULL after checking the reason is a role reason
static json_t *reply(const simserver_rep_t *r, const char *what) {
    if (r->status) {
        CHECK(r->payload == NULL && is_role_reason(r->reason), "%s: failure reason '%s'", what, r->reason);
        printf("  %s: status %d reason %s\n", what, r->status, r->reason);
        return NULL;
    }
    json_t *j = json_loads(r->payload ? r->payload : "", 0, NULL);
    CHECK(json_is_object(j), "%s: payload %s", what, r->payload ? r->payload : "(null)");
    return j;
}

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: test_simserver_lm MODEL_DIR");
    double t0 = now();
    simserver_opts_t o = {argv[1], 7, 1.0f, 2048, 16};
    simserver_t *s = simserver_new_lm(&o);
    REQUIRE(s, "%s", err_msg());
    printf("load: %.2f s\n", now() - t0);

    // ---- batch 1: two LM tasks + one Lua task ----
    const int Ds[2] = {1, 60};
    curriculum_aspects_t as[2];
    char *pl[3];
    simserver_req_t q[16];
    simserver_rep_t r[16];
    for (int i = 0; i < 2; i++) {
        curriculum_aspects_at(Ds[i], &as[i]);
        char seed[8];
        snprintf(seed, sizeof seed, "%d", 40 + i);
        pl[i] = pack(json_pack("{s:s, s:s, s:o}", "env", "lm", "seed", seed, "aspects", curriculum_aspects_json(&as[i])));
        q[i] = (simserver_req_t){SIMREQ_TASK_GEN, (uint64_t)(100 + i), -1, pl[i]};
    }
    pl[2] = pack(json_pack("{s:s, s:s, s:o}", "env", "airline", "seed", "3", "aspects", curriculum_aspects_json(&as[0])));
    q[2] = (simserver_req_t){SIMREQ_TASK_GEN, 102, -1, pl[2]};
    t0 = now();
    REQUIRE(simserver_handle(s, q, 3, r) == 0, "%s", err_msg());
    printf("batch 1 (task_gen x2 + lua): %.2f s\n", now() - t0);
    json_t *task[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        // random weights + constrained decoding: the task generator's output is schema-valid
        CHECK(r[i].status == 0, "task_gen %d failed: %s", i, r[i].reason);
        task[i] = reply(&r[i], "task_gen");
        json_t *g = task[i];
        if (!g) continue;
        const json_t *tools = json_object_get(g, "tools"), *meta = json_object_get(g, "meta");
        CHECK(json_is_string(json_object_get(g, "system")) && json_string_length(json_object_get(g, "system")) > 0, "system");
        CHECK(json_is_string(json_object_get(g, "query")), "query");
        // tools: as many as the aspects ask for, each an OpenAI function schema, distinct names
        CHECK(json_is_array(tools) && (int)json_array_size(tools) == as[i].tools_available, "%zu tools, want %d",
              json_array_size(tools), as[i].tools_available);
        for (size_t k = 0; k < json_array_size(tools); k++) {
            const json_t *f = json_object_get(json_array_get(tools, k), "function");
            CHECK(json_is_string(json_object_get(f, "name")) && json_is_object(json_object_get(f, "parameters")), "tool %zu", k);
            for (size_t l = 0; l < k; l++)
                CHECK(strcmp(json_string_value(json_object_get(f, "name")),
                             json_string_value(json_object_get(json_object_get(json_array_get(tools, l), "function"), "name"))),
                      "duplicate tool");
        }
        CHECK(!strcmp(json_string_value(json_object_get(meta, "env")), "lm"), "meta.env");
        const json_t *calls = json_object_get(meta, "expected_calls");
        CHECK(json_is_array(calls) && json_array_size(calls) >= 1 && json_array_size(calls) <= 3, "expected_calls");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const char *nm = json_string_value(json_object_get(json_array_get(calls, k), "name"));
            int found = 0;
            for (size_t l = 0; l < json_array_size(tools); l++)
                found |= nm && !strcmp(nm, json_string_value(json_object_get(json_object_get(json_array_get(tools, l), "function"), "name")));
            CHECK(found, "expected call '%s' is one of the task's tools", nm ? nm : "(null)");
        }
        CHECK(json_is_string(json_object_get(meta, "persona")) && json_is_string(json_object_get(meta, "intent")) &&
              json_is_array(json_object_get(meta, "hidden_user_facts")), "meta fields");
        CHECK(json_integer_value(json_object_get(json_object_get(meta, "aspects"), "difficulty")) == Ds[i], "meta.aspects");
        free(r[i].payload);
    }
    // system text follows the system_prompt aspect: detailed (D 1) is longer than moderate (D 60)
    if (task[0] && task[1])
        CHECK(json_string_length(json_object_get(task[0], "system")) > json_string_length(json_object_get(task[1], "system")),
              "detailed system prompt longer than moderate");
    json_t *lua = reply(&r[2], "lua task_gen");
    CHECK(r[2].status == 0 && json_is_string(json_object_get(lua, "query")), "Lua task on the LM server");
    json_decref(lua);
    free(r[2].payload);

    // ---- batch 2: TOOL (valid x2, invalid) + USER + REWARD per LM task, one batch ----
    int n = 0;
    char *pls[16];
    int kinds[16];
    for (int i = 0; i < 2; i++) {
        if (!task[i]) continue;
        const json_t *f = json_object_get(json_array_get(json_object_get(task[i], "tools"), 0), "function");
        json_t *args = make_args(json_object_get(f, "parameters"));
        char *tool = pack(json_pack("{s:O, s:o, s:s}", "name", json_object_get(f, "name"), "arguments", args, "history",
                                    "user: hello\nassistant: (calls the tool)"));
        for (int rep = 0; rep < 2; rep++) {
            pls[n] = strdup(tool);
            kinds[n] = SIMREQ_TOOL;
            q[n] = (simserver_req_t){SIMREQ_TOOL, (uint64_t)(100 + i), rep, pls[n]};
            n++;
        }
        free(tool);
        pls[n] = strdup("{\"name\": \"no_such_tool_xyz\", \"arguments\": {}, \"history\": \"\"}");
        kinds[n] = SIMREQ_TOOL;
        q[n] = (simserver_req_t){SIMREQ_TOOL, (uint64_t)(100 + i), 0, pls[n]};
        n++;
        pls[n] = strdup("{\"text\": \"Could you tell me more about what you need?\", \"history\": \"user: hi\"}");
        kinds[n] = SIMREQ_USER;
        q[n] = (simserver_req_t){SIMREQ_USER, (uint64_t)(100 + i), 0, pls[n]};
        n++;
        pls[n] = strdup("{\"history\": \"user: hi\\nassistant: done\", \"truncated\": false}");
        kinds[n] = SIMREQ_REWARD;
        q[n] = (simserver_req_t){SIMREQ_REWARD, (uint64_t)(100 + i), 1, pls[n]};
        n++;
    }
    t0 = now();
    REQUIRE(simserver_handle(s, q, n, r) == 0, "%s", err_msg());
    printf("batch 2 (%d requests): %.2f s\n", n, now() - t0);
    char *first_result[2] = {NULL, NULL};
    for (int j = 0; j < n; j++) {
        int ti = (int)(q[j].task_id - 100);
        json_t *p = reply(&r[j], simreq_kind_name(kinds[j]));
        if (p && kinds[j] == SIMREQ_TOOL) {
            const char *res = json_string_value(json_object_get(p, "result"));
            json_t *rv = res ? json_loads(res, 0, NULL) : NULL;
            CHECK(json_is_object(rv), "tool result is a JSON object text: %s", res ? res : "(null)");
            if (strstr(pls[j], "no_such_tool_xyz"))
                CHECK(json_is_string(json_object_get(rv, "error")), "unknown tool -> error answered in C");
            else if (!first_result[ti]) {
                first_result[ti] = strdup(res);
                printf("  task %d: %s -> %.200s\n", ti, pls[j], res);
            }
            else // the twin call of this batch: the memo's first answer
                CHECK(!strcmp(first_result[ti], res), "same TOOL twice in a batch: '%s' vs '%s'", first_result[ti], res);
            json_decref(rv);
        } else if (p && kinds[j] == SIMREQ_USER) {
            const json_t *rp = json_object_get(p, "reply"), *end = json_object_get(p, "end");
            CHECK(json_is_boolean(end) && (json_is_true(end) ? json_is_null(rp) : json_is_string(rp)), "user reply shape: %s", r[j].payload);
        } else if (p && kinds[j] == SIMREQ_REWARD) {
            double rw = json_number_value(json_object_get(p, "reward"));
            json_int_t sc = json_integer_value(json_object_get(p, "score"));
            const json_t *d = json_object_get(p, "details");
            CHECK(json_is_number(json_object_get(p, "reward")) && (sc == -1 || sc == 0 || sc == 1) && rw == (double)sc,
                  "judge reward = score in {-1,0,1}: %s", r[j].payload);
            CHECK(json_is_string(json_object_get(d, "reasons")), "details.reasons");
            // judge_strictness criteria, in the curriculum's order
            const json_t *crit = json_object_get(d, "criteria");
            CHECK((int)json_array_size(crit) == as[ti].judge_strictness, "criteria count");
            for (int c = 0; c < (int)json_array_size(crit); c++)
                CHECK(!strcmp(json_string_value(json_array_get(crit, (size_t)c)), curriculum_criterion_name(c)), "criterion %d", c);
        }
        json_decref(p);
        free(r[j].payload);
    }

    // ---- batch 3: the same valid TOOL once more -> the memo's text; then DROP ----
    int m = 0;
    for (int j = 0; j < n; j++)
        if (kinds[j] == SIMREQ_TOOL && q[j].episode == 1) q[m++] = q[j];
    REQUIRE(simserver_handle(s, q, m, r) == 0, "%s", err_msg());
    for (int j = 0; j < m; j++) {
        int ti = (int)(q[j].task_id - 100);
        json_t *p = reply(&r[j], "tool again");
        const char *res = json_string_value(json_object_get(p, "result"));
        if (first_result[ti]) CHECK(res && !strcmp(res, first_result[ti]), "memo: '%s' vs '%s'", res ? res : "(null)", first_result[ti]);
        json_decref(p);
        free(r[j].payload);
    }
    // an unknown, long, non-ASCII tool name: the C-made error stays valid JSON text
    char longname[1300] = "{\"name\": \"";
    for (int i = 0; i < 300; i++) strcat(longname, "\u00e9");
    strcat(longname, "\", \"arguments\": {}}");
    q[0] = (simserver_req_t){SIMREQ_TOOL, 101, 0, longname};
    REQUIRE(simserver_handle(s, q, 1, r) == 0, "%s", err_msg());
    if (task[1]) {
        json_t *p = reply(&r[0], "long tool name");
        json_t *rv = json_loads(json_string_value(json_object_get(p, "result")) ? json_string_value(json_object_get(p, "result")) : "", 0, NULL);
        CHECK(json_is_string(json_object_get(rv, "error")), "long name: error result");
        json_decref(rv);
        json_decref(p);
    }
    free(r[0].payload);
    for (int i = 0; i < 3; i++) q[i] = (simserver_req_t){SIMREQ_DROP, (uint64_t)(100 + i), -1, "{}"};
    REQUIRE(simserver_handle(s, q, 3, r) == 0, "%s", err_msg());
    for (int i = 0; i < 3; i++) {
        int want = i == 2 ? 0 : (task[i] ? 0 : 1); // a failed task_gen left no task
        CHECK(r[i].status == want, "drop %d: status %d", i, r[i].status);
        free(r[i].payload);
    }
    q[0] = (simserver_req_t){SIMREQ_TOOL, 100, 0, "{\"name\": \"x\", \"arguments\": {}}"};
    REQUIRE(simserver_handle(s, q, 1, r) == 0, "%s", err_msg());
    CHECK(r[0].status != 0 && !strcmp(r[0].reason, "unknown_task"), "TOOL after DROP: %s", r[0].reason);
    free(r[0].payload);

    simserver_stats_t st;
    simserver_stats(s, &st);
    CHECK(st.n_requests[SIMREQ_TASK_GEN] == 3 && st.n_requests[SIMREQ_TOOL] == (uint64_t)(3 * (n / 5) + m + 2) &&
          st.n_requests[SIMREQ_DROP] == 3, "stats");
    printf("stats: task_gen %llu/%llu failed, tool %llu/%llu, user %llu/%llu, reward %llu/%llu, %.2f s\n",
           (unsigned long long)st.n_failed[0], (unsigned long long)st.n_requests[0], (unsigned long long)st.n_failed[1],
           (unsigned long long)st.n_requests[1], (unsigned long long)st.n_failed[2], (unsigned long long)st.n_requests[2],
           (unsigned long long)st.n_failed[3], (unsigned long long)st.n_requests[3], st.seconds);
    for (int i = 0; i < 2; i++) {
        json_decref(task[i]);
        free(first_result[i]);
    }
    for (int j = 0; j < n; j++) free(pls[j]);
    for (int i = 0; i < 3; i++) free(pl[i]);
    simserver_free(s);
    return test_exit("test_simserver_lm");
}
