// safetensors reader (mmap + fully validated header) and writer (see safetensors.h).
//
// File layout:
//   [0, 8)        n: header length, little-endian u64
//   [8, 8+n)      JSON header: {"<name>": {"dtype", "shape", "data_offsets": [b, e]}, ..., "__metadata__"}
//   [8+n, end)    data buffer; tensor bytes are [8+n+b, 8+n+e)
// The checks follow the reference implementation (huggingface/safetensors): the tensors, ordered by
// offset, tile the data buffer exactly (no gap, no overlap, nothing after the last one), and
// e - b == numel * dtype size. Files written by HF / torch pad the header to a multiple of 8 so the
// data is aligned; we require each tensor to be aligned to its element size, so callers may read
// it in place.
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/err.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) // same limit as the reference implementation

static const struct {
    const char *name;
    dtype_t dtype;
    size_t size;
} ST_DTYPES[] = {
    {"F32", DTYPE_F32, 4},
    {"BF16", DTYPE_BF16, 2},
    {"F16", DTYPE_F16, 2},
    {"I32", DTYPE_I32, 4},
};
#define ST_N_DTYPES ((int)(sizeof ST_DTYPES / sizeof ST_DTYPES[0]))

static int st_dtype_index(dtype_t dt) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (ST_DTYPES[i].dtype == dt) return i;
    return -1;
}

// "[a, b, c]" into out
static void st_format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

static void st_describe(const json_t *v, char *out, size_t cap) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(out, cap, "(unprintable)");
        return;
    }
    if (strlen(s) > 80) snprintf(out, cap, "%.77s...", s);
    else snprintf(out, cap, "%s", s);
    free(s);
}

// ---------------------------------------------------------------------------------------------
// reader

// one header entry -> t (name not set here); begin/end are the data_offsets
static int st_parse_entry(st_tensor_t *t, const char *path, const char *name, const json_t *v,
                          uint64_t data_len, uint64_t *begin, uint64_t *end) {
    char found[96];
    if (!json_is_object(v)) {
        st_describe(v, found, sizeof found);
        return err_set("%s: tensor %s: expected an object with dtype, shape and data_offsets, found %s",
                       path, name, found);
    }
    // dtype
    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd)) {
        st_describe(jd ? jd : json_null(), found, sizeof found);
        return err_set("%s: tensor %s: expected \"dtype\" to be a string, found %s", path, name,
                       jd ? found : "nothing");
    }
    int di = -1;
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(json_string_value(jd), ST_DTYPES[i].name) == 0) di = i;
    if (di < 0)
        return err_set("%s: tensor %s: unknown dtype %.32s (expected F32, BF16, F16 or I32)", path, name,
                       json_string_value(jd));
    t->dtype = ST_DTYPES[di].dtype;
    // shape: at most TENSOR_MAX_DIMS non-negative integers
    const json_t *js = json_object_get(v, "shape");
    int shape_ok = json_is_array(js);
    for (size_t i = 0; shape_ok && i < json_array_size(js); i++) {
        const json_t *d = json_array_get(js, i);
        shape_ok = json_is_integer(d) && json_integer_value(d) >= 0;
    }
    if (!shape_ok) {
        st_describe(js ? js : json_null(), found, sizeof found);
        return err_set("%s: tensor %s: expected \"shape\" to be a list of non-negative integers, found %s",
                       path, name, js ? found : "nothing");
    }
    if (json_array_size(js) > TENSOR_MAX_DIMS)
        return err_set("%s: tensor %s: shape has %zu dims (expected at most %d)", path, name,
                       json_array_size(js), TENSOR_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        t->shape[i] = json_integer_value(json_array_get(js, (size_t)i));
        overflow |= __builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel);
    }
    // data_offsets: [begin, end] within the data buffer, holding exactly numel elements
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)) || json_integer_value(json_array_get(jo, 0)) < 0 ||
        json_integer_value(json_array_get(jo, 1)) < 0) {
        st_describe(jo ? jo : json_null(), found, sizeof found);
        return err_set("%s: tensor %s: expected \"data_offsets\" to be [begin, end] with non-negative "
                       "integers, found %s", path, name, jo ? found : "nothing");
    }
    uint64_t b = (uint64_t)json_integer_value(json_array_get(jo, 0));
    uint64_t e = (uint64_t)json_integer_value(json_array_get(jo, 1));
    if (b > e)
        return err_set("%s: tensor %s: data_offsets [%llu, %llu] end before they begin", path, name,
                       (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return err_set("%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data "
                       "(%llu bytes after the header)", path, name, (unsigned long long)b,
                       (unsigned long long)e, (unsigned long long)data_len);
    uint64_t need;
    overflow |= __builtin_mul_overflow(numel, (uint64_t)ST_DTYPES[di].size, &need);
    if (overflow || need != e - b) {
        char shp[128];
        st_format_shape(shp, sizeof shp, t->ndim, t->shape);
        return err_set("%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but %s %s needs %s%llu",
                       path, name, (unsigned long long)b, (unsigned long long)e,
                       (unsigned long long)(e - b), ST_DTYPES[di].name, shp, overflow ? "more than " : "",
                       overflow ? (unsigned long long)UINT64_MAX : (unsigned long long)need);
    }
    t->nbytes = (size_t)(e - b);
    *begin = b;
    *end = e;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int index;
} st_span_t;

static int st_span_cmp(const void *a, const void *b) {
    const st_span_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int st_tensor_cmp(const void *a, const void *b) {
    return strcmp(((const st_tensor_t *)a)->name, ((const st_tensor_t *)b)->name);
}

// parses and checks the header of st (mapped); fills st->tensors sorted by name
static int st_parse_header(safetensors_t *st, const char *json, size_t n, uint64_t data_len) {
    const char *path = st->path;
    json_error_t jerr;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("%s: header is not valid JSON: %s (line %d, column %d of the header)", path,
                       jerr.text, jerr.line, jerr.column);
    int rc = -1;
    st_span_t *spans = NULL;
    if (!json_is_object(root)) {
        err_set("%s: header is not a JSON object (expected {\"tensor name\": {...}, ...})", path);
        goto done;
    }
    size_t count = json_object_size(root) - (json_object_get(root, "__metadata__") ? 1 : 0);
    st->tensors = calloc(count ? count : 1, sizeof *st->tensors);
    spans = calloc(count ? count : 1, sizeof *spans);
    if (!st->tensors || !spans) {
        err_set("%s: out of memory for %zu tensors", path, count);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        st_tensor_t *t = &st->tensors[st->n];
        if (st_parse_entry(t, path, key, v, data_len, &spans[st->n].begin, &spans[st->n].end)) goto done;
        t->name = strdup(key);
        if (!t->name) {
            err_set("%s: out of memory", path);
            goto done;
        }
        spans[st->n].index = st->n;
        st->n++;
    }
    // the tensors must tile the data buffer: sorted by offset, each begins where the last ended
    qsort(spans, (size_t)st->n, sizeof *spans, st_span_cmp);
    uint64_t at = 0;
    const char *prev = NULL;
    for (int i = 0; i < st->n; i++) {
        const st_tensor_t *t = &st->tensors[spans[i].index];
        if (spans[i].begin != at) {
            if (prev)
                err_set("%s: tensor %s: data_offsets [%llu, %llu] %s tensor %s, which ends at %llu "
                        "(expected tensors packed back to back)", path, t->name,
                        (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                        spans[i].begin < at ? "overlap" : "leave a gap after", prev, (unsigned long long)at);
            else
                err_set("%s: tensor %s: data_offsets [%llu, %llu]: the first tensor must begin at 0",
                        path, t->name, (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
            goto done;
        }
        at = spans[i].end;
        prev = t->name;
    }
    if (at != data_len) {
        err_set("%s: the tensors cover %llu bytes of data but the file holds %llu after the header "
                "(truncated or trailing bytes)", path, (unsigned long long)at, (unsigned long long)data_len);
        goto done;
    }
    const char *data = json + n;
    for (int i = 0; i < st->n; i++) {
        st_tensor_t *t = &st->tensors[spans[i].index];
        t->data = data + spans[i].begin;
        size_t esize = ST_DTYPES[st_dtype_index(t->dtype)].size;
        if ((uintptr_t)t->data % esize) {
            err_set("%s: tensor %s: data at file offset %llu is not aligned to its %zu-byte elements "
                    "(expected the header padded to a multiple of 8)", path, t->name,
                    (unsigned long long)((const char *)t->data - (const char *)st->map), esize);
            goto done;
        }
    }
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, st_tensor_cmp);
    rc = 0;
done:
    free(spans);
    json_decref(root);
    return rc;
}

int safetensors_open(safetensors_t *st, const char *path) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set("%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return err_set("%s: file is %llu bytes, too short for a safetensors header (expected at least 8)",
                       path, (unsigned long long)size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return err_set("%s: mmap failed: %s", path, strerror(errno));
    st->map = map;
    st->map_len = (size_t)size;
    st->path = strdup(path);
    if (!st->path) {
        safetensors_close(st);
        return err_set("%s: out of memory", path);
    }
    const unsigned char *p = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > ST_MAX_HEADER || n > size - 8) {
        err_set("%s: header length %llu %s (file is %llu bytes; is this a safetensors file?)", path,
                (unsigned long long)n, n > size - 8 ? "runs past the end of the file" : "exceeds the 100 MB limit",
                (unsigned long long)size);
        safetensors_close(st);
        return -1;
    }
    if (st_parse_header(st, (const char *)p + 8, (size_t)n, size - 8 - n)) {
        safetensors_close(st);
        return -1;
    }
    return 0;
}

void safetensors_close(safetensors_t *st) {
    if (st->tensors)
        for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->map) munmap(st->map, st->map_len);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const st_tensor_t *safetensors_find(const safetensors_t *st, const char *name) {
    if (!st->n) return NULL;
    st_tensor_t key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n, sizeof key, st_tensor_cmp);
}

// ---------------------------------------------------------------------------------------------
// checkpoint directory: model.safetensors (preferred, as HF does) or an index of shards

static char *st_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int st_set_add_file(st_set_t *set, const char *path) {
    safetensors_t *nf = realloc(set->files, (size_t)(set->n_files + 1) * sizeof *nf);
    if (!nf) return err_set("%s: out of memory", path);
    set->files = nf;
    if (safetensors_open(&set->files[set->n_files], path)) return -1;
    set->n_files++;
    return 0;
}

// reads the index's weight_map, opens each shard once, checks every listed tensor is where it says
static int st_set_open_index(st_set_t *set, const char *dir, const char *index_path) {
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set("%s: not valid JSON: %s (line %d, column %d)", index_path, jerr.text, jerr.line,
                       jerr.column);
    int rc = -1;
    char **names = NULL; // shard file names, in first-seen order
    int n_names = 0;
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        err_set("%s: expected a \"weight_map\" object (tensor name -> shard file)", index_path);
        goto done;
    }
    names = calloc(json_object_size(map) + 1, sizeof *names);
    if (!names) {
        err_set("%s: out of memory", index_path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const char *file = json_string_value(v);
        if (!file || !file[0] || file[0] == '/' || strstr(file, "..") || strchr(file, '/')) {
            char found[96];
            st_describe(v, found, sizeof found);
            err_set("%s: weight_map[\"%s\"]: expected a shard file name in the same directory, found %s",
                    index_path, key, found);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < n_names && !seen; i++) seen = strcmp(names[i], file) == 0;
        if (!seen) names[n_names++] = (char *)file;
    }
    for (int i = 0; i < n_names; i++) {
        char *path = st_join(dir, names[i]);
        int bad = !path || st_set_add_file(set, path);
        if (!path) err_set("%s: out of memory", index_path);
        free(path);
        if (bad) goto done;
    }
    json_object_foreach(map, key, v) {
        const char *file = json_string_value(v);
        const safetensors_t *holder = NULL;
        for (int i = 0; i < set->n_files; i++) {
            const char *base = strrchr(set->files[i].path, '/') + 1;
            if (strcmp(base, file) == 0) holder = &set->files[i];
        }
        if (!holder || !safetensors_find(holder, key)) {
            err_set("%s: weight_map lists tensor %s in %s, which does not hold it", index_path, key, file);
            goto done;
        }
    }
    rc = 0;
done:
    free(names);
    json_decref(root);
    return rc;
}

int st_set_open_dir(st_set_t *set, const char *dir) {
    memset(set, 0, sizeof *set);
    struct stat sb;
    if (stat(dir, &sb)) return err_set("%s: cannot open: %s", dir, strerror(errno));
    if (S_ISREG(sb.st_mode)) { // a single .safetensors file given directly
        set->path = strdup(dir);
        if (!set->path || st_set_add_file(set, dir)) goto fail;
        return 0;
    }
    char *single = st_join(dir, "model.safetensors");
    char *index = st_join(dir, "model.safetensors.index.json");
    if (!single || !index) {
        free(single);
        free(index);
        err_set("%s: out of memory", dir);
        goto fail;
    }
    if (stat(single, &sb) == 0) {
        free(index);
        set->path = single;
        if (st_set_add_file(set, single)) goto fail;
        return 0;
    }
    free(single);
    if (stat(index, &sb) == 0) {
        set->path = index;
        if (st_set_open_index(set, dir, index)) goto fail;
        return 0;
    }
    free(index);
    err_set("%s: no model.safetensors or model.safetensors.index.json (expected a Hugging Face "
            "checkpoint directory)", dir);
fail:
    st_set_close(set);
    return -1;
}

void st_set_close(st_set_t *set) {
    for (int i = 0; i < set->n_files; i++) safetensors_close(&set->files[i]);
    free(set->files);
    free(set->path);
    memset(set, 0, sizeof *set);
}

// the tensor and the file that holds it (the first one, in shard order)
static const st_tensor_t *st_set_lookup(const st_set_t *set, const char *name, const safetensors_t **file) {
    for (int i = 0; i < set->n_files; i++) {
        const st_tensor_t *t = safetensors_find(&set->files[i], name);
        if (t) {
            *file = &set->files[i];
            return t;
        }
    }
    err_set("%s: missing tensor %s", set->path ? set->path : "(no checkpoint)", name);
    return NULL;
}

const st_tensor_t *st_set_find(const st_set_t *set, const char *name) {
    const safetensors_t *file;
    return st_set_lookup(set, name, &file);
}

const st_tensor_t *st_set_get(const st_set_t *set, const char *name, int ndim, const int64_t *shape) {
    const safetensors_t *file;
    const st_tensor_t *t = st_set_lookup(set, name, &file);
    if (!t) return NULL;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        st_format_shape(want, sizeof want, ndim, shape);
        st_format_shape(got, sizeof got, t->ndim, t->shape);
        err_set("%s: tensor %s: expected shape %s, found %s", file->path, name, want, got);
        return NULL;
    }
    return t;
}

// ---------------------------------------------------------------------------------------------
// writer

static int st_ptr_cmp(const void *a, const void *b) {
    return strcmp((*(const st_tensor_t *const *)a)->name, (*(const st_tensor_t *const *)b)->name);
}

// header JSON (compact, tensors in `order`, __metadata__ last) padded with spaces to 8 bytes
static char *st_build_header(const char *path, const st_tensor_t *const *order, int n, size_t *len) {
    json_t *root = json_object();
    uint64_t at = 0;
    for (int k = 0; root && k < n; k++) {
        const st_tensor_t *t = order[k];
        json_t *shape = json_array();
        for (int i = 0; i < t->ndim; i++) json_array_append_new(shape, json_integer(t->shape[i]));
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)at));
        json_array_append_new(offs, json_integer((json_int_t)(at + t->nbytes)));
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(ST_DTYPES[st_dtype_index(t->dtype)].name));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, t->name, e)) {
            json_decref(root);
            root = NULL;
        }
        at += t->nbytes;
    }
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    if (root) json_object_set_new(root, "__metadata__", meta);
    else json_decref(meta);
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!s) {
        err_set("%s: cannot build the header (out of memory, or a tensor name that is not UTF-8)", path);
        return NULL;
    }
    size_t n0 = strlen(s), n8 = (n0 + 7) / 8 * 8;
    char *h = malloc(n8 + 1);
    if (!h) {
        free(s);
        err_set("%s: out of memory", path);
        return NULL;
    }
    memcpy(h, s, n0);
    memset(h + n0, ' ', n8 - n0);
    h[n8] = 0;
    free(s);
    *len = n8;
    return h;
}

int safetensors_write(const char *path, const st_tensor_t *tensors, int n) {
    // check the tensors before touching the disk
    if (n < 0) return err_set("%s: negative tensor count %d", path, n);
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = &tensors[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0)
            return err_set("%s: tensor %d has no usable name", path, i);
        if (st_dtype_index(t->dtype) < 0)
            return err_set("%s: tensor %s: dtype %d is not F32, BF16, F16 or I32", path, t->name, (int)t->dtype);
        if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
            return err_set("%s: tensor %s: %d dims (expected 0..%d)", path, t->name, t->ndim, TENSOR_MAX_DIMS);
        uint64_t numel = 1;
        int overflow = 0;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) return err_set("%s: tensor %s: negative dim", path, t->name);
            overflow |= __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel);
        }
        uint64_t need;
        overflow |= __builtin_mul_overflow(numel, (uint64_t)ST_DTYPES[st_dtype_index(t->dtype)].size, &need);
        if (overflow || need != t->nbytes)
            return err_set("%s: tensor %s: nbytes %zu does not match its dtype and shape (%llu)", path,
                           t->name, t->nbytes, (unsigned long long)need);
        if (t->nbytes && !t->data) return err_set("%s: tensor %s: no data", path, t->name);
    }
    const st_tensor_t **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return err_set("%s: out of memory", path);
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, st_ptr_cmp);
    for (int k = 1; k < n; k++)
        if (strcmp(order[k]->name, order[k - 1]->name) == 0) {
            err_set("%s: tensor %s given twice", path, order[k]->name);
            free(order);
            return -1;
        }
    size_t hlen;
    char *header = st_build_header(path, order, n, &hlen);
    if (!header) {
        free(order);
        return -1;
    }

    // write next to the target, then rename, so a crash never leaves a half-written checkpoint
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    FILE *f = NULL;
    if (tmp) {
        snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
        f = fopen(tmp, "wb");
    }
    if (!f) {
        int e = errno;
        free(tmp);
        free(header);
        free(order);
        return err_set("%s: cannot create: %s", path, strerror(e));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (int k = 0; ok && k < n; k++) {
        const st_tensor_t *t = order[k];
        ok = fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    }
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = 0;
    }
    if (!ok) unlink(tmp);
    free(tmp);
    free(header);
    free(order);
    if (!ok) return err_set("%s: write failed: %s", path, strerror(e));
    return 0;
}
