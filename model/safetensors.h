// safetensors: reader (mmap, header validated) and writer.
//
// Format: 8-byte little-endian header length n, then n bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the data buffer; offsets are relative to the start of the buffer.
// A checkpoint directory holds model.safetensors, or shards listed in model.safetensors.index.json.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../kernels/kernels.h"

typedef struct {
    char *name;
    dtype_t dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data; // into the mapping (read) or caller memory (write)
    size_t nbytes;
} st_tensor_t;

typedef struct {
    char *path;
    void *map;
    size_t map_len;
    int n;
    st_tensor_t *tensors;
} safetensors_t;

// maps and validates one file: header length within the file, JSON well-formed, known dtype,
// offsets in bounds, contiguous and matching dtype * shape. Errors name the file.
int safetensors_open(safetensors_t *st, const char *path);
void safetensors_close(safetensors_t *st);
const st_tensor_t *safetensors_find(const safetensors_t *st, const char *name);

// all tensors of a checkpoint directory (single file or sharded with an index)
typedef struct {
    char *path; // model.safetensors, or model.safetensors.index.json when sharded (for messages)
    int n_files;
    safetensors_t *files;
} st_set_t;
int st_set_open_dir(st_set_t *set, const char *dir);
void st_set_close(st_set_t *set);
// finds a tensor by name; when missing: NULL and err_set("<set->path>: missing tensor <name>")
const st_tensor_t *st_set_find(const st_set_t *set, const char *name);
// finds a tensor and checks dtype-independent shape; error names the file, tensor, expected and found
const st_tensor_t *st_set_get(const st_set_t *set, const char *name, int ndim, const int64_t *shape);

// writes tensors (sorted by name, F32/BF16/F16/I32) with {"__metadata__":{"format":"pt"}}
int safetensors_write(const char *path, const st_tensor_t *tensors, int n);
