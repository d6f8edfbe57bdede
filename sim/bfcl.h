// BFCL's AST checker (Berkeley Function Calling Leaderboard v4) for the single-turn categories:
// simple_python, multiple, parallel, parallel_multiple, irrelevance and their live_* versions.
// Written from ../shared/bench/bfcl/CHECKER.md (our own reading of BFCL's checker); it reproduces
// BFCL's verdicts, error type included, for function-calling models with underscore_to_dot off.
//
// Values are jansson trees. The JSON kind matters: "2" is an int, "2.0" a float, true is a bool
// and not an int (in type checks). Object key order matters too (jansson keeps insertion order).
#pragma once
#include <jansson.h>

typedef enum {
    BFCL_SIMPLE,      // simple_python, live_simple: exactly one call, first doc
    BFCL_MULTIPLE,    // multiple, live_multiple: count must match, call 0 checked
    BFCL_PARALLEL,    // parallel*, *parallel_multiple: greedy order-insensitive matching
    BFCL_IRRELEVANCE, // irrelevance, live_irrelevance: valid when there is no call
    BFCL_UNKNOWN,
} bfcl_kind_t;

// the checker a category name selects (by substring, in BFCL's order); BFCL_UNKNOWN otherwise
bfcl_kind_t bfcl_category_kind(const char *category);

// Judges decoded calls `calls` (a JSON array of {"name": str, "arguments": {...}}, the verdict
// files' format) for one entry: `functions` is the entry's list of function docs, `ground_truth`
// its answer list ([{fname: {param: [options...]}}, ...]; unused, may be NULL, for irrelevance).
// Returns NULL when the output is valid, else BFCL's error type ("type_error:simple", ...), a
// static string. Never fails: malformed calls give BFCL's decoder errors.
const char *bfcl_check(bfcl_kind_t kind, const json_t *functions, const json_t *ground_truth,
                       const json_t *calls);

// BFCL's string normalization: drops " ,./-_*^", lowercases (full Unicode), maps ' to ".
// Returns a malloc'd string (NULL on out of memory).
char *bfcl_normalize(const char *s);
