// sim/catalog: the tool repository. Tool schemas in the OpenAI function format, one JSON file per
// category (an array of tools), shipped under sim/data/tools/<category>.json (embedded in the
// binary) or read from a user directory (--tools DIR: every *.json file in it, category = stem).
//
//   {"type": "function", "function": {"name": "search_flights", "description": "...",
//     "parameters": {"type": "object", "properties": {"origin": {"type": "string", ...}, ...},
//                    "required": ["origin", ...]}}}
//
// Every schema is validated on load: name unique over the whole catalog and identifier-like
// ([A-Za-z_][A-Za-z0-9_]*, at most 64 bytes), description a non-empty string, parameters an object
// schema whose properties each have a known type (string number integer boolean array object
// null) and a description, enums non-empty and of the declared type, minimum <= maximum, array
// "items" schemas checked the same way, every "required" name a property. Errors name the file and
// the line: jansson's line for parse errors, the line of the tool's "name" for schema errors
// ("tools/travel.json:42: tool 'book_hotel': required 'city' is not a property").
//
// Sampling (catalog_sample) is category-coherent: a task's tool set comes mostly from one category
// ("core" tools), plus n_distractors tools from other categories; a pure function of
// (seed, stream), so the same task id gets the same tools on every rank.
#pragma once
#include <jansson.h>
#include <stdint.h>

typedef struct {
    char *name;        // function name, unique in the catalog
    char *description; // function description
    int category;      // index into catalog_t.categories
    json_t *schema;    // the whole {"type":"function","function":{...}} object (owned)
    char *file;        // file it came from, e.g. "tools/travel.json"
    int line;          // line of its "name" in that file (1-based)
} catalog_tool_t;

typedef struct {
    int n_tools;
    catalog_tool_t *tools; // (n_tools) grouped by category (category order, then file order)
    int n_categories;
    char **categories;     // (n_categories) category names (file stems), sorted
    int *cat_first;        // (n_categories) index of a category's first tool in tools
    int *cat_count;        // (n_categories) number of tools in a category
} catalog_t;

// the shipped catalog: every embedded sim/data/tools/*.json
int catalog_load_embedded(catalog_t *c);
// every *.json file of a directory (category = file name without .json); no file is an error
int catalog_load_dir(catalog_t *c, const char *dir);
// from (file name, text) pairs; category = base name without ".json". Used by both loaders and
// by tests. On error *c is left empty (freed) and err_msg() names file:line.
int catalog_load_texts(catalog_t *c, int n_files, const char *const *files, const char *const *texts);
void catalog_free(catalog_t *c);

// index of a tool / category by name, or -1
int catalog_find(const catalog_t *c, const char *name);
int catalog_find_category(const catalog_t *c, const char *name);

// Samples k distinct tools for one task into out (k), deterministic in (seed, stream).
// category: the core category, or -1 to draw one uniformly (over categories with >= 1 tool).
// k - n_distractors tools come from the core category (if it has fewer, all of them, and the
// remainder from other categories counts as extra distractors); n_distractors tools come from the
// other categories, uniformly over those tools. The output order is shuffled (so position says
// nothing about core vs distractor). Writes the core category to *core_category (may be NULL) and,
// when is_core is not NULL, is_core[i] = 1 when out[i] is from the core category.
// Errors: k < 1, k > n_tools, n_distractors < 0 or > k - 1, category out of range.
int catalog_sample(const catalog_t *c, int k, int n_distractors, int category, uint64_t seed,
                   uint64_t stream, int *out, int *is_core, int *core_category);

// a new JSON array of the schemas of tools idx (n), ready for chat_set_tools; NULL on error
json_t *catalog_tools_json(const catalog_t *c, const int *idx, int n);
