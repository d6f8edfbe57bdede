#include "catalog.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/sampler.h"
#include "sim/data.h"

// ---- locating a tool in its file's text ----

// start offsets of the elements of the top-level array, by a small scan that skips strings
// (the text already parsed as JSON, so it is well formed). Returns the count found, <= cap.
static int element_offsets(const char *text, size_t *off, int cap) {
    int depth = 0, n = 0, expect = 0; // expect: at depth 1, the next value starts an element
    for (size_t i = 0; text[i]; i++) {
        char ch = text[i];
        if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') continue;
        if (depth == 1 && expect && ch != ']') {
            if (n < cap) off[n++] = i;
            expect = 0;
        }
        if (ch == '"') { // skip a string
            for (i++; text[i] && text[i] != '"'; i++)
                if (text[i] == '\\' && text[i + 1]) i++;
            if (!text[i]) break;
        } else if (ch == '[' || ch == '{') {
            depth++;
            if (depth == 1) expect = 1;
        } else if (ch == ']' || ch == '}') {
            depth--;
        } else if (ch == ',' && depth == 1) {
            expect = 1;
        }
    }
    return n;
}

static int line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off && text[i]; i++) line += text[i] == '\n';
    return line;
}

// line of `"name" : "NAME"` at or after offset start (within the element), else of start
static int name_line(const char *text, size_t start, size_t end, const char *name) {
    size_t nlen = name ? strlen(name) : 0;
    for (const char *p = strstr(text + start, "\"name\""); name && p && (size_t)(p - text) < end;
         p = strstr(p + 1, "\"name\"")) {
        const char *q = p + 6;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q++ != ':') continue;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q == '"' && strncmp(q + 1, name, nlen) == 0 && q[1 + nlen] == '"') return line_of(text, (size_t)(p - text));
    }
    return line_of(text, start);
}

// ---- schema validation ----

static const char *TYPES[] = {"string", "number", "integer", "boolean", "array", "object", "null"};
static const char *KEYWORDS[] = {"type", "description", "enum", "minimum", "maximum", "items", "properties",
                                 "required", "default", "minLength", "maxLength", "minItems", "maxItems",
                                 "pattern", "format", "additionalProperties", "exclusiveMinimum",
                                 "exclusiveMaximum", "multipleOf", "title", "examples", "uniqueItems"};

static int known_type(const char *t) {
    for (size_t i = 0; i < sizeof TYPES / sizeof *TYPES; i++)
        if (strcmp(t, TYPES[i]) == 0) return 1;
    return 0;
}

static int value_has_type(const json_t *v, const char *t) {
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "integer")) return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == (json_int_t)json_real_value(v));
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    return 0;
}

// where: "parameter 'city'" etc.; errors come back as text in err_msg, the caller adds file:line
static int check_schema(const json_t *s, const char *where, int need_description, int depth) {
    if (depth > 16) return err_set("%s: schema nested deeper than 16 levels", where);
    if (!json_is_object(s)) return err_set("%s: expected a JSON schema object", where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof KEYWORDS / sizeof *KEYWORDS; i++) known |= strcmp(k, KEYWORDS[i]) == 0;
        if (!known) return err_set("%s: unknown schema keyword \"%s\"", where, k);
    }
    json_t *type = json_object_get(s, "type");
    const char *t = json_string_value(type);
    if (!t) return err_set("%s: \"type\" must be a string", where);
    if (!known_type(t))
        return err_set("%s: unknown type \"%s\" (expected string, number, integer, boolean, array, object or null)",
                       where, t);
    json_t *desc = json_object_get(s, "description");
    if (desc && !json_is_string(desc)) return err_set("%s: \"description\" must be a string", where);
    if (need_description && (!desc || !json_string_length(desc)))
        return err_set("%s: needs a non-empty \"description\"", where);
    json_t *en = json_object_get(s, "enum");
    if (en) {
        if (!json_is_array(en) || !json_array_size(en)) return err_set("%s: \"enum\" must be a non-empty array", where);
        for (size_t i = 0; i < json_array_size(en); i++)
            if (!value_has_type(json_array_get(en, i), t))
                return err_set("%s: enum value %zu is not of type %s", where, i, t);
    }
    json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
    if ((mn || mx) && strcmp(t, "number") && strcmp(t, "integer"))
        return err_set("%s: minimum/maximum on a non-numeric type %s", where, t);
    if ((mn && !json_is_number(mn)) || (mx && !json_is_number(mx)))
        return err_set("%s: minimum/maximum must be numbers", where);
    if (mn && mx && json_number_value(mn) > json_number_value(mx))
        return err_set("%s: minimum %g > maximum %g", where, json_number_value(mn), json_number_value(mx));
    static const char *COUNTS[] = {"minLength", "maxLength", "minItems", "maxItems"};
    for (int i = 0; i < 4; i++) {
        json_t *c = json_object_get(s, COUNTS[i]);
        if (c && (!json_is_integer(c) || json_integer_value(c) < 0))
            return err_set("%s: \"%s\" must be a non-negative integer", where, COUNTS[i]);
    }
    json_t *def = json_object_get(s, "default");
    if (def && !value_has_type(def, t)) return err_set("%s: default value is not of type %s", where, t);
    if (!strcmp(t, "array")) {
        json_t *items = json_object_get(s, "items");
        if (!items) return err_set("%s: an array needs an \"items\" schema", where);
        char w[512];
        snprintf(w, sizeof w, "%s items", where);
        if (check_schema(items, w, 0, depth + 1)) return -1;
    }
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    if ((props || req) && strcmp(t, "object")) return err_set("%s: properties/required on a non-object type %s", where, t);
    if (props) {
        if (!json_is_object(props)) return err_set("%s: \"properties\" must be an object", where);
        json_object_foreach(props, k, v) {
            char w[512];
            snprintf(w, sizeof w, "%s > parameter '%s'", where, k);
            if (check_schema(v, w, 1, depth + 1)) return -1;
        }
    }
    if (req) {
        if (!json_is_array(req)) return err_set("%s: \"required\" must be an array of names", where);
        for (size_t i = 0; i < json_array_size(req); i++) {
            const char *r = json_string_value(json_array_get(req, i));
            if (!r) return err_set("%s: \"required\" entry %zu is not a string", where, i);
            if (!json_object_get(props, r)) return err_set("%s: required '%s' is not a property", where, r);
            for (size_t j = 0; j < i; j++)
                if (!strcmp(r, json_string_value(json_array_get(req, j))))
                    return err_set("%s: '%s' is listed twice in \"required\"", where, r);
        }
    }
    return 0;
}

static int identifier_like(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

// the tool object itself (no file:line; the caller wraps)
static int check_tool(const json_t *t, const char **name_out) {
    *name_out = NULL;
    if (!json_is_object(t)) return err_set("expected a tool object {\"type\": \"function\", \"function\": {...}}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v) if (strcmp(k, "type") && strcmp(k, "function")) return err_set(
        "unknown key \"%s\" in a tool (expected \"type\" and \"function\")", k);
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!type || strcmp(type, "function")) return err_set("\"type\" must be \"function\"");
    json_t *f = json_object_get(t, "function");
    if (!json_is_object(f)) return err_set("\"function\" must be an object");
    const char *name = json_string_value(json_object_get(f, "name"));
    if (!name) return err_set("the function needs a \"name\" string");
    *name_out = name;
    json_object_foreach(f, k, v) if (strcmp(k, "name") && strcmp(k, "description") && strcmp(k, "parameters")) return err_set(
        "tool '%s': unknown key \"%s\" in \"function\" (expected name, description, parameters)", name, k);
    if (!identifier_like(name))
        return err_set("tool '%s': name must match [A-Za-z_][A-Za-z0-9_]* (at most 64 bytes)", name);
    json_t *d = json_object_get(f, "description");
    if (!json_is_string(d) || !json_string_length(d)) return err_set("tool '%s': needs a non-empty \"description\"", name);
    json_t *p = json_object_get(f, "parameters");
    if (!p) return err_set("tool '%s': needs \"parameters\" (an object schema)", name);
    if (!json_is_object(p) || !json_is_string(json_object_get(p, "type")) ||
        strcmp(json_string_value(json_object_get(p, "type")), "object"))
        return err_set("tool '%s': \"parameters\" must be a schema of type \"object\"", name);
    if (!json_is_object(json_object_get(p, "properties")))
        return err_set("tool '%s': \"parameters\" needs a \"properties\" object (may be empty)", name);
    char where[160];
    snprintf(where, sizeof where, "tool '%s'", name);
    return check_schema(p, where, 0, 0);
}

// ---- loading ----

typedef struct {
    catalog_tool_t tool;
    const char *cat; // borrowed
} staged_t;

static char *category_of(const char *file) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".json")) n -= 5;
    return strndup(base, n);
}

void catalog_free(catalog_t *c) {
    for (int i = 0; i < c->n_tools; i++) {
        free(c->tools[i].name);
        free(c->tools[i].description);
        free(c->tools[i].file);
        json_decref(c->tools[i].schema);
    }
    for (int i = 0; i < c->n_categories; i++) free(c->categories[i]);
    free(c->tools);
    free(c->categories);
    free(c->cat_first);
    free(c->cat_count);
    memset(c, 0, sizeof *c);
}

static int cmp_cat(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int catalog_load_texts(catalog_t *c, int n_files, const char *const *files, const char *const *texts) {
    memset(c, 0, sizeof *c);
    if (n_files < 1) return err_set("tool catalog: no tool files");
    // categories, sorted, unique
    c->categories = calloc((size_t)n_files, sizeof *c->categories);
    c->cat_first = calloc((size_t)n_files, sizeof *c->cat_first);
    c->cat_count = calloc((size_t)n_files, sizeof *c->cat_count);
    if (!c->categories || !c->cat_first || !c->cat_count) goto oom;
    for (int f = 0; f < n_files; f++) {
        if (!(c->categories[f] = category_of(files[f]))) goto oom;
        c->n_categories++;
    }
    qsort(c->categories, (size_t)n_files, sizeof *c->categories, cmp_cat);
    for (int i = 1; i < n_files; i++)
        if (!strcmp(c->categories[i], c->categories[i - 1])) {
            err_set("tool catalog: two files give category '%s'", c->categories[i]);
            catalog_free(c);
            return -1;
        }
    // tools, category by category
    for (int ci = 0; ci < c->n_categories; ci++) {
        int f = 0;
        for (; f < n_files; f++) {
            char *cat = category_of(files[f]);
            int same = cat && !strcmp(cat, c->categories[ci]);
            free(cat);
            if (same) break;
        }
        const char *file = files[f], *text = texts[f];
        json_error_t e;
        json_t *root = json_loads(text, 0, &e);
        if (!root) {
            err_set("%s:%d:%d: invalid JSON: %s", file, e.line, e.column, e.text);
            catalog_free(c);
            return -1;
        }
        if (!json_is_array(root)) {
            json_decref(root);
            err_set("%s:1: expected a JSON array of tools", file);
            catalog_free(c);
            return -1;
        }
        size_t n = json_array_size(root);
        size_t *off = malloc((n + 1) * sizeof *off);
        catalog_tool_t *grown = realloc(c->tools, (size_t)(c->n_tools + (int)n + 1) * sizeof *c->tools);
        if (!off || !grown) {
            free(off);
            json_decref(root);
            if (grown) c->tools = grown;
            goto oom;
        }
        c->tools = grown;
        int n_off = element_offsets(text, off, (int)n);
        c->cat_first[ci] = c->n_tools;
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(root, i);
            size_t start = (int)i < n_off ? off[i] : 0, end = (int)i + 1 < n_off ? off[i + 1] : strlen(text);
            const char *name = NULL;
            int rc = check_tool(t, &name);
            int line = name_line(text, start, end, name);
            if (rc == 0)
                for (int j = 0; j < c->n_tools; j++)
                    if (!strcmp(c->tools[j].name, name)) {
                        rc = err_set("tool '%s': name already used at %s:%d", name, c->tools[j].file, c->tools[j].line);
                        break;
                    }
            if (rc) {
                err_wrap("%s:%d: ", file, line);
                free(off);
                json_decref(root);
                catalog_free(c);
                return -1;
            }
            json_t *fn = json_object_get(t, "function");
            catalog_tool_t *ct = &c->tools[c->n_tools];
            memset(ct, 0, sizeof *ct);
            ct->name = strdup(name);
            ct->description = strdup(json_string_value(json_object_get(fn, "description")));
            ct->file = strdup(file);
            ct->line = line;
            ct->category = ci;
            ct->schema = json_incref(t);
            c->n_tools++;
            c->cat_count[ci]++;
            if (!ct->name || !ct->description || !ct->file) {
                free(off);
                json_decref(root);
                goto oom;
            }
        }
        free(off);
        json_decref(root);
    }
    if (c->n_tools == 0) {
        catalog_free(c);
        return err_set("tool catalog: the files hold no tools");
    }
    return 0;
oom:
    catalog_free(c);
    return err_set("tool catalog: out of memory");
}

int catalog_load_embedded(catalog_t *c) {
    int n = 0, cap = sim_data_count();
    const char **files = calloc((size_t)cap + 1, sizeof *files), **texts = calloc((size_t)cap + 1, sizeof *texts);
    if (!files || !texts) {
        free(files);
        free(texts);
        return err_set("tool catalog: out of memory");
    }
    for (int i = 0; i < cap; i++) {
        const char *name = sim_data_name(i);
        size_t len = strlen(name);
        if (strncmp(name, "tools/", 6) || len < 11 || strcmp(name + len - 5, ".json") || strchr(name + 6, '/')) continue;
        files[n] = name;
        texts[n] = sim_data_file(name, NULL);
        n++;
    }
    int rc = n ? catalog_load_texts(c, n, files, texts) : err_set("tool catalog: no tools/*.json embedded in the binary");
    free(files);
    free(texts);
    return rc;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int catalog_load_dir(catalog_t *c, const char *dir) {
    memset(c, 0, sizeof *c);
    DIR *d = opendir(dir);
    if (!d) return err_set("%s: cannot open the tool directory", dir);
    char **paths = NULL, **texts = NULL;
    int n = 0, rc = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") || de->d_name[0] == '.') continue;
        char **p = realloc(paths, (size_t)(n + 1) * sizeof *paths);
        if (!p) break;
        paths = p;
        size_t plen = strlen(dir) + len + 2;
        if (!(paths[n] = malloc(plen))) break;
        snprintf(paths[n], plen, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        free(paths);
        return err_set("%s: no *.json tool files in this directory", dir);
    }
    qsort(paths, (size_t)n, sizeof *paths, cmp_name);
    texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; texts && i < n; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            err_set("%s: cannot open", paths[i]);
            goto done;
        }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        texts[i] = malloc((size_t)(sz > 0 ? sz : 0) + 1);
        size_t got = texts[i] ? fread(texts[i], 1, (size_t)(sz > 0 ? sz : 0), f) : 0;
        fclose(f);
        if (!texts[i] || (long)got != sz) {
            err_set("%s: cannot read", paths[i]);
            goto done;
        }
        texts[i][got] = 0;
    }
    rc = texts ? catalog_load_texts(c, n, (const char *const *)paths, (const char *const *)texts)
               : err_set("tool catalog: out of memory");
done:
    for (int i = 0; i < n; i++) {
        free(paths[i]);
        if (texts) free(texts[i]);
    }
    free(paths);
    free(texts);
    return rc;
}

int catalog_find(const catalog_t *c, const char *name) {
    for (int i = 0; i < c->n_tools; i++)
        if (!strcmp(c->tools[i].name, name)) return i;
    return -1;
}

int catalog_find_category(const catalog_t *c, const char *name) {
    for (int i = 0; i < c->n_categories; i++)
        if (!strcmp(c->categories[i], name)) return i;
    return -1;
}

// ---- sampling ----

typedef struct {
    uint64_t seed, stream, step;
} draw_t;

static int draw_below(draw_t *d, int n) { // uniform in [0, n)
    int v = (int)(sampler_uniform(d->seed, d->stream, d->step++) * n);
    return v >= n ? n - 1 : v;
}

int catalog_sample(const catalog_t *c, int k, int n_distractors, int category, uint64_t seed, uint64_t stream,
                   int *out, int *is_core, int *core_category) {
    if (k < 1 || k > c->n_tools) return err_set("catalog sample: k must be in [1, %d], got %d", c->n_tools, k);
    if (n_distractors < 0 || n_distractors > k - 1)
        return err_set("catalog sample: distractors must be in [0, k-1 = %d], got %d", k - 1, n_distractors);
    if (category < -1 || category >= c->n_categories)
        return err_set("catalog sample: category %d out of range [-1, %d)", category, c->n_categories);
    draw_t d = {seed, stream, 0};
    if (category < 0) { // uniform over non-empty categories
        int nonempty = 0;
        for (int i = 0; i < c->n_categories; i++) nonempty += c->cat_count[i] > 0;
        int pick = draw_below(&d, nonempty);
        for (int i = 0; i < c->n_categories; i++)
            if (c->cat_count[i] > 0 && pick-- == 0) {
                category = i;
                break;
            }
    }
    int n_cat = c->cat_count[category], first = c->cat_first[category];
    int n_core = k - n_distractors < n_cat ? k - n_distractors : n_cat;
    int n_other = c->n_tools - n_cat;
    if (k - n_core > n_other)
        return err_set("catalog sample: %d tools from outside category '%s' asked, only %d exist", k - n_core,
                       c->categories[category], n_other);
    int *pool = malloc((size_t)c->n_tools * sizeof *pool);
    if (!pool) return err_set("catalog sample: out of memory");
    // core: partial Fisher-Yates over the category's tools
    for (int i = 0; i < n_cat; i++) pool[i] = first + i;
    for (int i = 0; i < n_core; i++) {
        int j = i + draw_below(&d, n_cat - i);
        int t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        out[i] = pool[i];
    }
    // distractors: partial Fisher-Yates over every tool outside the category
    int m = 0;
    for (int i = 0; i < c->n_tools; i++)
        if (c->tools[i].category != category) pool[m++] = i;
    for (int i = 0; i < k - n_core; i++) {
        int j = i + draw_below(&d, m - i);
        int t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        out[n_core + i] = pool[i];
    }
    free(pool);
    // shuffle the whole list so position says nothing
    for (int i = k - 1; i > 0; i--) {
        int j = draw_below(&d, i + 1);
        int t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    if (is_core)
        for (int i = 0; i < k; i++) is_core[i] = c->tools[out[i]].category == category;
    if (core_category) *core_category = category;
    return 0;
}

json_t *catalog_tools_json(const catalog_t *c, const int *idx, int n) {
    json_t *a = json_array();
    if (!a) {
        err_set("tool catalog: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= c->n_tools) {
            json_decref(a);
            err_set("tool catalog: tool index %d out of range [0, %d)", idx[i], c->n_tools);
            return NULL;
        }
        json_array_append(a, c->tools[idx[i]].schema);
    }
    return a;
}
