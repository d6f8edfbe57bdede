// msg_tool: driver for the Python cross-check (tests/msg_check.py).
//   msg_tool decode FILE          decodes the message in FILE, prints its fields as "key=value"
//                                 lines (wire key names; strings in hex; floats %.17g; arrays
//                                 comma-separated); exit 1 and "error: ..." when rejected
//   msg_tool gen TYPE SEED FILE   builds a random struct of TYPE (task, sim_req, ...), prints the
//                                 struct's fields in the same form, writes its encoding to FILE
// The printed lines come from the struct itself, never from the encoded bytes, so Python (which
// reads the bytes with its own msgpack) checks the encoder independently.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "kernels/err.h"

static const char *pre = "";
static void pi(const char *k, long long v) { printf("%s%s=%lld\n", pre, k, v); }
static void pu(const char *k, unsigned long long v) { printf("%s%s=%llu\n", pre, k, v); }
static void pf(const char *k, double v) { printf("%s%s=%.17g\n", pre, k, v); }
static void ps(const char *k, const char *s) {
    printf("%s%s=", pre, k);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) printf("%02x", *p);
    printf("\n");
}

static void dump_task(const msg_task_t *m) {
    pi("step", m->step); pu("task", m->task_id); pi("group", m->group); pi("gsize", m->group_size);
    pi("pver", m->policy_version); pi("eval", m->eval); pi("diff", m->difficulty); pu("seed", m->seed);
    ps("env", m->env); ps("asp", m->aspects);
}
static void dump_traj(const msg_traj_t *m) {
    pi("step", m->step); pu("task", m->task_id); pi("group", m->group); pi("idx", m->index);
    pi("gsize", m->group_size); pi("pver", m->policy_version); pi("eval", m->eval); pi("diff", m->difficulty);
    ps("env", m->env); ps("asp", m->aspects); pi("n", m->n_tokens); pi("np", m->n_prompt);
    printf("ids=");
    for (int i = 0; i < m->n_tokens; i++) printf(i ? ",%d" : "%d", m->ids[i]);
    printf("\nlp=");
    for (int i = 0; i < m->n_tokens; i++) printf(i ? ",%.17g" : "%.17g", (double)m->logprobs[i]);
    printf("\nmask=");
    for (int i = 0; i < m->n_tokens; i++) printf(i ? ",%d" : "%d", m->mask[i]);
    printf("\n");
    pf("rew", m->reward); pf("score", m->score); pi("turns", m->turns); pi("calls", m->tool_calls);
    pi("abort", m->abort); pi("trunc", m->truncated); ps("det", m->reward_details); ps("text", m->transcript);
}
static void dump_curric(const msg_curric_t *m) {
    pi("step", m->step); pi("upd", m->update); pi("d0", m->d_before); pi("d1", m->d_after);
    pf("mean", m->mean_reward); pi("nr", m->n_rewards); pi("move", m->move); ps("state", m->state);
}
static void dump_weights(const msg_weights_t *m) {
    pi("ver", m->version); pi("step", m->step); pi("nf", m->n_floats); pu("sum", m->checksum);
}
static void dump_shutdown(const msg_shutdown_t *m) { pi("code", m->code); ps("why", m->reason); }
static void dump_reqs(const msg_sim_req_t *r, int n) {
    printf("n=%d\n", n);
    char b[32];
    for (int i = 0; i < n; i++) {
        snprintf(b, sizeof b, "reqs.%d.", i);
        pre = b;
        pu("id", r[i].req_id); pi("kind", r[i].kind); pu("task", r[i].task_id); pi("ep", r[i].episode);
        ps("pl", r[i].payload);
    }
    pre = "";
}
static void dump_reps(const msg_sim_rep_t *r, int n) {
    printf("n=%d\n", n);
    char b[32];
    for (int i = 0; i < n; i++) {
        snprintf(b, sizeof b, "reps.%d.", i);
        pre = b;
        pu("id", r[i].req_id); pi("st", r[i].status); ps("why", r[i].reason); ps("pl", r[i].payload);
    }
    pre = "";
}

// ---- random structs (xorshift) ----
static uint64_t s_ = 1;
static uint64_t rn(void) { s_ ^= s_ << 13; s_ ^= s_ >> 7; s_ ^= s_ << 17; return s_; }
static int64_t ri(int64_t lo, int64_t hi) { return lo + (int64_t)(rn() % (uint64_t)(hi - lo + 1)); }
static char *rs(void) {
    static const char *p[] = {"a", "b", " ", "\"", "\\", "\n", "é", "日本", "🙂", "{}"};
    int n = (int)(rn() % 12);
    char *s = calloc(1, 64);
    for (int i = 0; i < n; i++) strcat(s, p[rn() % 10]);
    return s;
}
static float rf(void) { return (float)((double)(int64_t)rn() / 1e18); }

static int gen(const char *type, msgpack_sbuffer *sb) {
    if (!strcmp(type, "task")) {
        msg_task_t m = {ri(0, 1000), rn(), (int32_t)ri(0, 100), (int32_t)ri(1, 64), ri(0, 1LL << 40), (int32_t)ri(0, 1),
                        (int32_t)ri(0, 100), rn(), rs(), rs()};
        dump_task(&m);
        int rc = msg_task_encode(&m, sb);
        msg_task_free(&m);
        return rc;
    }
    if (!strcmp(type, "traj")) {
        msg_traj_t m = {0};
        m.step = ri(0, 1000); m.task_id = rn(); m.group = (int32_t)ri(0, 100); m.group_size = (int32_t)ri(1, 64);
        m.index = (int32_t)ri(0, m.group_size - 1); m.policy_version = ri(0, 1LL << 40); m.eval = (int32_t)ri(0, 1);
        m.difficulty = (int32_t)ri(0, 100); m.env = rs(); m.aspects = rs();
        m.n_tokens = (int32_t)(rn() % 4 == 0 ? 0 : ri(1, 2000)); m.n_prompt = (int32_t)ri(0, m.n_tokens);
        m.ids = malloc(4 * (size_t)m.n_tokens + 1); m.logprobs = malloc(4 * (size_t)m.n_tokens + 1);
        m.mask = malloc((size_t)m.n_tokens + 1);
        for (int i = 0; i < m.n_tokens; i++) { m.ids[i] = (int32_t)rn(); m.logprobs[i] = rf(); m.mask[i] = rn() & 1; }
        m.reward = rf(); m.score = rf(); m.turns = (int32_t)ri(0, 50); m.tool_calls = (int32_t)ri(0, 50);
        m.abort = (int32_t)ri(0, TRAJ_N_REASONS - 1); m.truncated = (int32_t)ri(0, 1);
        m.reward_details = rs(); m.transcript = rs();
        dump_traj(&m);
        int rc = msg_traj_encode(&m, sb);
        msg_traj_free(&m);
        return rc;
    }
    if (!strcmp(type, "curric")) {
        msg_curric_t m = {ri(0, 1000), ri(0, 1000), (int32_t)ri(1, 100), (int32_t)ri(1, 100),
                          (double)(int64_t)rn() / 3e18, (int32_t)ri(0, 1000), (int32_t)ri(-1, 1), rs()};
        dump_curric(&m);
        int rc = msg_curric_encode(&m, sb);
        msg_curric_free(&m);
        return rc;
    }
    if (!strcmp(type, "weights")) {
        msg_weights_t m = {ri(0, INT64_MAX - 1), ri(0, 1000), ri(0, 1LL << 40), rn()};
        dump_weights(&m);
        return msg_weights_encode(&m, sb);
    }
    if (!strcmp(type, "shutdown")) {
        msg_shutdown_t m = {(int32_t)ri(INT32_MIN, INT32_MAX), rs()};
        dump_shutdown(&m);
        int rc = msg_shutdown_encode(&m, sb);
        msg_shutdown_free(&m);
        return rc;
    }
    if (!strcmp(type, "sim_req")) {
        int n = (int)ri(0, 6);
        msg_sim_req_t *r = calloc((size_t)n + 1, sizeof *r);
        for (int i = 0; i < n; i++) r[i] = (msg_sim_req_t){rn(), (int32_t)ri(0, 15), rn(), (int32_t)ri(-1, 7), rs()};
        dump_reqs(r, n);
        int rc = msg_sim_reqs_encode(r, n, sb);
        msg_sim_reqs_free(r, n);
        return rc;
    }
    if (!strcmp(type, "sim_rep")) {
        int n = (int)ri(0, 6);
        msg_sim_rep_t *r = calloc((size_t)n + 1, sizeof *r);
        for (int i = 0; i < n; i++) {
            int ok = (int)ri(0, 1);
            r[i] = (msg_sim_rep_t){rn(), ok ? 0 : (int32_t)ri(1, 9), ok ? strdup("") : rs(), ok ? rs() : strdup("")};
        }
        dump_reps(r, n);
        int rc = msg_sim_reps_encode(r, n, sb);
        msg_sim_reps_free(r, n);
        return rc;
    }
    return err_set("unknown type %s", type);
}

static int decode(const char *buf, size_t n) {
    int t = msg_peek_type(buf, n);
    switch (t) {
    case MSG_TASK: { msg_task_t m; if (msg_task_decode(buf, n, &m)) return -1; dump_task(&m); msg_task_free(&m); return 0; }
    case MSG_TRAJ: { msg_traj_t m; if (msg_traj_decode(buf, n, &m)) return -1; dump_traj(&m); msg_traj_free(&m); return 0; }
    case MSG_CURRIC: { msg_curric_t m; if (msg_curric_decode(buf, n, &m)) return -1; dump_curric(&m); msg_curric_free(&m); return 0; }
    case MSG_WEIGHTS: { msg_weights_t m; if (msg_weights_decode(buf, n, &m)) return -1; dump_weights(&m); return 0; }
    case MSG_SHUTDOWN: { msg_shutdown_t m; if (msg_shutdown_decode(buf, n, &m)) return -1; dump_shutdown(&m); msg_shutdown_free(&m); return 0; }
    case MSG_SIM_REQ: { msg_sim_req_t *r; int k; if (msg_sim_reqs_decode(buf, n, &r, &k)) return -1; dump_reqs(r, k); msg_sim_reqs_free(r, k); return 0; }
    case MSG_SIM_REP: { msg_sim_rep_t *r; int k; if (msg_sim_reps_decode(buf, n, &r, &k)) return -1; dump_reps(r, k); msg_sim_reps_free(r, k); return 0; }
    default: return -1;
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "decode")) {
        FILE *f = fopen(argv[2], "rb");
        if (!f) { perror(argv[2]); return 2; }
        static char buf[1 << 24];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (decode(buf, n)) { printf("error: %s\n", err_msg()); return 1; }
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "gen")) {
        s_ = strtoull(argv[3], NULL, 10) * 2654435761u + 1;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (gen(argv[2], &sb)) { printf("error: %s\n", err_msg()); return 1; }
        FILE *f = fopen(argv[4], "wb");
        if (!f || fwrite(sb.data, 1, sb.size, f) != sb.size) { perror(argv[4]); return 2; }
        fclose(f);
        msgpack_sbuffer_destroy(&sb);
        return 0;
    }
    fprintf(stderr, "usage: msg_tool decode FILE | msg_tool gen TYPE SEED FILE\n");
    return 2;
}
