// model I/O: safetensors reader/writer and config.json against the independent reference checkpoint
// tests/data/qwen3-tiny (written by torch / the safetensors package, see its README.md).
//   - the reader finds the 24 tensors with the names and shapes the README lists; every BF16 value,
//     widened, equals the F32 file's value bit for bit
//   - the writer, given those tensors in any order, reproduces both reference files byte for byte
//   - other dtypes, 0-d and empty tensors, odd names; sharded checkpoints with an index
//   - config.json: parse, defaults, write + parse back, and the error messages
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/err.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "test.h"

#define TINY TEST_DATA_DIR "/qwen3-tiny"

// the tensors of qwen3-tiny as its README lists them (name, shape); layer tensors for layers 0 and 1
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
} spec_t;
static const spec_t TINY_GLOBAL[] = {
    {"model.embed_tokens.weight", 2, {1024, 64}},
    {"model.norm.weight", 1, {64}},
};
static const spec_t TINY_LAYER[] = {
    {"input_layernorm.weight", 1, {64}},
    {"self_attn.q_proj.weight", 2, {128, 64}},
    {"self_attn.k_proj.weight", 2, {64, 64}},
    {"self_attn.v_proj.weight", 2, {64, 64}},
    {"self_attn.o_proj.weight", 2, {64, 128}},
    {"self_attn.q_norm.weight", 1, {32}},
    {"self_attn.k_norm.weight", 1, {32}},
    {"post_attention_layernorm.weight", 1, {64}},
    {"mlp.gate_proj.weight", 2, {192, 64}},
    {"mlp.up_proj.weight", 2, {192, 64}},
    {"mlp.down_proj.weight", 2, {64, 192}},
};
#define N_LAYER_SPECS ((int)(sizeof TINY_LAYER / sizeof TINY_LAYER[0]))

// all 24 specs of the tiny model, names filled into `names`
static int tiny_specs(spec_t *out, char names[][96]) {
    int n = 0;
    for (int g = 0; g < 2; g++) out[n++] = TINY_GLOBAL[g];
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < N_LAYER_SPECS; i++) {
            snprintf(names[n], 96, "model.layers.%d.%s", l, TINY_LAYER[i].name);
            out[n] = TINY_LAYER[i];
            out[n].name = names[n];
            n++;
        }
    return n;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static int write_all(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static float widen_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int test_tiny_read(void) {
    safetensors_t bf, f32;
    REQUIRE(safetensors_open(&bf, TINY "/model.safetensors") == 0, "%s", err_msg());
    REQUIRE(safetensors_open(&f32, TINY "/model-f32.safetensors") == 0, "%s", err_msg());
    CHECK(bf.n == 24 && f32.n == 24, "tensor counts %d %d (2 + 2 layers x 11)", bf.n, f32.n);
    spec_t specs[32];
    char names[32][96];
    int n = tiny_specs(specs, names);
    int64_t params = 0;
    for (int k = 0; k < n; k++) {
        const st_tensor_t *a = safetensors_find(&bf, specs[k].name), *b = safetensors_find(&f32, specs[k].name);
        CHECK(a && b, "%s missing", specs[k].name);
        if (!a || !b) continue;
        CHECK(a->dtype == DTYPE_BF16 && b->dtype == DTYPE_F32, "%s dtypes", specs[k].name);
        CHECK(a->ndim == specs[k].ndim && b->ndim == specs[k].ndim, "%s ndim", specs[k].name);
        int64_t numel = 1;
        for (int d = 0; d < specs[k].ndim; d++) {
            CHECK(a->shape[d] == specs[k].shape[d] && b->shape[d] == specs[k].shape[d], "%s dim %d", specs[k].name, d);
            numel *= specs[k].shape[d];
        }
        params += numel;
        CHECK(a->nbytes == (size_t)numel * 2 && b->nbytes == (size_t)numel * 4, "%s nbytes", specs[k].name);
        const uint16_t *x = a->data;
        const float *y = b->data;
        int64_t bad = 0;
        for (int64_t i = 0; i < numel; i++) {
            float w = widen_bf16(x[i]);
            bad += memcmp(&w, &y[i], 4) != 0;
        }
        CHECK(bad == 0, "%s: %lld BF16 values differ from the F32 file", specs[k].name, (long long)bad);
    }
    CHECK(params == 188864, "parameters %lld (README: 188,864)", (long long)params);
    CHECK(safetensors_find(&bf, "lm_head.weight") == NULL, "tied model has no lm_head");
    CHECK(safetensors_find(&bf, "__metadata__") == NULL, "metadata is not a tensor");
    safetensors_close(&bf);
    safetensors_close(&f32);
    return 0;
}

static int test_set(void) {
    st_set_t set;
    REQUIRE(st_set_open_dir(&set, TINY) == 0, "%s", err_msg());
    CHECK(set.n_files == 1, "files %d", set.n_files);
    spec_t specs[32];
    char names[32][96];
    int n = tiny_specs(specs, names);
    for (int k = 0; k < n; k++)
        CHECK(st_set_get(&set, specs[k].name, specs[k].ndim, specs[k].shape) != NULL, "%s", err_msg());
    int64_t wrong[2] = {64, 1024};
    CHECK(st_set_get(&set, "model.embed_tokens.weight", 2, wrong) == NULL, "wrong shape accepted");
    CHECK(strcmp(err_msg(), TINY "/model.safetensors: tensor model.embed_tokens.weight: expected shape "
                            "[64, 1024], found [1024, 64]") == 0, "message: %s", err_msg());
    CHECK(st_set_get(&set, "model.norm.weight", 2, wrong) == NULL, "wrong ndim accepted");
    CHECK(strstr(err_msg(), "expected shape [64, 1024], found [64]") != NULL, "message: %s", err_msg());
    CHECK(st_set_find(&set, "lm_head.weight") == NULL, "lm_head found in a tied model");
    CHECK(strcmp(err_msg(), TINY "/model.safetensors: missing tensor lm_head.weight") == 0, "message: %s", err_msg());
    st_set_close(&set);
    // a single file given directly works too
    REQUIRE(st_set_open_dir(&set, TINY "/model-f32.safetensors") == 0, "%s", err_msg());
    CHECK(st_set_find(&set, "model.norm.weight") && st_set_find(&set, "model.norm.weight")->dtype == DTYPE_F32, "f32 file");
    st_set_close(&set);
    CHECK(st_set_open_dir(&set, TEST_TMP_DIR "/no-such-dir") == -1, "missing dir opened");
    CHECK(strstr(err_msg(), "no-such-dir: cannot open") != NULL, "message: %s", err_msg());
    return 0;
}

// rewrites both reference files with our writer (tensors given in reverse order) and compares bytes
static int test_writer_bytes(void) {
    const char *files[2] = {"model.safetensors", "model-f32.safetensors"};
    for (int f = 0; f < 2; f++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", TINY, files[f]);
        snprintf(dst, sizeof dst, "%s/rewritten-%s", TEST_TMP_DIR, files[f]);
        safetensors_t st;
        REQUIRE(safetensors_open(&st, src) == 0, "%s", err_msg());
        st_tensor_t rev[32];
        for (int i = 0; i < st.n; i++) rev[i] = st.tensors[st.n - 1 - i];
        REQUIRE(safetensors_write(dst, rev, st.n) == 0, "%s", err_msg());
        safetensors_close(&st);
        CHECK(same_bytes(src, dst), "%s rewritten differs from the reference bytes", files[f]);
    }
    return 0;
}

static int test_writer_misc(void) {
    const char *path = TEST_TMP_DIR "/misc.safetensors";
    float scalar = 3.5f;
    uint16_t half[6] = {0x3c00, 0x4000, 0xc000, 0x0001, 0x7bff, 0x8000};
    int32_t ints[4] = {-1, 0, 7, 2147483647};
    st_tensor_t t[4] = {
        {.name = "scalar", .dtype = DTYPE_F32, .ndim = 0, .data = &scalar, .nbytes = 4},
        {.name = "h\"alf/\xc3\xbc", .dtype = DTYPE_F16, .ndim = 3, .shape = {1, 2, 3}, .data = half, .nbytes = 12},
        {.name = "ids", .dtype = DTYPE_I32, .ndim = 4, .shape = {2, 1, 2, 1}, .data = ints, .nbytes = 16},
        {.name = "empty", .dtype = DTYPE_BF16, .ndim = 2, .shape = {0, 3}, .data = NULL, .nbytes = 0},
    };
    REQUIRE(safetensors_write(path, t, 4) == 0, "%s", err_msg());
    safetensors_t st;
    REQUIRE(safetensors_open(&st, path) == 0, "%s", err_msg());
    CHECK(st.n == 4, "n %d", st.n);
    const unsigned char *m = st.map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    CHECK(st.map_len == 8 + hlen + 4 + 12 + 16, "file size %zu", st.map_len);
    const st_tensor_t *s = safetensors_find(&st, "scalar");
    CHECK(s && s->ndim == 0 && *(const float *)s->data == 3.5f, "scalar");
    const st_tensor_t *h = safetensors_find(&st, "h\"alf/\xc3\xbc");
    CHECK(h && h->dtype == DTYPE_F16 && h->ndim == 3 && h->shape[2] == 3 && memcmp(h->data, half, 12) == 0, "f16");
    const st_tensor_t *d = safetensors_find(&st, "ids");
    CHECK(d && d->dtype == DTYPE_I32 && d->ndim == 4 && memcmp(d->data, ints, 16) == 0, "i32");
    const st_tensor_t *e = safetensors_find(&st, "empty");
    CHECK(e && e->nbytes == 0 && e->shape[0] == 0 && e->shape[1] == 3, "empty");
    // sorted by name in the data region: empty (0 bytes), h"alf (12), ids (16), scalar (4)
    CHECK(h && d && s && (const char *)d->data == (const char *)h->data + 12 &&
          (const char *)s->data == (const char *)d->data + 16, "layout not in name order");
    safetensors_close(&st);

    st_tensor_t dup[2] = {t[0], t[0]};
    CHECK(safetensors_write(path, dup, 2) == -1 && strstr(err_msg(), "tensor scalar given twice"), "dup: %s", err_msg());
    st_tensor_t badn = t[1];
    badn.nbytes = 10;
    CHECK(safetensors_write(path, &badn, 1) == -1 && strstr(err_msg(), "does not match"), "nbytes: %s", err_msg());
    CHECK(safetensors_write(TEST_TMP_DIR "/no/such/dir/x.safetensors", t, 1) == -1 &&
          strstr(err_msg(), "cannot create"), "bad path: %s", err_msg());
    return 0;
}

// splits the tiny model into two shards plus an index, as HF's save_pretrained does for big models
static int test_shards(void) {
    const char *dir = TEST_TMP_DIR "/sharded";
    mkdir(dir, 0777);
    safetensors_t st;
    REQUIRE(safetensors_open(&st, TINY "/model.safetensors") == 0, "%s", err_msg());
    st_tensor_t a[32], b[32];
    int na = 0, nb = 0;
    char index[8192];
    size_t k = (size_t)snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": 377728},\n \"weight_map\": {");
    for (int i = 0; i < st.n; i++) {
        int first = strstr(st.tensors[i].name, "layers.1.") == NULL;
        if (first) a[na++] = st.tensors[i];
        else b[nb++] = st.tensors[i];
        k += (size_t)snprintf(index + k, sizeof index - k, "%s\n  \"%s\": \"model-0000%d-of-00002.safetensors\"",
                              i ? "," : "", st.tensors[i].name, first ? 1 : 2);
    }
    snprintf(index + k, sizeof index - k, "}}\n");
    char p[512];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    REQUIRE(safetensors_write(p, a, na) == 0, "%s", err_msg());
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    REQUIRE(safetensors_write(p, b, nb) == 0, "%s", err_msg());
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    REQUIRE(write_all(p, index) == 0, "cannot write %s", p);

    st_set_t set;
    REQUIRE(st_set_open_dir(&set, dir) == 0, "%s", err_msg());
    CHECK(set.n_files == 2, "files %d", set.n_files);
    spec_t specs[32];
    char names[32][96];
    int n = tiny_specs(specs, names);
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = st_set_get(&set, specs[i].name, specs[i].ndim, specs[i].shape);
        const st_tensor_t *ref = safetensors_find(&st, specs[i].name);
        CHECK(t && ref && t->nbytes == ref->nbytes && memcmp(t->data, ref->data, t->nbytes) == 0, "%s: %s",
              specs[i].name, err_msg());
    }
    CHECK(st_set_find(&set, "lm_head.weight") == NULL, "lm_head found");
    CHECK(strcmp(err_msg(), TEST_TMP_DIR "/sharded/model.safetensors.index.json: missing tensor lm_head.weight") == 0,
          "message: %s", err_msg());
    st_set_close(&set);

    // an index that puts a tensor in the wrong shard
    char *swap = strstr(index, "\"model.norm.weight\": \"model-00001");
    REQUIRE(swap != NULL, "index text");
    swap[strlen("\"model.norm.weight\": \"model-0000")] = '2';
    REQUIRE(write_all(p, index) == 0, "cannot write %s", p);
    CHECK(st_set_open_dir(&set, dir) == -1, "wrong shard accepted");
    CHECK(strstr(err_msg(), "model.safetensors.index.json: weight_map lists tensor model.norm.weight in "
                            "model-00002-of-00002.safetensors, which does not hold it") != NULL,
          "message: %s", err_msg());
    // a shard outside the directory
    REQUIRE(write_all(p, "{\"weight_map\": {\"x\": \"../model.safetensors\"}}") == 0, "write");
    CHECK(st_set_open_dir(&set, dir) == -1 && strstr(err_msg(), "weight_map[\"x\"]: expected a shard file name"),
          "message: %s", err_msg());
    safetensors_close(&st);
    return 0;
}

static int expect_config_error(const char *json, const char *want) {
    qwen3_config_t c;
    int rc = qwen3_config_parse(&c, json, strlen(json), "config.json");
    CHECK(rc == -1, "accepted: %s", json);
    CHECK(strcmp(err_msg(), want) == 0, "\n  got:  %s\n  want: %s", err_msg(), want);
    return 0;
}

#define BASE "\"vocab_size\": 1024, \"hidden_size\": 64, \"intermediate_size\": 192, \"num_hidden_layers\": 2, "

static int test_config(void) {
    qwen3_config_t c, d;
    REQUIRE(qwen3_config_load(&c, TINY "/config.json") == 0, "%s", err_msg());
    // the values in tests/data/qwen3-tiny/config.json
    CHECK(c.vocab_size == 1024 && c.hidden_size == 64 && c.intermediate_size == 192, "sizes");
    CHECK(c.num_hidden_layers == 2 && c.num_attention_heads == 4 && c.num_key_value_heads == 2, "heads");
    CHECK(c.head_dim == 32 && c.max_position_embeddings == 256, "head_dim %d", c.head_dim);
    CHECK(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6, "eps %g theta %g", c.rms_norm_eps, c.rope_theta);
    CHECK(c.tie_word_embeddings == 1 && c.bos_token_id == 151643 && c.eos_token_id == 151645, "tie/bos/eos");
    CHECK(strcmp(c.torch_dtype, "bfloat16") == 0, "dtype %s", c.torch_dtype);

    // write + parse back gives the same struct
    REQUIRE(qwen3_config_write(&c, TEST_TMP_DIR "/config.json") == 0, "%s", err_msg());
    REQUIRE(qwen3_config_load(&d, TEST_TMP_DIR "/config.json") == 0, "%s", err_msg());
    CHECK(memcmp(&c, &d, sizeof c) == 0, "config changed through write + load");
    c.rms_norm_eps = 1.0 / 3.0; // a value that needs 17 digits
    c.tie_word_embeddings = 0;
    c.eos_token_id = -1;
    REQUIRE(qwen3_config_write(&c, TEST_TMP_DIR "/config.json") == 0, "%s", err_msg());
    REQUIRE(qwen3_config_load(&d, TEST_TMP_DIR "/config.json") == 0, "%s", err_msg());
    CHECK(memcmp(&c, &d, sizeof c) == 0, "config changed through write + load (2)");

    // defaults and variants seen in real HF configs
    const char *j1 = "{" BASE "\"num_attention_heads\": 4, \"eos_token_id\": [151645, 151643], "
                     "\"rope_theta\": 1000000, \"dtype\": \"float32\", \"rope_scaling\": null}";
    REQUIRE(qwen3_config_parse(&c, j1, strlen(j1), "j1") == 0, "%s", err_msg());
    CHECK(c.num_key_value_heads == 4 && c.head_dim == 16, "defaults kv %d head_dim %d", c.num_key_value_heads, c.head_dim);
    CHECK(c.eos_token_id == 151645 && c.bos_token_id == -1, "eos %d bos %d", c.eos_token_id, c.bos_token_id);
    CHECK(c.rope_theta == 1e6 && c.rms_norm_eps == 1e-6 && c.tie_word_embeddings == 0, "theta/eps/tie defaults");
    CHECK(c.max_position_embeddings == 32768 && strcmp(c.torch_dtype, "float32") == 0, "max_pos/dtype");

    // errors: one message naming the file and the key, saying what was expected and found
    expect_config_error("{\"vocab_size\": 1024,\n \"hidden_size\": }",
                        "config.json: not valid JSON: unexpected token near '}' (line 2, column 17)");
    expect_config_error("[1, 2]", "config.json: expected a JSON object at the top level, found an array");
    expect_config_error("{\"vocab_size\": 1024, \"hidden_size\": \"abc\"}",
                        "config.json: key \"hidden_size\": expected a positive integer, found \"abc\"");
    expect_config_error("{\"vocab_size\": 1024, \"hidden_size\": 64}",
                        "config.json: missing key \"intermediate_size\" (expected a positive integer)");
    expect_config_error("{" BASE "\"num_attention_heads\": 4.0}",
                        "config.json: key \"num_attention_heads\": expected a positive integer, found 4.0");
    expect_config_error("{" BASE "\"num_attention_heads\": -4}",
                        "config.json: key \"num_attention_heads\": expected a positive integer, found -4");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"num_key_value_heads\": 3}",
                        "config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"head_dim\": 33}",
                        "config.json: head_dim must be even for RoPE, found 33");
    expect_config_error("{" BASE "\"num_attention_heads\": 5}",
                        "config.json: no key \"head_dim\", and hidden_size 64 is not a multiple of "
                        "num_attention_heads 5 (expected head_dim to be given)");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"rms_norm_eps\": \"1e-6\"}",
                        "config.json: key \"rms_norm_eps\": expected a positive number, found \"1e-6\"");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"tie_word_embeddings\": 1}",
                        "config.json: key \"tie_word_embeddings\": expected true or false, found 1");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"eos_token_id\": \"</s>\"}",
                        "config.json: key \"eos_token_id\": expected a token id (an integer >= 0, or a list of "
                        "them), found \"</s>\"");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
                        "config.json: key \"rope_scaling\": expected null (RoPE scaling is not supported), found "
                        "{\"rope_type\":\"yarn\",\"factor\":4.0}");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"model_type\": \"qwen2\"}",
                        "config.json: key \"model_type\": expected \"qwen3\" (the only value trustee supports), "
                        "found \"qwen2\"");
    expect_config_error("{" BASE "\"num_attention_heads\": 4, \"attention_bias\": true}",
                        "config.json: key \"attention_bias\": expected false (attention biases are not "
                        "supported), found true");
    expect_config_error("{\"vocab_size\": 1, \"vocab_size\": 2}",
                        "config.json: not valid JSON: duplicate object key near '\"vocab_size\"' (line 1, column 30)");
    CHECK(qwen3_config_load(&c, TEST_TMP_DIR "/missing.json") == -1 &&
          strstr(err_msg(), "missing.json: cannot open: No such file or directory"), "message: %s", err_msg());
    return 0;
}

int main(void) {
    mkdir(TEST_TMP_DIR, 0777);
    if (test_tiny_read() || test_set() || test_writer_bytes() || test_writer_misc() || test_shards() ||
        test_config())
        test_failures++;
    return test_exit("test_io_st");
}
