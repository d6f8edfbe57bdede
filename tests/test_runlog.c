// comm/runlog in C: positions and start/length bookkeeping while appending the formula rows
// (tests/runlog_formula.h), refusals of bad paths / bad files / positions past the end (one-line
// messages naming the path and what was expected), resume of a cleanly closed file.
// usage: test_runlog DIR   (writes DIR/known.h5: 4 formula steps, DIR/resumed.h5: 5 formula steps
// rebuilt through a resume at step 2; tests/runlog.sh checks both with h5py)
#include <hdf5.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kernels/err.h"
#include "runlog_formula.h"
#include "test.h"

static char dir[2048];
static const char *in_dir(const char *name) {
    static char p[16][2300];
    static int i = 0;
    i = (i + 1) % 16;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

// the position after s formula steps, summed here from the formula's row sizes
static runlog_pos_t expected_pos(int64_t s) {
    runlog_pos_t p = {s, s * F_TASKS_PER_STEP, s * F_EVALS_PER_STEP, s * F_TRAJ_PER_STEP, 0, 0, 0};
    for (int64_t t = 0; t < s * F_TRAJ_PER_STEP; t++) {
        p.tokens += 5 + (t * 7) % 11;
        char text[64];
        int n = snprintf(text, sizeof(text), "traj %lld: caf\xc3\xa9 <tool_call>", (long long)t);
        p.text += t % 4 == 3 ? 0 : n;
        p.details += snprintf(text, sizeof(text), "{\"t\":%lld}", (long long)t);
    }
    return p;
}

static int pos_eq(runlog_pos_t a, runlog_pos_t b) { return !memcmp(&a, &b, sizeof(a)); }
static void pos_print(const char *what, runlog_pos_t p) {
    fprintf(stderr, "  %s: steps %lld curriculum %lld evals %lld trajs %lld tokens %lld text %lld details %lld\n",
            what, (long long)p.steps, (long long)p.curriculum, (long long)p.evals, (long long)p.trajs,
            (long long)p.tokens, (long long)p.text, (long long)p.details);
}

#define CHECK_ERR(expr_null, ...)                                                               \
    do {                                                                                        \
        err_clear();                                                                            \
        runlog_t *r_ = (expr_null);                                                             \
        CHECK(r_ == NULL, "expected a refusal");                                                \
        runlog_close(r_);                                                                       \
        const char *want_[] = {__VA_ARGS__, NULL};                                              \
        for (int i_ = 0; want_[i_]; i_++)                                                       \
            CHECK(strstr(err_msg(), want_[i_]), "message '%s' lacks '%s'", err_msg(), want_[i_]); \
        CHECK(!strchr(err_msg(), '\n'), "multi-line message '%s'", err_msg());                  \
        printf("refused: %s\n", err_msg());                                                     \
    } while (0)

int main(int argc, char **argv) {
    REQUIRE(argc == 2, "usage: test_runlog DIR");
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    mkdir(dir, 0755);
    char *known = strdup(in_dir("known.h5")), *resumed = strdup(in_dir("resumed.h5"));
    remove(known);
    remove(resumed);

    // ---- create + append, positions and filled start/length fields ----
    json_t *cfg = formula_config();
    runlog_t *r = runlog_create(known, cfg);
    REQUIRE(r, "create: %s", err_msg());
    runlog_pos_t p;
    runlog_position(r, &p);
    CHECK(pos_eq(p, expected_pos(0)), "fresh position not zero");
    for (int64_t s = 1; s <= 4; s++) {
        REQUIRE(formula_append_step(r, s) == 0, "step %lld: %s", (long long)s, err_msg());
        runlog_position(r, &p);
        if (!pos_eq(p, expected_pos(s))) {
            CHECK(0, "position after step %lld", (long long)s);
            pos_print("got", p);
            pos_print("want", expected_pos(s));
        }
    }
    // a trajectory's *_start fields are the previous position; NULL text/details -> length 0
    runlog_traj_t row;
    memset(&row, 0, sizeof(row));
    row.tok_start = row.text_start = -7;
    int32_t ids[2] = {1, 2};
    float lp[2] = {0, -1};
    uint8_t mask[2] = {0, 1};
    // (written to a scratch file: known.h5 must hold the formula rows only)
    runlog_t *scratch = runlog_create(in_dir("scratch.h5"), NULL);
    if (!scratch) { // a leftover of an earlier run
        remove(in_dir("scratch.h5"));
        scratch = runlog_create(in_dir("scratch.h5"), NULL);
    }
    REQUIRE(scratch, "create scratch (NULL config): %s", err_msg());
    row.n_tokens = 2;
    CHECK(runlog_append_traj(scratch, &row, ids, lp, mask, NULL, NULL) == 0, "%s", err_msg());
    CHECK(row.tok_start == 0 && row.text_start == 0 && row.text_len == 0 && row.details_len == 0,
          "first traj: tok_start %lld text %lld+%lld", (long long)row.tok_start, (long long)row.text_start,
          (long long)row.text_len);
    CHECK(runlog_append_traj(scratch, &row, ids, lp, mask, "ab", "{}") == 0, "%s", err_msg());
    CHECK(row.tok_start == 2 && row.text_start == 0 && row.text_len == 2 && row.details_start == 0 &&
              row.details_len == 2, "second traj: tok_start %lld text %lld+%lld details %lld+%lld",
          (long long)row.tok_start, (long long)row.text_start, (long long)row.text_len,
          (long long)row.details_start, (long long)row.details_len);
    row.n_tokens = -1;
    CHECK(runlog_append_traj(scratch, &row, ids, lp, mask, NULL, NULL) < 0, "negative n_tokens accepted");
    CHECK(runlog_close(scratch) == 0, "%s", err_msg());
    remove(in_dir("scratch.h5"));
    CHECK(runlog_close(r) == 0, "close: %s", err_msg());
    CHECK(runlog_close(NULL) == 0, "close(NULL)");

    // ---- refusals ----
    CHECK_ERR(runlog_create(in_dir("no/such/dir/run.h5"), cfg), in_dir("no/such/dir/run.h5"), "does not exist");
    CHECK_ERR(runlog_create(known, cfg), known, "already exists");
    json_t *arr = json_array();
    remove(in_dir("array.h5"));
    CHECK_ERR(runlog_create(in_dir("array.h5"), arr), "JSON object");
    json_decref(arr);
    struct stat st;
    CHECK(stat(in_dir("array.h5"), &st) != 0, "a refused create left its file behind");
    const char *text_file = in_dir("not-hdf5.txt");
    FILE *f = fopen(text_file, "w");
    REQUIRE(f, "cannot write %s", text_file);
    fputs("hello\n", f);
    fclose(f);
    runlog_pos_t zero = {0};
    CHECK_ERR(runlog_resume(text_file, &zero), text_file, "not an HDF5 file", "expected a trustee run log");
    const char *plain = in_dir("plain.h5");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t h = H5Fcreate(plain, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(h >= 0, "H5Fcreate %s", plain);
    H5Fclose(h);
    CHECK_ERR(runlog_resume(plain, &zero), plain, "not a trustee run log", "trustee-runlog");
    CHECK_ERR(runlog_resume(in_dir("missing.h5"), &zero), in_dir("missing.h5"), "expected an existing run log");
    runlog_pos_t past = expected_pos(4);
    past.steps = 5;
    CHECK_ERR(runlog_resume(known, &past), known, "/steps has 4 rows", "needs 5");
    past = expected_pos(4);
    past.tokens += 1;
    CHECK_ERR(runlog_resume(known, &past), "/trajectories/ids has");
    CHECK(stat(in_dir("known.h5.resume.tmp"), &st) != 0, "a failed resume left its .resume.tmp");

    // ---- resume a cleanly closed file: 4 steps written, back to 2, then 3..5 ----
    r = runlog_create(resumed, cfg);
    REQUIRE(r, "create %s: %s", resumed, err_msg());
    runlog_pos_t at2 = {0};
    for (int64_t s = 1; s <= 4; s++) {
        REQUIRE(formula_append_step(r, s) == 0, "%s", err_msg());
        if (s == 2) runlog_position(r, &at2);
    }
    CHECK(runlog_close(r) == 0, "%s", err_msg());
    r = runlog_resume(resumed, &at2);
    REQUIRE(r, "resume: %s", err_msg());
    runlog_position(r, &p);
    CHECK(pos_eq(p, expected_pos(2)), "position after resume");
    for (int64_t s = 3; s <= 5; s++) REQUIRE(formula_append_step(r, s) == 0, "%s", err_msg());
    runlog_position(r, &p);
    CHECK(pos_eq(p, expected_pos(5)), "position after resume + 3 steps");
    CHECK(runlog_close(r) == 0, "%s", err_msg());
    CHECK(stat(in_dir("resumed.h5.resume.tmp"), &st) != 0, "resume left its .resume.tmp");
    json_decref(cfg);
    free(known);
    free(resumed);
    return test_exit("test_runlog");
}
