// sim/catalog: the shipped catalog loads and matches the files as jansson reads them directly;
// malformed files give file:line errors (lines counted by hand in the texts below); sampling is
// deterministic, category-coherent and covers the catalog.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/err.h"
#include "sim/catalog.h"
#include "test.h"

// the shipped files read straight from the source tree with jansson (not through the catalog)
static void test_shipped(void) {
    catalog_t c;
    if (catalog_load_embedded(&c)) {
        CHECK(0, "load embedded: %s", err_msg());
        return;
    }
    printf("shipped catalog: %d categories, %d tools:", c.n_categories, c.n_tools);
    for (int i = 0; i < c.n_categories; i++) printf(" %s=%d", c.categories[i], c.cat_count[i]);
    printf("\n");
    CHECK(c.n_categories >= 8, "%d categories, want >= 8", c.n_categories);
    CHECK(c.n_tools >= 60, "%d tools, want >= 60", c.n_tools);
    int total = 0;
    for (int ci = 0; ci < c.n_categories; ci++) {
        char path[512];
        snprintf(path, sizeof path, "%s/sim/data/tools/%s.json", SOURCE_DIR, c.categories[ci]);
        json_error_t e;
        json_t *root = json_load_file(path, 0, &e);
        CHECK(root && json_is_array(root), "%s: %s", path, e.text);
        if (!root) continue;
        CHECK((int)json_array_size(root) == c.cat_count[ci], "%s: %zu tools in the file, %d loaded", path, json_array_size(root),
              c.cat_count[ci]);
        for (size_t i = 0; i < json_array_size(root) && (int)i < c.cat_count[ci]; i++) {
            const catalog_tool_t *t = &c.tools[c.cat_first[ci] + (int)i];
            CHECK(json_equal(t->schema, json_array_get(root, i)) && t->category == ci, "%s tool %zu differs", path, i);
            CHECK(t->line >= 2 && t->description[0], "%s: tool %s line %d", path, t->name, t->line);
            CHECK(catalog_find(&c, t->name) == c.cat_first[ci] + (int)i, "find %s", t->name);
        }
        total += (int)json_array_size(root);
        json_decref(root);
    }
    CHECK(total == c.n_tools, "files hold %d tools, catalog %d", total, c.n_tools);
    // the line of the first tool's name: line 5 in the pretty-printed files ("[", "{", "type", "function", "name")
    int i = catalog_find(&c, "search_flights");
    CHECK(i >= 0 && c.tools[i].line == 5 && !strcmp(c.tools[i].file, "tools/travel.json"), "search_flights at %s:%d",
          i >= 0 ? c.tools[i].file : "?", i >= 0 ? c.tools[i].line : -1);
    CHECK(catalog_find(&c, "no_such_tool") == -1 && catalog_find_category(&c, "travel") >= 0, "find");
    catalog_free(&c);
}

// a good two-tool file around one bad tool (the bad tool's "name" is on line 9)
static const char *GOOD1 = "{\"type\": \"function\", \"function\": {\"name\": \"good_one\", \"description\": \"d\",\n"
                           "  \"parameters\": {\"type\": \"object\", \"properties\": {}}}}";

static void expect_error(const char *label, const char *file, const char *text, const char *want_loc, const char *want_msg) {
    catalog_t c;
    const char *files[2] = {"tools/aaa.json", file}; // sorts first: loaded first
    const char *texts[2] = {"[" "{\"type\": \"function\", \"function\": {\"name\": \"fine\", \"description\": \"d\", "
                            "\"parameters\": {\"type\": \"object\", \"properties\": {}}}}" "]",
                            text};
    int rc = catalog_load_texts(&c, 2, files, texts);
    CHECK(rc == -1, "%s: accepted", label);
    if (rc == 0) {
        catalog_free(&c);
        return;
    }
    CHECK(!strncmp(err_msg(), want_loc, strlen(want_loc)) && strstr(err_msg(), want_msg), "%s: got \"%s\", want \"%s...%s\"", label,
          err_msg(), want_loc, want_msg);
    CHECK(c.n_tools == 0 && !c.tools, "%s: catalog not left empty", label);
    printf("  %-22s %s\n", label, err_msg());
}

static char *bad_file(const char *bad_function_body) {
    // line 1 "[", lines 2-3 GOOD1, line 4 ",", line 5 "{\"type\": \"function\", \"function\": {",
    // lines 6-8 padding, line 9 onwards: the bad function body (starting with its "name")
    static char buf[4096];
    snprintf(buf, sizeof buf, "[\n%s\n,\n{\"type\": \"function\", \"function\": {\n\n\n\n%s}}\n]\n", GOOD1, bad_function_body);
    return buf;
}

static void test_errors(void) {
    printf("malformed files:\n");
    expect_error("parse error", "tools/bad.json", "[\n {\"type\": \"function\",\n  \"function\": {\"name\": \"x\",}\n }\n]",
                 "tools/bad.json:3:", "invalid JSON");
    expect_error("not an array", "tools/bad.json", "{\"tools\": []}", "tools/bad.json:1:", "array");
    expect_error("no description", "tools/bad.json",
                 bad_file("\"name\": \"get_x\",\n \"parameters\": {\"type\": \"object\", \"properties\": {}}"), "tools/bad.json:9:",
                 "tool 'get_x': needs a non-empty \"description\"");
    expect_error("required missing", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"city\": {\"type\": \"string\", \"description\": \"c\"}}, \"required\": [\"city\", \"country\"]}"),
                 "tools/bad.json:9:", "required 'country' is not a property");
    expect_error("unknown type", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"n\": {\"type\": \"int\", \"description\": \"c\"}}}"),
                 "tools/bad.json:9:", "parameter 'n': unknown type \"int\"");
    expect_error("bad name", "tools/bad.json",
                 bad_file("\"name\": \"get-x\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", \"properties\": {}}"),
                 "tools/bad.json:9:", "name must match");
    expect_error("params not object", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\", \"parameters\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}"),
                 "tools/bad.json:9:", "\"parameters\" must be a schema of type \"object\"");
    expect_error("enum type", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"u\": {\"type\": \"string\", \"description\": \"c\", \"enum\": [\"a\", 2]}}}"),
                 "tools/bad.json:9:", "enum value 1 is not of type string");
    expect_error("min > max", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"k\": {\"type\": \"integer\", \"description\": \"c\", \"minimum\": 5, \"maximum\": 1}}}"),
                 "tools/bad.json:9:", "minimum 5 > maximum 1");
    expect_error("array no items", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"k\": {\"type\": \"array\", \"description\": \"c\"}}}"),
                 "tools/bad.json:9:", "needs an \"items\" schema");
    expect_error("nested items", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"k\": {\"type\": \"array\", \"description\": \"c\", \"items\": {\"type\": \"object\", \"properties\": "
                          "{\"f\": {\"type\": \"strin\", \"description\": \"x\"}}}}}}"),
                 "tools/bad.json:9:", "parameter 'k' items > parameter 'f': unknown type");
    expect_error("keyword typo", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": {}, "
                          "\"requried\": []}"),
                 "tools/bad.json:9:", "unknown schema keyword \"requried\"");
    expect_error("param no description", "tools/bad.json",
                 bad_file("\"name\": \"get_x\", \"description\": \"d\",\n \"parameters\": {\"type\": \"object\", \"properties\": "
                          "{\"q\": {\"type\": \"string\"}}}"),
                 "tools/bad.json:9:", "parameter 'q': needs a non-empty \"description\"");
    expect_error("duplicate name", "tools/bad.json", bad_file("\"name\": \"fine\", \"description\": \"d\", \"parameters\": {\"type\": "
                                                             "\"object\", \"properties\": {}}"),
                 "tools/bad.json:9:", "name already used at tools/aaa.json:1");
    expect_error("not a tool object", "tools/bad.json", "[\n  {\"type\": \"function\", \"function\": {\"name\": \"a_b\", \"description\": \"d\", "
                                                      "\"parameters\": {\"type\": \"object\", \"properties\": {}}}},\n\n  42\n]",
                 "tools/bad.json:4:", "expected a tool object");
    expect_error("no name", "tools/bad.json", "[\n\n  {\"type\": \"function\",\n   \"function\": {\"description\": \"d\"}}]",
                 "tools/bad.json:3:", "needs a \"name\"");
    // a tool whose name also appears as a property name earlier in the file: still the right line
    expect_error("name as property", "tools/bad.json",
                 "[{\"type\": \"function\", \"function\": {\"name\": \"a1\", \"description\": \"d\", \"parameters\": {\"type\": \"object\",\n"
                 "  \"properties\": {\"name\": {\"type\": \"string\", \"description\": \"the name\"}}}}},\n"
                 "{\"type\": \"function\", \"function\": {\n \"name\": \"a2\", \"description\": \"\"}}]",
                 "tools/bad.json:4:", "tool 'a2': needs a non-empty");
}

static void test_dir(void) {
    char dir[] = "/tmp/trustee_catalog_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/alpha.json", dir);
    snprintf(p2, sizeof p2, "%s/beta.json", dir);
    FILE *f = fopen(p1, "w");
    fprintf(f, "[\n%s\n]\n", GOOD1);
    fclose(f);
    f = fopen(p2, "w");
    fprintf(f, "[\n  {\"type\": \"function\", \"function\": {\"name\": \"b_tool\", \"description\": \"d\",\n"
               "   \"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"number\", \"description\": \"x\"}},\n"
               "                  \"required\": [\"x\"]}}}\n]\n");
    fclose(f);
    catalog_t c;
    CHECK(catalog_load_dir(&c, dir) == 0, "load dir: %s", err_msg());
    CHECK(c.n_categories == 2 && c.n_tools == 2 && !strcmp(c.categories[0], "alpha") && !strcmp(c.categories[1], "beta") &&
              !strcmp(c.tools[1].name, "b_tool") && c.tools[1].line == 2,
          "dir catalog: %d categories %d tools", c.n_categories, c.n_tools);
    catalog_free(&c);
    f = fopen(p2, "w"); // break beta.json: a required name that is not a property, tool name on line 2
    fprintf(f, "[\n  {\"type\": \"function\", \"function\": {\"name\": \"b_tool\", \"description\": \"d\",\n"
               "   \"parameters\": {\"type\": \"object\", \"properties\": {}, \"required\": [\"x\"]}}}\n]\n");
    fclose(f);
    char want[700];
    snprintf(want, sizeof want, "%s:2: tool 'b_tool'", p2);
    CHECK(catalog_load_dir(&c, dir) == -1 && !strncmp(err_msg(), want, strlen(want)), "dir error: %s", err_msg());
    printf("  %-22s %s\n", "directory", err_msg());
    unlink(p1);
    unlink(p2);
    CHECK(catalog_load_dir(&c, dir) == -1 && strstr(err_msg(), "no *.json"), "empty dir: %s", err_msg());
    rmdir(dir);
    CHECK(catalog_load_dir(&c, "/nonexistent/tools") == -1 && strstr(err_msg(), "/nonexistent/tools"), "missing dir");
}

static void test_sampling(void) {
    catalog_t c;
    if (catalog_load_embedded(&c)) return;
    int out[16], out2[16], core[16], cat, cat2;
    // deterministic
    int same = 1, differ = 0;
    for (uint64_t s = 0; s < 200; s++) {
        catalog_sample(&c, 6, 2, -1, 11, s, out, NULL, &cat);
        catalog_sample(&c, 6, 2, -1, 11, s, out2, NULL, &cat2);
        same &= cat == cat2 && !memcmp(out, out2, sizeof(int) * 6);
        catalog_sample(&c, 6, 2, -1, 12, s, out2, NULL, &cat2);
        differ += cat != cat2 || memcmp(out, out2, sizeof(int) * 6) != 0;
    }
    CHECK(same, "same (seed, stream) gave different tools");
    CHECK(differ > 150, "another seed changed only %d of 200 samples", differ);
    // coherent: k - d tools from the core category, d from others, all distinct
    int *cat_hits = calloc((size_t)c.n_categories, sizeof(int)), *tool_hits = calloc((size_t)c.n_tools, sizeof(int));
    int bad = 0, n_draws = 0;
    for (int k = 1; k <= 10; k++)
        for (int d = 0; d < k; d++)
            for (uint64_t s = 0; s < 100; s++) {
                if (catalog_sample(&c, k, d, -1, 5, (uint64_t)(k * 100 + d) * 1000 + s, out, core, &cat)) {
                    bad++;
                    continue;
                }
                n_draws++;
                cat_hits[cat]++;
                int n_core = 0;
                for (int i = 0; i < k; i++) {
                    tool_hits[out[i]]++;
                    n_core += c.tools[out[i]].category == cat;
                    if (core[i] != (c.tools[out[i]].category == cat)) bad++;
                    for (int j = 0; j < i; j++) bad += out[i] == out[j];
                }
                int want_core = k - d < c.cat_count[cat] ? k - d : c.cat_count[cat];
                if (n_core != want_core) bad++;
            }
    CHECK(bad == 0, "%d incoherent samples", bad);
    int min_cat = n_draws, max_cat = 0, unused = 0;
    for (int i = 0; i < c.n_categories; i++) {
        min_cat = cat_hits[i] < min_cat ? cat_hits[i] : min_cat;
        max_cat = cat_hits[i] > max_cat ? cat_hits[i] : max_cat;
    }
    for (int i = 0; i < c.n_tools; i++) unused += tool_hits[i] == 0;
    printf("sampling: %d samples (k 1..10, distractors 0..k-1), core category drawn %d..%d times (expected %.0f each), "
           "%d tools never drawn\n",
           n_draws, min_cat, max_cat, (double)n_draws / c.n_categories, unused);
    // 5500 draws over 10 categories: expected 550, sd ~22; +-120 is > 5 sd
    CHECK(max_cat - min_cat < 240, "category draws uneven: %d..%d", min_cat, max_cat);
    CHECK(unused == 0, "%d tools never sampled", unused);
    free(cat_hits);
    free(tool_hits);
    // a fixed category; all of a category plus distractors beyond its size
    int tr = catalog_find_category(&c, "travel");
    CHECK(catalog_sample(&c, 3, 0, tr, 1, 1, out, NULL, &cat) == 0 && cat == tr && c.tools[out[0]].category == tr &&
              c.tools[out[1]].category == tr && c.tools[out[2]].category == tr,
          "fixed category");
    int nt = c.cat_count[tr];
    CHECK(catalog_sample(&c, nt + 2, 0, tr, 1, 2, out, core, &cat) == 0, "k above the category size: %s", err_msg());
    int nc = 0;
    for (int i = 0; i < nt + 2; i++) nc += core[i];
    CHECK(nc == nt, "category of %d tools: %d core", nt, nc);
    // errors
    CHECK(catalog_sample(&c, 0, 0, -1, 1, 1, out, NULL, NULL) == -1, "k = 0");
    CHECK(catalog_sample(&c, 3, 3, -1, 1, 1, out, NULL, NULL) == -1, "distractors = k");
    CHECK(catalog_sample(&c, 3, 1, c.n_categories, 1, 1, out, NULL, NULL) == -1, "category out of range");
    // tools JSON
    catalog_sample(&c, 4, 1, -1, 3, 3, out, NULL, NULL);
    json_t *tools = catalog_tools_json(&c, out, 4);
    CHECK(tools && json_array_size(tools) == 4 && json_equal(json_array_get(tools, 2), c.tools[out[2]].schema), "tools JSON");
    json_decref(tools);
    catalog_free(&c);
}

int main(void) {
    test_shipped();
    test_errors();
    test_dir();
    test_sampling();
    return test_exit("test_catalog");
}
