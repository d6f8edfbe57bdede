// learner/sft: rendering of chat transcripts for SFT and the SFT training loop (see sft.h).
#include "sft.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/err.h"
#include "../model/chat.h"
#include "../model/qwen3_train.h"
#include "../model/sampler.h"
#include "loss.h"
#include "optim.h"

void learner_sft_example_free(learner_sft_example_t *e) {
    if (!e) return;
    free(e->ids);
    free(e->mask);
    memset(e, 0, sizeof *e);
}

static int render(const tokenizer_t *tok, const json_t *conv, int episode, int max_len, int cut_long,
                  const char *where, learner_sft_example_t *out) {
    memset(out, 0, sizeof *out);
    if (!where) where = "conversation";
    if (max_len < 2) return err_set("%s: max_len must be >= 2, found %d", where, max_len);
    if (!json_is_object(conv) && !json_is_array(conv))
        return err_set("%s: expected a JSON object {\"messages\": [...], \"tools\": [...]}", where);
    json_t *root = NULL; // an object: a shallow copy with "add_generation_prompt": false
    if (json_is_object(conv)) {
        if (json_is_true(json_object_get(conv, "add_generation_prompt")))
            return err_set("%s: add_generation_prompt is true; a training transcript must end with the "
                           "assistant's reply", where);
        if (!json_object_get(conv, "messages")) return err_set("%s: no \"messages\" array", where);
        root = json_copy((json_t *)conv);
        if (!root || json_object_set_new(root, "add_generation_prompt", json_false())) {
            json_decref(root);
            return err_set("out of memory");
        }
    }
    const json_t *r = root ? root : conv;
    chat_t c;
    if (chat_init(&c, tok)) {
        json_decref(root);
        return -1;
    }
    int rc = episode ? chat_load_json_episode(&c, r, where) : chat_load_json(&c, r, where);
    if (!rc) rc = chat_flush(&c);
    json_decref(root);
    if (!rc) {
        int n = c.ids.n;
        if (n > max_len) {
            if (cut_long) {
                n = max_len;
                out->cut = 1;
            } else rc = err_set("%s: %d tokens, longer than max_len %d", where, n, max_len);
        }
        if (!rc) {
            out->ids = malloc((size_t)(n ? n : 1) * sizeof *out->ids);
            out->mask = malloc((size_t)(n ? n : 1));
            if (!out->ids || !out->mask) rc = err_set("out of memory");
        }
        if (!rc) {
            memcpy(out->ids, c.ids.ids, (size_t)n * sizeof *out->ids);
            memcpy(out->mask, c.mask, (size_t)n);
            out->n = n;
            if (n) out->mask[0] = 0; // the first token has no prediction
            for (int t = 0; t < n; t++) out->n_loss += out->mask[t];
            if (out->n_loss == 0)
                rc = err_set("%s: no assistant tokens to train on%s", where,
                             out->cut ? " within max_len" : " (the loss needs an assistant message)");
        }
    }
    chat_free(&c);
    if (rc) learner_sft_example_free(out);
    return rc;
}

int learner_sft_render(const tokenizer_t *tok, const json_t *conv, int episode, int max_len,
                       const char *where, learner_sft_example_t *out) {
    return render(tok, conv, episode, max_len, 0, where, out);
}

int learner_sft_render_cut(const tokenizer_t *tok, const json_t *conv, int episode, int max_len,
                           const char *where, learner_sft_example_t *out) {
    return render(tok, conv, episode, max_len, 1, where, out);
}

void learner_sft_opts_default(learner_sft_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->steps = 100;
    o->batch = 8;
    o->micro_batch = 0;
    o->max_len = 2048;
    o->lr = 1e-5;
    o->min_lr = -1;
    o->weight_decay = 0.01;
    o->clip_norm = 1.0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->warmup = 0;
    o->seed = 0;
    o->recompute = 0;
    o->log_every = 1;
    o->log = NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int learner_sft_run(qwen3_t *m, const learner_sft_example_t *ex, int n, const learner_sft_opts_t *o,
                    learner_sft_result_t *res) {
    learner_sft_result_t r = {0};
    if (res) *res = r;
    const int steps = o->steps, batch = o->batch, M = o->micro_batch > 0 ? o->micro_batch : o->batch;
    if (steps < 1 || batch < 1 || M > batch || o->warmup < 0 || o->stop_window < 0)
        return err_set("sft: expected steps >= 1, batch >= 1, micro_batch <= batch, warmup >= 0, stop_window >= 0 "
                       "(found %d, %d, %d, %d, %d)", steps, batch, M, o->warmup, o->stop_window);
    if (n < 1 || !ex) return err_set("sft: no examples to train on");
    const int V = m->cfg.vocab_size;
    int T_max = 0;
    for (int i = 0; i < n; i++) {
        if (ex[i].n < 2 || ex[i].n_loss < 1 || !ex[i].ids || !ex[i].mask)
            return err_set("sft: example %d has no tokens to train on", i);
        if (o->max_len > 0 && ex[i].n > o->max_len)
            return err_set("sft: example %d has %d tokens, longer than max_len %d", i, ex[i].n, o->max_len);
        for (int t = 0; t < ex[i].n; t++)
            if (ex[i].ids[t] < 0 || ex[i].ids[t] >= V)
                return err_set("sft: example %d: token id %d is outside the model's vocabulary (%d)", i,
                               ex[i].ids[t], V);
        if (ex[i].n > T_max) T_max = ex[i].n;
    }
    FILE *log = o->log ? o->log : stderr;

    int rc = -1, tr_ok = 0, g_ok = 0, o_ok = 0;
    qwen3_t g;
    qwen3_train_t tr;
    optim_t opt;
    int32_t *ids = NULL, *lengths = NULL;
    uint8_t *mask = NULL;
    float *lp = NULL, *dlp = NULL;
    int *order = NULL, *sel = NULL;
    double *window = NULL; // the last stop_window step losses (stop_loss)
    if (qwen3_train_init(&tr, m, M, T_max, o->recompute)) goto done;
    tr_ok = 1;
    if (qwen3_grads_init(&g, m)) goto done;
    g_ok = 1;
    optim_config_t oc;
    optim_config_default(&oc);
    oc.lr = o->lr;
    oc.min_lr = o->min_lr < 0 ? o->lr / 10 : o->min_lr;
    oc.beta1 = o->beta1;
    oc.beta2 = o->beta2;
    oc.weight_decay = o->weight_decay;
    oc.clip_norm = o->clip_norm;
    oc.warmup_steps = o->warmup;
    oc.total_steps = steps;
    if (optim_init_qwen3(&opt, &oc, m)) goto done;
    o_ok = 1;
    ids = calloc((size_t)M * T_max, sizeof *ids);
    lengths = calloc((size_t)M, sizeof *lengths);
    mask = calloc((size_t)M * T_max, 1);
    lp = calloc((size_t)M * T_max, sizeof *lp);
    dlp = calloc((size_t)M * T_max, sizeof *dlp);
    order = malloc((size_t)n * sizeof *order);
    sel = malloc((size_t)batch * sizeof *sel);
    if (o->stop_window > 0) window = calloc((size_t)o->stop_window, sizeof *window);
    if (!ids || !lengths || !mask || !lp || !dlp || !order || !sel || (o->stop_window > 0 && !window)) {
        err_set("out of memory");
        goto done;
    }

    int cursor = n, epoch = 0; // cursor == n: shuffle a new epoch before the next example
    double t_start = now_s();
    for (int step = 0; step < steps; step++) {
        double t0 = now_s();
        // the step's examples (seeded shuffle, reshuffled every epoch), then its loss-token count
        // (the normalizer of every micro-batch's loss)
        int64_t step_loss_tokens = 0, step_tokens = 0;
        for (int k = 0; k < batch; k++) {
            if (cursor == n) { // a new epoch: Fisher-Yates with the counter-based generator
                for (int i = 0; i < n; i++) order[i] = i;
                for (int i = n - 1; i > 0; i--) {
                    int j = (int)(sampler_uniform(o->seed, (uint64_t)epoch, (uint64_t)i) * (i + 1));
                    int tmp = order[i];
                    order[i] = order[j];
                    order[j] = tmp;
                }
                cursor = 0;
                epoch++;
            }
            sel[k] = order[cursor++];
            step_loss_tokens += ex[sel[k]].n_loss;
            step_tokens += ex[sel[k]].n;
        }
        // micro-batches of similar lengths (less padding): the step's examples by length (stable)
        for (int k = 1; k < batch; k++)
            for (int i = k; i > 0 && ex[sel[i - 1]].n > ex[sel[i]].n; i--) {
                int tmp = sel[i];
                sel[i] = sel[i - 1];
                sel[i - 1] = tmp;
            }
        double loss_sum = 0;
        int in_micro = 0, Tm = 0;
        if (qwen3_grads_zero(&g)) goto done;
        for (int k = 0; k < batch; k++) {
            const learner_sft_example_t *e = &ex[sel[k]];
            // add the example to the micro-batch (rows right-padded with id 0, mask 0)
            int b = in_micro++;
            memcpy(ids + (size_t)b * T_max, e->ids, (size_t)e->n * sizeof *ids);
            memcpy(mask + (size_t)b * T_max, e->mask, (size_t)e->n);
            lengths[b] = e->n;
            if (e->n > Tm) Tm = e->n;
            if (in_micro == M || k == batch - 1) {
                // repack rows from stride T_max to stride Tm
                for (int row = 0; row < in_micro; row++) {
                    memmove(ids + (size_t)row * Tm, ids + (size_t)row * T_max, (size_t)Tm * sizeof *ids);
                    memmove(mask + (size_t)row * Tm, mask + (size_t)row * T_max, (size_t)Tm);
                    for (int t = lengths[row]; t < Tm; t++) {
                        ids[(size_t)row * Tm + t] = 0;
                        mask[(size_t)row * Tm + t] = 0;
                    }
                }
                qwen3_batch_t qb = {in_micro, Tm, ids, lengths, mask};
                double part;
                if (qwen3_train_forward(m, &tr, &qb, 1.0f, lp, NULL) < 0 ||
                    learner_sft_loss((int64_t)in_micro * Tm, lp, mask, (double)step_loss_tokens, &part, dlp) ||
                    qwen3_train_backward(m, &tr, dlp, &g))
                    goto done;
                loss_sum += part;
                in_micro = 0;
                Tm = 0;
            }
        }
        optim_stats_t st;
        int src = optim_step_qwen3(&opt, &g, 1.0, loss_sum, &st);
        if (src < 0 || qwen3_output_vocab_refresh(m)) goto done;
        double dt = now_s() - t0;
        if (step == 0) r.first_loss = loss_sum;
        r.last_loss = loss_sum;
        r.tokens += step_tokens;
        r.loss_tokens += step_loss_tokens;
        r.steps_done = step + 1;
        if (src == 1) {
            r.n_skipped++;
            if (o->log_every > 0) fprintf(log, "step %d/%d SKIPPED: %s\n", step + 1, steps, st.msg);
        } else if (o->log_every > 0 && ((step + 1) % o->log_every == 0 || step == steps - 1)) {
            fprintf(log, "step %d/%d loss %.6f lr %.3e grad_norm %.4g tokens %lld (loss %lld) tok/s %.1f\n",
                    step + 1, steps, loss_sum, st.lr, st.grad_norm, (long long)step_tokens,
                    (long long)step_loss_tokens, step_tokens / dt);
        }
        if (o->log_every > 0) fflush(log);
        if (o->max_seconds > 0 && now_s() - t_start >= o->max_seconds) break;
        if (window) {
            window[step % o->stop_window] = loss_sum;
            int k = step + 1 < o->stop_window ? step + 1 : o->stop_window;
            double sum = 0;
            for (int i = 0; i < k; i++) sum += window[i];
            r.window_loss = sum / k;
            if (k == o->stop_window && r.window_loss < o->stop_loss && step + 1 < steps) {
                r.stopped = 1;
                break;
            }
        }
    }
    r.seconds = now_s() - t_start;
    rc = 0;
done:
    if (res) *res = r;
    free(ids);
    free(lengths);
    free(mask);
    free(lp);
    free(dlp);
    free(order);
    free(sel);
    free(window);
    if (o_ok) optim_free(&opt);
    if (g_ok) qwen3_free(&g);
    if (tr_ok) qwen3_train_free(&tr);
    return rc;
}
