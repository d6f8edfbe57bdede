// trustee init-model: writes a randomly initialised Qwen3 checkpoint in Hugging Face layout
// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).
//
// Initialisation as HF Qwen3 (_init_weights, initializer_range 0.02): every matrix, the embedding
// included, ~ normal(0, 0.02); every RMSNorm weight = 1. The normals come from a counter-based
// generator: element i of tensor k is a pure function of (seed, k, i), so the bytes written do not
// depend on the number of threads.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

static const char *INIT_USAGE =
    "usage: trustee init-model --out DIR --seed S [options]\n"
    "\n"
    "Writes a randomly initialised Qwen3 checkpoint (Hugging Face layout) to DIR:\n"
    "config.json, model.safetensors, tokenizer.json, tokenizer_config.json (the Qwen3 tokenizer,\n"
    "vocab 151936). Weights ~ normal(0, 0.02), norms = 1 (q/k norms: --qk-norm); the same seed gives\n"
    "the same bytes.\n"
    "\n"
    "options:\n"
    "  --out DIR            output directory (created; must be empty unless --force)\n"
    "  --seed S             random seed (an integer >= 0)\n"
    "  --hidden H           hidden size (default 256)\n"
    "  --layers L           decoder layers (default 4)\n"
    "  --heads Q            query heads (default 4)\n"
    "  --kv-heads K         key/value heads, divides Q (default 2)\n"
    "  --head-dim D         head dimension, even (default 64)\n"
    "  --intermediate I     MLP intermediate size (default 768)\n"
    "  --rope-theta T       RoPE base (default 1000000, Qwen3's)\n"
    "  --qk-norm W          initial weight of q_norm and k_norm (default 1, as HF); with both at W the\n"
    "                       attention logits can reach W^2 sqrt(head_dim) (for the laptop policy,\n"
    "                       W = 2 or 3 made copying slower to learn, not faster)\n"
    "  --tie                lm_head shares the embedding (the default)\n"
    "  --untie              write a separate lm_head.weight\n"
    "  --dtype f32|bf16     weight dtype in model.safetensors (default bf16)\n"
    "  --force              overwrite the files in a non-empty DIR\n";

// ---------------------------------------------------------------------------------------------
// counter-based normal(0, 1): splitmix64's finalizer as a hash, Box-Muller on 53-bit uniforms

static inline uint64_t init_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// the stream key of tensor k for a seed
static uint64_t init_key(uint64_t seed, uint64_t k) {
    return init_mix(init_mix(seed + 0x9e3779b97f4a7c15ull) ^ (k * 0xd1b54a32d192ed03ull + 1));
}

// elements 2p and 2p+1 of the stream: the cos and sin halves of one Box-Muller pair
static inline void init_normal_pair(uint64_t key, uint64_t p, double *z0, double *z1) {
    uint64_t a = init_mix(key + (2 * p + 1) * 0x9e3779b97f4a7c15ull);
    uint64_t b = init_mix(key + (2 * p + 2) * 0x9e3779b97f4a7c15ull);
    double u1 = ((double)(a >> 11) + 1.0) * 0x1.0p-53; // (0, 1]
    double u2 = (double)(b >> 11) * 0x1.0p-53;         // [0, 1)
    double r = sqrt(-2.0 * log(u1));
    double th = 2.0 * M_PI * u2;
    *z0 = r * cos(th);
    *z1 = r * sin(th);
}

static inline void init_store(void *buf, dtype_t dt, int64_t i, float v) {
    if (dt == DTYPE_BF16) ((uint16_t *)buf)[i] = f32_to_bf16(v);
    else ((float *)buf)[i] = v;
}

// fills n elements with std * normal(0, 1) from stream `key`
static void init_fill_normal(void *buf, dtype_t dt, int64_t n, uint64_t key, double std) {
    int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pairs; p++) {
        double z0, z1;
        init_normal_pair(key, (uint64_t)p, &z0, &z1);
        init_store(buf, dt, 2 * p, (float)(std * z0));
        if (2 * p + 1 < n) init_store(buf, dt, 2 * p + 1, (float)(std * z1));
    }
}

static void init_fill_const(void *buf, dtype_t dt, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) init_store(buf, dt, i, v);
}

// ---------------------------------------------------------------------------------------------
// the tensor list of a Qwen3 checkpoint (HF names, shapes [out, in])

// 1-D tensors are exactly the RMSNorm weights (ones); 2-D ones are matrices (normal(0, 0.02))
typedef struct {
    st_tensor_t *t;
    int n, cap;
} init_list_t;

static int init_add(init_list_t *l, int64_t d0, int64_t d1, const char *fmt, int layer) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        st_tensor_t *nt = realloc(l->t, (size_t)l->cap * sizeof *nt);
        if (!nt) return err_set("out of memory");
        l->t = nt;
    }
    st_tensor_t *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    t->name = strdup(name);
    if (!t->name) return err_set("out of memory");
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    l->n++;
    return 0;
}

static int init_build_list(init_list_t *l, const qwen3_config_t *c) {
    int64_t C = c->hidden_size, I = c->intermediate_size, D = c->head_dim, V = c->vocab_size;
    int64_t Q = (int64_t)c->num_attention_heads * D, K = (int64_t)c->num_key_value_heads * D;
    if (init_add(l, V, C, "model.embed_tokens.weight", 0)) return -1;
    for (int i = 0; i < c->num_hidden_layers; i++) {
        if (init_add(l, C, 0, "model.layers.%d.input_layernorm.weight", i) ||
            init_add(l, Q, C, "model.layers.%d.self_attn.q_proj.weight", i) ||
            init_add(l, K, C, "model.layers.%d.self_attn.k_proj.weight", i) ||
            init_add(l, K, C, "model.layers.%d.self_attn.v_proj.weight", i) ||
            init_add(l, C, Q, "model.layers.%d.self_attn.o_proj.weight", i) ||
            init_add(l, D, 0, "model.layers.%d.self_attn.q_norm.weight", i) ||
            init_add(l, D, 0, "model.layers.%d.self_attn.k_norm.weight", i) ||
            init_add(l, C, 0, "model.layers.%d.post_attention_layernorm.weight", i) ||
            init_add(l, I, C, "model.layers.%d.mlp.gate_proj.weight", i) ||
            init_add(l, I, C, "model.layers.%d.mlp.up_proj.weight", i) ||
            init_add(l, C, I, "model.layers.%d.mlp.down_proj.weight", i))
            return -1;
    }
    if (init_add(l, C, 0, "model.norm.weight", 0)) return -1;
    if (!c->tie_word_embeddings && init_add(l, V, C, "lm_head.weight", 0)) return -1;
    return 0;
}

static void init_free_list(init_list_t *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->t[i].name);
        free((void *)l->t[i].data);
    }
    free(l->t);
    memset(l, 0, sizeof *l);
}

// ---------------------------------------------------------------------------------------------
// output directory and files




// "42,043,648"
static const char *init_commas(int64_t v, char *buf) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = 0;
    return buf;
}

// ---------------------------------------------------------------------------------------------

// reads an integer option that must be > 0 (>= 0 when allow_zero)
static int init_opt(args_t *a, const char *name, long def, int allow_zero, int *out) {
    long v;
    if (args_int(a, name, def, &v)) return -1;
    if (v < (allow_zero ? 0 : 1) || v > 0x7fffffff)
        return err_set("option --%s: expected %s integer, found %ld", name, allow_zero ? "a non-negative" : "a positive", v);
    *out = (int)v;
    return 0;
}

int cmd_init_model(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(INIT_USAGE, stdout);
        return 0;
    }
    int err = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, inter = 0;
    long seed = LONG_MIN;
    double rope_theta = 1e6, qk_norm = 1.0;
    const char *out = args_str(&a, "out", NULL, &err);
    const char *dtype_s = err ? NULL : args_str(&a, "dtype", "bf16", &err);
    if (err || init_opt(&a, "hidden", 256, 0, &hidden) || init_opt(&a, "layers", 4, 0, &layers) ||
        init_opt(&a, "heads", 4, 0, &heads) || init_opt(&a, "kv-heads", 2, 0, &kv_heads) ||
        init_opt(&a, "head-dim", 64, 0, &head_dim) || init_opt(&a, "intermediate", 768, 0, &inter) ||
        args_int(&a, "seed", LONG_MIN, &seed) || args_float(&a, "rope-theta", 1e6, &rope_theta) ||
        args_float(&a, "qk-norm", 1.0, &qk_norm))
        return cmd_fail("init-model");
    if (!(rope_theta > 1) || !isfinite(rope_theta)) {
        err_set("option --rope-theta: expected a number > 1, found %g", rope_theta);
        return cmd_fail("init-model");
    }
    if (!(qk_norm > 0 && qk_norm <= 100)) {
        err_set("option --qk-norm: expected a number in (0, 100], found %g", qk_norm);
        return cmd_fail("init-model");
    }
    int tie = args_flag(&a, "tie"), untie = args_flag(&a, "untie"), force = args_flag(&a, "force");
    if (args_finish(&a)) return cmd_fail("init-model");
    if (!out) {
        fprintf(stderr, "trustee init-model: error: missing --out DIR\n\n%s", INIT_USAGE);
        return 2;
    }
    if (seed == LONG_MIN) {
        fprintf(stderr, "trustee init-model: error: missing --seed S (an integer >= 0; the same seed "
                        "gives the same weights)\n");
        return 2;
    }
    if (seed < 0) {
        err_set("option --seed: expected an integer >= 0, found %ld", seed);
        return cmd_fail("init-model");
    }
    if (heads % kv_heads) {
        err_set("--heads %d must be a multiple of --kv-heads %d", heads, kv_heads);
        return cmd_fail("init-model");
    }
    if (head_dim % 2) {
        err_set("--head-dim must be even for RoPE, found %d", head_dim);
        return cmd_fail("init-model");
    }
    if (tie && untie) {
        err_set("--tie and --untie contradict each other");
        return cmd_fail("init-model");
    }
    dtype_t dt;
    if (strcmp(dtype_s, "bf16") == 0) dt = DTYPE_BF16;
    else if (strcmp(dtype_s, "f32") == 0) dt = DTYPE_F32;
    else {
        err_set("option --dtype: expected f32 or bf16, found '%s'", dtype_s);
        return cmd_fail("init-model");
    }

    qwen3_config_t cfg = {
        .vocab_size = 151936,
        .hidden_size = hidden,
        .intermediate_size = inter,
        .num_hidden_layers = layers,
        .num_attention_heads = heads,
        .num_key_value_heads = kv_heads,
        .head_dim = head_dim,
        .max_position_embeddings = 40960,
        .rms_norm_eps = 1e-6,
        .rope_theta = rope_theta,
        .tie_word_embeddings = !untie,
        .bos_token_id = 151643,
        .eos_token_id = 151645,
    };
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s", dt == DTYPE_BF16 ? "bfloat16" : "float32");
    if (qwen3_config_validate(&cfg, "init-model options")) return cmd_fail("init-model");

    int nonempty = checkpoint_dir_nonempty(out);
    if (nonempty < 0) return cmd_fail("init-model");
    if (nonempty && !force) {
        err_set("%s is not empty (expected a new or empty directory; --force overwrites)", out);
        return cmd_fail("init-model");
    }
    if (checkpoint_mkdirs(out)) return cmd_fail("init-model");

    // tensors: allocate and fill (tensor k draws from stream k of the seed)
    init_list_t list = {0};
    if (init_build_list(&list, &cfg)) {
        init_free_list(&list);
        return cmd_fail("init-model");
    }
    int64_t n_params = 0;
    size_t n_bytes = 0;
    for (int k = 0; k < list.n; k++) {
        st_tensor_t *t = &list.t[k];
        t->dtype = dt;
        int64_t numel = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
        t->nbytes = (size_t)numel * dtype_size(dt);
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (!buf) {
            err_set("out of memory for %s (%zu bytes)", t->name, t->nbytes);
            init_free_list(&list);
            return cmd_fail("init-model");
        }
        if (t->ndim == 1) // every 1-D tensor is an RMSNorm weight
            init_fill_const(buf, dt, numel, strstr(t->name, ".q_norm.") || strstr(t->name, ".k_norm.") ? (float)qk_norm : 1.0f);
        else init_fill_normal(buf, dt, numel, init_key((uint64_t)seed, (uint64_t)k), 0.02);
        t->data = buf;
        n_params += numel;
        n_bytes += t->nbytes;
    }

    char path[4200], num[32];
    printf("Qwen3: hidden %d, layers %d, heads %d (kv %d), head_dim %d, intermediate %d, vocab %d, %s, "
           "%s, seed %ld\n",
           hidden, layers, heads, kv_heads, head_dim, inter, cfg.vocab_size,
           cfg.tie_word_embeddings ? "tied embeddings" : "separate lm_head", dtype_s, seed);
    printf("parameters: %s\n", init_commas(n_params, num));

    snprintf(path, sizeof path, "%s/config.json", out);
    int rc = qwen3_config_write(&cfg, path);
    if (!rc) printf("wrote %s\n", path);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (!rc) rc = safetensors_write(path, list.t, list.n);
    if (!rc) printf("wrote %s (%d tensors, %.1f MB)\n", path, list.n, n_bytes / 1e6);
    init_free_list(&list);
    if (!rc) rc = checkpoint_write_tokenizer(NULL, out);
    if (!rc) printf("wrote %s/tokenizer.json\nwrote %s/tokenizer_config.json\n", out, out);
    if (rc) return cmd_fail("init-model");
    return 0;
}
