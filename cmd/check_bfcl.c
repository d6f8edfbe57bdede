// trustee check-bfcl: judge candidate tool calls with the BFCL AST checker (sim/bfcl.h).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "sim/bfcl.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: trustee check-bfcl --data DIR --candidates FILE.jsonl\n"
            "\n"
            "Judges each candidate line ({\"id\", \"category\", \"candidate\": [{\"name\", \"arguments\"}]},\n"
            "the format of BFCL verdicts_*.jsonl) with BFCL's AST checker and prints, per line,\n"
            "  LINE ID valid   or   LINE ID invalid ERROR_TYPE\n"
            "then a summary line per category and '# total ...'. The entry's function docs and answer\n"
            "come from DIR/BFCL_v4_<category>.json and DIR/possible_answer/BFCL_v4_<category>.json,\n"
            "or from the line's own \"function\" / \"ground_truth\" fields when it has them. When a line\n"
            "carries \"valid\" / \"error_type\" (a verdict file), disagreements are counted; the exit\n"
            "status is 1 when there is any. A malformed line is reported with its number and skipped.\n"
            "\n"
            "options:\n"
            "  --data DIR          BFCL data folder\n"
            "  --candidates FILE   JSONL candidates\n"
            "  --help              this text\n");
}

// id -> entry line (object), for one JSONL file; NULL on error (err_set)
static json_t *load_by_id(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { err_set("%s: %s", path, strerror(errno)); return NULL; }
    json_t *map = json_object();
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        json_error_t je;
        json_t *e = json_loads(line, JSON_ALLOW_NUL, &je);
        const char *id = json_string_value(json_object_get(e, "id"));
        if (!id) {
            json_decref(e);
            err_set("%s:%ld: expected a JSON object with a string \"id\"%s%s", path, lineno,
                    e ? "" : ": ", e ? "" : je.text);
            json_decref(map);
            free(line);
            fclose(f);
            return NULL;
        }
        json_object_set_new(map, id, e);
    }
    free(line);
    fclose(f);
    return map;
}

typedef struct {
    char name[64];
    json_t *entries, *answers; // id -> line; NULL when not loaded (irrelevance needs none)
    long n, valid, disagree;
} cat_t;

int cmd_check_bfcl(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
    args_t a;
    args_init(&a, argc, argv);
    int e = 0;
    const char *data = args_str(&a, "data", NULL, &e);
    const char *cpath = args_str(&a, "candidates", NULL, &e);
    if (e || args_finish(&a)) return cmd_fail("check-bfcl");
    if (!data || !cpath) { usage(stderr); return 2; }
    FILE *f = fopen(cpath, "r");
    if (!f) { err_set("%s: %s", cpath, strerror(errno)); return cmd_fail("check-bfcl"); }

    enum { MAX_CATS = 32 };
    cat_t cats[MAX_CATS];
    int n_cats = 0, rc = 0;
    long lineno = 0, n_bad = 0, n_total = 0, n_valid = 0, n_disagree = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        json_error_t je;
        json_t *c = json_loads(line, JSON_ALLOW_NUL, &je);
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *cat = json_string_value(json_object_get(c, "category"));
        json_t *cand = json_object_get(c, "candidate");
        bfcl_kind_t kind = cat ? bfcl_category_kind(cat) : BFCL_UNKNOWN;
        const char *why = !c ? je.text
                          : !id ? "expected a string \"id\""
                          : !cat ? "expected a string \"category\""
                          : kind == BFCL_UNKNOWN ? "unknown category (single-turn categories only)"
                          : !json_is_array(cand) ? "expected a list \"candidate\""
                          : strlen(cat) >= sizeof cats[0].name ? "category name too long" : NULL;
        if (why) {
            fprintf(stderr, "trustee check-bfcl: %s:%ld: %s; line skipped\n", cpath, lineno, why);
            n_bad++;
            json_decref(c);
            continue;
        }
        int ci = 0;
        while (ci < n_cats && strcmp(cats[ci].name, cat)) ci++;
        if (ci == n_cats) {
            if (n_cats == MAX_CATS) { err_set("too many categories"); rc = cmd_fail("check-bfcl"); json_decref(c); break; }
            memset(&cats[ci], 0, sizeof cats[ci]);
            snprintf(cats[ci].name, sizeof cats[ci].name, "%s", cat);
            n_cats++;
        }
        cat_t *C = &cats[ci];
        json_t *functions = json_object_get(c, "function");
        json_t *truth = json_object_get(c, "ground_truth");
        if (kind != BFCL_IRRELEVANCE && (!functions || !truth)) {
            char path[4096];
            if (!C->entries) {
                snprintf(path, sizeof path, "%s/BFCL_v4_%s.json", data, cat);
                if (!(C->entries = load_by_id(path))) { rc = cmd_fail("check-bfcl"); json_decref(c); break; }
                snprintf(path, sizeof path, "%s/possible_answer/BFCL_v4_%s.json", data, cat);
                if (!(C->answers = load_by_id(path))) { rc = cmd_fail("check-bfcl"); json_decref(c); break; }
            }
            if (!functions) functions = json_object_get(json_object_get(C->entries, id), "function");
            if (!truth) truth = json_object_get(json_object_get(C->answers, id), "ground_truth");
            if (!json_is_array(functions) || !json_is_array(truth)) {
                fprintf(stderr, "trustee check-bfcl: %s:%ld: id %s: no entry or answer in %s; line skipped\n",
                        cpath, lineno, id, data);
                n_bad++;
                json_decref(c);
                continue;
            }
        }
        const char *err = bfcl_check(kind, functions, truth, cand);
        if (err) printf("%ld %s invalid %s\n", lineno, id, err);
        else printf("%ld %s valid\n", lineno, id);
        C->n++, n_total++;
        if (!err) C->valid++, n_valid++;
        json_t *jv = json_object_get(c, "valid"), *je2 = json_object_get(c, "error_type");
        if (json_is_boolean(jv)) {
            const char *want = json_string_value(je2);
            int agree = json_is_true(jv) ? !err : (err && want && !strcmp(err, want));
            if (!agree) {
                C->disagree++, n_disagree++;
                fprintf(stderr, "trustee check-bfcl: %s:%ld: id %s: verdict file says %s, checker says %s\n",
                        cpath, lineno, id, json_is_true(jv) ? "valid" : (want ? want : "invalid"),
                        err ? err : "valid");
            }
        }
        json_decref(c);
    }
    free(line);
    fclose(f);
    for (int i = 0; i < n_cats; i++) {
        if (!rc)
            printf("# %s: %ld candidates, %ld valid (%.2f%%), %ld disagree with the file's verdict\n",
                   cats[i].name, cats[i].n, cats[i].valid,
                   cats[i].n ? 100.0 * cats[i].valid / cats[i].n : 0.0, cats[i].disagree);
        json_decref(cats[i].entries);
        json_decref(cats[i].answers);
    }
    if (rc) return rc;
    printf("# total: %ld candidates, %ld valid, %ld malformed lines skipped, %ld disagree\n", n_total,
           n_valid, n_bad, n_disagree);
    return n_disagree ? 1 : 0;
}
