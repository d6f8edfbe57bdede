// trustee env: the programmatic Lua environments (sim/luaenv.h, docs/environments.md).
//   trustee env list                                   shipped envs: tools and task families
//   trustee env sample --env NAME --difficulty D --seed S   one task as JSON
//   trustee env play   --env NAME --seed S [--difficulty D] a person plays the agent on the terminal
//   trustee env oracle --env NAME --n N --out F.jsonl  gold transcripts for `trustee sft`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "sim/curriculum.h"
#include "sim/luaenv.h"
#include "sim/oracle.h"
#include "sim/reward.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: trustee env list\n"
            "       trustee env sample --env NAME --difficulty D --seed S [--family F]\n"
            "       trustee env play   --env NAME --seed S [--difficulty D] [--family F]\n"
            "       trustee env oracle --env NAME --n N --out F.jsonl [--difficulty D] [--seed S]\n"
            "\n"
            "Programmatic environments written in Lua (contract: docs/environments.md). NAME is a\n"
            "shipped environment (see `trustee env list`) or the path of a .lua file.\n"
            "\n"
            "  list    name, description, tools and task families of every shipped environment\n"
            "  sample  prints the task for (D, S) as JSON: query, hidden user facts, initial state,\n"
            "          available tools, checks, oracle steps. Aspects: the curriculum map at D\n"
            "          (sim/curriculum.h, no soft sampling).\n"
            "  play    you are the agent: each input line is either a tool call as JSON\n"
            "          {\"name\": .., \"arguments\": {..}} or a message to the user. The user answers\n"
            "          questions (text with '?') that ask for facts it holds, and ends the episode\n"
            "          otherwise; end of input ends it too. Prints the checks and the reward\n"
            "          (s = passed/total, r = 2s - 1). Default D = 1.\n"
            "  oracle  runs the oracle on tasks with seeds S..S+N-1 (default S = 0) and writes one\n"
            "          JSON line per task: {\"messages\": [...], \"tools\": [...]} (Qwen3 chat form read\n"
            "          by chat_load_json and `trustee sft`). Without --difficulty, D is spread\n"
            "          evenly over 1..100 across the N tasks.\n");
}

static int env_list(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_finish(&a)) return cmd_fail("env list");
    const char **names;
    int n = luaenv_list_embedded(&names);
    for (int i = 0; i < n; i++) {
        luaenv_t *e = luaenv_load_embedded(names[i]);
        if (!e) {
            free(names);
            return cmd_fail("env list");
        }
        json_t *info = luaenv_info(e);
        printf("%s: %s\n  tools (%zu):", luaenv_name(e), luaenv_description(e),
               json_array_size(json_object_get(info, "tools")));
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(info, "tools"), j, v)
            printf(" %s", json_string_value(json_object_get(json_object_get(v, "function"), "name")));
        printf("\n  task families (%zu):\n", json_array_size(json_object_get(info, "families")));
        json_array_foreach(json_object_get(info, "families"), j, v)
            printf("    %-20s %s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "description")));
        json_decref(info);
        luaenv_free(e);
    }
    free(names);
    return 0;
}

typedef struct {
    const char *env, *family, *out;
    long difficulty, seed, n;
    int have_difficulty;
} opts_t;

static int parse(args_t *a, opts_t *o, int need_n) {
    int err = 0;
    o->env = args_str(a, "env", NULL, &err);
    o->family = args_str(a, "family", NULL, &err);
    if (err) return -1;
    if (!o->env) return err_set("--env NAME is required (see `trustee env list`)");
    if (args_int(a, "seed", 0, &o->seed) || args_int(a, "difficulty", 0, &o->difficulty)) return -1;
    o->have_difficulty = o->difficulty != 0;
    if (!o->have_difficulty) o->difficulty = 1;
    if (o->difficulty < CURRICULUM_D_MIN || o->difficulty > CURRICULUM_D_MAX)
        return err_set("--difficulty must be in [1, 100], found %ld", o->difficulty);
    if (o->seed < 0) return err_set("--seed must be >= 0, found %ld", o->seed);
    if (need_n) {
        o->out = args_str(a, "out", NULL, &err);
        if (err || args_int(a, "n", 0, &o->n)) return -1;
        if (o->n < 1) return err_set("--n N (>= 1) is required");
        if (!o->out) return err_set("--out F.jsonl is required");
    }
    return args_finish(a);
}

static json_t *sample(luaenv_t *e, long difficulty, long seed, const char *family) {
    curriculum_aspects_t asp;
    curriculum_aspects_at((int)difficulty, &asp);
    return luaenv_sample_task(e, (uint64_t)seed, &asp, family);
}

static int env_sample(int argc, char **argv) {
    args_t a;
    opts_t o = {0};
    args_init(&a, argc, argv);
    if (parse(&a, &o, 0)) return cmd_fail("env sample");
    luaenv_t *e = luaenv_open(o.env);
    if (!e) return cmd_fail("env sample");
    json_t *t = sample(e, o.difficulty, o.seed, o.family);
    if (!t) {
        luaenv_free(e);
        return cmd_fail("env sample");
    }
    char *s = json_dumps(t, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s\n", s);
    free(s);
    json_decref(t);
    luaenv_free(e);
    return 0;
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

static int env_play(int argc, char **argv) {
    args_t a;
    opts_t o = {0};
    args_init(&a, argc, argv);
    if (parse(&a, &o, 0)) return cmd_fail("env play");
    luaenv_t *e = luaenv_open(o.env);
    if (!e) return cmd_fail("env play");
    json_t *t = sample(e, o.difficulty, o.seed, o.family);
    luaenv_episode_t ep;
    if (!t || luaenv_episode_begin(&ep, e, t)) {
        json_decref(t);
        luaenv_free(e);
        return cmd_fail("env play");
    }
    printf("system> %s\n", json_string_value(json_object_get(t, "system")));
    json_t *tools = luaenv_task_tools(e, t), *v;
    size_t i;
    printf("tools>");
    json_array_foreach(tools, i, v) printf(" %s", json_string_value(json_object_get(json_object_get(v, "function"), "name")));
    printf("\n(type a tool call as {\"name\": .., \"arguments\": {..}} or a message)\n");
    printf("user> %s\n", json_string_value(json_object_get(t, "query")));
    json_decref(tools);
    fflush(stdout);
    char line[65536];
    int rc = 0;
    while (!ep.ended && fgets(line, sizeof line, stdin)) {
        trim(line);
        if (!line[0]) continue;
        if (line[0] == '{') {
            json_error_t je;
            json_t *call = json_loads(line, 0, &je);
            const char *name = json_string_value(json_object_get(call, "name"));
            if (!call || !name) {
                printf("(not a tool call: %s; expected {\"name\": .., \"arguments\": {..}})\n",
                       call ? "no \"name\" string" : je.text);
                json_decref(call);
                continue;
            }
            char *res;
            rc = luaenv_tool_call(&ep, name, json_object_get(call, "arguments"), &res);
            json_decref(call);
            if (rc) break;
            printf("tool> %s\n", res);
            free(res);
        } else {
            char *reply;
            rc = luaenv_user_reply(&ep, line, &reply);
            if (rc < 0) break;
            rc = 0;
            if (reply) printf("user> %s\n", reply);
            else printf("user> [end]\n");
            free(reply);
        }
        fflush(stdout);
    }
    double s = 0, r = 0;
    json_t *checks = NULL;
    if (rc == 0) rc = luaenv_reward(&ep, &s, &checks);
    if (rc) {
        printf("aborted (%s): %s\n", luaenv_abort_name(ep.abort), err_msg());
        luaenv_episode_free(&ep);
        json_decref(t);
        luaenv_free(e);
        return 1;
    }
    json_array_foreach(checks, i, v) printf("check %s: %s\n", json_is_true(json_object_get(v, "passed")) ? "PASS" : "FAIL",
                                            json_string_value(json_object_get(v, "name")));
    reward_from_score(s, &r);
    printf("score s = %.4f (%zu checks), reward r = 2s - 1 = %.4f\n", s, json_array_size(checks), r);
    json_decref(checks);
    luaenv_episode_free(&ep);
    json_decref(t);
    luaenv_free(e);
    return 0;
}

static int env_oracle(int argc, char **argv) {
    args_t a;
    opts_t o = {0};
    args_init(&a, argc, argv);
    if (parse(&a, &o, 1)) return cmd_fail("env oracle");
    if (o.n > 100000000) {
        err_set("--n must be at most 100000000, found %ld", o.n);
        return cmd_fail("env oracle");
    }
    luaenv_t *e = luaenv_open(o.env);
    if (!e) return cmd_fail("env oracle");
    FILE *f = fopen(o.out, "w");
    if (!f) {
        err_set("%s: cannot open for writing", o.out);
        luaenv_free(e);
        return cmd_fail("env oracle");
    }
    // a fixed --difficulty D is the range [D, D]; else D is spread over [1, 100]
    int d_lo = o.have_difficulty ? (int)o.difficulty : CURRICULUM_D_MIN;
    int d_hi = o.have_difficulty ? (int)o.difficulty : CURRICULUM_D_MAX;
    double sum = 0;
    json_t *convs = json_array();
    int rc = convs ? luaenv_oracle_append(e, (int)o.n, (uint64_t)o.seed, d_lo, d_hi, o.family, convs, &sum)
                   : err_set("out of memory");
    size_t i;
    json_t *conv;
    if (convs) json_array_foreach(convs, i, conv) { // also the ones before a failure
        char *text = json_dumps(conv, JSON_COMPACT);
        if (text) fprintf(f, "%s\n", text);
        else if (rc == 0) rc = err_set("out of memory");
        free(text);
    }
    json_decref(convs);
    if (fclose(f) != 0 && rc == 0) rc = err_set("%s: write failed", o.out);
    if (rc) {
        luaenv_free(e);
        return cmd_fail("env oracle");
    }
    fprintf(stderr, "trustee env oracle: wrote %ld transcripts of %s to %s (mean oracle score %.4f)\n", o.n,
            luaenv_name(e), o.out, sum / (double)o.n);
    luaenv_free(e);
    return 0;
}

int cmd_env(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    if (!strcmp(sub, "list")) return env_list(argc - 1, argv + 1);
    if (!strcmp(sub, "sample")) return env_sample(argc - 1, argv + 1);
    if (!strcmp(sub, "play")) return env_play(argc - 1, argv + 1);
    if (!strcmp(sub, "oracle")) return env_oracle(argc - 1, argv + 1);
    fprintf(stderr, "trustee env: unknown action '%s' (list, sample, play, oracle)\n", sub);
    return 2;
}
