// Lua environments (sim/luaenv): every env under sim/data/envs (globbed from the source tree at
// test time) against the contract's demands (docs/environments.md section 6); the sandbox against
// malicious scripts; malformed scripts; the oracle transcripts through chat_load_json.
//
//   test_luaenv [ENV_NAME]     (default: all; ENV_NAME limits the per-env part to one env)
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "sim/curriculum.h"
#include "sim/luaenv.h"
#include "sim/reward.h"
#include "test.h"

// CHECK / REQUIRE without a message; REQ exits (usable in void helpers)
#define CHK(c) CHECK(c, "%s", "")
#define REQ(c)                                                                             \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed: %s\n", __FILE__, __LINE__, #c, err_msg()); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

// ---- a small RNG for the random policy ----
static uint64_t rs = 12345;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rndint(int a, int b) { return a + (int)(rnd() % (uint64_t)(b - a + 1)); }

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

// ---- random valid arguments drawn from a schema; strings from what the agent has seen ----

typedef struct {
    char **s;
    int n, cap;
} pool_t;

static void pool_add(pool_t *p, const char *s) {
    if (!*s || strlen(s) > 64) return;
    if (p->n == p->cap) p->s = realloc(p->s, (size_t)(p->cap = p->cap ? 2 * p->cap : 64) * sizeof *p->s);
    p->s[p->n++] = strdup(s);
}

static void pool_add_json(pool_t *p, const json_t *v) {
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_string(v)) pool_add(p, json_string_value(v));
    else if (json_is_array(v)) json_array_foreach(v, i, x) pool_add_json(p, x);
    else if (json_is_object(v)) json_object_foreach((json_t *)v, k, x) pool_add_json(p, x);
}

static void pool_add_words(pool_t *p, const char *text) {
    char w[128];
    int n = 0;
    for (const char *c = text;; c++) {
        if (*c && *c != ' ' && *c != ',' && *c != '.' && *c != '(' && *c != ')' && *c != '\'' && n < 127) w[n++] = *c;
        else {
            w[n] = 0;
            if (n >= 2) pool_add(p, w);
            n = 0;
            if (!*c) break;
        }
    }
}

static void pool_free(pool_t *p) {
    for (int i = 0; i < p->n; i++) free(p->s[i]);
    free(p->s);
}

static json_t *gen_value(const json_t *sc, pool_t *pool, int depth) {
    const json_t *en = json_object_get(sc, "enum");
    if (json_array_size(en)) return json_deep_copy(json_array_get(en, rnd() % json_array_size(en)));
    const char *t = json_string_value(json_object_get(sc, "type"));
    if (!t) t = "string";
    if (!strcmp(t, "integer") || !strcmp(t, "number")) {
        json_t *mn = json_object_get(sc, "minimum"), *mx = json_object_get(sc, "maximum");
        int lo = mn ? (int)json_number_value(mn) : 0, hi = mx ? (int)json_number_value(mx) : 10;
        if (hi - lo > 1000) hi = lo + 1000;
        return json_integer(rndint(lo, hi));
    }
    if (!strcmp(t, "boolean")) return json_boolean(rnd() & 1);
    if (!strcmp(t, "array")) {
        json_t *a = json_array();
        int n = depth < 3 ? rndint(0, 2) : 0;
        for (int i = 0; i < n; i++) json_array_append_new(a, gen_value(json_object_get(sc, "items"), pool, depth + 1));
        return a;
    }
    if (!strcmp(t, "object")) {
        json_t *o = json_object();
        const char *k;
        json_t *p;
        const json_t *req = json_object_get(sc, "required");
        json_object_foreach(json_object_get(sc, "properties"), k, p) {
            int required = 0;
            size_t i;
            json_t *r;
            json_array_foreach(req, i, r) required |= !strcmp(json_string_value(r), k);
            if (depth < 3 && (required || (rnd() & 1))) json_object_set_new(o, k, gen_value(p, pool, depth + 1));
        }
        return o;
    }
    if (pool->n && rnd() % 10 < 8) return json_string(pool->s[rnd() % (uint64_t)pool->n]);
    char buf[32];
    snprintf(buf, sizeof buf, "x%d", rndint(0, 9999));
    return json_string(buf);
}

// ---- one env against the contract ----

typedef struct {
    double oracle, nothing, half, random;
    int n;
} means_t;

// every hidden fact used as a string argument must have been seen (query, user reply, tool result)
static int check_no_leak(const json_t *task, const json_t *messages) {
    size_t seen_cap = 1 << 16, seen_len = 0;
    char *seen = calloc(seen_cap, 1);
    int leaks = 0;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (strcmp(role, "assistant") == 0) {
            size_t j;
            json_t *c;
            json_array_foreach(json_object_get(m, "tool_calls"), j, c) {
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(json_object_get(c, "function"), "arguments"), k, v) {
                    const char *fk;
                    json_t *fv;
                    json_object_foreach(json_object_get(task, "facts"), fk, fv) {
                        const char *val = json_string_value(fv);
                        if (json_is_string(v) && strlen(val) >= 3 && strcmp(json_string_value(v), val) == 0 &&
                            !strstr(seen, val)) {
                            if (!leaks) fprintf(stderr, "  leak: %s family %s seed %lld uses fact %s=%s before it was revealed\n",
                                               json_string_value(json_object_get(task, "env")),
                                               json_string_value(json_object_get(task, "family")),
                                               (long long)json_integer_value(json_object_get(task, "seed")), fk, val);
                            leaks++;
                        }
                    }
                }
            }
        } else if (content && strcmp(role, "system") != 0) {
            size_t l = strlen(content);
            if (seen_len + l + 2 > seen_cap) seen = realloc(seen, seen_cap = 2 * (seen_len + l + 2));
            memcpy(seen + seen_len, content, l);
            seen_len += l;
            seen[seen_len++] = '\n';
            seen[seen_len] = 0;
        }
    }
    free(seen);
    return leaks;
}

static int count_actions(const json_t *task) {
    int n = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(task, "oracle"), i, s) n += !json_object_get(s, "say");
    return n;
}

static double random_policy(luaenv_t *e, const json_t *task) {
    luaenv_episode_t ep;
    REQ(luaenv_episode_begin(&ep, e, task) == 0);
    json_t *tools = luaenv_task_tools(e, task);
    pool_t pool = {0};
    pool_add_words(&pool, json_string_value(json_object_get(task, "query")));
    int n_calls = count_actions(task) + 2;
    for (int k = 0; k < n_calls && !ep.ended; k++) {
        json_t *fn = json_object_get(json_array_get(tools, rnd() % json_array_size(tools)), "function");
        json_t *args = gen_value(json_object_get(fn, "parameters"), &pool, 0);
        char *res;
        int rc = luaenv_tool_call(&ep, json_string_value(json_object_get(fn, "name")), args, &res);
        if (rc) fprintf(stderr, "  random policy: %s\n", err_msg());
        CHK(rc == 0);
        json_decref(args);
        if (rc) break;
        json_t *r = json_loads(res, 0, NULL);
        pool_add_json(&pool, json_object_get(r, "data"));
        json_decref(r);
        free(res);
    }
    char *reply;
    CHK(luaenv_user_reply(&ep, "Done.", &reply) == 0);
    double s = 0;
    CHK(luaenv_reward(&ep, &s, NULL) == 0);
    luaenv_episode_free(&ep);
    pool_free(&pool);
    json_decref(tools);
    return s;
}

static const char *FIELDS[] = {"env", "seed", "family", "query", "system", "facts", "state", "tools",
                               "available", "checks", "oracle", "aspects", NULL};

static void test_env(luaenv_t *e) {
    rs = 12345; // the random policy's draws do not depend on the order envs are tested in
    int nf = luaenv_n_families(e);
    CHK(nf >= 5);
    CHK(luaenv_n_tools(e) >= 6);
    int *fam_count = calloc((size_t)nf, sizeof(int));
    const int DS[3] = {1, 50, 100};
    means_t tot = {0};
    for (int di = 0; di < 3; di++) {
        curriculum_aspects_t asp;
        curriculum_aspects_at(DS[di], &asp);
        means_t m = {0};
        int bad_half = 0, bad_oracle = 0, bad_nothing = 0, leaks = 0, few_actions = 0;
        for (int seed = 0; seed < 200; seed++) {
            const char *fam = seed % 2 == 0 ? luaenv_family(e, (seed / 2) % nf) : NULL;
            json_t *t = luaenv_sample_task(e, (uint64_t)seed, &asp, fam);
            if (!t) fprintf(stderr, "  sample (D=%d seed %d): %s\n", DS[di], seed, err_msg());
            REQ(t != NULL);
            for (int f = 0; FIELDS[f]; f++) CHK(json_object_get(t, FIELDS[f]) != NULL);
            for (int f = 0; f < nf; f++)
                if (!strcmp(luaenv_family(e, f), json_string_value(json_object_get(t, "family")))) fam_count[f]++;
            if (seed % 10 == 0) { // deterministic given the seed
                json_t *t2 = luaenv_sample_task(e, (uint64_t)seed, &asp, fam);
                char *a = json_dumps(t, JSON_SORT_KEYS | JSON_COMPACT), *b = json_dumps(t2, JSON_SORT_KEYS | JSON_COMPACT);
                CHK(a && b && strcmp(a, b) == 0);
                free(a), free(b);
                json_decref(t2);
            }
            int n_steps = luaenv_oracle_steps(t);
            if (count_actions(t) < 2) few_actions++;
            // the oracle: top score, no fact used before it is revealed
            json_t *msgs = json_array();
            double s = -1;
            int rc = luaenv_run_oracle(e, t, -1, msgs, &s);
            if (rc) fprintf(stderr, "  oracle: %s\n", err_msg());
            CHK(rc == 0);
            if (s != 1.0 && bad_oracle++ < 3) {
                json_t *ch;
                luaenv_episode_t ep;
                fprintf(stderr, "  oracle s=%.3f (D=%d seed %d family %s)\n", s, DS[di], seed,
                        json_string_value(json_object_get(t, "family")));
                (void)ep;
                (void)ch;
            }
            leaks += check_no_leak(t, msgs);
            json_decref(msgs);
            m.oracle += s;
            // do nothing
            luaenv_episode_t ep;
            REQ(luaenv_episode_begin(&ep, e, t) == 0);
            char *reply;
            CHK(luaenv_user_reply(&ep, "ok", &reply) == 0);
            CHK(luaenv_reward(&ep, &s, NULL) == 0);
            luaenv_episode_free(&ep);
            if (s != 0.0 && bad_nothing++ < 3)
                fprintf(stderr, "  do-nothing s=%.3f (D=%d seed %d family %s)\n", s, DS[di], seed,
                        json_string_value(json_object_get(t, "family")));
            m.nothing += s;
            // the oracle stopped half-way
            CHK(luaenv_run_oracle(e, t, n_steps / 2, NULL, &s) == 0);
            if (!(s > 0 && s < 1) && bad_half++ < 3)
                fprintf(stderr, "  half-way s=%.3f (D=%d seed %d family %s, %d steps)\n", s, DS[di], seed,
                        json_string_value(json_object_get(t, "family")), n_steps);
            m.half += s;
            m.random += random_policy(e, t);
            m.n++;
            json_decref(t);
        }
        CHK(bad_oracle == 0);
        CHK(bad_nothing == 0);
        CHK(bad_half == 0);
        CHK(leaks == 0);
        CHK(few_actions == 0);
        printf("  %-14s D=%3d: %d tasks  mean s (r=2s-1): oracle %.3f (%+.3f)  nothing %.3f (%+.3f)  "
               "half %.3f (%+.3f)  random %.3f (%+.3f)\n",
               luaenv_name(e), DS[di], m.n, m.oracle / m.n, 2 * m.oracle / m.n - 1, m.nothing / m.n,
               2 * m.nothing / m.n - 1, m.half / m.n, 2 * m.half / m.n - 1, m.random / m.n, 2 * m.random / m.n - 1);
        CHK(m.random / m.n <= 0.5); // far below the oracle: r <= 0 against r = 1
        tot.random += m.random, tot.n += m.n;
    }
    for (int f = 0; f < nf; f++) CHK(fam_count[f] > 0);
    free(fam_count);
    // soft-sampled aspects (any mix of levels below D's): the oracle still gets the top score
    int soft_bad = 0;
    for (int seed = 0; seed < 100; seed++) {
        curriculum_aspects_t asp;
        curriculum_aspects_sample(1 + seed, 1.0, 99, (uint64_t)seed, &asp);
        json_t *t = luaenv_sample_task(e, (uint64_t)seed + 1000, &asp, NULL);
        double s = 0;
        if (!t || luaenv_run_oracle(e, t, -1, NULL, &s) || s != 1.0) {
            if (soft_bad++ < 3) fprintf(stderr, "  soft aspects seed %d: s=%.3f %s\n", seed, s, t ? "" : err_msg());
        }
        json_decref(t);
    }
    CHK(soft_bad == 0);
}

// ---- oracle transcripts through chat_load_json (text rendering) ----

static void test_chat_roundtrip(luaenv_t *e) {
    curriculum_aspects_t asp;
    int n_calls = 0;
    for (int seed = 0; seed < 20; seed++) {
        curriculum_aspects_at(1 + seed * 5, &asp);
        json_t *t = luaenv_sample_task(e, (uint64_t)seed, &asp, NULL);
        REQ(t);
        json_t *msgs = json_array();
        double s;
        REQ(luaenv_run_oracle(e, t, -1, msgs, &s) == 0);
        json_t *line = json_pack("{s:o, s:o, s:b, s:b}", "messages", msgs, "tools", luaenv_task_tools(e, t),
                                 "add_generation_prompt", 0, "enable_thinking", 0);
        // the JSONL line as `trustee env oracle` writes it, read back
        char *text = json_dumps(line, JSON_COMPACT);
        json_t *back = json_loads(text, 0, NULL);
        REQ(back);
        chat_t c;
        REQ(chat_init(&c, NULL) == 0);
        int rc = chat_load_json(&c, back, "oracle.jsonl");
        if (rc) fprintf(stderr, "  chat_load_json: %s\n", err_msg());
        REQ(rc == 0);
        REQ(chat_flush(&c) == 0);
        // every tool call comes back out of the rendered text, in order, equal
        const char *p = strstr(c.text, "<|im_end|>"); // after the system turn (its tool-call example)
        REQ(p);
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) {
            size_t j;
            json_t *call;
            json_array_foreach(json_object_get(m, "tool_calls"), j, call) {
                const char *a = strstr(p, "<tool_call>\n"), *b = a ? strstr(a, "\n</tool_call>") : NULL;
                REQ(a && b);
                json_t *parsed = json_loadb(a + 12, (size_t)(b - a - 12), 0, NULL);
                const json_t *fn = json_object_get(call, "function");
                CHK(parsed && !strcmp(json_string_value(json_object_get(parsed, "name")),
                                        json_string_value(json_object_get(fn, "name"))));
                CHK(json_equal(json_object_get(parsed, "arguments"), json_object_get(fn, "arguments")));
                json_decref(parsed);
                p = b + 13;
                n_calls++;
            }
            if (!strcmp(json_string_value(json_object_get(m, "role")), "tool")) {
                char want[8192];
                snprintf(want, sizeof want, "<tool_response>\n%s\n</tool_response>", json_string_value(json_object_get(m, "content")));
                CHK(strstr(c.text, want) != NULL);
            }
        }
        CHK(strstr(c.text, json_string_value(json_object_get(t, "query"))) != NULL);
        chat_free(&c);
        free(text);
        json_decref(back);
        json_decref(line);
        json_decref(t);
    }
    printf("  %-14s chat round trip: 20 transcripts, %d tool calls re-parsed equal\n", luaenv_name(e), n_calls);
}

// ---- sandbox ----

// a minimal valid env; TOOL_BODY is the body of tool `t`'s run, SAMPLE_PRE runs first in sample_task
static char *mini_env(const char *tool_body, const char *sample_pre) {
    char *s = malloc(8192);
    snprintf(s, 8192,
             "local function ok() return {success = true, data = 1} end\n"                                   // 1
             "local tools = {}\n"                                                                             // 2
             "for i = 1, 5 do tools[i] = {name = 'f' .. i, description = 'd', parameters = {type = 'object', properties = {}}, run = ok} end\n" // 3
             "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {}},\n" // 4
             "  run = function(state, args)\n"                                                                // 5
             "    %s\n"                                                                                       // 6
             "  end}\n"                                                                                       // 7
             "local fams = {}\n"                                                                              // 8
             "for i = 1, 5 do fams[i] = {name = 'fam' .. i, description = 'd'} end\n"                        // 9
             "return {name = 'evil', description = 'test', tools = tools, families = fams,\n"                // 10
             "  sample_task = function(rng, aspects, family)\n"                                               // 11
             "    %s\n"                                                                                       // 12
             "    return {family = family or 'fam1', query = 'q', state = {n = 0}, tools = {'t', 'f1'},\n"
             "            checks = {{name = 'c', fn = 'called', args = {name = 't'}}}} end,\n"
             "  oracle = function(task) return {{call = 't'}, {call = 'f1'}, {say = 'done'}} end}\n",
             tool_body, sample_pre);
    return s;
}

static void expect_tool_abort(const char *label, const char *body, int code, const char *msg_part) {
    char *src = mini_env(body, "");
    luaenv_t *e = luaenv_load("envs/evil.lua", src, strlen(src), 16u << 20, 2000000);
    if (!e) fprintf(stderr, "  %s: load failed: %s\n", label, err_msg());
    REQ(e);
    curriculum_aspects_t asp;
    curriculum_aspects_at(1, &asp);
    json_t *t = luaenv_sample_task(e, 1, &asp, NULL);
    REQ(t);
    luaenv_episode_t ep;
    REQ(luaenv_episode_begin(&ep, e, t) == 0);
    char *res = NULL;
    clock_t c0 = clock();
    int rc = luaenv_tool_call(&ep, "t", NULL, &res);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("  sandbox %-22s -> %s, %.2fs: %s\n", label, luaenv_abort_name(ep.abort), secs, rc ? err_msg() : res);
    CHK(rc == -1);
    CHK(ep.abort == code);
    // the script and the line (a memory error names the line the count hook saw last, if any;
    // a malformed result names the line where the tool's run is defined)
    const char *loc = code == LUAENV_ABORT_MEM_LIMIT ? "envs/evil.lua" : code == LUAENV_ABORT_BAD_RESULT ? "envs/evil.lua:5" : "envs/evil.lua:6:";
    CHK(strncmp(err_msg(), loc, strlen(loc)) == 0);
    CHK(strstr(err_msg(), msg_part) != NULL);
    // the aborted episode refuses more calls; the env goes on: a new episode works
    CHK(luaenv_tool_call(&ep, "f1", NULL, &res) == -1);
    luaenv_episode_free(&ep);
    REQ(luaenv_episode_begin(&ep, e, t) == 0);
    CHK(luaenv_tool_call(&ep, "f1", NULL, &res) == 0);
    CHK(res && strcmp(res, "{\"data\":1,\"success\":true}") == 0);
    free(res);
    luaenv_episode_free(&ep);
    json_decref(t);
    luaenv_free(e);
    free(src);
}

static void test_sandbox(void) {
    expect_tool_abort("infinite loop", "while true do end", LUAENV_ABORT_INSN_LIMIT, "instruction limit");
    expect_tool_abort("loop inside pcall", "while true do pcall(function() while true do end end) end",
                      LUAENV_ABORT_INSN_LIMIT, "instruction limit");
    expect_tool_abort("unbounded allocation", "local t = {} while true do t[#t + 1] = string.rep('x', 4096) .. #t end",
                      LUAENV_ABORT_MEM_LIMIT, "memory limit");
    expect_tool_abort("huge string", "local s = string.rep('x', 1 << 30)", LUAENV_ABORT_MEM_LIMIT, "memory limit");
    expect_tool_abort("os.execute", "os.execute('touch /tmp/trustee_pwned')", LUAENV_ABORT_FORBIDDEN, "'os' is not available");
    expect_tool_abort("io.open", "local f = io.open('/etc/passwd')", LUAENV_ABORT_FORBIDDEN, "'io' is not available");
    expect_tool_abort("require", "require('socket')", LUAENV_ABORT_FORBIDDEN, "'require' is not available");
    expect_tool_abort("load", "load('return 1')()", LUAENV_ABORT_FORBIDDEN, "'load' is not available");
    expect_tool_abort("pcall(os.execute)", "pcall(function() return os.execute('x') end) return {success = true}",
                      LUAENV_ABORT_FORBIDDEN, "'os' is not available");
    expect_tool_abort("string.dump", "string.dump(function() end)", LUAENV_ABORT_ERROR, "dump");
    expect_tool_abort("error", "error('boom')", LUAENV_ABORT_ERROR, "boom");
    expect_tool_abort("error object", "error({})", LUAENV_ABORT_ERROR, "table value");
    expect_tool_abort("bad result", "return 42", LUAENV_ABORT_BAD_RESULT, "must return {success");
    expect_tool_abort("result not JSON", "return {success = true, data = function() end}", LUAENV_ABORT_BAD_RESULT, "not JSON");
    CHK(fopen("/tmp/trustee_pwned", "r") == NULL);

    // limits in sample_task and at load time also stop with a message naming the script
    char *src = mini_env("return {success = true}", "while true do end");
    luaenv_t *e = luaenv_load("envs/evil.lua", src, strlen(src), 16u << 20, 2000000);
    REQ(e);
    curriculum_aspects_t asp;
    curriculum_aspects_at(1, &asp);
    CHK(luaenv_sample_task(e, 1, &asp, NULL) == NULL);
    printf("  sandbox %-22s -> %s: %s\n", "loop in sample_task", luaenv_abort_name(luaenv_abort_code(e)), err_msg());
    CHK(luaenv_abort_code(e) == LUAENV_ABORT_INSN_LIMIT && strstr(err_msg(), "envs/evil.lua:12:"));
    luaenv_free(e);
    free(src);
    const char *load_loop = "local x = 0\nwhile true do x = x + 1 end\n";
    CHK(luaenv_load("envs/evil.lua", load_loop, strlen(load_loop), 0, 2000000) == NULL);
    printf("  sandbox %-22s -> %s\n", "loop at load", err_msg());
    CHK(strstr(err_msg(), "envs/evil.lua:2:") && strstr(err_msg(), "instruction limit"));

    // math.random is seeded per task: same seed, same draws; math.randomseed is gone
    const char *rnd_env_tool = "return {success = true, data = {math.random(1, 1000000), math.random()}}";
    src = mini_env(rnd_env_tool, "assert(math.randomseed == nil)");
    e = luaenv_load("envs/evil.lua", src, strlen(src), 0, 0);
    REQ(e);
    json_t *t = luaenv_sample_task(e, 7, &asp, NULL);
    REQ(t);
    char *r1, *r2;
    luaenv_episode_t ep;
    REQ(luaenv_episode_begin(&ep, e, t) == 0);
    REQ(luaenv_tool_call(&ep, "t", NULL, &r1) == 0);
    luaenv_episode_free(&ep);
    REQ(luaenv_episode_begin(&ep, e, t) == 0);
    REQ(luaenv_tool_call(&ep, "t", NULL, &r2) == 0);
    luaenv_episode_free(&ep);
    CHK(strcmp(r1, r2) == 0);
    free(r1), free(r2);
    json_decref(t);
    luaenv_free(e);
    free(src);
}

// ---- malformed scripts: errors name the file and the line ----

static void expect_load_error(const char *label, const char *chunk, const char *src, const char *want) {
    luaenv_t *e = luaenv_load(chunk, src, strlen(src), 0, 0);
    printf("  malformed %-24s -> %s\n", label, e ? "(loaded!)" : err_msg());
    CHK(e == NULL);
    CHK(strstr(err_msg(), want) != NULL);
    luaenv_free(e);
}

// the mini env with the first `old` replaced by `new` (malloc'd)
static char *mini_with(const char *old, const char *new) {
    char *src = mini_env("return {success = true}", "");
    char *p = strstr(src, old);
    REQ(p);
    char *out = malloc(strlen(src) + strlen(new) + 1);
    sprintf(out, "%.*s%s%s", (int)(p - src), src, new, p + strlen(old));
    free(src);
    return out;
}

static void test_malformed(void) {
    expect_load_error("syntax error", "envs/bad.lua", "local x = 1\nreturn {name = 'bad',\n  tools = {\n}\n", "envs/bad.lua:5:");
    expect_load_error("not a table", "envs/bad.lua", "local x = 1\nreturn 42\n", "envs/bad.lua:2: the script must return a table");
    struct { const char *label, *old, *new, *want; } cases[] = {
        {"missing oracle", "  oracle = function", "  oracle_ = function", "envs/evil.lua:10: missing required field 'oracle'"},
        {"missing name", "name = 'evil'", "nome = 'evil'", "envs/evil.lua:10: missing required field 'name'"},
        {"name != file", "name = 'evil'", "name = 'eviL'", "envs/evil.lua:10: field 'name' is 'eviL'"},
        {"no tools", "tools = tools,", "tools = 7,", "envs/evil.lua:10: missing required field 'tools'"},
        {"schema not an object", "tools[6] = {name = 't', description = 'd', parameters = {type = 'object'",
         "tools[6] = {name = 't', description = 'd', parameters = {type = 'array'",
         "envs/evil.lua:5: tool 't': 'parameters' must be a JSON schema object"},
        {"schema a string", "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {}}",
         "tools[6] = {name = 't', description = 'd', parameters = 'object'",
         "envs/evil.lua:5: tool 't': 'parameters' must be a JSON schema object"},
        {"property without type", "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {}}",
         "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {x = {description = 'x'}}}",
         "envs/evil.lua:5: tool 't': parameters.properties.x has no 'type'"},
        {"required not a property", "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {}}",
         "tools[6] = {name = 't', description = 'd', parameters = {type = 'object', properties = {}, required = {'y'}}",
         "envs/evil.lua:5: tool 't': required 'y' is not a property"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *src = mini_with(cases[i].old, cases[i].new);
        expect_load_error(cases[i].label, "envs/evil.lua", src, cases[i].want);
        free(src);
    }
    // a task that names a check function that does not exist: error at sampling
    char *src = mini_with("fn = 'called'", "fn = 'callex'");
    luaenv_t *e = luaenv_load("envs/evil.lua", src, strlen(src), 0, 0);
    REQ(e);
    curriculum_aspects_t asp;
    curriculum_aspects_at(1, &asp);
    CHK(luaenv_sample_task(e, 1, &asp, NULL) == NULL);
    printf("  malformed %-24s -> %s\n", "unknown check fn", err_msg());
    CHK(strstr(err_msg(), "envs/evil.lua") && strstr(err_msg(), "callex"));
    luaenv_free(e);
    free(src);
}

static void test_reward_mapping(void) {
    double r;
    CHK(reward_from_score(1.0, &r) == 0 && r == 1.0);
    CHK(reward_from_score(0.0, &r) == 0 && r == -1.0);
    CHK(reward_from_score(0.25, &r) == 0 && fabs(r - (-0.5)) < 1e-12);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    test_reward_mapping();
    test_sandbox();
    test_malformed();
    // every env in the source tree, globbed now
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sim/data/envs", SOURCE_DIR);
    DIR *d = opendir(dir);
    REQ(d);
    struct dirent *de;
    char *names[64];
    int n = 0;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".lua")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    int tested = 0;
    for (int i = 0; i < n; i++) {
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)strlen(names[i]) - 4, names[i]);
        if (only && strcmp(only, stem)) continue;
        char path[1400], chunk[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(chunk, sizeof chunk, "envs/%s", names[i]);
        size_t len;
        char *text = read_file(path, &len);
        REQ(text);
        clock_t c0 = clock();
        luaenv_t *e = luaenv_load(chunk, text, len, 0, 0);
        if (!e) fprintf(stderr, "  %s: %s\n", chunk, err_msg());
        CHK(e != NULL);
        if (e) {
            test_env(e);
            test_chat_roundtrip(e);
            printf("  %-14s %.1fs\n", stem, (double)(clock() - c0) / CLOCKS_PER_SEC);
            luaenv_free(e);
            tested++;
        }
        free(text);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    printf("%d environments tested\n", tested);
    CHK(tested >= 1);
    return test_exit("test_luaenv");
}
