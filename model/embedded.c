#include "embedded.h"

#include <string.h>

extern const char embedded_qwen3_tokenizer_json[], embedded_qwen3_tokenizer_json_end[];
extern const char embedded_qwen3_tokenizer_config_json[], embedded_qwen3_tokenizer_config_json_end[];

const char *embedded_file(const char *name, size_t *len) {
    if (strcmp(name, "qwen3-tokenizer/tokenizer.json") == 0) {
        *len = (size_t)(embedded_qwen3_tokenizer_json_end - embedded_qwen3_tokenizer_json);
        return embedded_qwen3_tokenizer_json;
    }
    if (strcmp(name, "qwen3-tokenizer/tokenizer_config.json") == 0) {
        *len = (size_t)(embedded_qwen3_tokenizer_config_json_end - embedded_qwen3_tokenizer_config_json);
        return embedded_qwen3_tokenizer_config_json;
    }
    return NULL;
}
