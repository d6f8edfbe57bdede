"""Tokenizer benchmark: trustee (bench_tokenizer, C) against HF `tokenizers` on the same text.

usage: tokenizer_bench.py --bin BENCH_TOKENIZER --tokenizer tokenizer.json [--mb 6] [--seed 1]
                          [--repeats 3] [--keep DIR]

Builds ~MB megabytes of text with a fixed seed (no download): English-like prose (one paragraph
per line), code, JSON tool calls, and the multilingual strings of tests/tokenizer_diff.py. Both
sides encode it line by line (each line keeps its '\\n'; a line is one encode call on trustee's
side, one element of HF's encode_batch_fast with TOKENIZERS_PARALLELISM=false and
RAYON_NUM_THREADS=1 on the other). Only encoding is timed, best of REPEATS. The ids must be equal.
Prints one line: tokenizer: trustee X MB/s, HF tokenizers Y MB/s, ratio X/Y
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import tokenizer_diff  # noqa: E402  (the seeded multilingual string generator)

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her she there been one all we their has would when if so no will can more "
         "other what time up about out do said into my very them model training reward policy agent tool "
         "weather function argument environment simulator curriculum difficulty rollout gradient").split()
IDENTS = ["x", "y", "i", "n", "buf", "count", "result", "tokens", "model", "cfg", "row", "col", "tmp"]


def prose(r):
    sents = []
    for _ in range(r.randint(2, 8)):
        w = [r.choice(WORDS) for _ in range(r.randint(4, 22))]
        if r.random() < 0.2:
            w.insert(r.randrange(len(w)), str(r.randint(1, 9999)))
        if r.random() < 0.15:
            w.insert(r.randrange(len(w)), r.choice(["don't", "it's", "we'll", "they're", "I've"]))
        s = " ".join(w)
        sents.append(s[0].upper() + s[1:] + r.choice([".", ".", ".", "?", "!", ";"]))
    return " ".join(sents) + "\n"


def code(r):
    f, a, b = r.choice(IDENTS), r.choice(IDENTS), r.choice(IDENTS)
    return r.choice([
        f"def {f}_{a}({a}, {b}=None):\n    if {b} is None:\n        {b} = []\n    return [{a} * 2 for {a} in {b}]\n\n",
        f"for (int {a} = 0; {a} < {b}; {a}++) {{\n    {f}[{a}] += {r.randint(0, 99)};\n}}\n",
        f"static int {f}_{a}(const char *{b}, size_t n) {{ return n > {r.randint(1, 64)} ? -1 : 0; }}\n",
        f"const {f} = await fetch(`/api/{a}?id=${{{b}}}`).then(r => r.json());\n",
        f"    {a}_{b} = np.zeros(({r.randint(1, 512)}, {r.randint(1, 512)}), dtype=np.float32)\n",
    ])


def tool_json(r):
    call = {"name": r.choice(["get_weather", "search_flights", "book_hotel", "send_email", "lookup"]),
            "arguments": {"city": r.choice(["Paris", "Tokyo", "São Paulo", "Zürich", "北京"]),
                          "days": r.randint(1, 14), "unit": r.choice(["celsius", "fahrenheit"]),
                          "query": " ".join(r.choice(WORDS) for _ in range(r.randint(1, 6)))}}
    s = json.dumps(call, ensure_ascii=r.random() < 0.5)
    return r.choice([f"<tool_call>\n{s}\n</tool_call>\n", s + "\n",
                     f"<tool_response>\n{json.dumps({'temp': r.randint(-20, 40), 'ok': True})}\n</tool_response>\n"])


def make_text(mb, seed):
    r = random.Random(seed)
    multi = tokenizer_diff.make_strings(20000, seed)
    parts, n, target = [], 0, int(mb * 1e6)
    while n < target:
        k = r.random()
        if k < 0.45:
            s = prose(r)
        elif k < 0.65:
            s = code(r)
        elif k < 0.80:
            s = tool_json(r)
        else:
            s = r.choice(multi) + "\n"
        parts.append(s)
        n += len(s.encode("utf-8"))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--mb", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", help="keep the text and ids in this folder")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    text = make_text(args.mb, args.seed)
    data = text.encode("utf-8")
    lines = [l + "\n" for l in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()

    tok = Tokenizer.from_file(args.tokenizer)
    best = 1e30
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        encs = tok.encode_batch_fast(lines, add_special_tokens=False)
        best = min(best, time.perf_counter() - t0)
    want = [i for e in encs for i in e.ids]
    hf_mbs = len(data) / best / 1e6

    d = args.keep or tempfile.mkdtemp()
    os.makedirs(d, exist_ok=True)
    tpath, ipath = os.path.join(d, "bench.txt"), os.path.join(d, "trustee.ids")
    with open(tpath, "wb") as f:
        f.write(data)
    out = subprocess.run([args.bin, "--lines", args.tokenizer, tpath, ipath, str(args.repeats)],
                         check=True, capture_output=True, text=True).stdout.split()
    t_sec = float(out[out.index("trustee_encode_seconds") + 1])
    with open(ipath) as f:
        got = [int(x) for x in f]
    if not args.keep:
        os.remove(tpath)
        os.remove(ipath)
        os.rmdir(d)
    if got != want:
        first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        print(f"tokenizer: FAIL: ids differ from HF tokenizers at id #{first} "
              f"({len(got)} vs {len(want)} ids)", file=sys.stderr)
        return 1
    tr_mbs = len(data) / t_sec / 1e6
    print(f"  ({len(data) / 1e6:.2f} MB, {len(lines)} lines, {len(want)} ids, identical; single thread, "
          f"encode time only, best of {args.repeats})", file=sys.stderr)
    print(f"tokenizer: trustee {tr_mbs:.2f} MB/s, HF tokenizers {hf_mbs:.2f} MB/s, ratio {tr_mbs / hf_mbs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
