// BFCL AST checker: see sim/bfcl.h and ../shared/bench/bfcl/CHECKER.md (section numbers below).
#include "sim/bfcl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ---- value kinds (CHECKER.md: "type of x") ----

typedef enum { K_NONE, K_STR, K_INT, K_FLOAT, K_BOOL, K_NULL, K_LIST, K_DICT } kind_t;

static kind_t kind_of(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING: return K_STR;
    case JSON_INTEGER: return K_INT;
    case JSON_REAL: return K_FLOAT;
    case JSON_TRUE:
    case JSON_FALSE: return K_BOOL;
    case JSON_NULL: return K_NULL;
    case JSON_ARRAY: return K_LIST;
    case JSON_OBJECT: return K_DICT;
    }
    return K_NONE;
}

// §2: doc type -> expected kind; K_NONE for a type outside the table
static kind_t kind_of_doc_type(const char *t) {
    if (!t) return K_NONE;
    if (!strcmp(t, "string") || !strcmp(t, "any")) return K_STR;
    if (!strcmp(t, "integer")) return K_INT;
    if (!strcmp(t, "float")) return K_FLOAT;
    if (!strcmp(t, "boolean")) return K_BOOL;
    if (!strcmp(t, "array") || !strcmp(t, "tuple")) return K_LIST;
    if (!strcmp(t, "dict")) return K_DICT;
    return K_NONE;
}

static int is_empty_str(const json_t *v) { return json_is_string(v) && json_string_length(v) == 0; }

// ---- §6.5 Python equality ----

static int is_num(const json_t *v) { return json_is_number(v) || json_is_boolean(v); }

static int py_eq(const json_t *a, const json_t *b) {
    if (is_num(a) && is_num(b)) {
        if (json_is_real(a) || json_is_real(b)) {
            double x = json_is_boolean(a) ? json_is_true(a) : json_number_value(a);
            double y = json_is_boolean(b) ? json_is_true(b) : json_number_value(b);
            return x == y;
        }
        json_int_t x = json_is_boolean(a) ? json_is_true(a) : json_integer_value(a);
        json_int_t y = json_is_boolean(b) ? json_is_true(b) : json_integer_value(b);
        return x == y;
    }
    kind_t ka = kind_of(a), kb = kind_of(b);
    if (ka != kb) return 0;
    switch (ka) {
    case K_STR:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case K_NULL: return 1;
    case K_LIST:
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!py_eq(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    case K_DICT: {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *va;
        json_object_foreach((json_t *)a, k, va) {
            json_t *vb = json_object_get(b, k);
            if (!vb || !py_eq(va, vb)) return 0;
        }
        return 1;
    }
    default: return 0;
    }
}

// ---- §6.1 string normalization ----

char *bfcl_normalize(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(2 * n + 8); // lowercasing can grow a code point (U+0130 -> 3 bytes)
    if (!out) return NULL;
    size_t o = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t left = (utf8proc_ssize_t)n;
    while (left > 0) {
        utf8proc_int32_t c;
        utf8proc_ssize_t len = utf8proc_iterate(p, left, &c);
        if (len <= 0) { c = *p; len = 1; } // invalid byte: keep it as it is
        p += len, left -= len;
        if (c == ' ' || c == ',' || c == '.' || c == '/' || c == '-' || c == '_' || c == '*' ||
            c == '^')
            continue;
        if (c == '\'') c = '"';
        if (c == 0x130) { // Python: 'İ'.lower() == 'i' + U+0307
            out[o++] = 'i';
            o += utf8proc_encode_char(0x307, (utf8proc_uint8_t *)out + o);
            continue;
        }
        if (c >= 0x80 || (c >= 'A' && c <= 'Z')) c = utf8proc_tolower(c);
        if (c < 0x80) out[o++] = (char)c;
        else o += utf8proc_encode_char(c, (utf8proc_uint8_t *)out + o);
    }
    out[o] = 0;
    return out;
}

// a new value: strings normalized, anything else referenced as it is
static json_t *norm_value(const json_t *v) {
    if (json_is_string(v)) {
        char *s = bfcl_normalize(json_string_value(v));
        json_t *r = json_string(s ? s : "");
        free(s);
        return r;
    }
    return json_incref((json_t *)v);
}

// a new list: each top-level string element normalized ("" as an option becomes [])
static json_t *norm_list(const json_t *v) {
    json_t *r = json_array();
    if (!json_is_array(v)) return r;
    for (size_t i = 0; i < json_array_size(v); i++)
        json_array_append_new(r, norm_value(json_array_get(v, i)));
    return r;
}

// ---- §5 type check ----

// kind of the first element of list O that is not "" (K_NONE when there is none)
static kind_t first_kind(const json_t *O) {
    if (!json_is_array(O)) return K_NONE;
    for (size_t i = 0; i < json_array_size(O); i++) {
        const json_t *o = json_array_get(O, i);
        if (!is_empty_str(o)) return kind_of(o);
    }
    return K_NONE;
}

// NULL on pass (then *path says whether v is on the answer-type path), else the error type
static const char *type_check(const json_t *v, const json_t *O, kind_t T, kind_t N, int *path) {
    kind_t PT = first_kind(O), kv = kind_of(v);
    *path = PT != K_NONE && PT != T;
    int nested_fail = 0;
    if (kv == T) {
        if (N == K_NONE) return NULL;
        for (size_t i = 0; i < json_array_size(O); i++) {
            const json_t *o = json_array_get(O, i);
            if (!json_is_array(o)) return NULL;
            kind_t ok = first_kind(o);
            int all = 1;
            for (size_t j = 0; j < json_array_size(v) && all; j++) {
                kind_t ke = kind_of(json_array_get(v, j));
                all = ke == N || (ok != K_NONE && ke == ok);
            }
            if (all) return NULL;
        }
        nested_fail = 1;
    }
    if (PT != K_NONE && kv == PT) {
        if (nested_fail) return "type_error:nested";
        *path = 1;
        return NULL;
    }
    return "type_error:simple";
}

// ---- §6 value checks ----

// 6.1: normalized v equals normalized form of some string option
static const char *check_string(const json_t *v, const json_t *O) {
    char *nv = bfcl_normalize(json_string_value(v));
    int ok = 0;
    for (size_t i = 0; nv && i < json_array_size(O) && !ok; i++) {
        const json_t *o = json_array_get(O, i);
        if (!json_is_string(o)) continue;
        char *no = bfcl_normalize(json_string_value(o));
        ok = no && !strcmp(nv, no);
        free(no);
    }
    free(nv);
    return ok ? NULL : "value_error:string";
}

// 6.2
static const char *check_list(const json_t *v, const json_t *O) {
    json_t *nv = norm_list(v);
    int ok = 0;
    for (size_t i = 0; i < json_array_size(O) && !ok; i++) {
        json_t *no = norm_list(json_array_get(O, i));
        ok = py_eq(nv, no);
        json_decref(no);
    }
    json_decref(nv);
    return ok ? NULL : "value_error:list/tuple";
}

// does (normalized when a string) v equal some member of the option list m?
static int dict_value_matches(const json_t *v, const json_t *m) {
    if (!json_is_array(m)) return 0;
    int is_s = json_is_string(v), ok = 0;
    json_t *nv = is_s ? norm_value(v) : json_incref((json_t *)v);
    for (size_t i = 0; i < json_array_size(m) && !ok; i++) {
        json_t *nm = is_s ? norm_value(json_array_get(m, i)) : json_incref(json_array_get(m, i));
        ok = py_eq(nv, nm);
        json_decref(nm);
    }
    json_decref(nv);
    return ok;
}

static int list_has_empty_str(const json_t *m) {
    for (size_t i = 0; json_is_array(m) && i < json_array_size(m); i++)
        if (is_empty_str(json_array_get(m, i))) return 1;
    return 0;
}

// 6.3 dict check of v against the options in O (an array)
static const char *check_dict(const json_t *v, const json_t *O) {
    const char *res = "dict_checker:unclear";
    for (size_t i = 0; i < json_array_size(O); i++) {
        const json_t *o = json_array_get(O, i);
        if (is_empty_str(o)) continue;
        res = NULL;
        if (!json_is_object(o) || !json_is_object(v)) { res = "value_error:dict_key"; continue; }
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) { // (a)
            json_t *m = json_object_get(o, k);
            if (!m) { res = "value_error:dict_key"; break; }
            if (!dict_value_matches(x, m)) { res = "value_error:dict_value"; break; }
        }
        json_object_foreach((json_t *)o, k, x) { // (b), always
            if (!json_object_get(v, k) && !list_has_empty_str(x)) {
                res = "value_error:dict_key";
                break;
            }
        }
        if (!res) return NULL;
    }
    return res;
}

// 6.3 list-of-dicts check
static const char *check_list_dict(const json_t *v, const json_t *O) {
    const char *res = "list_dict_checker:unclear";
    for (size_t i = 0; i < json_array_size(O); i++) {
        const json_t *o = json_array_get(O, i);
        size_t n = json_is_array(o) ? json_array_size(o) : 0;
        if (json_array_size(v) != n) { res = "value_error:list_dict_count"; continue; }
        const char *err = NULL;
        for (size_t j = 0; j < n && !err; j++) {
            json_t *one = json_array();
            json_array_append(one, json_array_get(o, j));
            err = check_dict(json_array_get(v, j), one);
            json_decref(one);
        }
        if (!err) return NULL;
        res = err;
    }
    return res;
}

// 6.4
static const char *check_others(const json_t *v, const json_t *O) {
    for (size_t i = 0; i < json_array_size(O); i++)
        if (py_eq(v, json_array_get(O, i))) return NULL;
    return "value_error:others";
}

// ---- §4 single-call check ----

static const char *doc_name(const json_t *doc) { return json_string_value(json_object_get(doc, "name")); }

static const char *check_one_arg(const json_t *prop, const json_t *v, const json_t *O) {
    const char *dtype = json_string_value(json_object_get(prop, "type"));
    kind_t T = kind_of_doc_type(dtype), N = K_NONE;
    if (T == K_LIST) N = kind_of_doc_type(json_string_value(json_object_get(json_object_get(prop, "items"), "type")));
    json_t *pv = NULL; // 4.3.3: int accepted as float (top level only)
    if (T == K_FLOAT && json_is_integer(v)) v = pv = json_real((double)json_integer_value(v));
    int path = 0;
    const char *err = type_check(v, O, T, N, &path);
    if (!err) {
        if (path) err = check_others(v, O);
        else if (T == K_STR) err = check_string(v, O);
        else if (T == K_LIST && N == K_DICT) err = check_list_dict(v, O);
        else if (T == K_LIST) err = check_list(v, O);
        else if (T == K_DICT) err = check_dict(v, O);
        else err = check_others(v, O);
    }
    json_decref(pv);
    return err;
}

// doc, a model call {"name", "arguments"}, an answer call {aname: A}
static const char *check_call(const json_t *doc, const json_t *call, const json_t *answer) {
    const char *want = doc_name(doc);
    const char *got = json_string_value(json_object_get(call, "name"));
    if (!want || !got || strcmp(want, got)) return "simple_function_checker:wrong_func_name";
    const json_t *margs = json_object_get(call, "arguments");
    const json_t *params = json_object_get(doc, "parameters");
    const json_t *props = json_object_get(params, "properties");
    const json_t *req = json_object_get(params, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const char *r = json_string_value(json_array_get(req, i));
        if (r && !json_object_get(margs, r)) return "simple_function_checker:missing_required";
    }
    const json_t *A = NULL;
    if (json_is_object(answer)) { // the one value of {aname: A}
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)answer, k, x) { A = x; break; }
    }
    const char *p;
    json_t *v;
    json_object_foreach((json_t *)margs, p, v) {
        const json_t *prop = json_object_get(props, p), *O = json_object_get(A, p);
        if (!prop || !O) return "simple_function_checker:unexpected_param";
        const char *err = check_one_arg(prop, v, O);
        if (err) return err;
    }
    json_object_foreach((json_t *)A, p, v) {
        if (!json_object_get(margs, p) && !list_has_empty_str(v))
            return "simple_function_checker:missing_optional";
    }
    return NULL;
}

// the name of an answer call {aname: A}
static const char *answer_name(const json_t *answer) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)answer, k, x) return k;
    return NULL;
}

static const json_t *find_doc(const json_t *functions, const char *name) {
    for (size_t i = 0; name && i < json_array_size(functions); i++) {
        const char *n = doc_name(json_array_get(functions, i));
        if (n && !strcmp(n, name)) return json_array_get(functions, i);
    }
    return NULL;
}

// ---- §3, §7, §8 ----

bfcl_kind_t bfcl_category_kind(const char *c) {
    if (strstr(c, "irrelevance")) return BFCL_IRRELEVANCE;
    if (strstr(c, "parallel")) return BFCL_PARALLEL;
    if (strstr(c, "multiple")) return BFCL_MULTIPLE;
    if (strstr(c, "simple")) return BFCL_SIMPLE;
    return BFCL_UNKNOWN;
}

// §1: is every call {"name": str, "arguments": object}?
static int calls_decode(const json_t *calls) {
    if (!json_is_array(calls)) return 0;
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const json_t *c = json_array_get(calls, i);
        if (!json_is_object(c) || !json_is_string(json_object_get(c, "name")) ||
            !json_is_object(json_object_get(c, "arguments")))
            return 0;
    }
    return 1;
}

const char *bfcl_check(bfcl_kind_t kind, const json_t *functions, const json_t *ground_truth,
                       const json_t *calls) {
    if (kind == BFCL_IRRELEVANCE) { // §8: valid when there is no call
        if (!calls_decode(calls)) return NULL;
        size_t n = json_array_size(calls);
        if (n == 0) return NULL;
        return "irrelevance_error:decoder_success";
    }
    if (!calls_decode(calls)) return "ast_decoder:decoder_failed";
    size_t n = json_array_size(calls), na = json_array_size(ground_truth);
    if (kind == BFCL_SIMPLE) {
        if (n != 1) return "simple_function_checker:wrong_count";
        return check_call(json_array_get(functions, 0), json_array_get(calls, 0),
                          json_array_get(ground_truth, 0));
    }
    if (kind == BFCL_MULTIPLE) {
        if (n != na) return "multiple_function_checker:wrong_count";
        if (n == 0) return NULL;
        const json_t *ans = json_array_get(ground_truth, 0);
        return check_call(find_doc(functions, answer_name(ans)), json_array_get(calls, 0), ans);
    }
    if (kind == BFCL_PARALLEL) {
        if (n != na) return "parallel_function_checker_no_order:wrong_count";
        char *used = calloc(n ? n : 1, 1);
        if (!used) return "parallel_function_checker_no_order:cannot_find_match";
        const char *res = NULL;
        for (size_t i = 0; i < na && !res; i++) {
            const json_t *ans = json_array_get(ground_truth, i);
            const json_t *doc = find_doc(functions, answer_name(ans));
            size_t j = 0;
            for (; j < n; j++)
                if (!used[j] && !check_call(doc, json_array_get(calls, j), ans)) break;
            if (j == n) res = "parallel_function_checker_no_order:cannot_find_match";
            else used[j] = 1;
        }
        free(used);
        return res;
    }
    return "ast_decoder:decoder_failed";
}
