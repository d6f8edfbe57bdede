// sim/curriculum: the D update rule on scripted reward sequences (hand-worked expectations and a
// reference loop written here), the aspect map (endpoints, monotone, every level reached), soft
// sampling bounds and rate, determinism, and exact serialize/restore.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"
#include "model/sampler.h"
#include "sim/curriculum.h"
#include "test.h"

// the aspects as an array, in a fixed order, with each aspect's easiest value
#define N_ASPECTS 7
static void as_array(const curriculum_aspects_t *a, int v[N_ASPECTS]) {
    v[0] = a->tools_available, v[1] = a->expected_calls, v[2] = a->expected_turns, v[3] = a->system_prompt;
    v[4] = a->persona, v[5] = a->ambiguity, v[6] = a->judge_strictness;
}
static const int EASIEST[N_ASPECTS] = {1, 1, 1, 0, 0, 0, 1};
static const int HARDEST[N_ASPECTS] = {10, 3, 2, 2, 2, 2, 5};
static const char *ASPECT[N_ASPECTS] = {"tools", "calls", "turns", "system_prompt", "persona", "ambiguity", "strictness"};

static void test_scripted(void) {
    curriculum_t c;
    if (curriculum_init(&c, 1, 42)) {
        CHECK(0, "init: %s", err_msg());
        return;
    }
    // hand-worked: start 1, step 3, up if mean > 0.5, down if mean < 0.0, clamp to [1, 100]
    struct { double mean; int d, move; } seq[] = {
        {0.6, 4, 1},  {0.5, 4, 0},  {0.51, 7, 1}, {-0.01, 4, -1}, {0.0, 4, 0},  {-1.0, 1, -1},
        {-1.0, 1, -1}, {0.3, 1, 0}, {1.0, 4, 1},  {0.75, 7, 1},  {0.49, 7, 0}, {-0.2, 4, -1},
    };
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        curriculum_stats_t st;
        int before = c.difficulty;
        CHECK(curriculum_update_mean(&c, seq[i].mean, 16, &st) == 0, "update: %s", err_msg());
        CHECK(c.difficulty == seq[i].d, "step %zu: mean %g: D %d, want %d", i, seq[i].mean, c.difficulty, seq[i].d);
        CHECK(st.d_before == before && st.d_after == seq[i].d && st.move == seq[i].move && st.mean_reward == seq[i].mean &&
                  st.update == (int64_t)i && st.n_rewards == 16,
              "step %zu: stats %d -> %d move %d update %" PRId64, i, st.d_before, st.d_after, st.move, st.update);
        CHECK(c.last.d_after == st.d_after && c.n_updates == (int64_t)i + 1, "step %zu: state stats", i);
    }
    // 40 perfect batches from 4: 4 + 3 * 32 = 100 after 32, then clamped
    for (int i = 0; i < 40; i++) curriculum_update_mean(&c, 1.0, 16, NULL);
    CHECK(c.difficulty == 100, "after 40 ups D = %d, want 100", c.difficulty);
    curriculum_stats_t st;
    curriculum_update_mean(&c, 0.9, 16, &st);
    CHECK(c.difficulty == 100 && st.move == 1 && st.d_before == 100 && st.d_after == 100, "clamped at 100");
    curriculum_update_mean(&c, -0.5, 16, NULL);
    CHECK(c.difficulty == 97, "100 - 3 = %d", c.difficulty);
    // from reward arrays: the mean decides (exact 0.5 and 0.0 do not move)
    float b1[] = {1, 1, 0, -1}, b2[] = {1, 1, 1, 0}, b3[] = {1, 0}, b4[] = {1, -1}, b5[] = {-1, -1, 0.5f, 0};
    int d = c.difficulty;
    curriculum_update(&c, b1, 4, NULL); CHECK(c.difficulty == d, "mean 0.25 stays");
    curriculum_update(&c, b2, 4, NULL); CHECK(c.difficulty == d + 3, "mean 0.75 goes up");
    curriculum_update(&c, b3, 2, NULL); CHECK(c.difficulty == d + 3, "mean 0.5 stays");
    curriculum_update(&c, b4, 2, NULL); CHECK(c.difficulty == d + 3, "mean 0.0 stays");
    curriculum_update(&c, b5, 4, NULL); CHECK(c.difficulty == d, "mean -0.375 goes down");
    // rewards 1/3 and 2/3 (checks 2/3 and 5/6 passed) as float32 sum to 1.0000001: the mean is 0.5
    // in exact arithmetic and must not move D; 0.5 + 2e-6 does
    float b6[] = {(float)(2.0 * (2.0 / 3.0) - 1.0), (float)(2.0 * (5.0 / 6.0) - 1.0)};
    CHECK((double)b6[0] + (double)b6[1] > 1.0, "the float32 rewards sum above 1 (%.9g)", (double)b6[0] + (double)b6[1]);
    curriculum_update(&c, b6, 2, NULL); CHECK(c.difficulty == d, "mean 0.5 up to float32 rounding stays");
    float b7[] = {-(float)(2.0 * (2.0 / 3.0) - 1.0), (float)(2.0 * (2.0 / 3.0) - 1.0)};
    curriculum_update(&c, b7, 2, NULL); CHECK(c.difficulty == d, "mean 0 up to float32 rounding stays");
    curriculum_update_mean(&c, 0.5 + 2e-6, 4, NULL); CHECK(c.difficulty == d + 3, "mean 0.500002 goes up");
    curriculum_update_mean(&c, -2e-6, 4, NULL); CHECK(c.difficulty == d, "mean -0.000002 goes down");
    CHECK(curriculum_update(&c, b5, 0, NULL) == -1, "empty batch must fail");
    // a batch with no rewards (no task of this environment this step): counted, D does not move,
    // whatever mean is passed with it
    int64_t u = c.n_updates;
    curriculum_update_mean(&c, 0.9, 0, &st);
    CHECK(c.difficulty == d && st.move == 0 && st.n_rewards == 0 && c.n_updates == u + 1, "no rewards: stays (%d)", c.difficulty);
    curriculum_update_mean(&c, -0.9, 0, &st);
    CHECK(c.difficulty == d && st.move == 0 && c.n_updates == u + 2, "no rewards: stays (%d)", c.difficulty);
    float bad[] = {1, NAN};
    CHECK(curriculum_update(&c, bad, 2, NULL) == -1, "NaN reward must fail");
    // settable start and step; bad settings rejected
    CHECK(curriculum_init(&c, 0, 1) == -1 && curriculum_init(&c, 101, 1) == -1, "start outside [1,100] must fail");
    curriculum_init(&c, 50, 1);
    CHECK(curriculum_set(&c, 5, 0.5, 0.0, 0.5) == 0, "set step 5");
    curriculum_update_mean(&c, 0.9, 1, NULL);
    CHECK(c.difficulty == 55, "step 5: 50 -> %d", c.difficulty);
    CHECK(curriculum_set(&c, 0, 0.5, 0, 0.5) == -1 && curriculum_set(&c, 3, 0, 0.5, 0.5) == -1 &&
              curriculum_set(&c, 3, 0.5, 0, 1.5) == -1,
          "bad settings must fail");
}

// a long random sequence against a reference loop written here
static void test_reference_loop(void) {
    for (int run = 0; run < 20; run++) {
        int start = 1 + (int)(sampler_uniform(3, run, 0) * 100), step = 1 + (int)(sampler_uniform(3, run, 1) * 7);
        curriculum_t c;
        curriculum_init(&c, start, run);
        curriculum_set(&c, step, 0.5, 0.0, 0.5);
        int ref = start;
        for (int t = 0; t < 1000; t++) {
            float r[8];
            double sum = 0;
            for (int i = 0; i < 8; i++) { // rewards from {-1, 0, 1} and [-1, 1], biased by run
                double u = sampler_uniform(4, run * 10000 + t, i);
                r[i] = (run & 1) ? (float)(u < 0.4 ? -1 : u < 0.6 ? 0 : 1) : (float)(2 * u - 1 + 0.1 * (run % 5 - 2));
                if (r[i] > 1) r[i] = 1;
                sum += r[i];
            }
            double m = sum / 8;
            if (m > 0.5) ref += step;
            else if (m < 0.0) ref -= step;
            ref = ref < 1 ? 1 : ref > 100 ? 100 : ref;
            curriculum_update(&c, r, 8, NULL);
            if (c.difficulty != ref) {
                CHECK(0, "run %d step %d: D %d, reference %d", run, t, c.difficulty, ref);
                return;
            }
        }
    }
    CHECK(1, "reference loop");
}

static void test_map(void) {
    curriculum_aspects_t a, b;
    int va[N_ASPECTS], vb[N_ASPECTS], seen[N_ASPECTS][11] = {{0}};
    curriculum_aspects_at(1, &a);
    as_array(&a, va);
    for (int k = 0; k < N_ASPECTS; k++) CHECK(va[k] == EASIEST[k], "D=1 %s = %d, want %d", ASPECT[k], va[k], EASIEST[k]);
    curriculum_aspects_at(100, &a);
    as_array(&a, va);
    for (int k = 0; k < N_ASPECTS; k++) CHECK(va[k] == HARDEST[k], "D=100 %s = %d, want %d", ASPECT[k], va[k], HARDEST[k]);
    // hand-worked bins: tools = 1 + floor((D-1)*10/100), calls = 1 + floor((D-1)*3/100)
    curriculum_aspects_at(34, &a);
    CHECK(a.tools_available == 4 && a.expected_calls == 1 && a.expected_turns == 1 && a.judge_strictness == 2,
          "D=34: %d %d %d %d", a.tools_available, a.expected_calls, a.expected_turns, a.judge_strictness);
    curriculum_aspects_at(35, &a);
    CHECK(a.tools_available == 4 && a.expected_calls == 2 && a.persona == PERSONA_BEGINNER, "D=35");
    curriculum_aspects_at(51, &a);
    CHECK(a.expected_turns == 2 && a.tools_available == 6 && a.judge_strictness == 3 && a.distractors == 2,
          "D=51: turns %d tools %d strict %d distractors %d", a.expected_turns, a.tools_available, a.judge_strictness, a.distractors);
    for (int d = 1; d <= 100; d++) {
        curriculum_aspects_at(d, &a);
        as_array(&a, va);
        for (int k = 0; k < N_ASPECTS; k++) seen[k][va[k]] = 1;
        CHECK(a.tools_available >= a.expected_calls && a.difficulty == d && !a.soft, "D=%d: tools %d < calls %d", d,
              a.tools_available, a.expected_calls);
        CHECK(a.distractors == (a.tools_available - a.expected_calls) / 2, "D=%d distractors", d);
        if (d == 100) break;
        curriculum_aspects_at(d + 1, &b);
        as_array(&b, vb);
        for (int k = 0; k < N_ASPECTS; k++) CHECK(vb[k] >= va[k], "not monotone: %s at D=%d is %d, at D=%d is %d", ASPECT[k], d, va[k], d + 1, vb[k]);
    }
    for (int k = 0; k < N_ASPECTS; k++)
        for (int v = EASIEST[k]; v <= HARDEST[k]; v++) CHECK(seen[k][v], "%s level %d never reached", ASPECT[k], v);
    // out-of-range D is clamped
    curriculum_aspects_at(0, &a); CHECK(a.difficulty == 1, "D=0 clamps to 1");
    curriculum_aspects_at(1000, &a); CHECK(a.difficulty == 100, "D=1000 clamps to 100");
}

static void test_soft(void) {
    long n = 0, n_soft = 0;
    int bad = 0;
    long hits100[N_ASPECTS][11] = {{0}};
    for (int d = 1; d <= 100; d++) {
        curriculum_aspects_t top, a;
        int vt[N_ASPECTS], va[N_ASPECTS];
        curriculum_aspects_at(d, &top);
        as_array(&top, vt);
        for (uint64_t s = 0; s < 400; s++) {
            curriculum_aspects_sample(d, 0.5, 1234, (uint64_t)d * 1000 + s, &a);
            as_array(&a, va);
            n++, n_soft += a.soft;
            for (int k = 0; k < N_ASPECTS; k++) {
                if (va[k] < EASIEST[k] || va[k] > vt[k]) bad++;
                if (d == 100 && a.soft) hits100[k][va[k]]++;
            }
            if (a.tools_available < a.expected_calls || a.difficulty != d) bad++;
            if (!a.soft && memcmp(&a, &top, sizeof a)) bad++;
            if (a.distractors != (a.tools_available - a.expected_calls) / 2) bad++;
        }
    }
    CHECK(bad == 0, "%d soft draws out of bounds", bad);
    double rate = (double)n_soft / n;
    printf("soft sampling: %ld draws, soft rate %.4f (p = 0.5), all within [easiest, level at D]\n", n, rate);
    CHECK(rate > 0.49 && rate < 0.51, "soft rate %.4f", rate); // 40000 draws: sd 0.0025
    // at D = 100 every level of every aspect is drawn by soft sampling
    for (int k = 0; k < N_ASPECTS; k++)
        for (int v = EASIEST[k]; v <= HARDEST[k]; v++) CHECK(hits100[k][v] > 0, "D=100 soft: %s level %d never drawn", ASPECT[k], v);
    // turns (no coupling) is uniform over {1, 2} at D = 100 among ~200 soft draws
    long t1 = hits100[2][1], t2 = hits100[2][2];
    CHECK(labs(t1 - t2) < 0.3 * (t1 + t2), "turns not uniform: %ld vs %ld", t1, t2);
    // p_soft 0 and 1
    curriculum_aspects_t a;
    int soft0 = 0, soft1 = 0;
    for (uint64_t s = 0; s < 1000; s++) {
        curriculum_aspects_sample(60, 0.0, 9, s, &a), soft0 += a.soft;
        curriculum_aspects_sample(60, 1.0, 9, s, &a), soft1 += a.soft;
    }
    CHECK(soft0 == 0 && soft1 == 1000, "p_soft 0 -> %d soft, 1 -> %d soft", soft0, soft1);
}

static void test_determinism(void) {
    curriculum_aspects_t a, b;
    int same = 1, differ = 0;
    for (uint64_t s = 0; s < 500; s++) {
        curriculum_aspects_sample(80, 0.5, 77, s, &a);
        curriculum_aspects_sample(80, 0.5, 77, s, &b);
        same &= !memcmp(&a, &b, sizeof a);
        curriculum_aspects_sample(80, 0.5, 78, s, &b);
        differ += memcmp(&a, &b, sizeof a) != 0;
    }
    CHECK(same, "same seed/stream gave different aspects");
    CHECK(differ > 100, "another seed changed only %d of 500", differ);
    // task aspects: same (state, task) same; next update draws anew
    curriculum_t c1, c2;
    curriculum_init(&c1, 90, 5);
    curriculum_init(&c2, 90, 5);
    int diff_step = 0;
    for (uint64_t t = 0; t < 16; t++) {
        curriculum_task_aspects(&c1, t, &a);
        curriculum_task_aspects(&c2, t, &b);
        CHECK(!memcmp(&a, &b, sizeof a), "task %" PRIu64 " differs between equal states", t);
    }
    curriculum_update_mean(&c2, 0.2, 16, NULL); // stays at 90 but a new update count
    for (uint64_t t = 0; t < 16; t++) {
        curriculum_task_aspects(&c1, t, &a);
        curriculum_task_aspects(&c2, t, &b);
        diff_step += memcmp(&a, &b, sizeof a) != 0;
    }
    CHECK(diff_step > 0, "the next step gave the same draws for all 16 tasks");
}

static void test_serialize(void) {
    curriculum_t c, r;
    curriculum_init(&c, 37, UINT64_MAX - 12345);
    curriculum_set(&c, 4, 0.3, -0.1, 0.1); // 0.1, 0.3 are not exact in binary: must still round-trip
    float rw[3] = {0.1f, 0.7f, 0.33f};
    for (int i = 0; i < 7; i++) curriculum_update(&c, rw, 3, NULL);
    char *text = curriculum_to_json(&c);
    if (!text) {
        CHECK(0, "to_json: %s", err_msg());
        return;
    }
    printf("state: %s\n", text);
    CHECK(curriculum_from_json(&r, text) == 0, "from_json: %s", err_msg());
    CHECK(r.difficulty == c.difficulty && r.step == c.step && r.up_threshold == c.up_threshold &&
              r.down_threshold == c.down_threshold && r.p_soft == c.p_soft && r.seed == c.seed && r.n_updates == c.n_updates &&
              r.last.update == c.last.update && r.last.d_before == c.last.d_before && r.last.d_after == c.last.d_after &&
              r.last.mean_reward == c.last.mean_reward && r.last.n_rewards == c.last.n_rewards && r.last.move == c.last.move,
          "restored state differs");
    char *text2 = curriculum_to_json(&r);
    CHECK(text2 && !strcmp(text, text2), "second serialization differs:\n%s\n%s", text, text2);
    // restored state continues identically
    curriculum_aspects_t a, b;
    curriculum_task_aspects(&c, 3, &a), curriculum_task_aspects(&r, 3, &b);
    CHECK(!memcmp(&a, &b, sizeof a), "restored state draws different aspects");
    curriculum_update_mean(&c, 0.9, 1, NULL), curriculum_update_mean(&r, 0.9, 1, NULL);
    CHECK(c.difficulty == r.difficulty, "restored state updates differently");
    // errors
    const char *bad[] = {
        "{\"difficulty\": 5",                                  // parse error
        "[1]",                                                 // not an object
        "{\"version\":1}",                                     // missing keys
    };
    for (int i = 0; i < 3; i++) CHECK(curriculum_from_json(&r, bad[i]) == -1, "bad state %d accepted", i);
    char *unk = malloc(strlen(text) + 32);
    sprintf(unk, "{\"stepp\":3,%s", text + 1);
    CHECK(curriculum_from_json(&r, unk) == -1 && strstr(err_msg(), "stepp"), "unknown key: %s", err_msg());
    const char *edits[][2] = {{"difficulty", "0"}, {"difficulty", "101"}, {"version", "2"}, {"step", "0"}, {"seed", "\"12x\""}, {"p_soft", "2"}};
    for (int i = 0; i < 6; i++) {
        json_t *j = json_loads(text, 0, NULL);
        json_object_set_new(j, edits[i][0], json_loads(edits[i][1], JSON_DECODE_ANY, NULL));
        char *s = json_dumps(j, JSON_COMPACT);
        CHECK(curriculum_from_json(&r, s) == -1, "%s = %s accepted", edits[i][0], edits[i][1]);
        free(s);
        json_decref(j);
    }
    free(unk);
    free(text);
    free(text2);
    // aspects JSON round trip
    for (int d = 1; d <= 100; d += 11) {
        curriculum_aspects_sample(d, 0.5, 3, d, &a);
        json_t *j = curriculum_aspects_json(&a);
        CHECK(j && curriculum_aspects_from_json(j, &b) == 0 && !memcmp(&a, &b, sizeof a), "aspects JSON round trip at D=%d: %s", d, err_msg());
        if (d == 89) {
            char *s = json_dumps(j, JSON_COMPACT);
            printf("aspects at D=%d: %s\n", d, s);
            free(s);
        }
        json_decref(j);
    }
}

int main(void) {
    test_scripted();
    test_reference_loop();
    test_map();
    test_soft();
    test_determinism();
    test_serialize();
    return test_exit("test_curriculum");
}
