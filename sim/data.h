// sim/data: the files under sim/data/ (Lua environments, tool catalog, prompt templates), embedded
// in the binary at build time (CMakeLists.txt generates the table), so nothing depends on the
// working directory. Names are paths relative to sim/data, e.g. "envs/airline.lua".
#pragma once
#include <stddef.h>

// bytes of an embedded file (NUL-terminated; *len excludes the NUL), or NULL when unknown
const char *sim_data_file(const char *name, size_t *len);
// number of embedded files, and the name of the i-th (sorted by name)
int sim_data_count(void);
const char *sim_data_name(int i);
