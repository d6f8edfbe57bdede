// Qwen3 config.json: parse (jansson), validate, write (see config.h).
//
// Keys follow Hugging Face's Qwen3Config. Required: vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads. Optional with HF's defaults: num_key_value_heads (= heads),
// head_dim (= hidden / heads), max_position_embeddings (32768), rms_norm_eps (1e-6),
// rope_theta (10000), tie_word_embeddings (false), bos/eos_token_id (-1), torch_dtype ("").
// Features the runtime does not implement (rope_scaling, sliding window, attention bias, another
// activation or model type) are rejected instead of being silently ignored.
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"

// a short printable rendering of a JSON value for "found ..." in messages
static void config_describe(const json_t *v, char *out, size_t cap) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(out, cap, "(unprintable)");
        return;
    }
    if (strlen(s) > 60) snprintf(out, cap, "%.57s...", s);
    else snprintf(out, cap, "%s", s);
    free(s);
}

static int config_type_error(const char *name, const char *key, const char *expected, const json_t *v) {
    char found[80];
    config_describe(v, found, sizeof found);
    return err_set("%s: key \"%s\": expected %s, found %s", name, key, expected, found);
}

// positive integer key. required=0: *out keeps its default when the key is absent (or null)
static int config_int(const json_t *root, const char *name, const char *key, int required, int *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return err_set("%s: missing key \"%s\" (expected a positive integer)", name, key);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 0x7fffffff)
        return config_type_error(name, key, "a positive integer", v);
    json_int_t x = json_integer_value(v);
    *out = (int)x;
    return 0;
}

static int config_number(const json_t *root, const char *name, const char *key, double *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
        return config_type_error(name, key, "a positive number", v);
    *out = json_number_value(v);
    return 0;
}

// a token id: an integer, or a list of integers (the first one is kept), or null
static int config_token_id(const json_t *root, const char *name, const char *key, int *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    const json_t *x = v;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) return 0;
        x = json_array_get(v, 0);
    }
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 0x7fffffff)
        return config_type_error(name, key, "a token id (an integer >= 0, or a list of them)", v);
    *out = (int)json_integer_value(x);
    return 0;
}

// a key whose value, when present, must equal `expected` (a feature we do not implement otherwise)
static int config_expect_string(const json_t *root, const char *name, const char *key, const char *expected) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || strcmp(json_string_value(v), expected) != 0) {
        char want[64];
        snprintf(want, sizeof want, "\"%s\" (the only value trustee supports)", expected);
        return config_type_error(name, key, want, v);
    }
    return 0;
}

static int config_expect_false(const json_t *root, const char *name, const char *key, const char *why) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v) || json_is_false(v)) return 0;
    return config_type_error(name, key, why, v);
}

int qwen3_config_parse(qwen3_config_t *cfg, const char *json, size_t len, const char *name) {
    memset(cfg, 0, sizeof *cfg);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("%s: not valid JSON: %s (line %d, column %d)", name, jerr.text, jerr.line,
                       jerr.column);
    int rc = -1;
    if (!json_is_object(root)) {
        err_set("%s: expected a JSON object at the top level, found %s", name,
                json_is_array(root) ? "an array" : "a scalar");
        goto done;
    }
    // HF defaults for the optional keys
    cfg->num_key_value_heads = -1;
    cfg->head_dim = -1;
    cfg->max_position_embeddings = 32768;
    cfg->rms_norm_eps = 1e-6;
    cfg->rope_theta = 10000.0;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    if (config_int(root, name, "vocab_size", 1, &cfg->vocab_size) ||
        config_int(root, name, "hidden_size", 1, &cfg->hidden_size) ||
        config_int(root, name, "intermediate_size", 1, &cfg->intermediate_size) ||
        config_int(root, name, "num_hidden_layers", 1, &cfg->num_hidden_layers) ||
        config_int(root, name, "num_attention_heads", 1, &cfg->num_attention_heads) ||
        config_int(root, name, "num_key_value_heads", 0, &cfg->num_key_value_heads) ||
        config_int(root, name, "head_dim", 0, &cfg->head_dim) ||
        config_int(root, name, "max_position_embeddings", 0, &cfg->max_position_embeddings) ||
        config_number(root, name, "rms_norm_eps", &cfg->rms_norm_eps) ||
        config_number(root, name, "rope_theta", &cfg->rope_theta) ||
        config_token_id(root, name, "bos_token_id", &cfg->bos_token_id) ||
        config_token_id(root, name, "eos_token_id", &cfg->eos_token_id))
        goto done;
    if (cfg->num_key_value_heads < 0) cfg->num_key_value_heads = cfg->num_attention_heads;
    if (cfg->head_dim < 0) {
        if (cfg->hidden_size % cfg->num_attention_heads) {
            err_set("%s: no key \"head_dim\", and hidden_size %d is not a multiple of "
                    "num_attention_heads %d (expected head_dim to be given)",
                    name, cfg->hidden_size, cfg->num_attention_heads);
            goto done;
        }
        cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    }

    const json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_null(tie)) {
        if (!json_is_boolean(tie)) {
            config_type_error(name, "tie_word_embeddings", "true or false", tie);
            goto done;
        }
        cfg->tie_word_embeddings = json_is_true(tie);
    }

    // newer transformers write "dtype", older "torch_dtype"
    const char *dkey = json_object_get(root, "torch_dtype") ? "torch_dtype" : "dtype";
    const json_t *dt = json_object_get(root, dkey);
    if (dt && !json_is_null(dt)) {
        if (!json_is_string(dt) || json_string_length(dt) >= sizeof cfg->torch_dtype) {
            config_type_error(name, dkey, "a dtype name such as \"bfloat16\"", dt);
            goto done;
        }
        snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", json_string_value(dt));
    }

    // features outside what the runtime implements
    if (config_expect_string(root, name, "model_type", "qwen3") ||
        config_expect_string(root, name, "hidden_act", "silu") ||
        config_expect_false(root, name, "attention_bias", "false (attention biases are not supported)") ||
        config_expect_false(root, name, "use_sliding_window", "false (sliding-window attention is not supported)"))
        goto done;
    const json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const json_t *t = json_is_object(rs) ? json_object_get(rs, "rope_type") : NULL;
        if (!t) t = json_is_object(rs) ? json_object_get(rs, "type") : NULL;
        if (!(t && json_is_string(t) && strcmp(json_string_value(t), "default") == 0)) {
            config_type_error(name, "rope_scaling", "null (RoPE scaling is not supported)", rs);
            goto done;
        }
    }
    rc = qwen3_config_validate(cfg, name);
done:
    json_decref(root);
    return rc;
}

int qwen3_config_load(qwen3_config_t *cfg, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > ((size_t)64 << 20)) {
                free(buf);
                fclose(f);
                return err_set("%s: larger than 64 MiB (expected a small config.json)", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return err_set("%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_set("%s: read error", path);
    }
    int rc = qwen3_config_parse(cfg, buf, len, path);
    free(buf);
    return rc;
}

int qwen3_config_validate(const qwen3_config_t *c, const char *name) {
    const struct { const char *key; int v; } sizes[] = {
        {"vocab_size", c->vocab_size},
        {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size},
        {"num_hidden_layers", c->num_hidden_layers},
        {"num_attention_heads", c->num_attention_heads},
        {"num_key_value_heads", c->num_key_value_heads},
        {"head_dim", c->head_dim},
        {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v <= 0)
            return err_set("%s: %s must be a positive integer, found %d", name, sizes[i].key, sizes[i].v);
    if (c->num_attention_heads % c->num_key_value_heads)
        return err_set("%s: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
                       name, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2)
        return err_set("%s: head_dim must be even for RoPE, found %d", name, c->head_dim);
    // the widest matrix dimensions must fit an int (kernels index rows with int)
    if ((long long)c->num_attention_heads * c->head_dim > 0x7fffffff)
        return err_set("%s: num_attention_heads * head_dim = %lld is too large", name,
                       (long long)c->num_attention_heads * c->head_dim);
    if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps))
        return err_set("%s: rms_norm_eps must be a positive number, found %g", name, c->rms_norm_eps);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return err_set("%s: rope_theta must be a positive number, found %g", name, c->rope_theta);
    if (c->bos_token_id < -1 || c->eos_token_id < -1)
        return err_set("%s: bos/eos_token_id must be a token id or -1 (absent)", name);
    for (const char *p = c->torch_dtype; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return err_set("%s: torch_dtype \"%s\" is not a dtype name", name, c->torch_dtype);
    return 0;
}

// integral values as "1000000.0" (as Python's json writes them), others as the shortest "%.*g" that
// reads back as the same double: config.json shows 1e-06, not 9.9999999999999995e-07
static void config_format_real(double x, char *out, size_t cap) {
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(out, cap, "%.1f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, x);
        if (strtod(out, NULL) == x) break;
    }
}

static void config_write_token_id(FILE *f, const char *key, int id) {
    if (id < 0) fprintf(f, "  \"%s\": null,\n", key);
    else fprintf(f, "  \"%s\": %d,\n", key, id);
}

int qwen3_config_write(const qwen3_config_t *c, const char *path) {
    if (qwen3_config_validate(c, path)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return err_set("%s: cannot create: %s", path, strerror(errno));
    char eps[40], theta[40];
    config_format_real(c->rms_norm_eps, eps, sizeof eps);
    config_format_real(c->rope_theta, theta, sizeof theta);
    fprintf(f, "{\n");
    fprintf(f, "  \"architectures\": [\n    \"Qwen3ForCausalLM\"\n  ],\n");
    fprintf(f, "  \"model_type\": \"qwen3\",\n");
    fprintf(f, "  \"vocab_size\": %d,\n", c->vocab_size);
    fprintf(f, "  \"hidden_size\": %d,\n", c->hidden_size);
    fprintf(f, "  \"intermediate_size\": %d,\n", c->intermediate_size);
    fprintf(f, "  \"num_hidden_layers\": %d,\n", c->num_hidden_layers);
    fprintf(f, "  \"num_attention_heads\": %d,\n", c->num_attention_heads);
    fprintf(f, "  \"num_key_value_heads\": %d,\n", c->num_key_value_heads);
    fprintf(f, "  \"head_dim\": %d,\n", c->head_dim);
    fprintf(f, "  \"max_position_embeddings\": %d,\n", c->max_position_embeddings);
    fprintf(f, "  \"max_window_layers\": %d,\n", c->num_hidden_layers);
    fprintf(f, "  \"rms_norm_eps\": %s,\n", eps);
    fprintf(f, "  \"rope_theta\": %s,\n", theta);
    fprintf(f, "  \"rope_scaling\": null,\n");
    fprintf(f, "  \"use_sliding_window\": false,\n");
    fprintf(f, "  \"sliding_window\": null,\n");
    fprintf(f, "  \"tie_word_embeddings\": %s,\n", c->tie_word_embeddings ? "true" : "false");
    fprintf(f, "  \"attention_bias\": false,\n");
    fprintf(f, "  \"attention_dropout\": 0.0,\n");
    fprintf(f, "  \"hidden_act\": \"silu\",\n");
    fprintf(f, "  \"initializer_range\": 0.02,\n");
    fprintf(f, "  \"use_cache\": true,\n");
    config_write_token_id(f, "bos_token_id", c->bos_token_id);
    config_write_token_id(f, "eos_token_id", c->eos_token_id);
    fprintf(f, "  \"torch_dtype\": \"%s\"\n", c->torch_dtype[0] ? c->torch_dtype : "float32");
    fprintf(f, "}\n");
    int bad = ferror(f);
    if (fclose(f) || bad) return err_set("%s: write error", path);
    return 0;
}
