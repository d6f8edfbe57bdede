// Internals of the byte-level BPE tokenizer (model/tokenizer.c, model/tok_*.c). Not a public API.
//
// Pipeline of tokenizer_encode (the same order as HF tokenizers' encode_single_sequence):
//   1. the text is cut into valid UTF-8 runs; an invalid byte becomes its own byte token
//   2. added tokens with normalized=false are matched in the raw text (leftmost-longest)
//   3. every remaining piece is normalized (NFC for Qwen), then added tokens with normalized=true
//      are matched in it
//   4. the pre-tokenizer steps split each remaining piece (Split regex via Oniguruma, ByteLevel)
//   5. each final piece (a "word") is mapped byte -> initial symbol and merged by rank (BPE)
#pragma once
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <oniguruma.h>

#include "tokenizer.h"

// ---- string -> id hash map (open addressing; keys live in the tokenizer's arena) ----
typedef struct {
    uint32_t *slots;   // (cap,) index+1 into keys/vals, 0 = empty
    const char **keys; // (n,) key bytes
    uint32_t *lens;    // (n,)
    int32_t *vals;     // (n,)
    uint32_t cap, n, n_alloc;
} tok_strmap_t;
int tok_strmap_put(tok_strmap_t *m, const char *key, uint32_t len, int32_t val); // overwrites
int32_t tok_strmap_get(const tok_strmap_t *m, const char *key, uint32_t len);   // -1 if absent
void tok_strmap_free(tok_strmap_t *m);

// ---- (left id, right id) -> (rank, merged id) ----
typedef struct {
    uint64_t *keys;   // (cap,) (left << 32) | right; UINT64_MAX = empty
    uint32_t *ranks;  // (cap,)
    int32_t *new_ids; // (cap,)
    uint32_t cap, n;
} tok_mergemap_t;
int tok_mergemap_init(tok_mergemap_t *m, uint32_t n_expected);
void tok_mergemap_put(tok_mergemap_t *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
// returns 1 and fills rank/new_id when the pair merges
static inline int tok_mergemap_get(const tok_mergemap_t *m, int32_t a, int32_t b, uint32_t *rank,
                                   int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (m->cap - 1);
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *rank = m->ranks[i];
            *new_id = m->new_ids[i];
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        i = (i + 1) & (m->cap - 1);
    }
}
void tok_mergemap_free(tok_mergemap_t *m);

uint64_t tok_hash_bytes(const char *s, size_t n);

// ---- word -> ids cache shared by all threads (direct-mapped, striped locks) ----
#define TOK_CACHE_SLOTS (1u << 16)
#define TOK_CACHE_LOCKS 64
#define TOK_CACHE_MAX_WORD 256 // longer words are not cached (like HF's MAX_LENGTH)
typedef struct tok_cache_entry tok_cache_entry_t;
typedef struct {
    tok_cache_entry_t **slots; // (TOK_CACHE_SLOTS,)
    pthread_mutex_t locks[TOK_CACHE_LOCKS];
} tok_cache_t;
int tok_cache_init(tok_cache_t *c);
void tok_cache_free(tok_cache_t *c);
// appends the cached ids of word to out; 1 on a hit, 0 on a miss, -1 on OOM
int tok_cache_get(tok_cache_t *c, uint64_t hash, const char *word, size_t len, ids_t *out);
void tok_cache_put(tok_cache_t *c, uint64_t hash, const char *word, size_t len, const int32_t *ids,
                   int n);

// ---- added tokens ----
typedef struct {
    int32_t id;
    const char *content; // arena; for normalized tokens: the normalized form used for matching
    uint32_t len;
    uint8_t single_word, lstrip, rstrip, normalized, special;
} tok_added_t;

// tokens of one matching set (raw text or normalized text), bucketed by first byte,
// longest first inside a bucket, so the first hit at a position is the leftmost-longest match
typedef struct {
    int32_t *order;      // (n,) indices into tokenizer.added, grouped by first byte
    uint32_t start[257]; // bucket b = order[start[b] .. start[b+1])
    int n;
} tok_matchset_t;

// ---- normalizer (a sequence of Unicode normalization forms) ----
enum { TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD };

// ---- pre-tokenizer steps ----
enum { TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL };
enum { TOK_SPLIT_ISOLATED, TOK_SPLIT_REMOVED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
       TOK_SPLIT_CONTIGUOUS };
typedef struct {
    int type;
    regex_t *re;  // Split: the pattern; ByteLevel with use_regex: the GPT-2 pattern; else NULL
    int behavior; // Split: TOK_SPLIT_*; ByteLevel: always isolated
    int invert;
    int add_prefix_space; // ByteLevel
} tok_prestep_t;

#define TOK_MAX_PRESTEPS 8
#define TOK_MAX_NORMS 8

struct tokenizer {
    char *name; // file name for error messages

    // every id: its token string as written in tokenizer.json and its decoded bytes
    int n_ids;          // max id + 1
    const char **str;   // (n_ids,) token string (vocab or added content); NULL for unused ids
    uint32_t *str_len;  // (n_ids,)
    const char **bytes; // (n_ids,) decoded bytes (ByteLevel decoder applied); NULL for unused ids
    uint32_t *bytes_len;

    char **arena; // blocks of string storage
    int n_arena, cap_arena;
    size_t arena_used, arena_cap;

    tok_strmap_t vocab;  // model vocab: token string -> id
    tok_strmap_t added_map; // added token content -> id
    tok_mergemap_t merges;
    int32_t byte_id[256]; // initial symbol of each byte (its byte-level char in the vocab), -1 if absent
    int32_t unk_id;       // -1: none
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_fallback_id[256]; // "<0xXX>" ids when byte_fallback

    tok_added_t *added;
    int n_added;
    tok_matchset_t raw_set, norm_set;

    int norms[TOK_MAX_NORMS];
    int n_norms;
    tok_prestep_t pre[TOK_MAX_PRESTEPS];
    int n_pre;

    tok_cache_t cache;
};

// BPE of one pre-tokenized word (raw bytes, before byte-level mapping); appends ids to out.
// `scratch` is per-call memory reused between words.
typedef struct {
    void *buf;
    size_t cap;
} tok_scratch_t;
int tok_bpe_word(const tokenizer_t *tok, const char *word, size_t len, ids_t *out, tok_scratch_t *scratch);

// applies the normalizer (a sequence of NFC/NFD/NFKC/NFKD) to valid UTF-8; *out = NULL when the
// text is already normalized, else a malloc'd copy of *out_len bytes
int tok_normalize(const tokenizer_t *tok, const char *s, size_t n, char **out, size_t *out_len);

// 1 when a code point is NFC-inert (the normalizer's fast path skips texts made only of these)
int tok_nfc_inert(uint32_t c);

// Oniguruma: one-time init and serialized compile/free (compile is not thread-safe in onig)
int tok_regex_compile(const char *pattern, size_t len, regex_t **re, const char *name);
void tok_regex_free(regex_t *re);
