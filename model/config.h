// Qwen3 model configuration: the keys of a Hugging Face config.json that the runtime uses.
#pragma once
#include <stddef.h>

typedef struct {
    int vocab_size;
    int hidden_size;             // C
    int intermediate_size;       // I
    int num_hidden_layers;       // L
    int num_attention_heads;     // Hq
    int num_key_value_heads;     // Hkv (defaults to Hq when absent)
    int head_dim;                // D (defaults to hidden_size / Hq when absent; may differ from it)
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    int tie_word_embeddings;     // 1: no lm_head.weight, logits use embed_tokens
    int bos_token_id;            // -1 when absent
    int eos_token_id;            // -1 when absent
    char torch_dtype[16];        // "bfloat16", "float32", ... ("" when absent)
} qwen3_config_t;

// parses config.json; `name` is the path used in error messages. Returns 0 or -1 (err_msg()).
int qwen3_config_parse(qwen3_config_t *cfg, const char *json, size_t len, const char *name);
int qwen3_config_load(qwen3_config_t *cfg, const char *path);
// writes an HF-compatible config.json
int qwen3_config_write(const qwen3_config_t *cfg, const char *path);
// checks internal consistency (positive sizes, Hq % Hkv == 0, ...); `name` for messages
int qwen3_config_validate(const qwen3_config_t *cfg, const char *name);
