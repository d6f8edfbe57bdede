// trustee eval: held-out benchmark evaluation of a checkpoint. Benchmarks: bfcl (single-turn AST
// categories, judged by sim/bfcl.h).
//
// Per entry: the entry's functions become the tools of a Qwen3 chat (model/chat.h), its question
// the system/user turns, then the generation prompt (thinking off). All prompts of a category are
// generated greedily with the engine, --batch sequences at a time; the reply is decoded, its
// tool calls parsed (chat_parse_assistant) and decoded as BFCL's Qwen FC handler does (see
// ../shared/bench/bfcl/CHECKER.md §1): a block whose text is not JSON, or that is never closed,
// is dropped; a JSON block without a string "name" or an object "arguments" makes the whole
// decode fail (the candidate then holds that call as {"name": .., "arguments": ..} with nulls, so
// the checker reports ast_decoder:decoder_failed, or no call for irrelevance).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "model/chat.h"
#include "model/engine.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"
#include "sim/bfcl.h"

static const char *EVAL_USAGE =
    "usage: trustee eval --model DIR --bench bfcl --data DIR [options]\n"
    "\n"
    "Evaluates the Qwen3 checkpoint in DIR on BFCL's single-turn categories: each entry is rendered\n"
    "with its functions as tools and its question as the user turn(s), answered greedily\n"
    "(thinking off), its tool calls parsed and judged by the BFCL AST checker. Prints per category\n"
    "'CATEGORY: N entries, V valid, accuracy A' and a total line. DATA holds BFCL_v4_<cat>.json and\n"
    "possible_answer/BFCL_v4_<cat>.json (the layout of BFCL's data folder). A malformed entry line\n"
    "is reported with its line number and skipped.\n"
    "\n"
    "options:\n"
    "  --model DIR          checkpoint directory (tokenizer.json there, else the built-in one)\n"
    "  --bench NAME         bfcl (the only one so far)\n"
    "  --data DIR           BFCL data folder\n"
    "  --categories A,B     categories to run (default: those of simple_python, multiple, parallel,\n"
    "                       parallel_multiple, irrelevance, live_simple, live_multiple,\n"
    "                       live_parallel, live_parallel_multiple, live_irrelevance found in DIR)\n"
    "  --limit N            only the first N entries of each category (default: all)\n"
    "  --out FILE.jsonl     per-entry results: {\"id\", \"category\", \"valid\", \"error_type\",\n"
    "                       \"candidate\", \"text\", \"n_prompt\", \"n_generated\", \"finish\"}; the file\n"
    "                       is also valid input for `trustee check-bfcl --candidates`\n"
    "  --max-tokens N       most tokens generated per entry (default 512)\n"
    "  --batch N            sequences generated at once (default 16)\n"
    "  --threads N          CPU threads (default: all cores)\n"
    "  --results FILE.jsonl summarize an earlier --out file instead of generating (no --model needed):\n"
    "                       per-category accuracy from its \"category\" and \"valid\" fields, then the\n"
    "                       summaries\n"
    "\n"
    "After the categories come BFCL v4's summary scores, computed as BFCL's leaderboard computes them\n"
    "(docs/bfcl.md): non-live = unweighted mean of simple, multiple, parallel, parallel_multiple;\n"
    "live = entry-weighted mean of live_simple, live_multiple, live_parallel, live_parallel_multiple;\n"
    "irrelevance = unweighted mean of irrelevance, live_irrelevance; overall = BFCL's 10/10/10 weights\n"
    "of those three renormalized (multi-turn and agentic, 30 and 40 in BFCL, are not evaluated here).\n"
    "A summary whose categories were not all evaluated prints N/A.\n";

static const char *DEFAULT_CATEGORIES[] = {
    "simple_python", "multiple",      "parallel",      "parallel_multiple",      "irrelevance",
    "live_simple",   "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
};
#define N_DEFAULT_CATEGORIES ((int)(sizeof DEFAULT_CATEGORIES / sizeof *DEFAULT_CATEGORIES))

// ---- BFCL v4 summary scores (docs/bfcl.md) ----

typedef struct {
    const char *name; // category
    long n, valid;    // entries judged, valid ones
} cat_score_t;

// accuracy of category `name` (its entry count in *count), or -1 when it was not evaluated
static double cat_acc(const cat_score_t *s, int n, const char *name, long *count) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s[i].name, name) && s[i].n > 0) {
            if (count) *count = s[i].n;
            return (double)s[i].valid / (double)s[i].n;
        }
    return -1;
}

// one summary: the unweighted (weighted = 0) or entry-weighted mean of the named categories' accuracies;
// -1 when one of them was not evaluated (its name goes to *missing)
static double cat_mean(const cat_score_t *s, int n, const char *const *names, int k, int weighted,
                       const char **missing) {
    double sum = 0, wsum = 0;
    for (int i = 0; i < k; i++) {
        long count = 0;
        double a = cat_acc(s, n, names[i], &count);
        if (a < 0) { *missing = names[i]; return -1; }
        double w = weighted ? (double)count : 1.0;
        sum += w * a, wsum += w;
    }
    return sum / wsum;
}

static void print_score(const char *label, double v, const char *missing, const char *how) {
    if (v < 0) printf("# %s: N/A (%s not evaluated; %s)\n", label, missing, how);
    else printf("# %s: %.4f (%s)\n", label, v, how);
}

// prints BFCL v4's non-live / live / irrelevance summaries and the single-turn overall (the rule, with
// its source, is in docs/bfcl.md), as '# NAME: VALUE (how)' lines: '#' keeps the per-category lines
// the only uncommented ones
static void print_summary(const cat_score_t *s, int n) {
    static const char *const NON_LIVE[] = {"simple_python", "multiple", "parallel", "parallel_multiple"};
    static const char *const LIVE[] = {"live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"};
    static const char *const IRRELEVANCE[] = {"irrelevance", "live_irrelevance"};
    const char *m_nl = NULL, *m_l = NULL, *m_irr = NULL;
    double nl = cat_mean(s, n, NON_LIVE, 4, 0, &m_nl);
    double l = cat_mean(s, n, LIVE, 4, 1, &m_l);
    double irr = cat_mean(s, n, IRRELEVANCE, 2, 0, &m_irr);
    printf("# BFCL v4 summary (docs/bfcl.md; single-turn only)\n");
    print_score("non-live", nl, m_nl,
                "unweighted mean of simple, multiple, parallel, parallel_multiple; simple = simple_python");
    print_score("live", l, m_l,
                "mean of live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by entries");
    print_score("irrelevance", irr, m_irr, "unweighted mean of irrelevance, live_irrelevance");
    const char *m_all = m_nl ? "non-live" : m_l ? "live" : "irrelevance";
    double all = nl < 0 || l < 0 || irr < 0 ? -1 : (10 * nl + 10 * l + 10 * irr) / 30;
    print_score("overall", all, m_all,
                "BFCL's weights 10/10/10 for non-live/live/irrelevance, renormalized; multi-turn (30) and "
                "agentic (40) not evaluated");
}

// --results: per-category counts from an earlier --out file, then the summaries. A line that is not
// an object with a string "category" and a boolean "valid" is reported with its number and skipped.
static int summarize_results(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return err_set("%s: %s", path, strerror(errno));
    cat_score_t s[64];
    char names[64][64];
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        json_t *e = json_loads(line, JSON_ALLOW_NUL, NULL);
        const char *cat = json_string_value(json_object_get(e, "category"));
        json_t *valid = json_object_get(e, "valid");
        if (!cat || !json_is_boolean(valid) || strlen(cat) >= sizeof names[0]) {
            fprintf(stderr, "trustee eval: %s:%ld: expected an object with a string \"category\" and a boolean "
                            "\"valid\"; line skipped\n", path, lineno);
            json_decref(e);
            continue;
        }
        int i = 0;
        while (i < n && strcmp(s[i].name, cat)) i++;
        if (i == n) {
            if (n == 64) { json_decref(e); free(line); fclose(f); return err_set("%s: more than 64 categories", path); }
            snprintf(names[n], sizeof names[n], "%s", cat);
            s[n] = (cat_score_t){names[n], 0, 0};
            n++;
        }
        s[i].n++;
        s[i].valid += json_is_true(valid);
        json_decref(e);
    }
    free(line);
    fclose(f);
    long total = 0, total_valid = 0;
    for (int i = 0; i < n; i++) {
        printf("%s: %ld entries, %ld valid, accuracy %.4f\n", s[i].name, s[i].n, s[i].valid,
               (double)s[i].valid / (double)s[i].n);
        total += s[i].n, total_valid += s[i].valid;
    }
    printf("# total: %ld entries, %ld valid\n", total, total_valid);
    print_summary(s, n);
    return 0;
}

// one entry under evaluation
typedef struct {
    json_t *entry;  // the data line (owned)
    json_t *truth;  // its ground_truth (borrowed from the answers; NULL for irrelevance)
    ids_t prompt;   // (n_prompt) rendered ids up to the generation prompt
    ids_t out;      // (n_generated) generated ids, the stop id excluded
    int finish;     // ENGINE_STOP_* reason
} item_t;

// reads a JSONL data file; malformed lines (not an object with a string "id") are reported on
// stderr with their line number and skipped. Returns an array of objects, NULL when unreadable.
static json_t *load_lines(const char *path, long limit) {
    FILE *f = fopen(path, "r");
    if (!f) { err_set("%s: %s", path, strerror(errno)); return NULL; }
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while ((limit < 0 || (long)json_array_size(arr) < limit) && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        json_error_t je;
        json_t *e = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!json_is_string(json_object_get(e, "id"))) {
            fprintf(stderr, "trustee eval: %s:%ld: expected a JSON object with a string \"id\"%s%s; line skipped\n",
                    path, lineno, e ? "" : ": ", e ? "" : je.text);
            json_decref(e);
            continue;
        }
        json_array_append_new(arr, e);
    }
    free(line);
    fclose(f);
    return arr;
}

// renders one entry's prompt: tools = its functions, turns = its question; -1 on bad data
static int render_prompt(const tokenizer_t *tok, const json_t *entry, ids_t *out) {
    const char *id = json_string_value(json_object_get(entry, "id"));
    json_t *fns = json_object_get(entry, "function"), *question = json_object_get(entry, "question");
    if (!json_is_array(fns) || !json_is_array(question))
        return err_set("entry %s: expected lists \"function\" and \"question\"", id);
    chat_t c;
    if (chat_init(&c, tok)) return -1;
    json_t *tools = json_array();
    size_t i, j;
    json_t *fn, *turn, *msg;
    json_array_foreach(fns, i, fn)
        json_array_append_new(tools, json_pack("{s:s, s:O}", "type", "function", "function", fn));
    int rc = chat_set_tools(&c, tools);
    json_decref(tools);
    json_array_foreach(question, i, turn) json_array_foreach(turn, j, msg) {
        if (rc) break;
        const char *role = json_string_value(json_object_get(msg, "role"));
        const char *content = json_string_value(json_object_get(msg, "content"));
        if (!role || !content) rc = err_set("entry %s: a question message without role/content", id);
        else if (!strcmp(role, "system")) rc = chat_add_system(&c, content);
        else if (!strcmp(role, "user")) rc = chat_add_user(&c, content);
        else rc = err_set("entry %s: unexpected role '%s' in the question", id, role);
    }
    if (!rc) rc = chat_render_gen_prompt(&c, out);
    chat_free(&c);
    return rc;
}

// decodes a reply the way BFCL's Qwen FC handler does (see the top of this file)
static json_t *decode_calls(const char *text, size_t len) {
    chat_parsed_t p;
    json_t *calls = json_array();
    if (chat_parse_assistant(text, len, &p)) return calls; // out of memory: no calls
    for (int k = 0; k < p.n_calls; k++) {
        const chat_parsed_call_t *c = &p.calls[k];
        if (c->status == CHAT_CALL_BAD_JSON || c->status == CHAT_CALL_UNCLOSED_TAG) continue;
        if (c->status == CHAT_CALL_OK)
            json_array_append_new(calls, json_pack("{s:s, s:O}", "name", c->name, "arguments", c->arguments));
        else // not decodable: the checker fails the whole decode
            json_array_append_new(calls, json_pack("{s:o, s:o}", "name", c->name ? json_string(c->name) : json_null(),
                                                   "arguments", json_null()));
    }
    chat_parsed_free(&p);
    return calls;
}

static const char *finish_name(int f) {
    return f == ENGINE_STOP_ID ? "stop" : f == ENGINE_STOP_LENGTH ? "length" : "other";
}

// generates the replies of items[0..n) greedily, `batch` sequences at a time
static int generate_all(const qwen3_t *m, item_t *items, int n, int batch, int max_tokens) {
    engine_gen_t gen = {{0, 0, 1, 0}, max_tokens, 0, NULL, 0, 0, NULL, 0}; // greedy
    engine_event_t *ev = malloc((size_t)batch * sizeof *ev);
    int *handle_item = malloc((size_t)batch * 4 * sizeof *handle_item); // handle -> item
    if (!ev || !handle_item) { free(ev); free(handle_item); return err_set("out of memory"); }
    int rc = 0;
    for (int w = 0; w < n && !rc; w += batch) {
        int nw = n - w < batch ? n - w : batch, max_prompt = 1;
        for (int i = 0; i < nw; i++)
            if (items[w + i].prompt.n > max_prompt) max_prompt = items[w + i].prompt.n;
        engine_opts_t o = {nw, max_prompt < 2048 ? 2048 : max_prompt, max_prompt + max_tokens + 1, 16, 0,
                           NULL, NULL};
        engine_t *e = engine_new(m, &o);
        if (!e) { rc = -1; break; }
        for (int i = 0; i < nw && !rc; i++) {
            gen.stream = (uint64_t)(w + i);
            int h = engine_add(e, items[w + i].prompt.ids, items[w + i].prompt.n, &gen, -1);
            if (h < 0 || h >= batch * 4) rc = h < 0 ? -1 : err_set("engine handle %d out of range", h);
            else handle_item[h] = w + i;
        }
        while (!rc) {
            int k = engine_step(e, ev, nw);
            if (k < 0) { rc = -1; break; }
            if (k == 0 && engine_pending(e) == 0) break;
            for (int j = 0; j < k && !rc; j++) {
                item_t *it = &items[handle_item[ev[j].seq]];
                if (ev[j].finish == ENGINE_STOP_ID) { it->finish = ev[j].finish; continue; }
                rc = ids_push(&it->out, ev[j].token);
                if (ev[j].finish) it->finish = ev[j].finish;
            }
        }
        engine_free(e);
    }
    free(ev);
    free(handle_item);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) { fputs(EVAL_USAGE, stdout); return 0; }
    int err = 0;
    long limit, max_tokens, batch, threads;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *bench = err ? NULL : args_str(&a, "bench", NULL, &err);
    const char *data = err ? NULL : args_str(&a, "data", NULL, &err);
    const char *cats_arg = err ? NULL : args_str(&a, "categories", NULL, &err);
    const char *out_path = err ? NULL : args_str(&a, "out", NULL, &err);
    const char *results = err ? NULL : args_str(&a, "results", NULL, &err);
    if (err || args_int(&a, "limit", -1, &limit) || args_int(&a, "max-tokens", 512, &max_tokens) ||
        args_int(&a, "batch", 16, &batch) || args_int(&a, "threads", 0, &threads) || args_finish(&a))
        return cmd_fail("eval");
    if (results && !err) {
        if (!bench || strcmp(bench, "bfcl")) { err_set("--results needs --bench bfcl"); return cmd_fail("eval"); }
        return summarize_results(results) ? cmd_fail("eval") : 0;
    }
    if (!dir || !bench || !data) { err_set("--model DIR, --bench bfcl and --data DIR are required (see --help)"); return cmd_fail("eval"); }
    if (strcmp(bench, "bfcl")) { err_set("--bench: expected bfcl, found '%s'", bench); return cmd_fail("eval"); }
    if (max_tokens < 1 || max_tokens > 100000 || batch < 1 || batch > 1024 || limit < -1) {
        err_set("--max-tokens must be in 1..100000, --batch in 1..1024, --limit >= 0");
        return cmd_fail("eval");
    }
    kernels_set_threads((int)threads);

    // the categories: named ones must exist; by default those present in DATA
    char *cats_buf = NULL;
    const char *cats[64];
    int n_cats = 0;
    char path[4096];
    if (cats_arg) {
        cats_buf = strdup(cats_arg);
        for (char *s = strtok(cats_buf, ","); s && n_cats < 64; s = strtok(NULL, ",")) {
            if (bfcl_category_kind(s) == BFCL_UNKNOWN) {
                err_set("--categories: unknown category '%s' (single-turn categories only)", s);
                free(cats_buf);
                return cmd_fail("eval");
            }
            cats[n_cats++] = s;
        }
    } else {
        for (int i = 0; i < N_DEFAULT_CATEGORIES; i++) {
            snprintf(path, sizeof path, "%s/BFCL_v4_%s.json", data, DEFAULT_CATEGORIES[i]);
            FILE *f = fopen(path, "r");
            if (f) { fclose(f); cats[n_cats++] = DEFAULT_CATEGORIES[i]; }
        }
        if (!n_cats) { err_set("%s: no BFCL_v4_<category>.json files", data); return cmd_fail("eval"); }
    }

    int rc = 1, loaded = 0;
    qwen3_t m;
    FILE *out = NULL;
    tokenizer_t *tok = tokenizer_load_dir(dir, 1);
    if (!tok) goto done;
    if (qwen3_load(&m, dir, DEVICE_CPU)) goto done;
    loaded = 1;
    if (out_path && !(out = fopen(out_path, "w"))) { err_set("%s: %s", out_path, strerror(errno)); goto done; }

    long total = 0, total_valid = 0;
    cat_score_t scores[64] = {{"", 0, 0}};
    for (int ci = 0; ci < n_cats; ci++) {
        const char *cat = cats[ci];
        bfcl_kind_t kind = bfcl_category_kind(cat);
        snprintf(path, sizeof path, "%s/BFCL_v4_%s.json", data, cat);
        json_t *entries = load_lines(path, limit), *answers = NULL, *by_id = json_object();
        if (!entries) { json_decref(by_id); goto done; }
        if (kind != BFCL_IRRELEVANCE) {
            snprintf(path, sizeof path, "%s/possible_answer/BFCL_v4_%s.json", data, cat);
            if (!(answers = load_lines(path, -1))) { json_decref(entries); json_decref(by_id); goto done; }
            size_t i;
            json_t *ans;
            json_array_foreach(answers, i, ans)
                json_object_set(by_id, json_string_value(json_object_get(ans, "id")), ans);
        }
        // render every prompt; an entry without answer or with bad data is reported and skipped
        int n = 0;
        item_t *items = calloc(json_array_size(entries) + 1, sizeof *items);
        size_t i;
        json_t *entry;
        json_array_foreach(entries, i, entry) {
            item_t *it = &items[n];
            const char *id = json_string_value(json_object_get(entry, "id"));
            it->entry = entry;
            it->truth = json_object_get(json_object_get(by_id, id), "ground_truth");
            if (kind != BFCL_IRRELEVANCE && !json_is_array(it->truth)) {
                fprintf(stderr, "trustee eval: %s: entry %s has no answer in possible_answer; skipped\n", cat, id);
                continue;
            }
            if (render_prompt(tok, entry, &it->prompt)) {
                fprintf(stderr, "trustee eval: %s: %s; skipped\n", cat, err_msg());
                ids_free(&it->prompt);
                continue;
            }
            n++;
        }
        int grc = generate_all(&m, items, n, (int)batch, (int)max_tokens);
        long valid = 0;
        for (int k = 0; k < n && !grc; k++) {
            item_t *it = &items[k];
            char *text = NULL;
            size_t len = 0;
            if (tokenizer_decode(tok, it->out.ids, it->out.n, &text, &len)) { grc = -1; break; }
            json_t *calls = decode_calls(text, len);
            const char *verdict = bfcl_check(kind, json_object_get(it->entry, "function"), it->truth, calls);
            if (!verdict) valid++;
            if (out) {
                json_t *rec = json_pack("{s:O, s:s, s:b, s:o, s:O, s:s%, s:i, s:i, s:s}", "id",
                                        json_object_get(it->entry, "id"), "category", cat, "valid", !verdict,
                                        "error_type", verdict ? json_string(verdict) : json_null(),
                                        "candidate", calls, "text", text, len, "n_prompt", it->prompt.n,
                                        "n_generated", it->out.n, "finish", finish_name(it->finish));
                char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
                if (s) fprintf(out, "%s\n", s);
                else fprintf(stderr, "trustee eval: %s: cannot write the record of %s\n", cat,
                             json_string_value(json_object_get(it->entry, "id")));
                free(s);
                json_decref(rec);
            }
            json_decref(calls);
            free(text);
        }
        if (!grc) printf("%s: %d entries, %ld valid, accuracy %.4f\n", cat, n, valid, n ? (double)valid / n : 0.0);
        scores[ci] = (cat_score_t){cat, n, valid};
        fflush(stdout);
        total += n, total_valid += valid;
        for (int k = 0; k < n; k++) { ids_free(&items[k].prompt); ids_free(&items[k].out); }
        free(items);
        json_decref(entries);
        json_decref(answers);
        json_decref(by_id);
        if (grc) goto done;
    }
    printf("# total: %ld entries, %ld valid\n", total, total_valid);
    print_summary(scores, n_cats);
    rc = 0;
done:
    if (out && fclose(out) && !rc) rc = 1, err_set("%s: write failed", out_path);
    if (rc) cmd_fail("eval");
    if (loaded) qwen3_free(&m);
    tokenizer_free(tok);
    free(cats_buf);
    return rc;
}
