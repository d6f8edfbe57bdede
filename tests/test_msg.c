// comm/msg: round trips of every message type with random values, every truncation, single-byte
// corruptions, hand-built malformed messages (built with msgpack-c's packer, independently of the
// encoders), exact bytes of a small message, FNV-1a test vectors.
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "kernels/err.h"
#include "test.h"

// ---- deterministic random values ----
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { // splitmix64
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int64_t rnd_range(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }
static int64_t rnd_i64(int64_t lo, int64_t hi) { // edges often
    switch (rnd() % 4) {
    case 0: return lo;
    case 1: return hi;
    default: return rnd_range(lo, hi < lo + 1000000 ? hi : lo + 1000000);
    }
}
static uint64_t rnd_u64(void) { // (one rnd() per statement: argument order would be unspecified)
    if (rnd() % 3 == 0) return rnd() % 2 ? UINT64_MAX : 0;
    uint64_t v = rnd();
    return v >> (rnd() % 64);
}
static float rnd_f32(void) { return (float)((double)(int64_t)rnd() / 9.3e18); }

// a random UTF-8 string: empty, ASCII, 2/3/4-byte sequences, sometimes long
static char *rnd_str(void) {
    static const char *pieces[] = {"a", "Z", " ", "{\"k\": [1, 2]}", "\n", "\t", "\"", "\\", "é", "ß",
                                   "日本", "€", "🙂", "\xf0\x9f\x8c\x8d", "x\x7f"};
    size_t n = rnd() % 5 == 0 ? 0 : rnd() % 40;
    if (rnd() % 50 == 0) n = 20000 + rnd() % 20000;
    size_t cap = n * 16 + 1, len = 0;
    char *s = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
        size_t k = strlen(p);
        memcpy(s + len, p, k);
        len += k;
    }
    s[len] = 0;
    return s;
}

static msg_task_t rnd_task(void) {
    msg_task_t m = {0};
    m.step = rnd_i64(0, INT64_MAX);
    m.task_id = rnd_u64();
    m.group = (int32_t)rnd_i64(0, INT32_MAX);
    m.group_size = (int32_t)rnd_i64(1, INT32_MAX);
    m.policy_version = rnd_i64(0, INT64_MAX);
    m.eval = (int32_t)(rnd() % 2);
    m.difficulty = (int32_t)rnd_i64(0, 100);
    m.seed = rnd_u64();
    m.env = rnd_str();
    m.aspects = rnd_str();
    return m;
}
static msg_traj_t rnd_traj(void) {
    msg_traj_t m = {0};
    m.step = rnd_i64(0, INT64_MAX);
    m.task_id = rnd_u64();
    m.group = (int32_t)rnd_i64(0, INT32_MAX);
    m.group_size = (int32_t)rnd_i64(1, INT32_MAX);
    m.index = (int32_t)rnd_range(0, m.group_size - 1);
    m.policy_version = rnd_i64(0, INT64_MAX);
    m.eval = (int32_t)(rnd() % 2);
    m.difficulty = (int32_t)rnd_i64(0, 100);
    m.env = rnd_str();
    m.aspects = rnd_str();
    int r = (int)(rnd() % 10);
    m.n_tokens = r == 0 ? 0 : r == 1 ? (int32_t)(100000 + rnd() % 100000) : (int32_t)(rnd() % 300);
    m.n_prompt = (int32_t)rnd_range(0, m.n_tokens);
    m.ids = malloc(4 * (size_t)m.n_tokens + 1);
    m.logprobs = malloc(4 * (size_t)m.n_tokens + 1);
    m.mask = malloc((size_t)m.n_tokens + 1);
    for (int32_t i = 0; i < m.n_tokens; i++) {
        m.ids[i] = (int32_t)rnd();
        m.logprobs[i] = rnd_f32();
        m.mask[i] = (uint8_t)(rnd() % 2);
    }
    m.reward = rnd_f32();
    m.score = rnd_f32();
    m.turns = (int32_t)rnd_i64(0, INT32_MAX);
    m.tool_calls = (int32_t)rnd_i64(0, INT32_MAX);
    m.abort = (int32_t)(rnd() % TRAJ_N_REASONS);
    m.truncated = (int32_t)(rnd() % 2);
    m.reward_details = rnd_str();
    m.transcript = rnd_str();
    return m;
}
static msg_curric_t rnd_curric(void) {
    msg_curric_t m = {0};
    m.step = rnd_i64(0, INT64_MAX);
    m.update = rnd_i64(0, INT64_MAX);
    m.d_before = (int32_t)rnd_i64(0, INT32_MAX);
    m.d_after = (int32_t)rnd_i64(0, INT32_MAX);
    m.mean_reward = (double)(int64_t)rnd() / 3.7e18;
    m.n_rewards = (int32_t)rnd_i64(0, INT32_MAX);
    m.move = (int32_t)rnd_range(-1, 1);
    m.state = rnd_str();
    return m;
}
static msg_weights_t rnd_weights(void) {
    msg_weights_t m;
    m.version = rnd_i64(0, INT64_MAX);
    m.step = rnd_i64(0, INT64_MAX);
    m.n_floats = rnd_i64(0, INT64_MAX);
    m.checksum = rnd_u64();
    return m;
}
static msg_shutdown_t rnd_shutdown(void) {
    msg_shutdown_t m;
    m.code = (int32_t)rnd_i64(INT32_MIN, INT32_MAX);
    m.reason = rnd_str();
    return m;
}
static msg_sim_req_t *rnd_reqs(int *n) {
    *n = rnd() % 5 == 0 ? 0 : (int)(rnd() % 20);
    msg_sim_req_t *r = calloc((size_t)*n + 1, sizeof *r);
    for (int i = 0; i < *n; i++) {
        r[i].req_id = rnd_u64();
        r[i].kind = (int32_t)rnd_range(0, 15);
        r[i].task_id = rnd_u64();
        r[i].episode = (int32_t)rnd_i64(-1, INT32_MAX);
        r[i].payload = rnd_str();
    }
    return r;
}
static msg_sim_rep_t *rnd_reps(int *n) {
    *n = rnd() % 5 == 0 ? 0 : (int)(rnd() % 20);
    msg_sim_rep_t *r = calloc((size_t)*n + 1, sizeof *r);
    for (int i = 0; i < *n; i++) {
        int ok = rnd() % 2;
        r[i].req_id = rnd_u64();
        r[i].status = ok ? 0 : (int32_t)rnd_i64(INT32_MIN, INT32_MAX) | 1;
        r[i].reason = ok ? strdup("") : rnd_str();
        r[i].payload = ok ? rnd_str() : strdup("");
    }
    return r;
}

// ---- equality ----
#define EQ(f) (a->f == b->f)
#define SEQ(f) (strcmp(a->f, b->f) == 0)
static int task_eq(const msg_task_t *a, const msg_task_t *b) {
    return EQ(step) && EQ(task_id) && EQ(group) && EQ(group_size) && EQ(policy_version) && EQ(eval) &&
           EQ(difficulty) && EQ(seed) && SEQ(env) && SEQ(aspects);
}
static int traj_eq(const msg_traj_t *a, const msg_traj_t *b) {
    size_t n = (size_t)a->n_tokens;
    return EQ(step) && EQ(task_id) && EQ(group) && EQ(index) && EQ(group_size) && EQ(policy_version) &&
           EQ(eval) && EQ(difficulty) && SEQ(env) && SEQ(aspects) && EQ(n_tokens) && EQ(n_prompt) &&
           memcmp(a->ids, b->ids, 4 * n) == 0 && memcmp(a->logprobs, b->logprobs, 4 * n) == 0 &&
           memcmp(a->mask, b->mask, n) == 0 && memcmp(&a->reward, &b->reward, 4) == 0 &&
           memcmp(&a->score, &b->score, 4) == 0 && EQ(turns) && EQ(tool_calls) && EQ(abort) &&
           EQ(truncated) && SEQ(reward_details) && SEQ(transcript);
}
static int curric_eq(const msg_curric_t *a, const msg_curric_t *b) {
    return EQ(step) && EQ(update) && EQ(d_before) && EQ(d_after) && memcmp(&a->mean_reward, &b->mean_reward, 8) == 0 &&
           EQ(n_rewards) && EQ(move) && SEQ(state);
}
static int weights_eq(const msg_weights_t *a, const msg_weights_t *b) {
    return EQ(version) && EQ(step) && EQ(n_floats) && EQ(checksum);
}
static int shutdown_eq(const msg_shutdown_t *a, const msg_shutdown_t *b) { return EQ(code) && SEQ(reason); }
static int req_eq(const msg_sim_req_t *a, const msg_sim_req_t *b) {
    return EQ(req_id) && EQ(kind) && EQ(task_id) && EQ(episode) && SEQ(payload);
}
static int rep_eq(const msg_sim_rep_t *a, const msg_sim_rep_t *b) {
    return EQ(req_id) && EQ(status) && SEQ(reason) && SEQ(payload);
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return 0;
    return 1;
}

// ---- decoding any type (for truncation / corruption loops) ----
// decodes buf as `type`; on success checks the struct's invariants and frees it. 1 ok, 0 rejected
// (then the outputs must be zeroed and an error message set).
static int decode_any(int type, const char *buf, size_t n) {
    err_clear();
    int rc = -1;
    switch (type) {
    case MSG_TASK: {
        msg_task_t m;
        rc = msg_task_decode(buf, n, &m);
        if (rc == 0) {
            CHECK(m.env && m.aspects && m.group_size >= 1 && m.eval >= 0 && m.eval <= 1, "task invariants");
            msg_task_free(&m);
        } else CHECK(is_zero(&m, sizeof m), "task not zeroed on failure");
        break;
    }
    case MSG_SIM_REQ: case MSG_SIM_REP: {
        void *r = (void *)1;
        int k = -5;
        if (type == MSG_SIM_REQ) {
            rc = msg_sim_reqs_decode(buf, n, (msg_sim_req_t **)&r, &k);
            if (rc == 0) {
                for (int i = 0; i < k; i++) {
                    msg_sim_req_t *q = (msg_sim_req_t *)r + i;
                    CHECK(q->payload && q->kind >= 0 && q->kind <= 15 && q->episode >= -1, "req invariants");
                }
                msg_sim_reqs_free(r, k);
            }
        } else {
            rc = msg_sim_reps_decode(buf, n, (msg_sim_rep_t **)&r, &k);
            if (rc == 0) {
                for (int i = 0; i < k; i++) {
                    msg_sim_rep_t *q = (msg_sim_rep_t *)r + i;
                    CHECK(q->payload && q->reason && (q->status ? !q->payload[0] : !q->reason[0]), "rep invariants");
                }
                msg_sim_reps_free(r, k);
            }
        }
        if (rc == 0) CHECK(k >= 0, "batch size %d", k);
        else CHECK(r == NULL && k == 0, "batch outputs not reset on failure");
        break;
    }
    case MSG_TRAJ: {
        msg_traj_t m;
        rc = msg_traj_decode(buf, n, &m);
        if (rc == 0) {
            int ok = m.env && m.aspects && m.ids && m.logprobs && m.mask && m.reward_details && m.transcript &&
                     m.n_tokens >= 0 && m.n_prompt >= 0 && m.n_prompt <= m.n_tokens && m.index < m.group_size;
            for (int32_t i = 0; ok && i < m.n_tokens; i++) ok = m.mask[i] <= 1;
            CHECK(ok, "traj invariants");
            msg_traj_free(&m);
        } else CHECK(is_zero(&m, sizeof m), "traj not zeroed on failure");
        break;
    }
    case MSG_CURRIC: {
        msg_curric_t m;
        rc = msg_curric_decode(buf, n, &m);
        if (rc == 0) {
            CHECK(m.state && m.move >= -1 && m.move <= 1, "curric invariants");
            msg_curric_free(&m);
        } else CHECK(is_zero(&m, sizeof m), "curric not zeroed on failure");
        break;
    }
    case MSG_WEIGHTS: {
        msg_weights_t m;
        rc = msg_weights_decode(buf, n, &m);
        if (rc == 0) CHECK(m.n_floats >= 0, "weights invariants");
        else CHECK(is_zero(&m, sizeof m), "weights not zeroed on failure");
        break;
    }
    case MSG_SHUTDOWN: {
        msg_shutdown_t m;
        rc = msg_shutdown_decode(buf, n, &m);
        if (rc == 0) {
            CHECK(m.reason != NULL, "shutdown invariants");
            msg_shutdown_free(&m);
        } else CHECK(is_zero(&m, sizeof m), "shutdown not zeroed on failure");
        break;
    }
    }
    if (rc) CHECK(err_msg()[0] != 0, "decode failed without an error message");
    return rc == 0;
}

// every prefix must fail; every single-byte corruption must fail or decode to a valid struct
static void abuse(int type, const char *buf, size_t n, int corrupt) {
    int prefix_ok = 0;
    for (size_t k = 0; k < n; k++) prefix_ok += decode_any(type, buf, k);
    CHECK(prefix_ok == 0, "%s: %d of %zu prefixes decoded", msg_type_name(type), prefix_ok, n);
    CHECK(decode_any(type, buf, n), "%s: the full message does not decode: %s", msg_type_name(type), err_msg());
    if (!corrupt) return;
    char *c = malloc(n);
    static const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0xa0, 0xc0, 0xc1, 0xc4, 0xca, 0xcf,
                                         0xd3, 0xd9, 0xdb, 0xdd, 0xdf, 0xff};
    for (size_t i = 0; i < n; i++) {
        for (size_t v = 0; v < sizeof vals + 3; v++) {
            memcpy(c, buf, n);
            c[i] = (char)(v < sizeof vals ? vals[v] : v == sizeof vals ? c[i] ^ 1 : v == sizeof vals + 1 ? c[i] ^ 0x80 : c[i] + 1);
            decode_any(type, c, n);
        }
    }
    free(c);
    // one extra byte at the end is always trailing garbage
    char *t = malloc(n + 1);
    memcpy(t, buf, n);
    t[n] = 0;
    CHECK(!decode_any(type, t, n + 1), "%s: trailing byte accepted", msg_type_name(type));
    CHECK(strstr(err_msg(), "trailing") != NULL, "trailing-byte error: %s", err_msg());
    free(t);
}

// ---- hand-built messages (msgpack-c packer directly) ----
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} hb_t;
static void hb_init(hb_t *h) {
    msgpack_sbuffer_init(&h->sb);
    msgpack_packer_init(&h->pk, &h->sb, msgpack_sbuffer_write);
}
static void hk(hb_t *h, const char *k) {
    msgpack_pack_str(&h->pk, strlen(k));
    msgpack_pack_str_body(&h->pk, k, strlen(k));
}
static void hs(hb_t *h, const char *k, const char *v, size_t n) {
    hk(h, k);
    msgpack_pack_str(&h->pk, n);
    msgpack_pack_str_body(&h->pk, v, n);
}
static void hi(hb_t *h, const char *k, int64_t v) {
    hk(h, k);
    msgpack_pack_int64(&h->pk, v);
}
static void hbin(hb_t *h, const char *k, const void *p, size_t n) {
    hk(h, k);
    msgpack_pack_bin(&h->pk, n);
    if (n) msgpack_pack_bin_body(&h->pk, p, n);
}

// a shutdown message with `extra` appended keys; variant selects one defect
static int shutdown_variant(int variant, char *errbuf, size_t cap) {
    hb_t h;
    hb_init(&h);
    int nkeys = 4;
    if (variant == 3 || variant == 4 || variant == 5) nkeys = 5; // extra key
    if (variant == 2) nkeys = 3;                                 // missing "why"
    msgpack_pack_map(&h.pk, nkeys);
    if (variant == 6) { hi(&h, "v", 1); hi(&h, "t", MSG_SHUTDOWN); }
    else {
        hi(&h, "t", variant == 7 ? MSG_TASK : MSG_SHUTDOWN);
        hi(&h, "v", variant == 8 ? 2 : 1);
    }
    if (variant == 9) { hk(&h, "code"); msgpack_pack_double(&h.pk, 1.0); }
    else if (variant == 10) hi(&h, "code", (int64_t)INT32_MAX + 1);
    else hi(&h, "code", 3);
    if (variant == 1) hs(&h, "why", "a\0b", 3);
    else if (variant != 2) hs(&h, "why", "stop", 4);
    if (variant == 3) hs(&h, "why", "again", 5);
    if (variant == 4) hi(&h, "extra", 1);
    if (variant == 5) hi(&h, "t", MSG_SHUTDOWN);
    msg_shutdown_t m;
    int rc = msg_shutdown_decode(h.sb.data, h.sb.size, &m);
    snprintf(errbuf, cap, "%s", err_msg());
    if (rc == 0) {
        CHECK(m.code == 3 && strcmp(m.reason, "stop") == 0, "variant 0 values");
        msg_shutdown_free(&m);
    }
    msgpack_sbuffer_destroy(&h.sb);
    return rc;
}

static void test_malformed(void) {
    char e[512];
    CHECK(shutdown_variant(0, e, sizeof e) == 0, "well-formed hand-built shutdown: %s", e);
    static const char *want[] = {NULL,
                                 "msg shutdown: field \"why\": string contains a NUL byte",
                                 "msg shutdown: missing field \"why\"",
                                 "msg shutdown: duplicate field \"why\"",
                                 "msg shutdown: unknown key \"extra\"",
                                 "msg shutdown: duplicate key \"t\"",
                                 "msg shutdown: key 0 must be \"t\"",
                                 "msg shutdown: message type is 1 (task), expected 7",
                                 "msg shutdown: format version 2",
                                 "msg shutdown: field \"code\": expected an integer, found float",
                                 "msg shutdown: field \"code\": 2147483648 is outside"};
    for (int v = 1; v < (int)(sizeof want / sizeof want[0]); v++) {
        CHECK(shutdown_variant(v, e, sizeof e) == -1, "variant %d accepted", v);
        CHECK(strncmp(e, want[v], strlen(want[v])) == 0, "variant %d: error \"%s\", want \"%s...\"", v, e, want[v]);
    }

    // traj with a short ids bin: the error names the field and both sizes
    msg_traj_t t = {0};
    int32_t ids[10] = {0};
    float lp[10] = {0};
    uint8_t mask[10] = {0};
    t.group_size = 1;
    t.n_tokens = 10;
    t.ids = ids;
    t.logprobs = lp;
    t.mask = mask;
    hb_t h;
    hb_init(&h);
    msgpack_pack_map(&h.pk, 25);
    hi(&h, "t", MSG_TRAJ);
    hi(&h, "v", 1);
    // shuffled order: decoders must not depend on the key order after "t", "v"
    hs(&h, "text", "", 0);
    hbin(&h, "ids", ids, 36);
    hbin(&h, "lp", lp, 40);
    hbin(&h, "mask", mask, 10);
    hi(&h, "n", 10);
    const char *ikeys[] = {"step", "task", "group", "idx", "pver", "eval", "diff", "np", "turns", "calls", "abort", "trunc"};
    for (int i = 0; i < 12; i++) hi(&h, ikeys[i], 0);
    hi(&h, "gsize", 1);
    hs(&h, "env", "x", 1);
    hs(&h, "asp", "{}", 2);
    hs(&h, "det", "{}", 2);
    hk(&h, "rew");
    msgpack_pack_float(&h.pk, 0.5f);
    hk(&h, "score");
    msgpack_pack_double(&h.pk, 0.25);
    msg_traj_t d;
    CHECK(msg_traj_decode(h.sb.data, h.sb.size, &d) == -1, "short ids accepted");
    CHECK(strcmp(err_msg(), "msg traj: field \"ids\": expected bin of 4*n_tokens = 40 bytes, found 36") == 0,
          "short ids error: %s", err_msg());
    // the same with the right size decodes (and float64 is accepted for a float32 field)
    h.sb.size = 0;
    msgpack_pack_map(&h.pk, 25);
    hi(&h, "t", MSG_TRAJ);
    hi(&h, "v", 1);
    hs(&h, "text", "", 0);
    ids[3] = -7;
    lp[3] = -1.5f;
    mask[3] = 1;
    hbin(&h, "ids", ids, 40);
    hbin(&h, "lp", lp, 40);
    hbin(&h, "mask", mask, 10);
    hi(&h, "n", 10);
    for (int i = 0; i < 12; i++) hi(&h, ikeys[i], 0);
    hi(&h, "gsize", 1);
    hs(&h, "env", "x", 1);
    hs(&h, "asp", "{}", 2);
    hs(&h, "det", "{}", 2);
    hk(&h, "rew");
    msgpack_pack_float(&h.pk, 0.5f);
    hk(&h, "score");
    msgpack_pack_double(&h.pk, 0.25);
    CHECK(msg_traj_decode(h.sb.data, h.sb.size, &d) == 0, "hand-built traj: %s", err_msg());
    if (d.ids) {
        CHECK(d.n_tokens == 10 && d.ids[3] == -7 && d.logprobs[3] == -1.5f && d.mask[3] == 1 && d.reward == 0.5f &&
              d.score == 0.25f && strcmp(d.env, "x") == 0 && d.transcript[0] == 0, "hand-built traj values");
        msg_traj_free(&d);
    }
    msgpack_sbuffer_destroy(&h.sb);

    // semantic checks in the encoder: an invalid struct is refused and appends nothing
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    mask[0] = 2;
    CHECK(msg_traj_encode(&t, &sb) == -1 && sb.size == 0, "mask 2 encoded");
    mask[0] = 0;
    t.n_prompt = 11;
    CHECK(msg_traj_encode(&t, &sb) == -1 && strstr(err_msg(), "\"np\""), "np > n encoded: %s", err_msg());
    t.n_prompt = 0;
    t.index = 1;
    CHECK(msg_traj_encode(&t, &sb) == -1 && strstr(err_msg(), "\"idx\""), "idx >= gsize encoded: %s", err_msg());
    t.index = 0;
    t.n_tokens = -1;
    CHECK(msg_traj_encode(&t, &sb) == -1 && strstr(err_msg(), "\"n\""), "n < 0 encoded: %s", err_msg());
    t.n_tokens = 10;
    CHECK(msg_traj_encode(&t, &sb) == 0 && sb.size > 0, "valid traj (NULL strings) not encoded: %s", err_msg());
    msgpack_sbuffer_destroy(&sb);
    msg_sim_rep_t bad = {1, 0, "oops", "{}"};
    msgpack_sbuffer_init(&sb);
    CHECK(msg_sim_reps_encode(&bad, 1, &sb) == -1 && sb.size == 0, "status 0 with a reason encoded");
    msgpack_sbuffer_destroy(&sb);

    // sizes that cannot fit: an array32 of 4e9 elements, a str32 of 4 GB, deep nesting
    static const unsigned char huge_arr[] = {0x83, 0xa1, 't', 0x02, 0xa1, 'v', 0x01, 0xa4, 'r', 'e', 'q', 's',
                                             0xdd, 0xff, 0xff, 0xff, 0xff};
    msg_sim_req_t *rq = (void *)1;
    int nq = 5;
    CHECK(msg_sim_reqs_decode((const char *)huge_arr, sizeof huge_arr, &rq, &nq) == -1 && rq == NULL && nq == 0,
          "huge array accepted");
    CHECK(strstr(err_msg(), "cannot fit") != NULL, "huge array error: %s", err_msg());
    static const unsigned char huge_str[] = {0x83, 0xa1, 't', 0x07, 0xa1, 'v', 0x01, 0xa3, 'w', 'h', 'y',
                                             0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'};
    msg_shutdown_t s;
    CHECK(msg_shutdown_decode((const char *)huge_str, sizeof huge_str, &s) == -1, "huge str accepted");
    unsigned char deep[64];
    memcpy(deep, "\x83\xa1t\x07\xa1v\x01\xa3why", 11);
    memset(deep + 11, 0x91, 40); // 40 nested one-element arrays
    deep[51] = 0x01;
    CHECK(msg_shutdown_decode((const char *)deep, 52, &s) == -1 && strstr(err_msg(), "nested"), "deep nesting: %s", err_msg());
    // reqs: an entry that is not a map; kind out of range
    hb_init(&h);
    msgpack_pack_map(&h.pk, 3);
    hi(&h, "t", MSG_SIM_REQ);
    hi(&h, "v", 1);
    hk(&h, "reqs");
    msgpack_pack_array(&h.pk, 2);
    msgpack_pack_map(&h.pk, 5);
    hi(&h, "id", 1); hi(&h, "kind", 1); hi(&h, "task", 2); hi(&h, "ep", -1); hs(&h, "pl", "{}", 2);
    msgpack_pack_map(&h.pk, 5);
    hi(&h, "id", 1); hi(&h, "kind", 16); hi(&h, "task", 2); hi(&h, "ep", -1); hs(&h, "pl", "{}", 2);
    CHECK(msg_sim_reqs_decode(h.sb.data, h.sb.size, &rq, &nq) == -1 && rq == NULL && nq == 0, "kind 16 accepted");
    CHECK(strcmp(err_msg(), "msg sim_req request 1: field \"kind\": 16 is outside [0, 15]") == 0, "kind error: %s", err_msg());
    msgpack_sbuffer_destroy(&h.sb);
    // peek
    CHECK(msg_peek_type((const char *)huge_arr, sizeof huge_arr) == MSG_SIM_REQ, "peek reqs");
    CHECK(msg_peek_type((const char *)huge_str, 7) == MSG_SHUTDOWN, "peek shutdown");
    CHECK(msg_peek_type("\x82\xa1t\x08", 4) == -1, "peek type 8");
    CHECK(msg_peek_type("\x82\xa1t", 3) == -1, "peek truncated");
    CHECK(msg_peek_type("\x91\x01", 2) == -1, "peek array");
    CHECK(msg_peek_type("", 0) == -1, "peek empty");
}

// exact bytes of a weights message, written out by hand from docs/protocol.md
static void test_exact_bytes(void) {
    msg_weights_t w = {1, 2, 300, 0x0102030405060708ull};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(msg_weights_encode(&w, &sb) == 0, "weights encode");
    static const unsigned char want[] = {
        0x86, 0xa1, 't', 0x06, 0xa1, 'v', 0x01, 0xa3, 'v', 'e', 'r', 0x01, 0xa4, 's', 't', 'e', 'p', 0x02,
        0xa2, 'n', 'f', 0xcd, 0x01, 0x2c, 0xa3, 's', 'u', 'm', 0xcf, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(sb.size == sizeof want && memcmp(sb.data, want, sizeof want) == 0, "weights bytes differ (%zu bytes)", sb.size);
    msgpack_sbuffer_destroy(&sb);
    msg_shutdown_t s = {-2, NULL};
    msgpack_sbuffer_init(&sb);
    CHECK(msg_shutdown_encode(&s, &sb) == 0, "shutdown encode");
    static const unsigned char want2[] = {0x84, 0xa1, 't', 0x07, 0xa1, 'v', 0x01, 0xa4, 'c', 'o', 'd', 'e', 0xfe,
                                          0xa3, 'w', 'h', 'y', 0xa0};
    CHECK(sb.size == sizeof want2 && memcmp(sb.data, want2, sizeof want2) == 0, "shutdown bytes differ");
    msgpack_sbuffer_destroy(&sb);
}

#define ROUND(T, gen, enc, dec, eq, fr)                                                  \
    do {                                                                                 \
        T a = gen(), b;                                                                  \
        msgpack_sbuffer sb;                                                              \
        msgpack_sbuffer_init(&sb);                                                       \
        CHECK(enc(&a, &sb) == 0, #T " encode: %s", err_msg());                           \
        CHECK(msg_peek_type(sb.data, sb.size) == type, #T " peek");                       \
        CHECK(dec(sb.data, sb.size, &b) == 0, #T " decode: %s", err_msg());               \
        CHECK(eq(&a, &b), #T " round trip differs (iteration %d)", it);                  \
        if (it < n_abuse && sb.size < 4096) abuse(type, sb.data, sb.size, it < n_corrupt); \
        fr(&a);                                                                          \
        fr(&b);                                                                          \
        msgpack_sbuffer_destroy(&sb);                                                    \
    } while (0)

static void weights_nofree(msg_weights_t *m) { (void)m; }

int main(void) {
    CHECK(msg_checksum("", 0) == 0xcbf29ce484222325ull, "fnv1a64(\"\")");
    CHECK(msg_checksum("a", 1) == 0xaf63dc4c8601ec8cull, "fnv1a64(a)");
    CHECK(msg_checksum("foobar", 6) == 0x85944171f73967e8ull, "fnv1a64(foobar)");
    CHECK(strcmp(msg_type_name(MSG_TRAJ), "traj") == 0 && strcmp(msg_type_name(99), "?") == 0, "type names");
    CHECK(strcmp(traj_reason_name(TRAJ_CONTEXT_FULL), "context_full") == 0, "reason names");
    test_exact_bytes();
    test_malformed();

    const int iters = 300, n_abuse = 6, n_corrupt = 3;
    for (int it = 0; it < iters; it++) {
        int type;
        type = MSG_TASK;
        ROUND(msg_task_t, rnd_task, msg_task_encode, msg_task_decode, task_eq, msg_task_free);
        type = MSG_TRAJ;
        ROUND(msg_traj_t, rnd_traj, msg_traj_encode, msg_traj_decode, traj_eq, msg_traj_free);
        type = MSG_CURRIC;
        ROUND(msg_curric_t, rnd_curric, msg_curric_encode, msg_curric_decode, curric_eq, msg_curric_free);
        type = MSG_WEIGHTS;
        ROUND(msg_weights_t, rnd_weights, msg_weights_encode, msg_weights_decode, weights_eq, weights_nofree);
        type = MSG_SHUTDOWN;
        ROUND(msg_shutdown_t, rnd_shutdown, msg_shutdown_encode, msg_shutdown_decode, shutdown_eq, msg_shutdown_free);

        // batches
        int n, k;
        msg_sim_req_t *q = rnd_reqs(&n), *qd;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        CHECK(msg_sim_reqs_encode(q, n, &sb) == 0, "reqs encode: %s", err_msg());
        CHECK(msg_peek_type(sb.data, sb.size) == MSG_SIM_REQ, "reqs peek");
        CHECK(msg_sim_reqs_decode(sb.data, sb.size, &qd, &k) == 0 && k == n, "reqs decode: %s", err_msg());
        for (int i = 0; i < n && k == n; i++) CHECK(req_eq(&q[i], &qd[i]), "req %d differs", i);
        if (it < n_abuse && sb.size < 4096) abuse(MSG_SIM_REQ, sb.data, sb.size, it < n_corrupt);
        msg_sim_reqs_free(q, n);
        msg_sim_reqs_free(qd, k);
        msgpack_sbuffer_destroy(&sb);

        msg_sim_rep_t *p = rnd_reps(&n), *pd;
        msgpack_sbuffer_init(&sb);
        CHECK(msg_sim_reps_encode(p, n, &sb) == 0, "reps encode: %s", err_msg());
        CHECK(msg_sim_reps_decode(sb.data, sb.size, &pd, &k) == 0 && k == n, "reps decode: %s", err_msg());
        for (int i = 0; i < n && k == n; i++) CHECK(rep_eq(&p[i], &pd[i]), "rep %d differs", i);
        if (it < n_abuse && sb.size < 4096) abuse(MSG_SIM_REP, sb.data, sb.size, it < n_corrupt);
        msg_sim_reps_free(p, n);
        msg_sim_reps_free(pd, k);
        msgpack_sbuffer_destroy(&sb);
    }
    // a message of one type fed to every other decoder fails
    msg_weights_t w = {1, 2, 3, 4};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msg_weights_encode(&w, &sb);
    for (int t = 1; t < MSG_N_TYPES; t++)
        if (t != MSG_WEIGHTS) CHECK(!decode_any(t, sb.data, sb.size), "weights decoded as %s", msg_type_name(t));
    msgpack_sbuffer_destroy(&sb);
    return test_exit("test_msg");
}
