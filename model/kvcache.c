// Paged KV cache: pools, page reference counts, free list, per-sequence page tables (kvcache.h).
#include "kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"

int kvcache_init(kvcache_t *kv, int n_layers, int n_kv_heads, int head_dim, int n_pages,
                 int page_size, int max_seqs, int max_seq_len, device_t device) {
    memset(kv, 0, sizeof *kv);
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_pages <= 0 || page_size <= 0 ||
        max_seqs <= 0 || max_seq_len <= 0)
        return err_set("kvcache_init: every size must be positive (layers %d, kv heads %d, head dim %d, "
                       "pages %d, page size %d, sequences %d, max length %d)",
                       n_layers, n_kv_heads, head_dim, n_pages, page_size, max_seqs, max_seq_len);
    kv->n_layers = n_layers;
    kv->n_pages = n_pages;
    kv->page_size = page_size;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->max_seqs = max_seqs;
    kv->max_pages_per_seq = (max_seq_len + page_size - 1) / page_size;
    kv->device = device;
    kv->k = calloc((size_t)n_layers, sizeof(tensor_t));
    kv->v = calloc((size_t)n_layers, sizeof(tensor_t));
    kv->refcount = calloc((size_t)n_pages, sizeof(int32_t));
    kv->free_list = malloc((size_t)n_pages * sizeof(int32_t));
    kv->seqs = calloc((size_t)max_seqs, sizeof(kv_seq_t));
    if (!kv->k || !kv->v || !kv->refcount || !kv->free_list || !kv->seqs) {
        kvcache_free(kv);
        return err_set("kvcache_init: out of memory");
    }
    int64_t shape[4] = {n_pages, page_size, n_kv_heads, head_dim}; // (P, S, Hkv, D)
    for (int l = 0; l < n_layers; l++)
        if (tensor_alloc(&kv->k[l], DTYPE_F32, device, 4, shape) ||
            tensor_alloc(&kv->v[l], DTYPE_F32, device, 4, shape)) {
            err_wrap("kvcache_init: pools of %d pages x %d slots: ", n_pages, page_size);
            kvcache_free(kv);
            return -1;
        }
    // page 0 on top of the stack: pages are handed out in increasing order at first
    for (int p = 0; p < n_pages; p++) kv->free_list[p] = n_pages - 1 - p;
    kv->n_free = n_pages;
    for (int s = 0; s < max_seqs; s++) {
        kv->seqs[s].pages = malloc((size_t)kv->max_pages_per_seq * sizeof(int32_t));
        if (!kv->seqs[s].pages) {
            kvcache_free(kv);
            return err_set("kvcache_init: out of memory");
        }
    }
    return 0;
}

void kvcache_free(kvcache_t *kv) {
    if (kv->k)
        for (int l = 0; l < kv->n_layers; l++) tensor_free(&kv->k[l]);
    if (kv->v)
        for (int l = 0; l < kv->n_layers; l++) tensor_free(&kv->v[l]);
    if (kv->seqs)
        for (int s = 0; s < kv->max_seqs; s++) free(kv->seqs[s].pages);
    free(kv->k);
    free(kv->v);
    free(kv->refcount);
    free(kv->free_list);
    free(kv->seqs);
    memset(kv, 0, sizeof *kv);
}

static int kv_check_seq(const kvcache_t *kv, int seq, const char *fn) {
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].used)
        return err_set("%s: no sequence %d in the KV cache", fn, seq);
    return 0;
}

static int kv_page_take(kvcache_t *kv) {
    int32_t p = kv->free_list[--kv->n_free];
    kv->refcount[p] = 1;
    return p;
}

static void kv_page_drop(kvcache_t *kv, int32_t p) {
    if (--kv->refcount[p] == 0) kv->free_list[kv->n_free++] = p;
}

static int kv_slot_new(kvcache_t *kv) {
    for (int s = 0; s < kv->max_seqs; s++)
        if (!kv->seqs[s].used) {
            kv->seqs[s].used = 1;
            kv->seqs[s].len = 0;
            kv->seqs[s].n_pages = 0;
            return s;
        }
    return err_set("KV cache: all %d sequence slots are in use", kv->max_seqs);
}

int kvcache_seq_new(kvcache_t *kv) { return kv_slot_new(kv); }

int kvcache_seq_fork(kvcache_t *kv, int src) {
    if (kv_check_seq(kv, src, "kvcache_seq_fork")) return -1;
    int s = kv_slot_new(kv);
    if (s < 0) return -1;
    kv_seq_t *a = &kv->seqs[src], *b = &kv->seqs[s];
    b->len = a->len;
    b->n_pages = a->n_pages;
    for (int j = 0; j < a->n_pages; j++) {
        b->pages[j] = a->pages[j];
        kv->refcount[a->pages[j]]++;
    }
    return s;
}

void kvcache_seq_release(kvcache_t *kv, int seq) {
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].used) return;
    kv_seq_t *q = &kv->seqs[seq];
    for (int j = 0; j < q->n_pages; j++) kv_page_drop(kv, q->pages[j]);
    q->used = 0;
    q->len = 0;
    q->n_pages = 0;
}

int kvcache_seq_truncate(kvcache_t *kv, int seq, int len) {
    if (kv_check_seq(kv, seq, "kvcache_seq_truncate")) return -1;
    kv_seq_t *q = &kv->seqs[seq];
    if (len < 0 || len > q->len)
        return err_set("kvcache_seq_truncate: sequence %d holds %d tokens, cannot keep %d", seq, q->len, len);
    int keep = kvcache_pages_for(kv, len);
    for (int j = keep; j < q->n_pages; j++) kv_page_drop(kv, q->pages[j]);
    q->n_pages = keep;
    q->len = len;
    return 0;
}

int kvcache_pages_for(const kvcache_t *kv, int len) { return (len + kv->page_size - 1) / kv->page_size; }

int kvcache_pages_to_append(const kvcache_t *kv, int seq, int n) {
    const kv_seq_t *q = &kv->seqs[seq];
    int need = kvcache_pages_for(kv, q->len + n) - q->n_pages;
    // the first new token lands in a partly filled page that is shared: one copy
    if (n > 0 && q->len % kv->page_size && kv->refcount[q->pages[q->n_pages - 1]] > 1) need++;
    return need;
}

// copies the first `used` slots of page src into page dst, in every layer's K and V pools
static int kv_page_copy(kvcache_t *kv, int32_t dst, int32_t src, int used) {
    int64_t slot_floats = (int64_t)kv->n_kv_heads * kv->head_dim;
    int64_t shape[1] = {used * slot_floats};
    for (int l = 0; l < kv->n_layers; l++)
        for (int which = 0; which < 2; which++) {
            float *pool = (which ? kv->v[l] : kv->k[l]).data;
            tensor_t d = tensor_view(pool + (int64_t)dst * kv->page_size * slot_floats, DTYPE_F32,
                                     kv->device, 1, shape);
            tensor_t s = tensor_view(pool + (int64_t)src * kv->page_size * slot_floats, DTYPE_F32,
                                     kv->device, 1, shape);
            if (tensor_copy(&d, &s)) return err_wrap("KV cache copy on write: ");
        }
    return 0;
}

int kvcache_seq_append(kvcache_t *kv, int seq, int n, int32_t *slots) {
    if (kv_check_seq(kv, seq, "kvcache_seq_append")) return -1;
    kv_seq_t *q = &kv->seqs[seq];
    if (n < 0) return err_set("kvcache_seq_append: negative token count %d", n);
    int S = kv->page_size;
    if ((int64_t)q->len + n > (int64_t)kv->max_pages_per_seq * S)
        return err_set("KV cache: sequence %d would hold %d tokens, more than its maximum %d", seq,
                       q->len + n, kv->max_pages_per_seq * S);
    int need = kvcache_pages_to_append(kv, seq, n);
    if (need > kv->n_free)
        return err_set("KV cache: out of pages (sequence %d needs %d more, %d of %d are free)", seq,
                       need, kv->n_free, kv->n_pages);
    if (n == 0) return 0;
    int off = q->len % S;
    if (off) { // appending into the last page: copy it first if someone else holds it too
        int32_t last = q->pages[q->n_pages - 1];
        if (kv->refcount[last] > 1) {
            int32_t fresh = kv_page_take(kv);
            if (kv_page_copy(kv, fresh, last, off)) {
                kv_page_drop(kv, fresh);
                return -1;
            }
            kv_page_drop(kv, last);
            q->pages[q->n_pages - 1] = fresh;
        }
    }
    for (int i = 0; i < n; i++) {
        int t = q->len + i;
        if (t % S == 0) q->pages[q->n_pages++] = kv_page_take(kv);
        slots[i] = q->pages[t / S] * S + t % S;
    }
    q->len += n;
    return 0;
}

int kvcache_seq_len(const kvcache_t *kv, int seq) {
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].used) return -1;
    return kv->seqs[seq].len;
}

const int32_t *kvcache_seq_pages(const kvcache_t *kv, int seq) {
    if (seq < 0 || seq >= kv->max_seqs || !kv->seqs[seq].used) return NULL;
    return kv->seqs[seq].pages;
}

int kvcache_free_pages(const kvcache_t *kv) { return kv->n_free; }
