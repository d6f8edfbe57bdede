// sim/curriculum: TRUSTEE's adaptive curriculum.
//
// Difficulty D is an integer in [1, 100] (start and step settable; defaults 1 and 3). After each
// training step, with m = the batch-mean reward (every reward in [-1, 1], see sim/reward.h):
//     m > 0.5  ->  D += step        m < 0.0  ->  D -= step        otherwise D stays;
// then D is clamped to [1, 100]. (Both comparisons are strict: m = 0.5 or m = 0.0 does not move D.
// Rewards travel as float32, so a mean that is 0.5 in exact arithmetic can come out a few 1e-8
// above it, e.g. rewards 1/3 and 2/3: "strict" means beyond the threshold by more than
// CURRICULUM_TOLERANCE = 1e-6.)
// `trustee train --curriculum env` keeps one such state per environment, each moved by the mean
// reward of its own environment's trajectories; `shared` keeps one for the whole batch.
//
// D drives seven aspects. Each aspect is a level 0..L-1 (0 = easiest) picked from D by equal-width
// bins: level(D, L) = floor((D - 1) * L / 100), so D = 1 is level 0, D = 100 is level L-1, and
// every level covers 100/L consecutive values of D (monotone non-decreasing in D):
//   tools_available   1..10  (L = 10): value = 1 + level
//   expected_calls    1..3   (L = 3)
//   expected_turns    1..2   (L = 2)
//   system_prompt     detailed -> moderate -> generic             (L = 3)
//   persona           expert -> beginner -> novice                 (L = 3)
//   ambiguity         clear -> somewhat ambiguous -> highly ambiguous (L = 3)
//   judge_strictness  1..5   (L = 5): the number of active judge criteria, in this order:
//       intent_satisfied, correct_tools, no_hallucination, no_redundant_calls, efficiency
// The deterministic map always has tools_available >= expected_calls.
// Distractor tools (catalog_sample's n_distractors) = floor((tools_available - expected_calls) / 2):
// the expected calls' tools and about half of the rest come from one category, the others are
// distractors from other categories.
//
// Soft sampling: with probability p_soft (default 0.5) a task draws its aspects at random "within
// the bounds D allows". Reading used here: the level D maps to is the hardest level allowed, so each
// aspect is drawn independently and uniformly among the levels from the easiest (0) up to and
// including its level at D. (expected_calls is drawn first, then tools_available uniformly in
// [expected_calls, tools at D], so tools >= calls still holds.) Otherwise the task gets exactly
// the aspects at D.
//
// Randomness is counter-based (sampler_uniform(seed, stream, step)): a task's aspects are a pure
// function of (seed, update count, task id), so every rank computes the same ones.
#pragma once
#include <jansson.h>
#include <stdint.h>

#define CURRICULUM_D_MIN 1
#define CURRICULUM_D_MAX 100
#define CURRICULUM_N_CRITERIA 5
#define CURRICULUM_TOLERANCE 1e-6 // a mean must pass a threshold by more than this to move D

enum { SYSPROMPT_DETAILED = 0, SYSPROMPT_MODERATE, SYSPROMPT_GENERIC };
enum { PERSONA_EXPERT = 0, PERSONA_BEGINNER, PERSONA_NOVICE };
enum { AMBIGUITY_CLEAR = 0, AMBIGUITY_SOMEWHAT, AMBIGUITY_HIGHLY };

typedef struct {
    int difficulty;       // the D these aspects were drawn at
    int soft;             // 1 when drawn by soft sampling, 0 when exactly the map at D
    int tools_available;  // 1..10
    int expected_calls;   // 1..3
    int expected_turns;   // 1..2
    int system_prompt;    // SYSPROMPT_*
    int persona;          // PERSONA_*
    int ambiguity;        // AMBIGUITY_*
    int judge_strictness; // 1..5 = number of active criteria (curriculum_criterion_name(0..n-1))
    int distractors;      // floor((tools_available - expected_calls) / 2)
} curriculum_aspects_t;

// what one update did (for the run log)
typedef struct {
    int64_t update;     // index of this update (0 for the first)
    int d_before, d_after;
    double mean_reward; // batch mean
    int n_rewards;
    int move;           // +1 up, -1 down, 0 stay (before clamping: a clamped move still says +-1)
} curriculum_stats_t;

typedef struct {
    int difficulty;        // current D
    int step;              // default 3
    double up_threshold;   // 0.5: mean > this -> harder
    double down_threshold; // 0.0: mean < this -> easier
    double p_soft;         // 0.5
    uint64_t seed;
    int64_t n_updates;     // updates done so far
    curriculum_stats_t last; // the last update's stats (update = -1 before any)
} curriculum_t;

// defaults (step 3, thresholds 0.5 / 0.0, p_soft 0.5) with the given start D and seed; errors on D
// outside [1, 100]
int curriculum_init(curriculum_t *c, int start_difficulty, uint64_t seed);
// after init, to change the defaults: step >= 1, down <= up, 0 <= p_soft <= 1
int curriculum_set(curriculum_t *c, int step, double up_threshold, double down_threshold,
                   double p_soft);

// one update from a batch of rewards (n >= 1, each finite) or from its mean; stats may be NULL.
// curriculum_update_mean with n_rewards = 0 (a batch without rewards, e.g. no task of this
// environment this step) counts as an update that does not move D.
int curriculum_update(curriculum_t *c, const float *rewards, int n, curriculum_stats_t *stats);
int curriculum_update_mean(curriculum_t *c, double mean_reward, int n_rewards,
                           curriculum_stats_t *stats);

// the deterministic map D -> aspects (D clamped to [1, 100])
void curriculum_aspects_at(int difficulty, curriculum_aspects_t *a);
// the soft-sampled aspects at D for (seed, stream): pure function
void curriculum_aspects_sample(int difficulty, double p_soft, uint64_t seed, uint64_t stream,
                               curriculum_aspects_t *a);
// a task's aspects at the current D: stream = task id, mixed with the update count, so task 3 of
// step 10 and task 3 of step 11 differ
void curriculum_task_aspects(const curriculum_t *c, uint64_t task, curriculum_aspects_t *a);

// names: "detailed" "moderate" "generic" / "expert" "beginner" "novice" /
// "clear" "somewhat ambiguous" "highly ambiguous" / criteria "intent_satisfied" ... "efficiency"
const char *curriculum_system_prompt_name(int level);
const char *curriculum_persona_name(int level);
const char *curriculum_ambiguity_name(int level);
const char *curriculum_criterion_name(int i);

// aspects as a JSON object (new reference; for the task-generator prompt and the run log):
// {"difficulty":D,"soft":bool,"tools_available":k,"expected_calls":c,"expected_turns":t,
//  "system_prompt":"detailed","persona":"expert","ambiguity":"clear","judge_strictness":n,
//  "judge_criteria":["intent_satisfied",...],"distractors":d}
json_t *curriculum_aspects_json(const curriculum_aspects_t *a);
// parse it back (names or levels); -1 on a missing / unknown field
int curriculum_aspects_from_json(const json_t *j, curriculum_aspects_t *a);

// whole state as a JSON text (malloc'd) for checkpoints; restore is exact (doubles written with
// 17 significant digits, the seed as a decimal string); unknown or missing keys are errors
char *curriculum_to_json(const curriculum_t *c);
int curriculum_from_json(curriculum_t *c, const char *text);
// stats as a JSON object (new reference) for the run log
json_t *curriculum_stats_json(const curriculum_stats_t *s);
