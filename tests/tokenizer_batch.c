// Encodes many strings in one process, for the differential test against HF tokenizers
// (tests/tokenizer_diff.py). usage: tokenizer_batch TOKENIZER_JSON IN.jsonl OUT.txt
// IN has one JSON string per line; OUT gets one line of space-separated ids per string.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels/err.h"
#include "model/tokenizer.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tokenizer_batch TOKENIZER_JSON IN.jsonl OUT.txt\n");
        return 2;
    }
    tokenizer_t *tok = tokenizer_load(argv[1]);
    if (!tok) { fprintf(stderr, "tokenizer_batch: %s\n", err_msg()); return 1; }
    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[3], "w");
    if (!in || !out) { fprintf(stderr, "tokenizer_batch: cannot open %s or %s\n", argv[2], argv[3]); return 1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int count = 0;
    ids_t ids = {0};
    while ((n = getline(&line, &cap, in)) > 0) {
        json_error_t e;
        json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (!json_is_string(s)) {
            fprintf(stderr, "tokenizer_batch: %s line %d: expected a JSON string (%s)\n", argv[2], count + 1, e.text);
            return 1;
        }
        ids.n = 0;
        if (tokenizer_encode(tok, json_string_value(s), json_string_length(s), &ids)) {
            fprintf(stderr, "tokenizer_batch: line %d: %s\n", count + 1, err_msg());
            return 1;
        }
        for (int i = 0; i < ids.n; i++) fprintf(out, i ? " %d" : "%d", (int)ids.ids[i]);
        fputc('\n', out);
        json_decref(s);
        count++;
    }
    free(line);
    ids_free(&ids);
    fclose(in);
    if (fclose(out)) { fprintf(stderr, "tokenizer_batch: error writing %s\n", argv[3]); return 1; }
    tokenizer_free(tok);
    fprintf(stderr, "tokenizer_batch: %d strings encoded\n", count);
    return 0;
}
