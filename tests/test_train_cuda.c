// test_train_cuda: the Qwen3 training forward / backward (model/qwen3_train) with the model on CUDA
// against the same code on the CPU (the reference: its gradients are checked against PyTorch float64
// by test_grad_model / grad_cli.sh).
//
// Models: tests/data/qwen3-tiny (tied embeddings), an untied copy of it (lm_head.weight = a
// permutation of the embedding's values, so the two gradients differ), and, on CUDA only, the tiny
// model with BF16 weights (its values are exactly BF16, so only the CUDA GEMMs' BF16 rounding of
// the activations differs). Batch: B = 3, T = 37 right-padded (lengths 37, 30, 21), a mask with
// holes, temperature 0.8, dL/dlp random on the mask. Each model runs with checkpoint 0 and 1, and
// with the full vocabulary and an output restriction (qwen3_set_output_vocab, 211 ids containing
// every target). Checked on the device under test vs the CPU (checkpoint 0):
//   lp, entropy: max |dut - cpu| on the mask <= 1e-4 (F32; BF16 1e-1), exactly 0 off the mask;
//   every parameter gradient: max |dut - cpu| / max |cpu| <= 1e-4 (F32; BF16 1e-1: the GEMMs
//   round activations to BF16, ~4e-3 each; a wrong kernel gives errors of order 1);
//   a second backward without zeroing doubles the gradients (same tolerances vs 2 * cpu, at least
//   1e-6: a gradient accumulated in parts, e.g. the tied embedding, adds in another order);
//   qwen3_grads_zero leaves every gradient exactly 0;
//   untied + restriction: rows of d lm_head outside the list are exactly 0;
//   qwen3_params_write of the device gradients reads back equal to the downloaded gradients.
// The optimizer (learner/optim.c, optim_step_qwen3 on a CUDA model: kernels/cuda/adamw.h) on the
// untied pair, fed the SAME gradients (the CPU's, uploaded): 3 steps with the clip active, weight
// decay on every matrix; the gradient norm (rel. 1e-9), the weights and the saved moments
// (optim_save: max err / max |cpu| <= 1e-6 per tensor) match the CPU optimizer; optim_load of the
// CPU's state then one more step on both still match; a NaN in one device gradient skips the step
// (returns 1, names the parameter, weights bitwise unchanged).
// Without a usable CUDA device: "SKIP: ..." and exit 77. --self-check runs the same comparisons
// with the CPU as the device under test (errors must then be exactly 0), and checks that the
// comparisons catch an injected error (one gradient element off by 1e-3 of the tensor's max, one
// log-prob off by 1e-3).
// Usage: test_train_cuda [--self-check] [--data DIR]   (DIR: tests/data, default the source tree's)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/err.h"
#include "kernels/kernels.h"
#include "learner/optim.h"
#include "model/qwen3_train.h"
#include "model/safetensors.h"
#include "tests/test.h"
#include "tests/test_rng.h" // default seed: these inputs

#define OK(call) REQUIRE((call) == 0, "%s: %s", #call, err_msg())

static int self_check = 0;
static device_t dut = DEVICE_CUDA;
static double worst_lp = 0, worst_grad = 0; // over all F32 cases, printed at the end

// CHUNK_ROWS: LM-head rows per chunk on both sides (R ~ 70: several chunks, the last one partial)
enum { B = 3, T = 37, N_OUT = 211, CHUNK_ROWS = 8 };
static const int32_t lengths[B] = {37, 30, 21};
static int32_t ids[B * T];
static uint8_t mask[B * T];
static float dlp[B * T];
static int32_t out_ids[N_OUT];


// the batch: targets drawn from the output list, other tokens from the whole vocabulary; pads 0
static void make_batch(int V) {
    // the output list: N_OUT distinct ids, ascending (every 4th id from a random offset, plus 0..10)
    int n = 0;
    for (int i = 0; i <= 10; i++) out_ids[n++] = i;
    for (int id = 11 + (int)(rng_u32() % 3); n < N_OUT && id < V; id += 4) out_ids[n++] = id;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            int in_row = t < lengths[b];
            // loss positions: from t = 4 on, inside the row, with holes at t % 7 == 3
            mask[i] = in_row && t >= 4 && t % 7 != 3;
            ids[i] = !in_row ? 0 : mask[i] ? out_ids[rng_u32() % N_OUT] : (int32_t)(rng_u32() % (uint32_t)V);
            dlp[i] = mask[i] ? (float)(rng_u32() >> 8) / 16777216.0f * 2 - 1 : 0;
        }
}

// max |a - b| / max |b| (NaN propagates)
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0 ? d / m : d;
}

// every gradient of g, downloaded to the host as one F32 array per parameter
static float **grads_host(qwen3_t *g) {
    int n = qwen3_n_params(g);
    qwen3_param_t ps[n];
    if (qwen3_params(g, ps, n) != n) return NULL;
    float **h = calloc((size_t)n, sizeof *h);
    for (int i = 0; h && i < n; i++) {
        h[i] = malloc((size_t)tensor_numel(ps[i].t) * sizeof(float));
        tensor_t v = tensor_view(h[i], DTYPE_F32, DEVICE_CPU, ps[i].t->ndim, ps[i].t->shape);
        if (!h[i] || tensor_copy(&v, ps[i].t)) {
            fprintf(stderr, "download %s: %s\n", ps[i].name, err_msg());
            return NULL;
        }
    }
    return h;
}
static void grads_host_free(float **h, int n) {
    for (int i = 0; h && i < n; i++) free(h[i]);
    free(h);
}

// the worst normalized gradient error of got vs scale * ref over every parameter (name: the worst)
static double grads_err(qwen3_t *g, float **got, float **ref, float scale, char name[96]) {
    int n = qwen3_n_params(g);
    qwen3_param_t ps[n];
    qwen3_params(g, ps, n);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = tensor_numel(ps[i].t);
        float *r = ref[i];
        float *tmp = NULL;
        if (scale != 1.0f) {
            tmp = malloc((size_t)k * sizeof(float));
            for (int64_t j = 0; j < k; j++) tmp[j] = scale * ref[i][j];
            r = tmp;
        }
        double e = rel_err(got[i], r, k);
        if (!(e <= worst)) {
            worst = e;
            memcpy(name, ps[i].name, 96);
        }
        free(tmp);
    }
    return worst;
}

// every weight of m converted to dtype, in place (tied: lm_head re-pointed at the new embedding)
static int model_convert(qwen3_t *m, dtype_t dt) {
    int n = qwen3_n_params(m);
    qwen3_param_t ps[n];
    if (qwen3_params(m, ps, n) != n) return -1;
    for (int i = 0; i < n; i++) {
        tensor_t t;
        if (tensor_alloc(&t, dt, ps[i].t->device, ps[i].t->ndim, ps[i].t->shape) || tensor_copy(&t, ps[i].t))
            return -1;
        tensor_free(ps[i].t);
        *ps[i].t = t;
    }
    if (m->cfg.tie_word_embeddings) {
        m->lm_head = m->embed;
        m->lm_head.owned = 0;
    }
    return 0;
}

// unties m: lm_head becomes its own tensor holding a fixed permutation of the embedding's values
static int model_untie(qwen3_t *m) {
    const int64_t n = tensor_numel(&m->embed);
    float *e = malloc((size_t)n * sizeof(float)), *h = malloc((size_t)n * sizeof(float));
    tensor_t ev = tensor_view(e, DTYPE_F32, DEVICE_CPU, m->embed.ndim, m->embed.shape);
    int rc = e && h ? tensor_copy(&ev, &m->embed) : -1;
    for (int64_t i = 0; i < n && !rc; i++) h[i] = e[(i * 7919 + 13) % n]; // n = 65536: 7919 is coprime
    tensor_t hv = tensor_view(h, DTYPE_F32, DEVICE_CPU, m->embed.ndim, m->embed.shape);
    rc = rc || tensor_alloc(&m->lm_head, m->embed.dtype, m->device, 2, m->embed.shape) ||
         tensor_copy(&m->lm_head, &hv);
    m->cfg.tie_word_embeddings = 0;
    free(e);
    free(h);
    return rc;
}

// one reference run: lp, entropy and gradients of the CPU model (checkpoint 0)
typedef struct {
    float lp[B * T], ent[B * T];
    float **g;
    int R;
} ref_t;

static int run_ref(qwen3_t *m, ref_t *r) {
    qwen3_train_t tr;
    qwen3_t g;
    qwen3_batch_t batch = {B, T, ids, lengths, mask};
    OK(qwen3_train_init(&tr, m, B, T, 0));
    OK(qwen3_grads_init(&g, m));
    tr.chunk_rows = CHUNK_ROWS;
    r->R = qwen3_train_forward(m, &tr, &batch, 0.8f, r->lp, r->ent);
    REQUIRE(r->R > 0, "cpu forward: %s", err_msg());
    OK(qwen3_train_backward(m, &tr, dlp, &g));
    r->g = grads_host(&g);
    REQUIRE(r->g, "download");
    qwen3_train_free(&tr);
    qwen3_free(&g);
    return 0;
}

// the device under test vs the reference for one model / checkpoint / vocabulary
static int run_case(const char *what, qwen3_t *m, const ref_t *ref, int checkpoint, double tol) {
    qwen3_train_t tr;
    qwen3_t g;
    qwen3_batch_t batch = {B, T, ids, lengths, mask};
    const int np = qwen3_n_params(m);
    float lp[B * T], ent[B * T];
    OK(qwen3_train_init(&tr, m, B, T, checkpoint));
    OK(qwen3_grads_init(&g, m));
    tr.chunk_rows = CHUNK_ROWS;
    int R = qwen3_train_forward(m, &tr, &batch, 0.8f, lp, ent);
    REQUIRE(R == ref->R, "%s: forward: %d loss rows, the CPU %d (%s)", what, R, ref->R, err_msg());
    double elp = 0, eent = 0;
    int off_ok = 1;
    for (int i = 0; i < B * T; i++) {
        if (mask[i]) {
            elp = fmax(elp, fabs((double)lp[i] - ref->lp[i]));
            eent = fmax(eent, fabs((double)ent[i] - ref->ent[i]));
            if (isnan(lp[i]) || isnan(ent[i])) elp = INFINITY;
        } else if (lp[i] != 0 || ent[i] != 0) {
            off_ok = 0;
        }
    }
    CHECK(elp <= tol && eent <= tol, "%s: lp err %.3g, entropy err %.3g (tol %.g)", what, elp, eent, tol);
    CHECK(off_ok, "%s: lp / entropy off the mask must be 0", what);

    OK(qwen3_train_backward(m, &tr, dlp, &g));
    float **got = grads_host(&g);
    REQUIRE(got, "download");
    char wn[96] = "";
    double eg = grads_err(&g, got, ref->g, 1.0f, wn);
    CHECK(eg <= tol, "%s: gradient err %.3g (%s) (tol %.g)", what, eg, wn, tol);
    printf("%-34s lp %.2e  entropy %.2e  grads %.2e (worst: %s)\n", what, elp, eent, eg, wn);
    if (tol <= 1e-4) {
        worst_lp = fmax(worst_lp, fmax(elp, eent));
        worst_grad = fmax(worst_grad, eg);
    }

    // untied under a restriction: d lm_head rows outside the list stay exactly 0
    if (!m->cfg.tie_word_embeddings && m->out_n > 0) {
        const int64_t C = m->cfg.hidden_size;
        const float *dl = got[np - 1]; // lm_head.weight is listed last
        int bad = 0;
        for (int64_t v = 0; v < m->cfg.vocab_size; v++)
            if (m->out_pos[v] < 0)
                for (int64_t c = 0; c < C; c++) bad += dl[v * C + c] != 0;
        CHECK(bad == 0, "%s: %d entries of d lm_head outside the output list are not 0", what, bad);
    }

    // the gradients written by qwen3_params_write read back equal to the downloaded ones
    char path[] = "/tmp/test_train_cuda_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    OK(qwen3_params_write(&g, path));
    safetensors_t st;
    OK(safetensors_open(&st, path));
    qwen3_param_t ps[np];
    qwen3_params(&g, ps, np);
    int same = 1;
    for (int i = 0; i < np; i++) {
        const st_tensor_t *t = safetensors_find(&st, ps[i].name);
        same = same && t && t->dtype == DTYPE_F32 &&
               t->nbytes == (size_t)tensor_numel(ps[i].t) * 4 && memcmp(t->data, got[i], t->nbytes) == 0;
    }
    CHECK(same, "%s: qwen3_params_write does not hold the device's gradients", what);
    safetensors_close(&st);
    unlink(path);

    // a second backward adds: twice the reference
    OK(qwen3_train_backward(m, &tr, dlp, &g));
    float **got2 = grads_host(&g);
    REQUIRE(got2, "download");
    double eg2 = grads_err(&g, got2, ref->g, 2.0f, wn);
    // (not bitwise even on one device: the tied embedding's two parts add in another order)
    CHECK(eg2 <= fmax(tol, 1e-6), "%s: accumulated gradient err %.3g (%s)", what, eg2, wn);

    // zeroing
    OK(qwen3_grads_zero(&g));
    float **z = grads_host(&g);
    REQUIRE(z, "download");
    int nz = 0;
    for (int i = 0; i < np; i++)
        for (int64_t k = 0; k < tensor_numel(ps[i].t); k++) nz += z[i][k] != 0;
    CHECK(nz == 0, "%s: %d gradient entries not 0 after qwen3_grads_zero", what, nz);

    // self-check: the comparisons catch an injected error
    if (self_check) {
        int i = np / 2;
        int64_t k = tensor_numel(ps[i].t), at = 0;
        for (int64_t j = 0; j < k; j++)
            if (fabs(got[i][j]) > fabs(got[i][at])) at = j;
        got[i][k / 3] += 1e-3f * fabsf(got[i][at]);
        double e = grads_err(&g, got, ref->g, 1.0f, wn);
        CHECK(e >= 0.9e-3 && e <= 1.1e-3 && strcmp(wn, ps[i].name) == 0,
              "%s: injected gradient error seen as %.3g in %s", what, e, wn);
        float lp2 = lp[T + 5] + 1e-3f;
        CHECK(fabs((double)lp2 - ref->lp[T + 5]) > tol, "injected lp error");
    }
    grads_host_free(got, np);
    grads_host_free(got2, np);
    grads_host_free(z, np);
    qwen3_train_free(&tr);
    qwen3_free(&g);
    return 0;
}

// a copy of host gradients (qwen3_params order) into a gradient container on any device
static int grads_upload(qwen3_t *g, float **h) {
    int n = qwen3_n_params(g);
    qwen3_param_t ps[n];
    qwen3_params(g, ps, n);
    for (int i = 0; i < n; i++) {
        tensor_t v = tensor_view(h[i], DTYPE_F32, DEVICE_CPU, ps[i].t->ndim, ps[i].t->shape);
        if (tensor_copy(ps[i].t, &v)) return -1;
    }
    return 0;
}

// the worst normalized error over the tensors of two optimizer state files
static double state_err(const char *a, const char *b) {
    safetensors_t sa, sb;
    if (safetensors_open(&sa, a)) return INFINITY;
    if (safetensors_open(&sb, b)) {
        safetensors_close(&sa);
        return INFINITY;
    }
    double worst = sa.n == sb.n ? 0 : INFINITY;
    for (int i = 0; i < sa.n; i++) {
        const st_tensor_t *x = &sa.tensors[i], *y = safetensors_find(&sb, x->name);
        if (!y || y->nbytes != x->nbytes || y->dtype != x->dtype) worst = INFINITY;
        else if (x->dtype == DTYPE_F32) worst = fmax(worst, rel_err(y->data, x->data, (int64_t)(x->nbytes / 4)));
        else if (memcmp(x->data, y->data, x->nbytes)) worst = INFINITY; // optim.state: exact
    }
    safetensors_close(&sa);
    safetensors_close(&sb);
    return worst;
}

static int run_optim(qwen3_t *cpu, qwen3_t *dev) {
    const int np = qwen3_n_params(cpu);
    ref_t ref;
    if (run_ref(cpu, &ref)) return 1;
    qwen3_t gc, gd;
    OK(qwen3_grads_init(&gc, cpu));
    OK(qwen3_grads_init(&gd, dev));
    OK(grads_upload(&gc, ref.g));
    OK(grads_upload(&gd, ref.g));
    optim_config_t cfg;
    optim_config_default(&cfg);
    cfg.lr = 1e-2;
    cfg.weight_decay = 0.1;
    cfg.decay_embeddings = 1;
    cfg.clip_norm = 0.05;
    cfg.warmup_steps = 2;
    optim_t oc, od;
    OK(optim_init_qwen3(&oc, &cfg, cpu));
    OK(optim_init_qwen3(&od, &cfg, dev));
    char pc[] = "/tmp/test_train_cuda_oc_XXXXXX", pd[] = "/tmp/test_train_cuda_od_XXXXXX";
    int fc = mkstemp(pc), fd = mkstemp(pd);
    REQUIRE(fc >= 0 && fd >= 0, "mkstemp");
    close(fc);
    close(fd);
    double werr = 0, serr = 0, nerr = 0, clip = 1;
    for (int step = 0; step < 4; step++) {
        if (step == 3) { // the CPU's state into the device optimizer, then one more step
            OK(optim_save(&oc, pc));
            OK(optim_load(&od, pc));
        }
        optim_stats_t sc, sd;
        REQUIRE(optim_step_qwen3(&oc, &gc, 0.5, 1.0, &sc) == 0, "cpu step: %s", err_msg());
        REQUIRE(optim_step_qwen3(&od, &gd, 0.5, 1.0, &sd) == 0, "device step %d: %s", step, err_msg());
        nerr = fmax(nerr, fabs(sd.grad_norm - sc.grad_norm) / sc.grad_norm);
        clip = fmin(clip, sc.clip_coef);
        float **wc = grads_host(cpu), **wd = grads_host(dev); // the weights (qwen3_params order)
        REQUIRE(wc && wd, "download weights");
        char wn[96] = "";
        werr = fmax(werr, grads_err(dev, wd, wc, 1.0f, wn));
        grads_host_free(wc, np);
        grads_host_free(wd, np);
        OK(optim_save(&oc, pc));
        OK(optim_save(&od, pd));
        serr = fmax(serr, state_err(pc, pd));
    }
    const double tol = self_check ? 0 : 1e-6;
    CHECK(clip < 1, "the clip should be active (coefficient %g)", clip);
    CHECK(nerr <= 1e-9, "optimizer: gradient norm rel. err %.3g", nerr);
    CHECK(werr <= tol && serr <= tol, "optimizer: weights err %.3g, moments err %.3g (tol %g)", werr, serr, tol);
    printf("optimizer (4 steps, clip coef %.3g): grad norm %.2e  weights %.2e  moments %.2e\n", clip, nerr,
           werr, serr);
    // NaN guard: one NaN in a device gradient
    qwen3_param_t ps[np];
    qwen3_params(&gd, ps, np);
    float nan = NAN;
    int64_t one = 1;
    tensor_t src = tensor_view(&nan, DTYPE_F32, DEVICE_CPU, 1, &one);
    tensor_t dst = tensor_view((float *)ps[5].t->data + 17, DTYPE_F32, ps[5].t->device, 1, &one);
    OK(tensor_copy(&dst, &src));
    float **before = grads_host(dev);
    optim_stats_t sd;
    int r = optim_step_qwen3(&od, &gd, 0.5, 1.0, &sd);
    float **after = grads_host(dev);
    REQUIRE(before && after, "download weights");
    int same = 1;
    qwen3_param_t pw[np];
    qwen3_params(dev, pw, np);
    for (int i = 0; i < np; i++) same = same && !memcmp(before[i], after[i], tensor_nbytes(pw[i].t));
    CHECK(r == 1 && sd.skipped && strstr(sd.msg, ps[5].name) && strstr(sd.msg, "element 17") && same,
          "NaN guard: returned %d, msg '%s', weights %s", r, sd.msg, same ? "unchanged" : "CHANGED");
    grads_host_free(before, np);
    grads_host_free(after, np);
    unlink(pc);
    unlink(pd);
    optim_free(&oc);
    optim_free(&od);
    qwen3_free(&gc);
    qwen3_free(&gd);
    grads_host_free(ref.g, np);
    return 0;
}

// every case of one model pair: full vocabulary and the restriction, checkpoint 0 and 1
static int run_model(const char *name, qwen3_t *cpu, qwen3_t *dev, double tol) {
    for (int restrict_out = 0; restrict_out <= 1; restrict_out++) {
        OK(qwen3_set_output_vocab(cpu, restrict_out ? out_ids : NULL, restrict_out ? N_OUT : 0));
        OK(qwen3_set_output_vocab(dev, restrict_out ? out_ids : NULL, restrict_out ? N_OUT : 0));
        ref_t ref;
        if (run_ref(cpu, &ref)) return 1;
        for (int ck = 0; ck <= 1; ck++) {
            char what[96];
            snprintf(what, sizeof what, "%s%s%s", name, restrict_out ? " restricted" : " full-vocab",
                     ck ? " checkpoint" : "");
            if (run_case(what, dev, &ref, ck, tol)) return 1;
        }
        grads_host_free(ref.g, qwen3_n_params(cpu));
    }
    OK(qwen3_set_output_vocab(cpu, NULL, 0));
    OK(qwen3_set_output_vocab(dev, NULL, 0));
    return 0;
}

int main(int argc, char **argv) {
    const char *data = TEST_DATA_DIR;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self-check") == 0) self_check = 1;
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) data = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--self-check] [--data DIR]\n", argv[0]);
            return 2;
        }
    }
    kernels_set_threads(2);
    if (self_check) {
        dut = DEVICE_CPU;
        printf("self-check: the CPU as the device under test (errors must be exactly 0)\n");
    } else if (!kernels_backend_available(DEVICE_CUDA)) {
        printf("SKIP: no usable CUDA device (run with --self-check to test the harness on the CPU)\n");
        return 77;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/qwen3-tiny", data);
    qwen3_t cpu, dev;
    OK(qwen3_load(&cpu, dir, DEVICE_CPU));
    OK(qwen3_load(&dev, dir, dut));
    make_batch(cpu.cfg.vocab_size);
    // F32: self-check demands exact equality (same code, same device)
    const double tol = self_check ? 0.0 : 1e-4;
    if (run_model("tied F32", &cpu, &dev, tol)) return 1;
    OK(model_untie(&cpu));
    OK(model_untie(&dev));
    if (run_model("untied F32", &cpu, &dev, tol)) return 1;
    if (run_optim(&cpu, &dev)) return 1;
    qwen3_free(&dev);
    if (!self_check) { // BF16 weights (CUDA only: the CPU backend computes on F32 weights)
        qwen3_free(&cpu);
        OK(qwen3_load(&cpu, dir, DEVICE_CPU));
        OK(qwen3_load(&dev, dir, dut));
        OK(model_convert(&dev, DTYPE_BF16));
        if (run_model("tied BF16", &cpu, &dev, 1e-1)) return 1;
        qwen3_free(&dev);
    }
    qwen3_free(&cpu);
    printf("worst F32 error over all cases: lp / entropy %.3g (abs), gradients %.3g (normalized)\n",
           worst_lp, worst_grad);
    return test_exit("test_train_cuda");
}
