// sim/reward: every reward trustee reports is in [-1, 1], whatever produced it, so the curriculum
// thresholds (0.0 / 0.5 on the batch mean, sim/curriculum.h) mean the same thing for every kind.
// Formulas and their meaning: docs/rewards.md.
//
//   TRUSTEE judge score j in {-1, 0, 1}       -> r = j
//   programmatic score s in [0, 1]            -> r = 2 s - 1   (EnvScaler: s = checks passed / total)
//   forbidden behaviour (any kind)            -> r = -1
//   SynthAgent rubric R in [0, 1]             -> r = 2 R - 1, R = 1[no forbidden] * (g + i) / 2
//       g = subgoals met / subgoals, i = required interactions done / required interactions.
//       Edge cases: a component with zero items is left out of the average (R = i when there are
//       no subgoals, R = g when there are no required interactions, R = 1 when there are neither),
//       so a task without required interactions is not handed half the reward for free.
//   an aborted trajectory (simulator failure, sandbox error) gets no reward here: what the run does
//   with it (drop it from its group, count the reason) is the rollout's choice
//
// Functions return -1 (err_set) on invalid input (a judge score outside {-1,0,1}, s outside [0,1]
// or not finite, counts negative or met > total, zero checks) and write the reward to *r.
#pragma once

#define REWARD_MIN (-1.0)
#define REWARD_MAX 1.0
#define REWARD_FORBIDDEN (-1.0)

// the judge's score as is
int reward_from_judge(int score, double *r);
// s in [0, 1] -> 2 s - 1
int reward_from_score(double s, double *r);
// rule checks: s = passed / total (total >= 1); forbidden -> -1
int reward_from_checks(int passed, int total, int forbidden, double *r);

typedef struct {
    int forbidden;          // 1 when any forbidden behaviour happened
    int subgoals_met, n_subgoals;
    int interactions_done, n_interactions;
} reward_rubric_t;

// R in [0, 1] (edge cases above)
int reward_rubric_raw(const reward_rubric_t *rb, double *R);
// 2 R - 1; forbidden -> -1
int reward_from_rubric(const reward_rubric_t *rb, double *r);
