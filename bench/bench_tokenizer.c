// Times tokenizer_encode on a text file (loading excluded) and writes the ids, for
// bench/tokenizer.sh. usage: bench_tokenizer [--lines] TOKENIZER_JSON TEXT_FILE IDS_OUT [REPEATS]
// Encodes the file REPEATS times (default 3): in one call, or with --lines one call per line
// (each line keeps its '\n'), and prints the best time:
//   trustee_encode_seconds <s> bytes <n> ids <k>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"
#include "model/tokenizer.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int lines = argc > 1 && strcmp(argv[1], "--lines") == 0;
    argc -= lines;
    argv += lines;
    if (argc < 4) {
        fprintf(stderr, "usage: bench_tokenizer [--lines] TOKENIZER_JSON TEXT_FILE IDS_OUT [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    tokenizer_t *tok = tokenizer_load(argv[1]);
    if (!tok) { fprintf(stderr, "bench_tokenizer: %s\n", err_msg()); return 1; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(n + 1);
    if (!text || fread(text, 1, n, f) != n) { fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]); return 1; }
    fclose(f);

    ids_t ids = {0};
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        ids.n = 0; // keep the buffer: time the tokenizer, not page faults of a fresh id array
        double t0 = now();
        for (size_t i = 0; i < n;) {
            size_t j = n;
            if (lines) {
                const char *nl = memchr(text + i, '\n', n - i);
                if (nl) j = (size_t)(nl - text) + 1;
            }
            if (tokenizer_encode(tok, text + i, j - i, &ids)) {
                fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
                return 1;
            }
            i = j;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    FILE *o = fopen(argv[3], "w");
    if (!o) { fprintf(stderr, "bench_tokenizer: cannot write %s\n", argv[3]); return 1; }
    for (int i = 0; i < ids.n; i++) fprintf(o, "%d\n", (int)ids.ids[i]);
    fclose(o);
    printf("trustee_encode_seconds %.6f bytes %zu ids %d\n", best, n, ids.n);
    ids_free(&ids);
    free(text);
    tokenizer_free(tok);
    return 0;
}
