// trustee grad: the loss a case file describes and the gradient of every parameter.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd.h"
#include "kernels/err.h"
#include "learner/loss.h"
#include "model/qwen3.h"
#include "model/qwen3_train.h"

static const char *GRAD_USAGE =
    "usage: trustee grad --model DIR --case CASE.json --out G.safetensors [--checkpoint] [--threads N]\n"
    "\n"
    "Computes the loss of a case file (kind \"sft\" or \"grpo\", the format of\n"
    "tests/data/qwen3-tiny/{sft,grpo}.json) with the Qwen3 checkpoint in DIR, writes d loss / d param\n"
    "for every parameter under its Hugging Face name (F32 safetensors; a tied model has one\n"
    "model.embed_tokens.weight with the total gradient) and prints `loss`, `grad_norm` and, for\n"
    "GRPO, the step metrics.\n"
    "\n"
    "case keys: kind, input_ids [B][T] (right-padded), loss_mask or response_mask [B][T]\n"
    "  (token-aligned: 1 on target tokens), lengths [B] (optional);\n"
    "  grpo: advantages [B] (or rewards [B], one group), old_logprobs [B][T], ref_logprobs [B][T]\n"
    "  (needed when beta != 0), eps_low (0.2), eps_high (0.28), beta (0.001), dual_clip (off),\n"
    "  sample_logprobs [B][T] (optional: reports the sampling/learner gap), temperature (1).\n"
    "\n"
    "options:\n"
    "  --model DIR      Hugging Face checkpoint directory\n"
    "  --case FILE      case file (JSON)\n"
    "  --out FILE       gradient file to write (safetensors)\n"
    "  --checkpoint     recompute each layer in the backward (activation checkpointing)\n"
    "  --threads N      CPU threads (default: all cores)\n";

typedef struct {
    const char *path;
    json_t *root;
    int B, T;
} case_t;

// a number key (def when absent and def_ok); errors name the file and key
static int case_number(const case_t *cs, const char *key, int required, double def, double *out) {
    json_t *v = json_object_get(cs->root, key);
    if (!v) {
        if (required) return err_set("%s: missing key \"%s\"", cs->path, key);
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return err_set("%s: key \"%s\": expected a number", cs->path, key);
    *out = json_number_value(v);
    if (!isfinite(*out)) return err_set("%s: key \"%s\": not a finite number", cs->path, key);
    return 0;
}

// a [B] or [B][T] array of numbers (cols == 0: 1-D); integers checked when as_int. Fills out
// (rows * max(cols,1)) doubles. NaN (as a JSON string or null) -> error.
static int case_array(const case_t *cs, const char *key, int rows, int cols, double *out) {
    json_t *a = json_object_get(cs->root, key);
    if (!a) return err_set("%s: missing key \"%s\"", cs->path, key);
    if (!json_is_array(a) || (int)json_array_size(a) != rows)
        return err_set("%s: key \"%s\": expected an array of %d %s, found %s of %d", cs->path, key, rows,
                       cols ? "rows" : "numbers", json_is_array(a) ? "an array" : "something else",
                       json_is_array(a) ? (int)json_array_size(a) : 0);
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array_get(a, (size_t)r);
        if (cols == 0) {
            if (!json_is_number(row))
                return err_set("%s: key \"%s\": entry %d is not a number (NaN?)", cs->path, key, r);
            out[r] = json_number_value(row);
            if (!isfinite(out[r])) return err_set("%s: key \"%s\": entry %d is not finite", cs->path, key, r);
            continue;
        }
        if (!json_is_array(row) || (int)json_array_size(row) != cols)
            return err_set("%s: key \"%s\": row %d: expected %d entries (seq_len), found %d", cs->path, key,
                           r, cols, json_is_array(row) ? (int)json_array_size(row) : -1);
        for (int t = 0; t < cols; t++) {
            json_t *v = json_array_get(row, (size_t)t);
            if (!json_is_number(v))
                return err_set("%s: key \"%s\": [%d][%d] is not a number (NaN?)", cs->path, key, r, t);
            double x = json_number_value(v);
            if (!isfinite(x)) return err_set("%s: key \"%s\": [%d][%d] is not finite", cs->path, key, r, t);
            out[(int64_t)r * cols + t] = x;
        }
    }
    return 0;
}

// the whole computation; returns 0 or -1 (err_set)
static int run_grad(const char *model_dir, const char *case_path, const char *out_path, int checkpoint) {
    json_error_t jerr;
    case_t cs = {.path = case_path};
    cs.root = json_load_file(case_path, 0, &jerr);
    if (!cs.root) return err_set("%s:%d: invalid JSON: %s", case_path, jerr.line, jerr.text);
    double *buf = NULL, *lens_d = NULL, *adv_d = NULL;
    int32_t *ids = NULL, *lengths = NULL;
    uint8_t *mask = NULL;
    float *lp = NULL, *ent = NULL, *dlp = NULL, *old_lp = NULL, *ref_lp = NULL, *sample_lp = NULL, *adv = NULL;
    qwen3_t m = {0}, g = {0};
    qwen3_train_t tr = {0};
    int have_model = 0, have_grads = 0, have_tr = 0, rc = -1;

    json_t *kind_j = json_object_get(cs.root, "kind");
    const char *kind = json_string_value(kind_j);
    if (!kind) {
        err_set("%s: missing key \"kind\" (\"sft\" or \"grpo\")", case_path);
        goto done;
    }
    int is_grpo = strcmp(kind, "grpo") == 0;
    if (!is_grpo && strcmp(kind, "sft") != 0) {
        err_set("%s: key \"kind\": expected \"sft\" or \"grpo\", found \"%s\"", case_path, kind);
        goto done;
    }
    json_t *ids_j = json_object_get(cs.root, "input_ids");
    if (!ids_j) {
        err_set("%s: missing key \"input_ids\"", case_path);
        goto done;
    }
    if (!json_is_array(ids_j) || json_array_size(ids_j) == 0 || !json_is_array(json_array_get(ids_j, 0)) ||
        json_array_size(json_array_get(ids_j, 0)) == 0) {
        err_set("%s: key \"input_ids\": expected a non-empty array of non-empty rows [B][T]", case_path);
        goto done;
    }
    cs.B = (int)json_array_size(ids_j);
    cs.T = (int)json_array_size(json_array_get(ids_j, 0));
    const int B = cs.B, T = cs.T;
    const int64_t N = (int64_t)B * T;
    buf = malloc((size_t)N * sizeof(double));
    ids = malloc((size_t)N * sizeof(int32_t));
    mask = malloc((size_t)N);
    lp = malloc((size_t)N * sizeof(float));
    ent = malloc((size_t)N * sizeof(float));
    dlp = malloc((size_t)N * sizeof(float));
    lens_d = malloc((size_t)B * sizeof(double));
    lengths = malloc((size_t)B * sizeof(int32_t));
    if (!buf || !ids || !mask || !lp || !ent || !dlp || !lens_d || !lengths) {
        err_set("out of memory");
        goto done;
    }
    if (case_array(&cs, "input_ids", B, T, buf)) goto done;
    for (int64_t i = 0; i < N; i++) {
        if (buf[i] != floor(buf[i]) || buf[i] < 0 || buf[i] > 2147483647.0) {
            err_set("%s: key \"input_ids\": [%d][%d] = %g is not a token id", case_path, (int)(i / T),
                    (int)(i % T), buf[i]);
            goto done;
        }
        ids[i] = (int32_t)buf[i];
    }
    const char *mask_key = json_object_get(cs.root, "loss_mask") ? "loss_mask"
                         : json_object_get(cs.root, "response_mask") ? "response_mask"
                         : is_grpo ? "response_mask" : "loss_mask";
    if (case_array(&cs, mask_key, B, T, buf)) goto done;
    int64_t n_mask = 0;
    for (int64_t i = 0; i < N; i++) {
        if (buf[i] != 0 && buf[i] != 1) {
            err_set("%s: key \"%s\": [%d][%d] = %g, expected 0 or 1", case_path, mask_key, (int)(i / T),
                    (int)(i % T), buf[i]);
            goto done;
        }
        mask[i] = (uint8_t)buf[i];
        n_mask += mask[i];
    }
    if (n_mask == 0) {
        err_set("%s: key \"%s\": the mask is empty (no loss tokens)", case_path, mask_key);
        goto done;
    }
    if (json_object_get(cs.root, "lengths")) {
        if (case_array(&cs, "lengths", B, 0, lens_d)) goto done;
        for (int b = 0; b < B; b++) {
            if (lens_d[b] != floor(lens_d[b]) || lens_d[b] < 1 || lens_d[b] > T) {
                err_set("%s: key \"lengths\": entry %d is %g, expected 1..%d", case_path, b, lens_d[b], T);
                goto done;
            }
            lengths[b] = (int32_t)lens_d[b];
        }
    } else {
        for (int b = 0; b < B; b++) lengths[b] = T;
    }
    double temperature;
    if (case_number(&cs, "temperature", 0, 1.0, &temperature)) goto done;
    if (!(temperature > 0)) {
        err_set("%s: key \"temperature\": expected > 0, found %g", case_path, temperature);
        goto done;
    }

    // GRPO inputs, read before the model so a bad file fails fast
    learner_grpo_opts_t opts;
    learner_grpo_opts_default(&opts);
    if (is_grpo) {
        if (case_number(&cs, "eps_low", 0, opts.eps_low, &opts.eps_low) ||
            case_number(&cs, "eps_high", 0, opts.eps_high, &opts.eps_high) ||
            case_number(&cs, "beta", 0, opts.beta, &opts.beta) ||
            case_number(&cs, "dual_clip", 0, 0.0, &opts.dual_clip))
            goto done;
        adv_d = malloc((size_t)B * sizeof(double));
        adv = malloc((size_t)B * sizeof(float));
        old_lp = malloc((size_t)N * sizeof(float));
        if (!adv_d || !adv || !old_lp) {
            err_set("out of memory");
            goto done;
        }
        if (json_object_get(cs.root, "advantages")) {
            if (case_array(&cs, "advantages", B, 0, adv_d)) goto done;
            for (int b = 0; b < B; b++) adv[b] = (float)adv_d[b];
        } else if (json_object_get(cs.root, "rewards")) { // one group of B rollouts
            if (case_array(&cs, "rewards", B, 0, adv_d)) goto done;
            float *r = malloc((size_t)B * sizeof(float));
            if (!r) goto done;
            for (int b = 0; b < B; b++) r[b] = (float)adv_d[b];
            int e = learner_group_advantages(r, 1, B, 1e-6, adv, NULL);
            free(r);
            if (e) goto done;
        } else {
            err_set("%s: missing key \"advantages\" (or \"rewards\")", case_path);
            goto done;
        }
        if (case_array(&cs, "old_logprobs", B, T, buf)) goto done;
        for (int64_t i = 0; i < N; i++) old_lp[i] = (float)buf[i];
        if (opts.beta != 0) {
            ref_lp = malloc((size_t)N * sizeof(float));
            if (!ref_lp || case_array(&cs, "ref_logprobs", B, T, buf)) goto done;
            for (int64_t i = 0; i < N; i++) ref_lp[i] = (float)buf[i];
        }
        if (json_object_get(cs.root, "sample_logprobs")) {
            sample_lp = malloc((size_t)N * sizeof(float));
            if (!sample_lp || case_array(&cs, "sample_logprobs", B, T, buf)) goto done;
            for (int64_t i = 0; i < N; i++) sample_lp[i] = (float)buf[i];
        }
    }

    if (qwen3_load(&m, model_dir, DEVICE_CPU)) goto done;
    have_model = 1;
    for (int64_t i = 0; i < N; i++)
        if (ids[i] >= m.cfg.vocab_size) {
            err_set("%s: key \"input_ids\": [%d][%d] = %d is outside the vocabulary (size %d)", case_path,
                    (int)(i / T), (int)(i % T), ids[i], m.cfg.vocab_size);
            goto done;
        }
    if (qwen3_grads_init(&g, &m)) goto done;
    have_grads = 1;
    if (qwen3_train_init(&tr, &m, B, T, checkpoint)) goto done;
    have_tr = 1;
    qwen3_batch_t batch = {.B = B, .T = T, .ids = ids, .lengths = lengths, .mask = mask};
    if (qwen3_train_forward(&m, &tr, &batch, (float)temperature, lp, ent) < 0) {
        err_wrap("%s: ", case_path);
        goto done;
    }
    double loss;
    learner_grpo_metrics_t met;
    if (is_grpo) {
        learner_grpo_batch_t in = {.B = B, .T = T, .mask = mask, .lp = lp, .old_lp = old_lp,
                                   .ref_lp = ref_lp, .sample_lp = sample_lp, .entropy = ent, .adv = adv};
        if (learner_grpo_loss(&opts, &in, dlp, &met)) {
            err_wrap("%s: ", case_path);
            goto done;
        }
        loss = met.loss;
    } else if (learner_sft_loss(N, lp, mask, 0, &loss, dlp)) {
        err_wrap("%s: ", case_path);
        goto done;
    }
    if (qwen3_train_backward(&m, &tr, dlp, &g)) goto done;

    // global norm, NaN check, write
    double ss = 0.0;
    qwen3_param_t *ps = malloc((size_t)qwen3_n_params(&g) * sizeof *ps);
    int np = ps ? qwen3_params(&g, ps, qwen3_n_params(&g)) : err_set("out of memory");
    for (int i = 0; i < np; i++) {
        const float *d = ps[i].t->data;
        for (int64_t j = 0; j < tensor_numel(ps[i].t); j++) ss += (double)d[j] * d[j];
    }
    free(ps);
    if (np < 0) goto done;
    if (!isfinite(ss) || !isfinite(loss)) {
        err_set("%s: the loss (%g) or the gradient norm is not finite", case_path, loss);
        goto done;
    }
    if (qwen3_params_write(&g, out_path)) goto done;
    printf("loss %.10g\n", loss);
    printf("grad_norm %.10g\n", sqrt(ss));
    printf("tokens %lld\n", (long long)n_mask);
    if (is_grpo)
        printf("kl_mean %.6g\nclip_frac %.6g\nratio_min %.6g\nratio_max %.6g\nentropy_mean %.6g\n",
               met.kl_mean, met.clip_frac, met.ratio_min, met.ratio_max, met.entropy_mean);
    if (is_grpo && sample_lp)
        printf("lp_gap_max %.6g\nlp_gap_mean %.6g\n", met.lp_gap_max, met.lp_gap_mean);
    rc = 0;
done:
    if (have_tr) qwen3_train_free(&tr);
    if (have_grads) qwen3_free(&g);
    if (have_model) qwen3_free(&m);
    json_decref(cs.root);
    free(buf);
    free(lens_d);
    free(adv_d);
    free(ids);
    free(lengths);
    free(mask);
    free(lp);
    free(ent);
    free(dlp);
    free(old_lp);
    free(ref_lp);
    free(sample_lp);
    free(adv);
    return rc;
}

int cmd_grad(int argc, char **argv) {
    args_t a;
    args_init(&a, argc, argv);
    if (args_flag(&a, "help") || args_flag(&a, "h")) {
        fputs(GRAD_USAGE, stdout);
        return 0;
    }
    int err = 0;
    long threads;
    const char *dir = args_str(&a, "model", NULL, &err);
    const char *case_path = err ? NULL : args_str(&a, "case", NULL, &err);
    const char *out = err ? NULL : args_str(&a, "out", NULL, &err);
    int checkpoint = err ? 0 : args_flag(&a, "checkpoint");
    if (err || args_int(&a, "threads", 0, &threads) || args_finish(&a)) return cmd_fail("grad");
    if (!dir || !case_path || !out) {
        err_set("--model DIR, --case CASE.json and --out G.safetensors are required (see --help)");
        return cmd_fail("grad");
    }
    kernels_set_threads((int)threads);
    if (run_grad(dir, case_path, out, checkpoint)) return cmd_fail("grad");
    return 0;
}
