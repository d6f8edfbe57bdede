// JSON-schema subset validator (jsonschema.h).
#include "jsonschema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/err.h"

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int is_type(const json_t *v, const char *t) {
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v) || (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
                                      fabs(json_real_value(v)) < 9.007199254740992e15);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    return -1;
}

// numbers compare by value (1 == 1.0), everything else with json_equal
static int value_equal(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

static size_t utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

#define FAIL(...)                                      \
    do {                                               \
        snprintf(why, why_cap, __VA_ARGS__);           \
        return 0;                                      \
    } while (0)

int jsonschema_validate(const json_t *sc, const json_t *v, int flags, const char *path, char *why,
                        size_t why_cap) {
    char sub[512];
    if (json_is_true(sc)) return 1;
    if (!json_is_object(sc)) return err_set("%s: the schema is not an object", path);
    const json_t *ty = json_object_get(sc, "type");
    if (ty) {
        int ok = 0;
        if (json_is_string(ty)) {
            ok = is_type(v, json_string_value(ty));
        } else if (json_is_array(ty)) {
            size_t i;
            const json_t *t;
            json_array_foreach(ty, i, t) {
                if (!json_is_string(t)) return err_set("%s: schema type list holds a non-string", path);
                int r = is_type(v, json_string_value(t));
                if (r < 0) return err_set("%s: unknown schema type '%s'", path, json_string_value(t));
                ok |= r;
            }
        } else {
            return err_set("%s: schema \"type\" is neither a string nor an array", path);
        }
        if (ok < 0) return err_set("%s: unknown schema type '%s'", path, json_string_value(ty));
        if (!ok) FAIL("%s: expected %s, found %s", path, json_is_string(ty) ? json_string_value(ty) : "one of the listed types", type_name(v));
    }
    const json_t *en = json_object_get(sc, "enum");
    if (en) {
        if (!json_is_array(en)) return err_set("%s: schema \"enum\" is not an array", path);
        size_t i;
        const json_t *e;
        int hit = 0;
        json_array_foreach(en, i, e) hit |= value_equal(e, v);
        if (!hit) FAIL("%s: value is not one of the %zu enum values", path, json_array_size(en));
    }
    const json_t *cn = json_object_get(sc, "const");
    if (cn && !value_equal(cn, v)) FAIL("%s: value differs from the schema's const", path);
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v), json_string_length(v));
        const json_t *mx = json_object_get(sc, "maxLength"), *mn = json_object_get(sc, "minLength");
        if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx))
            FAIL("%s: string of %zu characters, at most %lld allowed", path, n, (long long)json_integer_value(mx));
        if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn))
            FAIL("%s: string of %zu characters, at least %lld needed", path, n, (long long)json_integer_value(mn));
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        const json_t *mx = json_object_get(sc, "maximum"), *mn = json_object_get(sc, "minimum");
        if (json_is_number(mx) && x > json_number_value(mx)) FAIL("%s: %g is above the maximum %g", path, x, json_number_value(mx));
        if (json_is_number(mn) && x < json_number_value(mn)) FAIL("%s: %g is below the minimum %g", path, x, json_number_value(mn));
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        const json_t *mx = json_object_get(sc, "maxItems"), *mn = json_object_get(sc, "minItems");
        if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx))
            FAIL("%s: %zu items, at most %lld allowed", path, n, (long long)json_integer_value(mx));
        if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn))
            FAIL("%s: %zu items, at least %lld needed", path, n, (long long)json_integer_value(mn));
        const json_t *items = json_object_get(sc, "items");
        if (items)
            for (size_t i = 0; i < n; i++) {
                snprintf(sub, sizeof sub, "%s[%zu]", path, i);
                int r = jsonschema_validate(items, json_array_get(v, i), flags, sub, why, why_cap);
                if (r <= 0) return r;
            }
    }
    if (json_is_object(v)) {
        const json_t *props = json_object_get(sc, "properties");
        const json_t *req = json_object_get(sc, "required");
        const json_t *add = json_object_get(sc, "additionalProperties");
        if (props && !json_is_object(props)) return err_set("%s: schema \"properties\" is not an object", path);
        if (json_is_array(req)) {
            size_t i;
            const json_t *r;
            json_array_foreach(req, i, r) if (json_is_string(r) && !json_object_get(v, json_string_value(r)))
                FAIL("%s: required property '%s' is missing", path, json_string_value(r));
        }
        const char *k;
        json_t *x;
        int closed = json_is_false(add) || (props && (flags & JSONSCHEMA_STRICT) && !json_is_true(add) && !json_is_object(add));
        json_object_foreach((json_t *)v, k, x) {
            const json_t *ps = props ? json_object_get(props, k) : NULL;
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            if (ps) {
                int r = jsonschema_validate(ps, x, flags, sub, why, why_cap);
                if (r <= 0) return r;
            } else if (closed) {
                FAIL("%s: unknown property '%s'", path, k);
            } else if (json_is_object(add)) {
                int r = jsonschema_validate(add, x, flags, sub, why, why_cap);
                if (r <= 0) return r;
            }
        }
    }
    return 1;
}
