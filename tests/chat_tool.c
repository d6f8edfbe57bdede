// chat_tool: line-based driver of model/chat for the Python cross-checks (tests/chat_*.sh).
//   chat_tool json FILE     each line a JSON value -> one line: chat_json_dumps(value)
//   chat_tool render FILE   each line an HF chat context -> one line {"text", "ids", "mask"}
//                           (the text comes from a text-only chat, ids/mask from a tokenizer chat,
//                           and the two texts must agree)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "model/embedded.h"

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) buf[len] = 0;
    *n = len;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "json") && strcmp(argv[1], "render"))) {
        fprintf(stderr, "usage: chat_tool json|render FILE\n");
        return 2;
    }
    int render = !strcmp(argv[1], "render");
    size_t n;
    char *all = read_all(argv[2], &n);
    if (!all) { fprintf(stderr, "chat_tool: cannot read %s\n", argv[2]); return 1; }
    tokenizer_t *tok = NULL;
    if (render) {
        size_t len;
        const char *js = embedded_file("qwen3-tokenizer/tokenizer.json", &len);
        tok = js ? tokenizer_load_buffer(js, len, "embedded tokenizer.json") : NULL;
        if (!tok) { fprintf(stderr, "chat_tool: %s\n", err_msg()); return 1; }
    }
    int line_no = 0, rc = 0;
    for (char *line = all, *next; line && *line && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        json_error_t e;
        json_t *v = json_loads(line, JSON_DECODE_ANY | JSON_PRESERVE_ORDER | JSON_ALLOW_NUL, &e);
        if (!v) { fprintf(stderr, "%s:%d: %s\n", argv[2], line_no, e.text); rc = 1; break; }
        if (!render) {
            char *s = chat_json_dumps(v);
            if (!s) { fprintf(stderr, "%s:%d: %s\n", argv[2], line_no, err_msg()); rc = 1; }
            else printf("%s\n", s);
            free(s);
        } else {
            chat_t ct = {0}, ci = {0};
            if (chat_init(&ct, NULL) || chat_load_json(&ct, v, "text-only") ||
                chat_init(&ci, tok) || chat_load_json(&ci, v, "ids")) {
                fprintf(stderr, "%s:%d: %s\n", argv[2], line_no, err_msg());
                rc = 1;
            } else if (ct.text_len != ci.text_len || memcmp(ct.text, ci.text, ct.text_len)) {
                fprintf(stderr, "%s:%d: text-only and tokenizer renders differ\n", argv[2], line_no);
                rc = 1;
            } else {
                json_t *o = json_object(), *ids = json_array(), *mask = json_array();
                for (int i = 0; i < ci.ids.n; i++) {
                    json_array_append_new(ids, json_integer(ci.ids.ids[i]));
                    json_array_append_new(mask, json_integer(ci.mask[i]));
                }
                json_object_set_new(o, "text", json_stringn(ct.text, ct.text_len));
                json_object_set_new(o, "ids", ids);
                json_object_set_new(o, "mask", mask);
                json_object_set_new(o, "straddle", json_integer(ci.n_straddle));
                char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                printf("%s\n", s);
                free(s);
                json_decref(o);
            }
            chat_free(&ct);
            chat_free(&ci);
        }
        json_decref(v);
    }
    tokenizer_free(tok);
    free(all);
    return rc;
}
