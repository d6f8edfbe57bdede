#include "copytask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "model/sampler.h"

#define STREAM_PICK 0x636f70797461736bull // "copytask": every draw of the generator but the digits
#define STREAM_DIGITS 0x6469676974730000ull
#define STREAM_WORDS 0x776f726473000000ull

typedef struct {
    uint64_t seed, step, word_step;
} rng_t;

static int rng_int(rng_t *r, int n) {
    int k = (int)(sampler_uniform(r->seed, STREAM_PICK, r->step++) * n);
    return k < n ? k : n - 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int has_digit(const char *s) {
    for (; *s; s++)
        if (is_digit(*s)) return 1;
    return 0;
}

char *copytask_redraw_digits(const char *v, uint64_t seed, uint64_t stream, uint64_t *step) {
    size_t n = strlen(v);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i <= n; i++) {
        char c = v[i];
        if (is_digit(c)) {
            int lo = (i == 0 || !is_digit(v[i - 1])) && c != '0'; // a run's first digit stays non-zero
            int d = lo + (int)(sampler_uniform(seed, stream, (*step)++) * (10 - lo));
            c = (char)('0' + (d > 9 ? 9 : d));
        }
        o[i] = c;
    }
    return o;
}

static int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_alpha(char c) { return is_lower(c) || is_upper(c); }

// a letter run [a, b) that copytask_redraw_words replaces: 3+ letters, all lower case or capitalized
// (an all-caps run like CHK is a code, left alone), and not the run after the last '.' when it
// ends the string (a file extension, a top-level domain)
static int word_replaceable(const char *v, size_t a, size_t b) {
    if (b - a < 3) return 0;
    for (size_t i = a + 1; i < b; i++)
        if (!is_lower(v[i])) return 0;
    if (v[b] == 0 && a > 0 && v[a - 1] == '.') return 0;
    return 1;
}

char *copytask_redraw_words(const char *v, const char *const *pool, int n_pool, uint64_t seed, uint64_t stream,
                            uint64_t *step) {
    size_t n = strlen(v), cap = 2 * n + 1, len = 0;
    char *o = malloc(cap);
    if (!o) return NULL;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && is_alpha(v[j])) j++;
        const char *w = v + i;
        size_t wl = j > i ? j - i : 1;
        int repl = j > i && n_pool > 0 && word_replaceable(v, i, j);
        if (repl) {
            int k = (int)(sampler_uniform(seed, stream, (*step)++) * n_pool);
            w = pool[k < n_pool ? k : n_pool - 1];
            wl = strlen(w);
        }
        if (len + wl + 1 > cap) {
            char *t = realloc(o, cap = 2 * (len + wl + 1));
            if (!t) return free(o), NULL;
            o = t;
        }
        memcpy(o + len, w, wl);
        if (repl && is_upper(v[i]) && is_lower(o[len])) o[len] = (char)(o[len] - 'a' + 'A');
        len += wl;
        i = j > i ? j : i + 1;
    }
    o[len] = 0;
    return o;
}

// ---- what the oracle conversations hold ----

typedef struct {
    json_t *tools; // object: tool name -> "parameters" schema (the first one seen)
    json_t *seen;  // object: parameter name -> array of the values calls gave it (scalars; arrays flattened)
    json_t *enums; // object: every enum member of every tool (kept as is in windows)
    const char **words; int n_words; // replaceable letter runs of the values seen, lower case, distinct
    json_t *word_set; // object holding them
    int *call_conv, *call_msg, n_calls; // every assistant message with tool calls
} harvest_t;

static void harvest_free(harvest_t *h) {
    json_decref(h->tools);
    json_decref(h->seen);
    json_decref(h->enums);
    json_decref(h->word_set);
    free(h->words);
    free(h->call_conv);
    free(h->call_msg);
}

static void seen_add(json_t *seen, const char *key, json_t *v) {
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) seen_add(seen, key, json_array_get(v, i));
        return;
    }
    if (!json_is_string(v) && !json_is_number(v)) return;
    json_t *a = json_object_get(seen, key);
    if (!a) json_object_set_new(seen, key, a = json_array());
    json_array_append(a, v);
}

static int harvest(const json_t *oracle, int fresh_words, harvest_t *h) {
    memset(h, 0, sizeof *h);
    h->tools = json_object();
    h->seen = json_object();
    size_t cap = 0;
    for (size_t c = 0; c < json_array_size(oracle); c++) {
        const json_t *conv = json_array_get(oracle, c);
        const json_t *tools = json_object_get(conv, "tools"), *msgs = json_object_get(conv, "messages");
        for (size_t i = 0; i < json_array_size(tools); i++) {
            json_t *f = json_object_get(json_array_get(tools, i), "function");
            const char *name = json_string_value(json_object_get(f, "name"));
            json_t *params = json_object_get(f, "parameters");
            if (name && json_is_object(params) && !json_object_get(h->tools, name)) json_object_set(h->tools, name, params);
        }
        for (size_t m = 0; m < json_array_size(msgs); m++) {
            const json_t *msg = json_array_get(msgs, m), *calls = json_object_get(msg, "tool_calls");
            if (json_array_size(calls) == 0) continue;
            for (size_t k = 0; k < json_array_size(calls); k++) {
                json_t *args = json_object_get(json_object_get(json_array_get(calls, k), "function"), "arguments");
                const char *key;
                json_t *v;
                json_object_foreach(args, key, v) seen_add(h->seen, key, v);
            }
            if ((size_t)h->n_calls == cap) {
                cap = cap ? 2 * cap : 256;
                int *a = realloc(h->call_conv, cap * sizeof *a), *b = a ? realloc(h->call_msg, cap * sizeof *b) : NULL;
                if (a) h->call_conv = a;
                if (!a || !b) return err_set("copytask: out of memory");
                h->call_msg = b;
            }
            h->call_conv[h->n_calls] = (int)c, h->call_msg[h->n_calls] = (int)m, h->n_calls++;
        }
    }
    if (h->n_calls == 0) return err_set("copytask: no oracle conversation has a tool call");
    // fresh words: the enum members; the word pool (lower case, 3-12 letters, from the string values
    // calls gave)
    h->enums = json_object();
    h->word_set = json_object();
    if (!fresh_words) return 0;
    const char *name, *key;
    json_t *params, *prop, *vals;
    json_object_foreach(h->tools, name, params) {
        json_object_foreach(json_object_get(params, "properties"), key, prop) {
            json_t *en = json_object_get(prop, "enum");
            for (size_t i = 0; i < json_array_size(en); i++)
                if (json_is_string(json_array_get(en, i)))
                    json_object_set_new(h->enums, json_string_value(json_array_get(en, i)), json_true());
        }
    }
    json_object_foreach(h->seen, key, vals) {
        for (size_t i = 0; i < json_array_size(vals); i++) {
            const char *v = json_string_value(json_array_get(vals, i));
            if (!v || json_object_get(h->enums, v)) continue;
            for (size_t a = 0, b; v[a]; a = b > a ? b : a + 1) {
                for (b = a; is_alpha(v[b]); b++) {}
                if (b == a || b - a > 12 || !word_replaceable(v, a, b)) continue;
                char w[16];
                for (size_t t = a; t < b; t++) w[t - a] = (char)(is_upper(v[t]) ? v[t] - 'A' + 'a' : v[t]);
                w[b - a] = 0;
                json_object_set_new(h->word_set, w, json_true());
            }
        }
    }
    h->words = malloc((json_object_size(h->word_set) + 1) * sizeof *h->words);
    if (!h->words) return err_set("copytask: out of memory");
    json_t *x;
    json_object_foreach(h->word_set, key, x) h->words[h->n_words++] = key;
    return 0;
}

// ---- window: a stretch of an oracle transcript with fresh values ----

static int role_is(const json_t *msg, const char *role) {
    const char *r = json_string_value(json_object_get(msg, "role"));
    return r && !strcmp(r, role);
}

static int has_word(const char *s) {
    for (size_t a = 0, b; s[a]; a = b > a ? b : a + 1) {
        for (b = a; is_alpha(s[b]); b++) {}
        if (b > a && word_replaceable(s, a, b)) return 1;
    }
    return 0;
}

// the values a window freshens: strings of 4+ characters with a digit, or with a replaceable word
// and not an enum member
static void collect_values(json_t *v, json_t *set, const harvest_t *h) {
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) >= 4 && (has_digit(s) || (h->n_words > 0 && has_word(s) && !json_object_get(h->enums, s))))
            json_object_set_new(set, s, json_true());
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) collect_values(json_array_get(v, i), set, h);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) collect_values(x, set, h);
    }
}

// a fresh value of v's shape: digits redrawn, then words (copytask_redraw_words)
static char *fresh_value(const char *v, const harvest_t *h, rng_t *r, uint64_t *ds) {
    char *d = copytask_redraw_digits(v, r->seed, STREAM_DIGITS, ds);
    if (!d) return NULL;
    char *w = copytask_redraw_words(d, h->words, h->n_words, r->seed, STREAM_WORDS, &r->word_step);
    free(d);
    return w;
}

// replaces every occurrence of from (non-empty) in *s by to; 0 or -1 (out of memory)
static int replace_all(char **s, const char *from, const char *to) {
    size_t lf = strlen(from), lt = strlen(to), n = 0;
    for (const char *p = strstr(*s, from); p; p = strstr(p + lf, from)) n++;
    if (!n) return 0;
    char *o = malloc(strlen(*s) + n * lt - n * lf + 1), *w = o;
    if (!o) return -1;
    const char *r = *s;
    for (const char *p = strstr(r, from); p; r = p + lf, p = strstr(r, from)) {
        memcpy(w, r, (size_t)(p - r)), w += p - r;
        memcpy(w, to, lt), w += lt;
    }
    strcpy(w, r);
    free(*s);
    *s = o;
    return 0;
}

static int cmp_len_desc(const void *a, const void *b) {
    size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);
    if (la != lb) return la < lb ? 1 : -1;
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *make_window(const json_t *oracle, const harvest_t *h, rng_t *r, uint64_t *digit_step) {
    int pick = rng_int(r, h->n_calls), k = h->call_msg[pick];
    const json_t *msgs = json_object_get(json_array_get(oracle, (size_t)h->call_conv[pick]), "messages");
    int u = -1, j = -1;
    for (int i = 0; i < k && u < 0; i++)
        if (role_is(json_array_get(msgs, (size_t)i), "user")) u = i;
    if (u < 0) return json_null(); // a call before any user message: nothing to copy from
    for (int i = k - 1; i > u && j < 0; i--)
        if (json_array_size(json_object_get(json_array_get(msgs, (size_t)i), "tool_calls"))) j = i;
    if (j < 0) j = u + 1;
    // the user's messages, the assistant's text turns, and the tool-call turns from j on
    json_t *w = json_array();
    for (int i = u; i <= k; i++) {
        const json_t *m = json_array_get(msgs, (size_t)i);
        int tool_part = role_is(m, "tool") || json_array_size(json_object_get(m, "tool_calls"));
        if (i >= j || !tool_part) json_array_append_new(w, json_deep_copy(m));
    }
    // the values the calls copy, longest first (a value inside a longer one is replaced after it)
    json_t *set = json_object();
    for (size_t i = 0; i < json_array_size(w); i++) collect_values(json_object_get(json_array_get(w, i), "tool_calls"), set, h);
    size_t nv = json_object_size(set), q = 0;
    const char **vals = malloc((nv ? nv : 1) * sizeof *vals);
    char *dump = json_dumps(w, JSON_COMPACT);
    json_t *out = NULL;
    if (!vals || !dump) goto done;
    const char *key;
    json_t *x;
    // a value the last call gives that is nowhere before it (the oracle knew it): not a copy
    // lesson; the window is dropped (json null)
    char *before = NULL;
    {
        json_t *head = json_array();
        for (size_t i = 0; i + 1 < json_array_size(w); i++) json_array_append(head, json_array_get(w, i));
        before = json_dumps(head, JSON_COMPACT);
        json_decref(head);
        json_t *last = json_array_size(w) ? json_object_get(json_array_get(w, json_array_size(w) - 1), "tool_calls") : NULL;
        json_t *mine = json_object();
        collect_values(last, mine, h);
        int copyable = before != NULL;
        json_object_foreach(mine, key, x) copyable &= before && strstr(before, key) != NULL;
        json_decref(mine);
        free(before);
        if (!copyable) {
            out = json_null();
            goto done;
        }
    }
    json_object_foreach(set, key, x) vals[q++] = key;
    qsort(vals, nv, sizeof *vals, cmp_len_desc);
    // two passes through placeholders so a fresh value is never itself replaced again
    for (size_t i = 0; i < nv; i++) {
        char ph[48];
        snprintf(ph, sizeof ph, "\x01%zu\x01", i);
        if (replace_all(&dump, vals[i], ph)) goto done;
    }
    for (size_t i = 0; i < nv; i++) {
        char ph[48], *fresh = fresh_value(vals[i], h, r, digit_step);
        snprintf(ph, sizeof ph, "\x01%zu\x01", i);
        int rc = fresh ? replace_all(&dump, ph, fresh) : -1;
        free(fresh);
        if (rc) goto done;
    }
    json_t *msgs2 = json_loads(dump, 0, NULL);
    out = msgs2 ? json_pack("{s:o}", "messages", msgs2) : json_null(); // unparsable: dropped
done:
    free(vals);
    free(dump);
    json_decref(set);
    json_decref(w);
    return out;
}

// ---- schema: a user message stating values, the call that copies them ----

static int is_scalar(const json_t *prop) {
    if (json_is_array(json_object_get(prop, "enum"))) return 1;
    const char *t = json_string_value(json_object_get(prop, "type"));
    return t && (!strcmp(t, "string") || !strcmp(t, "integer") || !strcmp(t, "number"));
}

// the text after "e.g. " in a description, quotes stripped, up to a space / comma / closing quote
static int example_of(const json_t *prop, char *out, size_t cap) {
    const char *d = json_string_value(json_object_get(prop, "description")), *p = d ? strstr(d, "e.g. ") : NULL;
    if (!p) return 0;
    p += 5;
    char q = (*p == '\'' || *p == '"') ? *p++ : 0;
    size_t n = 0;
    while (p[n] && n + 1 < cap && (q ? p[n] != q : (p[n] != ' ' && p[n] != ',' && p[n] != ')'))) n++;
    memcpy(out, p, n);
    out[n] = 0;
    return n > 0;
}

static json_t *schema_value(const harvest_t *h, const char *key, const json_t *prop, rng_t *r, uint64_t *ds) {
    const json_t *en = json_object_get(prop, "enum");
    if (json_array_size(en)) return json_incref(json_array_get(en, (size_t)rng_int(r, (int)json_array_size(en))));
    const char *type = json_string_value(json_object_get(prop, "type"));
    if (!type) type = "string";
    int numeric = strcmp(type, "string") != 0;
    const json_t *pool = json_object_get(h->seen, key);
    const json_t *v = json_array_size(pool) ? json_array_get(pool, (size_t)rng_int(r, (int)json_array_size(pool))) : NULL;
    char buf[128];
    if (v && numeric != json_is_string(v)) {
        if (json_is_string(v)) snprintf(buf, sizeof buf, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        else snprintf(buf, sizeof buf, "%.2f", json_number_value(v));
    } else if (!numeric && example_of(prop, buf, sizeof buf)) {
    } else if (numeric) {
        snprintf(buf, sizeof buf, "%d", 10 + rng_int(r, 9990));
    } else if (strstr(key, "email")) {
        static const char *nm[] = {"ada", "ben", "cleo", "dan", "eve", "finn", "gus", "hana", "ines", "jon"};
        snprintf(buf, sizeof buf, "%s.%s%d@example.com", nm[rng_int(r, 10)], nm[rng_int(r, 10)], rng_int(r, 100));
    } else {
        snprintf(buf, sizeof buf, "%c%d", 'A' + rng_int(r, 26), 1000 + rng_int(r, 9000000));
    }
    char *fresh = numeric ? (has_digit(buf) ? copytask_redraw_digits(buf, r->seed, STREAM_DIGITS, ds) : strdup(buf))
                          : fresh_value(buf, h, r, ds);
    if (!fresh) return NULL;
    json_t *out = NULL;
    if (!numeric) {
        out = json_string(fresh);
    } else {
        // inside the schema's bounds: a value outside them is drawn again, uniformly between them
        double x = strtod(fresh, NULL);
        const json_t *lo = json_object_get(prop, "minimum"), *hi = json_object_get(prop, "maximum");
        double l = lo ? json_number_value(lo) : -1e300, h = hi ? json_number_value(hi) : 1e300;
        if (x < l || x > h) {
            double a = lo ? l : (hi ? (h > 0 ? 0 : h - 100) : 0), b = hi ? h : a + 100;
            x = a + (double)rng_int(r, (int)(b - a) + 1);
        }
        out = strcmp(type, "integer") ? json_real(x) : json_integer((json_int_t)x);
    }
    free(fresh);
    return out;
}

// "order_id" -> "order id"
static void words_of(const char *key, char *out, size_t cap) {
    snprintf(out, cap, "%s", key);
    for (char *c = out; *c; c++)
        if (*c == '_') *c = ' ';
}

static int append(char *buf, size_t cap, size_t *len, const char *fmt, const char *a, const char *b) {
    int n = snprintf(buf + *len, cap - *len, fmt, a, b);
    if (n < 0 || (size_t)n >= cap - *len) return -1;
    *len += (size_t)n;
    return 0;
}

static json_t *make_schema(const harvest_t *h, const char **names, int n_names, rng_t *r, uint64_t *ds) {
    const char *tool = names[rng_int(r, n_names)];
    const json_t *params = json_object_get(h->tools, tool), *props = json_object_get(params, "properties");
    const json_t *req = json_object_get(params, "required");
    // arguments: every required one, then optional ones up to 3 in all
    const char *keys[16];
    int nk = 0;
    for (size_t i = 0; i < json_array_size(req) && nk < 16; i++) keys[nk++] = json_string_value(json_array_get(req, i));
    const char *key;
    json_t *prop;
    json_object_foreach((json_t *)props, key, prop) {
        int have = 0;
        for (int i = 0; i < nk; i++) have |= !strcmp(keys[i], key);
        if (!have && nk < 3 && is_scalar(prop) && rng_int(r, 2)) keys[nk++] = key;
    }
    if (nk == 0) return json_null();
    json_t *args = json_object();
    // stated facts: the arguments and (named phrasing) up to 3 distractors from other tools
    int named = rng_int(r, 5) < 3, nf = 0, order[32];
    const char *fk[32];
    json_t *fv[32];
    for (int i = 0; i < nk; i++) {
        json_t *v = schema_value(h, keys[i], json_object_get(props, keys[i]), r, ds);
        if (!v) goto fail;
        json_object_set(args, keys[i], v);
        fk[nf] = keys[i], fv[nf++] = v;
    }
    for (int d = named ? rng_int(r, 4) : 0; d > 0; d--) {
        const char *other = names[rng_int(r, n_names)];
        const json_t *op = json_object_get(json_object_get(h->tools, other), "properties");
        int m = (int)json_object_size(op), pick = m ? rng_int(r, m) : -1, clash = 0;
        const char *ok = NULL;
        json_t *oprop = NULL;
        json_object_foreach((json_t *)op, key, prop) if (pick-- == 0) ok = key, oprop = prop;
        if (!ok || !is_scalar(oprop)) continue;
        for (int i = 0; i < nf; i++) clash |= !strcmp(fk[i], ok);
        if (clash) continue;
        json_t *v = schema_value(h, ok, oprop, r, ds);
        if (!v) goto fail;
        fk[nf] = ok, fv[nf++] = v;
    }
    for (int i = 0; i < nf; i++) order[i] = i;
    for (int i = nf - 1; i > 0; i--) {
        int j = rng_int(r, i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    char msg[2048], w[96], tw[96];
    size_t len = 0;
    int bad = append(msg, sizeof msg, &len, "%s%s", rng_int(r, 2) ? "Hi. " : "", "");
    bad |= append(msg, sizeof msg, &len, "%s%s", named ? "" : "This is about ", "");
    for (int i = 0; i < nf && !bad; i++) {
        json_t *v = fv[order[i]];
        char *vt = json_is_string(v) ? strdup(json_string_value(v)) : chat_json_dumps(v);
        if (!vt) goto fail;
        words_of(fk[order[i]], w, sizeof w);
        if (named) {
            bad |= append(msg, sizeof msg, &len, i ? ", the %s is " : "My %s is ", w, "");
            bad |= append(msg, sizeof msg, &len, "%s%s", vt, "");
        } else {
            bad |= append(msg, sizeof msg, &len, "%s%s", i ? (i == nf - 1 ? " and " : ", ") : "", vt);
        }
        free(vt);
    }
    words_of(tool, tw, sizeof tw);
    bad |= append(msg, sizeof msg, &len, ". Please %s%s.", tw, "");
    for (int i = 0; i < nf; i++) json_decref(fv[i]);
    nf = 0;
    if (bad) goto fail;
    return json_pack("{s:[{s:s,s:s},{s:s,s:s,s:[{s:s,s:{s:s,s:o}}]}]}", "messages", "role", "user", "content", msg,
                     "role", "assistant", "content", "", "tool_calls", "type", "function", "function", "name", tool,
                     "arguments", args);
fail:
    for (int i = 0; i < nf; i++) json_decref(fv[i]);
    json_decref(args);
    return NULL;
}

// ---- repeat: the assistant says back a JSON object of values, in order ----

static json_t *make_repeat(const harvest_t *h, const char **names, int n_names, rng_t *r, uint64_t *ds) {
    int k = 3 + rng_int(r, 4);
    json_t *list = json_object();
    if (!list) return NULL;
    for (int tries = 0; (int)json_object_size(list) < k && tries < 8 * k; tries++) {
        const char *tool = names[rng_int(r, n_names)];
        const json_t *props = json_object_get(json_object_get(h->tools, tool), "properties");
        int m = (int)json_object_size(props), pick = m ? rng_int(r, m) : -1;
        const char *key, *pk = NULL;
        json_t *prop, *pp = NULL;
        json_object_foreach((json_t *)props, key, prop) if (pick-- == 0) pk = key, pp = prop;
        if (!pk || !is_scalar(pp)) continue;
        json_t *v = schema_value(h, pk, pp, r, ds);
        if (!v) return json_decref(list), NULL;
        char num[16];
        snprintf(num, sizeof num, "%d", (int)json_object_size(list) + 1);
        json_object_set_new(list, num, v);
    }
    if (json_object_size(list) == 0) return json_decref(list), json_null();
    char *said = chat_json_dumps(list); // as values appear in tool calls: {"1": "CHK-1234", "2": 250.0, ...}
    json_decref(list);
    if (!said) return NULL;
    char *msg = malloc(strlen(said) + 64);
    json_t *out = NULL;
    if (msg) {
        sprintf(msg, "%s%s", rng_int(r, 2) ? "Repeat these back, in order: " : "Say back exactly: ", said);
        out = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "messages", "role", "user", "content", msg, "role", "assistant",
                        "content", said);
    }
    free(msg);
    free(said);
    return out;
}

json_t *copytask_make(const json_t *oracle, int n, double p_window, double p_repeat, int fresh_words, uint64_t seed) {
    if (n < 1) return err_set("copytask: n: expected >= 1, found %d", n), NULL;
    if (!(p_window >= 0 && p_window <= 1)) return err_set("copytask: p_window: expected in [0, 1], found %g", p_window), NULL;
    if (!(p_repeat >= 0 && p_repeat <= 1 - p_window))
        return err_set("copytask: p_repeat: expected in [0, 1 - p_window = %g], found %g", 1 - p_window, p_repeat), NULL;
    harvest_t h;
    if (harvest(oracle, fresh_words, &h)) return harvest_free(&h), NULL;
    // tools whose required arguments are all scalars (the schema kind states them all)
    const char **names = malloc((json_object_size(h.tools) + 1) * sizeof *names);
    int n_names = 0;
    const char *key;
    json_t *params;
    json_object_foreach(h.tools, key, params) {
        const json_t *req = json_object_get(params, "required"), *props = json_object_get(params, "properties");
        int ok = json_object_size(props) > 0;
        for (size_t i = 0; i < json_array_size(req); i++)
            ok &= is_scalar(json_object_get(props, json_string_value(json_array_get(req, i))));
        if (ok && names) names[n_names++] = key;
    }
    json_t *out = names ? json_array() : NULL;
    rng_t r = {seed, 0, 0};
    uint64_t ds = 0;
    for (int tries = 0; out && (int)json_array_size(out) < n; tries++) {
        if (tries > 20 * n) {
            json_decref(out), out = NULL;
            err_set("copytask: could not make %d conversations (%d tools with scalar arguments)", n, n_names);
            break;
        }
        double u = sampler_uniform(seed, STREAM_PICK + 1, (uint64_t)tries);
        json_t *c = n_names == 0 || u < p_window ? make_window(oracle, &h, &r, &ds)
                  : u < p_window + p_repeat  ? make_repeat(&h, names, n_names, &r, &ds)
                                             : make_schema(&h, names, n_names, &r, &ds);
        if (!c) {
            json_decref(out), out = NULL;
            err_set("copytask: out of memory");
            break;
        }
        if (json_is_object(c)) json_array_append(out, c);
        json_decref(c);
    }
    if (!names) err_set("copytask: out of memory");
    free(names);
    harvest_free(&h);
    return out;
}
