// libFuzzer target for one comm/msg decoder, chosen at compile time with -DFUZZ_TARGET=<msg_type_t number>
// (tests/comm.cmake builds one binary per decoder: fuzz_msg_task, fuzz_msg_sim_req, ...).
// For every input: msg_peek_type must not crash; the decoder either rejects it (error message
// set, struct zeroed) or returns a struct whose invariants hold, and then encode(decoded) must
// succeed and be a fixed point: decode(encode(x)) encodes to the same bytes again.
//   tests/fuzz_msg.sh BUILD/tests RUNS     runs every target (bench/fuzz.sh: 1,000,000 runs each)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "kernels/err.h"

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=<msg_type_t number>"
#endif
// the preprocessor cannot see enum values: the msg_type_t numbers again (checked below)
#define F_TASK 1
#define F_SIM_REQ 2
#define F_SIM_REP 3
#define F_TRAJ 4
#define F_CURRIC 5
#define F_WEIGHTS 6
#define F_SHUTDOWN 7
_Static_assert(F_TASK == MSG_TASK && F_SIM_REQ == MSG_SIM_REQ && F_SIM_REP == MSG_SIM_REP && F_TRAJ == MSG_TRAJ &&
                   F_CURRIC == MSG_CURRIC && F_WEIGHTS == MSG_WEIGHTS && F_SHUTDOWN == MSG_SHUTDOWN,
               "msg_type_t numbers");

#define REQUIRE(c)                                                                    \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "fuzz_msg: %s:%d: %s failed (%s)\n", __FILE__, __LINE__, #c, err_msg()); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

__attribute__((unused)) static int zeroed(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return 0;
    return 1;
}

// encode(m) twice through a decode: the bytes must agree
#define FIXED_POINT(T, m, enc, dec, fr)                                   \
    do {                                                                  \
        msgpack_sbuffer a, b;                                             \
        msgpack_sbuffer_init(&a);                                         \
        msgpack_sbuffer_init(&b);                                         \
        REQUIRE(enc(&m, &a) == 0);                                        \
        T m2;                                                             \
        REQUIRE(dec(a.data, a.size, &m2) == 0);                           \
        REQUIRE(enc(&m2, &b) == 0);                                       \
        REQUIRE(a.size == b.size && memcmp(a.data, b.data, a.size) == 0); \
        fr(&m2);                                                          \
        msgpack_sbuffer_destroy(&a);                                      \
        msgpack_sbuffer_destroy(&b);                                      \
    } while (0)
__attribute__((unused)) static void no_free(msg_weights_t *m) { (void)m; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    int t = msg_peek_type(buf, size);
    REQUIRE(t == -1 || (t >= 1 && t < MSG_N_TYPES));
    err_clear();
#if FUZZ_TARGET == F_TASK
    msg_task_t m;
    if (msg_task_decode(buf, size, &m) == 0) {
        REQUIRE(m.env && m.aspects && m.group_size >= 1 && (m.eval == 0 || m.eval == 1));
        FIXED_POINT(msg_task_t, m, msg_task_encode, msg_task_decode, msg_task_free);
        msg_task_free(&m);
    } else REQUIRE(zeroed(&m, sizeof m) && err_msg()[0]);
#elif FUZZ_TARGET == F_TRAJ
    msg_traj_t m;
    if (msg_traj_decode(buf, size, &m) == 0) {
        REQUIRE(m.env && m.aspects && m.reward_details && m.transcript && m.ids && m.logprobs && m.mask);
        REQUIRE(m.n_tokens >= 0 && m.n_prompt >= 0 && m.n_prompt <= m.n_tokens && m.index < m.group_size);
        for (int32_t i = 0; i < m.n_tokens; i++) REQUIRE(m.mask[i] <= 1);
        volatile uint32_t sink = 0; // touch every element (ASan checks the allocation sizes)
        for (int32_t i = 0; i < m.n_tokens; i++) sink += (uint32_t)m.ids[i] + (m.logprobs[i] > 0);
        (void)sink;
        FIXED_POINT(msg_traj_t, m, msg_traj_encode, msg_traj_decode, msg_traj_free);
        msg_traj_free(&m);
    } else REQUIRE(zeroed(&m, sizeof m) && err_msg()[0]);
#elif FUZZ_TARGET == F_CURRIC
    msg_curric_t m;
    if (msg_curric_decode(buf, size, &m) == 0) {
        REQUIRE(m.state && m.move >= -1 && m.move <= 1);
        FIXED_POINT(msg_curric_t, m, msg_curric_encode, msg_curric_decode, msg_curric_free);
        msg_curric_free(&m);
    } else REQUIRE(zeroed(&m, sizeof m) && err_msg()[0]);
#elif FUZZ_TARGET == F_WEIGHTS
    msg_weights_t m;
    if (msg_weights_decode(buf, size, &m) == 0) {
        REQUIRE(m.n_floats >= 0 && m.version >= 0);
        FIXED_POINT(msg_weights_t, m, msg_weights_encode, msg_weights_decode, no_free);
    } else REQUIRE(zeroed(&m, sizeof m) && err_msg()[0]);
#elif FUZZ_TARGET == F_SHUTDOWN
    msg_shutdown_t m;
    if (msg_shutdown_decode(buf, size, &m) == 0) {
        REQUIRE(m.reason);
        FIXED_POINT(msg_shutdown_t, m, msg_shutdown_encode, msg_shutdown_decode, msg_shutdown_free);
        msg_shutdown_free(&m);
    } else REQUIRE(zeroed(&m, sizeof m) && err_msg()[0]);
#elif FUZZ_TARGET == F_SIM_REQ || FUZZ_TARGET == F_SIM_REP
#if FUZZ_TARGET == F_SIM_REQ
    typedef msg_sim_req_t item_t;
#define DEC msg_sim_reqs_decode
#define ENC msg_sim_reqs_encode
#define FREE msg_sim_reqs_free
#else
    typedef msg_sim_rep_t item_t;
#define DEC msg_sim_reps_decode
#define ENC msg_sim_reps_encode
#define FREE msg_sim_reps_free
#endif
    item_t *r = (item_t *)1;
    int n = -1;
    if (DEC(buf, size, &r, &n) == 0) {
        REQUIRE(n >= 0 && r != NULL);
        for (int i = 0; i < n; i++) REQUIRE(r[i].payload != NULL);
        msgpack_sbuffer a, b;
        msgpack_sbuffer_init(&a);
        msgpack_sbuffer_init(&b);
        REQUIRE(ENC(r, n, &a) == 0);
        item_t *r2;
        int n2;
        REQUIRE(DEC(a.data, a.size, &r2, &n2) == 0 && n2 == n);
        REQUIRE(ENC(r2, n2, &b) == 0);
        REQUIRE(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
        FREE(r2, n2);
        FREE(r, n);
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
    } else REQUIRE(r == NULL && n == 0 && err_msg()[0]);
#else
#error "unknown FUZZ_TARGET"
#endif
    return 0;
}
