// optim: AdamW, grad-norm clip, warmup + cosine schedule, NaN guard, state save/load (optim.h).
#include "optim.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/err.h"
#include "../model/safetensors.h"
#include "../model/qwen3_train.h"
#ifdef TRUSTEE_CUDA
#include "../kernels/cuda/adamw.h"
#include "../kernels/cuda/cuda_ops.h"
#endif

void optim_config_default(optim_config_t *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1e-5;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.01;
    c->clip_norm = 1.0;
}

double optim_lr(const optim_config_t *c, int64_t step) {
    if (step < 0) step = 0;
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    if (c->total_steps <= 0 || c->total_steps <= c->warmup_steps) return c->lr;
    double p = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (p > 1) p = 1;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * p));
}

static int optim_check_config(const optim_config_t *c) {
    if (!(c->lr >= 0) || !isfinite(c->lr)) return err_set("optimizer: lr must be a finite number >= 0, found %g", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1)) return err_set("optimizer: beta1 must be in [0, 1), found %g", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1)) return err_set("optimizer: beta2 must be in [0, 1), found %g", c->beta2);
    if (!(c->eps > 0)) return err_set("optimizer: eps must be > 0, found %g", c->eps);
    if (!(c->weight_decay >= 0)) return err_set("optimizer: weight_decay must be >= 0, found %g", c->weight_decay);
    if (!(c->min_lr >= 0 && c->min_lr <= c->lr))
        return err_set("optimizer: min_lr must be in [0, lr = %g], found %g", c->lr, c->min_lr);
    if (c->warmup_steps < 0 || c->total_steps < 0)
        return err_set("optimizer: warmup_steps and total_steps must be >= 0, found %lld and %lld",
                       (long long)c->warmup_steps, (long long)c->total_steps);
    return 0;
}

int optim_init(optim_t *o, const optim_config_t *cfg, const optim_spec_t *specs, int n) {
    memset(o, 0, sizeof *o);
    if (optim_check_config(cfg)) return -1;
    o->cfg = *cfg;
    o->p = calloc(n > 0 ? (size_t)n : 1, sizeof *o->p);
    if (!o->p) return err_set("optimizer: out of memory");
    for (int i = 0; i < n; i++) {
        const optim_spec_t *s = &specs[i];
        optim_param_t *p = &o->p[i];
        o->n_params = i + 1;
#ifdef TRUSTEE_CUDA
        const int dev_ok = s->w->device == specs[0].w->device; // all on the CPU, or all on CUDA
#else
        const int dev_ok = s->w->device == DEVICE_CPU;
#endif
        if (s->w->dtype != DTYPE_F32 || !dev_ok) {
            err_set("optimizer: parameter %s is %s on %s, expected F32 on %s", s->name,
                    dtype_name(s->w->dtype), s->w->device == DEVICE_CPU ? "the CPU" : "CUDA",
                    specs[0].w->device == DEVICE_CPU ? "the CPU" : "CUDA (as the first parameter)");
            optim_free(o);
            return -1;
        }
        if (snprintf(p->name, sizeof p->name, "%s", s->name) >= (int)sizeof p->name) {
            err_set("optimizer: parameter name too long: %s", s->name);
            optim_free(o);
            return -1;
        }
        p->w = s->w;
        p->n = tensor_numel(s->w);
        p->decay = s->decay;
#ifdef TRUSTEE_CUDA
        if (s->w->device == DEVICE_CUDA) { // moments next to the weights, zeroed
            size_t nb = (size_t)p->n * sizeof(float);
            if (cuda_alloc((void **)&p->m, nb) || cuda_alloc((void **)&p->v, nb) || cuda_set_zero(p->m, nb) ||
                cuda_set_zero(p->v, nb)) {
                err_wrap("optimizer: moments of %s on CUDA: ", p->name);
                optim_free(o);
                return -1;
            }
            continue;
        }
#endif
        p->m = calloc(p->n > 0 ? (size_t)p->n : 1, sizeof(float));
        p->v = calloc(p->n > 0 ? (size_t)p->n : 1, sizeof(float));
        if (!p->m || !p->v) {
            err_set("optimizer: out of memory for the moments of %s (%lld elements)", p->name, (long long)p->n);
            optim_free(o);
            return -1;
        }
    }
    return 0;
}

int optim_init_qwen3(optim_t *o, const optim_config_t *cfg, qwen3_t *m) {
    int n = qwen3_n_params(m);
    qwen3_param_t *qp = calloc((size_t)n, sizeof *qp);
    optim_spec_t *sp = calloc((size_t)n, sizeof *sp);
    if (!qp || !sp) {
        free(qp);
        free(sp);
        return err_set("optimizer: out of memory");
    }
    int rc = -1;
    if (qwen3_params(m, qp, n) == n) {
        for (int i = 0; i < n; i++) {
            int embed = strcmp(qp[i].name, "model.embed_tokens.weight") == 0 ||
                        strcmp(qp[i].name, "lm_head.weight") == 0;
            sp[i].name = qp[i].name;
            sp[i].w = qp[i].t;
            sp[i].decay = qp[i].t->ndim >= 2 && (!embed || cfg->decay_embeddings);
        }
        rc = optim_init(o, cfg, sp, n);
    }
    free(qp);
    free(sp);
    return rc;
}

// 1 when the parameters (and their moments) are on CUDA
static int optim_on_cuda(const optim_t *o) {
    return o->n_params > 0 && o->p[0].w && o->p[0].w->device == DEVICE_CUDA;
}

// copies n floats between a moment buffer (on the optimizer's device) and the host
static int moment_copy(const optim_t *o, float *dst, const float *src, int64_t n, int to_host) {
    if (!optim_on_cuda(o)) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    }
#ifdef TRUSTEE_CUDA
    return cuda_memcpy(dst, to_host ? DEVICE_CPU : DEVICE_CUDA, src, to_host ? DEVICE_CUDA : DEVICE_CPU,
                       (size_t)n * sizeof(float));
#else
    return err_set("optimizer: CUDA moments, but trustee was built without CUDA");
#endif
}

void optim_free(optim_t *o) {
    for (int i = 0; i < o->n_params; i++) {
#ifdef TRUSTEE_CUDA
        if (o->p[i].w && o->p[i].w->device == DEVICE_CUDA) {
            cuda_free(o->p[i].m);
            cuda_free(o->p[i].v);
            continue;
        }
#endif
        free(o->p[i].m);
        free(o->p[i].v);
    }
    free(o->p);
    memset(o, 0, sizeof *o);
}

// sum of squares of g (n) in double; sets *bad to the first non-finite index (or -1)
static double optim_sumsq(const float *g, int64_t n, int64_t *bad) {
    double ss = 0;
    int64_t first = -1;
#pragma omp parallel for reduction(+ : ss) schedule(static)
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * (double)g[i];
    if (!isfinite(ss))
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(g[i])) {
                first = i;
                break;
            }
    *bad = first;
    return ss;
}

// from the global sum of squares (all finite): st->grad_norm and st->clip_coef; 1 (step skipped,
// counted) when the scaled gradients would overflow F32
static int optim_norm_clip(optim_t *o, double ss, double grad_scale, optim_stats_t *st) {
    const optim_config_t *c = &o->cfg;
    double norm = fabs(grad_scale) * sqrt(ss);
    st->grad_norm = norm;
    if (c->clip_norm > 0) {
        double coef = c->clip_norm / (norm + 1e-6);
        if (coef < 1) st->clip_coef = coef;
    }
    // every element is finite, but the scaled gradients (norm > FLT_MAX) or their squares in the
    // second moment (|g| > sqrt(FLT_MAX)) would overflow F32
    if (!(norm <= FLT_MAX) || !(norm * st->clip_coef <= 1.8e19)) {
        st->skipped = 1;
        snprintf(st->msg, sizeof st->msg, "global gradient norm %g (grad_scale %g, clip coefficient %g) "
                 "overflows F32: step %lld skipped, weights and optimizer state unchanged",
                 norm, grad_scale, st->clip_coef, (long long)o->step + 1);
        o->n_skipped++;
        return 1;
    }
    return 0;
}

int optim_step(optim_t *o, float *const *grads, double grad_scale, double loss, optim_stats_t *st) {
    optim_stats_t local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    const optim_config_t *c = &o->cfg;
    st->lr = optim_lr(c, o->step);
    st->clip_coef = 1;
    if (!isfinite(grad_scale)) return err_set("optimizer: grad_scale must be finite, found %g", grad_scale);
    if (optim_on_cuda(o))
        return err_set("optimizer: the parameters are on CUDA: use optim_step_qwen3 with device gradients");

    // ---- the NaN guard and the global norm, before anything is touched ----
    if (!isfinite(loss)) {
        st->skipped = 1;
        snprintf(st->msg, sizeof st->msg, "loss is %s: step %lld skipped, weights and optimizer state unchanged",
                 isnan(loss) ? "NaN" : "Inf", (long long)o->step + 1);
        o->n_skipped++;
        return 1;
    }
    double ss = 0;
    for (int i = 0; i < o->n_params; i++) {
        int64_t bad;
        ss += optim_sumsq(grads[i], o->p[i].n, &bad);
        if (bad >= 0) {
            float x = grads[i][bad];
            st->skipped = 1;
            snprintf(st->msg, sizeof st->msg,
                     "gradient of %s is %s at element %lld (of %lld): step %lld skipped, weights and "
                     "optimizer state unchanged",
                     o->p[i].name, isnan(x) ? "NaN" : (x > 0 ? "+Inf" : "-Inf"), (long long)bad,
                     (long long)o->p[i].n, (long long)o->step + 1);
            o->n_skipped++;
            return 1;
        }
    }
    if (optim_norm_clip(o, ss, grad_scale, st)) return 1;

    // ---- the update (scalars as torch.optim.AdamW computes them, elementwise math in float) ----
    int64_t t = o->step + 1;
    double lr = st->lr;
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    const float gs = (float)grad_scale, cc = (float)st->clip_coef;
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float omb1 = (float)(1.0 - c->beta1), omb2 = (float)(1.0 - c->beta2);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)c->eps;
    const float decay_mul = (float)(1.0 - lr * c->weight_decay);
    for (int i = 0; i < o->n_params; i++) {
        optim_param_t *p = &o->p[i];
        float *w = p->w->data, *m = p->m, *v = p->v;
        const float *g = grads[i];
        const int decay = p->decay && c->weight_decay > 0;
        const int64_t n = p->n;
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; k++) {
            float gk = g[k];
            if (gs != 1.0f) gk *= gs;
            if (cc != 1.0f) gk *= cc;
            float wk = w[k];
            if (decay) wk *= decay_mul;
            float mk = m[k] * b1 + gk * omb1;
            float vk = v[k] * b2 + gk * gk * omb2;
            float denom = sqrtf(vk) / bc2_sqrt + eps;
            w[k] = wk + (-step_size) * (mk / denom);
            m[k] = mk;
            v[k] = vk;
        }
    }
    o->step = t;
    return 0;
}

#ifdef TRUSTEE_CUDA
// optim_step on CUDA: parameters, moments and gradients (F32 / BF16 / F16) on the device. The same
// guard and scalars as optim_step; per parameter one device sum of squares (in double, downloaded
// together), then one cuda_adamw_step each (kernels/cuda/adamw.h: the same F32 element math).
static int optim_step_cuda(optim_t *o, const qwen3_param_t *g, double grad_scale, double loss,
                           optim_stats_t *st) {
    optim_stats_t local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    const optim_config_t *c = &o->cfg;
    st->lr = optim_lr(c, o->step);
    st->clip_coef = 1;
    if (!isfinite(grad_scale)) return err_set("optimizer: grad_scale must be finite, found %g", grad_scale);
    if (!isfinite(loss)) {
        st->skipped = 1;
        snprintf(st->msg, sizeof st->msg, "loss is %s: step %lld skipped, weights and optimizer state unchanged",
                 isnan(loss) ? "NaN" : "Inf", (long long)o->step + 1);
        o->n_skipped++;
        return 1;
    }
    const int np = o->n_params;
    double *d_ss = NULL, *ss = malloc((size_t)np * sizeof(double));
    int rc = ss ? cuda_alloc((void **)&d_ss, (size_t)np * sizeof(double)) : err_set("optimizer: out of memory");
    for (int i = 0; i < np && !rc; i++) rc = cuda_grad_sumsq(d_ss + i, g[i].t->data, g[i].t->dtype, o->p[i].n, 0);
    rc = rc || cuda_memcpy(ss, DEVICE_CPU, d_ss, DEVICE_CUDA, (size_t)np * sizeof(double));
    cuda_free(d_ss);
    double total = 0;
    for (int i = 0; i < np && !rc; i++) {
        if (!isfinite(ss[i])) { // the NaN guard: find the first bad element on the host
            const int64_t n = o->p[i].n;
            float *h = malloc((size_t)n * sizeof(float));
            tensor_t hv = tensor_view(h, DTYPE_F32, DEVICE_CPU, 1, &n);
            tensor_t gv = tensor_view(g[i].t->data, g[i].t->dtype, DEVICE_CUDA, 1, &n);
            int64_t bad = 0;
            if (!h || tensor_copy(&hv, &gv)) {
                free(h);
                free(ss);
                return err_wrap("optimizer: gradient of %s: ", o->p[i].name);
            }
            while (bad < n - 1 && isfinite(h[bad])) bad++;
            float x = h[bad];
            free(h);
            free(ss);
            st->skipped = 1;
            snprintf(st->msg, sizeof st->msg,
                     "gradient of %s is %s at element %lld (of %lld): step %lld skipped, weights and "
                     "optimizer state unchanged",
                     o->p[i].name, isnan(x) ? "NaN" : (x > 0 ? "+Inf" : "-Inf"), (long long)bad,
                     (long long)n, (long long)o->step + 1);
            o->n_skipped++;
            return 1;
        }
        total += ss[i];
    }
    free(ss);
    if (rc) return err_wrap("optimizer: ");
    if (optim_norm_clip(o, total, grad_scale, st)) return 1;
    const int64_t t = o->step + 1;
    for (int i = 0; i < np && !rc; i++) {
        optim_param_t *p = &o->p[i];
        adamw_scalars_t sc;
        adamw_scalars_init(&sc, st->lr, c->beta1, c->beta2, c->eps, c->weight_decay, p->decay, t,
                           grad_scale, st->clip_coef);
        rc = cuda_adamw_step(p->w->data, p->m, p->v, g[i].t->data, g[i].t->dtype, NULL, DTYPE_F32, p->n, &sc);
    }
    if (rc) return err_wrap("optimizer: step %lld on CUDA: ", (long long)t); // weights partly updated
    o->step = t;
    return 0;
}
#endif

int optim_step_qwen3(optim_t *o, qwen3_t *grads, double grad_scale, double loss, optim_stats_t *st) {
    int n = qwen3_n_params(grads);
    if (n != o->n_params)
        return err_set("optimizer: the gradients have %d parameters, the optimizer %d", n, o->n_params);
    qwen3_param_t *qp = calloc((size_t)n, sizeof *qp);
    float **g = calloc((size_t)n, sizeof *g);
    int rc = -1;
    if (!qp || !g) {
        err_set("optimizer: out of memory");
        goto done;
    }
    if (qwen3_params(grads, qp, n) != n) goto done;
    for (int i = 0; i < n; i++) {
        if (strcmp(qp[i].name, o->p[i].name) != 0) {
            err_set("optimizer: gradient %d is %s, expected %s", i, qp[i].name, o->p[i].name);
            goto done;
        }
        const device_t dev = optim_on_cuda(o) ? DEVICE_CUDA : DEVICE_CPU;
        if (qp[i].t->dtype != DTYPE_F32 || qp[i].t->device != dev || tensor_numel(qp[i].t) != o->p[i].n) {
            err_set("optimizer: gradient %s: expected F32 on %s with %lld elements, found %s on %s with %lld",
                    qp[i].name, dev == DEVICE_CPU ? "the CPU" : "CUDA", (long long)o->p[i].n,
                    dtype_name(qp[i].t->dtype), qp[i].t->device == DEVICE_CPU ? "the CPU" : "CUDA",
                    (long long)tensor_numel(qp[i].t));
            goto done;
        }
        g[i] = qp[i].t->data;
    }
#ifdef TRUSTEE_CUDA
    if (optim_on_cuda(o)) {
        rc = optim_step_cuda(o, qp, grad_scale, loss, st);
        goto done;
    }
#endif
    rc = optim_step(o, g, grad_scale, loss, st);
done:
    free(qp);
    free(g);
    return rc;
}

// ---- state save / load ----

#define OPTIM_STATE_NAME "optim.state"

int optim_save(const optim_t *o, const char *path) {
    int n = 2 * o->n_params + 1;
    st_tensor_t *t = calloc((size_t)n, sizeof *t);
    char (*names)[112] = calloc((size_t)n, sizeof *names);
    int32_t state[4] = {(int32_t)(o->step & 0xffffffff), (int32_t)(o->step >> 32),
                        (int32_t)(o->n_skipped & 0xffffffff), (int32_t)(o->n_skipped >> 32)};
    // CUDA moments: downloaded into one host copy per moment
    float **host = optim_on_cuda(o) ? calloc((size_t)n, sizeof *host) : NULL;
    if (!t || !names || (optim_on_cuda(o) && !host)) {
        free(t);
        free(names);
        free(host);
        return err_set("%s: out of memory", path);
    }
    int rc = 0;
    for (int i = 0; i < o->n_params; i++) {
        const optim_param_t *p = &o->p[i];
        for (int k = 0; k < 2; k++) {
            st_tensor_t *s = &t[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            s->name = names[2 * i + k];
            s->dtype = DTYPE_F32;
            s->ndim = p->w->ndim;
            memcpy(s->shape, p->w->shape, sizeof s->shape);
            s->data = k ? p->v : p->m;
            s->nbytes = (size_t)p->n * sizeof(float);
            if (host && !rc) {
                float **h = &host[2 * i + k];
                *h = malloc(s->nbytes > 0 ? s->nbytes : 1);
                rc = *h ? moment_copy(o, *h, k ? p->v : p->m, p->n, 1) : err_set("%s: out of memory", path);
                s->data = *h;
            }
        }
    }
    st_tensor_t *s = &t[n - 1];
    snprintf(names[n - 1], sizeof names[0], "%s", OPTIM_STATE_NAME);
    s->name = names[n - 1];
    s->dtype = DTYPE_I32;
    s->ndim = 1;
    s->shape[0] = 4;
    s->data = state;
    s->nbytes = sizeof state;
    rc = rc || safetensors_write(path, t, n);
    for (int i = 0; host && i < n; i++) free(host[i]);
    free(host);
    free(t);
    free(names);
    return rc;
}

int optim_load(optim_t *o, const char *path) {
    safetensors_t st;
    if (safetensors_open(&st, path)) return -1;
    int rc = -1;
    int expect = 2 * o->n_params + 1;
    if (st.n != expect) {
        err_set("%s: %d tensors, expected %d (exp_avg and exp_avg_sq of %d parameters + %s)", path, st.n,
                expect, o->n_params, OPTIM_STATE_NAME);
        goto done;
    }
    const st_tensor_t *s = safetensors_find(&st, OPTIM_STATE_NAME);
    if (!s || s->dtype != DTYPE_I32 || s->ndim != 1 || s->shape[0] != 4) {
        err_set("%s: expected tensor %s I32 (4), found %s", path, OPTIM_STATE_NAME, s ? "another dtype/shape" : "none");
        goto done;
    }
    int32_t state[4];
    memcpy(state, s->data, sizeof state);
    // check every moment first, so a bad file leaves the optimizer as it was
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < o->n_params; i++) {
            optim_param_t *p = &o->p[i];
            for (int k = 0; k < 2; k++) {
                char name[112];
                snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
                const st_tensor_t *x = safetensors_find(&st, name);
                if (pass == 0) {
                    if (!x) {
                        err_set("%s: missing tensor %s", path, name);
                        goto done;
                    }
                    int same = x->dtype == DTYPE_F32 && x->ndim == p->w->ndim;
                    for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == p->w->shape[d];
                    if (!same) {
                        err_set("%s: tensor %s: expected F32 of the shape of the parameter (%lld elements), "
                                "found %s with %lld elements", path, name, (long long)p->n, dtype_name(x->dtype),
                                (long long)(x->nbytes / dtype_size(x->dtype)));
                        goto done;
                    }
                } else if (moment_copy(o, k ? p->v : p->m, x->data, p->n, 0)) {
                    err_wrap("%s: tensor %s: ", path, name);
                    goto done;
                }
            }
        }
    o->step = (int64_t)(uint32_t)state[0] | ((int64_t)state[1] << 32);
    o->n_skipped = (int64_t)(uint32_t)state[2] | ((int64_t)state[3] << 32);
    rc = 0;
done:
    safetensors_close(&st);
    return rc;
}
