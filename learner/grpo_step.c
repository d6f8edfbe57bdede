// learner/grpo_step: advantages -> micro-batched GRPO forward/backward -> all-reduce -> AdamW.
#include "grpo_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/err.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// MPI_Iallreduce + MPI_Test with a sleeping backoff (50 us .. 2 ms): a learner that reaches the
// all-reduce first (its share of the batch arrived earlier) waits without spinning a core
static int allreduce(MPI_Comm comm, void *buf, int n, MPI_Datatype t, MPI_Op op) {
    if (comm == MPI_COMM_NULL) return 0;
    int size = 1;
    MPI_Comm_size(comm, &size);
    if (size == 1) return 0;
    MPI_Request req;
    if (MPI_Iallreduce(MPI_IN_PLACE, buf, n, t, op, comm, &req) != MPI_SUCCESS) return err_set("MPI_Iallreduce failed");
    for (int idle = 0;; idle++) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return err_set("MPI_Test (all-reduce) failed");
        if (done) return 0;
        long us = 50L << (idle < 5 ? idle : 5);
        struct timespec ts = {0, (us > 2000 ? 2000 : us) * 1000};
        nanosleep(&ts, NULL);
    }
}

// (group, index) order, whatever order the trajectories arrived in (insertion sort: n is small)
static void sort_trajs(int *order, int n, const msg_traj_t *t) {
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i;
        while (j > 0 && (t[order[j - 1]].group > t[v].group ||
                         (t[order[j - 1]].group == t[v].group && t[order[j - 1]].index > t[v].index))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

int learner_grpo_step(qwen3_t *m, const qwen3_t *ref, qwen3_train_t *tr, qwen3_t *grads, optim_t *opt,
                      const msg_traj_t *trajs, int n, const learner_step_opts_t *o, learner_step_stats_t *st) {
    memset(st, 0, sizeof *st);
    double t0 = now_s();
    const double beta = o->loss.beta;
    if (beta > 0 && !ref) return err_set("grpo step: kl > 0 needs a reference model");
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    float *adv = calloc((size_t)(n ? n : 1), sizeof *adv);
    uint8_t *train = calloc((size_t)(n ? n : 1), 1);
    int rc = 0;
    if (!order || !adv || !train) {
        rc = err_set("out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    sort_trajs(order, n, trajs);
    // ---- group advantages over the rollouts the simulator did not abort ----
    int64_t tokens = 0;
    for (int a = 0; a < n;) {
        int b = a;
        while (b < n && trajs[order[b]].group == trajs[order[a]].group) b++;
        double sum = 0, sq = 0;
        int k = 0;
        for (int i = a; i < b; i++) {
            const msg_traj_t *t = &trajs[order[i]];
            st->n_traj++;
            st->total_tokens += t->n_tokens;
            st->aborted[t->abort >= 0 && t->abort < TRAJ_N_REASONS ? t->abort : TRAJ_SIM_ERROR]++;
            if (t->abort == TRAJ_SIM_ERROR) continue;
            sum += t->reward, k++;
            st->reward_sum += t->reward, st->n_rewarded++;
            st->successes += t->reward >= 1.0f - 1e-6f;
        }
        st->n_groups++;
        double mean = k ? sum / k : 0;
        for (int i = a; i < b; i++) {
            const msg_traj_t *t = &trajs[order[i]];
            if (t->abort != TRAJ_SIM_ERROR) sq += (t->reward - mean) * (t->reward - mean);
        }
        double sd = k ? sqrt(sq / k) : 0;
        if (k >= 2 && sd > 1e-8) {
            st->n_groups_kept++;
            for (int i = a; i < b; i++) {
                const msg_traj_t *t = &trajs[order[i]];
                if (t->abort == TRAJ_SIM_ERROR) continue;
                adv[order[i]] = (float)((t->reward - mean) / (sd + 1e-6));
                train[order[i]] = 1;
                st->n_trained++;
                for (int j = 0; j < t->n_tokens; j++) tokens += t->mask[j] != 0;
            }
        }
        a = b;
    }
    // micro-batches of similar lengths (less padding): (group, index) order re-sorted by length, stable
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && trajs[order[j - 1]].n_tokens > trajs[order[j]].n_tokens; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    // the global token count normalizes every rank's token-mean loss
    double ts0 = now_s();
    int64_t gtok = tokens;
    if ((rc = allreduce(o->comm, &gtok, 1, MPI_INT64_T, MPI_SUM))) goto done;
    st->t_sync += now_s() - ts0;
    if ((rc = qwen3_grads_zero(grads))) goto done;
    double loss = 0, pg = 0, kl_tok = 0, clip_tok = 0, ent_tok = 0, gap_tok = 0;
    double rmin = 1, rmax = 1, gmax = 0;
    const int MB = o->micro_batch;
    int sel[1024];
    for (int a = 0; a < n && gtok > 0;) {
        int B = 0, T = 1;
        while (a < n && B < MB && B < 1024) {
            int i = order[a++];
            if (!train[i]) continue;
            sel[B++] = i;
            if (trajs[i].n_tokens > T) T = trajs[i].n_tokens;
        }
        if (B == 0) break;
        if (B > tr->max_batch || T > tr->max_len) {
            rc = err_set("grpo step: micro-batch %d x %d exceeds the planned %d x %d", B, T, tr->max_batch, tr->max_len);
            goto done;
        }
        size_t BT = (size_t)B * (size_t)T;
        int32_t *ids = calloc(BT, sizeof *ids), *len = malloc((size_t)B * sizeof *len);
        uint8_t *mask = calloc(BT, 1);
        float *buf = calloc(BT * 6, sizeof *buf), *adv_b = malloc((size_t)B * sizeof *adv_b);
        if (!ids || !len || !mask || !buf || !adv_b) {
            free(ids), free(len), free(mask), free(buf), free(adv_b);
            rc = err_set("out of memory");
            goto done;
        }
        float *lp = buf, *old = buf + BT, *rlp = buf + 2 * BT, *slp = buf + 3 * BT, *ent = buf + 4 * BT,
              *dlp = buf + 5 * BT;
        for (int b = 0; b < B; b++) {
            const msg_traj_t *t = &trajs[sel[b]];
            memcpy(ids + (size_t)b * T, t->ids, (size_t)t->n_tokens * sizeof *ids);
            memcpy(mask + (size_t)b * T, t->mask, (size_t)t->n_tokens);
            memcpy(slp + (size_t)b * T, t->logprobs, (size_t)t->n_tokens * sizeof *slp);
            mask[(size_t)b * T] = 0;
            len[b] = t->n_tokens;
            adv_b[b] = adv[sel[b]];
        }
        qwen3_batch_t batch = {B, T, ids, len, mask};
        if (beta > 0 && qwen3_train_forward(ref, tr, &batch, o->temperature, rlp, NULL) < 0) rc = -1;
        if (!rc && qwen3_train_forward(m, tr, &batch, o->temperature, lp, ent) < 0) rc = -1;
        learner_grpo_metrics_t met;
        if (!rc) {
            memcpy(old, lp, BT * sizeof *old);
            learner_grpo_opts_t lo = o->loss;
            lo.agg = LEARNER_AGG_TOKEN_MEAN;
            lo.norm = (double)gtok;
            learner_grpo_batch_t in = {B, T, mask, lp, old, beta > 0 ? rlp : NULL, slp, ent, adv_b};
            rc = learner_grpo_loss(&lo, &in, dlp, &met);
        }
        if (!rc) rc = qwen3_train_backward(m, tr, dlp, grads);
        if (!rc) {
            loss += met.loss, pg += met.pg_loss;
            kl_tok += met.kl_mean * (double)met.n_tokens;
            clip_tok += met.clip_frac * (double)met.n_tokens;
            ent_tok += met.entropy_mean * (double)met.n_tokens;
            gap_tok += met.lp_gap_mean * (double)met.n_tokens;
            if (met.ratio_min < rmin) rmin = met.ratio_min;
            if (met.ratio_max > rmax) rmax = met.ratio_max;
            if (met.lp_gap_max > gmax) gmax = met.lp_gap_max;
        }
        free(ids), free(len), free(mask), free(buf), free(adv_b);
        if (rc) goto done;
    }
    // ---- all-reduce: gradients (sum; the loss is already normalized by the global count) ----
    ts0 = now_s();
    qwen3_param_t ps[512];
    int np = qwen3_params(grads, ps, 512);
    if (np < 0) {
        rc = -1;
        goto done;
    }
    for (int i = 0; i < np && !rc; i++) {
        tensor_t *t = ps[i].t;
        int64_t numel = tensor_numel(t);
        float *d = (float *)t->data;
        for (int64_t off = 0; off < numel && !rc; off += (1 << 30))
            rc = allreduce(o->comm, d + off, (int)(numel - off < (1 << 30) ? numel - off : (1 << 30)), MPI_FLOAT, MPI_SUM);
    }
    double sums[12] = {loss, pg, kl_tok, clip_tok, ent_tok, gap_tok, st->reward_sum, (double)st->n_rewarded,
                       (double)st->successes, (double)st->n_traj, (double)st->n_trained, (double)st->total_tokens};
    if (!rc) rc = allreduce(o->comm, sums, 12, MPI_DOUBLE, MPI_SUM);
    int ints[2 + TRAJ_N_REASONS] = {st->n_groups, st->n_groups_kept};
    memcpy(ints + 2, st->aborted, sizeof st->aborted);
    if (!rc) rc = allreduce(o->comm, ints, 2 + TRAJ_N_REASONS, MPI_INT, MPI_SUM);
    double mins[1] = {rmin}, maxs[2] = {rmax, gmax};
    if (!rc) rc = allreduce(o->comm, mins, 1, MPI_DOUBLE, MPI_MIN);
    if (!rc) rc = allreduce(o->comm, maxs, 2, MPI_DOUBLE, MPI_MAX);
    st->t_sync += now_s() - ts0;
    if (rc) goto done;
    loss = sums[0], pg = sums[1];
    st->reward_sum = sums[6], st->n_rewarded = (int)sums[7], st->successes = (int)sums[8];
    st->n_traj = (int)sums[9], st->n_trained = (int)sums[10], st->total_tokens = (int64_t)sums[11];
    st->n_groups = ints[0], st->n_groups_kept = ints[1];
    memcpy(st->aborted, ints + 2, sizeof st->aborted);
    st->tokens = gtok;
    double dt = gtok > 0 ? (double)gtok : 1;
    st->loss = loss, st->pg_loss = pg, st->kl = sums[2] / dt, st->clip_frac = sums[3] / dt;
    st->entropy = sums[4] / dt, st->lp_gap_mean = sums[5] / dt;
    st->ratio_min = mins[0], st->ratio_max = maxs[0], st->lp_gap_max = maxs[1];
    // ---- AdamW (every learner applies the same update to its replica) ----
    optim_stats_t os;
    int r = optim_step_qwen3(opt, grads, 1.0, loss, &os);
    if (r < 0) {
        rc = -1;
        goto done;
    }
    st->skipped = r == 1;
    st->grad_norm = os.grad_norm, st->lr = os.lr;
    if (qwen3_output_vocab_refresh(m)) rc = -1; // a restricted output vocabulary copies lm_head rows
done:
    free(order), free(adv), free(train);
    st->t_train = now_s() - t0 - st->t_sync;
    return rc;
}
