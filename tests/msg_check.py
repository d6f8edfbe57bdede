#!/usr/bin/python3
"""Cross-check of comm/msg against Python's msgpack (python3-msgpack), an independent codec.

usage: msg_check.py MSG_TOOL [N]

1. Python -> C: random messages of every type packed by Python's msgpack following
   docs/protocol.md (field keys after "t", "v" in random order; float fields sometimes float32,
   sometimes float64); `msg_tool decode` must print exactly the values Python packed. Malformed
   variants (missing / unknown / mistyped field, trailing bytes, wrong version, NUL in a string,
   bin of the wrong length) must be rejected.
2. C -> Python: `msg_tool gen` prints a random struct and writes its encoding; Python unpacks the
   bytes and must find the same values, with "t", "v" first and exactly the documented keys.
Exit 77 when the msgpack module is missing.
"""
import random
import struct
import subprocess
import sys
import tempfile
import os

try:
    import msgpack
except ImportError:
    print("SKIP: python3-msgpack is not installed")
    sys.exit(77)

# the wire schema of docs/protocol.md: key -> kind
I32, I64, U64, F32, F64, STR = "i32", "i64", "u64", "f32", "f64", "str"
SCHEMA = {
    "task": (1, {"step": I64, "task": U64, "group": I32, "gsize": I32, "pver": I64, "eval": I32,
                 "diff": I32, "seed": U64, "env": STR, "asp": STR}),
    "traj": (4, {"step": I64, "task": U64, "group": I32, "idx": I32, "gsize": I32, "pver": I64,
                 "eval": I32, "diff": I32, "env": STR, "asp": STR, "n": I32, "ids": "ids",
                 "lp": "lp", "mask": "mask", "np": I32, "rew": F32, "score": F32, "turns": I32,
                 "calls": I32, "abort": I32, "trunc": I32, "det": STR, "text": STR}),
    "curric": (5, {"step": I64, "upd": I64, "d0": I32, "d1": I32, "mean": F64, "nr": I32,
                   "move": I32, "state": STR}),
    "weights": (6, {"ver": I64, "step": I64, "nf": I64, "sum": U64}),
    "shutdown": (7, {"code": I32, "why": STR}),
}
REQ = {"id": U64, "kind": I32, "task": U64, "ep": I32, "pl": STR}
REP = {"id": U64, "st": I32, "why": STR, "pl": STR}
BATCH = {"sim_req": (2, "reqs", REQ), "sim_rep": (3, "reps", REP)}

R = random.Random(12345)
PIECES = ["a", "Z", " ", '"', "\\", "\n", "é", "日本", "🙂", "{\"k\": 1}", "\u2028", "\x7f"]


def rstr():
    return "".join(R.choice(PIECES) for _ in range(R.choice([0, 0, 1, 5, 30])))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def rval(key, kind):
    lo_hi = {"eval": (0, 1), "trunc": (0, 1), "move": (-1, 1), "abort": (0, 4), "kind": (0, 15),
             "gsize": (1, 2**31 - 1), "ep": (-1, 2**31 - 1), "st": (-2**31, 2**31 - 1),
             "code": (-2**31, 2**31 - 1)}
    if kind == I32:
        lo, hi = lo_hi.get(key, (0, 2**31 - 1))
        return R.choice([lo, hi, R.randint(lo, hi)])
    if kind == I64:
        return R.choice([0, 2**63 - 1, R.randint(0, 2**63 - 1), R.randint(0, 1000)])
    if kind == U64:
        return R.choice([0, 2**64 - 1, R.randint(0, 2**64 - 1), R.randint(0, 1000)])
    if kind == F32:
        return f32(R.uniform(-1, 1) * 10 ** R.randint(-5, 5))
    if kind == F64:
        return R.uniform(-1, 1)
    return rstr()


def hexs(s):
    return s.encode("utf-8").hex()


def fmt(x):
    return "%.17g" % x


def dump_fields(fields, obj, pre=""):
    """the msg_tool dump lines for a dict of wire values"""
    out = []
    for k, kind in fields.items():
        v = obj[k]
        if kind == STR:
            out.append("%s%s=%s" % (pre, k, hexs(v)))
        elif kind in (F32, F64):
            out.append("%s%s=%s" % (pre, k, fmt(v)))
        elif kind == "ids":
            out.append("ids=" + ",".join(str(x) for x in struct.unpack("<%di" % (len(v) // 4), v)))
        elif kind == "lp":
            out.append("lp=" + ",".join(fmt(x) for x in struct.unpack("<%df" % (len(v) // 4), v)))
        elif kind == "mask":
            out.append("mask=" + ",".join(str(x) for x in v))
        else:
            out.append("%s%s=%d" % (pre, k, v))
    return out


def make(name):
    """(ordered list of (key, value) pairs, expected dump lines)"""
    if name in BATCH:
        t, lk, fields = BATCH[name]
        items, dump = [], ["n=%d" % 0]
        n = R.choice([0, 1, 3, 7])
        dump = ["n=%d" % n]
        for i in range(n):
            it = {k: rval(k, kind) for k, kind in fields.items()}
            if name == "sim_rep":
                if it["st"] == 0:
                    it["why"] = ""
                else:
                    it["pl"] = ""
            keys = list(it)
            R.shuffle(keys)
            items.append({k: it[k] for k in keys})
            dump += dump_fields(fields, it, "%s.%d." % (lk, i))
        return [("t", t), ("v", 1), (lk, items)], dump
    t, fields = SCHEMA[name]
    obj = {k: rval(k, kind) for k, kind in fields.items() if kind in (I32, I64, U64, F32, F64, STR)}
    if name == "traj":
        n = R.choice([0, 1, 17, 1000])
        obj["n"] = n
        obj["np"] = R.randint(0, n)
        obj["idx"] = R.randint(0, min(obj["gsize"], 1000) - 1)
        obj["ids"] = struct.pack("<%di" % n, *[R.randint(-2**31, 2**31 - 1) for _ in range(n)])
        obj["lp"] = struct.pack("<%df" % n, *[R.uniform(-20, 0) for _ in range(n)])
        obj["mask"] = bytes(R.randint(0, 1) for _ in range(n))
    keys = list(fields)
    R.shuffle(keys)
    return [("t", t), ("v", 1)] + [(k, obj[k]) for k in keys], dump_fields(fields, obj)


def pack(pairs, single_float=False):
    # msgpack keeps dict insertion order, so "t", "v" come first
    return msgpack.packb(dict(pairs), use_bin_type=True, use_single_float=single_float)


def run(tool, *args):
    p = subprocess.run([tool] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout


def main():
    tool = sys.argv[1]
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    fails = 0
    checks = 0
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "m.bin")
    names = list(SCHEMA) + list(BATCH)

    def decode(data):
        with open(path, "wb") as f:
            f.write(data)
        return run(tool, "decode", path)

    # 1. Python -> C
    for it in range(iters):
        for name in names:
            pairs, want = make(name)
            single = name == "traj" and it % 2 == 1  # all traj floats are float32
            rc, out = decode(pack(pairs, single))
            checks += 1
            if rc != 0 or sorted(out.splitlines()) != sorted(want):
                fails += 1
                print("FAIL py->C %s it %d: rc %d\n got  %s\n want %s" % (name, it, rc, out[:500], want[:20]))
            if name in BATCH:
                continue
            # malformed variants, each must be rejected
            d = dict(pairs)
            body = [k for k in d if k not in ("t", "v")]
            variants = {
                "missing": [(k, v) for k, v in pairs if k != body[0]],
                "unknown": pairs + [("zz", 1)],
                "version": [("t", d["t"]), ("v", 2)] + pairs[2:],
                "type": [("t", d["t"] % 7 + 1), ("v", 1)] + pairs[2:],
                "no_t": pairs[1:],
            }
            k0 = body[0]
            kind = (SCHEMA[name][1])[k0]
            variants["mistyped"] = [(k, ([1] if k == k0 else v)) for k, v in pairs]
            strs = [k for k in body if SCHEMA[name][1][k] == STR]
            if strs:
                variants["nul"] = [(k, (v + "\x00x" if k == strs[0] else v)) for k, v in pairs]
            if name == "traj":
                variants["short_ids"] = [(k, (v[:-1] if k == "lp" else v)) for k, v in pairs] if d["n"] else None
                variants["ids_list"] = [(k, (list(v) if k == "mask" else v)) for k, v in pairs]
            for vn, vp in variants.items():
                if vp is None:
                    continue
                checks += 1
                rc, out = decode(pack(vp))
                if rc != 1 or not out.startswith("error: "):
                    fails += 1
                    print("FAIL py->C %s variant %s accepted (rc %d): %s" % (name, vn, rc, out[:200]))
            checks += 1
            rc, out = decode(pack(pairs) + b"\xc0")
            if rc != 1 or "trailing" not in out:
                fails += 1
                print("FAIL py->C %s trailing byte: rc %d %s" % (name, rc, out[:200]))
            del kind

    # 2. C -> Python
    for it in range(iters):
        for name in names:
            rc, out = run(tool, "gen", name, str(it + 1), path)
            checks += 1
            if rc != 0:
                fails += 1
                print("FAIL gen %s %d: %s" % (name, it, out[:300]))
                continue
            with open(path, "rb") as f:
                data = f.read()
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
            keys = list(obj)
            if name in BATCH:
                t, lk, fields = BATCH[name]
                ok = keys == ["t", "v", lk] and obj["t"] == t and obj["v"] == 1
                got = ["n=%d" % len(obj[lk])]
                for i, e in enumerate(obj[lk]):
                    ok = ok and list(e) == list(fields)
                    got += dump_fields(fields, e, "%s.%d." % (lk, i))
            else:
                t, fields = SCHEMA[name]
                ok = keys == ["t", "v"] + list(fields) and obj["t"] == t and obj["v"] == 1
                got = dump_fields(fields, obj)
                if name == "traj":
                    ok = ok and len(obj["ids"]) == 4 * obj["n"] and len(obj["lp"]) == 4 * obj["n"] \
                        and len(obj["mask"]) == obj["n"] and isinstance(obj["ids"], bytes)
            if not ok or sorted(got) != sorted(out.splitlines()):
                fails += 1
                print("FAIL C->py %s %d: keys %s\n got  %s\n want %s" % (name, it, keys, got[:12], out.splitlines()[:12]))
    print("msg_check: %d checks, %d failed (msgpack %s)" % (checks, fails, ".".join(map(str, msgpack.version))))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
