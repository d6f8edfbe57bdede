// trustee logits: the last-position logits of a list of token ids, one line of %.9g floats.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "model/qwen3.h"

static const char *LOGITS_USAGE =
    "usage: trustee logits --model DIR --ids \"1 2 3\" [--threads N]\n"
    "\n"
    "Runs the Qwen3 checkpoint in DIR (config.json + safetensors) on the token ids and prints the\n"
    "logits of the last position on one line: V space-separated floats (%.9g).\n"
    "\n"
    "options:\n"
    "  --model DIR    Hugging Face checkpoint directory\n"
    "  --ids LIST     token ids separated by spaces or commas\n"
    "  --threads N    CPU threads (default: all cores)\n";

// parses "1 2 3" / "1,2,3"; returns the count or -1
static int parse_ids(const char *s, int32_t **out) {
    int n = 0, cap = 16;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    if (!ids) return err_set("out of memory");
    for (const char *p = s;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < -2147483647L || v > 2147483647L ||
            (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
            free(ids);
            return err_set("--ids: expected integers separated by spaces or commas, found '%.20s'", p);
        }
        if (n == cap) {
            cap *= 2;
            int32_t *nb = realloc(ids, (size_t)cap * sizeof(int32_t));
            if (!nb) {
                free(ids);
                return err_set("out of memory");
            }
            ids = nb;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) {
        free(ids);
        return err_set("--ids: no token ids given");
    }
    *out = ids;
    return n;
}

int cmd_logits(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(LOGITS_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long threads;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *ids_s = err ? NULL : args_str(&a, "ids", NULL, &err);
    if (err || args_int(&a, "threads", 0, &threads) || args_finish(&a)) return cmd_fail("logits");
    if (!dir || !ids_s) {
        err_set("--model DIR and --ids LIST are required (see --help)");
        return cmd_fail("logits");
    }
    kernels_set_threads((int)threads);
    int32_t *ids = NULL;
    int n = parse_ids(ids_s, &ids);
    if (n < 0) return cmd_fail("logits");

    qwen3_t m;
    kvcache_t kv;
    qwen3_state_t st;
    if (qwen3_load(&m, dir, DEVICE_CPU)) {
        free(ids);
        return cmd_fail("logits");
    }
    int rc = 1;
    if (qwen3_kvcache_init(&m, &kv, (n + 15) / 16, 16, 1, n) == 0) {
        if (qwen3_state_init(&st, &m, &kv, n, 1, 1) == 0) {
            qwen3_chunk_t ch = {kvcache_seq_new(&kv), ids, n, 1};
            if (qwen3_forward(&m, &st, &kv, &ch, 1) == 1) {
                const int V = m.cfg.vocab_size;
                for (int i = 0; i < V; i++) printf(i ? " %.9g" : "%.9g", st.h_logits[i]);
                printf("\n");
                rc = 0;
            }
            qwen3_state_free(&st);
        }
        kvcache_free(&kv);
    }
    if (rc) cmd_fail("logits");
    qwen3_free(&m);
    free(ids);
    return rc;
}
