// Command-line options of the form `--key value` and `--flag` for trustee's subcommands.
// Each getter marks its option used; args_finish() rejects anything left over, naming the
// closest known option, so a typo never silently falls back to a default.
#pragma once

typedef struct {
    int argc;
    char **argv;
    unsigned char used[256];
    const char *known[64]; // option names asked for so far (for "did you mean")
    int n_known;
} args_t;

void args_init(args_t *a, int argc, char **argv); // argv[0] is the subcommand name
// value of --name, or def when absent; a missing value is an error (returns NULL, err_set)
const char *args_str(args_t *a, const char *name, const char *def, int *err);
int args_int(args_t *a, const char *name, long def, long *out);     // 0 or -1
int args_float(args_t *a, const char *name, double def, double *out);
int args_flag(args_t *a, const char *name); // 1 when present
int args_finish(args_t *a);                 // -1 (err_set) on an unknown option or stray word
// Levenshtein distance of two names (99 when either is longer than 63), for "did you mean"
int args_distance(const char *s, const char *t);
