#include "memo.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"

// ---- canonical JSON ----

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

// a double as the shortest "%.{15,16,17}g" text that reads back to the same value
static void put_real(buf_t *b, double v) {
    char s[40];
    if (v == 0) v = 0; // -0 -> 0
    if (v == floor(v) && fabs(v) < 9007199254740992.0) { // integral and exact: write as an integer
        snprintf(s, sizeof s, "%lld", (long long)v);
        buf_puts(b, s);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    buf_puts(b, s);
}

static void put_string(buf_t *b, const char *s, size_t n) {
    buf_put(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        buf_put(b, s + start, i - start);
        char esc[8];
        switch (ch) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            buf_puts(b, esc);
        }
        start = i + 1;
    }
    buf_put(b, s + start, n - start);
    buf_put(b, "\"", 1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int put_value(buf_t *b, const json_t *v, int depth) {
    if (depth > 512) return err_set("memo: JSON nested deeper than 512 levels");
    char s[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys) return err_set("memo: out of memory");
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_str);
        buf_put(b, "{", 1);
        for (i = 0; i < n; i++) {
            if (i) buf_put(b, ",", 1);
            put_string(b, keys[i], strlen(keys[i]));
            buf_put(b, ":", 1);
            if (put_value(b, json_object_get(v, keys[i]), depth + 1)) {
                free(keys);
                return -1;
            }
        }
        buf_put(b, "}", 1);
        free(keys);
        return 0;
    }
    case JSON_ARRAY:
        buf_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) buf_put(b, ",", 1);
            if (put_value(b, json_array_get(v, i), depth + 1)) return -1;
        }
        buf_put(b, "]", 1);
        return 0;
    case JSON_STRING: put_string(b, json_string_value(v), json_string_length(v)); return 0;
    case JSON_INTEGER: {
        // an integer that is exactly a double is written as that double (so 2^60 as an integer and
        // as 1.152921504606847e+18 are equal); any other (beyond 2^53, not representable): its digits
        json_int_t i = json_integer_value(v);
        double d = (double)i;
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (json_int_t)d == i) put_real(b, d);
        else {
            snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, i);
            buf_puts(b, s);
        }
        return 0;
    }
    case JSON_REAL: put_real(b, json_real_value(v)); return 0;
    case JSON_TRUE: buf_puts(b, "true"); return 0;
    case JSON_FALSE: buf_puts(b, "false"); return 0;
    case JSON_NULL: buf_puts(b, "null"); return 0;
    }
    return err_set("memo: unknown JSON value type");
}

char *memo_canonical_json(const json_t *v) {
    buf_t b = {0};
    if (!v) {
        err_set("memo: no JSON value");
        return NULL;
    }
    if (put_value(&b, v, 0) || b.oom) {
        if (b.oom) err_set("memo: out of memory");
        free(b.p);
        return NULL;
    }
    return b.p;
}

// ---- the table ----

struct memo_entry {
    memo_entry_t *next;
    uint64_t task, hash;
    char *tool, *args, *output; // args: canonical JSON
};

static uint64_t hash_key(uint64_t task, const char *tool, const char *args) {
    uint64_t h = 0xcbf29ce484222325ull ^ (task * 0x9e3779b97f4a7c15ull);
    for (const unsigned char *p = (const unsigned char *)tool; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull; // separator
    for (const unsigned char *p = (const unsigned char *)args; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int memo_init(memo_t *m) {
    memset(m, 0, sizeof *m);
    m->n_buckets = 64;
    m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
    pthread_mutex_t *mu = malloc(sizeof *mu);
    if (!m->buckets || !mu || pthread_mutex_init(mu, NULL)) {
        free(m->buckets);
        free(mu);
        memset(m, 0, sizeof *m);
        return err_set("memo: out of memory");
    }
    m->mutex = mu;
    return 0;
}

static void entry_free(memo_entry_t *e) {
    free(e->tool);
    free(e->args);
    free(e->output);
    free(e);
}

void memo_free(memo_t *m) {
    for (size_t i = 0; i < m->n_buckets; i++)
        for (memo_entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    free(m->buckets);
    if (m->mutex) {
        pthread_mutex_destroy(m->mutex);
        free(m->mutex);
    }
    memset(m, 0, sizeof *m);
}

static memo_entry_t *find(const memo_t *m, uint64_t task, uint64_t h, const char *tool, const char *args) {
    for (memo_entry_t *e = m->buckets[h % m->n_buckets]; e; e = e->next)
        if (e->hash == h && e->task == task && strcmp(e->tool, tool) == 0 && strcmp(e->args, args) == 0) return e;
    return NULL;
}

// canonical arguments (NULL args = {})
static char *canon_args(const json_t *args) {
    if (!args) return strdup("{}");
    return memo_canonical_json(args);
}

int memo_get(memo_t *m, uint64_t task, const char *tool, const json_t *args, char **output) {
    *output = NULL;
    if (!tool) return err_set("memo: no tool name");
    char *a = canon_args(args);
    if (!a) return -1;
    uint64_t h = hash_key(task, tool, a);
    int rc = 0;
    pthread_mutex_lock(m->mutex);
    memo_entry_t *e = find(m, task, h, tool, a);
    if (e) {
        *output = strdup(e->output);
        if (!*output) rc = err_set("memo: out of memory");
        else rc = 1, m->hits++;
    } else {
        m->misses++;
    }
    pthread_mutex_unlock(m->mutex);
    free(a);
    return rc;
}

static void grow(memo_t *m) {
    size_t n = m->n_buckets * 2;
    memo_entry_t **b = calloc(n, sizeof *b);
    if (!b) return; // keep the old table: still correct, just longer chains
    for (size_t i = 0; i < m->n_buckets; i++)
        for (memo_entry_t *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
}

int memo_put(memo_t *m, uint64_t task, const char *tool, const json_t *args, const char *output) {
    if (!tool || !output) return err_set("memo: put needs a tool name and an output");
    char *a = canon_args(args);
    if (!a) return -1;
    uint64_t h = hash_key(task, tool, a);
    int rc = 0;
    pthread_mutex_lock(m->mutex);
    if (!find(m, task, h, tool, a)) {
        memo_entry_t *e = calloc(1, sizeof *e);
        if (e) {
            e->task = task;
            e->hash = h;
            e->tool = strdup(tool);
            e->args = a;
            e->output = strdup(output);
            a = NULL;
        }
        if (!e || !e->tool || !e->output) {
            if (e) entry_free(e);
            rc = err_set("memo: out of memory");
        } else {
            if (m->n_entries + 1 > m->n_buckets) grow(m);
            e->next = m->buckets[h % m->n_buckets];
            m->buckets[h % m->n_buckets] = e;
            m->n_entries++;
            rc = 1;
        }
    }
    pthread_mutex_unlock(m->mutex);
    free(a);
    return rc;
}

static json_t *parse_args(const char *text) {
    if (!text) return json_object();
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j) err_set("memo: arguments: line %d column %d: %s", e.line, e.column, e.text);
    return j;
}

int memo_get_text(memo_t *m, uint64_t task, const char *tool, const char *args_json, char **output) {
    *output = NULL;
    json_t *j = parse_args(args_json);
    if (!j) return -1;
    int rc = memo_get(m, task, tool, j, output);
    json_decref(j);
    return rc;
}

int memo_put_text(memo_t *m, uint64_t task, const char *tool, const char *args_json, const char *output) {
    json_t *j = parse_args(args_json);
    if (!j) return -1;
    int rc = memo_put(m, task, tool, j, output);
    json_decref(j);
    return rc;
}

size_t memo_drop_task(memo_t *m, uint64_t task) {
    size_t n = 0;
    pthread_mutex_lock(m->mutex);
    for (size_t i = 0; i < m->n_buckets; i++) {
        memo_entry_t **pp = &m->buckets[i];
        while (*pp) {
            memo_entry_t *e = *pp;
            if (e->task == task) {
                *pp = e->next;
                entry_free(e);
                n++;
            } else {
                pp = &e->next;
            }
        }
    }
    m->n_entries -= n;
    pthread_mutex_unlock(m->mutex);
    return n;
}
