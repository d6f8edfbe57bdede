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
        if (s->w->dtype != DTYPE_F32 || s->w->device != DEVICE_CPU) {
            err_set("optimizer: parameter %s is %s on %s, expected F32 on the CPU", s->name,
                    dtype_name(s->w->dtype), s->w->device == DEVICE_CPU ? "the CPU" : "CUDA");
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

void optim_free(optim_t *o) {
    for (int i = 0; i < o->n_params; i++) {
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

int optim_step(optim_t *o, float *const *grads, double grad_scale, double loss, optim_stats_t *st) {
    optim_stats_t local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    const optim_config_t *c = &o->cfg;
    st->lr = optim_lr(c, o->step);
    st->clip_coef = 1;
    if (!isfinite(grad_scale)) return err_set("optimizer: grad_scale must be finite, found %g", grad_scale);

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
        if (qp[i].t->dtype != DTYPE_F32 || qp[i].t->device != DEVICE_CPU || tensor_numel(qp[i].t) != o->p[i].n) {
            err_set("optimizer: gradient %s: expected F32 on the CPU with %lld elements, found %s with %lld",
                    qp[i].name, (long long)o->p[i].n, dtype_name(qp[i].t->dtype), (long long)tensor_numel(qp[i].t));
            goto done;
        }
        g[i] = qp[i].t->data;
    }
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
    if (!t || !names) {
        free(t);
        free(names);
        return err_set("%s: out of memory", path);
    }
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
    int rc = safetensors_write(path, t, n);
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
                } else {
                    memcpy(k ? p->v : p->m, x->data, (size_t)p->n * sizeof(float));
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
