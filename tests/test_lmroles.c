// sim/roles on a tiny random-weight, full-vocabulary Qwen3 (made by `trustee init-model`, path in
// argv[1]): 500 task-generator and 500 judge outputs, batched through the engine at temperature 1
// with various seeds and short budgets, are all valid JSON of their schema at the FIRST attempt
// (checked here again with jansson + jsonschema_validate + the expected-call names); the tool
// simulator answers invalid arguments in C and repeated calls from the memo; the retry / abort
// path counts its reason codes.
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "model/engine.h"
#include "sim/curriculum.h"
#include "sim/jsonschema.h"
#include "sim/memo.h"
#include "sim/roles.h"
#include "test.h"

static const char *TOOLS[2] = {
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Current weather of a city\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"city\"},"
    "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"],\"description\":\"unit\"}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"book_flight\",\"description\":\"Books a flight\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"origin\":{\"type\":\"string\",\"description\":\"from\"},"
    "\"dest\":{\"type\":\"string\",\"description\":\"to\"},\"seats\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9,"
    "\"description\":\"n\"}},\"required\":[\"origin\",\"dest\"]}}}]",
    "[{\"type\":\"function\",\"function\":{\"name\":\"send_email\",\"description\":\"Sends an email\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"to\":{\"type\":\"string\",\"description\":\"address\"},"
    "\"body\":{\"type\":\"string\",\"description\":\"text\"}},\"required\":[\"to\",\"body\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"list_files\",\"description\":\"Lists files\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"dir\":{\"type\":\"string\",\"description\":\"path\"}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_balance\",\"description\":\"Account balance\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"account\":{\"type\":\"string\",\"description\":\"id\"}},"
    "\"required\":[\"account\"]}}}]",
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// independent check of a task-generator output: schema + names from the tool set
static int task_ok(const json_t *out, const json_t *schema, const json_t *tools) {
    char why[256];
    if (jsonschema_validate(schema, out, 0, "task", why, sizeof why) != 1) return 0;
    const json_t *calls = json_object_get(out, "expected_calls");
    if (!json_is_array(calls) || json_array_size(calls) < 1) return 0;
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const char *nm = json_string_value(json_object_get(json_array_get(calls, i), "name"));
        int found = 0;
        for (size_t t = 0; t < json_array_size(tools); t++)
            found |= nm && !strcmp(nm, json_string_value(json_object_get(json_object_get(json_array_get(tools, t), "function"), "name")));
        if (!found || !json_is_object(json_object_get(json_array_get(calls, i), "arguments"))) return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: test_lmroles MODEL_DIR");
    qwen3_t m;
    REQUIRE(qwen3_load(&m, argv[1], DEVICE_CPU) == 0, "%s", err_msg());
    tokenizer_t *tok = tokenizer_load_dir(argv[1], 1);
    REQUIRE(tok, "%s", err_msg());
    const int B = 50, max_seq_len = 1024;
    engine_opts_t eo = {B, 4096, max_seq_len, 16, 0, NULL, NULL};
    engine_t *e = engine_new(&m, &eo);
    REQUIRE(e, "%s", err_msg());
    roles_t r;
    REQUIRE(roles_init(&r, e, tok, m.cfg.vocab_size, max_seq_len) == 0, "%s", err_msg());
    json_t *tools[2];
    for (int i = 0; i < 2; i++) tools[i] = json_loads(TOOLS[i], 0, NULL);

    // ---- 500 task-generator + 500 judge outputs, first attempt ----
    double t0 = now();
    role_req_t *reqs = calloc((size_t)B, sizeof *reqs);
    int n_valid = 0, n_total = 0, n_first = 0;
    long tokens = 0;
    for (int batch = 0; batch < 20; batch++) {
        int judge = batch % 2;
        r.sampling.seed = 1000 + (uint64_t)batch;
        for (int i = 0; i < B; i++) {
            int k = batch * B + i;
            role_req_t *q = &reqs[i];
            if (!judge) {
                curriculum_aspects_t a;
                curriculum_aspects_at(1 + (k * 7) % 100, &a);
                json_t *aj = curriculum_aspects_json(&a);
                r.max_tokens[ROLE_TASK_GEN] = 96 + (k * 13) % 33; // 96..128
                CHECK(roles_prepare_task_gen(&r, q, tools[k % 2], aj, a.expected_calls) == 0, "%s", err_msg());
                json_decref(aj);
            } else {
                json_t *calls = json_loads("[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}]", 0, NULL);
                json_t *crit = json_pack("[s,s]", "intent_satisfied", "correct_tools");
                r.max_tokens[ROLE_JUDGE] = 32 + (k * 11) % 33; // 32..64
                CHECK(roles_prepare_judge(&r, q, "user: weather in Oslo?\nassistant: <tool_call>...", "know the weather in Oslo",
                                          calls, crit) == 0, "%s", err_msg());
                json_decref(calls);
                json_decref(crit);
            }
        }
        CHECK(roles_run(&r, reqs, B) == 0, "roles_run: %s", err_msg());
        for (int i = 0; i < B; i++) {
            role_req_t *q = &reqs[i];
            int k = batch * B + i;
            n_total++;
            n_first += q->first_ok;
            int ok = q->status == ROLE_OK && q->first_ok && q->out &&
                     (judge ? jsonschema_validate(q->schema, q->out, 0, "judge", q->why, sizeof q->why) == 1 &&
                                  json_is_integer(json_object_get(q->out, "score"))
                            : task_ok(q->out, q->schema, tools[k % 2]));
            CHECK(ok, "%s %d: status %s after %d attempts (%s)", judge ? "judge" : "task_gen", k,
                  role_abort_name(q->status), q->attempts, q->why);
            if (ok) n_valid++, tokens += q->n_tokens;
            if (k == 0 || k == B) {
                char *s = json_dumps(q->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
                printf("example %s (%d tokens): %.300s\n", judge ? "judge" : "task_gen", q->n_tokens, s ? s : "");
                free(s);
            }
            role_req_free(q);
        }
    }
    double dt = now() - t0;
    gram_stats_t tot = {0};
    for (int i = 0; i < r.n_grams; i++) {
        gram_stats_t s;
        gram_get_stats(r.grams[i], &s);
        tot.n_states += s.n_states, tot.precompute_s += s.precompute_s;
        tot.n_masks += s.n_masks, tot.mask_s += s.mask_s, tot.n_forced += s.n_forced;
    }
    printf("lmroles: %d/%d outputs valid JSON of their schema at the first attempt (%d first-attempt ok), "
           "%.1f tokens per output, %.1f s\n", n_valid, n_total, n_first, n_valid ? (double)tokens / n_valid : 0.0, dt);
    printf("lmroles: masking %.1f us per sampled token (state advance + lookup + apply; %llu tokens, %llu forced), "
           "precompute %.2f ms per state (%llu states, %d grammars)\n",
           1e6 * tot.mask_s / (double)(tot.n_masks ? tot.n_masks : 1), (unsigned long long)tot.n_masks,
           (unsigned long long)tot.n_forced, 1e3 * tot.precompute_s / (double)(tot.n_states ? tot.n_states : 1),
           (unsigned long long)tot.n_states, r.n_grams);
    CHECK(n_valid == 1000, "only %d of 1000 valid at the first attempt", n_valid);
    CHECK(r.n_first_ok[ROLE_TASK_GEN] == 500 && r.n_first_ok[ROLE_JUDGE] == 500, "counters: %llu %llu",
          (unsigned long long)r.n_first_ok[ROLE_TASK_GEN], (unsigned long long)r.n_first_ok[ROLE_JUDGE]);

    // ---- tool simulator: C validation of arguments, memo ----
    memo_t memo;
    REQUIRE(memo_init(&memo) == 0, "%s", err_msg());
    const char *bad_args[] = {"{\"city\":3}", "{}", "{\"city\":\"Oslo\",\"unit\":\"k\"}", "{\"city\":\"Oslo\",\"zip\":1}"};
    for (int i = 0; i < 4; i++) {
        json_t *a = json_loads(bad_args[i], 0, NULL);
        char *out = NULL;
        role_abort_t st;
        uint64_t before = r.n_attempts[ROLE_TOOL_SIM];
        CHECK(roles_tool_call(&r, &memo, 7, tools[0], "weather", "", "get_weather", a, &out, &st) == 0, "%s", err_msg());
        json_t *o = out ? json_loads(out, 0, NULL) : NULL;
        CHECK(o && json_is_string(json_object_get(o, "error")), "bad args %s: expected an error object, got %s", bad_args[i], out);
        CHECK(r.n_attempts[ROLE_TOOL_SIM] == before, "bad args %s reached the LM", bad_args[i]);
        if (i == 0) printf("invalid call -> %s\n", out);
        json_decref(o);
        json_decref(a);
        free(out);
    }
    {
        char *out = NULL;
        role_abort_t st;
        json_t *a = json_loads("{}", 0, NULL);
        CHECK(roles_tool_call(&r, &memo, 7, tools[0], "", "", "no_such_tool", a, &out, &st) == 0 && out && strstr(out, "unknown tool"),
              "unknown tool: %s", out);
        json_decref(a);
        free(out);
    }
    CHECK(r.n_invalid_args == 5, "invalid-argument count %llu, expected 5", (unsigned long long)r.n_invalid_args);
    json_t *a1 = json_loads("{\"city\":\"Oslo\",\"unit\":\"c\"}", 0, NULL);
    json_t *a2 = json_loads("{ \"unit\" : \"c\",  \"city\":\"Oslo\" }", 0, NULL);
    char *o1 = NULL, *o2 = NULL, *o3 = NULL;
    role_abort_t st1, st2, st3;
    uint64_t lm_before = r.n_attempts[ROLE_TOOL_SIM];
    CHECK(roles_tool_call(&r, &memo, 7, tools[0], "weather", "", "get_weather", a1, &o1, &st1) == 0, "%s", err_msg());
    CHECK(st1 == ROLE_OK && o1 && json_is_object(json_loads(o1, 0, NULL)), "tool sim: %s %s", role_abort_name(st1), o1);
    CHECK(roles_tool_call(&r, &memo, 7, tools[0], "weather", "", "get_weather", a2, &o2, &st2) == 0, "%s", err_msg());
    CHECK(o1 && o2 && strcmp(o1, o2) == 0, "memo: reordered arguments gave a different output");
    CHECK(r.n_memo_hits == 1 && r.n_attempts[ROLE_TOOL_SIM] == lm_before + 1, "memo hits %llu, LM attempts %llu",
          (unsigned long long)r.n_memo_hits, (unsigned long long)(r.n_attempts[ROLE_TOOL_SIM] - lm_before));
    CHECK(roles_tool_call(&r, &memo, 8, tools[0], "weather", "", "get_weather", a1, &o3, &st3) == 0, "%s", err_msg());
    CHECK(r.n_memo_hits == 1, "another task must not hit the memo");
    printf("tool sim: %s (memo hits %llu)\n", o1 ? o1 : "", (unsigned long long)r.n_memo_hits);
    free(o1), free(o2), free(o3);
    json_decref(a1), json_decref(a2);
    memo_free(&memo);

    // ---- retry / abort: a budget too small to ever close; a validator stricter than the grammar ----
    r.max_tokens[ROLE_JUDGE] = 3;
    role_req_t q;
    json_t *crit = json_pack("[s]", "intent_satisfied");
    CHECK(roles_prepare_judge(&r, &q, "t", "i", NULL, crit) == 0, "%s", err_msg());
    CHECK(roles_run(&r, &q, 1) == 0, "%s", err_msg());
    CHECK(q.status == ROLE_ABORT_BUDGET_EXHAUSTED && r.n_aborts[ROLE_JUDGE][ROLE_ABORT_BUDGET_EXHAUSTED] == 1,
          "budget: status %s, count %llu", role_abort_name(q.status),
          (unsigned long long)r.n_aborts[ROLE_JUDGE][ROLE_ABORT_BUDGET_EXHAUSTED]);
    printf("abort: %s (%s)\n", role_abort_name(q.status), q.why);
    role_req_free(&q);
    json_decref(crit);
    // a schema whose minLength the grammar does not enforce: every attempt fails validation
    CHECK(roles_prepare_user_sim(&r, &q, "p", "i", NULL, "") == 0, "%s", err_msg());
    json_object_set_new(json_object_get(json_object_get(q.schema, "properties"), "message"), "minLength", json_integer(300));
    q.max_tokens = 8;
    uint64_t att = r.n_attempts[ROLE_USER_SIM];
    CHECK(roles_run(&r, &q, 1) == 0, "%s", err_msg());
    CHECK(q.status == ROLE_ABORT_SCHEMA_INVALID && q.attempts == 1 + r.max_retries &&
          r.n_attempts[ROLE_USER_SIM] == att + 3 && r.n_aborts[ROLE_USER_SIM][ROLE_ABORT_SCHEMA_INVALID] == 1,
          "retries: status %s after %d attempts", role_abort_name(q.status), q.attempts);
    printf("abort after %d attempts: %s (%s)\n", q.attempts, role_abort_name(q.status), q.why);
    role_req_free(&q);

    free(reqs);
    for (int i = 0; i < 2; i++) json_decref(tools[i]);
    roles_free(&r);
    engine_free(e);
    tokenizer_free(tok);
    qwen3_free(&m);
    return test_exit("test_lmroles");
}
