// tokenizer_load_dir: DIR/tokenizer.json, or the Qwen3 tokenizer embedded in the binary.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../kernels/err.h"
#include "embedded.h"
#include "tokenizer.h"

tokenizer_t *tokenizer_load_dir(const char *dir, int fallback) {
    if (dir) {
        size_t dl = strlen(dir);
        char *path = malloc(dl + 32);
        if (!path) {
            err_set("out of memory");
            return NULL;
        }
        snprintf(path, dl + 32, "%s%stokenizer.json", dir, dl && dir[dl - 1] == '/' ? "" : "/");
        struct stat sb;
        if (!fallback || stat(path, &sb) == 0) {
            tokenizer_t *tok = tokenizer_load(path);
            free(path);
            return tok;
        }
        free(path);
    }
    size_t len = 0;
    const char *json = embedded_file("qwen3-tokenizer/tokenizer.json", &len);
    if (!json) {
        err_set("this build has no embedded tokenizer (model/data/qwen3-tokenizer/tokenizer.json)");
        return NULL;
    }
    return tokenizer_load_buffer(json, len, "built-in qwen3-tokenizer/tokenizer.json");
}
