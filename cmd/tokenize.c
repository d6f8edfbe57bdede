// trustee tokenize: UTF-8 text on stdin -> token ids on stdout, or ids -> text with --decode.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "model/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: trustee tokenize [--tokenizer DIR] [--decode] < input\n"
            "\n"
            "Reads all of stdin and prints its Qwen3 token ids on one line, separated by spaces.\n"
            "The ids are those of exactly the bytes read (no newline is stripped); added tokens\n"
            "such as <|im_end|> in the text are matched. Same ids as HF tokenizers' encode(text,\n"
            "add_special_tokens=False).\n"
            "\n"
            "options:\n"
            "  --tokenizer DIR  load DIR/tokenizer.json (default: the Qwen3 tokenizer built in)\n"
            "  --decode         read whitespace-separated ids and print their text (exact bytes,\n"
            "                   no newline added)\n"
            "  --help           this text\n");
}

// all of a stream, binary-safe; NULL on error (err_set)
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { err_set("out of memory"); return NULL; }
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) { free(buf); err_set("out of memory reading stdin"); return NULL; }
        buf = nb;
    }
    if (ferror(f)) { free(buf); err_set("error reading stdin: %s", strerror(errno)); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int do_encode(const tokenizer_t *tok, const char *text, size_t len) {
    ids_t ids = {0};
    if (tokenizer_encode(tok, text, len, &ids)) { ids_free(&ids); return -1; }
    for (int i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", (int)ids.ids[i]);
    printf("\n");
    ids_free(&ids);
    return 0;
}

static int do_decode(const tokenizer_t *tok, char *text) {
    ids_t ids = {0};
    int word = 0;
    for (char *p = text;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') p++;
        if (!*p) break;
        char *w = p;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')) p++;
        char save = *p;
        *p = 0;
        word++;
        char *end;
        errno = 0;
        long v = strtol(w, &end, 10);
        if (errno || end == w || *end || v < 0 || v >= tokenizer_n_ids(tok)) {
            int bad_int = errno || end == w || *end;
            err_set("input word %d '%.40s' is %s (token ids are 0..%d)", word, w,
                    bad_int ? "not an integer token id" : "out of range", tokenizer_n_ids(tok) - 1);
            ids_free(&ids);
            return -1;
        }
        *p = save;
        if (ids_push(&ids, (int32_t)v)) { ids_free(&ids); return -1; }
    }
    char *out;
    size_t n;
    int rc = tokenizer_decode(tok, ids.ids, ids.n, &out, &n);
    ids_free(&ids);
    if (rc) return -1;
    fwrite(out, 1, n, stdout);
    free(out);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    args_t a;
    args_init(&a, argc, argv);
    int err = 0;
    const char *dir = args_str(&a, "tokenizer", NULL, &err);
    if (err) return cmd_fail("tokenize");
    int decode = args_flag(&a, "decode");
    if (args_finish(&a)) return cmd_fail("tokenize");

    tokenizer_t *tok = tokenizer_load_dir(dir, 0); // no --tokenizer: the built-in one
    if (!tok) return cmd_fail("tokenize");

    size_t len;
    char *text = read_all(stdin, &len);
    int rc = !text ? -1 : decode ? do_decode(tok, text) : do_encode(tok, text, len);
    free(text);
    tokenizer_free(tok);
    if (rc) return cmd_fail("tokenize");
    if (fflush(stdout)) { err_set("error writing stdout"); return cmd_fail("tokenize"); }
    return 0;
}
