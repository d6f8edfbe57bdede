#include "curriculum.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/sampler.h"

static const char *SYSPROMPT_NAMES[] = {"detailed", "moderate", "generic"};
static const char *PERSONA_NAMES[] = {"expert", "beginner", "novice"};
static const char *AMBIGUITY_NAMES[] = {"clear", "somewhat ambiguous", "highly ambiguous"};
static const char *CRITERION_NAMES[CURRICULUM_N_CRITERIA] = {
    "intent_satisfied", "correct_tools", "no_hallucination", "no_redundant_calls", "efficiency"};

const char *curriculum_system_prompt_name(int l) { return l >= 0 && l < 3 ? SYSPROMPT_NAMES[l] : NULL; }
const char *curriculum_persona_name(int l) { return l >= 0 && l < 3 ? PERSONA_NAMES[l] : NULL; }
const char *curriculum_ambiguity_name(int l) { return l >= 0 && l < 3 ? AMBIGUITY_NAMES[l] : NULL; }
const char *curriculum_criterion_name(int i) {
    return i >= 0 && i < CURRICULUM_N_CRITERIA ? CRITERION_NAMES[i] : NULL;
}

static int clamp_d(int d) {
    return d < CURRICULUM_D_MIN ? CURRICULUM_D_MIN : d > CURRICULUM_D_MAX ? CURRICULUM_D_MAX : d;
}

// equal-width bins over D in [1, 100]: level 0 at D = 1, L-1 at D = 100
static int level_at(int d, int L) { return (clamp_d(d) - 1) * L / 100; }

// ---- state ----

int curriculum_init(curriculum_t *c, int start, uint64_t seed) {
    memset(c, 0, sizeof *c);
    if (start < CURRICULUM_D_MIN || start > CURRICULUM_D_MAX)
        return err_set("curriculum: start difficulty must be in [1, 100], got %d", start);
    c->difficulty = start;
    c->step = 3;
    c->up_threshold = 0.5;
    c->down_threshold = 0.0;
    c->p_soft = 0.5;
    c->seed = seed;
    c->n_updates = 0;
    c->last.update = -1;
    c->last.d_before = c->last.d_after = start;
    return 0;
}

int curriculum_set(curriculum_t *c, int step, double up, double down, double p_soft) {
    if (step < 1 || step > CURRICULUM_D_MAX) return err_set("curriculum: step must be in [1, 100], got %d", step);
    if (!isfinite(up) || !isfinite(down) || down > up)
        return err_set("curriculum: thresholds must be finite with down <= up, got down %g up %g", down, up);
    if (!(p_soft >= 0.0 && p_soft <= 1.0)) return err_set("curriculum: p_soft must be in [0, 1], got %g", p_soft);
    c->step = step;
    c->up_threshold = up;
    c->down_threshold = down;
    c->p_soft = p_soft;
    return 0;
}

int curriculum_update_mean(curriculum_t *c, double mean, int n, curriculum_stats_t *stats) {
    if (!isfinite(mean)) return err_set("curriculum: batch-mean reward is not finite (%g)", mean);
    curriculum_stats_t s = {.update = c->n_updates, .d_before = c->difficulty, .mean_reward = mean, .n_rewards = n};
    s.move = n < 1                                         ? 0
             : mean > c->up_threshold + CURRICULUM_TOLERANCE   ? 1
             : mean < c->down_threshold - CURRICULUM_TOLERANCE ? -1
                                                               : 0;
    c->difficulty = clamp_d(c->difficulty + s.move * c->step);
    s.d_after = c->difficulty;
    c->n_updates++;
    c->last = s;
    if (stats) *stats = s;
    return 0;
}

int curriculum_update(curriculum_t *c, const float *rewards, int n, curriculum_stats_t *stats) {
    if (n < 1) return err_set("curriculum: update needs at least 1 reward, got %d", n);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(rewards[i])) return err_set("curriculum: reward %d is not finite (%g)", i, rewards[i]);
        sum += rewards[i];
    }
    return curriculum_update_mean(c, sum / n, n, stats);
}

// ---- aspects ----

static void aspects_finish(curriculum_aspects_t *a) {
    a->distractors = (a->tools_available - a->expected_calls) / 2;
    if (a->distractors < 0) a->distractors = 0;
}

void curriculum_aspects_at(int d, curriculum_aspects_t *a) {
    d = clamp_d(d);
    memset(a, 0, sizeof *a);
    a->difficulty = d;
    a->tools_available = 1 + level_at(d, 10);
    a->expected_calls = 1 + level_at(d, 3);
    a->expected_turns = 1 + level_at(d, 2);
    a->system_prompt = level_at(d, 3);
    a->persona = level_at(d, 3);
    a->ambiguity = level_at(d, 3);
    a->judge_strictness = 1 + level_at(d, 5);
    aspects_finish(a);
}

// uniform integer in [lo, hi] from draw k of (seed, stream)
static int draw_int(uint64_t seed, uint64_t stream, uint64_t k, int lo, int hi) {
    int v = lo + (int)(sampler_uniform(seed, stream, k) * (double)(hi - lo + 1));
    return v > hi ? hi : v;
}

void curriculum_aspects_sample(int d, double p_soft, uint64_t seed, uint64_t stream, curriculum_aspects_t *a) {
    curriculum_aspects_t top;
    curriculum_aspects_at(d, &top);
    *a = top;
    if (!(sampler_uniform(seed, stream, 0) < p_soft)) return;
    // soft: every aspect uniformly from its easiest level up to its level at D
    a->soft = 1;
    a->expected_calls = draw_int(seed, stream, 1, 1, top.expected_calls);
    a->tools_available = draw_int(seed, stream, 2, a->expected_calls, top.tools_available);
    a->expected_turns = draw_int(seed, stream, 3, 1, top.expected_turns);
    a->system_prompt = draw_int(seed, stream, 4, 0, top.system_prompt);
    a->persona = draw_int(seed, stream, 5, 0, top.persona);
    a->ambiguity = draw_int(seed, stream, 6, 0, top.ambiguity);
    a->judge_strictness = draw_int(seed, stream, 7, 1, top.judge_strictness);
    aspects_finish(a);
}

void curriculum_task_aspects(const curriculum_t *c, uint64_t task, curriculum_aspects_t *a) {
    // stream: the task id mixed with the update count (a different draw every step)
    uint64_t stream = task * 0x9e3779b97f4a7c15ull ^ ((uint64_t)c->n_updates * 0xbf58476d1ce4e5b9ull + 0x5851f42d4c957f2dull);
    curriculum_aspects_sample(c->difficulty, c->p_soft, c->seed, stream, a);
}

json_t *curriculum_aspects_json(const curriculum_aspects_t *a) {
    json_t *crit = json_array();
    for (int i = 0; i < a->judge_strictness && i < CURRICULUM_N_CRITERIA; i++)
        json_array_append_new(crit, json_string(CRITERION_NAMES[i]));
    const char *sp = curriculum_system_prompt_name(a->system_prompt);
    const char *pe = curriculum_persona_name(a->persona);
    const char *am = curriculum_ambiguity_name(a->ambiguity);
    json_t *j = json_pack("{s:i, s:b, s:i, s:i, s:i, s:s, s:s, s:s, s:i, s:o, s:i}", "difficulty", a->difficulty,
                          "soft", a->soft, "tools_available", a->tools_available, "expected_calls",
                          a->expected_calls, "expected_turns", a->expected_turns, "system_prompt", sp ? sp : "?",
                          "persona", pe ? pe : "?", "ambiguity", am ? am : "?", "judge_strictness",
                          a->judge_strictness, "judge_criteria", crit, "distractors", a->distractors);
    if (!j) err_set("curriculum: could not build the aspects JSON");
    return j;
}

static int get_int(const json_t *j, const char *key, int lo, int hi, int *out) {
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v)) return err_set("curriculum aspects: \"%s\": expected an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return err_set("curriculum aspects: \"%s\": expected %d..%d, got %" JSON_INTEGER_FORMAT, key, lo, hi, x);
    *out = (int)x;
    return 0;
}

// a level by name or as an integer
static int get_level(const json_t *j, const char *key, const char *const *names, int *out) {
    json_t *v = json_object_get(j, key);
    if (json_is_integer(v)) return get_int(j, key, 0, 2, out);
    if (json_is_string(v))
        for (int i = 0; i < 3; i++)
            if (strcmp(json_string_value(v), names[i]) == 0) return *out = i, 0;
    return err_set("curriculum aspects: \"%s\": expected \"%s\", \"%s\" or \"%s\"", key, names[0], names[1], names[2]);
}

int curriculum_aspects_from_json(const json_t *j, curriculum_aspects_t *a) {
    memset(a, 0, sizeof *a);
    if (!json_is_object(j)) return err_set("curriculum aspects: expected a JSON object");
    json_t *soft = json_object_get(j, "soft");
    if (!json_is_boolean(soft)) return err_set("curriculum aspects: \"soft\": expected true or false");
    a->soft = json_is_true(soft);
    if (get_int(j, "difficulty", 1, 100, &a->difficulty) || get_int(j, "tools_available", 1, 10, &a->tools_available) ||
        get_int(j, "expected_calls", 1, 3, &a->expected_calls) || get_int(j, "expected_turns", 1, 2, &a->expected_turns) ||
        get_level(j, "system_prompt", SYSPROMPT_NAMES, &a->system_prompt) ||
        get_level(j, "persona", PERSONA_NAMES, &a->persona) || get_level(j, "ambiguity", AMBIGUITY_NAMES, &a->ambiguity) ||
        get_int(j, "judge_strictness", 1, CURRICULUM_N_CRITERIA, &a->judge_strictness))
        return -1;
    aspects_finish(a);
    return 0;
}

// ---- serialization ----

char *curriculum_to_json(const curriculum_t *c) {
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    json_t *last = curriculum_stats_json(&c->last);
    json_t *j = json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:s, s:I, s:o}", "version", 1, "difficulty", c->difficulty,
                          "step", c->step, "up_threshold", c->up_threshold, "down_threshold", c->down_threshold,
                          "p_soft", c->p_soft, "seed", seed, "n_updates", (json_int_t)c->n_updates, "last", last);
    if (!j) {
        err_set("curriculum: could not build the state JSON");
        return NULL;
    }
    // JSON_REAL_PRECISION(17): every double reads back bit-exact
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!text) err_set("curriculum: could not write the state JSON");
    return text;
}

json_t *curriculum_stats_json(const curriculum_stats_t *s) {
    return json_pack("{s:I, s:i, s:i, s:f, s:i, s:i}", "update", (json_int_t)s->update, "d_before", s->d_before,
                     "d_after", s->d_after, "mean_reward", s->mean_reward, "n_rewards", s->n_rewards, "move", s->move);
}

// a number (integer or real) as a double
static int get_num(const json_t *j, const char *key, double *out) {
    json_t *v = json_object_get(j, key);
    if (!json_is_number(v)) return err_set("curriculum state: \"%s\": expected a number", key);
    *out = json_number_value(v);
    return 0;
}

static int check_keys(const json_t *j, const char *what, const char *const *keys, int n) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
        int known = 0;
        for (int i = 0; i < n; i++) known |= strcmp(k, keys[i]) == 0;
        if (!known) return err_set("curriculum state: unknown key \"%s\" in %s", k, what);
    }
    for (int i = 0; i < n; i++)
        if (!json_object_get(j, keys[i])) return err_set("curriculum state: missing key \"%s\" in %s", keys[i], what);
    return 0;
}

int curriculum_from_json(curriculum_t *c, const char *text) {
    static const char *const KEYS[] = {"version", "difficulty", "step", "up_threshold", "down_threshold",
                                       "p_soft", "seed", "n_updates", "last"};
    static const char *const LAST_KEYS[] = {"update", "d_before", "d_after", "mean_reward", "n_rewards", "move"};
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) return err_set("curriculum state: line %d column %d: %s", e.line, e.column, e.text);
    curriculum_t s;
    memset(&s, 0, sizeof s);
    int rc = -1;
    double v = 0;
    json_t *last = json_object_get(j, "last");
    const char *seed = json_string_value(json_object_get(j, "seed"));
    char *end = NULL;
    if (!json_is_object(j)) { err_set("curriculum state: expected a JSON object"); goto done; }
    if (check_keys(j, "the state", KEYS, 9)) goto done;
    if (!json_is_integer(json_object_get(j, "version")) || json_integer_value(json_object_get(j, "version")) != 1) {
        err_set("curriculum state: expected version 1");
        goto done;
    }
    if (!json_is_object(last) || check_keys(last, "\"last\"", LAST_KEYS, 6)) {
        if (!json_is_object(last)) err_set("curriculum state: \"last\": expected an object");
        goto done;
    }
    if (!seed || !*seed) { err_set("curriculum state: \"seed\": expected a decimal string"); goto done; }
    s.seed = strtoull(seed, &end, 10);
    if (*end) { err_set("curriculum state: \"seed\": expected a decimal string, got \"%s\"", seed); goto done; }
    if (get_num(j, "difficulty", &v)) goto done;
    s.difficulty = (int)v;
    if (v != s.difficulty || v < 1 || v > 100) { err_set("curriculum state: difficulty must be an integer in [1, 100]"); goto done; }
    if (get_num(j, "step", &v)) goto done;
    s.step = (int)v;
    if (get_num(j, "n_updates", &v)) goto done;
    s.n_updates = (int64_t)v;
    double up, down, p;
    if (get_num(j, "up_threshold", &up) || get_num(j, "down_threshold", &down) || get_num(j, "p_soft", &p)) goto done;
    if (curriculum_set(&s, s.step, up, down, p)) goto done;
    if (get_num(last, "update", &v)) goto done;
    s.last.update = (int64_t)v;
    if (get_num(last, "d_before", &v)) goto done;
    s.last.d_before = (int)v;
    if (get_num(last, "d_after", &v)) goto done;
    s.last.d_after = (int)v;
    if (get_num(last, "mean_reward", &s.last.mean_reward)) goto done;
    if (get_num(last, "n_rewards", &v)) goto done;
    s.last.n_rewards = (int)v;
    if (get_num(last, "move", &v)) goto done;
    s.last.move = (int)v;
    *c = s;
    rc = 0;
done:
    json_decref(j);
    return rc;
}
