// The C side of the AdamW check against torch.optim.AdamW (tests/optim_torch.sh): runs our
// optimizer on random parameters and gradients (a fixed counter-based generator), one step with a
// NaN gradient among them, and writes everything the torch side needs to redo the run on its own
// (initial weights, every step's gradients) and everything it compares (final weights, moments,
// grad norms) into one safetensors file.
//   optim_torch_run OUT.safetensors
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "learner/optim.h"
#include "model/safetensors.h"

#define N_PARAMS 4
#define N_CALLS 9   // optim_step calls; call NAN_CALL has a NaN gradient and must be skipped
#define NAN_CALL 3

static const int64_t SHAPES[N_PARAMS][3] = {{7, 5, 0}, {13, 0, 0}, {4, 3, 2}, {64, 33, 0}};
static const int DECAY[N_PARAMS] = {1, 0, 1, 1};

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
// uniform in [-1, 1) for (stream, i)
static float unif(uint64_t stream, uint64_t i) {
    uint64_t r = mix(mix(stream * 0x9e3779b97f4a7c15ull + 12345) + i);
    return (float)((double)(r >> 11) * 0x1.0p-52 - 1.0);
}

typedef struct {
    st_tensor_t *t;
    int n, cap;
} list_t;

static int list_add(list_t *l, const char *name, const tensor_t *shape_of, const void *data, size_t nbytes,
                    dtype_t dt) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, (size_t)l->cap * sizeof *l->t);
        if (!l->t) return -1;
    }
    st_tensor_t *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->dtype = dt;
    if (shape_of) {
        t->ndim = shape_of->ndim;
        memcpy(t->shape, shape_of->shape, sizeof t->shape);
    } else {
        t->ndim = 1;
        t->shape[0] = (int64_t)(nbytes / 4);
    }
    void *copy = malloc(nbytes);
    memcpy(copy, data, nbytes);
    t->data = copy;
    t->nbytes = nbytes;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: optim_torch_run OUT.safetensors\n");
        return 2;
    }
    tensor_t w[N_PARAMS];
    optim_spec_t spec[N_PARAMS];
    char names[N_PARAMS][16];
    list_t out = {0};
    char name[128];
    for (int i = 0; i < N_PARAMS; i++) {
        int ndim = SHAPES[i][2] ? 3 : SHAPES[i][1] ? 2 : 1;
        if (tensor_alloc(&w[i], DTYPE_F32, DEVICE_CPU, ndim, SHAPES[i])) goto fail;
        float *d = w[i].data;
        for (int64_t k = 0; k < tensor_numel(&w[i]); k++) d[k] = unif(1000 + i, k);
        snprintf(names[i], sizeof names[i], "p%d", i);
        spec[i] = (optim_spec_t){names[i], &w[i], DECAY[i]};
        snprintf(name, sizeof name, "init.%s", names[i]);
        list_add(&out, name, &w[i], d, tensor_nbytes(&w[i]), DTYPE_F32);
    }
    optim_config_t cfg;
    optim_config_default(&cfg);
    cfg.lr = 1e-2;
    cfg.beta1 = 0.9;
    cfg.beta2 = 0.95;
    cfg.eps = 1e-8;
    cfg.weight_decay = 0.1;
    cfg.clip_norm = 1.0;
    cfg.warmup_steps = 2;
    cfg.total_steps = N_CALLS - 1;
    cfg.min_lr = 1e-3;
    optim_t o;
    if (optim_init(&o, &cfg, spec, N_PARAMS)) goto fail;

    const double grad_scale = 0.5;
    float norms[N_CALLS], skipped[N_CALLS], lrs[N_CALLS];
    float *g[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++) g[i] = malloc((size_t)tensor_nbytes(&w[i]));
    for (int c = 0; c < N_CALLS; c++) {
        // alternate small gradients (not clipped) and large ones (clipped)
        float amp = c % 2 ? 0.05f : 1.0f;
        for (int i = 0; i < N_PARAMS; i++) {
            int64_t n = tensor_numel(&w[i]);
            for (int64_t k = 0; k < n; k++) g[i][k] = amp * unif(100 * (c + 1) + i, k);
            if (c == NAN_CALL && i == 2) g[i][5] = NAN;
            snprintf(name, sizeof name, "grad.%d.%s", c, names[i]);
            list_add(&out, name, &w[i], g[i], tensor_nbytes(&w[i]), DTYPE_F32);
        }
        optim_stats_t st;
        int rc = optim_step(&o, g, grad_scale, 1.0, &st);
        if (rc < 0) goto fail;
        norms[c] = (float)st.grad_norm;
        skipped[c] = (float)rc;
        lrs[c] = (float)st.lr;
        printf("call %d: %s lr %.6g grad_norm %.6g clip_coef %.6g%s%s\n", c, rc ? "SKIPPED" : "applied", st.lr,
               st.grad_norm, st.clip_coef, rc ? ": " : "", rc ? st.msg : "");
        if ((rc == 1) != (c == NAN_CALL)) {
            fprintf(stderr, "optim_torch_run: call %d returned %d\n", c, rc);
            return 1;
        }
    }
    for (int i = 0; i < N_PARAMS; i++) {
        snprintf(name, sizeof name, "final.%s", names[i]);
        list_add(&out, name, &w[i], w[i].data, tensor_nbytes(&w[i]), DTYPE_F32);
        snprintf(name, sizeof name, "exp_avg.%s", names[i]);
        list_add(&out, name, &w[i], o.p[i].m, tensor_nbytes(&w[i]), DTYPE_F32);
        snprintf(name, sizeof name, "exp_avg_sq.%s", names[i]);
        list_add(&out, name, &w[i], o.p[i].v, tensor_nbytes(&w[i]), DTYPE_F32);
    }
    list_add(&out, "grad_norm", NULL, norms, sizeof norms, DTYPE_F32);
    list_add(&out, "skipped", NULL, skipped, sizeof skipped, DTYPE_F32);
    list_add(&out, "lr", NULL, lrs, sizeof lrs, DTYPE_F32);
    if (safetensors_write(argv[1], out.t, out.n)) goto fail;
    printf("wrote %s (%d tensors), optimizer step %lld, skipped %lld\n", argv[1], out.n, (long long)o.step,
           (long long)o.n_skipped);
    optim_free(&o);
    return 0;
fail:
    fprintf(stderr, "optim_torch_run: %s\n", err_msg());
    return 1;
}
