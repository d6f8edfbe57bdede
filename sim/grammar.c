// Constrained JSON decoding: schema -> byte automaton -> cached token masks (grammar.h).
#include "grammar.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/err.h"

// ---------------------------------------------------------------------------------------------
// a small hash map: byte-string key -> pointer / integer (open addressing, linear probing)

typedef struct {
    char *key;
    uint32_t len;
    uint64_t hash;
    void *val;
} gslot_t;

typedef struct {
    gslot_t *slots; // (cap) cap is a power of two
    size_t cap, n;
} gmap_t;

static uint64_t gmap_hash(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull; // FNV-1a, then a final mix
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static gslot_t *gmap_find(const gmap_t *m, const void *key, size_t len, uint64_t h) {
    if (!m->cap) return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        gslot_t *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void *gmap_get(const gmap_t *m, const void *key, size_t len, int *found) {
    gslot_t *s = gmap_find(m, key, len, gmap_hash(key, len));
    if (found) *found = s != NULL;
    return s ? s->val : NULL;
}

static int gmap_put(gmap_t *m, const void *key, size_t len, void *val) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        gslot_t *ns = calloc(cap, sizeof *ns);
        if (!ns) return err_set("grammar: out of memory");
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].key) continue;
            size_t j = m->slots[i].hash & (cap - 1);
            while (ns[j].key) j = (j + 1) & (cap - 1);
            ns[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->cap = cap;
    }
    uint64_t h = gmap_hash(key, len);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].key) {
        if (m->slots[i].hash == h && m->slots[i].len == len && memcmp(m->slots[i].key, key, len) == 0) {
            m->slots[i].val = val;
            return 0;
        }
        i = (i + 1) & (m->cap - 1);
    }
    char *k = malloc(len ? len : 1);
    if (!k) return err_set("grammar: out of memory");
    memcpy(k, key, len);
    m->slots[i] = (gslot_t){k, (uint32_t)len, h, val};
    m->n++;
    return 0;
}

static void gmap_free(gmap_t *m, void (*free_val)(void *)) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) {
            free(m->slots[i].key);
            if (free_val) free_val(m->slots[i].val);
        }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---------------------------------------------------------------------------------------------
// vocabulary

struct gram_vocab {
    int V;                 // logit row length
    int n_ids;             // ids with bytes (tokenizer ids)
    const char **bytes;    // (V) token bytes, NULL when not allowed inside JSON
    uint8_t *len;          // (V) byte length (plain tokens are at most 255 bytes)
    int max_len;           // longest plain token
    int32_t *end_ids;      // (n_end)
    int n_end;
    gmap_t by_bytes;       // token bytes -> id + 1 (plain tokens)
};

gram_vocab_t *gram_vocab_new(const tokenizer_t *tok, int V, int n_plain, const int32_t *end_ids,
                             int n_end) {
    gram_vocab_t *v = calloc(1, sizeof *v);
    if (!v) {
        err_set("grammar: out of memory");
        return NULL;
    }
    v->V = V;
    v->n_ids = tokenizer_n_ids(tok);
    v->bytes = calloc((size_t)V, sizeof *v->bytes);
    v->len = calloc((size_t)V, 1);
    v->end_ids = malloc((size_t)(n_end > 0 ? n_end : 1) * sizeof(int32_t));
    if (!v->bytes || !v->len || !v->end_ids) {
        err_set("grammar: out of memory");
        gram_vocab_free(v);
        return NULL;
    }
    memcpy(v->end_ids, end_ids, (size_t)n_end * sizeof(int32_t));
    v->n_end = n_end;
    for (int i = 0; i < V && i < n_plain; i++) {
        size_t n = 0;
        const char *b = tokenizer_token_bytes(tok, i, &n);
        if (!b || n == 0 || n > 255) continue;
        v->bytes[i] = b;
        v->len[i] = (uint8_t)n;
        if ((int)n > v->max_len) v->max_len = (int)n;
        int found = 0;
        gmap_get(&v->by_bytes, b, n, &found);
        if (!found && gmap_put(&v->by_bytes, b, n, (void *)(intptr_t)(i + 1))) {
            gram_vocab_free(v);
            return NULL;
        }
    }
    for (int c = 0; c < 256; c++) { // byte-level BPE: every byte is a token (closings need it)
        char b = (char)c;
        int found = 0;
        gmap_get(&v->by_bytes, &b, 1, &found);
        if (!found) {
            err_set("grammar: the vocabulary has no token for byte 0x%02x (a byte-level BPE is needed)", c);
            gram_vocab_free(v);
            return NULL;
        }
    }
    return v;
}

gram_vocab_t *gram_vocab_qwen(const tokenizer_t *tok, int V) {
    int32_t eot = tokenizer_token_id(tok, "<|endoftext|>"), im_end = tokenizer_token_id(tok, "<|im_end|>");
    if (eot < 0 || im_end < 0) {
        err_set("grammar: the tokenizer has no <|endoftext|> / <|im_end|> (not a Qwen tokenizer?)");
        return NULL;
    }
    return gram_vocab_new(tok, V, eot, &im_end, 1);
}

void gram_vocab_free(gram_vocab_t *v) {
    if (!v) return;
    free(v->bytes);
    free(v->len);
    free(v->end_ids);
    gmap_free(&v->by_bytes, NULL);
    free(v);
}

int gram_vocab_size(const gram_vocab_t *v) { return v->V; }

// ---------------------------------------------------------------------------------------------
// grammar nodes

enum { GN_OBJECT, GN_ARRAY, GN_STRING, GN_ENUM, GN_NUMBER, GN_ANY_OBJECT, GN_ANY_VALUE };

typedef struct {
    int kind;
    // GN_OBJECT: pieces[i] = "{\"k0\":" | ",\"ki\":" | "}" (n_props + 1 pieces; "{}" when empty)
    int n_props;
    int *props;      // (n_props) value nodes
    char **pieces;   // (n_props + 1)
    int *piece_len;
    // GN_ARRAY (also "any" arrays) / GN_ANY_OBJECT (key node in `key`, value node in `items`)
    int items, key;
    int min_items, max_items;
    // GN_STRING
    int max_len;
    // GN_ENUM: literal JSON texts sorted by bytes (a prefix sorts first)
    int n_lits;
    char **lits;
    int *lit_len;
    // GN_NUMBER
    int neg, max_digits, max_frac;
    // GN_ANY_VALUE: the node each first byte leads to (-1: not allowed)
    int on_string, on_number, on_literal, on_object, on_array;
} gnode_t;

typedef struct { // cached per mask key
    uint8_t *need;   // (V) string-body states: bytes of room a token needs (255: never)
    uint64_t *bits;  // (V/64) other states: allowed tokens
    int32_t *ids;    // (n_ids) other states: the allowed tokens, ascending, when few (else NULL)
    int n_ids;
    int max_t;       // max over consumable tokens of T(next state)
    int t;           // T(s)
    int32_t t0;      // the first closing token
} gentry_t;

struct gram {
    gnode_t *nodes;
    int n_nodes, cap_nodes;
    int root;
    gram_opts_t o;
    gram_vocab_t *vocab;
    pthread_mutex_t mu;
    gmap_t masks;    // key -> gentry_t*
    gmap_t closing;  // key -> T + 1 (as intptr)
    gram_stats_t stats;
};

void gram_opts_default(gram_opts_t *o) {
    *o = (gram_opts_t){128, 8, 9, 4, 3, 8, 32, 64};
}

static int node_new(gram_t *g, int kind) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 16;
        gnode_t *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return err_set("grammar: out of memory");
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    if (g->n_nodes >= 65535) return err_set("grammar: schema too large (more than 65535 nodes)");
    gnode_t *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->items = n->key = -1;
    n->on_string = n->on_number = n->on_literal = n->on_object = n->on_array = -1;
    return g->n_nodes++;
}

static int lit_cmp(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return strcmp(x, y); // literals hold no NUL; a prefix sorts first
}

// an enum node from literal texts (copied, sorted, deduplicated)
static int enum_node(gram_t *g, char **texts, int n, const char *path) {
    if (n < 1) return err_set("%s: enum is empty", path);
    qsort(texts, (size_t)n, sizeof *texts, lit_cmp);
    int id = node_new(g, GN_ENUM);
    if (id < 0) return -1;
    gnode_t *nd = &g->nodes[id];
    nd->lits = calloc((size_t)n, sizeof(char *));
    nd->lit_len = calloc((size_t)n, sizeof(int));
    if (!nd->lits || !nd->lit_len) return err_set("grammar: out of memory");
    for (int i = 0; i < n; i++) {
        if (nd->n_lits && strcmp(nd->lits[nd->n_lits - 1], texts[i]) == 0) continue;
        size_t L = strlen(texts[i]);
        if (L == 0 || L > 60000) return err_set("%s: enum value of %zu bytes", path, L);
        nd->lits[nd->n_lits] = strdup(texts[i]);
        if (!nd->lits[nd->n_lits]) return err_set("grammar: out of memory");
        nd->lit_len[nd->n_lits++] = (int)L;
    }
    return id;
}

static int number_node(gram_t *g, int neg, int max_digits, int max_frac) {
    int id = node_new(g, GN_NUMBER);
    if (id < 0) return -1;
    g->nodes[id].neg = neg;
    g->nodes[id].max_digits = max_digits;
    g->nodes[id].max_frac = max_frac;
    return id;
}

static int string_node(gram_t *g, int max_len) {
    int id = node_new(g, GN_STRING);
    if (id >= 0) g->nodes[id].max_len = max_len;
    return id;
}

// compact JSON text of an enum value (NULL when it cannot be written as a literal here)
static char *lit_text(const json_t *v, const char *path) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!s) {
        err_set("%s: enum value cannot be written as JSON", path);
        return NULL;
    }
    for (const char *p = s; *p; p++)
        if (*p == '\\' && p[1] == 'u') { // our strings have no \u escapes
            free(s);
            err_set("%s: enum value needs a \\u escape (control character?)", path);
            return NULL;
        }
    return s;
}

static int any_value_node(gram_t *g, int depth);

// "any" object (depth >= 1): keys any strings, values any values of depth - 1
static int any_object_node(gram_t *g, int depth) {
    int key = string_node(g, g->o.any_key_len);
    int val = any_value_node(g, depth - 1);
    if (key < 0 || val < 0) return -1;
    int id = node_new(g, GN_ANY_OBJECT);
    if (id < 0) return -1;
    g->nodes[id].key = key;
    g->nodes[id].items = val;
    g->nodes[id].max_items = g->o.any_items;
    return id;
}

static int any_value_node(gram_t *g, int depth) {
    char *lits[3] = {"false", "null", "true"};
    int s = string_node(g, g->o.any_str_len);
    int num = number_node(g, 1, g->o.max_digits, g->o.max_frac);
    int lit = enum_node(g, lits, 3, "any");
    int obj = -1, arr = -1;
    if (s < 0 || num < 0 || lit < 0) return -1;
    if (depth >= 1) {
        obj = any_object_node(g, depth);
        int item = any_value_node(g, depth - 1);
        if (obj < 0 || item < 0) return -1;
        arr = node_new(g, GN_ARRAY);
        if (arr < 0) return -1;
        g->nodes[arr].items = item;
        g->nodes[arr].min_items = 0;
        g->nodes[arr].max_items = g->o.any_items;
    }
    int id = node_new(g, GN_ANY_VALUE);
    if (id < 0) return -1;
    gnode_t *nd = &g->nodes[id];
    nd->on_string = s;
    nd->on_number = num;
    nd->on_literal = lit;
    nd->on_object = obj;
    nd->on_array = arr;
    return id;
}

static int json_int_field(const json_t *schema, const char *key, int dflt, int lo, int hi,
                          const char *path, int *out) {
    const json_t *v = json_object_get(schema, key);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return err_set("%s.%s: expected an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int compile_node(gram_t *g, const json_t *sc, const char *path, int depth);

static int compile_object(gram_t *g, const json_t *sc, const char *path, int depth) {
    const json_t *props = json_object_get(sc, "properties");
    if (!props || (json_is_object(props) && json_object_size(props) == 0 &&
                   json_is_true(json_object_get(sc, "additionalProperties"))))
        return any_object_node(g, g->o.any_depth > 0 ? g->o.any_depth : 1);
    if (!json_is_object(props)) return err_set("%s.properties: expected an object", path);
    int n = (int)json_object_size(props);
    int *kids = calloc((size_t)(n ? n : 1), sizeof(int));
    if (!kids) return err_set("grammar: out of memory");
    int i = 0;
    const char *k;
    const json_t *v;
    char sub[512];
    json_object_foreach((json_t *)props, k, v) {
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') {
                free(kids);
                return err_set("%s.properties: key '%s' needs escaping (not supported)", path, k);
            }
        snprintf(sub, sizeof sub, "%s.properties.%s", path, k);
        kids[i] = compile_node(g, v, sub, depth + 1);
        if (kids[i] < 0) {
            free(kids);
            return -1;
        }
        i++;
    }
    int id = node_new(g, GN_OBJECT);
    if (id < 0) {
        free(kids);
        return -1;
    }
    gnode_t *nd = &g->nodes[id];
    nd->n_props = n;
    nd->props = kids;
    nd->pieces = calloc((size_t)n + 1, sizeof(char *));
    nd->piece_len = calloc((size_t)n + 1, sizeof(int));
    if (!nd->pieces || !nd->piece_len) return err_set("grammar: out of memory");
    i = 0;
    json_object_foreach((json_t *)props, k, v) {
        size_t L = strlen(k) + 8;
        nd->pieces[i] = malloc(L);
        if (!nd->pieces[i]) return err_set("grammar: out of memory");
        snprintf(nd->pieces[i], L, "%s\"%s\":", i == 0 ? "{" : ",", k);
        nd->piece_len[i] = (int)strlen(nd->pieces[i]);
        i++;
    }
    nd->pieces[n] = strdup(n == 0 ? "{}" : "}");
    if (!nd->pieces[n]) return err_set("grammar: out of memory");
    nd->piece_len[n] = (int)strlen(nd->pieces[n]);
    return id;
}

static int compile_node(gram_t *g, const json_t *sc, const char *path, int depth) {
    if (depth >= GRAM_MAX_DEPTH - 1) return err_set("%s: nested too deep (at most %d levels)", path, GRAM_MAX_DEPTH - 2);
    if (json_is_true(sc) || (json_is_object(sc) && json_object_size(sc) == 0)) return any_value_node(g, g->o.any_depth);
    if (!json_is_object(sc)) return err_set("%s: expected a schema object", path);
    const json_t *en = json_object_get(sc, "enum");
    const json_t *cn = json_object_get(sc, "const");
    if (en || cn) {
        if (en && (!json_is_array(en) || json_array_size(en) == 0)) return err_set("%s.enum: expected a non-empty array", path);
        int n = en ? (int)json_array_size(en) : 1;
        char **texts = calloc((size_t)n, sizeof(char *));
        if (!texts) return err_set("grammar: out of memory");
        int rc = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            texts[i] = lit_text(en ? json_array_get(en, (size_t)i) : cn, path);
            if (!texts[i]) rc = -1;
        }
        int id = rc ? -1 : enum_node(g, texts, n, path);
        for (int i = 0; i < n; i++) free(texts[i]);
        free(texts);
        return id;
    }
    const json_t *ty = json_object_get(sc, "type");
    if (!ty) return any_value_node(g, g->o.any_depth);
    if (json_is_array(ty)) {
        if (json_array_size(ty) != 1) return err_set("%s.type: unions of types are not supported", path);
        ty = json_array_get(ty, 0);
    }
    const char *t = json_string_value(ty);
    if (!t) return err_set("%s.type: expected a string", path);
    if (strcmp(t, "object") == 0) return compile_object(g, sc, path, depth);
    if (strcmp(t, "string") == 0) {
        int ml;
        if (json_int_field(sc, "maxLength", g->o.max_string, 0, 60000, path, &ml)) return -1;
        return string_node(g, ml);
    }
    if (strcmp(t, "boolean") == 0 || strcmp(t, "null") == 0) {
        char *b[2] = {"false", "true"}, *nl[1] = {"null"};
        return t[0] == 'b' ? enum_node(g, b, 2, path) : enum_node(g, nl, 1, path);
    }
    if (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0) {
        const json_t *mn = json_object_get(sc, "minimum"), *mx = json_object_get(sc, "maximum");
        int integer = t[0] == 'i';
        if (integer && json_is_integer(mn) && json_is_integer(mx) &&
            json_integer_value(mx) >= json_integer_value(mn) &&
            json_integer_value(mx) - json_integer_value(mn) <= 64) { // exact: an enum of values
            json_int_t lo = json_integer_value(mn), hi = json_integer_value(mx);
            int n = (int)(hi - lo + 1);
            char **texts = calloc((size_t)n, sizeof(char *));
            if (!texts) return err_set("grammar: out of memory");
            for (int i = 0; i < n; i++) {
                texts[i] = malloc(24);
                if (texts[i]) snprintf(texts[i], 24, "%lld", (long long)(lo + i));
            }
            int id = enum_node(g, texts, n, path);
            for (int i = 0; i < n; i++) free(texts[i]);
            free(texts);
            return id;
        }
        int neg = !(mn && json_is_number(mn) && json_number_value(mn) >= 0);
        return number_node(g, neg, g->o.max_digits, integer ? 0 : g->o.max_frac);
    }
    if (strcmp(t, "array") == 0) {
        const json_t *items = json_object_get(sc, "items");
        char sub[512];
        snprintf(sub, sizeof sub, "%s.items", path);
        int it = items ? compile_node(g, items, sub, depth + 1) : any_value_node(g, g->o.any_depth - 1 > 0 ? g->o.any_depth - 1 : 0);
        if (it < 0) return -1;
        int mn, mx;
        if (json_int_field(sc, "minItems", 0, 0, 1000, path, &mn) ||
            json_int_field(sc, "maxItems", g->o.max_items, 0, 1000, path, &mx))
            return -1;
        if (mx < mn) return err_set("%s: maxItems %d < minItems %d", path, mx, mn);
        int id = node_new(g, GN_ARRAY);
        if (id < 0) return -1;
        g->nodes[id].items = it;
        g->nodes[id].min_items = mn;
        g->nodes[id].max_items = mx;
        return id;
    }
    return err_set("%s.type: unsupported type '%s'", path, t);
}

static void gentry_free(void *p) {
    gentry_t *e = p;
    if (!e) return;
    free(e->need);
    free(e->bits);
    free(e->ids);
    free(e);
}

void gram_free(gram_t *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        gnode_t *n = &g->nodes[i];
        if (n->pieces)
            for (int j = 0; j <= n->n_props; j++) free(n->pieces[j]);
        free(n->pieces);
        free(n->piece_len);
        free(n->props);
        if (n->lits)
            for (int j = 0; j < n->n_lits; j++) free(n->lits[j]);
        free(n->lits);
        free(n->lit_len);
    }
    free(g->nodes);
    gmap_free(&g->masks, gentry_free);
    gmap_free(&g->closing, NULL);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

gram_t *gram_compile(const json_t *schema, const gram_opts_t *opts, gram_vocab_t *vocab) {
    gram_t *g = calloc(1, sizeof *g);
    if (!g) {
        err_set("grammar: out of memory");
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    if (opts)
        g->o = *opts;
    else
        gram_opts_default(&g->o);
    if (g->o.any_depth > GRAM_MAX_DEPTH / 2 - 1) g->o.any_depth = GRAM_MAX_DEPTH / 2 - 1;
    g->vocab = vocab;
    g->root = compile_node(g, schema, "schema", 0);
    if (g->root < 0) {
        gram_free(g);
        return NULL;
    }
    int k = g->nodes[g->root].kind;
    if (k == GN_NUMBER || k == GN_ANY_VALUE) {
        err_set("schema: the top level must be an object, array or string (a number has no end)");
        gram_free(g);
        return NULL;
    }
    return g;
}

// ---------------------------------------------------------------------------------------------
// the byte automaton

// UTF-8 ranges of the first continuation byte: 0: 80..BF, 1: A0..BF (after E0), 2: 80..9F (ED),
// 3: 90..BF (F0), 4: 80..8F (F4)
static const uint8_t U8_LO[5] = {0x80, 0xA0, 0x80, 0x90, 0x80}, U8_HI[5] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

static int push(const gram_t *g, gram_state_t *s, int node) {
    if (s->n >= GRAM_MAX_DEPTH) return -1;
    gram_frame_t *f = &s->f[s->n++];
    memset(f, 0, sizeof *f);
    f->node = (uint16_t)node;
    if (g->nodes[node].kind == GN_ENUM) f->y = (uint16_t)g->nodes[node].n_lits;
    return 0;
}

// the top frame finished: pop it and tell its parent
static void pop(const gram_t *g, gram_state_t *s) {
    s->n--;
    if (s->n == 0) return;
    gram_frame_t *f = &s->f[s->n - 1];
    switch (g->nodes[f->node].kind) {
    case GN_OBJECT: f->phase++, f->count = 0; break;
    case GN_ARRAY: f->phase = 2, f->count++; break;
    case GN_ANY_OBJECT:
        if (f->phase == 2) f->phase = 3;        // key done: ':' next
        else f->phase = 5, f->count++;          // value done
        break;
    default: break;
    }
}

void gram_start(const gram_t *g, gram_state_t *s) {
    memset(s, 0, sizeof *s);
    push(g, s, g->root);
}

int gram_step(const gram_t *g, gram_state_t *s, uint8_t c) {
    for (;;) {
        if (s->n == 0) return -1;
        gram_frame_t *f = &s->f[s->n - 1];
        const gnode_t *nd = &g->nodes[f->node];
        switch (nd->kind) {
        case GN_STRING: {
            if (f->phase == 0) {
                if (c != '"') return -1;
                f->phase = 1;
                return 0;
            }
            if (f->phase == 2) { // after a backslash (its room was reserved)
                if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't'))
                    return -1;
                f->count++;
                f->phase = 1;
                return 0;
            }
            int due = f->u8 & 3;
            if (due) { // a continuation byte (its room was reserved)
                int r = f->u8 >> 2;
                if (c < U8_LO[r] || c > U8_HI[r]) return -1;
                f->count++;
                f->u8 = (uint8_t)(due - 1);
                return 0;
            }
            if (c == '"') {
                pop(g, s);
                return 0;
            }
            int room = nd->max_len - f->count;
            if (c == '\\') {
                if (room < 2) return -1;
                f->count++;
                f->phase = 2;
                return 0;
            }
            if (c < 0x20) return -1;
            if (c < 0x80) {
                if (room < 1) return -1;
                f->count++;
                return 0;
            }
            int n, r = 0;
            if (c >= 0xC2 && c <= 0xDF) n = 1;
            else if (c == 0xE0) n = 2, r = 1;
            else if (c == 0xED) n = 2, r = 2;
            else if (c >= 0xE1 && c <= 0xEF) n = 2;
            else if (c == 0xF0) n = 3, r = 3;
            else if (c >= 0xF1 && c <= 0xF3) n = 3;
            else if (c == 0xF4) n = 3, r = 4;
            else return -1;
            if (room < 1 + n) return -1;
            f->count++;
            f->u8 = (uint8_t)(n | r << 2);
            return 0;
        }
        case GN_ENUM: {
            int lo = f->x, hi = f->y, pos = f->count;
            int i = lo;
            while (i < hi && (nd->lit_len[i] <= pos || (uint8_t)nd->lits[i][pos] < c)) i++;
            int j = i;
            while (j < hi && nd->lit_len[j] > pos && (uint8_t)nd->lits[j][pos] == c) j++;
            if (i == j) {
                if (nd->lit_len[lo] == pos) { // complete: the byte belongs to the parent
                    pop(g, s);
                    continue;
                }
                return -1;
            }
            f->x = (uint16_t)i, f->y = (uint16_t)j, f->count = (uint16_t)(pos + 1);
            if (j - i == 1 && nd->lit_len[i] == pos + 1) pop(g, s);
            return 0;
        }
        case GN_NUMBER: {
            int digit = c >= '0' && c <= '9';
            switch (f->phase) {
            case 0:
                if (c == '-' && nd->neg) { f->phase = 1; return 0; }
                /* fall through */
            case 1:
                if (!digit) return -1;
                f->phase = c == '0' ? 2 : 3;
                f->count = 1;
                return 0;
            case 2:
            case 3:
                if (digit && f->phase == 3 && f->count < nd->max_digits) { f->count++; return 0; }
                if (c == '.' && nd->max_frac > 0) { f->phase = 4; return 0; }
                pop(g, s);
                continue;
            case 4:
                if (!digit) return -1;
                f->phase = 5;
                f->x = 1;
                return 0;
            default:
                if (digit && f->x < nd->max_frac) { f->x++; return 0; }
                pop(g, s);
                continue;
            }
        }
        case GN_OBJECT: {
            const char *piece = nd->pieces[f->phase];
            if (c != (uint8_t)piece[f->count]) return -1;
            f->count++;
            if (f->count == nd->piece_len[f->phase]) {
                if (f->phase < nd->n_props) return push(g, s, nd->props[f->phase]);
                pop(g, s);
            }
            return 0;
        }
        case GN_ARRAY:
            switch (f->phase) {
            case 0:
                if (c != '[') return -1;
                f->phase = 1;
                return 0;
            case 1:
                if (c == ']' && nd->min_items == 0) { pop(g, s); return 0; }
                if (nd->max_items == 0) return -1;
                f->phase = 3;
                if (push(g, s, nd->items)) return -1;
                continue;
            case 2:
                if (c == ',' && f->count < nd->max_items) { f->phase = 4; return 0; }
                if (c == ']' && f->count >= nd->min_items) { pop(g, s); return 0; }
                return -1;
            default: // 4: after ','
                f->phase = 3;
                if (push(g, s, nd->items)) return -1;
                continue;
            }
        case GN_ANY_OBJECT:
            switch (f->phase) {
            case 0:
                if (c != '{') return -1;
                f->phase = 1;
                return 0;
            case 1:
            case 6:
                if (c == '}' && f->phase == 1) { pop(g, s); return 0; }
                if (c != '"') return -1;
                f->phase = 2;
                if (push(g, s, nd->key)) return -1;
                continue;
            case 3:
                if (c != ':') return -1;
                f->phase = 4;
                return push(g, s, nd->items);
            case 5:
                if (c == ',' && f->count < nd->max_items) { f->phase = 6; return 0; }
                if (c == '}') { pop(g, s); return 0; }
                return -1;
            default:
                return -1;
            }
        case GN_ANY_VALUE: {
            int next = c == '"' ? nd->on_string
                     : (c == '-' || (c >= '0' && c <= '9')) ? nd->on_number
                     : (c == 't' || c == 'f' || c == 'n') ? nd->on_literal
                     : c == '{' ? nd->on_object
                     : c == '[' ? nd->on_array : -1;
            if (next < 0) return -1;
            s->n--; // replaced by the frame of the value's kind
            if (push(g, s, next)) return -1;
            continue;
        }
        }
        return -1;
    }
}

int gram_feed(const gram_t *g, gram_state_t *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (gram_step(g, s, (uint8_t)bytes[i])) return -1;
    return 0;
}

int gram_accepts(const gram_t *g, const char *text, size_t len) {
    gram_state_t s;
    gram_start(g, &s);
    return gram_feed(g, &s, text, len) == 0 && gram_done(&s);
}

// the next byte of the closing string (-1 when complete). Works on a copy for the lookahead.
static int close_byte(const gram_t *g, const gram_state_t *s0) {
    gram_state_t s = *s0;
    for (;;) {
        if (s.n == 0) return -1;
        gram_frame_t *f = &s.f[s.n - 1];
        const gnode_t *nd = &g->nodes[f->node];
        switch (nd->kind) {
        case GN_STRING:
            if (f->phase != 1) return '"'; // open, or an escaped quote
            if (f->u8 & 3) return U8_LO[f->u8 >> 2];
            return '"';
        case GN_ENUM:
            if (nd->lit_len[f->x] == f->count) {
                pop(g, &s);
                continue;
            }
            return (uint8_t)nd->lits[f->x][f->count];
        case GN_NUMBER:
            if (f->phase == 0 || f->phase == 1 || f->phase == 4) return '0';
            pop(g, &s);
            continue;
        case GN_OBJECT: return (uint8_t)nd->pieces[f->phase][f->count];
        case GN_ARRAY:
            if (f->phase == 0) return '[';
            if (f->phase == 1 && nd->min_items == 0) return ']';
            if (f->phase == 2) return f->count >= nd->min_items ? ']' : ',';
            if (push(g, &s, nd->items)) return -1;
            continue;
        case GN_ANY_OBJECT:
            if (f->phase == 0) return '{';
            if (f->phase == 1 || f->phase == 5) return '}';
            if (f->phase == 3) return ':';
            return '"';
        case GN_ANY_VALUE: return '0';
        }
        return -1;
    }
}

char *gram_closing(const gram_t *g, const gram_state_t *s0, size_t *len) {
    gram_state_t s = *s0;
    size_t n = 0, cap = 64;
    char *out = malloc(cap);
    if (!out) {
        err_set("grammar: out of memory");
        return NULL;
    }
    for (;;) {
        int b = close_byte(g, &s);
        if (b < 0) break;
        if (gram_step(g, &s, (uint8_t)b) || n > 1000000) { // cannot happen for a sound grammar
            free(out);
            err_set("grammar: internal error: the closing byte 0x%02x was rejected", b);
            return NULL;
        }
        if (n + 2 > cap) {
            char *t = realloc(out, cap *= 2);
            if (!t) {
                free(out);
                err_set("grammar: out of memory");
                return NULL;
            }
            out = t;
        }
        out[n++] = (char)b;
    }
    if (!gram_done(&s)) {
        free(out);
        err_set("grammar: internal error: the closing path does not complete the value");
        return NULL;
    }
    out[n] = 0;
    if (len) *len = n;
    return out;
}

// ---------------------------------------------------------------------------------------------
// masks

// the cache key of a state: its frames, with the byte count of a top string body cleared
static size_t state_key(const gram_t *g, const gram_state_t *s, gram_frame_t *key, int *string_body) {
    memcpy(key, s->f, (size_t)s->n * sizeof(gram_frame_t));
    *string_body = 0;
    if (s->n > 0) {
        gram_frame_t *t = &key[s->n - 1];
        if (g->nodes[t->node].kind == GN_STRING && t->phase != 0) {
            t->count = 0;
            *string_body = 1;
        }
    }
    return (size_t)s->n * sizeof(gram_frame_t);
}

// T(s): greedy longest-token count of the closing string; *t0 = its first token. Memoized.
static int closing_tokens(gram_t *g, const gram_state_t *s, int32_t *t0) {
    gram_frame_t key[GRAM_MAX_DEPTH];
    int sb;
    size_t klen = state_key(g, s, key, &sb);
    int found = 0;
    if (!t0) {
        intptr_t v = (intptr_t)gmap_get(&g->closing, key, klen, &found);
        if (found) return (int)v;
    }
    gram_state_t k = *s;
    if (sb) k.f[k.n - 1].count = 0;
    size_t n;
    char *c = gram_closing(g, &k, &n);
    if (!c) return -1;
    const gram_vocab_t *v = g->vocab;
    int T = 0;
    for (size_t i = 0; i < n;) {
        size_t L = n - i < (size_t)v->max_len ? n - i : (size_t)v->max_len;
        for (; L > 0; L--) {
            int f2 = 0;
            intptr_t id = (intptr_t)gmap_get(&v->by_bytes, c + i, L, &f2);
            if (f2) {
                if (T == 0 && t0) *t0 = (int32_t)(id - 1);
                break;
            }
        }
        i += L;
        T++;
    }
    free(c);
    if (!found && gmap_put(&g->closing, key, klen, (void *)(intptr_t)T)) return -1;
    return T;
}

// states allowing at most this many of V tokens keep them as a list (sampled with
// sampler_sample_ids: a scalar pass over the list beats a vector pass over the row)
#define GRAM_LIST_MAX(V) ((V) / 8)

// the row passes below are also built for AVX2 (picked at load time; plain selects and stores)
#define GRAM_ROW_CLONES __attribute__((target_clones("avx2", "default")))

// string bodies: -INF where a token needs more than lim bytes of room (a select: vectorizes)
GRAM_ROW_CLONES static void mask_need(float *logits, const uint8_t *need, uint8_t lim, int V) {
    for (int i = 0; i < V; i++) logits[i] = need[i] > lim ? -INFINITY : logits[i];
}

// sets logits[0..vocab) to -INF except at ids[0..n) (ascending, < vocab), which keep their values
GRAM_ROW_CLONES static void fill_except(float *logits, int vocab, const int32_t *ids, int n) {
    int from = 0;
    for (int i = 0; i <= n; i++) {
        int to = i < n ? ids[i] : vocab;
        for (int j = from; j < to; j++) logits[j] = -INFINITY;
        from = to + 1;
    }
}

// computes the mask entry of a state (called with the lock held)
static gentry_t *entry_compute(gram_t *g, const gram_state_t *s0) {
    double t_start = now_s();
    const gram_vocab_t *v = g->vocab;
    gram_frame_t key[GRAM_MAX_DEPTH];
    int sb;
    state_key(g, s0, key, &sb);
    gram_state_t s = *s0;
    if (sb) s.f[s.n - 1].count = 0;
    gentry_t *e = calloc(1, sizeof *e);
    if (!e) {
        err_set("grammar: out of memory");
        return NULL;
    }
    if (sb)
        e->need = malloc((size_t)v->V);
    else
        e->bits = calloc((size_t)(v->V + 63) / 64, sizeof(uint64_t));
    if ((sb && !e->need) || (!sb && !e->bits)) {
        gentry_free(e);
        err_set("grammar: out of memory");
        return NULL;
    }
    if (sb) memset(e->need, 255, (size_t)v->V);
    e->t = closing_tokens(g, &s, &e->t0);
    if (e->t < 0) {
        gentry_free(e);
        return NULL;
    }
    e->max_t = 0;
    const int d0 = s.n;
    for (int id = 0; id < v->V; id++) {
        const char *b = v->bytes[id];
        if (!b) continue;
        gram_state_t t = s;
        int L = v->len[id], ok = 1, closed = 0, need = 0;
        for (int i = 0; i < L; i++) {
            if (gram_step(g, &t, (uint8_t)b[i])) {
                ok = 0;
                break;
            }
            if (sb && !closed) {
                if (t.n < d0) closed = 1; // the string ended at this byte: need = bytes before it
                else {
                    const gram_frame_t *f = &t.f[d0 - 1];
                    need = f->count + (f->u8 & 3) + (f->phase == 2);
                }
            }
        }
        if (!ok) continue;
        // fast path: still inside the same string with nothing pending: same closing as s
        int same = sb && !closed && t.n == d0 && t.f[d0 - 1].phase == 1 && (t.f[d0 - 1].u8 & 3) == 0 &&
                   (s.f[d0 - 1].u8 & 3) == 0 && s.f[d0 - 1].phase == 1;
        int T = t.n == 0 ? 0 : same ? e->t : closing_tokens(g, &t, NULL);
        if (T < 0) {
            gentry_free(e);
            return NULL;
        }
        if (T > e->max_t) e->max_t = T;
        if (sb)
            e->need[id] = (uint8_t)(need < 254 ? need : 254);
        else
            e->bits[id >> 6] |= 1ull << (id & 63);
    }
    if (!sb) { // a short list of the allowed ids lets masking and sampling skip the rest of the row
        int n = 0;
        for (int w = 0; w * 64 < v->V; w++) n += __builtin_popcountll(e->bits[w]);
        if (n <= GRAM_LIST_MAX(v->V)) {
            e->ids = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
            if (!e->ids) {
                gentry_free(e);
                err_set("grammar: out of memory");
                return NULL;
            }
            for (int w = 0; w * 64 < v->V; w++)
                for (uint64_t b = e->bits[w]; b; b &= b - 1) e->ids[e->n_ids++] = w * 64 + __builtin_ctzll(b);
        }
    }
    g->stats.n_states++;
    g->stats.precompute_s += now_s() - t_start;
    return e;
}

static gentry_t *entry_get(gram_t *g, const gram_state_t *s, double *compute_s) {
    gram_frame_t key[GRAM_MAX_DEPTH];
    int sb;
    size_t klen = state_key(g, s, key, &sb);
    pthread_mutex_lock(&g->mu);
    gentry_t *e = gmap_get(&g->masks, key, klen, NULL);
    if (!e) {
        double t0 = now_s();
        e = entry_compute(g, s);
        if (compute_s) *compute_s = now_s() - t0;
        if (e && gmap_put(&g->masks, key, klen, e)) {
            gentry_free(e);
            e = NULL;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return e;
}

int gram_min_tokens(gram_t *g) {
    if (!g->vocab) return err_set("grammar: no vocabulary");
    gram_state_t s;
    gram_start(g, &s);
    gentry_t *e = entry_get(g, &s, NULL);
    return e ? e->t : -1;
}

void gram_get_stats(gram_t *g, gram_stats_t *st) {
    pthread_mutex_lock(&g->mu);
    *st = g->stats;
    pthread_mutex_unlock(&g->mu);
}

void gram_seq_init(gram_seq_t *q, gram_t *g, int max_tokens) {
    memset(q, 0, sizeof *q);
    q->g = g;
    q->max_tokens = max_tokens;
    gram_start(g, &q->st);
}

int gram_seq_advance(gram_seq_t *q, const int32_t *generated, int n) {
    const gram_vocab_t *v = q->g->vocab;
    for (; q->n_fed < n; q->n_fed++) {
        int32_t id = generated[q->n_fed];
        if (q->finished || q->rejected) continue;
        int is_end = 0;
        for (int i = 0; i < v->n_end; i++) is_end |= id == v->end_ids[i];
        if (is_end) {
            if (!gram_done(&q->st)) q->rejected = 1;
            q->finished = 1;
            continue;
        }
        if (id < 0 || id >= v->V || !v->bytes[id] || gram_feed(q->g, &q->st, v->bytes[id], v->len[id]))
            q->rejected = 1;
    }
    return q->rejected ? -1 : 0;
}

// masks the row; returns the number of allowed ids written to `allowed` (0: not listed), -1 on error
static int mask_row(gram_seq_t *q, const int32_t *generated, int n_generated, float *logits, int vocab,
                    int32_t *allowed) {
    gram_t *g = q->g;
    const gram_vocab_t *v = g->vocab;
    double t_start = now_s(), compute_s = 0; // mask time excludes a first-visit precompute
    gram_seq_advance(q, generated, n_generated);
    int V = vocab < v->V ? vocab : v->V;
    int forced = 0, n_list = 0;
    int32_t list[8]; // a short list made here (end ids / the closing token)
    const int32_t *ids = NULL;
    if (q->rejected || gram_done(&q->st)) { // only an end id
        for (int i = 0; i < v->n_end && n_list < 8; i++) {
            int32_t id = v->end_ids[i];
            if (id < 0 || id >= vocab) continue;
            int at = n_list++; // insertion sort: the list is ascending
            while (at > 0 && list[at - 1] > id) list[at] = list[at - 1], at--;
            list[at] = id;
        }
        ids = list;
    } else {
        gentry_t *e = entry_get(g, &q->st, &compute_s);
        if (!e) return -1;
        int R = q->max_tokens - n_generated;
        if (e->max_t > R - 1) {
            forced = 1;
            list[n_list++] = e->t0;
            ids = list;
        } else if (e->ids && v->V <= vocab) {
            ids = e->ids, n_list = e->n_ids;
        } else if (e->need) {
            const gram_frame_t *f = &q->st.f[q->st.n - 1];
            int rem = g->nodes[f->node].max_len - f->count;
            uint8_t lim = (uint8_t)(rem < 254 ? rem : 254);
            mask_need(logits, e->need, lim, V);
        } else {
            for (int w = 0; w * 64 < V; w++) {
                uint64_t bits = e->bits[w];
                if (bits == ~0ull) continue;
                int hi = (w + 1) * 64 < V ? (w + 1) * 64 : V;
                if (bits == 0) {
                    for (int i = w * 64; i < hi; i++) logits[i] = -INFINITY;
                    continue;
                }
                for (int i = w * 64; i < hi; i++)
                    logits[i] = (bits >> (i & 63)) & 1 ? logits[i] : -INFINITY;
            }
        }
        if (!ids)
            for (int i = V; i < vocab; i++) logits[i] = -INFINITY;
    }
    if (ids) {
        fill_except(logits, vocab, ids, n_list);
        if (allowed) memcpy(allowed, ids, (size_t)n_list * sizeof(int32_t));
    }
    double dt = now_s() - t_start - compute_s;
    pthread_mutex_lock(&g->mu);
    g->stats.n_masks++;
    g->stats.mask_s += dt;
    g->stats.n_forced += (uint64_t)forced;
    pthread_mutex_unlock(&g->mu);
    return allowed ? n_list : 0;
}

int gram_logits_hook(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab) {
    return mask_row(ud, generated, n_generated, logits, vocab, NULL) < 0 ? -1 : 0;
}

int gram_engine_hook(void *ud, const int32_t *generated, int n_generated, float *logits, int vocab,
                     int32_t *allowed) {
    return mask_row(ud, generated, n_generated, logits, vocab, allowed);
}
