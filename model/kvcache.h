// kvcache: a paged KV cache shared by many sequences.
//
// One pool per layer for K and one for V, each (P, S, Hkv, D): P pages of S token slots. Pages have
// reference counts and live on a free list. A sequence owns a page table (MP page ids, in order);
// its token at position t sits in slot pages[t / S] * S + t % S of every layer's pools.
//
// Sharing: kvcache_seq_fork() gives a new sequence the same pages as another one (each page's
// count goes up). Pages are never written while shared: when a sequence appends into a page whose
// count is above 1 (the partly filled last page after a fork), it first copies that page (copy on
// write). Full shared pages stay shared until every owner is released. A page returns to the free
// list when its count drops to 0, so sequences join and leave while others run.
//
// The bookkeeping (counts, free list, page tables) lives on the host; the pools live on `device`.
#pragma once
#include <stdint.h>

#include "../kernels/kernels.h"

typedef struct {
    int used;       // 1 while the sequence exists
    int len;        // tokens stored
    int n_pages;    // pages in the table: ceil(len / S)
    int32_t *pages; // (MP) page ids; entries >= n_pages are unused
} kv_seq_t;

typedef struct {
    int n_layers;          // L
    int n_pages;           // P
    int page_size;         // S
    int n_kv_heads;        // Hkv
    int head_dim;          // D
    int max_seqs;          // sequence slots
    int max_pages_per_seq; // MP
    device_t device;
    tensor_t *k, *v;       // (L) pools, each (P, S, Hkv, D) F32
    int32_t *refcount;     // (P)
    int32_t *free_list;    // (P) stack of free page ids
    int n_free;
    kv_seq_t *seqs;        // (max_seqs)
} kvcache_t;

// allocates the pools (zeroed) and the bookkeeping. max_seq_len bounds one sequence (MP =
// ceil(max_seq_len / S)).
int kvcache_init(kvcache_t *kv, int n_layers, int n_kv_heads, int head_dim, int n_pages,
                 int page_size, int max_seqs, int max_seq_len, device_t device);
void kvcache_free(kvcache_t *kv);

// a new empty sequence: its id (>= 0), or -1 when every slot is taken
int kvcache_seq_new(kvcache_t *kv);
// a new sequence holding the same tokens as src, sharing its pages: its id, or -1
int kvcache_seq_fork(kvcache_t *kv, int src);
// releases a sequence: each of its pages loses one reference
void kvcache_seq_release(kvcache_t *kv, int seq);
// keeps the first len tokens (len <= current length); pages past them lose a reference
int kvcache_seq_truncate(kvcache_t *kv, int seq, int len);
// reserves positions len .. len+n-1 for n new tokens and writes their slots (n) so the caller can
// store K/V there. Copies the last page first when it is shared. Nothing changes on error (not
// enough free pages, longer than MP * S).
int kvcache_seq_append(kvcache_t *kv, int seq, int n, int32_t *slots);

int kvcache_seq_len(const kvcache_t *kv, int seq);
const int32_t *kvcache_seq_pages(const kvcache_t *kv, int seq); // (MP)
// pages a sequence of len tokens needs
int kvcache_pages_for(const kvcache_t *kv, int len);
// pages that appending n tokens to seq would take from the free list (copy on write included)
int kvcache_pages_to_append(const kvcache_t *kv, int seq, int n);
int kvcache_free_pages(const kvcache_t *kv);
