// Data files embedded in the binary (model/embedded.S): the Qwen3 tokenizer that the default run,
// `trustee init-model` and every command without --tokenizer use.
#pragma once
#include <stddef.h>

// returns the bytes of an embedded file by its name under model/data ("qwen3-tokenizer/tokenizer.json",
// "qwen3-tokenizer/tokenizer_config.json"); NULL when unknown. *len excludes the trailing NUL.
const char *embedded_file(const char *name, size_t *len);
