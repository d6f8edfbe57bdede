#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"

void args_init(args_t *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->argc = argc < 256 ? argc : 256;
    a->argv = argv;
    if (a->argc > 0) a->used[0] = 1;
}

static void args_note(args_t *a, const char *name) {
    for (int i = 0; i < a->n_known; i++)
        if (strcmp(a->known[i], name) == 0) return;
    if (a->n_known < 64) a->known[a->n_known++] = name;
}

// index of the value of --name, 0 when absent, -1 when present without a value
static int args_find(args_t *a, const char *name) {
    args_note(a, name);
    for (int i = 1; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (s[0] == '-' && s[1] == '-' && strcmp(s + 2, name) == 0) {
            a->used[i] = 1;
            if (i + 1 >= a->argc) return -1;
            a->used[i + 1] = 1;
            return i + 1;
        }
    }
    return 0;
}

const char *args_str(args_t *a, const char *name, const char *def, int *err) {
    int i = args_find(a, name);
    if (i < 0) {
        if (err) *err = 1;
        err_set("option --%s expects a value", name);
        return NULL;
    }
    return i ? a->argv[i] : def;
}

int args_int(args_t *a, const char *name, long def, long *out) {
    int i = args_find(a, name);
    if (i < 0) return err_set("option --%s expects an integer value", name);
    if (!i) { *out = def; return 0; }
    char *end;
    errno = 0;
    long v = strtol(a->argv[i], &end, 10);
    if (errno || end == a->argv[i] || *end)
        return err_set("option --%s: expected an integer, found '%s'", name, a->argv[i]);
    *out = v;
    return 0;
}

int args_float(args_t *a, const char *name, double def, double *out) {
    int i = args_find(a, name);
    if (i < 0) return err_set("option --%s expects a number", name);
    if (!i) { *out = def; return 0; }
    char *end;
    errno = 0;
    double v = strtod(a->argv[i], &end);
    if (errno || end == a->argv[i] || *end)
        return err_set("option --%s: expected a number, found '%s'", name, a->argv[i]);
    *out = v;
    return 0;
}

int args_flag(args_t *a, const char *name) {
    args_note(a, name);
    for (int i = 1; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (s[0] == '-' && s[1] == '-' && strcmp(s + 2, name) == 0) {
            a->used[i] = 1;
            return 1;
        }
    }
    return 0;
}

// Levenshtein distance, for "did you mean"
int args_distance(const char *s, const char *t) {
    int n = (int)strlen(s), m = (int)strlen(t);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (s[i - 1] != t[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

int args_finish(args_t *a) {
    for (int i = 1; i < a->argc; i++) {
        if (a->used[i]) continue;
        const char *s = a->argv[i];
        if (s[0] == '-' && s[1] == '-') {
            const char *best = NULL;
            int bd = 99;
            for (int k = 0; k < a->n_known; k++) {
                int d = args_distance(s + 2, a->known[k]);
                if (d < bd) { bd = d; best = a->known[k]; }
            }
            if (best && bd <= 3)
                return err_set("unknown option %s (did you mean --%s?)", s, best);
            return err_set("unknown option %s (see --help)", s);
        }
        return err_set("unexpected argument '%s' (see --help)", s);
    }
    return 0;
}
