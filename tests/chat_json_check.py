"""Cross-check of chat_json_dumps (model/chat.c) against Python's json.dumps(ensure_ascii=False),
the serializer behind the Qwen3 template's tojson in HF transformers.

  chat_json_check.py gen IN.jsonl WANT.txt   writes tricky + random JSON values (one per line) and
                                             what json.dumps(v, ensure_ascii=False) makes of each
  chat_json_check.py cmp WANT.txt GOT.txt    compares line by line (split on b"\\n" only)
"""
import json
import math
import random
import struct
import sys

FIXED = [
    {"a": "é/ü\u2028\u2029\u0085\x7f / \\/ </script>", "b": "\x00\x01\x1f\"\\\n\r\t\b\f\x0b",
     "😀 key": "emoji", "order": {"z": 1, "a": 2, "m": 3}, "empty": {}, "list": [],
     "null": None, "t": True, "f": False},
    [1.0, 1e-05, 0.1, 1e16, 1e15, 123456789.123, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
     2.2250738585072014e-308, 1e22, 1e21, 0.0001, 0.00001, 100.0, 1.5, 3.141592653589793,
     2.0 ** -1074, 2.0 ** 53, float(2 ** 63), 9999999999999998.0, 1e-4, 1.2345e-7, 0.3, 2.0 / 3,
     -1e100, 1e23, 8.41e21, 5e-310, 9007199254740993.0, 0.1 + 0.2, 1e300 * 10],
    [0, -1, 1, 9223372036854775807, -9223372036854775808, 1000000, -0],
    "plain string", 3, 2.5, None, True, [[[[]]]], {"k": {"k": {"k": [{}]}}},
    # every power of two: 46 of them need the neighbour of the correctly rounded shortest digits
    [math.ldexp(1.0, k) for k in range(-1074, 1024)],
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"]}}},
]


def rand_float(r):
    k = r.randrange(6)
    if k == 0:
        while True:  # any finite double, from random bits
            x = struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0]
            if math.isfinite(x):
                return x
    if k == 1:
        return math.ldexp(1.0, r.randrange(-1074, 1024)) * r.choice([1, -1])  # powers of two
    if k == 2:
        return float("%d.%de%d" % (r.randrange(100), r.randrange(1000), r.randrange(-30, 30)))
    if k == 3:
        return r.random() * 10 ** r.randrange(-8, 20)
    if k == 4:
        return float(r.randrange(-10 ** 6, 10 ** 6)) / r.choice([1, 2, 4, 10, 100, 3])
    return math.ldexp(r.getrandbits(52) | (1 << 52), r.randrange(-1100, 972))  # near subnormals


def rand_str(r, key=False):
    out = []
    for _ in range(r.randrange(12)):
        k = r.randrange(6)
        if k == 0:
            out.append(chr(r.randrange(1 if key else 0, 0x20)))
        elif k == 1:
            out.append(r.choice('"\\/\x7f'))
        elif k == 2:
            c = r.randrange(0x80, 0x110000)
            out.append(chr(c) if not 0xD800 <= c < 0xE000 else "x")
        else:
            out.append(chr(r.randrange(0x20, 0x7F)))
    return "".join(out)


def rand_value(r, depth=0):
    k = r.randrange(9 if depth < 4 else 6)
    if k == 0:
        return rand_float(r)
    if k == 1:
        return r.randrange(-2 ** 63, 2 ** 63)
    if k == 2:
        return rand_str(r)
    if k == 3:
        return r.choice([None, True, False])
    if k == 4:
        return r.randrange(-1000, 1000)
    if k == 5:
        return rand_float(r)
    if k in (6, 7):
        return {rand_str(r, key=True): rand_value(r, depth + 1) for _ in range(r.randrange(5))}
    return [rand_value(r, depth + 1) for _ in range(r.randrange(5))]


def main():
    if sys.argv[1] == "gen":
        r = random.Random(1234)
        values = FIXED + [rand_value(r) for _ in range(3000)]
        with open(sys.argv[2], "w", encoding="ascii") as fin, open(sys.argv[3], "wb") as fw:
            for v in values:
                fin.write(json.dumps(v, ensure_ascii=True) + "\n")
                fw.write(json.dumps(v, ensure_ascii=False).encode("utf-8") + b"\n")
        return 0
    want = open(sys.argv[2], "rb").read().split(b"\n")
    got = open(sys.argv[3], "rb").read().split(b"\n")
    bad = [i for i in range(max(len(want), len(got)))
           if i >= len(want) or i >= len(got) or want[i] != got[i]]
    for i in bad[:5]:
        print("line %d\n want: %r\n  got: %r" % (i + 1, want[i] if i < len(want) else None,
                                                 got[i] if i < len(got) else None))
    print("chat_json_check: %d values, %d differ" % (len(want) - 1, len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
