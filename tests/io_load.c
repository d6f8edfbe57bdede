// io_load DIR: loads a Qwen3 checkpoint directory the way a model loader does and reports the first
// error, for the bad-input tests (tests/io_bad.sh runs it under ASan + UBSan).
//   DIR/config.json            qwen3_config_load
//   DIR/model.safetensors(...) st_set_open_dir, then st_set_get of every tensor the config implies
//   DIR/tokenizer.json         tokenizer_load (only when the file exists)
// On success prints "ok: <tensors> tensors, <params> parameters" and exits 0; on failure prints
// "error: <err_msg()>" on stderr and exits 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/err.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

static int fail(void) {
    fprintf(stderr, "error: %s\n", err_msg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: io_load DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    qwen3_config_t c;
    if (qwen3_config_load(&c, path)) return fail();

    st_set_t set;
    if (st_set_open_dir(&set, dir)) return fail();
    int64_t C = c.hidden_size, I = c.intermediate_size, D = c.head_dim, V = c.vocab_size;
    int64_t Q = (int64_t)c.num_attention_heads * D, K = (int64_t)c.num_key_value_heads * D;
    struct {
        const char *name;
        int ndim;
        int64_t shape[2];
    } layer[] = {
        {"input_layernorm.weight", 1, {C}},          {"self_attn.q_proj.weight", 2, {Q, C}},
        {"self_attn.k_proj.weight", 2, {K, C}},      {"self_attn.v_proj.weight", 2, {K, C}},
        {"self_attn.o_proj.weight", 2, {C, Q}},      {"self_attn.q_norm.weight", 1, {D}},
        {"self_attn.k_norm.weight", 1, {D}},         {"post_attention_layernorm.weight", 1, {C}},
        {"mlp.gate_proj.weight", 2, {I, C}},         {"mlp.up_proj.weight", 2, {I, C}},
        {"mlp.down_proj.weight", 2, {C, I}},
    };
    int n = 0;
    int64_t params = 0;
    const st_tensor_t *t;
    int64_t emb[2] = {V, C}, norm[1] = {C};
    if (!(t = st_set_get(&set, "model.embed_tokens.weight", 2, emb))) goto bad;
    n++, params += V * C;
    for (int l = 0; l < c.num_hidden_layers; l++)
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, layer[i].name);
            if (!(t = st_set_get(&set, name, layer[i].ndim, layer[i].shape))) goto bad;
            n++, params += layer[i].shape[0] * (layer[i].ndim == 2 ? layer[i].shape[1] : 1);
        }
    if (!(t = st_set_get(&set, "model.norm.weight", 1, norm))) goto bad;
    n++, params += C;
    if (!c.tie_word_embeddings) {
        if (!(t = st_set_get(&set, "lm_head.weight", 2, emb))) goto bad;
        n++, params += V * C;
    }
    st_set_close(&set);

    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        tokenizer_t *tok = tokenizer_load(path);
        if (!tok) return fail();
        tokenizer_free(tok);
    }
    printf("ok: %d tensors, %lld parameters\n", n, (long long)params);
    return 0;
bad:
    fail();
    st_set_close(&set);
    return 1;
}
