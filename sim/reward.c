#include "reward.h"

#include <math.h>

#include "kernels/err.h"

int reward_from_judge(int score, double *r) {
    if (score < -1 || score > 1) return err_set("reward: judge score must be -1, 0 or 1, got %d", score);
    *r = (double)score;
    return 0;
}

int reward_from_score(double s, double *r) {
    if (!isfinite(s) || s < 0.0 || s > 1.0)
        return err_set("reward: programmatic score must be in [0, 1], got %g", s);
    *r = 2.0 * s - 1.0;
    return 0;
}

int reward_from_checks(int passed, int total, int forbidden, double *r) {
    if (total < 1) return err_set("reward: a task needs at least 1 rule check, got %d", total);
    if (passed < 0 || passed > total)
        return err_set("reward: checks passed must be in [0, %d], got %d", total, passed);
    if (forbidden) {
        *r = REWARD_FORBIDDEN;
        return 0;
    }
    return reward_from_score((double)passed / (double)total, r);
}

// one rubric component: fraction met, or -1 when it has no items (left out of the average)
static int rubric_fraction(const char *what, int met, int n, double *f) {
    if (n < 0 || met < 0 || met > n)
        return err_set("reward: rubric %s: expected 0 <= met <= total, got %d of %d", what, met, n);
    *f = n == 0 ? -1.0 : (double)met / (double)n;
    return 0;
}

int reward_rubric_raw(const reward_rubric_t *rb, double *R) {
    double g = 0, i = 0;
    if (rubric_fraction("subgoals", rb->subgoals_met, rb->n_subgoals, &g) ||
        rubric_fraction("interactions", rb->interactions_done, rb->n_interactions, &i))
        return -1;
    double frac;
    if (g < 0 && i < 0) frac = 1.0;
    else if (g < 0) frac = i;
    else if (i < 0) frac = g;
    else frac = (g + i) / 2.0;
    *R = rb->forbidden ? 0.0 : frac;
    return 0;
}

int reward_from_rubric(const reward_rubric_t *rb, double *r) {
    double R;
    if (reward_rubric_raw(rb, &R)) return -1;
    *r = rb->forbidden ? REWARD_FORBIDDEN : 2.0 * R - 1.0;
    return 0;
}
