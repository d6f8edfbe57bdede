// tokenizer_encode: invalid-UTF-8 handling, added tokens, normalization, pre-tokenization.
// Each step follows HF tokenizers (tokenizer/added_vocabulary.rs, normalizers, pre_tokenizers/
// split.rs + byte_level.rs, utils/onig.rs); see tok_internal.h for the order.
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "kernels/err.h"
#include "tok_internal.h"

typedef struct {
    size_t start, end;
    int flag; // 1 = the regex matched this piece (after `invert`)
} piece_t;

typedef struct {
    const tokenizer_t *tok;
    ids_t *out;
    OnigRegion *region[TOK_MAX_PRESTEPS]; // one per pre-tokenizer depth (steps recurse)
    tok_scratch_t bpe;
} enc_ctx_t;

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers

// length of the longest valid UTF-8 prefix of s (RFC 3629: no overlongs, surrogates, > U+10FFFF)
static size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { // ASCII fast path
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (v & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else
            return i;
        if (i + need >= n) return i; // truncated
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

// the char at byte i of valid UTF-8
static uint32_t utf8_at(const char *s, size_t i, int *len) {
    const uint8_t *u = (const uint8_t *)s + i;
    if (u[0] < 0x80) { *len = 1; return u[0]; }
    if (u[0] < 0xE0) { *len = 2; return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu); }
    if (u[0] < 0xF0) { *len = 3; return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu); }
    *len = 4;
    return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
}

// the char that ends at byte i (exclusive) of valid UTF-8
static uint32_t utf8_before(const char *s, size_t i, int *len) {
    size_t j = i - 1;
    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
    return utf8_at(s, j, len);
}

// Unicode White_Space (Rust's char::is_whitespace and regex \s, used by HF's lstrip/rstrip)
static int is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

// Rust regex \w: Alphabetic, marks, decimal numbers, connector punctuation, join controls
static int is_word_char(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

// ---------------------------------------------------------------------------------------------
// normalization

// 1 when c is in NFC already and can neither combine with a neighbour nor be reordered
// (canonical combining class 0, NFC_Quick_Check=Yes, never the second char of a composition).
// Conservative ranges; tests/test_tokenizer.c checks every one against utf8proc.
int tok_nfc_inert(uint32_t c) {
    return c < 0x300 || (c >= 0x400 && c <= 0x482) || (c >= 0x2002 && c <= 0x206F) ||
           (c >= 0x3000 && c <= 0x3029) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xFF01 && c <= 0xFFEF) ||
           (c >= 0x1F300 && c <= 0x1FAFF);
}

static int is_ascii(const char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        if (v & 0x8080808080808080ull) return 0;
    }
    for (; i < n; i++)
        if ((uint8_t)s[i] >= 0x80) return 0;
    return 1;
}

static int nfc_inert_text(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((uint8_t)s[i] < 0x80) { i++; continue; }
        int l;
        if (!tok_nfc_inert(utf8_at(s, i, &l))) return 0;
        i += (size_t)l;
    }
    return 1;
}

int tok_normalize(const tokenizer_t *tok, const char *s, size_t n, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = n;
    if (tok->n_norms == 0 || is_ascii(s, n)) return 0; // ASCII is invariant under every form
    char *cur = NULL;
    size_t cur_n = n;
    for (int k = 0; k < tok->n_norms; k++) {
        const char *src = cur ? cur : s;
        int form = tok->norms[k];
        if (form == TOK_NORM_NFC && nfc_inert_text(src, cur_n)) continue;
        utf8proc_option_t opt = UTF8PROC_STABLE;
        if (form == TOK_NORM_NFC || form == TOK_NORM_NFKC) opt |= UTF8PROC_COMPOSE;
        else opt |= UTF8PROC_DECOMPOSE;
        if (form == TOK_NORM_NFKC || form == TOK_NORM_NFKD) opt |= UTF8PROC_COMPAT;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)src, (utf8proc_ssize_t)cur_n, &dst, opt);
        if (r < 0) {
            free(cur);
            return err_set("%s: Unicode normalization failed: %s", tok->name, utf8proc_errmsg(r));
        }
        free(cur);
        cur = (char *)dst;
        cur_n = (size_t)r;
    }
    if (cur && cur_n == n && memcmp(cur, s, n) == 0) {
        free(cur);
        return 0;
    }
    *out = cur;
    *out_len = cur_n;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// pre-tokenization: each step splits a piece and hands the parts to the next step; the last
// step hands them to BPE

static int pretok(enc_ctx_t *c, int step, const char *s, size_t n);

// the parts of s (regex matches and the gaps between them) after a Split step's behavior
static int split_general(enc_ctx_t *c, int step, const char *s, size_t n, const piece_t *p, int np) {
    const tok_prestep_t *st = &c->tok->pre[step];
    piece_t *acc = malloc((size_t)(np ? np : 1) * sizeof *acc);
    if (!acc) return err_set("out of memory (pre-tokenizer)");
    int na = 0, prev = 0;
    switch (st->behavior) {
    case TOK_SPLIT_REMOVED:
        for (int i = 0; i < np; i++)
            if (!p[i].flag) acc[na++] = p[i];
        break;
    case TOK_SPLIT_CONTIGUOUS:
        for (int i = 0; i < np; i++) {
            if (p[i].flag == prev && na) acc[na - 1].end = p[i].end;
            else acc[na++] = p[i];
            prev = p[i].flag;
        }
        break;
    case TOK_SPLIT_MERGED_PREV:
        for (int i = 0; i < np; i++) {
            if (p[i].flag && !prev && na) acc[na - 1].end = p[i].end;
            else acc[na++] = p[i];
            prev = p[i].flag;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT: // the same fold from the right
        for (int i = np - 1; i >= 0; i--) {
            if (p[i].flag && !prev && na) acc[na - 1].start = p[i].start;
            else acc[na++] = p[i];
            prev = p[i].flag;
        }
        for (int i = 0; i < na / 2; i++) {
            piece_t t = acc[i];
            acc[i] = acc[na - 1 - i];
            acc[na - 1 - i] = t;
        }
        break;
    default:
        memcpy(acc, p, (size_t)np * sizeof *p);
        na = np;
    }
    int rc = 0;
    for (int i = 0; i < na && !rc; i++) rc = pretok(c, step + 1, s + acc[i].start, acc[i].end - acc[i].start);
    free(acc);
    return rc;
}

// runs the step's regex over s like the `onig` crate's find_iter (an empty match right after the
// previous match is skipped by one char) and passes the parts on
static int split_regex(enc_ctx_t *c, int step, const char *s, size_t n) {
    const tok_prestep_t *st = &c->tok->pre[step];
    if (!c->region[step] && !(c->region[step] = onig_region_new()))
        return err_set("out of memory (regex region)");
    OnigRegion *region = c->region[step];
    const OnigUChar *str = (const OnigUChar *)s, *end = str + n;
    int streaming = st->behavior == TOK_SPLIT_ISOLATED; // no need to see the next part first
    piece_t *p = NULL;
    int np = 0, cap = 0;
    size_t last_end = 0, prev = 0;
    long last_match_end = -1;
#define EMIT(a, b, f)                                                                              \
    do {                                                                                           \
        if (streaming) {                                                                           \
            if ((b) > (a) && pretok(c, step + 1, s + (a), (b) - (a))) goto fail;                   \
        } else {                                                                                   \
            if (np == cap) {                                                                       \
                cap = cap ? 2 * cap : 64;                                                          \
                piece_t *q = realloc(p, (size_t)cap * sizeof *p);                                  \
                if (!q) { err_set("out of memory (pre-tokenizer)"); goto fail; }                   \
                p = q;                                                                             \
            }                                                                                      \
            p[np++] = (piece_t){(a), (b), (f) ^ st->invert};                                       \
        }                                                                                          \
    } while (0)
    while (last_end <= n) {
        int r = onig_search(st->re, str, end, str + last_end, end, region, ONIG_OPTION_NONE);
        if (r == ONIG_MISMATCH) break;
        if (r < 0) {
            OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
            onig_error_code_to_str(msg, r);
            err_set("%s: pre-tokenizer regex search failed: %s", c->tok->name, (const char *)msg);
            goto fail;
        }
        size_t ms = (size_t)region->beg[0], me = (size_t)region->end[0];
        if (ms == me && last_match_end == (long)me) {
            int l = 1;
            if (last_end < n) utf8_at(s, last_end, &l);
            last_end += (size_t)l;
            continue;
        }
        last_end = me;
        last_match_end = (long)me;
        if (prev != ms) EMIT(prev, ms, 0);
        EMIT(ms, me, 1);
        prev = me;
    }
    if (prev != n) EMIT(prev, n, 0);
#undef EMIT
    if (!streaming) {
        int rc = split_general(c, step, s, n, p, np);
        free(p);
        return rc;
    }
    return 0;
fail:
    free(p);
    return -1;
}

static int pretok(enc_ctx_t *c, int step, const char *s, size_t n) {
    if (n == 0) return 0;
    const tokenizer_t *tok = c->tok;
    if (step == tok->n_pre) return tok_bpe_word(tok, s, n, c->out, &c->bpe);
    const tok_prestep_t *st = &tok->pre[step];
    if (st->type == TOK_PRE_BYTELEVEL && st->add_prefix_space && s[0] != ' ') {
        char *t = malloc(n + 1);
        if (!t) return err_set("out of memory (pre-tokenizer)");
        t[0] = ' ';
        memcpy(t + 1, s, n);
        int rc = st->re ? split_regex(c, step, t, n + 1) : pretok(c, step + 1, t, n + 1);
        free(t);
        return rc;
    }
    return st->re ? split_regex(c, step, s, n) : pretok(c, step + 1, s, n);
}

// ---------------------------------------------------------------------------------------------
// added tokens: leftmost-longest matches of one match set, with HF's single_word / lstrip /
// rstrip rules; the text between matches goes to `gap`

typedef int (*gap_fn)(enc_ctx_t *c, const char *s, size_t n);

static int split_added(enc_ctx_t *c, const tok_matchset_t *set, const char *s, size_t n, gap_fn gap) {
    if (set->n == 0) return gap(c, s, n);
    const tokenizer_t *tok = c->tok;
    size_t i = 0, start_offset = 0;
    while (i < n) {
        uint8_t b = (uint8_t)s[i];
        uint32_t k0 = set->start[b], k1 = set->start[b + 1];
        if (k0 == k1) { i++; continue; }
        const tok_added_t *t = NULL;
        for (uint32_t k = k0; k < k1; k++) {
            const tok_added_t *a = &tok->added[set->order[k]];
            if (a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) { t = a; break; }
        }
        if (!t) { i++; continue; }
        size_t start = i, stop = i + t->len;
        i = stop; // matching resumes after the match even when the rules below reject it
        int l;
        if (t->single_word) {
            int word_before = start > 0 && is_word_char(utf8_before(s, start, &l));
            int word_after = stop < n && is_word_char(utf8_at(s, stop, &l));
            if (word_before || word_after) continue;
        }
        if (t->lstrip) {
            size_t ns = start;
            while (ns > 0 && is_white_space(utf8_before(s, ns, &l))) ns -= (size_t)l;
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) {
            while (stop < n && is_white_space(utf8_at(s, stop, &l))) stop += (size_t)l;
            if (i < stop) i = stop; // (HF could match again inside the stripped spaces; we do not)
        }
        if (start_offset < start && gap(c, s + start_offset, start - start_offset)) return -1;
        if (ids_push(c->out, t->id)) return -1;
        start_offset = stop;
    }
    if (start_offset < n) return gap(c, s + start_offset, n - start_offset);
    return 0;
}

static int gap_normalized(enc_ctx_t *c, const char *s, size_t n) { return pretok(c, 0, s, n); }

static int gap_raw(enc_ctx_t *c, const char *s, size_t n) {
    char *norm;
    size_t nn;
    if (tok_normalize(c->tok, s, n, &norm, &nn)) return -1;
    int rc = split_added(c, &c->tok->norm_set, norm ? norm : s, nn, gap_normalized);
    free(norm);
    return rc;
}

int tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len, ids_t *out) {
    enc_ctx_t c = {.tok = tok, .out = out};
    int rc = 0;
    size_t i = 0;
    while (i < len && !rc) {
        size_t j = utf8_valid_prefix((const uint8_t *)text + i, len - i);
        if (j) rc = split_added(&c, &tok->raw_set, text + i, j, gap_raw);
        i += j;
        if (i < len && !rc) { // a byte that is not valid UTF-8: its own byte token
            rc = tok_bpe_word(tok, text + i, 1, out, &c.bpe);
            i++;
        }
    }
    for (int k = 0; k < TOK_MAX_PRESTEPS; k++)
        if (c.region[k]) onig_region_free(c.region[k], 1);
    free(c.bpe.buf);
    return rc;
}
