// learner/optim: the NaN/Inf guard leaves weights AND moments bit-for-bit untouched, the schedule
// (values worked out by hand below), state save/load (a resumed run continues bit-for-bit), and
// bad input. The AdamW arithmetic itself is checked against torch in tests/optim_torch.sh.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/err.h"
#include "learner/optim.h"
#include "test.h"

#define NP 3
static const int64_t SHAPES[NP][2] = {{9, 4}, {6, 0}, {3, 5}};

typedef struct {
    tensor_t w[NP];
    optim_spec_t spec[NP];
    float *g[NP];
    optim_t o;
} fixture_t;

static float val(int a, int b, int64_t k) { return (float)sin(0.37 * (double)(a * 1000 + b * 100) + 1.3 * (double)k); }

static int fixture_init(fixture_t *f, const optim_config_t *cfg) {
    static const char *names[NP] = {"a.weight", "norm.weight", "b.weight"};
    memset(f, 0, sizeof *f);
    for (int i = 0; i < NP; i++) {
        if (tensor_alloc(&f->w[i], DTYPE_F32, DEVICE_CPU, SHAPES[i][1] ? 2 : 1, SHAPES[i])) return -1;
        int64_t n = tensor_numel(&f->w[i]);
        for (int64_t k = 0; k < n; k++) ((float *)f->w[i].data)[k] = val(i, 0, k);
        f->g[i] = malloc((size_t)n * sizeof(float));
        f->spec[i] = (optim_spec_t){names[i], &f->w[i], f->w[i].ndim == 2};
    }
    return optim_init(&f->o, cfg, f->spec, NP);
}

static void fixture_grads(fixture_t *f, int step) {
    for (int i = 0; i < NP; i++)
        for (int64_t k = 0; k < tensor_numel(&f->w[i]); k++) f->g[i][k] = val(i, step + 1, k);
}

static void fixture_free(fixture_t *f) {
    optim_free(&f->o);
    for (int i = 0; i < NP; i++) {
        tensor_free(&f->w[i]);
        free(f->g[i]);
    }
}

// 1 when weights and moments of a and b are bit-for-bit equal
static int same_state(const fixture_t *a, const fixture_t *b) {
    for (int i = 0; i < NP; i++) {
        size_t nb = tensor_nbytes(&a->w[i]);
        if (memcmp(a->w[i].data, b->w[i].data, nb) || memcmp(a->o.p[i].m, b->o.p[i].m, nb) ||
            memcmp(a->o.p[i].v, b->o.p[i].v, nb))
            return 0;
    }
    return a->o.step == b->o.step;
}

static void copy_state(fixture_t *dst, const fixture_t *src) {
    for (int i = 0; i < NP; i++) {
        size_t nb = tensor_nbytes(&src->w[i]);
        memcpy(dst->w[i].data, src->w[i].data, nb);
        memcpy(dst->o.p[i].m, src->o.p[i].m, nb);
        memcpy(dst->o.p[i].v, src->o.p[i].v, nb);
    }
    dst->o.step = src->o.step;
}

static int test_nan_guard(void) {
    optim_config_t cfg;
    optim_config_default(&cfg);
    cfg.lr = 1e-2;
    fixture_t f, snap;
    REQUIRE(fixture_init(&f, &cfg) == 0 && fixture_init(&snap, &cfg) == 0, "%s", err_msg());
    optim_stats_t st;
    for (int s = 0; s < 3; s++) { // some history so the moments are non-zero
        fixture_grads(&f, s);
        REQUIRE(optim_step(&f.o, f.g, 1.0, 2.5, &st) == 0, "%s", err_msg());
    }
    copy_state(&snap, &f);

    // a NaN loss: skipped, nothing touched
    fixture_grads(&f, 3);
    int rc = optim_step(&f.o, f.g, 1.0, NAN, &st);
    CHECK(rc == 1 && st.skipped, "NaN loss: rc %d", rc);
    CHECK(strstr(st.msg, "loss is NaN") != NULL, "message: %s", st.msg);
    CHECK(same_state(&f, &snap), "NaN loss changed the state");
    printf("NaN loss -> %s\n", st.msg);

    // Inf loss
    rc = optim_step(&f.o, f.g, 1.0, -INFINITY, &st);
    CHECK(rc == 1 && strstr(st.msg, "loss is Inf"), "Inf loss: rc %d msg %s", rc, st.msg);
    CHECK(same_state(&f, &snap), "Inf loss changed the state");

    // a NaN in the LAST parameter's gradient (the first ones are finite: nothing may be updated
    // before the guard has seen every gradient)
    f.g[2][7] = NAN;
    rc = optim_step(&f.o, f.g, 1.0, 1.0, &st);
    CHECK(rc == 1 && st.skipped, "NaN grad: rc %d", rc);
    CHECK(strstr(st.msg, "gradient of b.weight is NaN at element 7 (of 15)") != NULL, "message: %s", st.msg);
    CHECK(same_state(&f, &snap), "NaN gradient changed weights or moments");
    printf("NaN gradient -> %s\n", st.msg);

    // +Inf in the first
    fixture_grads(&f, 3);
    f.g[0][0] = INFINITY;
    rc = optim_step(&f.o, f.g, 1.0, 1.0, &st);
    CHECK(rc == 1 && strstr(st.msg, "gradient of a.weight is +Inf at element 0"), "Inf grad: %s", st.msg);
    CHECK(same_state(&f, &snap), "Inf gradient changed the state");
    CHECK(f.o.n_skipped == 4, "n_skipped %lld", (long long)f.o.n_skipped);

    // finite gradients whose scaled norm overflows
    fixture_grads(&f, 3);
    rc = optim_step(&f.o, f.g, 1e38, 1.0, &st);
    CHECK(rc == 1 && strstr(st.msg, "overflows F32"), "overflowing norm: rc %d %s", rc, st.msg);
    CHECK(same_state(&f, &snap), "overflowing norm changed the state");

    // after the skips, a good step equals the good step of an optimizer that never saw them
    fixture_grads(&f, 3);
    fixture_grads(&snap, 3);
    REQUIRE(optim_step(&f.o, f.g, 1.0, 1.0, &st) == 0, "%s", err_msg());
    REQUIRE(optim_step(&snap.o, snap.g, 1.0, 1.0, &st) == 0, "%s", err_msg());
    CHECK(same_state(&f, &snap), "the step after skipped ones differs from an uninterrupted run");
    fixture_free(&f);
    fixture_free(&snap);
    return 0;
}

static int test_schedule(void) {
    optim_config_t c;
    optim_config_default(&c);
    c.lr = 1.0;
    c.min_lr = 0.1;
    c.warmup_steps = 4;
    c.total_steps = 14;
    // warmup: (t + 1) / 4
    CHECK(fabs(optim_lr(&c, 0) - 0.25) < 1e-15, "lr(0) %g", optim_lr(&c, 0));
    CHECK(fabs(optim_lr(&c, 3) - 1.0) < 1e-15, "lr(3) %g", optim_lr(&c, 3));
    // cosine over 10 updates from 1 to 0.1: at t = 4 + 5 (half way): 0.1 + 0.9 * 0.5 = 0.55
    CHECK(fabs(optim_lr(&c, 4) - 1.0) < 1e-15, "lr(4) %g", optim_lr(&c, 4));
    CHECK(fabs(optim_lr(&c, 9) - 0.55) < 1e-12, "lr(9) %g", optim_lr(&c, 9));
    // a fifth of the way (t = 6): 0.1 + 0.45 * (1 + cos(0.2 pi)) = 0.1 + 0.45 * 1.80901699... = 0.91405765...
    CHECK(fabs(optim_lr(&c, 6) - 0.914057647468726) < 1e-12, "lr(6) %.15g", optim_lr(&c, 6));
    CHECK(fabs(optim_lr(&c, 14) - 0.1) < 1e-15 && fabs(optim_lr(&c, 1000) - 0.1) < 1e-15, "floor");
    c.total_steps = 0; // constant after warmup
    CHECK(optim_lr(&c, 500) == 1.0, "constant %g", optim_lr(&c, 500));
    c.warmup_steps = 0;
    CHECK(optim_lr(&c, 0) == 1.0, "no warmup %g", optim_lr(&c, 0));
    return 0;
}

static int test_save_load(void) {
    optim_config_t cfg;
    optim_config_default(&cfg);
    cfg.lr = 3e-3;
    cfg.warmup_steps = 2;
    cfg.total_steps = 10;
    fixture_t a, b;
    REQUIRE(fixture_init(&a, &cfg) == 0 && fixture_init(&b, &cfg) == 0, "%s", err_msg());
    optim_stats_t st;
    for (int s = 0; s < 4; s++) {
        fixture_grads(&a, s);
        REQUIRE(optim_step(&a.o, a.g, 0.7, 1.0, &st) == 0, "%s", err_msg());
    }
    char path[] = "/tmp/test_optim_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    REQUIRE(optim_save(&a.o, path) == 0, "save: %s", err_msg());
    // b: the weights are checkpointed elsewhere (model.safetensors); copy them, load the moments
    for (int i = 0; i < NP; i++) memcpy(b.w[i].data, a.w[i].data, tensor_nbytes(&a.w[i]));
    REQUIRE(optim_load(&b.o, path) == 0, "load: %s", err_msg());
    CHECK(b.o.step == 4, "step after load %lld", (long long)b.o.step);
    CHECK(same_state(&a, &b), "loaded state differs");
    for (int s = 4; s < 8; s++) { // both continue: bit-for-bit the same run
        fixture_grads(&a, s);
        fixture_grads(&b, s);
        REQUIRE(optim_step(&a.o, a.g, 0.7, 1.0, &st) == 0, "%s", err_msg());
        REQUIRE(optim_step(&b.o, b.g, 0.7, 1.0, &st) == 0, "%s", err_msg());
    }
    CHECK(same_state(&a, &b), "resumed run differs from the uninterrupted one");

    // a state file for other parameters is refused, and the optimizer is left as it was
    optim_t other;
    tensor_t w;
    int64_t shape[2] = {9, 5};
    REQUIRE(tensor_alloc(&w, DTYPE_F32, DEVICE_CPU, 2, shape) == 0, "alloc");
    optim_spec_t sp[3] = {{"a.weight", &w, 1}, {"norm.weight", &b.w[1], 0}, {"b.weight", &b.w[2], 1}};
    REQUIRE(optim_init(&other, &cfg, sp, 3) == 0, "%s", err_msg());
    CHECK(optim_load(&other, path) == -1 && strstr(err_msg(), "exp_avg.a.weight"), "shape mismatch: %s", err_msg());
    printf("wrong shape -> %s\n", err_msg());
    CHECK(other.step == 0, "a refused load changed the step");
    optim_free(&other);
    tensor_free(&w);
    unlink(path);
    CHECK(optim_load(&b.o, path) == -1, "missing file accepted");
    fixture_free(&a);
    fixture_free(&b);
    return 0;
}

static int test_bad_config(void) {
    optim_config_t c;
    optim_config_default(&c);
    fixture_t f;
    c.beta2 = 1.0;
    CHECK(fixture_init(&f, &c) == -1 && strstr(err_msg(), "beta2"), "beta2 = 1 accepted: %s", err_msg());
    fixture_free(&f);
    optim_config_default(&c);
    c.min_lr = 2 * c.lr;
    CHECK(fixture_init(&f, &c) == -1 && strstr(err_msg(), "min_lr"), "min_lr > lr accepted: %s", err_msg());
    fixture_free(&f);
    // BF16 weights are not master weights
    tensor_t w;
    int64_t n = 4;
    REQUIRE(tensor_alloc(&w, DTYPE_BF16, DEVICE_CPU, 1, &n) == 0, "alloc");
    optim_spec_t sp = {"x", &w, 0};
    optim_t o;
    optim_config_default(&c);
    CHECK(optim_init(&o, &c, &sp, 1) == -1 && strstr(err_msg(), "expected F32"), "bf16 accepted: %s", err_msg());
    tensor_free(&w);
    return 0;
}

int main(void) {
    if (test_nan_guard() || test_schedule() || test_save_load() || test_bad_config()) test_failures++;
    return test_exit("test_optim");
}
