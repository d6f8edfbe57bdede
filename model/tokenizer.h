// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (Qwen2/Qwen3 family).
//
// encode: NFC (utf8proc) -> split on added/special tokens (matched before anything else) ->
// pre-tokenizer regex (Oniguruma, the engine HF tokenizers uses) -> byte-level mapping -> BPE merges.
// Output ids are identical to HF `tokenizers` with add_special_tokens=False.
#pragma once
#include <stddef.h>
#include <stdint.h>

// growable id vector, used by tokenizer and chat
typedef struct {
    int32_t *ids;
    int n, cap;
} ids_t;
int ids_push(ids_t *v, int32_t id);
int ids_append(ids_t *v, const int32_t *ids, int n);
void ids_free(ids_t *v);

typedef struct tokenizer tokenizer_t;

// loads tokenizer.json from a file, or from memory (`name` is used in error messages)
tokenizer_t *tokenizer_load(const char *path);
tokenizer_t *tokenizer_load_buffer(const char *json, size_t len, const char *name);
void tokenizer_free(tokenizer_t *tok);

// appends the ids of UTF-8 text to out. Added tokens (e.g. <|im_end|>) inside text are matched.
// Thread-safe (concurrent calls on one tokenizer are fine). A byte that is not valid UTF-8 becomes
// its own byte token and the valid text around it is encoded as separate pieces.
int tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len, ids_t *out);
// decodes ids to bytes (NUL-terminated, *len without the NUL); caller frees *text
int tokenizer_decode(const tokenizer_t *tok, const int32_t *ids, int n, char **text, size_t *len);
// raw bytes of one token (byte-level mapping undone); NULL for an id out of range
const char *tokenizer_token_bytes(const tokenizer_t *tok, int32_t id, size_t *len);
// id of an exact token string (vocab or added token, e.g. "<|im_end|>"); -1 when unknown
int32_t tokenizer_token_id(const tokenizer_t *tok, const char *token);
// number of ids (vocab + added tokens): max id + 1
int tokenizer_n_ids(const tokenizer_t *tok);

// streaming decode: feed ids one at a time, get only complete UTF-8 characters back;
// bytes of a character split across tokens are held until it completes.
typedef struct {
    char pending[8];
    int n_pending;
} tok_stream_t;
// appends complete text for `id` into out (cap bytes); returns bytes written or -1
int tokenizer_stream_decode(const tokenizer_t *tok, tok_stream_t *s, int32_t id, char *out, size_t cap);
// flushes held bytes (invalid/incomplete UTF-8 at the end) as-is
int tokenizer_stream_flush(tok_stream_t *s, char *out, size_t cap);

// The tokenizer of a checkpoint directory: DIR/tokenizer.json. When dir is NULL, or when the file
// is absent and fallback is 1, the Qwen3 tokenizer embedded in the binary (model/embedded.h).
tokenizer_t *tokenizer_load_dir(const char *dir, int fallback);
