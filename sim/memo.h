// sim/memo: the tool-call memo (SynthAgent). Within one task, shared by the whole rollout group,
// the same tool called with canonically equal arguments returns the same output, so simulated
// tools stay consistent across the group's rollouts and across turns.
//
// Key = (task id, tool name, canonical JSON of the arguments). Canonical JSON (memo_canonical_json):
//  - objects: keys sorted by byte order (strcmp of the UTF-8 bytes), no whitespace anywhere;
//  - numbers: 1, 1.0, 1e0, 10e-1 are equal (equal values give equal text): an integral value with
//    |v| < 2^53 is written as an integer ("1"), -0 as "0", any other double as the shortest of
//    "%.15g" / "%.16g" / "%.17g" that reads back to it (Python's repr form, e.g. "1e-07",
//    "1.152921504606847e+18"); an integer literal is first turned into its double when that is
//    exact, else (beyond 2^53, no double equals it) written with all its digits;
//  - strings as-is (byte-exact: no Unicode normalization, no trimming, no case folding), escaped
//    only where JSON requires (" \ and control characters);
//  - arrays keep their order; true / false / null as is.
// Value = the tool's output JSON text, stored as given.
//
// Thread-safe (one mutex): a rollout process may look up from several threads.
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct memo_entry memo_entry_t;

typedef struct {
    memo_entry_t **buckets; // (n_buckets) chained hash table
    size_t n_buckets;
    size_t n_entries;
    uint64_t hits, misses;  // counted by memo_get
    void *mutex;            // pthread_mutex_t, allocated by memo_init
} memo_t;

int memo_init(memo_t *m);
void memo_free(memo_t *m);

// canonical JSON text of any value (malloc'd), or NULL (err_set)
char *memo_canonical_json(const json_t *v);

// Looks up (task, tool, args). Hit: *output = malloc'd copy of the stored output, returns 1.
// Miss: *output = NULL, returns 0. Error: -1. args may be NULL (same as {}). Counts hits/misses.
int memo_get(memo_t *m, uint64_t task, const char *tool, const json_t *args, char **output);
// same with the arguments as JSON text (parse errors are errors, not misses)
int memo_get_text(memo_t *m, uint64_t task, const char *tool, const char *args_json, char **output);
// Stores the output for (task, tool, args); an existing entry is kept (first writer wins, so
// every rollout sees the first answer). Returns 1 when stored, 0 when already present, -1 error.
int memo_put(memo_t *m, uint64_t task, const char *tool, const json_t *args, const char *output);
int memo_put_text(memo_t *m, uint64_t task, const char *tool, const char *args_json,
                  const char *output);
// forgets every entry of a task (when its group is done); returns the number removed
size_t memo_drop_task(memo_t *m, uint64_t task);
