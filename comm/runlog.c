// comm/runlog: the HDF5 run log. See runlog.h for the layout and docs/runlog.md for the schema.
//
// One runlog_t holds the open file, its nine datasets and, for each, the rows / elements written so
// far. Every append is H5Dset_extent + a hyperslab write at the old end. HDF5's automatic error
// printing is switched off for the duration of each public call (and restored after), so a failure
// comes back as one err_set line with HDF5's innermost message appended.
#include "runlog.h"

#include <errno.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/err.h"

#define RUNLOG_FORMAT "trustee-runlog"
#define RUNLOG_FORMAT_VERSION 2 // 2: /steps env_difficulty, env_difficulty_next

// names of traj_reason_t, in order (the "reasons" attribute of /steps)
static const char *const RUNLOG_REASONS[TRAJ_N_REASONS] = {
    [TRAJ_OK] = "ok",
    [TRAJ_SIM_ERROR] = "sim_error",
    [TRAJ_TURN_CAP] = "turn_cap",
    [TRAJ_TOKEN_CAP] = "token_cap",
    [TRAJ_CONTEXT_FULL] = "context_full",
};
_Static_assert(TRAJ_N_REASONS == 5, "update RUNLOG_REASONS (and docs/runlog.md) with traj_reason_t");

enum { DS_STEPS, DS_CURRIC, DS_EVAL, DS_TRAJ, DS_IDS, DS_LOGPROBS, DS_MASK, DS_TEXT, DS_DETAILS, DS_N };

static const struct {
    const char *name; // path in the file
    hsize_t chunk;    // rows / elements per chunk
} DS_INFO[DS_N] = {
    [DS_STEPS] = {"/steps", 64},
    [DS_CURRIC] = {"/curriculum", 256},
    [DS_EVAL] = {"/eval", 256},
    [DS_TRAJ] = {"/trajectories/rows", 256},
    [DS_IDS] = {"/trajectories/ids", 16384},
    [DS_LOGPROBS] = {"/trajectories/logprobs", 16384},
    [DS_MASK] = {"/trajectories/mask", 65536},
    [DS_TEXT] = {"/trajectories/text", 65536},
    [DS_DETAILS] = {"/trajectories/details", 65536},
};

struct runlog {
    hid_t file;
    hid_t ds[DS_N];
    hid_t mtype[DS_N];  // memory types (compounds are built here; the native ones are not closed)
    int own_mtype[DS_N];
    int64_t n[DS_N];    // rows / elements written
    char *path;
};

// ---- HDF5 error handling ----

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet_t;

static h5_quiet_t h5_quiet_begin(void) {
    h5_quiet_t q = {0};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}
static void h5_quiet_end(h5_quiet_t q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc); // the innermost error
    return 0;
}
// HDF5's innermost error message on the current stack ("" when none)
static const char *h5_detail(void) {
    static _Thread_local char buf[256];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
    return buf;
}

// ---- types ----

static hid_t str_type(size_t n) { // fixed-size NUL-padded string
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}
static hid_t vlen_str_type(void) { // variable-length UTF-8 (attributes)
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

#define INS(T, field, type) st |= H5Tinsert(t, #field, HOFFSET(T, field), type)
static hid_t step_type(void) {
    hsize_t nr = TRAJ_N_REASONS;
    hid_t arr = H5Tarray_create2(H5T_NATIVE_INT32, 1, &nr);
    hsize_t ne = RUNLOG_MAX_ENVS;
    hid_t envs = H5Tarray_create2(H5T_NATIVE_INT32, 1, &ne);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(runlog_step_t));
    herr_t st = 0;
    INS(runlog_step_t, step, H5T_NATIVE_INT64);
    INS(runlog_step_t, policy_version, H5T_NATIVE_INT64);
    INS(runlog_step_t, difficulty, H5T_NATIVE_INT32);
    INS(runlog_step_t, difficulty_next, H5T_NATIVE_INT32);
    INS(runlog_step_t, env_difficulty, envs);
    INS(runlog_step_t, env_difficulty_next, envs);
    INS(runlog_step_t, mean_reward, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, success_rate, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, loss, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, pg_loss, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, kl, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, clip_frac, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, entropy, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, ratio_min, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, ratio_max, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, lp_gap_max, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, grad_norm, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, lr, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, optim_skipped, H5T_NATIVE_INT32);
    INS(runlog_step_t, n_traj, H5T_NATIVE_INT32);
    INS(runlog_step_t, n_groups_kept, H5T_NATIVE_INT32);
    INS(runlog_step_t, tokens, H5T_NATIVE_INT64);
    INS(runlog_step_t, total_tokens, H5T_NATIVE_INT64);
    INS(runlog_step_t, aborted, arr);
    INS(runlog_step_t, t_rollout, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, t_sim, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, t_train, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, t_sync, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, t_step, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, tokens_per_s, H5T_NATIVE_DOUBLE);
    INS(runlog_step_t, wall, H5T_NATIVE_DOUBLE);
    H5Tclose(arr);
    H5Tclose(envs);
    if (st < 0) H5Tclose(t);
    return st < 0 ? H5I_INVALID_HID : t;
}

static hid_t task_type(void) {
    hid_t s = str_type(RUNLOG_NAME_LEN);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(runlog_task_t));
    herr_t st = 0;
    INS(runlog_task_t, step, H5T_NATIVE_INT64);
    INS(runlog_task_t, task_id, H5T_NATIVE_UINT64);
    INS(runlog_task_t, group, H5T_NATIVE_INT32);
    INS(runlog_task_t, env, s);
    INS(runlog_task_t, seed, H5T_NATIVE_UINT64);
    INS(runlog_task_t, difficulty, H5T_NATIVE_INT32);
    INS(runlog_task_t, soft, H5T_NATIVE_INT32);
    INS(runlog_task_t, tools_available, H5T_NATIVE_INT32);
    INS(runlog_task_t, expected_calls, H5T_NATIVE_INT32);
    INS(runlog_task_t, expected_turns, H5T_NATIVE_INT32);
    INS(runlog_task_t, system_prompt, H5T_NATIVE_INT32);
    INS(runlog_task_t, persona, H5T_NATIVE_INT32);
    INS(runlog_task_t, ambiguity, H5T_NATIVE_INT32);
    INS(runlog_task_t, judge_strictness, H5T_NATIVE_INT32);
    INS(runlog_task_t, distractors, H5T_NATIVE_INT32);
    INS(runlog_task_t, mean_reward, H5T_NATIVE_DOUBLE);
    INS(runlog_task_t, success_rate, H5T_NATIVE_DOUBLE);
    H5Tclose(s);
    if (st < 0) H5Tclose(t);
    return st < 0 ? H5I_INVALID_HID : t;
}

static hid_t eval_type(void) {
    hid_t s = str_type(RUNLOG_NAME_LEN);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(runlog_eval_t));
    herr_t st = 0;
    INS(runlog_eval_t, step, H5T_NATIVE_INT64);
    INS(runlog_eval_t, phase, s);
    INS(runlog_eval_t, env, s);
    INS(runlog_eval_t, difficulty, H5T_NATIVE_INT32);
    INS(runlog_eval_t, n, H5T_NATIVE_INT32);
    INS(runlog_eval_t, successes, H5T_NATIVE_INT32);
    INS(runlog_eval_t, mean_reward, H5T_NATIVE_DOUBLE);
    H5Tclose(s);
    if (st < 0) H5Tclose(t);
    return st < 0 ? H5I_INVALID_HID : t;
}

static hid_t traj_type(void) {
    hid_t s = str_type(RUNLOG_NAME_LEN);
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(runlog_traj_t));
    herr_t st = 0;
    INS(runlog_traj_t, step, H5T_NATIVE_INT64);
    INS(runlog_traj_t, task_id, H5T_NATIVE_UINT64);
    INS(runlog_traj_t, group, H5T_NATIVE_INT32);
    INS(runlog_traj_t, index, H5T_NATIVE_INT32);
    INS(runlog_traj_t, policy_version, H5T_NATIVE_INT64);
    INS(runlog_traj_t, eval, H5T_NATIVE_INT32);
    INS(runlog_traj_t, env, s);
    INS(runlog_traj_t, difficulty, H5T_NATIVE_INT32);
    INS(runlog_traj_t, reward, H5T_NATIVE_FLOAT);
    INS(runlog_traj_t, score, H5T_NATIVE_FLOAT);
    INS(runlog_traj_t, turns, H5T_NATIVE_INT32);
    INS(runlog_traj_t, tool_calls, H5T_NATIVE_INT32);
    INS(runlog_traj_t, abort, H5T_NATIVE_INT32);
    INS(runlog_traj_t, truncated, H5T_NATIVE_INT32);
    INS(runlog_traj_t, tok_start, H5T_NATIVE_INT64);
    INS(runlog_traj_t, n_tokens, H5T_NATIVE_INT32);
    INS(runlog_traj_t, n_prompt, H5T_NATIVE_INT32);
    INS(runlog_traj_t, text_start, H5T_NATIVE_INT64);
    INS(runlog_traj_t, text_len, H5T_NATIVE_INT64);
    INS(runlog_traj_t, details_start, H5T_NATIVE_INT64);
    INS(runlog_traj_t, details_len, H5T_NATIVE_INT64);
    H5Tclose(s);
    if (st < 0) H5Tclose(t);
    return st < 0 ? H5I_INVALID_HID : t;
}
#undef INS

// ---- the handle ----

static runlog_t *runlog_new(const char *path) {
    runlog_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        err_set("%s: out of memory", path);
        return NULL;
    }
    r->file = H5I_INVALID_HID;
    for (int k = 0; k < DS_N; k++) r->ds[k] = r->mtype[k] = H5I_INVALID_HID;
    return r;
}

static int runlog_make_types(runlog_t *r) {
    r->mtype[DS_STEPS] = step_type();
    r->mtype[DS_CURRIC] = task_type();
    r->mtype[DS_EVAL] = eval_type();
    r->mtype[DS_TRAJ] = traj_type();
    for (int k = DS_STEPS; k <= DS_TRAJ; k++) {
        r->own_mtype[k] = 1;
        if (r->mtype[k] < 0) return err_set("%s: building the HDF5 type of %s failed: %s", r->path,
                                            DS_INFO[k].name, h5_detail());
    }
    r->mtype[DS_IDS] = H5T_NATIVE_INT32;
    r->mtype[DS_LOGPROBS] = H5T_NATIVE_FLOAT;
    r->mtype[DS_MASK] = H5T_NATIVE_UINT8;
    r->mtype[DS_TEXT] = H5T_NATIVE_UINT8;
    r->mtype[DS_DETAILS] = H5T_NATIVE_UINT8;
    return 0;
}

// closes everything (no flush beyond what H5Fclose does), frees r
static int runlog_free(runlog_t *r) {
    if (!r) return 0;
    int rc = 0;
    for (int k = 0; k < DS_N; k++) {
        if (r->ds[k] >= 0 && H5Dclose(r->ds[k]) < 0) rc = -1;
        if (r->own_mtype[k] && r->mtype[k] >= 0) H5Tclose(r->mtype[k]);
    }
    if (r->file >= 0 && H5Fclose(r->file) < 0 && rc == 0)
        rc = err_set("%s: closing the file failed: %s", r->path, h5_detail());
    free(r->path);
    free(r);
    return rc;
}

static hid_t fapl_latest(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    return fapl;
}

// ---- attributes ----

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf) {
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t st = H5Awrite(a, type, buf);
    H5Aclose(a);
    return st < 0 ? -1 : 0;
}
static int attr_i64(hid_t obj, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = attr_write(obj, name, H5T_NATIVE_INT64, sp, &v);
    H5Sclose(sp);
    return rc;
}
static int attr_f64(hid_t obj, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = attr_write(obj, name, H5T_NATIVE_DOUBLE, sp, &v);
    H5Sclose(sp);
    return rc;
}
static int attr_str(hid_t obj, const char *name, const char *v) {
    hid_t sp = H5Screate(H5S_SCALAR), t = vlen_str_type();
    int rc = attr_write(obj, name, t, sp, &v);
    H5Tclose(t);
    H5Sclose(sp);
    return rc;
}

// /config attributes from a JSON object (see runlog.h)
static int config_write(hid_t file, const json_t *config, const char *path) {
    if (config && !json_is_object(config))
        return err_set("%s: the run configuration must be a JSON object", path);
    hid_t g = H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return err_set("%s: creating /config failed: %s", path, h5_detail());
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)config, key, v) {
        if (json_is_integer(v)) rc = attr_i64(g, key, (int64_t)json_integer_value(v));
        else if (json_is_real(v)) rc = attr_f64(g, key, json_real_value(v));
        else if (json_is_string(v)) rc = attr_str(g, key, json_string_value(v));
        else if (json_is_boolean(v)) rc = attr_i64(g, key, json_is_true(v) ? 1 : 0);
        else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
            if (!text) {
                rc = err_set("%s: /config: cannot serialize setting '%s'", path, key);
                break;
            }
            rc = attr_str(g, key, text);
            free(text);
        }
        if (rc < 0) {
            err_set("%s: writing /config attribute '%s' failed: %s", path, key, h5_detail());
            break;
        }
    }
    H5Gclose(g);
    return rc;
}

// ---- schema ----

// creates the groups, root attributes and the nine empty datasets of a new file (r->file open,
// r->mtype built); leaves the datasets open in r->ds
static int schema_create(runlog_t *r) {
    if (attr_str(r->file, "format", RUNLOG_FORMAT) < 0 ||
        attr_i64(r->file, "format_version", RUNLOG_FORMAT_VERSION) < 0)
        return err_set("%s: writing the root attributes failed: %s", r->path, h5_detail());
    hid_t g = H5Gcreate2(r->file, "trajectories", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return err_set("%s: creating /trajectories failed: %s", r->path, h5_detail());
    H5Gclose(g);
    for (int k = 0; k < DS_N; k++) {
        hsize_t zero = 0, unlim = H5S_UNLIMITED, chunk = DS_INFO[k].chunk;
        hid_t sp = H5Screate_simple(1, &zero, &unlim);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, &chunk);
        // the file type: the compounds packed (no C padding on disk), the rest as in memory
        hid_t ftype = H5Tcopy(r->mtype[k]);
        if (r->own_mtype[k]) H5Tpack(ftype);
        r->ds[k] = H5Dcreate2(r->file, DS_INFO[k].name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        H5Tclose(ftype);
        H5Pclose(dcpl);
        H5Sclose(sp);
        if (r->ds[k] < 0)
            return err_set("%s: creating %s failed: %s", r->path, DS_INFO[k].name, h5_detail());
    }
    // the names of the aborted[] columns, in order
    hsize_t nr = TRAJ_N_REASONS;
    hid_t sp = H5Screate_simple(1, &nr, NULL), t = vlen_str_type();
    int rc = attr_write(r->ds[DS_STEPS], "reasons", t, sp, RUNLOG_REASONS);
    H5Tclose(t);
    H5Sclose(sp);
    if (rc < 0) return err_set("%s: writing /steps attribute 'reasons' failed: %s", r->path, h5_detail());
    return 0;
}

// path's parent directory must exist; path must not (for create)
static int check_new_path(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) return err_set("%s: already exists (expected a new run log file)", path);
    char *copy = strdup(path);
    if (!copy) return err_set("%s: out of memory", path);
    const char *dir = dirname(copy);
    int rc = 0;
    if (stat(dir, &st) != 0) rc = err_set("%s: directory %s does not exist", path, dir);
    else if (!S_ISDIR(st.st_mode)) rc = err_set("%s: %s is not a directory", path, dir);
    free(copy);
    return rc;
}

// copies one attribute of /config (H5Aiterate2 callback): read with its own type, write the same.
// (H5Ocopy of a group whose attributes are in dense storage, > 8 of them, crashes inside
// H5T__conv_vlen in HDF5 1.10.8, so /config is copied attribute by attribute.)
static herr_t copy_attr(hid_t src, const char *name, const H5A_info_t *info, void *dst_p) {
    (void)info;
    hid_t dst = *(hid_t *)dst_p;
    hid_t a = H5Aopen(src, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    hid_t mt = H5Tget_native_type(ft, H5T_DIR_DEFAULT);
    size_t sz = H5Tget_size(mt);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    herr_t rc = -1;
    void *buf = (ft >= 0 && sp >= 0 && mt >= 0 && n >= 0) ? calloc((size_t)(n ? n : 1), sz) : NULL;
    if (buf && H5Aread(a, mt, buf) >= 0) {
        hid_t b = H5Acreate2(dst, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (b >= 0) {
            rc = H5Awrite(b, mt, buf);
            H5Aclose(b);
        }
        if (H5Tdetect_class(mt, H5T_VLEN) > 0 || H5Tis_variable_str(mt) > 0)
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
    }
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int config_copy(hid_t src_file, hid_t dst_file) {
    hid_t sg = H5Gopen2(src_file, "config", H5P_DEFAULT);
    if (sg < 0) return -1;
    hid_t dg = H5Gcreate2(dst_file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = dg < 0 ? -1 : H5Aiterate2(sg, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr, &dg);
    if (dg >= 0) H5Gclose(dg);
    H5Gclose(sg);
    return rc < 0 ? -1 : 0;
}

// creates path with the schema; config: JSON object for /config, or copy_config: a file whose
// /config group is copied instead. Returns the handle in define mode (SWMR not started).
static runlog_t *create_file(const char *path, const json_t *config, hid_t copy_config) {
    if (check_new_path(path) < 0) return NULL;
    runlog_t *r = runlog_new(path);
    if (!r) return NULL;
    if (runlog_make_types(r) < 0) goto fail;
    hid_t fapl = fapl_latest();
    r->file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (r->file < 0) {
        err_set("%s: cannot create the file: %s", path, h5_detail());
        goto fail;
    }
    if (copy_config >= 0) {
        if (config_copy(copy_config, r->file) < 0) {
            err_set("%s: copying /config failed: %s", path, h5_detail());
            goto fail;
        }
    } else if (config_write(r->file, config, path) < 0) goto fail;
    if (schema_create(r) < 0) goto fail;
    return r;
fail:
    runlog_free(r);
    remove(path);
    return NULL;
}

static int start_swmr(runlog_t *r) {
    if (H5Fstart_swmr_write(r->file) < 0)
        return err_set("%s: starting SWMR writing failed: %s", r->path, h5_detail());
    return 0;
}

runlog_t *runlog_create(const char *path, const json_t *config) {
    h5_quiet_t q = h5_quiet_begin();
    runlog_t *r = create_file(path, config, H5I_INVALID_HID);
    if (r && start_swmr(r) < 0) {
        runlog_free(r);
        remove(path);
        r = NULL;
    }
    h5_quiet_end(q);
    return r;
}

// ---- appends ----

static int ds_append(runlog_t *r, int k, const void *buf, int64_t n) {
    if (n < 0) return err_set("%s: %s: negative length %lld", r->path, DS_INFO[k].name, (long long)n);
    if (n == 0) return 0;
    hsize_t start = (hsize_t)r->n[k], count = (hsize_t)n, end = start + count;
    if (H5Dset_extent(r->ds[k], &end) < 0)
        return err_set("%s: extending %s to %llu failed: %s", r->path, DS_INFO[k].name,
                       (unsigned long long)end, h5_detail());
    hid_t fs = H5Dget_space(r->ds[k]);
    hid_t ms = H5Screate_simple(1, &count, NULL);
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
    if (st >= 0) st = H5Dwrite(r->ds[k], r->mtype[k], ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (st < 0)
        return err_set("%s: writing %lld rows to %s failed: %s", r->path, (long long)n, DS_INFO[k].name,
                       h5_detail());
    r->n[k] = (int64_t)end;
    return 0;
}

static int append_one(runlog_t *r, int k, const void *row) {
    if (!r) return err_set("runlog: NULL handle");
    h5_quiet_t q = h5_quiet_begin();
    int rc = ds_append(r, k, row, 1);
    h5_quiet_end(q);
    return rc;
}
int runlog_append_step(runlog_t *r, const runlog_step_t *row) { return append_one(r, DS_STEPS, row); }
int runlog_append_task(runlog_t *r, const runlog_task_t *row) { return append_one(r, DS_CURRIC, row); }
int runlog_append_eval(runlog_t *r, const runlog_eval_t *row) { return append_one(r, DS_EVAL, row); }

int runlog_append_traj(runlog_t *r, runlog_traj_t *row, const int32_t *ids, const float *logprobs,
                       const uint8_t *mask, const char *text, const char *details) {
    if (!r) return err_set("runlog: NULL handle");
    if (row->n_tokens < 0 || (row->n_tokens > 0 && (!ids || !logprobs || !mask)))
        return err_set("%s: trajectory %llu/%d: n_tokens %d without ids/logprobs/mask", r->path,
                       (unsigned long long)row->task_id, row->index, row->n_tokens);
    if (!text) text = "";
    if (!details) details = "";
    row->tok_start = r->n[DS_IDS];
    row->text_start = r->n[DS_TEXT];
    row->text_len = (int64_t)strlen(text);
    row->details_start = r->n[DS_DETAILS];
    row->details_len = (int64_t)strlen(details);
    // the ragged data first, the row last: a reader that sees the row finds its data
    h5_quiet_t q = h5_quiet_begin();
    int rc = 0;
    if (ds_append(r, DS_IDS, ids, row->n_tokens) < 0 || ds_append(r, DS_LOGPROBS, logprobs, row->n_tokens) < 0 ||
        ds_append(r, DS_MASK, mask, row->n_tokens) < 0 || ds_append(r, DS_TEXT, text, row->text_len) < 0 ||
        ds_append(r, DS_DETAILS, details, row->details_len) < 0 || ds_append(r, DS_TRAJ, row, 1) < 0)
        rc = -1;
    h5_quiet_end(q);
    return rc;
}

int runlog_flush(runlog_t *r) {
    if (!r) return 0;
    h5_quiet_t q = h5_quiet_begin();
    int rc = 0;
    for (int k = DS_N - 1; k >= 0 && rc == 0; k--) // flat data before the rows that point into it
        if (H5Dflush(r->ds[k]) < 0)
            rc = err_set("%s: flushing %s failed: %s", r->path, DS_INFO[k].name, h5_detail());
    h5_quiet_end(q);
    return rc;
}

void runlog_position(const runlog_t *r, runlog_pos_t *pos) {
    memset(pos, 0, sizeof(*pos));
    if (!r) return;
    pos->steps = r->n[DS_STEPS];
    pos->curriculum = r->n[DS_CURRIC];
    pos->evals = r->n[DS_EVAL];
    pos->trajs = r->n[DS_TRAJ];
    pos->tokens = r->n[DS_IDS];
    pos->text = r->n[DS_TEXT];
    pos->details = r->n[DS_DETAILS];
}

int runlog_close(runlog_t *r) {
    if (!r) return 0;
    int rc = runlog_flush(r);
    h5_quiet_t q = h5_quiet_begin();
    if (runlog_free(r) < 0) rc = -1;
    h5_quiet_end(q);
    return rc;
}

// ---- resume ----

// rows / elements wanted from each dataset for pos
static void pos_counts(const runlog_pos_t *pos, int64_t want[DS_N]) {
    want[DS_STEPS] = pos->steps;
    want[DS_CURRIC] = pos->curriculum;
    want[DS_EVAL] = pos->evals;
    want[DS_TRAJ] = pos->trajs;
    want[DS_IDS] = want[DS_LOGPROBS] = want[DS_MASK] = pos->tokens;
    want[DS_TEXT] = pos->text;
    want[DS_DETAILS] = pos->details;
}

// the old file is a trustee run log of this version
static int check_format(hid_t f, const char *path) {
    if (H5Aexists(f, "format") <= 0)
        return err_set("%s: not a trustee run log (no root attribute 'format'; expected \"%s\")", path,
                       RUNLOG_FORMAT);
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    char got[64] = "";
    if (H5Tget_class(ft) == H5T_STRING) {
        hid_t t = vlen_str_type();
        char *s = NULL;
        if (H5Tis_variable_str(ft) > 0 && H5Aread(a, t, &s) >= 0 && s) {
            snprintf(got, sizeof(got), "%s", s);
            H5free_memory(s);
        }
        H5Tclose(t);
    }
    H5Tclose(ft);
    H5Aclose(a);
    if (strcmp(got, RUNLOG_FORMAT) != 0)
        return err_set("%s: not a trustee run log (format = \"%s\", expected \"%s\")", path, got, RUNLOG_FORMAT);
    int64_t v = -1;
    a = H5Aopen(f, "format_version", H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &v) < 0) v = -1;
    if (a >= 0) H5Aclose(a);
    if (v != RUNLOG_FORMAT_VERSION)
        return err_set("%s: run log format_version %lld, this build reads %d", path, (long long)v,
                       RUNLOG_FORMAT_VERSION);
    return 0;
}

// copies the first want[k] rows of every dataset of old into r (blocks of at most 8 MiB)
static int copy_rows(runlog_t *r, hid_t old, const char *old_path, const int64_t want[DS_N]) {
    for (int k = 0; k < DS_N; k++) {
        hid_t ds = H5Dopen2(old, DS_INFO[k].name, H5P_DEFAULT);
        if (ds < 0)
            return err_set("%s: not a trustee run log (no dataset %s)", old_path, DS_INFO[k].name);
        hid_t fs = H5Dget_space(ds);
        hsize_t have = 0;
        int nd = H5Sget_simple_extent_ndims(fs);
        if (nd == 1) H5Sget_simple_extent_dims(fs, &have, NULL);
        if (nd != 1 || (int64_t)have < want[k]) {
            H5Sclose(fs);
            H5Dclose(ds);
            if (nd != 1) return err_set("%s: %s is not 1-D", old_path, DS_INFO[k].name);
            const char *unit = k <= DS_TRAJ ? "rows" : "elements";
            return err_set("%s: %s has %llu %s, the resume position needs %lld", old_path, DS_INFO[k].name,
                           (unsigned long long)have, unit, (long long)want[k]);
        }
        size_t esize = H5Tget_size(r->mtype[k]);
        int64_t block = (8 << 20) / (int64_t)esize;
        void *buf = malloc((size_t)(block < want[k] ? block : want[k] > 0 ? want[k] : 1) * esize);
        int rc = buf ? 0 : err_set("%s: out of memory", r->path);
        for (int64_t at = 0; rc == 0 && at < want[k]; at += block) {
            hsize_t start = (hsize_t)at, count = (hsize_t)(want[k] - at < block ? want[k] - at : block);
            hid_t ms = H5Screate_simple(1, &count, NULL);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
                H5Dread(ds, r->mtype[k], ms, fs, H5P_DEFAULT, buf) < 0)
                rc = err_set("%s: reading %s failed: %s (after a crash and `h5clear -s`, run "
                             "`h5clear -s --increment` on it)", old_path, DS_INFO[k].name, h5_detail());
            H5Sclose(ms);
            if (rc == 0) rc = ds_append(r, k, buf, (int64_t)count);
        }
        free(buf);
        H5Sclose(fs);
        H5Dclose(ds);
        if (rc < 0) return -1;
    }
    return 0;
}

static runlog_t *resume_impl(const char *path, const runlog_pos_t *pos, const json_t *config) {
    int64_t want[DS_N];
    pos_counts(pos, want);
    for (int k = 0; k < DS_N; k++)
        if (want[k] < 0) {
            err_set("%s: negative resume position for %s", path, DS_INFO[k].name);
            return NULL;
        }
    struct stat st;
    if (stat(path, &st) != 0) {
        err_set("%s: cannot resume: %s (expected an existing run log)", path, strerror(errno));
        return NULL;
    }
    if (H5Fis_hdf5(path) <= 0) {
        err_set("%s: not an HDF5 file (expected a trustee run log)", path);
        return NULL;
    }
    // 1. the old file: a plain read-only open works on a cleanly closed file (and on one cleared
    // with h5clear); a file a crashed writer left marked open refuses it and is read as a SWMR
    // reader instead (a SWMR reader must not be used on an h5clear'ed file: with the stale
    // end-of-allocation h5clear -s leaves behind, its reads hang, retrying)
    hid_t fapl = fapl_latest();
    hid_t old = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (old < 0) old = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (old < 0) {
        err_set("%s: cannot open for reading: %s", path, h5_detail());
        H5Pclose(fapl);
        return NULL;
    }
    // 2. a new file beside it with the same schema and /config, and the rows before pos
    size_t n = strlen(path) + sizeof(".resume.tmp");
    char *tmp = malloc(n);
    if (!tmp) {
        err_set("%s: out of memory", path);
        H5Fclose(old);
        H5Pclose(fapl);
        return NULL;
    }
    snprintf(tmp, n, "%s.resume.tmp", path);
    remove(tmp); // a leftover of an earlier failed resume
    runlog_t *r = NULL;
    if (check_format(old, path) == 0 && (r = create_file(tmp, config, config ? H5I_INVALID_HID : old)) != NULL &&
        copy_rows(r, old, path, want) < 0) {
        runlog_free(r);
        r = NULL;
    }
    H5Fclose(old);
    if (!r) goto fail;
    // 3. close, rename over path, reopen for SWMR writing
    if (runlog_free(r) < 0) {
        r = NULL;
        goto fail;
    }
    r = NULL;
    if (rename(tmp, path) != 0) {
        err_set("%s: renaming %s over it failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (!(r = runlog_new(path)) || runlog_make_types(r) < 0) goto fail;
    r->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (r->file < 0) {
        err_set("%s: reopening for writing failed: %s", path, h5_detail());
        goto fail;
    }
    for (int k = 0; k < DS_N; k++) {
        if ((r->ds[k] = H5Dopen2(r->file, DS_INFO[k].name, H5P_DEFAULT)) < 0) {
            err_set("%s: reopening %s failed: %s", path, DS_INFO[k].name, h5_detail());
            goto fail;
        }
        r->n[k] = want[k];
    }
    if (start_swmr(r) < 0) goto fail;
    H5Pclose(fapl);
    free(tmp);
    return r;
fail:
    runlog_free(r);
    remove(tmp);
    free(tmp);
    H5Pclose(fapl);
    return NULL;
}

runlog_t *runlog_resume(const char *path, const runlog_pos_t *pos) {
    return runlog_resume_config(path, pos, NULL);
}

runlog_t *runlog_resume_config(const char *path, const runlog_pos_t *pos, const json_t *config) {
    h5_quiet_t q = h5_quiet_begin();
    runlog_t *r = resume_impl(path, pos, config);
    h5_quiet_end(q);
    return r;
}

// ---- reading ----

_Static_assert((int)RUNLOG_STEPS == DS_STEPS && (int)RUNLOG_CURRICULUM == DS_CURRIC && (int)RUNLOG_EVAL == DS_EVAL &&
                   (int)RUNLOG_TRAJS == DS_TRAJ && (int)RUNLOG_IDS == DS_IDS && (int)RUNLOG_LOGPROBS == DS_LOGPROBS &&
                   (int)RUNLOG_MASK == DS_MASK && (int)RUNLOG_TEXT == DS_TEXT && (int)RUNLOG_DETAILS == DS_DETAILS &&
                   (int)RUNLOG_N_TABLES == DS_N,
               "runlog_table_t must follow the DS_* order");

struct runlog_reader {
    runlog_t *log; // file, datasets and memory types (n[] unused)
    char reasons[TRAJ_N_REASONS][RUNLOG_NAME_LEN];
};

// the /steps attribute "reasons" into r->reasons (the built-in names when absent or unreadable)
static void reader_reasons(runlog_reader_t *r) {
    for (int k = 0; k < TRAJ_N_REASONS; k++) snprintf(r->reasons[k], RUNLOG_NAME_LEN, "%s", RUNLOG_REASONS[k]);
    hid_t ds = r->log->ds[DS_STEPS];
    if (H5Aexists(ds, "reasons") <= 0) return;
    hid_t a = H5Aopen(ds, "reasons", H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (n > 0 && n <= 64) {
        char *names[64] = {0};
        hid_t t = vlen_str_type();
        if (H5Aread(a, t, names) >= 0) {
            for (int k = 0; k < n && k < TRAJ_N_REASONS; k++)
                if (names[k]) snprintf(r->reasons[k], RUNLOG_NAME_LEN, "%s", names[k]);
            H5Dvlen_reclaim(t, sp, H5P_DEFAULT, names);
        }
        H5Tclose(t);
    }
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
}

static runlog_reader_t *reader_open(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        err_set("%s: %s (expected a trustee run log, RUN_DIR/run.h5)", path, strerror(errno));
        return NULL;
    }
    if (H5Fis_hdf5(path) <= 0) {
        err_set("%s: not an HDF5 file (expected a trustee run log)", path);
        return NULL;
    }
    runlog_reader_t *r = calloc(1, sizeof(*r));
    if (!r) {
        err_set("%s: out of memory", path);
        return NULL;
    }
    if (!(r->log = runlog_new(path))) {
        free(r);
        return NULL;
    }
    hid_t fapl = fapl_latest();
    r->log->file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    H5Pclose(fapl);
    if (r->log->file < 0) {
        err_set("%s: cannot open for reading: %s", path, h5_detail());
        goto fail;
    }
    if (check_format(r->log->file, path) < 0 || runlog_make_types(r->log) < 0) goto fail;
    for (int k = 0; k < DS_N; k++)
        if ((r->log->ds[k] = H5Dopen2(r->log->file, DS_INFO[k].name, H5P_DEFAULT)) < 0) {
            err_set("%s: not a trustee run log (no dataset %s)", path, DS_INFO[k].name);
            goto fail;
        }
    reader_reasons(r);
    return r;
fail:
    runlog_free(r->log);
    free(r);
    return NULL;
}

runlog_reader_t *runlog_reader_open(const char *path) {
    h5_quiet_t q = h5_quiet_begin();
    runlog_reader_t *r = reader_open(path);
    h5_quiet_end(q);
    return r;
}

int64_t runlog_reader_rows(runlog_reader_t *r, runlog_table_t t) {
    if (!r || (int)t < 0 || t >= RUNLOG_N_TABLES) return err_set("runlog_reader_rows: bad arguments");
    h5_quiet_t q = h5_quiet_begin();
    hid_t ds = r->log->ds[t];
    H5Drefresh(ds); // SWMR: see the rows the writer flushed since the last call
    hid_t fs = H5Dget_space(ds);
    hsize_t n = 0;
    int64_t rc = fs >= 0 && H5Sget_simple_extent_dims(fs, &n, NULL) == 1 ? (int64_t)n : -1;
    if (fs >= 0) H5Sclose(fs);
    if (rc < 0) err_set("%s: reading the size of %s failed: %s", r->log->path, DS_INFO[t].name, h5_detail());
    h5_quiet_end(q);
    return rc;
}

int runlog_reader_read(runlog_reader_t *r, runlog_table_t t, int64_t start, int64_t n, void *out) {
    if (!r || (int)t < 0 || t >= RUNLOG_N_TABLES || start < 0 || n < 0)
        return err_set("runlog_reader_read: bad arguments");
    if (n == 0) return 0;
    int64_t have = runlog_reader_rows(r, t);
    if (have < 0) return -1;
    if (start + n > have)
        return err_set("%s: %s has %lld rows, asked for %lld..%lld", r->log->path, DS_INFO[t].name, (long long)have,
                       (long long)start, (long long)(start + n - 1));
    h5_quiet_t q = h5_quiet_begin();
    hsize_t s = (hsize_t)start, c = (hsize_t)n;
    hid_t fs = H5Dget_space(r->log->ds[t]), ms = H5Screate_simple(1, &c, NULL);
    herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s, NULL, &c, NULL);
    if (st >= 0) st = H5Dread(r->log->ds[t], r->log->mtype[t], ms, fs, H5P_DEFAULT, out);
    H5Sclose(ms);
    H5Sclose(fs);
    int rc = st < 0 ? err_set("%s: reading %s failed: %s", r->log->path, DS_INFO[t].name, h5_detail()) : 0;
    h5_quiet_end(q);
    return rc;
}

char *runlog_reader_string(runlog_reader_t *r, runlog_table_t t, int64_t start, int64_t len) {
    if (t != RUNLOG_TEXT && t != RUNLOG_DETAILS) {
        err_set("runlog_reader_string: only the text and details datasets hold strings");
        return NULL;
    }
    if (len < 0 || len > ((int64_t)1 << 40)) {
        err_set("runlog_reader_string: bad length %lld", (long long)len);
        return NULL;
    }
    char *s = malloc((size_t)len + 1);
    if (!s) {
        err_set("out of memory (%lld bytes)", (long long)len);
        return NULL;
    }
    if (runlog_reader_read(r, t, start, len, s) < 0) {
        free(s);
        return NULL;
    }
    s[len] = 0;
    return s;
}

const char *runlog_reader_reason(const runlog_reader_t *r, int k) {
    return r && k >= 0 && k < TRAJ_N_REASONS ? r->reasons[k] : "?";
}

void runlog_reader_close(runlog_reader_t *r) {
    if (!r) return;
    h5_quiet_t q = h5_quiet_begin();
    runlog_free(r->log);
    h5_quiet_end(q);
    free(r);
}
