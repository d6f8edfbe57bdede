// memo_canon_tool: one JSON text per stdin line -> its memo canonical form per stdout line
// (driver for tests/memo_canon.sh; "ERROR <message>" for an unparsable line)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "sim/memo.h"

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = 0;
        json_error_t e;
        json_t *j = json_loads(line, JSON_DECODE_ANY, &e);
        char *c = j ? memo_canonical_json(j) : NULL;
        if (c) printf("%s\n", c);
        else printf("ERROR %s\n", j ? err_msg() : e.text);
        free(c);
        json_decref(j);
    }
    free(line);
    return 0;
}
