// sim/copytask: the copy warm-up's transcripts, made from real oracle transcripts of every shipped
// environment. Checked: determinism, shape (a user message first, an assistant tool call last),
// every call names a tool of the environments and its arguments satisfy that tool's schema, every
// value the last call copies (a string with a digit, 4+ characters; any value of a schema
// transcript) occurs verbatim earlier in the same transcript, the windows' values are fresh (absent
// from every oracle transcript), both kinds in about the asked proportion, the digit redraw
// (shape kept, every digit drawn), the word redraw (pool words, capitals, codes and extensions kept)
// and fresh words (calls still valid, copied values still said earlier, values made of words new),
// and the errors.
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "sim/copytask.h"
#include "sim/jsonschema.h"
#include "sim/oracle.h"
#include "test.h"

static const json_t *tool_params(const json_t *oracle, const char *name) {
    for (size_t c = 0; c < json_array_size(oracle); c++) {
        const json_t *tools = json_object_get(json_array_get(oracle, c), "tools");
        for (size_t i = 0; i < json_array_size(tools); i++) {
            const json_t *f = json_object_get(json_array_get(tools, i), "function");
            if (!strcmp(json_string_value(json_object_get(f, "name")) ? json_string_value(json_object_get(f, "name")) : "", name))
                return json_object_get(f, "parameters");
        }
    }
    return NULL;
}

static int has_digit(const char *s) {
    for (; *s; s++)
        if (*s >= '0' && *s <= '9') return 1;
    return 0;
}

// the text of every message before the last one (contents; earlier calls' arguments)
static char *context_text(const json_t *msgs) {
    size_t cap = 1, n = json_array_size(msgs);
    for (size_t i = 0; i + 1 < n; i++) {
        char *d = json_dumps(json_array_get(msgs, i), 0);
        cap += strlen(d) + 1;
        free(d);
    }
    char *out = calloc(cap, 1);
    for (size_t i = 0; i + 1 < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        const char *c = json_string_value(json_object_get(m, "content"));
        if (c) strcat(out, c), strcat(out, "\n");
        json_t *calls = json_object_get(m, "tool_calls");
        if (calls) {
            char *d = json_dumps(calls, 0);
            strcat(out, d);
            free(d);
        }
    }
    return out;
}

// is v a member of an enum of any tool's parameter?
static int is_enum_member(const json_t *oracle, const char *v) {
    for (size_t c = 0; c < json_array_size(oracle); c++) {
        const json_t *tools = json_object_get(json_array_get(oracle, c), "tools");
        for (size_t i = 0; i < json_array_size(tools); i++) {
            const json_t *props = json_object_get(
                json_object_get(json_object_get(json_array_get(tools, i), "function"), "parameters"), "properties");
            const char *k;
            json_t *p;
            json_object_foreach((json_t *)props, k, p) {
                const json_t *en = json_object_get(p, "enum");
                for (size_t e = 0; e < json_array_size(en); e++)
                    if (json_is_string(json_array_get(en, e)) && !strcmp(json_string_value(json_array_get(en, e)), v)) return 1;
            }
        }
    }
    return 0;
}

// no digit, two or more runs of 3+ letters: "client_list.docx", "Dana Iyer"
static int compound(const char *s) {
    int runs = 0;
    for (size_t a = 0, b; s[a]; a = b > a ? b : a + 1) {
        for (b = a; (s[b] >= 'a' && s[b] <= 'z') || (s[b] >= 'A' && s[b] <= 'Z'); b++) {}
        runs += b - a >= 3;
    }
    return !has_digit(s) && runs >= 2;
}

// does the oracle set hold this string anywhere (as a whole JSON string or inside text)?
static int in_oracle(const char *oracle_dump, const char *v) { return strstr(oracle_dump, v) != NULL; }

int main(void) {
    const char **names = NULL;
    int n_envs = luaenv_list_embedded(&names);
    REQUIRE(n_envs >= 5, "shipped environments: %d", n_envs);
    json_t *oracle = luaenv_oracle_dataset(names, n_envs, 24, 777, 1, 60);
    REQUIRE(oracle, "oracle: %s", err_msg());
    char *oracle_dump = json_dumps(oracle, 0);
    const int N = 600;
    json_t *a = copytask_make(oracle, N, 0.5, 0, 0, 11), *b = copytask_make(oracle, N, 0.5, 0, 0, 11), *c = copytask_make(oracle, N, 0.5, 0, 0, 12);
    REQUIRE(a && b && c, "copytask_make: %s", err_msg());
    CHECK((int)json_array_size(a) == N, "%zu conversations, want %d", json_array_size(a), N);
    CHECK(json_equal(a, b), "same seed, different conversations");
    CHECK(!json_equal(a, c), "different seeds, same conversations");

    int n_schema = 0, n_window = 0, n_copied = 0, n_values = 0, n_fresh = 0, n_window_values = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *msgs = json_object_get(json_array_get(a, i), "messages");
        size_t nm = json_array_size(msgs);
        REQUIRE(nm >= 2, "conversation %zu: %zu messages", i, nm);
        const json_t *first = json_array_get(msgs, 0), *last = json_array_get(msgs, nm - 1);
        CHECK(!strcmp(json_string_value(json_object_get(first, "role")), "user"), "conversation %zu: starts with %s", i,
              json_string_value(json_object_get(first, "role")));
        CHECK(!strcmp(json_string_value(json_object_get(last, "role")), "assistant"), "conversation %zu: ends with %s", i,
              json_string_value(json_object_get(last, "role")));
        const json_t *calls = json_object_get(last, "tool_calls");
        REQUIRE(json_array_size(calls) >= 1, "conversation %zu: the last message has no tool call", i);
        // a schema transcript: exactly user + call, the user asks "Please <tool name in words>."
        const char *user = json_string_value(json_object_get(first, "content"));
        int schema = nm == 2 && user && strstr(user, ". Please ") != NULL;
        if ((schema && !n_schema) || (!schema && !n_window)) { // one of each kind, for the log
            char *d = json_dumps(msgs, JSON_INDENT(1));
            printf("a %s transcript:\n%s\n", schema ? "schema" : "window", d);
            free(d);
        }
        n_schema += schema, n_window += !schema;
        char *ctx = context_text(msgs);
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const json_t *f = json_object_get(json_array_get(calls, k), "function");
            const char *tool = json_string_value(json_object_get(f, "name"));
            const json_t *params = tool ? tool_params(oracle, tool) : NULL;
            CHECK(params, "conversation %zu: call of an unknown tool %s", i, tool ? tool : "(none)");
            if (!params) continue;
            const json_t *args = json_object_get(f, "arguments");
            char why[256] = "";
            CHECK(jsonschema_validate(params, args, JSONSCHEMA_STRICT, "arguments", why, sizeof why) == 1,
                  "conversation %zu: %s: %s", i, tool, why);
            const char *key;
            json_t *v;
            json_object_foreach((json_t *)args, key, v) {
                char *text = json_is_string(v) ? strdup(json_string_value(v)) : chat_json_dumps(v);
                int must = schema ? 1 : json_is_string(v) && strlen(text) >= 4 && has_digit(text);
                if (must) {
                    n_values++;
                    int copied = strstr(ctx, text) != NULL;
                    n_copied += copied;
                    CHECK(copied, "conversation %zu: %s=%s does not occur earlier:\n%s", i, key, text, ctx);
                    if (!schema && has_digit(text)) n_window_values++, n_fresh += !in_oracle(oracle_dump, text);
                }
                free(text);
            }
        }
        free(ctx);
    }
    printf("%d schema + %d window transcripts; %d/%d copied values occur earlier; %d/%d window values fresh\n", n_schema,
           n_window, n_copied, n_values, n_fresh, n_window_values);
    CHECK(n_schema > N * 4 / 10 && n_window > N * 4 / 10, "kinds: %d schema, %d window (p_window 0.5)", n_schema, n_window);
    CHECK(n_window_values > 100 && n_fresh >= n_window_values * 95 / 100, "fresh window values: %d of %d", n_fresh,
          n_window_values);

    // p_window = 0: schema transcripts only; 1: windows only (none has the schema's form)
    json_t *s0 = copytask_make(oracle, 50, 0.0, 0, 0, 3), *s1 = copytask_make(oracle, 50, 1.0, 0, 0, 3);
    REQUIRE(s0 && s1, "copytask_make: %s", err_msg());
    int only0 = 1;
    for (size_t i = 0; i < json_array_size(s0); i++)
        only0 &= json_array_size(json_object_get(json_array_get(s0, i), "messages")) == 2;
    CHECK(only0, "p_window 0: a transcript that is not user + call");

    // repeat transcripts (p_repeat 1): user + an assistant message without calls that says back the JSON
    // object the user gave, 3-6 values under keys "1".."k"; mixed with the other kinds in proportion
    json_t *rp = copytask_make(oracle, 200, 0.0, 1.0, 0, 4), *mix = copytask_make(oracle, 400, 0.3, 0.4, 0, 4);
    REQUIRE(rp && mix, "copytask_make: %s", err_msg());
    int n_rep_ok = 0, n_digit_items = 0, n_digit_fresh = 0;
    for (size_t i = 0; i < json_array_size(rp); i++) {
        const json_t *msgs = json_object_get(json_array_get(rp, i), "messages");
        const char *u = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
        const json_t *as = json_array_get(msgs, 1);
        const char *said = json_string_value(json_object_get(as, "content"));
        int ok = json_array_size(msgs) == 2 && u && said && !json_object_get(as, "tool_calls") && strlen(u) > strlen(said) &&
                 !strcmp(u + strlen(u) - strlen(said), said);
        json_t *arr = said ? json_loads(said, 0, NULL) : NULL;
        int items = (int)json_object_size(arr);
        ok &= items >= 3 && items <= 6;
        CHECK(ok, "repeat transcript %zu: user \"%s\", assistant \"%s\" (%d items)", i, u ? u : "", said ? said : "", items);
        n_rep_ok += ok;
        if (i == 0) printf("a repeat transcript: user \"%s\" -> assistant \"%s\"\n", u, said);
        for (int k = 0; k < items; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", k + 1);
            const char *t = json_string_value(json_object_get(arr, key));
            if (t && strlen(t) >= 4 && has_digit(t)) n_digit_items++, n_digit_fresh += !in_oracle(oracle_dump, t);
        }
        json_decref(arr);
    }
    printf("repeat: %d/%zu well formed; %d/%d values with digits absent from the oracle transcripts\n", n_rep_ok,
           json_array_size(rp), n_digit_fresh, n_digit_items);
    CHECK(n_digit_items > 200 && n_digit_fresh >= n_digit_items * 8 / 10, "fresh repeat values: %d of %d", n_digit_fresh,
          n_digit_items);
    int k_rep = 0, k_win = 0, k_sch = 0;
    for (size_t i = 0; i < json_array_size(mix); i++) {
        const json_t *msgs = json_object_get(json_array_get(mix, i), "messages");
        const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        const char *u = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
        if (!json_object_get(last, "tool_calls")) k_rep++;
        else if (json_array_size(msgs) == 2 && u && strstr(u, ". Please ")) k_sch++;
        else k_win++;
    }
    printf("p_window 0.3, p_repeat 0.4: %d window, %d repeat, %d schema of 400\n", k_win, k_rep, k_sch);
    CHECK(k_rep > 120 && k_rep < 200 && k_win > 80 && k_win < 160 && k_sch > 80 && k_sch < 160,
          "kinds: %d window, %d repeat, %d schema (0.3 / 0.4 / 0.3 of 400)", k_win, k_rep, k_sch);
    json_decref(rp);
    json_decref(mix);

    // the digit redraw: same length, non-digits kept, a run's first digit stays non-zero, all digits drawn
    const char *v = "CHK-1047 W0099/2024-06-01";
    uint64_t step = 0;
    int seen[10] = {0};
    for (int t = 0; t < 300; t++) {
        char *r = copytask_redraw_digits(v, 5, 9, &step);
        REQUIRE(r && strlen(r) == strlen(v), "redraw of %s: %s", v, r ? r : "(null)");
        for (size_t i = 0; v[i]; i++) {
            int dv = v[i] >= '0' && v[i] <= '9', dr = r[i] >= '0' && r[i] <= '9';
            CHECK(dv == dr && (dv || r[i] == v[i]), "redraw %s -> %s: position %zu", v, r, i);
            if (dr) seen[r[i] - '0']++;
            int run_start = dv && (i == 0 || !(v[i - 1] >= '0' && v[i - 1] <= '9'));
            if (run_start && v[i] != '0') CHECK(r[i] != '0', "redraw %s -> %s: run at %zu starts with 0", v, r, i);
        }
        free(r);
    }
    for (int d = 0; d < 10; d++) CHECK(seen[d] > 100, "digit %d drawn %d times in 300 redraws", d, seen[d]);

    // the word redraw: letter runs of 3+ (lower case or capitalized) from the pool, capitals kept,
    // all-caps codes, short runs, the final extension / domain and everything else kept
    {
        const char *pool[] = {"river", "stone", "maple"};
        struct { const char *in, *pattern; } cases[] = {
            {"client_list.docx", "w_w.docx"},   {"Dana Iyer", "W W"},  {"freya.mbeki73@postly.com", "w.w73@w.com"},
            {"CHK-1234", "CHK-1234"},           {"/Reports/q3", "/W/q3"}, {"ab-cd", "ab-cd"},
        };
        uint64_t ws = 0;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            char *r = copytask_redraw_words(cases[c].in, pool, 3, 7, 1, &ws);
            REQUIRE(r, "redraw_words: out of memory");
            // match r against the pattern: w = a pool word, W = a capitalized pool word, else literal
            const char *p = cases[c].pattern, *q = r;
            int ok = 1;
            for (; *p && ok; p++) {
                if (*p == 'w' || *p == 'W') {
                    int hit = 0;
                    for (int k = 0; k < 3 && !hit; k++) {
                        size_t l = strlen(pool[k]);
                        char cap[16];
                        strcpy(cap, pool[k]);
                        if (*p == 'W') cap[0] = (char)(cap[0] - 'a' + 'A');
                        if (!strncmp(q, cap, l)) q += l, hit = 1;
                    }
                    ok = hit;
                } else {
                    ok = *q++ == *p;
                }
            }
            ok &= *q == 0;
            CHECK(ok, "redraw_words %s -> %s, want the form %s", cases[c].in, r, cases[c].pattern);
            free(r);
        }
        char *same = copytask_redraw_words("client_list.docx", pool, 0, 7, 1, &ws);
        CHECK(same && !strcmp(same, "client_list.docx"), "redraw_words with an empty pool: %s", same ? same : "(null)");
        free(same);
    }

    // fresh words: every call still satisfies its tool's schema, every copied value (a string of 4+
    // characters) occurs earlier, and the copied values made of words are mostly new (absent from
    // the oracle transcripts; without fresh words they are the oracle's own). Counted: values with no
    // digit and two or more words of 3+ letters (a single word redrawn from the pool is, by
    // construction, a word the oracle used; an enum member is kept)
    {
        json_t *fw = copytask_make(oracle, 600, 0.5, 0.2, 1, 13), *nw = copytask_make(oracle, 600, 0.5, 0.2, 0, 13);
        REQUIRE(fw && nw, "copytask_make: %s", err_msg());
        int counts[2][2] = {{0, 0}, {0, 0}}; // [fresh_words][0: word values, 1: absent from the oracle]
        for (int set = 0; set < 2; set++) {
            const json_t *arr = set ? fw : nw;
            for (size_t i = 0; i < json_array_size(arr); i++) {
                const json_t *msgs = json_object_get(json_array_get(arr, i), "messages");
                const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
                const json_t *calls = json_object_get(last, "tool_calls");
                char *ctx = context_text(msgs);
                if (!calls) { // a repeat transcript: the values said back
                    json_t *obj = json_loads(json_string_value(json_object_get(last, "content")), 0, NULL);
                    const char *k;
                    json_t *x;
                    json_object_foreach(obj, k, x) {
                        const char *t = json_string_value(x);
                        if (t && compound(t) && !is_enum_member(oracle, t)) counts[set][0]++, counts[set][1] += !in_oracle(oracle_dump, t);
                    }
                    json_decref(obj);
                }
                for (size_t k = 0; k < json_array_size(calls); k++) {
                    const json_t *f = json_object_get(json_array_get(calls, k), "function");
                    const char *tool = json_string_value(json_object_get(f, "name"));
                    const json_t *params = tool ? tool_params(oracle, tool) : NULL, *args = json_object_get(f, "arguments");
                    char why[256] = "";
                    CHECK(params && jsonschema_validate(params, args, JSONSCHEMA_STRICT, "arguments", why, sizeof why) == 1,
                          "fresh words %d, conversation %zu: %s: %s", set, i, tool ? tool : "(none)", why);
                    const char *key;
                    json_t *v;
                    json_object_foreach((json_t *)args, key, v) {
                        const char *t = json_string_value(v);
                        if (!t || strlen(t) < 4) continue;
                        // (without fresh words a window may copy a value with no digit that was not said: the
                        // oracle knew it; with them such a window is dropped)
                        if (set) CHECK(strstr(ctx, t) != NULL, "fresh words, conversation %zu: %s=%s does not occur earlier", i, key, t);
                        if (compound(t) && !is_enum_member(oracle, t))
                            counts[set][0]++, counts[set][1] += !in_oracle(oracle_dump, t);
                    }
                }
                free(ctx);
            }
        }
        printf("values with words absent from the oracle transcripts: %d/%d with fresh words, %d/%d without\n",
               counts[1][1], counts[1][0], counts[0][1], counts[0][0]);
        CHECK(counts[1][0] > 100 && counts[1][1] >= counts[1][0] * 9 / 10, "fresh words: %d of %d values new", counts[1][1],
              counts[1][0]);
        CHECK(counts[0][1] <= counts[0][0] / 10, "without fresh words: %d of %d values new", counts[0][1], counts[0][0]);
        json_decref(fw);
        json_decref(nw);
    }

    // errors
    json_t *empty = json_array();
    CHECK(copytask_make(empty, 5, 0.5, 0, 0, 1) == NULL && strstr(err_msg(), "no oracle conversation"), "empty oracle: %s",
          err_msg());
    CHECK(copytask_make(oracle, 0, 0.5, 0, 0, 1) == NULL && strstr(err_msg(), "n: expected"), "n = 0: %s", err_msg());
    CHECK(copytask_make(oracle, 5, 1.5, 0, 0, 1) == NULL && strstr(err_msg(), "p_window"), "p_window 1.5: %s", err_msg());
    CHECK(copytask_make(oracle, 5, 0.6, 0.5, 0, 1) == NULL && strstr(err_msg(), "p_repeat"), "p_repeat 0.5 > 1 - 0.6: %s",
          err_msg());

    json_decref(empty);
    json_decref(s0);
    json_decref(s1);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(oracle);
    free(oracle_dump);
    return test_exit("test_copytask");
}
