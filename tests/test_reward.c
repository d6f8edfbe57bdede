// sim/reward: the mapping of every reward kind to [-1, 1] (formulas in docs/rewards.md), edge
// cases, and invalid inputs. Expected values are worked out by hand from the formulas.
#include <math.h>
#include <string.h>

#include "kernels/err.h"
#include "model/sampler.h"
#include "sim/reward.h"
#include "test.h"

static int close_to(double a, double b) { return fabs(a - b) < 1e-12; }

int main(void) {
    double r = 99, R = 99;
    // judge: as is
    for (int j = -1; j <= 1; j++) CHECK(reward_from_judge(j, &r) == 0 && r == j, "judge %d -> %g", j, r);
    CHECK(reward_from_judge(2, &r) == -1 && strstr(err_msg(), "got 2"), "judge 2 must fail: %s", err_msg());
    CHECK(reward_from_judge(-2, &r) == -1, "judge -2 must fail");
    // programmatic score: 2s - 1
    double s_in[] = {0, 0.25, 0.5, 0.75, 1}, r_want[] = {-1, -0.5, 0, 0.5, 1};
    for (int i = 0; i < 5; i++) CHECK(reward_from_score(s_in[i], &r) == 0 && close_to(r, r_want[i]), "s %g -> %g", s_in[i], r);
    CHECK(reward_from_score(-0.01, &r) == -1, "s < 0 must fail");
    CHECK(reward_from_score(1.01, &r) == -1, "s > 1 must fail");
    CHECK(reward_from_score(NAN, &r) == -1, "NaN must fail");
    // rule checks: passed / total, forbidden -> -1
    CHECK(reward_from_checks(3, 4, 0, &r) == 0 && close_to(r, 0.5), "3/4 -> %g", r);
    CHECK(reward_from_checks(0, 5, 0, &r) == 0 && close_to(r, -1), "0/5 -> %g", r);
    CHECK(reward_from_checks(5, 5, 0, &r) == 0 && close_to(r, 1), "5/5 -> %g", r);
    CHECK(reward_from_checks(5, 5, 1, &r) == 0 && r == -1, "forbidden 5/5 -> %g", r);
    CHECK(reward_from_checks(1, 3, 0, &r) == 0 && close_to(r, -1.0 / 3.0), "1/3 -> %g", r);
    CHECK(reward_from_checks(0, 0, 0, &r) == -1 && strstr(err_msg(), "at least 1"), "0 checks must fail: %s", err_msg());
    CHECK(reward_from_checks(4, 3, 0, &r) == -1, "passed > total must fail");
    CHECK(reward_from_checks(-1, 3, 0, &r) == -1, "negative passed must fail");
    // rubric: R = 1[no forbidden] * (g + i) / 2; r = 2R - 1
    struct { reward_rubric_t rb; double R, r; } cases[] = {
        {{0, 2, 4, 1, 2}, 0.5, 0.0},          // (0.5 + 0.5) / 2
        {{0, 4, 4, 2, 2}, 1.0, 1.0},          // everything
        {{0, 0, 4, 0, 2}, 0.0, -1.0},         // nothing
        {{0, 3, 4, 0, 1}, 0.375, -0.25},      // (0.75 + 0) / 2
        {{1, 4, 4, 2, 2}, 0.0, -1.0},         // forbidden wipes it out
        {{0, 0, 0, 1, 2}, 0.5, 0.0},          // no subgoals: R = interaction fraction
        {{0, 1, 3, 0, 0}, 1.0 / 3, -1.0 / 3}, // no interactions: R = subgoal fraction
        {{0, 0, 0, 0, 0}, 1.0, 1.0},          // neither: nothing to do, nothing wrong
        {{1, 0, 0, 0, 0}, 0.0, -1.0},         // neither, but forbidden
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(reward_rubric_raw(&cases[i].rb, &R) == 0 && close_to(R, cases[i].R), "case %zu: R %g want %g", i, R, cases[i].R);
        CHECK(reward_from_rubric(&cases[i].rb, &r) == 0 && close_to(r, cases[i].r), "case %zu: r %g want %g", i, r, cases[i].r);
    }
    reward_rubric_t bad1 = {0, 5, 4, 0, 1}, bad2 = {0, 0, 1, -1, 2}, bad3 = {0, 0, -1, 0, 0};
    CHECK(reward_from_rubric(&bad1, &r) == -1 && strstr(err_msg(), "subgoals"), "met > total must fail: %s", err_msg());
    CHECK(reward_from_rubric(&bad2, &r) == -1 && strstr(err_msg(), "interactions"), "negative done must fail: %s", err_msg());
    CHECK(reward_from_rubric(&bad3, &r) == -1, "negative count must fail");
    // random valid rubrics: r in [-1, 1], r = 2R - 1 (or -1 when forbidden), R against the formula
    for (int t = 0; t < 10000; t++) {
        reward_rubric_t rb;
        rb.n_subgoals = (int)(sampler_uniform(7, t, 0) * 6);
        rb.subgoals_met = (int)(sampler_uniform(7, t, 1) * (rb.n_subgoals + 1));
        rb.n_interactions = (int)(sampler_uniform(7, t, 2) * 4);
        rb.interactions_done = (int)(sampler_uniform(7, t, 3) * (rb.n_interactions + 1));
        rb.forbidden = sampler_uniform(7, t, 4) < 0.2;
        double want_R;
        if (rb.forbidden) want_R = 0;
        else if (rb.n_subgoals && rb.n_interactions)
            want_R = 0.5 * ((double)rb.subgoals_met / rb.n_subgoals + (double)rb.interactions_done / rb.n_interactions);
        else if (rb.n_subgoals) want_R = (double)rb.subgoals_met / rb.n_subgoals;
        else if (rb.n_interactions) want_R = (double)rb.interactions_done / rb.n_interactions;
        else want_R = 1;
        int ok = reward_rubric_raw(&rb, &R) == 0 && reward_from_rubric(&rb, &r) == 0;
        if (!ok || !close_to(R, want_R) || r < -1 || r > 1 || !close_to(r, rb.forbidden ? -1 : 2 * want_R - 1)) {
            CHECK(0, "random rubric %d: R %g want %g, r %g", t, R, want_R, r);
            break;
        }
    }
    return test_exit("test_reward");
}
