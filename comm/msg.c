// comm/msg: msgpack codecs of every message that crosses ranks (wire format: docs/protocol.md).
//
// Encoding: one msgpack map per message, keys "t", "v", then the fields in the order of the tables
// below. Decoding of untrusted bytes goes in three stages:
//   1. scan_obj: a bounded walk over the raw bytes checking that they hold exactly one msgpack
//      object (no trailing bytes), nested at most MSG_MAX_DEPTH deep, with no ext types and with
//      every array / map count <= the bytes left (each element needs at least one byte). This is
//      what keeps msgpack-c from allocating count * sizeof(msgpack_object) for a 5-byte header
//      claiming 4 billion elements: after the scan its zone holds O(n) bytes.
//   2. msgpack_unpack_next into a msgpack_unpacked (strings and bins point into the input).
//   3. read_fields: each map key looked up in the type's field table (unknown and duplicate keys
//      rejected), value type and range checked, strings copied (NUL bytes rejected); then the
//      per-type cross-field checks (check_*), which the encoders run too, so an invalid struct
//      never goes on the wire.
// A failed decode frees what it had allocated and leaves the struct zeroed.
#include "msg.h"

#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/err.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "comm/msg.c writes the int32 / float32 arrays of the wire format as host bytes: little-endian only"
#endif

#define MSG_MAX_DEPTH 8 // deepest message: batch map > "reqs" array > request map > scalar

static const char *TYPE_NAMES[MSG_N_TYPES] = {"?",   "task",    "sim_req", "sim_rep",
                                              "traj", "curric", "weights", "shutdown"};
const char *msg_type_name(int type) {
    return type > 0 && type < MSG_N_TYPES ? TYPE_NAMES[type] : "?";
}

static const char *REASON_NAMES[TRAJ_N_REASONS] = {"ok", "sim_error", "turn_cap", "token_cap",
                                                   "context_full"};
const char *traj_reason_name(int reason) {
    return reason >= 0 && reason < TRAJ_N_REASONS ? REASON_NAMES[reason] : "?";
}

uint64_t msg_checksum(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull; // FNV-1a 64 offset basis
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// ---------------------------------------------------------------------------------------------
// stage 1: bounded scan of raw msgpack bytes

static uint64_t be_uint(const uint8_t *p, int nb) {
    uint64_t v = 0;
    for (int i = 0; i < nb; i++) v = v << 8 | p[i];
    return v;
}

// Checks one object at p[*pos..n); advances *pos past it. 0, or -1 with err_set (no prefix).
static int scan_obj(const uint8_t *p, size_t n, size_t *pos, int depth) {
    if (depth > MSG_MAX_DEPTH) return err_set("nested deeper than %d levels", MSG_MAX_DEPTH);
    if (*pos >= n) return err_set("truncated at byte %zu", *pos);
    uint8_t c = p[(*pos)++];
    size_t left = n - *pos;
    uint64_t len = 0, count = 0;
    int nb = 0, is_map = 0, container = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0; // fixint, nil, bool
    if (c >= 0x80 && c <= 0x8f) { count = c & 0x0f; is_map = 1; container = 1; }
    else if (c >= 0x90 && c <= 0x9f) { count = c & 0x0f; container = 1; }
    else if (c >= 0xa0 && c <= 0xbf) { len = c & 0x1f; }
    else {
        switch (c) {
        case 0xc4: case 0xd9: nb = 1; break;           // bin8, str8
        case 0xc5: case 0xda: nb = 2; break;           // bin16, str16
        case 0xc6: case 0xdb: nb = 4; break;           // bin32, str32
        case 0xca: len = 4; break;                     // float32
        case 0xcb: len = 8; break;                     // float64
        case 0xcc: case 0xd0: len = 1; break;          // (u)int8
        case 0xcd: case 0xd1: len = 2; break;
        case 0xce: case 0xd2: len = 4; break;
        case 0xcf: case 0xd3: len = 8; break;
        case 0xdc: container = 1; nb = 2; break;       // array16
        case 0xdd: container = 1; nb = 4; break;       // array32
        case 0xde: container = 1; is_map = 1; nb = 2; break;
        case 0xdf: container = 1; is_map = 1; nb = 4; break;
        case 0xc1: return err_set("byte 0x%02x at %zu is never used by msgpack", c, *pos - 1);
        default: return err_set("ext type (0x%02x) at byte %zu is not part of the protocol", c, *pos - 1);
        }
        if (nb) {
            if (left < (size_t)nb) return err_set("truncated at byte %zu", n);
            uint64_t v = be_uint(p + *pos, nb);
            *pos += nb;
            left -= nb;
            if (container) count = v; else len = v;
        }
    }
    if (!container) {
        if (len > left) return err_set("truncated: %llu bytes needed at byte %zu, %zu left",
                                       (unsigned long long)len, *pos, left);
        *pos += len;
        return 0;
    }
    uint64_t items = is_map ? 2 * count : count;
    if (items > left) return err_set("%s of %llu elements at byte %zu cannot fit in the %zu bytes left",
                                     is_map ? "map" : "array", (unsigned long long)count, *pos, left);
    for (uint64_t i = 0; i < items; i++)
        if (scan_obj(p, n, pos, depth + 1)) return -1;
    return 0;
}

int msg_peek_type(const char *buf, size_t n) {
    const uint8_t *p = (const uint8_t *)buf;
    size_t pos = 0;
    if (!p || n == 0) return err_set("msg: empty message");
    uint8_t c = p[pos++];
    uint64_t count;
    if (c >= 0x80 && c <= 0x8f) count = c & 0x0f;
    else if (c == 0xde && n >= 3) { count = be_uint(p + 1, 2); pos = 3; }
    else if (c == 0xdf && n >= 5) { count = be_uint(p + 1, 4); pos = 5; }
    else return err_set("msg: not a msgpack map (first byte 0x%02x)", c);
    if (count < 2) return err_set("msg: map of %llu keys has no \"t\" and \"v\"", (unsigned long long)count);
    if (n - pos < 2 || p[pos] != 0xa1 || p[pos + 1] != 't') return err_set("msg: first key is not \"t\"");
    pos += 2;
    if (pos >= n) return err_set("msg: truncated after key \"t\"");
    c = p[pos++];
    uint64_t t;
    if (c <= 0x7f) t = c;
    else if (c >= 0xcc && c <= 0xcf) {
        int nb = 1 << (c - 0xcc);
        if (n - pos < (size_t)nb) return err_set("msg: truncated after key \"t\"");
        t = be_uint(p + pos, nb);
    } else return err_set("msg: key \"t\": expected a non-negative integer (byte 0x%02x)", c);
    if (t < 1 || t >= MSG_N_TYPES) return err_set("msg: unknown message type %llu", (unsigned long long)t);
    return (int)t;
}

// ---------------------------------------------------------------------------------------------
// field tables: one row per struct field, in wire order

typedef enum { F_I32, F_I64, F_U64, F_F32, F_F64, F_STR, F_BIN } fkind_t;
typedef struct {
    const char *key; // wire name
    fkind_t kind;
    size_t off;      // offset in the struct (F_BIN: unused; the caller handles the bytes)
    int64_t lo, hi;  // accepted range (F_I32 / F_I64)
} field_t;

#define FI32(k, s, f, lo, hi) {k, F_I32, offsetof(s, f), lo, hi}
#define FI64(k, s, f, lo, hi) {k, F_I64, offsetof(s, f), lo, hi}
#define FU64(k, s, f) {k, F_U64, offsetof(s, f), 0, 0}
#define FF32(k, s, f) {k, F_F32, offsetof(s, f), 0, 0}
#define FF64(k, s, f) {k, F_F64, offsetof(s, f), 0, 0}
#define FSTR(k, s, f) {k, F_STR, offsetof(s, f), 0, 0}
#define FBIN(k) {k, F_BIN, 0, 0, 0}
#define I32MAX INT32_MAX
#define I64MAX INT64_MAX

static const field_t TASK_FIELDS[] = {
    FI64("step", msg_task_t, step, 0, I64MAX),
    FU64("task", msg_task_t, task_id),
    FI32("group", msg_task_t, group, 0, I32MAX),
    FI32("gsize", msg_task_t, group_size, 1, I32MAX),
    FI64("pver", msg_task_t, policy_version, -2, I64MAX),
    FI32("eval", msg_task_t, eval, 0, 1),
    FI32("diff", msg_task_t, difficulty, 0, I32MAX),
    FU64("seed", msg_task_t, seed),
    FSTR("env", msg_task_t, env),
    FSTR("asp", msg_task_t, aspects),
};
static const field_t REQ_FIELDS[] = {
    FU64("id", msg_sim_req_t, req_id),
    FI32("kind", msg_sim_req_t, kind, 0, 15),
    FU64("task", msg_sim_req_t, task_id),
    FI32("ep", msg_sim_req_t, episode, -1, I32MAX),
    FSTR("pl", msg_sim_req_t, payload),
};
static const field_t REP_FIELDS[] = {
    FU64("id", msg_sim_rep_t, req_id),
    FI32("st", msg_sim_rep_t, status, INT32_MIN, I32MAX),
    FSTR("why", msg_sim_rep_t, reason),
    FSTR("pl", msg_sim_rep_t, payload),
};
enum { TRAJ_IDS = 11, TRAJ_LP = 12, TRAJ_MASK = 13 }; // rows of the bins in TRAJ_FIELDS
static const field_t TRAJ_FIELDS[] = {
    FI64("step", msg_traj_t, step, 0, I64MAX),
    FU64("task", msg_traj_t, task_id),
    FI32("group", msg_traj_t, group, 0, I32MAX),
    FI32("idx", msg_traj_t, index, 0, I32MAX),
    FI32("gsize", msg_traj_t, group_size, 1, I32MAX),
    FI64("pver", msg_traj_t, policy_version, -2, I64MAX),
    FI32("eval", msg_traj_t, eval, 0, 1),
    FI32("diff", msg_traj_t, difficulty, 0, I32MAX),
    FSTR("env", msg_traj_t, env),
    FSTR("asp", msg_traj_t, aspects),
    FI32("n", msg_traj_t, n_tokens, 0, I32MAX),
    FBIN("ids"), FBIN("lp"), FBIN("mask"),
    FI32("np", msg_traj_t, n_prompt, 0, I32MAX),
    FF32("rew", msg_traj_t, reward),
    FF32("score", msg_traj_t, score),
    FI32("turns", msg_traj_t, turns, 0, I32MAX),
    FI32("calls", msg_traj_t, tool_calls, 0, I32MAX),
    FI32("abort", msg_traj_t, abort, 0, TRAJ_N_REASONS - 1),
    FI32("trunc", msg_traj_t, truncated, 0, 1),
    FSTR("det", msg_traj_t, reward_details),
    FSTR("text", msg_traj_t, transcript),
};
static const field_t CURRIC_FIELDS[] = {
    FI64("step", msg_curric_t, step, 0, I64MAX),
    FI64("upd", msg_curric_t, update, 0, I64MAX),
    FI32("d0", msg_curric_t, d_before, 0, I32MAX),
    FI32("d1", msg_curric_t, d_after, 0, I32MAX),
    FF64("mean", msg_curric_t, mean_reward),
    FI32("nr", msg_curric_t, n_rewards, 0, I32MAX),
    FI32("move", msg_curric_t, move, -1, 1),
    FSTR("state", msg_curric_t, state),
};
static const field_t WEIGHTS_FIELDS[] = {
    FI64("ver", msg_weights_t, version, -2, I64MAX),
    FI64("step", msg_weights_t, step, 0, I64MAX),
    FI64("nf", msg_weights_t, n_floats, 0, I64MAX),
    FU64("sum", msg_weights_t, checksum),
};
static const field_t SHUTDOWN_FIELDS[] = {
    FI32("code", msg_shutdown_t, code, INT32_MIN, I32MAX),
    FSTR("why", msg_shutdown_t, reason),
};
#define NF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAX_FIELDS 32

// ---------------------------------------------------------------------------------------------
// encoding

static int pack_key(msgpack_packer *pk, const char *k) {
    size_t n = strlen(k);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, k, n);
}
static int pack_cstr(msgpack_packer *pk, const char *s) { // NULL encodes as ""
    size_t n = s ? strlen(s) : 0;
    if (n > UINT32_MAX) return -1;
    return msgpack_pack_str(pk, n) | (n ? msgpack_pack_str_body(pk, s, n) : 0);
}
static int pack_head(msgpack_packer *pk, int type, size_t n_fields) {
    return msgpack_pack_map(pk, n_fields + 2) | pack_key(pk, "t") | msgpack_pack_int32(pk, type) |
           pack_key(pk, "v") | msgpack_pack_int32(pk, MSG_VERSION);
}
// packs the table's scalar and string fields of struct s; F_BIN rows go through bins[row]
typedef struct { const void *p; size_t n; } bin_t;
static int pack_fields(msgpack_packer *pk, const field_t *f, int nf, const void *s, const bin_t *bins) {
    const char *b = s;
    int rc = 0;
    for (int i = 0; i < nf; i++) {
        rc |= pack_key(pk, f[i].key);
        switch (f[i].kind) {
        case F_I32: rc |= msgpack_pack_int32(pk, *(const int32_t *)(b + f[i].off)); break;
        case F_I64: rc |= msgpack_pack_int64(pk, *(const int64_t *)(b + f[i].off)); break;
        case F_U64: rc |= msgpack_pack_uint64(pk, *(const uint64_t *)(b + f[i].off)); break;
        case F_F32: rc |= msgpack_pack_float(pk, *(const float *)(b + f[i].off)); break;
        case F_F64: rc |= msgpack_pack_double(pk, *(const double *)(b + f[i].off)); break;
        case F_STR: rc |= pack_cstr(pk, *(char *const *)(b + f[i].off)); break;
        case F_BIN:
            if (bins[i].n > UINT32_MAX) return -1;
            rc |= msgpack_pack_bin(pk, bins[i].n);
            if (bins[i].n) rc |= msgpack_pack_bin_body(pk, bins[i].p, bins[i].n);
            break;
        }
    }
    return rc;
}

// range checks of a struct's integer fields (shared by encoders and decoders)
static int check_ranges(const char *what, const field_t *f, int nf, const void *s) {
    const char *b = s;
    for (int i = 0; i < nf; i++) {
        int64_t v;
        if (f[i].kind == F_I32) v = *(const int32_t *)(b + f[i].off);
        else if (f[i].kind == F_I64) v = *(const int64_t *)(b + f[i].off);
        else continue;
        if (v < f[i].lo || v > f[i].hi)
            return err_set("msg %s: field \"%s\": %lld is outside [%lld, %lld]", what, f[i].key,
                           (long long)v, (long long)f[i].lo, (long long)f[i].hi);
    }
    return 0;
}

// runs after an encode failed: drop the partial bytes
static int enc_fail(msgpack_sbuffer *out, size_t start, const char *what) {
    out->size = start;
    return err_set("msg %s: encode failed (out of memory or a string over 4 GiB)", what);
}

// ---------------------------------------------------------------------------------------------
// decoding

typedef struct {
    msgpack_unpacked up;
    const msgpack_object_map *map; // the top-level map
} doc_t;

static void doc_close(doc_t *d) { msgpack_unpacked_destroy(&d->up); }

// stages 1 and 2, and the "t" / "v" keys. On failure nothing is left to free.
static int doc_open(doc_t *d, const char *buf, size_t n, int type) {
    const char *what = msg_type_name(type);
    msgpack_unpacked_init(&d->up);
    d->map = NULL;
    if (!buf || n == 0) { doc_close(d); return err_set("msg %s: empty message", what); }
    size_t pos = 0;
    if (scan_obj((const uint8_t *)buf, n, &pos, 0)) { doc_close(d); return err_wrap("msg %s: ", what); }
    if (pos != n) {
        doc_close(d);
        return err_set("msg %s: %zu trailing bytes after the message (%zu bytes)", what, n - pos, pos);
    }
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&d->up, buf, n, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != n) {
        doc_close(d);
        return err_set("msg %s: msgpack-c rejected the message (code %d)", what, (int)r);
    }
    const msgpack_object *o = &d->up.data;
    if (o->type != MSGPACK_OBJECT_MAP) { doc_close(d); return err_set("msg %s: not a msgpack map", what); }
    d->map = &o->via.map;
    const msgpack_object_kv *kv = d->map->ptr;
    static const char *keys[2] = {"t", "v"};
    for (int i = 0; i < 2; i++) {
        if (d->map->size <= (uint32_t)i || kv[i].key.type != MSGPACK_OBJECT_STR || kv[i].key.via.str.size != 1 ||
            kv[i].key.via.str.ptr[0] != keys[i][0]) {
            doc_close(d);
            return err_set("msg %s: key %d must be \"%s\"", what, i, keys[i]);
        }
        if (kv[i].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            doc_close(d);
            return err_set("msg %s: key \"%s\": expected a non-negative integer", what, keys[i]);
        }
    }
    uint64_t t = kv[0].val.via.u64, v = kv[1].val.via.u64;
    if (t != (uint64_t)type) {
        doc_close(d);
        return err_set("msg %s: message type is %llu (%s), expected %d", what, (unsigned long long)t,
                       msg_type_name(t < MSG_N_TYPES ? (int)t : 0), type);
    }
    if (v != MSG_VERSION) {
        doc_close(d);
        return err_set("msg %s: format version %llu, this build reads version %d", what, (unsigned long long)v,
                       MSG_VERSION);
    }
    return 0;
}

static const char *obj_type_name(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    default: return "ext";
    }
}

static int key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

// the key as printable text for an error message (escaped, cut at cap)
static void key_text(const msgpack_object *k, char *out, size_t cap) {
    if (k->type != MSGPACK_OBJECT_STR) { snprintf(out, cap, "(a %s)", obj_type_name(k)); return; }
    size_t j = 0;
    uint32_t i = 0;
    for (; i < k->via.str.size && j + 8 < cap; i++) {
        unsigned char c = (unsigned char)k->via.str.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') out[j++] = (char)c;
        else j += (size_t)snprintf(out + j, cap - j, "\\x%02x", c);
    }
    if (i < k->via.str.size) { memcpy(out + j, "...", 3); j += 3; }
    out[j] = 0;
}

// stage 3: keys kv[first..size) against table f; fills struct s (zeroed by the caller). Bin rows
// are returned in bins[row] (pointing into the input). On failure the struct may hold some
// malloc'd strings: the caller frees it.
static int read_fields(const char *what, const msgpack_object_map *m, uint32_t first, const field_t *f,
                       int nf, void *s, bin_t *bins) {
    char *b = s;
    bool seen[MAX_FIELDS] = {0};
    for (uint32_t j = first; j < m->size; j++) {
        const msgpack_object *k = &m->ptr[j].key, *v = &m->ptr[j].val;
        int i = 0;
        while (i < nf && !key_is(k, f[i].key)) i++;
        if (i == nf) {
            char kt[80];
            key_text(k, kt, sizeof kt);
            if (key_is(k, "t") || key_is(k, "v")) return err_set("msg %s: duplicate key \"%s\"", what, kt);
            return err_set("msg %s: unknown key \"%s\" (a newer or older format?)", what, kt);
        }
        if (seen[i]) return err_set("msg %s: duplicate field \"%s\"", what, f[i].key);
        seen[i] = true;
        void *dst = b + f[i].off;
        switch (f[i].kind) {
        case F_I32: case F_I64: case F_U64: {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER && v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return err_set("msg %s: field \"%s\": expected an integer, found %s", what, f[i].key,
                               obj_type_name(v));
            if (f[i].kind == F_U64) {
                if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    return err_set("msg %s: field \"%s\": %lld is negative", what, f[i].key, (long long)v->via.i64);
                *(uint64_t *)dst = v->via.u64;
                break;
            }
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > (uint64_t)f[i].hi)
                return err_set("msg %s: field \"%s\": %llu is outside [%lld, %lld]", what, f[i].key,
                               (unsigned long long)v->via.u64, (long long)f[i].lo, (long long)f[i].hi);
            int64_t x = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : v->via.i64;
            if (x < f[i].lo || x > f[i].hi)
                return err_set("msg %s: field \"%s\": %lld is outside [%lld, %lld]", what, f[i].key,
                               (long long)x, (long long)f[i].lo, (long long)f[i].hi);
            if (f[i].kind == F_I32) *(int32_t *)dst = (int32_t)x;
            else *(int64_t *)dst = x;
            break;
        }
        case F_F32: case F_F64:
            if (v->type != MSGPACK_OBJECT_FLOAT32 && v->type != MSGPACK_OBJECT_FLOAT64)
                return err_set("msg %s: field \"%s\": expected a float, found %s", what, f[i].key, obj_type_name(v));
            if (f[i].kind == F_F32) *(float *)dst = (float)v->via.f64;
            else *(double *)dst = v->via.f64;
            break;
        case F_STR: {
            if (v->type != MSGPACK_OBJECT_STR)
                return err_set("msg %s: field \"%s\": expected str, found %s", what, f[i].key, obj_type_name(v));
            size_t n = v->via.str.size;
            if (n && memchr(v->via.str.ptr, 0, n))
                return err_set("msg %s: field \"%s\": string contains a NUL byte", what, f[i].key);
            char *c = malloc(n + 1);
            if (!c) return err_set("msg %s: field \"%s\": out of memory (%zu bytes)", what, f[i].key, n + 1);
            if (n) memcpy(c, v->via.str.ptr, n);
            c[n] = 0;
            *(char **)dst = c;
            break;
        }
        case F_BIN:
            if (v->type != MSGPACK_OBJECT_BIN)
                return err_set("msg %s: field \"%s\": expected bin, found %s", what, f[i].key, obj_type_name(v));
            bins[i].p = v->via.bin.ptr;
            bins[i].n = v->via.bin.size;
            break;
        }
    }
    for (int i = 0; i < nf; i++)
        if (!seen[i]) return err_set("msg %s: missing field \"%s\"", what, f[i].key);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// task

int msg_task_encode(const msg_task_t *m, msgpack_sbuffer *out) {
    if (check_ranges("task", TASK_FIELDS, NF(TASK_FIELDS), m)) return -1;
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_head(&pk, MSG_TASK, NF(TASK_FIELDS)) | pack_fields(&pk, TASK_FIELDS, NF(TASK_FIELDS), m, NULL))
        return enc_fail(out, start, "task");
    return 0;
}

int msg_task_decode(const char *buf, size_t n, msg_task_t *m) {
    memset(m, 0, sizeof *m);
    doc_t d;
    if (doc_open(&d, buf, n, MSG_TASK)) return -1;
    int rc = read_fields("task", d.map, 2, TASK_FIELDS, NF(TASK_FIELDS), m, NULL);
    doc_close(&d);
    if (rc) msg_task_free(m);
    return rc;
}

void msg_task_free(msg_task_t *m) {
    if (!m) return;
    free(m->env);
    free(m->aspects);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// simulator request / reply batches

static int check_rep(const msg_sim_rep_t *r, int i) {
    char what[40];
    snprintf(what, sizeof what, "sim_rep reply %d", i);
    if (check_ranges(what, REP_FIELDS, NF(REP_FIELDS), r)) return -1;
    if (r->status == 0 && r->reason && r->reason[0])
        return err_set("msg %s: field \"why\" must be \"\" when \"st\" is 0", what);
    if (r->status != 0 && r->payload && r->payload[0])
        return err_set("msg %s: field \"pl\" must be \"\" when \"st\" is %d", what, (int)r->status);
    return 0;
}

// one encoder for both batch kinds: n structs of size sz under key `list`
static int batch_encode(int type, const char *list, const field_t *f, int nf, const void *items, size_t sz,
                        int n, msgpack_sbuffer *out) {
    const char *what = msg_type_name(type);
    if (n < 0 || (n > 0 && !items)) return err_set("msg %s: bad batch size %d", what, n);
    for (int i = 0; i < n; i++) {
        const void *it = (const char *)items + (size_t)i * sz;
        char item[40];
        snprintf(item, sizeof item, "%s request %d", what, i);
        if (type == MSG_SIM_REP ? check_rep(it, i) : check_ranges(item, f, nf, it)) return -1;
    }
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = pack_head(&pk, type, 1) | pack_key(&pk, list) | msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n && !rc; i++)
        rc |= msgpack_pack_map(&pk, nf) | pack_fields(&pk, f, nf, (const char *)items + (size_t)i * sz, NULL);
    return rc ? enc_fail(out, start, what) : 0;
}

// decodes the batch into *items (n structs of size sz, zeroed, strings filled); the caller's
// free_fn(items, count) releases it on failure
static int batch_decode(int type, const char *list, const field_t *f, int nf, size_t sz, const char *buf,
                        size_t len, void **items, int *n_out) {
    const char *what = msg_type_name(type);
    *items = NULL;
    *n_out = 0;
    doc_t d;
    if (doc_open(&d, buf, len, type)) return -1;
    int rc = 0;
    const msgpack_object *arr = NULL;
    for (uint32_t j = 2; j < d.map->size && !rc; j++) {
        const msgpack_object_kv *kv = &d.map->ptr[j];
        if (!key_is(&kv->key, list)) {
            char kt[80];
            key_text(&kv->key, kt, sizeof kt);
            rc = err_set("msg %s: unknown key \"%s\" (a newer or older format?)", what, kt);
        } else if (arr) rc = err_set("msg %s: duplicate field \"%s\"", what, list);
        else if (kv->val.type != MSGPACK_OBJECT_ARRAY)
            rc = err_set("msg %s: field \"%s\": expected array, found %s", what, list, obj_type_name(&kv->val));
        else arr = &kv->val;
    }
    if (!rc && !arr) rc = err_set("msg %s: missing field \"%s\"", what, list);
    if (rc) { doc_close(&d); return -1; }
    uint32_t n = arr->via.array.size; // <= len (scan_obj)
    if (n > INT_MAX) { doc_close(&d); return err_set("msg %s: %u entries", what, n); }
    char *out = calloc(n ? n : 1, sz);
    if (!out) { doc_close(&d); return err_set("msg %s: out of memory (%u entries)", what, n); }
    *items = out;
    *n_out = (int)n;
    for (uint32_t i = 0; i < n && !rc; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        void *it = out + (size_t)i * sz;
        char item[40];
        snprintf(item, sizeof item, "%s %s %u", what, type == MSG_SIM_REP ? "reply" : "request", i);
        if (o->type != MSGPACK_OBJECT_MAP) rc = err_set("msg %s: expected map, found %s", item, obj_type_name(o));
        else if (read_fields(item, &o->via.map, 0, f, nf, it, NULL)) rc = -1;
        else if (type == MSG_SIM_REP) rc = check_rep(it, (int)i);
    }
    doc_close(&d);
    return rc;
}

int msg_sim_reqs_encode(const msg_sim_req_t *r, int n, msgpack_sbuffer *out) {
    return batch_encode(MSG_SIM_REQ, "reqs", REQ_FIELDS, NF(REQ_FIELDS), r, sizeof *r, n, out);
}
int msg_sim_reqs_decode(const char *buf, size_t len, msg_sim_req_t **r, int *n) {
    void *items;
    if (batch_decode(MSG_SIM_REQ, "reqs", REQ_FIELDS, NF(REQ_FIELDS), sizeof **r, buf, len, &items, n)) {
        msg_sim_reqs_free(items, *n);
        *r = NULL;
        *n = 0;
        return -1;
    }
    *r = items;
    return 0;
}
void msg_sim_reqs_free(msg_sim_req_t *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) free(r[i].payload);
    free(r);
}

int msg_sim_reps_encode(const msg_sim_rep_t *r, int n, msgpack_sbuffer *out) {
    return batch_encode(MSG_SIM_REP, "reps", REP_FIELDS, NF(REP_FIELDS), r, sizeof *r, n, out);
}
int msg_sim_reps_decode(const char *buf, size_t len, msg_sim_rep_t **r, int *n) {
    void *items;
    if (batch_decode(MSG_SIM_REP, "reps", REP_FIELDS, NF(REP_FIELDS), sizeof **r, buf, len, &items, n)) {
        msg_sim_reps_free(items, *n);
        *r = NULL;
        *n = 0;
        return -1;
    }
    *r = items;
    return 0;
}
void msg_sim_reps_free(msg_sim_rep_t *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) {
        free(r[i].reason);
        free(r[i].payload);
    }
    free(r);
}

// ---------------------------------------------------------------------------------------------
// trajectory

static int check_traj(const msg_traj_t *m) {
    if (check_ranges("traj", TRAJ_FIELDS, NF(TRAJ_FIELDS), m)) return -1;
    if (m->index >= m->group_size)
        return err_set("msg traj: field \"idx\": %d is not below \"gsize\" = %d", (int)m->index, (int)m->group_size);
    if (m->n_prompt > m->n_tokens)
        return err_set("msg traj: field \"np\": %d is above \"n\" = %d", (int)m->n_prompt, (int)m->n_tokens);
    if (m->mask)
        for (int32_t i = 0; i < m->n_tokens; i++)
            if (m->mask[i] > 1) return err_set("msg traj: field \"mask\": entry %d is %d (not 0 or 1)", (int)i, m->mask[i]);
    return 0;
}

int msg_traj_encode(const msg_traj_t *m, msgpack_sbuffer *out) {
    if (m->n_tokens > 0 && (!m->ids || !m->logprobs || !m->mask))
        return err_set("msg traj: n_tokens = %d but ids / logprobs / mask is NULL", (int)m->n_tokens);
    if (check_traj(m)) return -1;
    size_t nt = m->n_tokens > 0 ? (size_t)m->n_tokens : 0;
    bin_t bins[NF(TRAJ_FIELDS)] = {0};
    bins[TRAJ_IDS] = (bin_t){m->ids, 4 * nt};
    bins[TRAJ_LP] = (bin_t){m->logprobs, 4 * nt};
    bins[TRAJ_MASK] = (bin_t){m->mask, nt};
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_head(&pk, MSG_TRAJ, NF(TRAJ_FIELDS)) | pack_fields(&pk, TRAJ_FIELDS, NF(TRAJ_FIELDS), m, bins))
        return enc_fail(out, start, "traj");
    return 0;
}

int msg_traj_decode(const char *buf, size_t n, msg_traj_t *m) {
    _Static_assert(sizeof(float) == 4, "float32");
    memset(m, 0, sizeof *m);
    doc_t d;
    if (doc_open(&d, buf, n, MSG_TRAJ)) return -1;
    bin_t bins[NF(TRAJ_FIELDS)] = {0};
    int rc = read_fields("traj", d.map, 2, TRAJ_FIELDS, NF(TRAJ_FIELDS), m, bins);
    static const struct { int row; size_t esz; const char *what; } arrays[3] = {
        {TRAJ_IDS, 4, "4*n_tokens"}, {TRAJ_LP, 4, "4*n_tokens"}, {TRAJ_MASK, 1, "n_tokens"}};
    size_t nt = m->n_tokens > 0 ? (size_t)m->n_tokens : 0;
    for (int a = 0; a < 3 && !rc; a++) {
        const bin_t *bn = &bins[arrays[a].row];
        size_t want = arrays[a].esz * nt;
        if (bn->n != want)
            rc = err_set("msg traj: field \"%s\": expected bin of %s = %zu bytes, found %zu",
                         TRAJ_FIELDS[arrays[a].row].key, arrays[a].what, want, bn->n);
    }
    if (!rc) {
        m->ids = malloc(4 * nt + 1);
        m->logprobs = malloc(4 * nt + 1);
        m->mask = malloc(nt + 1);
        if (!m->ids || !m->logprobs || !m->mask) rc = err_set("msg traj: out of memory (%zu tokens)", nt);
    }
    if (!rc && nt) {
        memcpy(m->ids, bins[TRAJ_IDS].p, 4 * nt);
        memcpy(m->logprobs, bins[TRAJ_LP].p, 4 * nt);
        memcpy(m->mask, bins[TRAJ_MASK].p, nt);
    }
    doc_close(&d);
    if (!rc) rc = check_traj(m);
    if (rc) msg_traj_free(m);
    return rc;
}

void msg_traj_free(msg_traj_t *m) {
    if (!m) return;
    free(m->env);
    free(m->aspects);
    free(m->ids);
    free(m->logprobs);
    free(m->mask);
    free(m->reward_details);
    free(m->transcript);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// curriculum, weights, shutdown

int msg_curric_encode(const msg_curric_t *m, msgpack_sbuffer *out) {
    if (check_ranges("curric", CURRIC_FIELDS, NF(CURRIC_FIELDS), m)) return -1;
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_head(&pk, MSG_CURRIC, NF(CURRIC_FIELDS)) | pack_fields(&pk, CURRIC_FIELDS, NF(CURRIC_FIELDS), m, NULL))
        return enc_fail(out, start, "curric");
    return 0;
}

int msg_curric_decode(const char *buf, size_t n, msg_curric_t *m) {
    memset(m, 0, sizeof *m);
    doc_t d;
    if (doc_open(&d, buf, n, MSG_CURRIC)) return -1;
    int rc = read_fields("curric", d.map, 2, CURRIC_FIELDS, NF(CURRIC_FIELDS), m, NULL);
    doc_close(&d);
    if (rc) msg_curric_free(m);
    return rc;
}

void msg_curric_free(msg_curric_t *m) {
    if (!m) return;
    free(m->state);
    memset(m, 0, sizeof *m);
}

int msg_weights_encode(const msg_weights_t *m, msgpack_sbuffer *out) {
    if (check_ranges("weights", WEIGHTS_FIELDS, NF(WEIGHTS_FIELDS), m)) return -1;
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_head(&pk, MSG_WEIGHTS, NF(WEIGHTS_FIELDS)) | pack_fields(&pk, WEIGHTS_FIELDS, NF(WEIGHTS_FIELDS), m, NULL))
        return enc_fail(out, start, "weights");
    return 0;
}

int msg_weights_decode(const char *buf, size_t n, msg_weights_t *m) {
    memset(m, 0, sizeof *m);
    doc_t d;
    if (doc_open(&d, buf, n, MSG_WEIGHTS)) return -1;
    int rc = read_fields("weights", d.map, 2, WEIGHTS_FIELDS, NF(WEIGHTS_FIELDS), m, NULL);
    doc_close(&d);
    if (rc) memset(m, 0, sizeof *m);
    return rc;
}

int msg_shutdown_encode(const msg_shutdown_t *m, msgpack_sbuffer *out) {
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (pack_head(&pk, MSG_SHUTDOWN, NF(SHUTDOWN_FIELDS)) |
        pack_fields(&pk, SHUTDOWN_FIELDS, NF(SHUTDOWN_FIELDS), m, NULL))
        return enc_fail(out, start, "shutdown");
    return 0;
}

int msg_shutdown_decode(const char *buf, size_t n, msg_shutdown_t *m) {
    memset(m, 0, sizeof *m);
    doc_t d;
    if (doc_open(&d, buf, n, MSG_SHUTDOWN)) return -1;
    int rc = read_fields("shutdown", d.map, 2, SHUTDOWN_FIELDS, NF(SHUTDOWN_FIELDS), m, NULL);
    doc_close(&d);
    if (rc) msg_shutdown_free(m);
    return rc;
}

void msg_shutdown_free(msg_shutdown_t *m) {
    if (!m) return;
    free(m->reason);
    memset(m, 0, sizeof *m);
}
