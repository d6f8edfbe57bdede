// sim/grammar: the byte automaton accepts exactly the texts of its language, checked against a
// validator written here (jansson parse + a raw scan for the lexical rules + a schema walk), on
// random walks, mutations, random JSON-ish bytes and values generated here from the schema; then
// token masks over the real Qwen3 vocabulary: sequences sampled from random logits under the mask,
// with small budgets, all end as accepted JSON that jsonschema_validate accepts.
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "sim/grammar.h"
#include "sim/jsonschema.h"
#include "test.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

// ---- the reference validator (the grammar's exact language) ----

typedef struct {
    int n_str, n_num;
    int str_len[256];   // raw body bytes of each string, in document order
    char num[256][32];  // raw text of each number, in document order
} scan_t;

// lexical rules: no whitespace outside strings, strings without \u and raw control bytes, raw
// lengths / number texts collected in order. 0 when the text breaks a rule.
static int ref_scan(const char *t, size_t n, scan_t *sc) {
    sc->n_str = sc->n_num = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)t[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && t[j] != '"') {
                if (t[j] == '\\') {
                    if (j + 1 >= n || t[j + 1] == 'u') return 0;
                    j++;
                }
                j++;
            }
            if (j >= n || sc->n_str >= 256) return 0;
            sc->str_len[sc->n_str++] = (int)(j - i - 1);
            i = j + 1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && strchr("-+.eE0123456789", t[j])) j++;
            if (j - i >= 31 || sc->n_num >= 256) return 0;
            memcpy(sc->num[sc->n_num], t + i, j - i);
            sc->num[sc->n_num++][j - i] = 0;
            i = j;
        } else {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 0;
            i++;
        }
    }
    return 1;
}

typedef struct {
    const scan_t *sc;
    int si, ni;
} walk_t;

// number text: -?(0|[1-9][0-9]*)(\.[0-9]+)? with digit bounds
static int ref_number(const char *s, int neg_ok, int max_digits, int max_frac) {
    if (*s == '-') {
        if (!neg_ok) return 0;
        s++;
    }
    int d = 0;
    if (*s == '0') s++, d = 1;
    else while (*s >= '0' && *s <= '9') s++, d++;
    if (d == 0 || d > max_digits || (s[-1] == '0' && d > 1 && 0)) return 0;
    if (*s == '.') {
        s++;
        int f = 0;
        while (*s >= '0' && *s <= '9') s++, f++;
        if (f == 0 || f > max_frac) return 0;
    }
    return *s == 0;
}

static char *lit(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); }

// the schema walk, consuming raw strings / numbers in document order
static int ref_value(const json_t *sc, const json_t *v, walk_t *w) {
    const json_t *en = json_object_get(sc, "enum");
    if (en) {
        int hit = 0;
        for (size_t i = 0; i < json_array_size(en); i++) {
            const json_t *e = json_array_get(en, i);
            if (!json_equal((json_t *)e, (json_t *)v) || json_typeof(e) != json_typeof(v)) continue;
            if (json_is_string(v)) {
                char *l = lit(e);
                hit |= (int)strlen(l) - 2 == w->sc->str_len[w->si];
                free(l);
            } else if (json_is_number(v)) {
                char *l = lit(e);
                hit |= strcmp(l, w->sc->num[w->ni]) == 0;
                free(l);
            } else {
                hit = 1;
            }
        }
        if (json_is_string(v)) w->si++;
        if (json_is_number(v)) w->ni++;
        return hit;
    }
    const char *t = json_string_value(json_object_get(sc, "type"));
    if (!strcmp(t, "string")) {
        if (!json_is_string(v)) return 0;
        int ml = (int)json_integer_value(json_object_get(sc, "maxLength"));
        return w->sc->str_len[w->si++] <= ml;
    }
    if (!strcmp(t, "integer") || !strcmp(t, "number")) {
        if (!json_is_number(v) || (t[0] == 'i' && !json_is_integer(v))) return 0;
        const json_t *mn = json_object_get(sc, "minimum");
        return ref_number(w->sc->num[w->ni++], !(mn && json_number_value(mn) >= 0), 9, t[0] == 'i' ? 0 : 4);
    }
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    if (!strcmp(t, "array")) {
        if (!json_is_array(v)) return 0;
        int n = (int)json_array_size(v);
        if (n < json_integer_value(json_object_get(sc, "minItems")) ||
            n > json_integer_value(json_object_get(sc, "maxItems")))
            return 0;
        for (int i = 0; i < n; i++)
            if (!ref_value(json_object_get(sc, "items"), json_array_get(v, (size_t)i), w)) return 0;
        return 1;
    }
    // object: exactly the properties in schema order (jansson keeps the document order)
    if (!json_is_object(v)) return 0;
    const json_t *props = json_object_get(sc, "properties");
    if (json_object_size(v) != json_object_size(props)) return 0;
    void *it = json_object_iter((json_t *)v);
    const char *k;
    const json_t *ps;
    json_object_foreach((json_t *)props, k, ps) {
        if (!it || strcmp(json_object_iter_key(it), k)) return 0;
        if ((int)strlen(k) != w->sc->str_len[w->si++]) return 0; // the key written plainly
        if (!ref_value(ps, json_object_iter_value(it), w)) return 0;
        it = json_object_iter_next((json_t *)v, it);
    }
    return 1;
}

static int ref_accepts(const json_t *sc, const char *t, size_t n) {
    scan_t s;
    if (!ref_scan(t, n, &s)) return 0;
    json_error_t e;
    json_t *v = json_loadb(t, n, 0, &e);
    if (!v) return 0;
    walk_t w = {&s, 0, 0};
    int ok = ref_value(sc, v, &w) && w.si == s.n_str && w.ni == s.n_num;
    json_decref(v);
    return ok;
}

// ---- a generator of valid texts written here (completeness) ----

static void gen_append(char *out, size_t *n, const char *s) {
    size_t L = strlen(s);
    memcpy(out + *n, s, L);
    *n += L;
}

static void gen_value(const json_t *sc, char *out, size_t *n) {
    const json_t *en = json_object_get(sc, "enum");
    if (en) {
        char *l = lit(json_array_get(en, (size_t)rn((int)json_array_size(en))));
        gen_append(out, n, l);
        free(l);
        return;
    }
    const char *t = json_string_value(json_object_get(sc, "type"));
    if (!strcmp(t, "string")) {
        static const char *pieces[] = {"a", "Z", " ", "\\n", "\\\"", "\\\\", "\\/", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf", "{", "]", ":", ","};
        int ml = (int)json_integer_value(json_object_get(sc, "maxLength")), used = 0;
        gen_append(out, n, "\"");
        int k = rn(ml + 1);
        for (int i = 0; i < k; i++) {
            const char *p = pieces[rn(15)];
            if (used + (int)strlen(p) > ml) break;
            used += (int)strlen(p);
            gen_append(out, n, p);
        }
        gen_append(out, n, "\"");
    } else if (!strcmp(t, "integer") || !strcmp(t, "number")) {
        char b[48];
        const json_t *mn = json_object_get(sc, "minimum");
        long x = (long)(rnd() % 1000000000ull) >> rn(30);
        if (!(mn && json_number_value(mn) >= 0) && rn(2)) x = -x;
        if (t[0] == 'n' && rn(2)) snprintf(b, sizeof b, "%ld.%0*d", x, 1 + rn(4), rn(10));
        else snprintf(b, sizeof b, "%ld", x);
        gen_append(out, n, b);
    } else if (!strcmp(t, "boolean")) {
        gen_append(out, n, rn(2) ? "true" : "false");
    } else if (!strcmp(t, "null")) {
        gen_append(out, n, "null");
    } else if (!strcmp(t, "array")) {
        int lo = (int)json_integer_value(json_object_get(sc, "minItems"));
        int hi = (int)json_integer_value(json_object_get(sc, "maxItems"));
        int k = lo + rn(hi - lo + 1);
        gen_append(out, n, "[");
        for (int i = 0; i < k; i++) {
            if (i) gen_append(out, n, ",");
            gen_value(json_object_get(sc, "items"), out, n);
        }
        gen_append(out, n, "]");
    } else {
        const char *k;
        const json_t *ps;
        int first = 1;
        gen_append(out, n, "{");
        json_object_foreach((json_t *)json_object_get(sc, "properties"), k, ps) {
            gen_append(out, n, first ? "\"" : ",\"");
            gen_append(out, n, k);
            gen_append(out, n, "\":");
            gen_value(ps, out, n);
            first = 0;
        }
        gen_append(out, n, "}");
    }
}

// ---- checks ----

static const char *SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":5},\"b\":{\"type\":\"boolean\"}}}",
    "{\"type\":\"object\",\"properties\":{\"score\":{\"type\":\"integer\",\"enum\":[-1,0,1]},\"why\":{\"type\":\"string\",\"maxLength\":3},\"n\":{\"type\":\"null\"}}}",
    "{\"type\":\"object\",\"properties\":{\"xs\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3},\"k\":{\"type\":\"string\",\"enum\":[\"ab\",\"abc\",\"b\"]}}}",
    "{\"type\":\"object\",\"properties\":{\"o\":{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"number\"},\"q\":{\"type\":\"integer\",\"minimum\":0}}},\"e\":{\"enum\":[1,10,\"x\",true]}}}",
    "{\"type\":\"object\",\"properties\":{}}",
    "{\"type\":\"object\",\"properties\":{\"calls\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"enum\":[\"f\",\"g\"]},\"s\":{\"type\":\"string\",\"maxLength\":4}}}}}}",
};
#define N_SCHEMAS ((int)(sizeof SCHEMAS / sizeof *SCHEMAS))

// fills in defaults the reference validator reads (the grammar's documented defaults)
static void schema_defaults(json_t *sc) {
    if (!json_is_object(sc)) return;
    const char *t = json_string_value(json_object_get(sc, "type"));
    if (t && !strcmp(t, "string") && !json_object_get(sc, "maxLength")) json_object_set_new(sc, "maxLength", json_integer(128));
    if (t && !strcmp(t, "array")) {
        if (!json_object_get(sc, "maxItems")) json_object_set_new(sc, "maxItems", json_integer(8));
        if (!json_object_get(sc, "minItems")) json_object_set_new(sc, "minItems", json_integer(0));
        schema_defaults(json_object_get(sc, "items"));
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(sc, "properties"), k, v) schema_defaults(v);
}

static void check_language(int which) {
    json_error_t je;
    json_t *sc = json_loads(SCHEMAS[which], 0, &je);
    schema_defaults(sc);
    gram_t *g = gram_compile(sc, NULL, NULL);
    CHECK(g, "schema %d: %s", which, err_msg());
    if (!g) return;
    static const char alpha[] = "{}[]\",:\\abcnrtuefsxklpqoy0123456789-. /\xc3\xa9\xe2\x82\xac\xed\xa0\x80\xf0\x9f\x98";
    char buf[512];
    int n_valid = 0, n_total = 0, n_gen = 0, disagree = 0;
    for (int it = 0; it < 6000; it++) {
        size_t n = 0;
        int kind = it % 3;
        if (kind == 0) { // a generated valid text, maybe mutated
            gen_value(sc, buf, &n);
            CHECK(ref_accepts(sc, buf, n), "schema %d: generated text rejected by the reference: %.*s", which, (int)n, buf);
            CHECK(gram_accepts(g, buf, n), "schema %d: generated text rejected by the grammar: %.*s", which, (int)n, buf);
            n_gen++;
            if (rn(2) && n > 0) {
                int m = rn(3), at = rn((int)n);
                if (m == 0) memmove(buf + at, buf + at + 1, n - at - 1), n--;
                else if (m == 1) buf[at] = alpha[rn((int)sizeof alpha - 1)];
                else memmove(buf + at + 1, buf + at, n - at), buf[at] = alpha[rn((int)sizeof alpha - 1)], n++;
            }
        } else if (kind == 1) { // a random walk of the automaton over the alphabet
            gram_state_t s;
            gram_start(g, &s);
            while (!gram_done(&s) && n < 200) {
                gram_state_t t;
                uint8_t c;
                int tries = 0;
                do {
                    t = s;
                    c = (uint8_t)(rn(4) ? alpha[rn((int)sizeof alpha - 1)] : rn(256));
                } while (gram_step(g, &t, c) && ++tries < 2000);
                if (tries >= 2000) break;
                s = t;
                buf[n++] = (char)c;
            }
            if (!gram_done(&s)) { // finish along the closing string
                size_t cl;
                char *c = gram_closing(g, &s, &cl);
                CHECK(c, "closing: %s", err_msg());
                if (c) memcpy(buf + n, c, cl), n += cl;
                free(c);
            }
        } else { // random bytes, JSON-ish
            n = (size_t)rn(24);
            for (size_t i = 0; i < n; i++) buf[i] = alpha[rn((int)sizeof alpha - 1)];
        }
        int a = gram_accepts(g, buf, n), r = ref_accepts(sc, buf, n);
        n_total++;
        n_valid += r;
        if (a != r) {
            disagree++;
            if (disagree < 5) CHECK(0, "schema %d: grammar %d, reference %d on: %.*s", which, a, r, (int)n, buf);
        }
    }
    printf("schema %d: %d texts (%d valid, %d generated), %d disagreements\n", which, n_total, n_valid, n_gen, disagree);
    CHECK(disagree == 0, "schema %d disagreements", which);
    gram_free(g);
    json_decref(sc);
}

// "any" objects: everything the grammar accepts is a JSON object within the bounds
static int depth_of(const json_t *v) {
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) { int e = depth_of(x); d = e > d ? e : d; }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) { int e = depth_of(x); d = e > d ? e : d; }
        return d + 1;
    }
    return 0;
}

static void check_any(void) {
    json_t *sc = json_loads("{\"type\":\"object\"}", 0, NULL);
    gram_t *g = gram_compile(sc, NULL, NULL);
    CHECK(g, "%s", err_msg());
    if (!g) return;
    const char *good[] = {"{}", "{\"a\":1}", "{\"a\":{\"b\":[1,2.5,\"x\",null,true]},\"c\":-0}", "{\"\":\"\"}"};
    const char *bad[] = {"{\"a\":1,}", "{\"a\" :1}", "[1]", "{\"a\":01}", "{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", "{\"a\":1e5}", "{a:1}"};
    for (int i = 0; i < 4; i++) CHECK(gram_accepts(g, good[i], strlen(good[i])), "any: rejects %s", good[i]);
    for (int i = 0; i < 7; i++) CHECK(!gram_accepts(g, bad[i], strlen(bad[i])), "any: accepts %s", bad[i]);
    static const char alpha[] = "{}[]\",:ab01-.tnf";
    int n_ok = 0;
    for (int it = 0; it < 3000; it++) {
        gram_state_t s;
        gram_start(g, &s);
        char buf[400];
        size_t n = 0;
        while (!gram_done(&s) && n < 120) {
            gram_state_t t;
            char c;
            int tries = 0;
            do { t = s; c = alpha[rn((int)sizeof alpha - 1)]; } while (gram_step(g, &t, (uint8_t)c) && ++tries < 500);
            if (tries >= 500) break; // no letter of the alphabet fits (e.g. inside "null")
            s = t;
            buf[n++] = c;
        }
        size_t cl;
        char *c = gram_closing(g, &s, &cl);
        memcpy(buf + n, c, cl);
        n += cl;
        free(c);
        json_t *v = json_loadb(buf, n, 0, NULL);
        int ok = v && json_is_object(v) && depth_of(v) <= 4;
        CHECK(ok, "any: accepted but not a bounded object: %.*s", (int)n, buf);
        n_ok += ok;
        json_decref(v);
    }
    printf("any object: %d/3000 random walks are JSON objects of depth <= 4\n", n_ok);
    gram_free(g);
    json_decref(sc);
}

// token masks on the real vocabulary: random logits, sampled under the mask, small budgets
static void check_tokens(void) {
    tokenizer_t *tok = tokenizer_load_dir(NULL, 1);
    CHECK(tok, "%s", err_msg());
    if (!tok) return;
    const int V = 151936;
    gram_vocab_t *voc = gram_vocab_qwen(tok, V);
    CHECK(voc, "%s", err_msg());
    const char *schema =
        "{\"type\":\"object\",\"properties\":{\"persona\":{\"type\":\"string\",\"maxLength\":60},"
        "\"calls\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,\"items\":{\"type\":\"object\",\"properties\":"
        "{\"name\":{\"type\":\"string\",\"enum\":[\"get_weather\",\"book_flight\"]},\"arguments\":{\"type\":\"object\"}}}},"
        "\"score\":{\"type\":\"integer\",\"enum\":[-1,0,1]},\"ok\":{\"type\":\"boolean\"}}}";
    json_t *sc = json_loads(schema, 0, NULL);
    gram_t *g = gram_compile(sc, NULL, voc);
    CHECK(g, "%s", err_msg());
    if (!g) return;
    int tmin = gram_min_tokens(g);
    printf("tokens: T(start) = %d\n", tmin);
    float *logits = malloc((size_t)V * sizeof(float));
    int n_ok = 0, n_seq = 120, total_tokens = 0;
    for (int q = 0; q < n_seq; q++) {
        int budget = tmin + 5 + q % 60;
        gram_seq_t s;
        gram_seq_init(&s, g, budget);
        int32_t out[256];
        int n = 0;
        while (n < budget) {
            for (int i = 0; i < V; i++) logits[i] = (float)(rnd() >> 40) * 0x1p-24f * 8.0f;
            if (gram_logits_hook(&s, out, n, logits, V)) break;
            int best = 0;
            for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
            out[n++] = best;
            if (best == 151645) break;
        }
        gram_seq_advance(&s, out, n);
        char *text;
        size_t len;
        tokenizer_decode(tok, out, n, &text, &len);
        if (len >= 10 && !strcmp(text + len - 10, "<|im_end|>")) text[len -= 10] = 0;
        json_t *v = json_loadb(text, len, 0, NULL);
        char why[256] = "";
        int ok = v && gram_accepts(g, text, len) && jsonschema_validate(sc, v, 0, "out", why, sizeof why) == 1;
        CHECK(ok, "budget %d: not a valid output (%s): %s", budget, why, text);
        n_ok += ok;
        total_tokens += n;
        json_decref(v);
        free(text);
    }
    gram_stats_t st;
    gram_get_stats(g, &st);
    printf("tokens: %d/%d outputs valid, %.1f tokens per output; %llu mask states, precompute %.2f ms/state; "
           "mask %.1f us/token (%llu masks, %llu forced)\n",
           n_ok, n_seq, (double)total_tokens / n_seq, (unsigned long long)st.n_states,
           1e3 * st.precompute_s / (double)(st.n_states ? st.n_states : 1),
           1e6 * st.mask_s / (double)(st.n_masks ? st.n_masks : 1), (unsigned long long)st.n_masks,
           (unsigned long long)st.n_forced);
    free(logits);
    gram_free(g);
    gram_vocab_free(voc);
    json_decref(sc);
    tokenizer_free(tok);
}

int main(void) {
    for (int i = 0; i < N_SCHEMAS; i++) check_language(i);
    check_any();
    check_tokens();
    return test_exit("test_grammar");
}
