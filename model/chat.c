// Qwen3 chat format: append-only rendering to ids + text, HF-style JSON loader, tojson, and the
// parser of assistant output. See chat.h for the format and where ids can differ from HF.
#define _GNU_SOURCE // memmem
#include "chat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "kernels/err.h"

// indexed by CHAT_SP_* (chat.h)
static const char *sp_text[CHAT_SP_N] = {"<|im_start|>",    "<|im_end|>",       "<tool_call>",
                                    "</tool_call>",    "<tool_response>", "</tool_response>",
                                    "<think>",         "</think>"};

static const char TOOLS_HEAD[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char TOOLS_TAIL[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\n</tool_call>";

// ---------------------------------------------------------------------------------------------
// growable byte buffer

typedef struct {
    char *s;
    size_t n, cap;
} buf_t;

static int buf_put(buf_t *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return err_set("chat: out of memory (%zu bytes)", cap);
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return 0;
}
static int buf_puts(buf_t *b, const char *s) { return buf_put(b, s, strlen(s)); }

// ---------------------------------------------------------------------------------------------
// Python json.dumps(ensure_ascii=False) with default separators

// shortest decimal digits of x > 0 that read back as x (what Python's repr prints), the way
// David Gay's mode 0 picks them: the fewest digits, and among those the closest to x.
// digits: "d1d2...dn" (no trailing zeros), *decpt: x = 0.d1d2...dn * 10^decpt
static void float_shortest(double x, char *digits, int *nd, int *decpt) {
    char s[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*e", p - 1, x); // correctly rounded p digits: d.ddde+XX
        char *e = strchr(s, 'e');
        int exp10 = atoi(e + 1);
        long long m = 0;
        for (char *q = s; q < e; q++)
            if (*q >= '0' && *q <= '9') m = m * 10 + (*q - '0');
        // the closest p-digit value may miss while a neighbour hits (asymmetric rounding interval
        // at powers of two): try m, m+1, m-1
        long long cand[3] = {m, m + 1, m - 1};
        for (int k = 0; k < 3; k++) {
            if (cand[k] <= 0) continue;
            char t[64];
            snprintf(t, sizeof t, "%llde%d", cand[k], exp10 - (p - 1));
            if (strtod(t, NULL) != x) continue;
            // digits of cand[k] * 10^(exp10-p+1)
            char d[32];
            int n = snprintf(d, sizeof d, "%lld", cand[k]);
            int dp = exp10 - (p - 1) + n; // value = 0.d * 10^(exp - p + 1 + n)
            while (n > 1 && d[n - 1] == '0') n--;
            memcpy(digits, d, n);
            digits[n] = 0;
            *nd = n;
            *decpt = dp;
            return;
        }
    }
    // unreachable for finite doubles (17 digits always round-trip)
    snprintf(s, sizeof s, "%.16e", x);
    digits[0] = s[0];
    memcpy(digits + 1, s + 2, 16);
    digits[17] = 0;
    *nd = 17;
    *decpt = atoi(strchr(s, 'e') + 1) + 1;
}

// Python float.__repr__ (and json.dumps of a float: NaN / Infinity as Python writes them)
static void float_repr(double x, char out[64]) {
    if (isnan(x)) { strcpy(out, "NaN"); return; }
    if (isinf(x)) { strcpy(out, x < 0 ? "-Infinity" : "Infinity"); return; }
    if (x == 0) { strcpy(out, signbit(x) ? "-0.0" : "0.0"); return; }
    char d[32];
    int nd, decpt;
    char *o = out;
    if (x < 0) { *o++ = '-'; x = -x; }
    float_shortest(x, d, &nd, &decpt);
    if (decpt <= -4 || decpt > 16) { // exponent form: d.ddde-XX
        *o++ = d[0];
        if (nd > 1) { *o++ = '.'; memcpy(o, d + 1, nd - 1); o += nd - 1; }
        sprintf(o, "e%+.02d", decpt - 1);
    } else if (decpt <= 0) { // 0.000ddd
        *o++ = '0'; *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, d, nd); o += nd; *o = 0;
    } else if (decpt >= nd) { // ddd000.0
        memcpy(o, d, nd); o += nd;
        for (int i = nd; i < decpt; i++) *o++ = '0';
        strcpy(o, ".0");
    } else { // dd.ddd
        memcpy(o, d, decpt); o += decpt; *o++ = '.';
        memcpy(o, d + decpt, nd - decpt); o += nd - decpt; *o = 0;
    }
}

// a JSON string the way Python's encoder writes it with ensure_ascii=False
static int json_put_string(buf_t *b, const char *s, size_t n) {
    if (buf_put(b, "\"", 1)) return -1;
    size_t run = 0; // start of the pending run of bytes written as they are
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        if (buf_put(b, s + run, i - run)) return -1;
        char esc[8];
        switch (ch) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", ch); break;
        }
        if (buf_puts(b, esc)) return -1;
        run = i + 1;
    }
    if (buf_put(b, s + run, n - run)) return -1;
    return buf_put(b, "\"", 1);
}

static int json_put(buf_t *b, const json_t *v, int depth) {
    if (depth > 2048) return err_set("tojson: nesting deeper than 2048 levels");
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        if (buf_put(b, "{", 1)) return -1;
        json_object_foreach((json_t *)v, key, val) {
            if (!first && buf_put(b, ", ", 2)) return -1;
            first = 0;
            if (json_put_string(b, key, strlen(key)) || buf_put(b, ": ", 2) ||
                json_put(b, val, depth + 1))
                return -1;
        }
        return buf_put(b, "}", 1);
    }
    case JSON_ARRAY: {
        if (buf_put(b, "[", 1)) return -1;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i && buf_put(b, ", ", 2)) return -1;
            if (json_put(b, json_array_get(v, i), depth + 1)) return -1;
        }
        return buf_put(b, "]", 1);
    }
    case JSON_STRING: return json_put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf_puts(b, num);
    case JSON_REAL: float_repr(json_real_value(v), num); return buf_puts(b, num);
    case JSON_TRUE: return buf_puts(b, "true");
    case JSON_FALSE: return buf_puts(b, "false");
    case JSON_NULL: return buf_puts(b, "null");
    }
    return err_set("tojson: unknown JSON type %d", (int)json_typeof(v));
}

char *chat_json_dumps(const json_t *v) {
    if (!v) { err_set("tojson: NULL value"); return NULL; }
    buf_t b = {0};
    if (json_put(&b, v, 0)) { free(b.s); return NULL; }
    if (!b.s && buf_put(&b, "", 0)) return NULL;
    return b.s;
}

// ---------------------------------------------------------------------------------------------
// chat state: appending ids/mask/text

static int chat_push(chat_t *c, int32_t id, int m) {
    if (c->ids.n + 1 > c->mask_cap) {
        int cap = c->mask_cap ? 2 * c->mask_cap : 256;
        uint8_t *p = realloc(c->mask, cap);
        if (!p) return err_set("chat: out of memory");
        c->mask = p;
        c->mask_cap = cap;
    }
    c->mask[c->ids.n] = (uint8_t)m;
    return ids_push(&c->ids, id);
}

static int chat_put_text(chat_t *c, const char *s, size_t n) {
    buf_t b = {c->text, c->text_len, c->text_cap};
    int rc = buf_put(&b, s, n);
    c->text = b.s;
    c->text_len = b.n;
    c->text_cap = b.cap;
    return rc;
}

// A segment: template special tokens pushed by id, the text between them collected into one run
// (NFC-normalized, with a per-byte mask) and tokenized in one call when the next special token
// comes or the segment ends: exactly the pieces HF's render-then-tokenize sees.
typedef struct {
    chat_t *c;
    buf_t run;       // (n) pending text, NFC
    uint8_t *rmask;  // (n) per-byte mask of run
    size_t rmask_cap;
} seg_t;

// the length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one; invalid sequences
// are replaced per maximal subpart (*bad = bytes to replace by one U+FFFD), as Python's
// bytes.decode("utf-8", "replace") does
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char b = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; // range of the second byte
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0; // no overlong forms
        if (b == 0xED) hi = 0x9F; // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90; // no overlong forms
        if (b == 0xF4) hi = 0x8F; // nothing above U+10FFFF
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) {
            *bad = i;
            return 0;
        }
    }
    return len;
}

// text -> the chat's text and the pending run: invalid UTF-8 replaced by U+FFFD, then NFC (as the
// tokenizer's normalizer does) for the run. Piecewise NFC equals whole-run NFC because every
// template piece next to content ends or starts with a character that composes with nothing.
static int seg_text(seg_t *s, const char *t, size_t n, int m) {
    if (n == 0) return 0;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)t[i] < 0x80;
    buf_t fixed = {0};
    unsigned char *nfc = NULL;
    int rc = 0;
    if (!ascii) {
        const unsigned char *u = (const unsigned char *)t;
        size_t i = 0, done = 0, bad = 0, len;
        while (i < n && !rc) {
            if ((len = utf8_seq(u + i, n - i, &bad))) { i += len; continue; }
            rc = buf_put(&fixed, t + done, i - done) || buf_put(&fixed, "\xEF\xBF\xBD", 3);
            i += bad;
            done = i;
        }
        if (!rc && fixed.s) rc = buf_put(&fixed, t + done, n - done);
        if (!rc && fixed.s) { t = fixed.s; n = fixed.n; }
    }
    rc = rc || chat_put_text(s->c, t, n);
    if (!rc && s->c->tok && !ascii) {
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)t, (utf8proc_ssize_t)n, &nfc,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) rc = err_set("chat: NFC of a text piece failed (%s)", utf8proc_errmsg(r));
        else { t = (const char *)nfc; n = (size_t)r; }
    }
    if (!rc && s->c->tok) {
        size_t at = s->run.n;
        rc = buf_put(&s->run, t, n);
        if (!rc && s->run.cap > s->rmask_cap) {
            uint8_t *p = realloc(s->rmask, s->run.cap);
            if (!p) rc = err_set("chat: out of memory");
            else { s->rmask = p; s->rmask_cap = s->run.cap; }
        }
        if (!rc) memset(s->rmask + at, m, n);
    }
    free(nfc);
    free(fixed.s);
    return rc ? -1 : 0;
}
static int seg_str(seg_t *s, const char *t, int m) { return seg_text(s, t, strlen(t), m); }

static int seg_flush(seg_t *s) {
    chat_t *c = s->c;
    if (!c->tok || s->run.n == 0) { s->run.n = 0; return 0; }
    ids_t tmp = {0};
    if (tokenizer_encode(c->tok, s->run.s, s->run.n, &tmp)) {
        ids_free(&tmp);
        return err_wrap("chat: tokenizing a %zu-byte text piece: ", s->run.n);
    }
    size_t off = 0;
    for (int i = 0; i < tmp.n; i++) {
        size_t len = 0;
        if (!tokenizer_token_bytes(c->tok, tmp.ids[i], &len) || off + len > s->run.n) {
            ids_free(&tmp);
            return err_set("chat: the token bytes of a %zu-byte text piece do not add up to it "
                           "(token %d, id %d)", s->run.n, i, tmp.ids[i]);
        }
        int all = 1, any = 0;
        for (size_t k = off; k < off + len; k++) {
            all &= s->rmask[k];
            any |= s->rmask[k];
        }
        if (any && !all) c->n_straddle++;
        off += len;
        if (chat_push(c, tmp.ids[i], all && len > 0)) { ids_free(&tmp); return -1; }
    }
    ids_free(&tmp);
    if (off != s->run.n)
        return err_set("chat: the tokens of a %zu-byte text piece cover %zu bytes", s->run.n, off);
    s->run.n = 0;
    return 0;
}

static int seg_special(seg_t *s, int sp, int m) {
    if (seg_flush(s)) return -1;
    if (chat_put_text(s->c, sp_text[sp], strlen(sp_text[sp]))) return -1;
    return s->c->tok ? chat_push(s->c, s->c->sp[sp], m) : 0;
}

static int seg_end(seg_t *s) {
    int rc = seg_flush(s);
    free(s->run.s);
    free(s->rmask);
    memset(s, 0, sizeof *s);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// init / free

int chat_init(chat_t *c, const tokenizer_t *tok) {
    memset(c, 0, sizeof *c);
    c->tok = tok;
    for (int i = 0; i < CHAT_SP_N; i++) {
        c->sp[i] = -1;
        if (!tok) continue;
        int32_t id = tokenizer_token_id(tok, sp_text[i]);
        size_t len = 0;
        const char *bytes = id >= 0 ? tokenizer_token_bytes(tok, id, &len) : NULL;
        if (id < 0 || !bytes || len != strlen(sp_text[i]) || memcmp(bytes, sp_text[i], len))
            return err_set("chat: the tokenizer has no token %s (the Qwen3 chat format needs it)",
                           sp_text[i]);
        c->sp[i] = id;
    }
    return 0;
}

void chat_free(chat_t *c) {
    ids_free(&c->ids);
    free(c->mask);
    free(c->text);
    free(c->system);
    json_decref(c->tools);
    memset(c, 0, sizeof *c);
}

// ---------------------------------------------------------------------------------------------
// messages. Every public function that appends is all-or-nothing: on error the chat is rolled
// back to where it was (a failed message leaves no partial tokens behind).

typedef struct {
    int n_ids, header_done, tool_turn_open, assistant_open, n_messages, n_straddle;
    size_t text_len;
} mark_t;

static mark_t chat_mark(const chat_t *c) {
    return (mark_t){c->ids.n, c->header_done, c->tool_turn_open, c->assistant_open,
                    c->n_messages, c->n_straddle, c->text_len};
}

static int chat_rollback(chat_t *c, mark_t m) {
    c->ids.n = m.n_ids;
    c->header_done = m.header_done;
    c->tool_turn_open = m.tool_turn_open;
    c->assistant_open = m.assistant_open;
    c->n_messages = m.n_messages;
    c->n_straddle = m.n_straddle;
    c->text_len = m.text_len;
    if (c->text) c->text[c->text_len] = 0;
    return -1;
}

// the first turn: system message and tools (template lines 1-16)
static int chat_write_header(chat_t *c) {
    if (c->header_done) return 0;
    c->header_done = 1;
    int has_tools = c->tools && json_array_size(c->tools) > 0;
    if (!has_tools && !c->system) return 0;
    seg_t s = {.c = c};
    int rc = seg_special(&s, CHAT_SP_IM_START, 0) || seg_str(&s, "system\n", 0);
    if (!rc && c->system) rc = seg_str(&s, c->system, 0) || (has_tools && seg_str(&s, "\n\n", 0));
    if (!rc && has_tools) {
        rc = seg_str(&s, TOOLS_HEAD, 0);
        for (size_t i = 0; !rc && i < json_array_size(c->tools); i++) {
            char *js = chat_json_dumps(json_array_get(c->tools, i));
            rc = !js || seg_str(&s, "\n", 0) || seg_str(&s, js, 0);
            if (!js) err_wrap("chat: tool %zu: ", i);
            free(js);
        }
        rc = rc || seg_str(&s, TOOLS_TAIL, 0);
    }
    rc = rc || seg_special(&s, CHAT_SP_IM_END, 0) || seg_str(&s, "\n", 0);
    return seg_end(&s) || rc ? -1 : 0;
}

// before a new turn: write the header, close an open tool-response turn
static int chat_prepare(chat_t *c, const char *what) {
    if (c->assistant_open)
        return err_set("chat: cannot add %s: the generation prompt is open; add the assistant's "
                       "reply first (chat_add_assistant_ids / chat_add_assistant)", what);
    if (chat_write_header(c)) return -1;
    if (c->tool_turn_open) {
        seg_t s = {.c = c};
        int rc = seg_special(&s, CHAT_SP_IM_END, 0) || seg_str(&s, "\n", 0);
        if (seg_end(&s) || rc) return -1;
        c->tool_turn_open = 0;
    }
    return 0;
}

// <|im_start|>{role}\n{content}<|im_end|>\n
static int add_plain_impl(chat_t *c, const char *role, const char *content) {
    if (!content) return err_set("chat: %s message without content", role);
    if (chat_prepare(c, role)) return -1;
    seg_t s = {.c = c};
    int rc = seg_special(&s, CHAT_SP_IM_START, 0) || seg_str(&s, role, 0) || seg_str(&s, "\n", 0) ||
             seg_str(&s, content, 0) || seg_special(&s, CHAT_SP_IM_END, 0) || seg_str(&s, "\n", 0);
    if (seg_end(&s) || rc) return -1;
    c->n_messages++;
    return 0;
}

static int chat_add_plain(chat_t *c, const char *role, const char *content) {
    mark_t m = chat_mark(c);
    return add_plain_impl(c, role, content) ? chat_rollback(c, m) : 0;
}

int chat_add_system(chat_t *c, const char *content) {
    if (!content) return err_set("chat: system message without content");
    if (c->n_messages == 0 && !c->header_done) { // the first message: goes into the header
        c->system = strdup(content);
        if (!c->system) return err_set("chat: out of memory");
        c->n_messages++;
        return 0;
    }
    return chat_add_plain(c, "system", content);
}

int chat_set_tools(chat_t *c, const json_t *tools) {
    if (c->header_done)
        return err_set("chat: tools must be set before the first non-system message (the system "
                       "turn that lists them is already written)");
    if (tools && !json_is_array(tools) && !json_is_null(tools))
        return err_set("chat: tools: expected a JSON array of tool schemas, found a JSON %s",
                       json_is_object(tools) ? "object" : "scalar");
    json_decref(c->tools);
    c->tools = json_is_array(tools) ? json_incref((json_t *)tools) : NULL;
    return 0;
}

int chat_set_tools_json(chat_t *c, const char *json_text) {
    json_error_t e;
    json_t *t = json_loads(json_text, JSON_DECODE_ANY | JSON_PRESERVE_ORDER, &e);
    if (!t) return err_set("chat: tools JSON, line %d column %d: %s", e.line, e.column, e.text);
    int rc = chat_set_tools(c, t);
    json_decref(t);
    return rc;
}

int chat_add_user(chat_t *c, const char *content) { return chat_add_plain(c, "user", content); }

static int add_tool_impl(chat_t *c, const char *content) {
    if (!content) return err_set("chat: tool message without content");
    if (c->assistant_open)
        return err_set("chat: cannot add a tool response: the generation prompt is open");
    if (chat_write_header(c)) return -1;
    seg_t s = {.c = c};
    int rc = 0;
    if (!c->tool_turn_open) rc = seg_special(&s, CHAT_SP_IM_START, 0) || seg_str(&s, "user", 0);
    rc = rc || seg_str(&s, "\n", 0) || seg_special(&s, CHAT_SP_TOOL_RESPONSE, 0) ||
         seg_str(&s, "\n", 0) || seg_str(&s, content, 0) || seg_str(&s, "\n", 0) ||
         seg_special(&s, CHAT_SP_TOOL_RESPONSE_END, 0);
    if (seg_end(&s) || rc) return -1;
    c->tool_turn_open = 1;
    c->n_messages++;
    return 0;
}

int chat_add_tool(chat_t *c, const char *content) {
    mark_t m = chat_mark(c);
    return add_tool_impl(c, content) ? chat_rollback(c, m) : 0;
}

static int begin_assistant_impl(chat_t *c) {
    if (c->assistant_open) return 0;
    if (chat_prepare(c, "the generation prompt")) return -1;
    seg_t s = {.c = c};
    int rc = seg_special(&s, CHAT_SP_IM_START, 0) || seg_str(&s, "assistant\n", 0);
    if (!c->enable_thinking)
        rc = rc || seg_special(&s, CHAT_SP_THINK, 0) || seg_str(&s, "\n\n", 0) ||
             seg_special(&s, CHAT_SP_THINK_END, 0) || seg_str(&s, "\n\n", 0);
    if (seg_end(&s) || rc) return -1;
    c->assistant_open = 1;
    return 0;
}

int chat_begin_assistant(chat_t *c) {
    mark_t m = chat_mark(c);
    return begin_assistant_impl(c) ? chat_rollback(c, m) : 0;
}

int chat_render_gen_prompt(chat_t *c, ids_t *out) {
    if (chat_begin_assistant(c)) return -1;
    out->n = 0;
    return ids_append(out, c->ids.ids, c->ids.n);
}

static int flush_impl(chat_t *c) {
    if (c->assistant_open) return 0; // nothing pending besides the assistant's own reply
    return chat_prepare(c, "");
}

int chat_flush(chat_t *c) {
    mark_t m = chat_mark(c);
    return flush_impl(c) ? chat_rollback(c, m) : 0;
}

static int add_assistant_ids_impl(chat_t *c, const int32_t *ids, int n) {
    if (!c->tok) return err_set("chat: chat_add_assistant_ids needs a tokenizer");
    int n_ids = tokenizer_n_ids(c->tok);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_ids)
            return err_set("chat: assistant id %d at position %d is out of range [0, %d)", ids[i],
                           i, n_ids);
    if (chat_begin_assistant(c)) return -1;
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const char *bytes = tokenizer_token_bytes(c->tok, ids[i], &len);
        if (chat_put_text(c, bytes ? bytes : "", bytes ? len : 0) || chat_push(c, ids[i], 1))
            return -1;
    }
    seg_t s = {.c = c};
    int rc = 0;
    if (n == 0 || ids[n - 1] != c->sp[CHAT_SP_IM_END]) rc = seg_special(&s, CHAT_SP_IM_END, 0);
    rc = rc || seg_str(&s, "\n", 0);
    if (seg_end(&s) || rc) return -1;
    c->assistant_open = 0;
    c->n_messages++;
    return 0;
}

int chat_add_assistant_ids(chat_t *c, const int32_t *ids, int n) {
    mark_t m = chat_mark(c);
    return add_assistant_ids_impl(c, ids, n) ? chat_rollback(c, m) : 0;
}

static const char *find_str(const char *s, const char *needle) { return strstr(s, needle); }
static const char *find_last(const char *s, const char *end, const char *needle) {
    const char *last = NULL;
    size_t nl = strlen(needle);
    for (const char *p = s; p + nl <= end; p++)
        if (memcmp(p, needle, nl) == 0) last = p;
    return last;
}

// the tool-call blocks of an assistant turn (template lines 52-71), all mask 1
static int seg_calls(seg_t *s, const char *content, const chat_call_t *calls, int n_calls) {
    for (int i = 0; i < n_calls; i++) {
        const chat_call_t *tc = &calls[i];
        if (!tc->name) return err_set("chat: tool call %d has no name", i);
        if (!tc->arguments) return err_set("chat: tool call %d (%s) has no arguments", i, tc->name);
        if ((i == 0 && content[0]) || i > 0)
            if (seg_str(s, "\n", 1)) return -1;
        char *args = NULL;
        const char *a;
        size_t alen;
        if (json_is_string(tc->arguments)) { // inserted verbatim
            a = json_string_value(tc->arguments);
            alen = json_string_length(tc->arguments);
        } else {
            args = chat_json_dumps(tc->arguments);
            if (!args) return err_wrap("chat: tool call %d (%s) arguments: ", i, tc->name);
            a = args;
            alen = strlen(args);
        }
        int rc = seg_special(s, CHAT_SP_TOOL_CALL, 1) || seg_str(s, "\n{\"name\": \"", 1) ||
                 seg_str(s, tc->name, 1) || seg_str(s, "\", \"arguments\": ", 1) ||
                 seg_text(s, a, alen, 1) || seg_str(s, "}\n", 1) ||
                 seg_special(s, CHAT_SP_TOOL_CALL_END, 1);
        free(args);
        if (rc) return -1;
    }
    return 0;
}

static int add_assistant_ex_impl(chat_t *c, const char *content, const char *reasoning,
                          const chat_call_t *calls, int n_calls, chat_think_t think) {
    if (!content) content = "";
    if (n_calls < 0 || (n_calls > 0 && !calls)) return err_set("chat: bad tool call list");
    seg_t s = {.c = c};
    int rc = 0;
    if (c->assistant_open) {
        // continuing the generation prompt: the text is what the model produced after it
        if (reasoning)
            return err_set("chat: reasoning given for an assistant turn whose generation prompt "
                           "is already written (put the model's <think> block in the content)");
        rc = seg_str(&s, content, 1) || seg_calls(&s, content, calls, n_calls);
    } else {
        if (chat_prepare(c, "assistant")) return -1;
        // template lines 30-39: split "<think>...</think>" out of content unless reasoning given
        char *own = NULL; // holds a split-out reasoning string
        const char *body = content;
        const char *r = reasoning ? reasoning : "";
        const char *close = reasoning ? NULL : find_str(content, "</think>");
        if (close) {
            const char *end = content + strlen(content);
            body = find_last(content, end, "</think>") + strlen("</think>");
            while (*body == '\n') body++;
            // before the first </think>, rstrip '\n', after the last <think>, lstrip '\n'
            const char *a = content, *b = close;
            while (b > a && b[-1] == '\n') b--;
            const char *open = find_last(a, b, "<think>");
            if (open) a = open + strlen("<think>");
            while (a < b && *a == '\n') a++;
            own = strndup(a, (size_t)(b - a));
            if (!own) return err_set("chat: out of memory");
            r = own;
        }
        int block = think == CHAT_THINK_KEEP || (think == CHAT_THINK_AUTO && r[0]);
        rc = seg_special(&s, CHAT_SP_IM_START, 0) || seg_str(&s, "assistant\n", 0);
        if (!rc && block) {
            // reasoning.strip('\n'); the block is the model's own only when it is not empty
            const char *a = r, *b = r + strlen(r);
            while (a < b && *a == '\n') a++;
            while (b > a && b[-1] == '\n') b--;
            int m = b > a;
            const char *lb = body;
            while (*lb == '\n') lb++;
            rc = seg_special(&s, CHAT_SP_THINK, m) || seg_str(&s, "\n", m) ||
                 seg_text(&s, a, (size_t)(b - a), m) || seg_str(&s, "\n", m) ||
                 seg_special(&s, CHAT_SP_THINK_END, m) || seg_str(&s, "\n\n", m) ||
                 seg_str(&s, lb, 1);
        } else {
            rc = rc || seg_str(&s, body, 1);
        }
        rc = rc || seg_calls(&s, body, calls, n_calls);
        free(own);
    }
    rc = rc || seg_special(&s, CHAT_SP_IM_END, 1) || seg_str(&s, "\n", 0);
    if (seg_end(&s) || rc) return -1;
    c->assistant_open = 0;
    c->n_messages++;
    return 0;
}

int chat_add_assistant_ex(chat_t *c, const char *content, const char *reasoning,
                          const chat_call_t *calls, int n_calls, chat_think_t think) {
    mark_t m = chat_mark(c);
    int rc = add_assistant_ex_impl(c, content, reasoning, calls, n_calls, think);
    return rc ? chat_rollback(c, m) : 0;
}

int chat_add_assistant(chat_t *c, const char *content, const chat_call_t *calls, int n_calls) {
    return chat_add_assistant_ex(c, content, NULL, calls, n_calls, CHAT_THINK_AUTO);
}

// ---------------------------------------------------------------------------------------------
// HF-style JSON loader

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends_with(const char *s, const char *p) {
    size_t n = strlen(s), m = strlen(p);
    return n >= m && memcmp(s + n - m, p, m) == 0;
}

// an assistant message. episode 0: rendered as the template renders history (`think`). episode 1:
// the generation prompt, then the message appended as the text the model generated after it: a
// non-empty reasoning_content goes first as the "<think>\n{reasoning}\n</think>\n\n" the model
// writes when thinking is on (with thinking off the prompt already holds the empty block: refused)
static int load_assistant(chat_t *c, const json_t *msg, int i, chat_think_t think, int episode,
                          const char *name) {
    const json_t *jc = json_object_get(msg, "content");
    if (jc && !json_is_string(jc) && !json_is_null(jc))
        return err_set("%s: messages[%d] (assistant): content must be a string or null", name, i);
    const json_t *jr = json_object_get(msg, "reasoning_content");
    if (jr && !json_is_string(jr) && !json_is_null(jr))
        return err_set("%s: messages[%d]: reasoning_content must be a string or null", name, i);
    const json_t *jt = json_object_get(msg, "tool_calls");
    if (jt && !json_is_array(jt) && !json_is_null(jt))
        return err_set("%s: messages[%d]: tool_calls must be a list", name, i);
    const char *content = json_is_string(jc) ? json_string_value(jc) : "";
    const char *reasoning = json_is_string(jr) ? json_string_value(jr) : NULL;
    buf_t folded = {0}; // episode: reasoning block + content
    if (episode) {
        if (reasoning) { // reasoning.strip('\n') as the template does
            const char *ra = reasoning, *rb = reasoning + strlen(reasoning);
            while (ra < rb && *ra == '\n') ra++;
            while (rb > ra && rb[-1] == '\n') rb--;
            if (rb > ra) {
                if (!c->enable_thinking)
                    return err_set("%s: messages[%d]: reasoning_content with enable_thinking false "
                                   "(in the episode layout the generation prompt already holds an "
                                   "empty <think> block)", name, i);
                if (buf_puts(&folded, "<think>\n") || buf_put(&folded, ra, (size_t)(rb - ra)) ||
                    buf_puts(&folded, "\n</think>\n\n") || buf_puts(&folded, content)) {
                    free(folded.s);
                    return -1;
                }
                content = folded.s;
            }
        }
        reasoning = NULL;
        if (chat_begin_assistant(c)) {
            free(folded.s);
            return err_wrap("%s: messages[%d]: ", name, i);
        }
    }
    int n = jt ? (int)json_array_size(jt) : 0;
    chat_call_t *calls = n ? calloc((size_t)n, sizeof *calls) : NULL;
    if (n && !calls) { free(folded.s); return err_set("chat: out of memory"); }
    for (int k = 0; k < n; k++) {
        const json_t *tc = json_array_get(jt, k);
        const json_t *f = json_object_get(tc, "function");
        if (f && json_is_object(f) && json_object_size(f) > 0) tc = f; // {"function": {...}}
        const json_t *nm = json_object_get(tc, "name");
        calls[k].arguments = json_object_get(tc, "arguments");
        if (!json_is_string(nm) || !calls[k].arguments) {
            free(calls);
            free(folded.s);
            return err_set("%s: messages[%d].tool_calls[%d]: expected {\"name\": string, "
                           "\"arguments\": object or string}", name, i, k);
        }
        calls[k].name = json_string_value(nm);
    }
    int rc = chat_add_assistant_ex(c, content, reasoning, calls, n, think);
    free(calls);
    free(folded.s);
    return rc ? err_wrap("%s: messages[%d]: ", name, i) : 0;
}

static int load_json_impl(chat_t *c, const json_t *root, const char *name, int episode) {
    if (c->n_messages || c->header_done || c->ids.n || c->text_len)
        return err_set("%s: %s needs a freshly initialized chat", name,
                       episode ? "chat_load_json_episode" : "chat_load_json");
    const json_t *msgs = root;
    int agp = 1, thinking = !episode;
    if (json_is_object(root)) {
        msgs = json_object_get(root, "messages");
        const json_t *tools = json_object_get(root, "tools");
        if (tools && chat_set_tools(c, tools)) return err_wrap("%s: ", name);
        const json_t *a = json_object_get(root, "add_generation_prompt");
        if (a && !json_is_boolean(a) && !json_is_null(a))
            return err_set("%s: add_generation_prompt must be true or false", name);
        if (json_is_boolean(a)) agp = json_is_true(a);
        const json_t *t = json_object_get(root, "enable_thinking");
        if (t && !json_is_boolean(t) && !json_is_null(t))
            return err_set("%s: enable_thinking must be true or false", name);
        if (json_is_boolean(t)) thinking = json_is_true(t); // else the mode's default
    }
    if (!json_is_array(msgs))
        return err_set("%s: expected {\"messages\": [...], ...} or a list of messages", name);
    int n = (int)json_array_size(msgs);
    c->enable_thinking = thinking;
    // the last user query: the last user message that is not a wrapped tool response
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role && content && !strcmp(role, "user") &&
            !(starts_with(content, "<tool_response>") && ends_with(content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role)
            return err_set("%s: messages[%d]: expected an object with a \"role\" string", name, i);
        const json_t *jc = json_object_get(m, "content");
        const char *content = json_string_value(jc);
        int rc;
        if (!strcmp(role, "assistant")) {
            chat_think_t think = i > last_query ? (i == n - 1 ? CHAT_THINK_KEEP : CHAT_THINK_AUTO)
                                                : CHAT_THINK_DROP;
            rc = load_assistant(c, m, i, think, episode, name);
            if (rc) return -1;
            continue;
        }
        if (!content)
            return err_set("%s: messages[%d] (%s): content must be a string", name, i, role);
        if (!strcmp(role, "system")) rc = chat_add_system(c, content);
        else if (!strcmp(role, "user")) rc = chat_add_user(c, content);
        else if (!strcmp(role, "tool")) rc = chat_add_tool(c, content);
        else
            return err_set("%s: messages[%d]: unknown role \"%s\" (expected system, user, "
                           "assistant or tool)", name, i, role);
        if (rc) return err_wrap("%s: messages[%d]: ", name, i);
    }
    if (chat_flush(c)) return err_wrap("%s: ", name);
    if (agp && chat_begin_assistant(c)) return err_wrap("%s: ", name);
    return 0;
}

int chat_load_json(chat_t *c, const json_t *root, const char *name) {
    return load_json_impl(c, root, name, 0);
}

int chat_load_json_episode(chat_t *c, const json_t *root, const char *name) {
    return load_json_impl(c, root, name, 1);
}

int chat_load_file(chat_t *c, const char *path) {
    json_error_t e;
    json_t *root = json_load_file(path, JSON_DECODE_ANY | JSON_PRESERVE_ORDER, &e);
    if (!root && e.line < 0) return err_set("%s: cannot read: %s", path, e.text);
    if (!root)
        return err_set("%s: line %d column %d: %s (expected a JSON chat: {\"messages\": [...]})",
                       path, e.line, e.column, e.text);
    int rc = chat_load_json(c, root, path);
    json_decref(root);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// parsing assistant output

const char *chat_call_status_name(chat_call_status_t s) {
    switch (s) {
    case CHAT_CALL_OK: return "ok";
    case CHAT_CALL_BAD_JSON: return "bad_json";
    case CHAT_CALL_MISSING_NAME: return "missing_name";
    case CHAT_CALL_ARGUMENTS_NOT_OBJECT: return "arguments_not_object";
    case CHAT_CALL_UNCLOSED_TAG: return "unclosed_tag";
    }
    return "unknown";
}

// first occurrence of needle in [s, end), or NULL (works on text with NUL bytes)
static const char *mem_find(const char *s, const char *end, const char *needle) {
    size_t nl = strlen(needle);
    if (s >= end || (size_t)(end - s) < nl) return NULL;
    return memmem(s, (size_t)(end - s), needle, nl);
}

static char *mem_dup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static int is_ws(char ch) {
    return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\f' || ch == '\v';
}

// fills one call from the text between the tags; status stays UNCLOSED_TAG for a truncated call
static int parse_call(const char *s, const char *end, int unclosed, chat_parsed_call_t *call) {
    call->raw = mem_dup(s, (size_t)(end - s));
    if (!call->raw) return -1;
    call->raw_len = (size_t)(end - s);
    while (s < end && is_ws(*s)) s++;
    while (end > s && is_ws(end[-1])) end--;
    json_error_t e;
    json_t *j = json_loadb(s, (size_t)(end - s), JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    chat_call_status_t st = CHAT_CALL_OK;
    if (!j) {
        st = CHAT_CALL_BAD_JSON;
    } else {
        const json_t *nm = json_object_get(j, "name"); // NULL when j is not an object
        const json_t *args = json_object_get(j, "arguments");
        if (json_is_string(nm) && json_string_length(nm) > 0) {
            call->name = mem_dup(json_string_value(nm), strlen(json_string_value(nm)));
            if (!call->name) { json_decref(j); return -1; }
        }
        if (args) call->arguments = json_incref((json_t *)args);
        if (!call->name) st = CHAT_CALL_MISSING_NAME;
        else if (!json_is_object(args)) st = CHAT_CALL_ARGUMENTS_NOT_OBJECT;
        json_decref(j);
    }
    call->status = unclosed ? CHAT_CALL_UNCLOSED_TAG : st;
    return 0;
}

int chat_parse_assistant(const char *text, size_t len, chat_parsed_t *out) {
    memset(out, 0, sizeof *out);
    if (!text) len = 0;
    const char *p = text ? text : "", *end = p + len;
    buf_t content = {0};
    int cap = 0;

    // reasoning: a leading "<think>" block, or text up to a "</think>" that comes before any call
    const char *q = p;
    while (q < end && is_ws(*q)) q++;
    const char *close = mem_find(p, end, "</think>");
    const char *first_call = mem_find(p, end, "<tool_call>");
    int leading = (size_t)(end - q) >= 7 && memcmp(q, "<think>", 7) == 0;
    if (close && (leading || !first_call || close < first_call)) {
        const char *a = p, *b = close;
        while (b > a && b[-1] == '\n') b--;
        const char *open = find_last(a, b, "<think>");
        if (open) a = open + strlen("<think>");
        while (a < b && *a == '\n') a++;
        if (!(out->reasoning = mem_dup(a, (size_t)(b - a)))) goto oom;
        p = close + strlen("</think>");
    } else if (leading) {
        const char *a = q + 7, *b = end;
        while (a < b && *a == '\n') a++;
        while (b > a && b[-1] == '\n') b--;
        if (!(out->reasoning = mem_dup(a, (size_t)(b - a)))) goto oom;
        out->think_unclosed = 1;
        p = end;
    }

    // text and <tool_call> blocks
    while (p < end) {
        const char *a = mem_find(p, end, "<tool_call>");
        if (!a) {
            if (buf_put(&content, p, (size_t)(end - p))) goto oom;
            break;
        }
        if (buf_put(&content, p, (size_t)(a - p))) goto oom;
        const char *body = a + strlen("<tool_call>");
        const char *cl = mem_find(body, end, "</tool_call>");
        const char *next = mem_find(body, end, "<tool_call>");
        int unclosed = !cl || (next && next < cl);
        const char *body_end = unclosed ? (next ? next : end) : cl;
        if (out->n_calls == cap) {
            cap = cap ? 2 * cap : 4;
            chat_parsed_call_t *nc = realloc(out->calls, (size_t)cap * sizeof *nc);
            if (!nc) goto oom;
            out->calls = nc;
        }
        chat_parsed_call_t *call = &out->calls[out->n_calls++];
        memset(call, 0, sizeof *call);
        if (parse_call(body, body_end, unclosed, call)) goto oom;
        p = unclosed ? body_end : cl + strlen("</tool_call>");
    }

    // content, whitespace-trimmed
    const char *a = content.s ? content.s : "", *b = a + content.n;
    while (a < b && is_ws(*a)) a++;
    while (b > a && is_ws(b[-1])) b--;
    if (!(out->content = mem_dup(a, (size_t)(b - a)))) goto oom;
    out->content_len = (size_t)(b - a);
    free(content.s);
    return 0;
oom:
    free(content.s);
    chat_parsed_free(out);
    return err_set("chat: out of memory while parsing assistant output");
}

void chat_parsed_free(chat_parsed_t *p) {
    for (int i = 0; i < p->n_calls; i++) {
        free(p->calls[i].name);
        free(p->calls[i].raw);
        json_decref(p->calls[i].arguments);
    }
    free(p->calls);
    free(p->content);
    free(p->reasoning);
    memset(p, 0, sizeof *p);
}
