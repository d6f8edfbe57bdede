// Tokenizer: loading a Hugging Face tokenizer.json (jansson), decoding, streaming decode.
// Encoding lives in tok_encode.c, the BPE core in tok_bpe.c (see tok_internal.h for the pipeline).
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels/err.h"
#include "tok_internal.h"

// ---------------------------------------------------------------------------------------------
// ids_t

int ids_push(ids_t *v, int32_t id) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, (size_t)cap * sizeof *p);
        if (!p) return err_set("out of memory (%d ids)", cap);
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

int ids_append(ids_t *v, const int32_t *ids, int n) {
    if (v->n + n > v->cap) {
        int cap = v->cap ? v->cap : 64;
        while (cap < v->n + n) cap *= 2;
        int32_t *p = realloc(v->ids, (size_t)cap * sizeof *p);
        if (!p) return err_set("out of memory (%d ids)", cap);
        v->ids = p;
        v->cap = cap;
    }
    if (n) memcpy(v->ids + v->n, ids, (size_t)n * sizeof *ids);
    v->n += n;
    return 0;
}

void ids_free(ids_t *v) {
    free(v->ids);
    memset(v, 0, sizeof *v);
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode table: printable latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order (so ' ' -> 'Ġ' U+0120, '\n' -> 'Ċ' U+010A)

static void bytelevel_table(uint32_t byte_cp[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_cp[b] = printable ? (uint32_t)b : 256u + (uint32_t)n++;
    }
}

static int utf8_put(uint32_t cp, char *dst) {
    if (cp < 0x80) { dst[0] = (char)cp; return 1; }
    if (cp < 0x800) { dst[0] = (char)(0xC0 | (cp >> 6)); dst[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12)); dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18)); dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// decodes one UTF-8 char of a valid string (jansson guarantees valid UTF-8 strings)
static uint32_t utf8_get(const char *s, int *n) {
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80) { *n = 1; return u[0]; }
    if (u[0] < 0xE0) { *n = 2; return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu); }
    if (u[0] < 0xF0) { *n = 3; return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu); }
    *n = 4;
    return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
}

// ---------------------------------------------------------------------------------------------
// string arena

static const char *arena_put(tokenizer_t *tok, const char *s, size_t n) {
    if (tok->arena_used + n + 1 > tok->arena_cap) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        if (tok->n_arena == tok->cap_arena) {
            int c = tok->cap_arena ? tok->cap_arena * 2 : 16;
            char **a = realloc(tok->arena, (size_t)c * sizeof *a);
            if (!a) return NULL;
            tok->arena = a;
            tok->cap_arena = c;
        }
        char *block = malloc(cap);
        if (!block) return NULL;
        tok->arena[tok->n_arena++] = block;
        tok->arena_used = 0;
        tok->arena_cap = cap;
    }
    char *dst = tok->arena[tok->n_arena - 1] + tok->arena_used;
    memcpy(dst, s, n);
    dst[n] = 0;
    tok->arena_used += n + 1;
    return dst;
}

// ---------------------------------------------------------------------------------------------
// Oniguruma setup: onig_initialize once; compile/free serialized (not thread-safe in onig)

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t onig_lock = PTHREAD_MUTEX_INITIALIZER;
static int onig_init_rc;

static void onig_init_once(void) {
    OnigEncoding enc[1] = {ONIG_ENCODING_UTF8};
    onig_init_rc = onig_initialize(enc, 1);
}

int tok_regex_compile(const char *pattern, size_t len, regex_t **re, const char *name) {
    pthread_once(&onig_once, onig_init_once);
    if (onig_init_rc != ONIG_NORMAL) return err_set("%s: Oniguruma failed to initialize", name);
    OnigErrorInfo einfo;
    pthread_mutex_lock(&onig_lock);
    // the same settings as the `onig` crate's Regex::new that HF tokenizers uses:
    // ONIG_OPTION_NONE, the default syntax (Oniguruma's own), UTF-8
    int r = onig_new(re, (const OnigUChar *)pattern, (const OnigUChar *)pattern + len,
                     ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &einfo);
    pthread_mutex_unlock(&onig_lock);
    if (r != ONIG_NORMAL) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        *re = NULL;
        return err_set("%s: pre_tokenizer regex /%.*s/ does not compile: %s", name, (int)len, pattern,
                       (const char *)msg);
    }
    return 0;
}

void tok_regex_free(regex_t *re) {
    if (!re) return;
    pthread_mutex_lock(&onig_lock);
    onig_free(re);
    pthread_mutex_unlock(&onig_lock);
}

// ---------------------------------------------------------------------------------------------
// loading

#define FAIL(...) do { err_set(__VA_ARGS__); goto fail; } while (0)

static int json_flag(json_t *obj, const char *key, int def) {
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

// type name of a JSON value, for "expected X, found Y" messages
static const char *json_kind(json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int load_normalizer(tokenizer_t *tok, json_t *n, const char *where) {
    if (!n || json_is_null(n)) return 0;
    if (!json_is_object(n))
        return err_set("%s: %s: expected an object, found %s", tok->name, where, json_kind(n));
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) return err_set("%s: %s: expected a \"type\" string", tok->name, where);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return err_set("%s: %s: expected a \"normalizers\" array, found %s", tok->name, where,
                           json_kind(list));
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_normalizer(tok, json_array_get(list, i), where)) return -1;
        return 0;
    }
    int form;
    if (strcmp(type, "NFC") == 0) form = TOK_NORM_NFC;
    else if (strcmp(type, "NFD") == 0) form = TOK_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) form = TOK_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) form = TOK_NORM_NFKD;
    else
        return err_set("%s: %s: unsupported normalizer type \"%s\" (expected NFC, NFD, NFKC, NFKD or "
                       "Sequence)", tok->name, where, type);
    if (tok->n_norms == TOK_MAX_NORMS) return err_set("%s: %s: too many normalizers", tok->name, where);
    tok->norms[tok->n_norms++] = form;
    return 0;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pretokenizer(tokenizer_t *tok, json_t *p) {
    if (!p || json_is_null(p)) return 0;
    if (!json_is_object(p))
        return err_set("%s: pre_tokenizer: expected an object, found %s", tok->name, json_kind(p));
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return err_set("%s: pre_tokenizer: expected a \"type\" string", tok->name);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return err_set("%s: pre_tokenizer: expected a \"pretokenizers\" array, found %s", tok->name,
                           json_kind(list));
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_pretokenizer(tok, json_array_get(list, i))) return -1;
        return 0;
    }
    if (tok->n_pre == TOK_MAX_PRESTEPS) return err_set("%s: pre_tokenizer: too many steps", tok->name);
    tok_prestep_t *st = &tok->pre[tok->n_pre];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "Split") == 0) {
        st->type = TOK_PRE_SPLIT;
        json_t *pat = json_object_get(p, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *lit = json_string_value(json_object_get(pat, "String"));
        if (!re && !lit)
            return err_set("%s: pre_tokenizer Split: expected \"pattern\": {\"Regex\": ...} or "
                           "{\"String\": ...}", tok->name);
        if (re) {
            size_t n = json_string_length(json_object_get(pat, "Regex"));
            if (tok_regex_compile(re, n, &st->re, tok->name)) return -1;
        } else {
            // a literal: escape every ASCII punctuation char (HF escapes it with regex::escape)
            size_t n = json_string_length(json_object_get(pat, "String"));
            char *esc = malloc(2 * n + 1);
            if (!esc) return err_set("out of memory");
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)lit[i];
                if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) &&
                    c > ' ')
                    esc[k++] = '\\';
                esc[k++] = (char)c;
            }
            int rc = tok_regex_compile(esc, k, &st->re, tok->name);
            free(esc);
            if (rc) return -1;
        }
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!beh) return err_set("%s: pre_tokenizer Split: expected a \"behavior\" string", tok->name);
        if (strcmp(beh, "Isolated") == 0) st->behavior = TOK_SPLIT_ISOLATED;
        else if (strcmp(beh, "Removed") == 0) st->behavior = TOK_SPLIT_REMOVED;
        else if (strcmp(beh, "MergedWithPrevious") == 0) st->behavior = TOK_SPLIT_MERGED_PREV;
        else if (strcmp(beh, "MergedWithNext") == 0) st->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (strcmp(beh, "Contiguous") == 0) st->behavior = TOK_SPLIT_CONTIGUOUS;
        else
            return err_set("%s: pre_tokenizer Split: unknown behavior \"%s\" (expected Isolated, Removed, "
                           "MergedWithPrevious, MergedWithNext or Contiguous)", tok->name, beh);
        st->invert = json_flag(p, "invert", 0);
    } else if (strcmp(type, "ByteLevel") == 0) {
        st->type = TOK_PRE_BYTELEVEL;
        st->behavior = TOK_SPLIT_ISOLATED;
        st->add_prefix_space = json_flag(p, "add_prefix_space", 1);
        if (json_flag(p, "use_regex", 1) &&
            tok_regex_compile(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, &st->re, tok->name))
            return -1;
    } else {
        return err_set("%s: pre_tokenizer: unsupported type \"%s\" (expected Split, ByteLevel or Sequence)",
                       tok->name, type);
    }
    tok->n_pre++;
    return 0;
}

// fills a match set with the added tokens whose `normalized` flag equals `normalized`
static int matchset_build(tokenizer_t *tok, tok_matchset_t *set, int normalized) {
    int count[257] = {0};
    set->n = 0;
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].normalized == normalized && tok->added[i].len > 0) {
            count[(uint8_t)tok->added[i].content[0]]++;
            set->n++;
        }
    set->order = malloc((size_t)(set->n ? set->n : 1) * sizeof *set->order);
    if (!set->order) return err_set("out of memory");
    set->start[0] = 0;
    for (int b = 0; b < 256; b++) set->start[b + 1] = set->start[b] + (uint32_t)count[b];
    uint32_t fill[256];
    memcpy(fill, set->start, sizeof fill);
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].normalized == normalized && tok->added[i].len > 0)
            set->order[fill[(uint8_t)tok->added[i].content[0]]++] = i;
    // longest first inside each bucket (insertion sort: buckets are tiny)
    for (int b = 0; b < 256; b++)
        for (uint32_t i = set->start[b] + 1; i < set->start[b + 1]; i++)
            for (uint32_t j = i; j > set->start[b] &&
                                 tok->added[set->order[j]].len > tok->added[set->order[j - 1]].len; j--) {
                int32_t t = set->order[j];
                set->order[j] = set->order[j - 1];
                set->order[j - 1] = t;
            }
    return 0;
}

static int json_id(json_t *v, int64_t *id) {
    if (!json_is_integer(v)) return -1;
    *id = json_integer_value(v);
    return *id < 0 || *id >= (1 << 30) ? -1 : 0;
}

tokenizer_t *tokenizer_load_buffer(const char *json, size_t len, const char *name) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        err_set("%s: not valid JSON (line %d, column %d): %s", name, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    tokenizer_t *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->name = strdup(name))) {
        err_set("out of memory");
        free(tok);
        json_decref(root);
        return NULL;
    }
    tok->unk_id = -1;
    char *buf = NULL;
    if (!json_is_object(root)) FAIL("%s: expected a JSON object at the top level, found %s", name, json_kind(root));

    // ---- model ----
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) FAIL("%s: expected a \"model\" object, found %s", name, json_kind(model));
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (mtype && strcmp(mtype, "BPE") != 0)
        FAIL("%s: model.type: expected \"BPE\", found \"%s\"", name, mtype);
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) FAIL("%s: model.vocab: expected an object, found %s", name, json_kind(vocab));
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) FAIL("%s: model.merges: expected an array, found %s", name, json_kind(merges));
    json_t *v = json_object_get(model, "dropout");
    if (v && !json_is_null(v) && json_number_value(v) != 0.0)
        FAIL("%s: model.dropout: only null or 0 is supported, found %g", name, json_number_value(v));
    const char *fields[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(model, fields[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            FAIL("%s: model.%s: only null or \"\" is supported (byte-level BPE)", name, fields[i]);
    }
    tok->fuse_unk = json_flag(model, "fuse_unk", 0);
    tok->byte_fallback = json_flag(model, "byte_fallback", 0);
    tok->ignore_merges = json_flag(model, "ignore_merges", 0);

    // ---- model vocab ----
    int64_t max_id = -1, id;
    const char *key;
    json_object_foreach(vocab, key, v) {
        if (json_id(v, &id))
            FAIL("%s: model.vocab[\"%s\"]: expected a non-negative integer id, found %s", name, key, json_kind(v));
        if (id > max_id) max_id = id;
        size_t kl = strlen(key);
        const char *s = arena_put(tok, key, kl);
        if (!s) FAIL("out of memory");
        if (tok_strmap_put(&tok->vocab, s, (uint32_t)kl, (int32_t)id)) goto fail;
    }
    if (max_id < 0) FAIL("%s: model.vocab is empty", name);

    // ---- normalizer and pre-tokenizer (the normalizer is needed for added tokens) ----
    if (load_normalizer(tok, json_object_get(root, "normalizer"), "normalizer")) goto fail;
    if (load_pretokenizer(tok, json_object_get(root, "pre_tokenizer"))) goto fail;
    if (tok->n_pre == 0 || tok->pre[tok->n_pre - 1].type != TOK_PRE_BYTELEVEL)
        FAIL("%s: pre_tokenizer: expected a ByteLevel step last (only byte-level BPE is supported)", name);
    for (int i = 0; i + 1 < tok->n_pre; i++)
        if (tok->pre[i].type == TOK_PRE_BYTELEVEL)
            FAIL("%s: pre_tokenizer: ByteLevel is supported only as the last step", name);
    json_t *dec = json_object_get(root, "decoder");
    const char *dtype = json_string_value(json_object_get(dec, "type"));
    if (!dtype || strcmp(dtype, "ByteLevel") != 0)
        FAIL("%s: decoder: expected {\"type\": \"ByteLevel\"}, found %s", name,
             dtype ? dtype : json_kind(dec));

    // ---- added tokens. Ids as HF assigns them on load (it ignores the "id" field): the id of an
    //      equal token already known (added or model vocab), else the next id after the vocab, in
    //      file order. For files HF wrote, this is the "id" field. A repeated content keeps its id
    //      and takes the later flags. Empty contents are ignored. ----
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added))
        FAIL("%s: added_tokens: expected an array, found %s", name, json_kind(added));
    size_t n_added = json_array_size(added);
    tok->added = calloc(n_added ? n_added : 1, sizeof *tok->added);
    if (!tok->added) FAIL("out of memory");
    int64_t next_id = (int64_t)json_object_size(vocab);
    for (size_t i = 0; i < n_added; i++) {
        json_t *a = json_array_get(added, i);
        if (!json_is_object(a)) FAIL("%s: added_tokens[%zu]: expected an object, found %s", name, i, json_kind(a));
        if (json_id(json_object_get(a, "id"), &id))
            FAIL("%s: added_tokens[%zu].id: expected a non-negative integer, found %s", name, i,
                 json_kind(json_object_get(a, "id")));
        json_t *c = json_object_get(a, "content");
        if (!json_is_string(c))
            FAIL("%s: added_tokens[%zu].content: expected a string, found %s", name, i, json_kind(c));
        size_t cl = json_string_length(c);
        if (cl == 0) continue;
        const char *content = json_string_value(c);
        int32_t known = tok_strmap_get(&tok->added_map, content, (uint32_t)cl);
        tok_added_t *t = NULL;
        for (int k = 0; known >= 0 && k < tok->n_added; k++)
            if (tok->added[k].id == known) t = &tok->added[k];
        if (!t) {
            if (known < 0) known = tok_strmap_get(&tok->vocab, content, (uint32_t)cl);
            if (known < 0) {
                if (next_id >= (1 << 30)) FAIL("%s: added_tokens: too many ids", name);
                known = (int32_t)next_id++;
            }
            const char *s = arena_put(tok, content, cl);
            if (!s) FAIL("out of memory");
            if (tok_strmap_put(&tok->added_map, s, (uint32_t)cl, known)) goto fail;
            t = &tok->added[tok->n_added++];
            t->id = known;
            t->content = s;
            t->len = (uint32_t)cl;
        }
        if (t->id > max_id) max_id = t->id;
        t->special = (uint8_t)json_flag(a, "special", 0);
        t->single_word = (uint8_t)json_flag(a, "single_word", 0);
        t->lstrip = (uint8_t)json_flag(a, "lstrip", 0);
        t->rstrip = (uint8_t)json_flag(a, "rstrip", 0);
        t->normalized = (uint8_t)json_flag(a, "normalized", !t->special);
    }

    // ---- token string of every id: the added token, else the vocab entry (HF: added first) ----
    tok->n_ids = (int)max_id + 1;
    tok->str = calloc((size_t)tok->n_ids, sizeof *tok->str);
    tok->str_len = calloc((size_t)tok->n_ids, sizeof *tok->str_len);
    tok->bytes = calloc((size_t)tok->n_ids, sizeof *tok->bytes);
    tok->bytes_len = calloc((size_t)tok->n_ids, sizeof *tok->bytes_len);
    if (!tok->str || !tok->str_len || !tok->bytes || !tok->bytes_len) FAIL("out of memory");
    for (uint32_t k = 0; k < tok->vocab.n; k++) {
        tok->str[tok->vocab.vals[k]] = tok->vocab.keys[k];
        tok->str_len[tok->vocab.vals[k]] = tok->vocab.lens[k];
    }
    for (int k = 0; k < tok->n_added; k++) {
        tok_added_t *t = &tok->added[k];
        tok->str[t->id] = t->content;
        tok->str_len[t->id] = t->len;
        if (t->normalized && tok->n_norms) { // matched against its normalized form
            char *nf;
            size_t nn;
            if (tok_normalize(tok, t->content, t->len, &nf, &nn)) goto fail;
            if (nf) {
                t->content = arena_put(tok, nf, nn);
                t->len = (uint32_t)nn;
                free(nf);
                if (!t->content) FAIL("out of memory");
            }
        }
    }
    if (matchset_build(tok, &tok->raw_set, 0) || matchset_build(tok, &tok->norm_set, 1)) goto fail;

    // ---- byte-level symbols ----
    uint32_t byte_cp[256];
    bytelevel_table(byte_cp);
    int16_t cp_byte[512];
    memset(cp_byte, 0xff, sizeof cp_byte);
    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = utf8_put(byte_cp[b], u);
        tok->byte_id[b] = tok_strmap_get(&tok->vocab, u, (uint32_t)n);
        cp_byte[byte_cp[b]] = (int16_t)b;
        char fb[8];
        snprintf(fb, sizeof fb, "<0x%02X>", b);
        tok->byte_fallback_id[b] = tok->byte_fallback ? tok_strmap_get(&tok->vocab, fb, (uint32_t)strlen(fb)) : -1;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk) {
        tok->unk_id = tok_strmap_get(&tok->vocab, unk, (uint32_t)strlen(unk));
        if (tok->unk_id < 0) FAIL("%s: model.unk_token \"%s\" is not in model.vocab", name, unk);
    }

    // ---- merges: "a b" strings or ["a", "b"] pairs; rank = position ----
    size_t n_merges = json_array_size(merges);
    if (tok_mergemap_init(&tok->merges, (uint32_t)n_merges)) goto fail;
    size_t buf_cap = 256;
    buf = malloc(buf_cap);
    if (!buf) FAIL("out of memory");
    for (size_t r = 0; r < n_merges; r++) {
        json_t *m = json_array_get(merges, r);
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                FAIL("%s: model.merges[%zu]: expected \"left right\" (one space), found \"%s\"", name, r, a);
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = json_string_length(m) - al - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bl = json_string_length(json_array_get(m, 1));
        } else {
            FAIL("%s: model.merges[%zu]: expected a string \"left right\" or an array [\"left\", \"right\"], "
                 "found %s", name, r, json_kind(m));
        }
        int32_t ia = tok_strmap_get(&tok->vocab, a, (uint32_t)al);
        int32_t ib = tok_strmap_get(&tok->vocab, b, (uint32_t)bl);
        if (al + bl > buf_cap) {
            buf_cap = 2 * (al + bl);
            char *nb = realloc(buf, buf_cap);
            if (!nb) FAIL("out of memory");
            buf = nb;
        }
        memcpy(buf, a, al);
        memcpy(buf + al, b, bl);
        int32_t inew = tok_strmap_get(&tok->vocab, buf, (uint32_t)(al + bl));
        if (ia < 0 || ib < 0 || inew < 0)
            FAIL("%s: model.merges[%zu]: token \"%.*s\" is not in model.vocab", name, r,
                 ia < 0 ? (int)al : ib < 0 ? (int)bl : (int)(al + bl), ia < 0 ? a : ib < 0 ? b : buf);
        tok_mergemap_put(&tok->merges, ia, ib, (uint32_t)r, inew);
    }

    // ---- decoded bytes of every id (ByteLevel decoder: every char maps back to its byte;
    //      a token with a char outside the table decodes to its own UTF-8, as in HF) ----
    for (int i = 0; i < tok->n_ids; i++) {
        const char *s = tok->str[i];
        if (!s) continue;
        uint32_t n = tok->str_len[i], k = 0;
        if (n + 1 > buf_cap) {
            buf_cap = 2 * (n + 1);
            char *nb = realloc(buf, buf_cap);
            if (!nb) FAIL("out of memory");
            buf = nb;
        }
        int ok = 1;
        for (uint32_t j = 0; j < n;) {
            int cl;
            uint32_t cp = utf8_get(s + j, &cl);
            if (cp >= 512 || cp_byte[cp] < 0) { ok = 0; break; }
            buf[k++] = (char)cp_byte[cp];
            j += (uint32_t)cl;
        }
        if (ok) {
            tok->bytes[i] = arena_put(tok, buf, k);
            tok->bytes_len[i] = k;
            if (!tok->bytes[i]) FAIL("out of memory");
        } else {
            tok->bytes[i] = s;
            tok->bytes_len[i] = n;
        }
    }

    if (tok_cache_init(&tok->cache)) goto fail;
    free(buf);
    json_decref(root);
    return tok;
fail:
    free(buf);
    json_decref(root);
    tokenizer_free(tok);
    return NULL;
}

tokenizer_t *tokenizer_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 24, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            err_set("%s: out of memory reading the file", path);
            return NULL;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        err_set("%s: read error", path);
        return NULL;
    }
    tokenizer_t *tok = tokenizer_load_buffer(buf, n, path);
    free(buf);
    return tok;
}

void tokenizer_free(tokenizer_t *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_pre; i++) tok_regex_free(tok->pre[i].re);
    tok_cache_free(&tok->cache);
    tok_strmap_free(&tok->vocab);
    tok_strmap_free(&tok->added_map);
    tok_mergemap_free(&tok->merges);
    free(tok->raw_set.order);
    free(tok->norm_set.order);
    free(tok->added);
    free(tok->str);
    free(tok->str_len);
    free(tok->bytes);
    free(tok->bytes_len);
    for (int i = 0; i < tok->n_arena; i++) free(tok->arena[i]);
    free(tok->arena);
    free(tok->name);
    free(tok);
}

// ---------------------------------------------------------------------------------------------
// lookups and decoding

int tokenizer_n_ids(const tokenizer_t *tok) { return tok->n_ids; }

const char *tokenizer_token_bytes(const tokenizer_t *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_ids || !tok->bytes[id]) return NULL;
    *len = tok->bytes_len[id];
    return tok->bytes[id];
}

int32_t tokenizer_token_id(const tokenizer_t *tok, const char *token) {
    uint32_t n = (uint32_t)strlen(token);
    int32_t id = tok_strmap_get(&tok->added_map, token, n);
    return id >= 0 ? id : tok_strmap_get(&tok->vocab, token, n);
}

static int bad_id(const tokenizer_t *tok, int32_t id) {
    return err_set("token id %d is not a token of %s (ids are 0..%d)", (int)id, tok->name, tok->n_ids - 1);
}

int tokenizer_decode(const tokenizer_t *tok, const int32_t *ids, int n, char **text, size_t *len) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_ids || !tok->bytes[ids[i]]) return bad_id(tok, ids[i]);
        total += tok->bytes_len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return err_set("out of memory (%zu bytes of text)", total);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(s + k, tok->bytes[ids[i]], tok->bytes_len[ids[i]]);
        k += tok->bytes_len[ids[i]];
    }
    s[k] = 0;
    *text = s;
    *len = k;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// streaming decode

// length of the UTF-8 sequence a lead byte starts (0: not a lead byte)
static int utf8_seq_len(uint8_t c) {
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

// 1 when the continuation byte c may follow lead byte `lead` as its second byte
static int utf8_second_ok(uint8_t lead, uint8_t c) {
    if (lead == 0xE0) return c >= 0xA0 && c <= 0xBF;
    if (lead == 0xED) return c >= 0x80 && c <= 0x9F;
    if (lead == 0xF0) return c >= 0x90 && c <= 0xBF;
    if (lead == 0xF4) return c >= 0x80 && c <= 0x8F;
    return (c & 0xC0) == 0x80;
}

// number of bytes at the end of s that start a valid but unfinished UTF-8 character (0..3)
static int utf8_incomplete_tail(const uint8_t *s, size_t n) {
    for (int back = 1; back <= 3 && (size_t)back <= n; back++) {
        uint8_t c = s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation: keep looking for the lead byte
        int need = utf8_seq_len(c);
        if (need <= back) return 0; // complete, or not a lead byte at all
        for (int j = 1; j < back; j++) {
            uint8_t d = s[n - back + j];
            if (j == 1 ? !utf8_second_ok(c, d) : (d & 0xC0) != 0x80) return 0; // can never complete
        }
        return back;
    }
    return 0;
}

int tokenizer_stream_decode(const tokenizer_t *tok, tok_stream_t *s, int32_t id, char *out, size_t cap) {
    if (id < 0 || id >= tok->n_ids || !tok->bytes[id]) return bad_id(tok, id);
    const uint8_t *b = (const uint8_t *)tok->bytes[id];
    size_t bn = tok->bytes_len[id];
    // the held bytes followed by the token's bytes; only the last 3 can be an unfinished char
    uint8_t tail[8];
    size_t total = (size_t)s->n_pending + bn, tn = total < 3 ? total : 3;
    for (size_t i = 0; i < tn; i++) {
        size_t pos = total - tn + i; // position in the concatenation
        tail[i] = pos < (size_t)s->n_pending ? (uint8_t)s->pending[pos] : b[pos - (size_t)s->n_pending];
    }
    size_t hold = (size_t)utf8_incomplete_tail(tail, tn);
    size_t emit = total - hold;
    if (emit > cap) return err_set("stream decode: output buffer of %zu bytes is too small (%zu needed)", cap, emit);
    char held[8];
    for (size_t i = 0; i < hold; i++) held[i] = (char)tail[tn - hold + i];
    size_t k = 0;
    for (size_t i = 0; i < emit; i++)
        out[k++] = i < (size_t)s->n_pending ? s->pending[i] : (char)b[i - (size_t)s->n_pending];
    memcpy(s->pending, held, hold);
    s->n_pending = (int)hold;
    return (int)emit;
}

int tokenizer_stream_flush(tok_stream_t *s, char *out, size_t cap) {
    if ((size_t)s->n_pending > cap) return err_set("stream flush: output buffer too small");
    int n = s->n_pending;
    memcpy(out, s->pending, (size_t)n);
    s->n_pending = 0;
    return n;
}
