// runlog_tool: drives comm/runlog for the shell tests (tests/runlog.sh). Subcommands:
//   write PATH N                 create, append formula steps 1..N (tests/runlog_formula.h), close
//   live PATH N MS               create, touch PATH.ready, append one step every MS ms, close
//   crash PATH N                 create, append steps 1..N, writing the position after each step to
//                                PATH.pos ("s steps curriculum evals trajs tokens text details"),
//                                touch PATH.crashready, then sleep until killed
//   crash PATH N busy            the same, but keeps appending steps N+1, N+2, ... until killed
//   resume PATH P0..P6 FROM TO   runlog_resume at that position, append steps FROM..TO, close
//   open-rdwr PATH               a plain H5Fopen(H5F_ACC_RDWR): prints "rdwr ok" or "rdwr failed: ..."
// Exit status 0 on success; errors print err_msg() as one line.
#include <hdf5.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kernels/err.h"
#include "runlog_formula.h"

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
    return 0;
}
static const char *h5_detail(void) { // HDF5's innermost error message
    static char buf[256];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, buf);
    return buf;
}

static int fail(void) {
    fprintf(stderr, "runlog_tool: %s\n", err_msg());
    return 1;
}

static void touch(const char *path, const char *suffix) {
    char p[4096];
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: runlog_tool write|live|crash|resume|open-rdwr PATH ...\n");
        return 2;
    }
    const char *cmd = argv[1], *path = argv[2];
    if (!strcmp(cmd, "open-rdwr")) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) {
            printf("rdwr failed: %s\n", h5_detail());
            return 0;
        }
        printf("rdwr ok\n");
        H5Fclose(f);
        return 0;
    }
    if (!strcmp(cmd, "write") || !strcmp(cmd, "live") || !strcmp(cmd, "crash")) {
        if (argc < 4) return fprintf(stderr, "runlog_tool %s: missing N\n", cmd), 2;
        int64_t n = atoll(argv[3]);
        long ms = argc > 4 && !strcmp(cmd, "live") ? atol(argv[4]) : 0;
        json_t *cfg = formula_config();
        runlog_t *r = runlog_create(path, cfg);
        json_decref(cfg);
        if (!r) return fail();
        if (strcmp(cmd, "write")) touch(path, ".ready");
        char pos_path[4096];
        snprintf(pos_path, sizeof(pos_path), "%s.pos", path);
        for (int64_t s = 1; s <= n; s++) {
            if (formula_append_step(r, s) < 0) return fail();
            if (!strcmp(cmd, "live")) sleep_ms(ms);
            if (!strcmp(cmd, "crash")) {
                runlog_pos_t p;
                runlog_position(r, &p);
                FILE *f = fopen(pos_path, "a");
                if (!f) return fprintf(stderr, "runlog_tool: cannot write %s\n", pos_path), 1;
                fprintf(f, "%lld %lld %lld %lld %lld %lld %lld %lld\n", (long long)s, (long long)p.steps,
                        (long long)p.curriculum, (long long)p.evals, (long long)p.trajs,
                        (long long)p.tokens, (long long)p.text, (long long)p.details);
                fclose(f);
            }
        }
        if (!strcmp(cmd, "crash")) {
            touch(path, ".crashready");
            if (argc > 4 && !strcmp(argv[4], "busy")) // killed in the middle of appends
                for (int64_t s = n + 1;; s++)
                    if (formula_append_step(r, s) < 0) return fail();
            for (;;) pause(); // killed with SIGKILL while the file is open
        }
        return runlog_close(r) < 0 ? fail() : 0;
    }
    if (!strcmp(cmd, "resume")) {
        if (argc != 12) return fprintf(stderr, "runlog_tool resume PATH P0..P6 FROM TO\n"), 2;
        runlog_pos_t p = {atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), atoll(argv[6]),
                          atoll(argv[7]), atoll(argv[8]), atoll(argv[9])};
        runlog_t *r = runlog_resume(path, &p);
        if (!r) return fail();
        for (int64_t s = atoll(argv[10]); s <= atoll(argv[11]); s++)
            if (formula_append_step(r, s) < 0) return fail();
        return runlog_close(r) < 0 ? fail() : 0;
    }
    fprintf(stderr, "runlog_tool: unknown command %s\n", cmd);
    return 2;
}
