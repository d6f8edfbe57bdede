// BPE core of the tokenizer: hash maps (token string -> id, id pair -> merge), the merge loop
// (lowest rank first, leftmost on ties, exactly like HF tokenizers' Word::merge_all) and the
// word -> ids cache shared by concurrent encode calls.
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "tok_internal.h"

// ---------------------------------------------------------------------------------------------
// hashing

uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, s, n);
        h = (h ^ v) * 0x94D049BB133111EBull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

// ---------------------------------------------------------------------------------------------
// string -> id map

static int strmap_grow(tok_strmap_t *m) {
    uint32_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return err_set("out of memory (token map)");
    for (uint32_t k = 0; k < m->n; k++) {
        uint32_t i = (uint32_t)tok_hash_bytes(m->keys[k], m->lens[k]) & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = k + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tok_strmap_put(tok_strmap_t *m, const char *key, uint32_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    uint32_t i = (uint32_t)tok_hash_bytes(key, len) & (m->cap - 1);
    while (m->slots[i]) {
        uint32_t k = m->slots[i] - 1;
        if (m->lens[k] == len && memcmp(m->keys[k], key, len) == 0) {
            m->vals[k] = val;
            return 0;
        }
        i = (i + 1) & (m->cap - 1);
    }
    if (m->n == m->n_alloc) {
        uint32_t na = m->n_alloc ? m->n_alloc * 2 : 1024;
        const char **keys = realloc(m->keys, na * sizeof *keys);
        if (keys) m->keys = keys;
        uint32_t *lens = realloc(m->lens, na * sizeof *lens);
        if (lens) m->lens = lens;
        int32_t *vals = realloc(m->vals, na * sizeof *vals);
        if (vals) m->vals = vals;
        if (!keys || !lens || !vals) return err_set("out of memory (token map)");
        m->n_alloc = na;
    }
    m->keys[m->n] = key;
    m->lens[m->n] = len;
    m->vals[m->n] = val;
    m->slots[i] = ++m->n;
    return 0;
}

int32_t tok_strmap_get(const tok_strmap_t *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint32_t i = (uint32_t)tok_hash_bytes(key, len) & (m->cap - 1);
    while (m->slots[i]) {
        uint32_t k = m->slots[i] - 1;
        if (m->lens[k] == len && memcmp(m->keys[k], key, len) == 0) return m->vals[k];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_strmap_free(tok_strmap_t *m) {
    free(m->slots);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// merge map

int tok_mergemap_init(tok_mergemap_t *m, uint32_t n_expected) {
    uint32_t cap = 1024;
    while (cap < 2 * n_expected + 2) cap *= 2;
    m->keys = malloc(cap * sizeof *m->keys);
    m->ranks = malloc(cap * sizeof *m->ranks);
    m->new_ids = malloc(cap * sizeof *m->new_ids);
    if (!m->keys || !m->ranks || !m->new_ids) return err_set("out of memory (merges)");
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->cap = cap;
    m->n = 0;
    return 0;
}

// a later merge of the same pair replaces the earlier one (HF collects merges into a HashMap)
void tok_mergemap_put(tok_mergemap_t *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (m->cap - 1);
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == UINT64_MAX) m->n++;
    m->keys[i] = key;
    m->ranks[i] = rank;
    m->new_ids[i] = new_id;
}

void tok_mergemap_free(tok_mergemap_t *m) {
    free(m->keys);
    free(m->ranks);
    free(m->new_ids);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// cache: a direct-mapped table of word -> ids; a collision replaces the older entry

struct tok_cache_entry {
    uint64_t hash;
    uint32_t len, n;
    int32_t ids[]; // (n,) ids, then len bytes of the word
};

int tok_cache_init(tok_cache_t *c) {
    c->slots = calloc(TOK_CACHE_SLOTS, sizeof *c->slots);
    if (!c->slots) return err_set("out of memory (tokenizer cache)");
    for (int i = 0; i < TOK_CACHE_LOCKS; i++) pthread_mutex_init(&c->locks[i], NULL);
    return 0;
}

void tok_cache_free(tok_cache_t *c) {
    if (!c->slots) return;
    for (uint32_t i = 0; i < TOK_CACHE_SLOTS; i++) free(c->slots[i]);
    free(c->slots);
    for (int i = 0; i < TOK_CACHE_LOCKS; i++) pthread_mutex_destroy(&c->locks[i]);
    c->slots = NULL;
}

int tok_cache_get(tok_cache_t *c, uint64_t hash, const char *word, size_t len, ids_t *out) {
    uint32_t slot = (uint32_t)hash & (TOK_CACHE_SLOTS - 1);
    pthread_mutex_t *lock = &c->locks[slot % TOK_CACHE_LOCKS];
    int hit = 0;
    pthread_mutex_lock(lock);
    tok_cache_entry_t *e = c->slots[slot];
    if (e && e->hash == hash && e->len == len && memcmp((char *)(e->ids + e->n), word, len) == 0)
        hit = ids_append(out, e->ids, (int)e->n) ? -1 : 1;
    pthread_mutex_unlock(lock);
    return hit;
}

void tok_cache_put(tok_cache_t *c, uint64_t hash, const char *word, size_t len, const int32_t *ids,
                   int n) {
    tok_cache_entry_t *e = malloc(sizeof *e + (size_t)n * sizeof(int32_t) + len);
    if (!e) return; // the cache is an optimization; a failed insert is harmless
    e->hash = hash;
    e->len = (uint32_t)len;
    e->n = (uint32_t)n;
    memcpy(e->ids, ids, (size_t)n * sizeof(int32_t));
    memcpy((char *)(e->ids + n), word, len);
    uint32_t slot = (uint32_t)hash & (TOK_CACHE_SLOTS - 1);
    pthread_mutex_t *lock = &c->locks[slot % TOK_CACHE_LOCKS];
    pthread_mutex_lock(lock);
    tok_cache_entry_t *old = c->slots[slot];
    c->slots[slot] = e;
    pthread_mutex_unlock(lock);
    free(old);
}

// ---------------------------------------------------------------------------------------------
// BPE merge of one word

typedef struct {
    int32_t id;         // current token id of this symbol
    int32_t prev, next; // neighbours in the linked list, -1 at the ends
    int32_t alive;      // 0 once merged into its left neighbour
} bpe_sym_t;

typedef struct {
    uint64_t key; // (rank << 32) | position: the min-heap order (lowest rank, then leftmost)
    int32_t new_id;
} bpe_merge_t;

static void heap_push(bpe_merge_t *h, int *n, bpe_merge_t m) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p].key <= m.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static bpe_merge_t heap_pop(bpe_merge_t *h, int *n) {
    bpe_merge_t top = h[0], last = h[--(*n)];
    if (*n == 0) return top;
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].key < h[c].key) c++;
        if (last.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

// the byte-level string of a word (each byte as its GPT-2 unicode char), for ignore_merges
static int word_to_bytelevel(const tokenizer_t *tok, const char *w, size_t len, char *dst, size_t *n) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = tok->byte_id[(uint8_t)w[i]];
        if (id < 0) return -1;
        memcpy(dst + k, tok->str[id], tok->str_len[id]);
        k += tok->str_len[id];
    }
    *n = k;
    return 0;
}

static void *scratch_get(tok_scratch_t *s, size_t need) {
    if (s->cap < need) {
        size_t cap = need < 4096 ? 4096 : need * 2;
        void *b = realloc(s->buf, cap);
        if (!b) return NULL;
        s->buf = b;
        s->cap = cap;
    }
    return s->buf;
}

static int bpe_merge(const tokenizer_t *tok, const char *word, size_t len, ids_t *out,
                     tok_scratch_t *scratch) {
    // symbols (len,), merge heap (at most len-1 initial pairs + 2 per merge: 3*len)
    size_t need = len * sizeof(bpe_sym_t) + 3 * (len + 1) * sizeof(bpe_merge_t);
    if (tok->ignore_merges) need += len * 2; // byte-level chars take at most 2 bytes
    char *mem = scratch_get(scratch, need);
    if (!mem) return err_set("out of memory (BPE word of %zu bytes)", len);
    bpe_sym_t *sym = (bpe_sym_t *)mem;
    bpe_merge_t *heap = (bpe_merge_t *)(mem + len * sizeof(bpe_sym_t));

    if (tok->ignore_merges) {
        char *bl = (char *)(heap + 3 * (len + 1));
        size_t bn;
        if (word_to_bytelevel(tok, word, len, bl, &bn) == 0) {
            int32_t id = tok_strmap_get(&tok->vocab, bl, (uint32_t)bn);
            if (id >= 0) return ids_push(out, id);
        }
    }

    // initial symbols: one per byte (HF: one per char of the byte-level string)
    int n = 0, last_unk = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)word[i];
        int32_t id = tok->byte_id[b];
        if (id < 0 && tok->byte_fallback) id = tok->byte_fallback_id[b];
        if (id < 0) {
            if (tok->unk_id < 0) continue; // HF drops chars it cannot map when there is no unk
            if (last_unk && tok->fuse_unk) continue;
            id = tok->unk_id;
            last_unk = 1;
        } else {
            last_unk = 0;
        }
        sym[n] = (bpe_sym_t){id, n - 1, n + 1, 1};
        n++;
    }
    if (n == 0) return 0;
    sym[n - 1].next = -1;

    int nh = 0;
    uint32_t rank;
    int32_t new_id;
    for (int i = 0; i + 1 < n; i++)
        if (tok_mergemap_get(&tok->merges, sym[i].id, sym[i + 1].id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge_t){((uint64_t)rank << 32) | (uint32_t)i, new_id});

    while (nh > 0) {
        bpe_merge_t top = heap_pop(heap, &nh);
        int pos = (int)(uint32_t)top.key;
        if (!sym[pos].alive || sym[pos].next < 0) continue;
        int nx = sym[pos].next;
        // stale entry: the pair at pos changed since it was pushed
        if (!tok_mergemap_get(&tok->merges, sym[pos].id, sym[nx].id, &rank, &new_id) ||
            new_id != top.new_id)
            continue;
        sym[pos].id = new_id;
        sym[nx].alive = 0;
        sym[pos].next = sym[nx].next;
        if (sym[nx].next >= 0) sym[sym[nx].next].prev = pos;
        int pv = sym[pos].prev;
        if (pv >= 0 && tok_mergemap_get(&tok->merges, sym[pv].id, sym[pos].id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge_t){((uint64_t)rank << 32) | (uint32_t)pv, new_id});
        nx = sym[pos].next;
        if (nx >= 0 && tok_mergemap_get(&tok->merges, sym[pos].id, sym[nx].id, &rank, &new_id))
            heap_push(heap, &nh, (bpe_merge_t){((uint64_t)rank << 32) | (uint32_t)pos, new_id});
    }
    for (int i = 0; i >= 0; i = sym[i].next)
        if (ids_push(out, sym[i].id)) return -1;
    return 0;
}

int tok_bpe_word(const tokenizer_t *tok, const char *word, size_t len, ids_t *out,
                 tok_scratch_t *scratch) {
    if (len == 0) return 0;
    if (len == 1 && tok->byte_id[(uint8_t)word[0]] >= 0) return ids_push(out, tok->byte_id[(uint8_t)word[0]]);
    tok_cache_t *cache = (tok_cache_t *)&tok->cache; // the cache is internally synchronized
    uint64_t h = 0;
    if (len <= TOK_CACHE_MAX_WORD) {
        h = tok_hash_bytes(word, len);
        int hit = tok_cache_get(cache, h, word, len, out);
        if (hit) return hit < 0 ? err_set("out of memory (ids)") : 0;
    }
    int n0 = out->n;
    if (bpe_merge(tok, word, len, out, scratch)) return -1;
    if (len <= TOK_CACHE_MAX_WORD) tok_cache_put(cache, h, word, len, out->ids + n0, out->n - n0);
    return 0;
}
