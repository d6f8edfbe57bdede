// sim/jsonschema: a JSON-schema validator for the subset trustee's tools and LM roles use (type,
// enum, const, properties, required, additionalProperties, items, minItems / maxItems,
// minLength / maxLength in code points, minimum / maximum). Used to check a tool call's arguments
// against the tool's "parameters" (an invalid call gets an error without asking the LM) and every
// LM role's parsed output against the role's schema (the grammar, sim/grammar.h, only produces a
// subset of what this accepts).
#pragma once
#include <jansson.h>
#include <stddef.h>

enum {
    JSONSCHEMA_STRICT = 1, // objects with "properties" reject keys not listed there, as if
                           // "additionalProperties": false (tool arguments)
};

// 1 when v matches schema, 0 when not (why: "arguments.city: expected a string, found 3"), -1 when
// the schema itself is unusable (err_set). path names the root in messages (e.g. "arguments").
int jsonschema_validate(const json_t *schema, const json_t *v, int flags, const char *path,
                        char *why, size_t why_cap);
