// sim/oracle: gold transcripts from the Lua environments' oracles (see oracle.h).
#include "oracle.h"

#include <string.h>

#include "../kernels/err.h"
#include "curriculum.h"

luaenv_t *luaenv_open(const char *name) {
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".lua") == 0) return luaenv_load_file(name);
    return luaenv_load_embedded(name);
}

int luaenv_oracle_append(luaenv_t *e, int n, uint64_t seed_base, int d_lo, int d_hi, const char *family,
                         json_t *out, double *score_sum) {
    if (!json_is_array(out)) return err_set("luaenv_oracle_append: out must be a JSON array");
    if (n < 1) return err_set("luaenv_oracle_append: expected n >= 1 tasks, found %d", n);
    if (d_lo < CURRICULUM_D_MIN || d_hi > CURRICULUM_D_MAX || d_lo > d_hi)
        return err_set("luaenv_oracle_append: expected %d <= d_lo <= d_hi <= %d, found [%d, %d]",
                       CURRICULUM_D_MIN, CURRICULUM_D_MAX, d_lo, d_hi);
    for (int i = 0; i < n; i++) {
        int d = n == 1 ? d_lo : d_lo + (int)((int64_t)i * (d_hi - d_lo) / (n - 1));
        curriculum_aspects_t asp;
        curriculum_aspects_at(d, &asp);
        json_t *t = luaenv_sample_task(e, seed_base + (uint64_t)i, &asp, family);
        if (!t) return -1;
        json_t *messages = json_array();
        double s;
        if (!messages || luaenv_run_oracle(e, t, -1, messages, &s)) {
            json_decref(messages);
            json_decref(t);
            return messages ? -1 : err_set("out of memory");
        }
        json_t *tools = luaenv_task_tools(e, t);
        json_decref(t);
        json_t *conv = json_object(); // keys in this order: messages, tools
        if (!tools || !conv) {
            json_decref(tools);
            json_decref(conv);
            json_decref(messages);
            return err_set("out of memory");
        }
        // both calls always run: json_object_set_new releases its value even when it fails
        int bad = json_object_set_new(conv, "messages", messages);
        bad = json_object_set_new(conv, "tools", tools) || bad;
        if (bad) {
            json_decref(conv);
            return err_set("out of memory");
        }
        if (json_array_append_new(out, conv)) return err_set("out of memory");
        if (score_sum) *score_sum += s;
    }
    return 0;
}

json_t *luaenv_oracle_dataset(const char *const *envs, int n_envs, int n_per_env, uint64_t seed_base,
                              int d_lo, int d_hi) {
    if (n_envs < 1) {
        err_set("luaenv_oracle_dataset: expected at least one environment");
        return NULL;
    }
    json_t *out = json_array();
    if (!out) {
        err_set("out of memory");
        return NULL;
    }
    for (int k = 0; k < n_envs; k++) {
        luaenv_t *e = luaenv_open(envs[k]);
        int rc = e ? luaenv_oracle_append(e, n_per_env, seed_base, d_lo, d_hi, NULL, out, NULL) : -1;
        luaenv_free(e);
        if (rc) {
            err_wrap("oracle dataset, env %s: ", envs[k]);
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
