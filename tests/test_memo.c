// sim/memo: canonical JSON on hand-written cases, hits for calls that differ only in key order,
// whitespace or number spelling, misses for different values / tools / tasks, counts, first
// writer wins, drop_task, growth, and concurrent use. (tests/memo_canon.sh checks the canonical
// form against Python's json module on random values.)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "sim/memo.h"
#include "test.h"

static void check_canon(const char *in, const char *want) {
    json_error_t e;
    json_t *j = json_loads(in, JSON_DECODE_ANY, &e);
    char *got = j ? memo_canonical_json(j) : NULL;
    CHECK(got && !strcmp(got, want), "canonical(%s) = %s, want %s", in, got ? got : err_msg(), want);
    free(got);
    json_decref(j);
}

static memo_t g_memo;
static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 2000; i++) {
        char args[64], out[64], *got = NULL;
        snprintf(args, sizeof args, "{\"i\": %d}", i % 300);
        snprintf(out, sizeof out, "{\"v\": %d}", i % 300);
        int rc = memo_get_text(&g_memo, 1, "t", args, &got);
        if (rc == 0) memo_put_text(&g_memo, 1, "t", args, out);
        else if (rc != 1 || strcmp(got, out)) {
            CHECK(0, "thread %ld: %s -> %s", id, args, got ? got : "(error)");
            free(got);
            return NULL;
        }
        free(got);
    }
    return NULL;
}

int main(void) {
    // canonical form, worked out by hand
    check_canon("{\"b\": 1.0, \"a\": [1e0, 2.5, -0.0, \"x y\"], \"c\": {\"z\": null, \"y\": true}}",
                "{\"a\":[1,2.5,0,\"x y\"],\"b\":1,\"c\":{\"y\":true,\"z\":null}}");
    check_canon("10e-1", "1");
    check_canon("-3.000", "-3");
    check_canon("0.1", "0.1");
    check_canon("1e-7", "1e-07");
    check_canon("123456789.125", "123456789.125");
    check_canon("1e300", "1e+300");
    check_canon("9007199254740993", "9007199254740993"); // beyond 2^53, not a double: its digits
    check_canon("[1152921504606846976, 1.152921504606847e18]", "[1.152921504606847e+18,1.152921504606847e+18]"); // 2^60
    check_canon("\"a\\u00e9\\n\\\"\\u0001\"", "\"a\xc3\xa9\\n\\\"\\u0001\""); // UTF-8 raw, controls escaped
    check_canon("{\"B\":1,\"a\":2,\"_\":3,\"\xc3\xa9\":4}", "{\"B\":1,\"_\":3,\"a\":2,\"\xc3\xa9\":4}"); // byte order
    check_canon("[ ]", "[]");
    check_canon("{ }", "{}");

    memo_t m;
    REQUIRE(memo_init(&m) == 0, "init: %s", err_msg());
    char *out = NULL;
    CHECK(memo_get_text(&m, 7, "get_weather", "{\"city\": \"Paris\", \"days\": 3}", &out) == 0 && !out, "first get misses");
    CHECK(memo_put_text(&m, 7, "get_weather", "{\"city\": \"Paris\", \"days\": 3}", "{\"temp_c\": 18}") == 1, "put");
    // equal calls: key order, whitespace, number spelling
    const char *equal[] = {"{\"city\":\"Paris\",\"days\":3}", "{\"days\": 3, \"city\": \"Paris\"}",
                           "{\n  \"days\" : 3.0 ,\n\t\"city\":\"Paris\"\n}", "{\"days\":3e0,\"city\":\"Paris\"}",
                           "{\"days\":30e-1,\"city\":\"Par\\u0069s\"}"};
    for (int i = 0; i < 5; i++) {
        int rc = memo_get_text(&m, 7, "get_weather", equal[i], &out);
        CHECK(rc == 1 && out && !strcmp(out, "{\"temp_c\": 18}"), "equal call %d (%s) missed", i, equal[i]);
        free(out);
    }
    // different: values, string case/space, types, extra keys, another tool, another task
    const char *diff[] = {"{\"city\":\"paris\",\"days\":3}", "{\"city\":\"Paris \",\"days\":3}", "{\"city\":\"Paris\",\"days\":4}",
                          "{\"city\":\"Paris\",\"days\":\"3\"}", "{\"city\":\"Paris\",\"days\":3,\"units\":\"metric\"}",
                          "{\"city\":\"Paris\"}", "{\"city\":\"Paris\",\"days\":3.5}"};
    for (int i = 0; i < 7; i++) {
        int rc = memo_get_text(&m, 7, "get_weather", diff[i], &out);
        CHECK(rc == 0 && !out, "different call %d (%s) hit", i, diff[i]);
    }
    CHECK(memo_get_text(&m, 7, "get_forecast", equal[0], &out) == 0, "another tool hit");
    CHECK(memo_get_text(&m, 8, "get_weather", equal[0], &out) == 0, "another task hit");
    printf("memo: %llu hits, %llu misses, %zu entries\n", (unsigned long long)m.hits, (unsigned long long)m.misses, m.n_entries);
    CHECK(m.hits == 5 && m.misses == 1 + 7 + 2 && m.n_entries == 1, "counts: %llu hits %llu misses", (unsigned long long)m.hits,
          (unsigned long long)m.misses);
    // first writer wins
    CHECK(memo_put_text(&m, 7, "get_weather", equal[1], "{\"temp_c\": 99}") == 0, "second put must keep the first");
    CHECK(memo_get_text(&m, 7, "get_weather", equal[2], &out) == 1 && !strcmp(out, "{\"temp_c\": 18}"), "first answer kept");
    free(out);
    // NULL / {} arguments are the same call; parse errors are errors
    CHECK(memo_put_text(&m, 7, "list_tasks", NULL, "[]") == 1 && memo_get_text(&m, 7, "list_tasks", " { } ", &out) == 1, "{} == no args");
    free(out);
    CHECK(memo_get_text(&m, 7, "x", "{\"a\": }", &out) == -1 && strstr(err_msg(), "line 1"), "bad JSON: %s", err_msg());
    // growth: many tasks and calls, all found with the right output, then dropped per task
    for (int t = 0; t < 20; t++)
        for (int i = 0; i < 500; i++) {
            char a[64], o[64];
            snprintf(a, sizeof a, "{\"q\":\"item %d\",\"n\":%d}", i, t);
            snprintf(o, sizeof o, "{\"r\":%d}", t * 1000 + i);
            memo_put_text(&m, 100 + t, "search", a, o);
        }
    int wrong = 0;
    for (int t = 0; t < 20; t++)
        for (int i = 0; i < 500; i++) {
            char a[64], o[64];
            snprintf(a, sizeof a, "{\"n\":%d.0,\"q\":\"item %d\"}", t, i);
            snprintf(o, sizeof o, "{\"r\":%d}", t * 1000 + i);
            wrong += memo_get_text(&m, 100 + t, "search", a, &out) != 1 || strcmp(out, o);
            free(out);
        }
    CHECK(wrong == 0, "%d of 10000 stored calls not found", wrong);
    CHECK(m.n_entries == 10002 && m.n_buckets >= 10002, "entries %zu buckets %zu", m.n_entries, m.n_buckets);
    CHECK(memo_drop_task(&m, 105) == 500 && m.n_entries == 9502, "drop task");
    CHECK(memo_get_text(&m, 105, "search", "{\"q\":\"item 1\",\"n\":5}", &out) == 0, "dropped task still hits");
    CHECK(memo_get_text(&m, 106, "search", "{\"q\":\"item 1\",\"n\":6}", &out) == 1, "other task lost");
    free(out);
    memo_free(&m);

    // concurrent get/put from 4 threads
    REQUIRE(memo_init(&g_memo) == 0, "init");
    pthread_t th[4];
    for (long i = 0; i < 4; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(g_memo.n_entries == 300 && g_memo.hits + g_memo.misses == 8000, "threads: %zu entries, %llu lookups", g_memo.n_entries,
          (unsigned long long)(g_memo.hits + g_memo.misses));
    memo_free(&g_memo);
    return test_exit("test_memo");
}
