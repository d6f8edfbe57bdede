"""Differential test: trustee's tokenizer against HF `tokenizers` on seeded random strings.

usage: tokenizer_diff.py --batch BIN --tokenizer tokenizer.json [--n 10000] [--seed 20261123]

Generates N strings (mixed scripts, emoji with ZWJ and skin tones, combining marks and NFC/NFD
pairs, whitespace runs of every kind, digits, contractions, special-token fragments, JSON, code),
writes them to a JSONL file, encodes them with HF (`Tokenizer.from_file(...).encode(s,
add_special_tokens=False).ids`) and with BIN (tests/tokenizer_batch.c: one line of ids per
string), and compares. Then the same with N/4 strings on a variant of the tokenizer.json whose
added tokens use single_word / lstrip / rstrip / normalized (Qwen's own are all plain). Prints the
number of strings checked and of mismatches, and the first few differences. Exit status 1 on any
mismatch.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

WORDS = ("the of and to in is that for it as was with be by on not he this are or from at which "
         "but have an they you were her she there been one all we their has would when if so no will "
         "can more other what time up about out do said into my very them tokenizer hello world "
         "Python naïve café résumé Zürich straße encyclopædia").split()
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
            "</think>"]
FRAGMENTS = ["<|im_", "|>", "<tool_call", "</think", "<|", "im_end|>", "<think >", "< think>",
             "<|im_end|", "<<|im_end|>>", "<|im_start|>user\n", "</tool_call>\n", "<tool_call>{",
             "<|endoftext", "tool_call>", "<th", "ink>", "<|<|im_end|>|>"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL",
                "'D", "'Ll", "'lL", "'Re", "’s", "n't", "N'T", "''"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u0085", "\u2028", "\u2029",
              "\u2003", "\u2009", "\u202f", "\u205f", "\u1680", "\u200b", "\x0b", "\x0c", "\ufeff",
              "\u180e", "\u200d"]
PUNCT = list("!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~") + ["…", "—", "–", "«", "»", "“", "”", "‘", "’",
                                                     "。", "、", "！", "？", "·", "•", "€", "£", "¥", "©"]
CODE = ["def f(x):\n    return x**2\n", "if (a && b) { c++; }", "#include <stdio.h>\n",
        "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}", "const x = () => `${y}`;",
        "SELECT * FROM t WHERE id = 42;", "x = [i for i in range(10) if i % 2]",
        "    \n    pass\n", "fn main() -> Result<(), Box<dyn Error>> {}", "$ ls -la | grep '^d'",
        "<div class=\"a\">&amp;</div>", "// comment\r\n/* block */", "a+=1;b-=2;c*=3", "0x7fff_ffff",
        "1e-9", "3.14159", "user@example.com", "https://example.com/a?b=c&d=e#f"]
NFC_NFD = ["é", "e\u0301", "Å", "A\u030a", "\u212b", "ñ", "n\u0303", "ệ", "e\u0323\u0302", "e\u0302\u0323",
           "\u1100\u1161\u11a8", "각", "ǖ", "u\u0308\u0304", "\u0958", "क\u093c", "ﬁ", "Ω", "\u2126",
           "ḱ", "\u0344", "\u0f73", "が", "か\u3099", "\u00c7\u0301", "C\u0327\u0301", "\u0301", "a\u0300\u0301\u0302"]
EMOJI = ["😀", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🇺🇸", "1️⃣", "#️⃣", "🧑🏿‍🚀",
         "👋🏻", "🤷‍♀️", "🙂", "🔥", "✨", "🎉", "☕", "⚡️", "🫠", "🪿", "💯"]


def rand_range(r, lo, hi, n):
    return "".join(chr(r.randint(lo, hi)) for _ in range(n))


def fragment(r):
    k = r.randrange(22)
    if k == 0:
        w = " ".join(r.choice(WORDS) for _ in range(r.randint(1, 8)))
        return r.choice([w, w.upper(), w.title(), w.capitalize()])
    if k == 1:
        return rand_range(r, 0x4E00, 0x9FFF, r.randint(1, 12))  # CJK
    if k == 2:
        return r.choice([rand_range(r, 0x3041, 0x3096, r.randint(1, 6)),  # hiragana
                         rand_range(r, 0x30A1, 0x30FA, r.randint(1, 6)),  # katakana
                         rand_range(r, 0xAC00, 0xD7A3, r.randint(1, 6))])  # hangul
    if k == 3:
        return " ".join(rand_range(r, 0x0410, 0x044F, r.randint(1, 9)) for _ in range(r.randint(1, 4)))
    if k == 4:  # Arabic letters with harakat
        s = ""
        for _ in range(r.randint(1, 10)):
            s += chr(r.randint(0x0621, 0x064A))
            if r.random() < 0.3:
                s += chr(r.randint(0x064B, 0x0652))
        return s + r.choice(["", " ", "، ", "٣٤٥"])
    if k == 5:  # Devanagari with vowel signs and virama
        s = ""
        for _ in range(r.randint(1, 8)):
            s += chr(r.randint(0x0915, 0x0939))
            if r.random() < 0.5:
                s += chr(r.choice([0x093E, 0x093F, 0x0940, 0x0941, 0x0947, 0x094B, 0x094D, 0x0902, 0x093C]))
        return s + r.choice(["", " ", "।", "१२३"])
    if k == 6:  # Thai (no spaces between words; tone marks)
        return rand_range(r, 0x0E01, 0x0E2E, r.randint(1, 5)) + chr(r.choice([0x0E31, 0x0E34, 0x0E48, 0x0E49, 0x0E38])) + rand_range(r, 0x0E01, 0x0E2E, r.randint(0, 4))
    if k == 7:
        return "".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
    if k == 8:
        return "".join(r.choice(NFC_NFD) for _ in range(r.randint(1, 4)))
    if k == 9:
        return "".join(r.choice(WHITESPACE) for _ in range(r.randint(1, 6)))
    if k == 10:
        return r.choice(["", " "]) + "".join(r.choice("0123456789") for _ in range(r.randint(1, 14)))
    if k == 11:
        return r.choice(["", "I", "you", "he", "WE", "they", "it", "don", "can", " Y"]) + r.choice(CONTRACTIONS)
    if k == 12:
        return r.choice(SPECIALS)
    if k == 13:
        return r.choice(FRAGMENTS)
    if k == 14:
        return json.dumps(rand_json(r, 2), ensure_ascii=r.random() < 0.3, indent=r.choice([None, 2]))
    if k == 15:
        return r.choice(CODE)
    if k == 16:
        return "".join(r.choice(PUNCT) for _ in range(r.randint(1, 6)))
    if k == 17:  # random BMP / astral code points, controls included (no surrogates)
        s = ""
        for _ in range(r.randint(1, 6)):
            c = r.choice([r.randint(0, 0x7F), r.randint(0x80, 0x7FF), r.randint(0x800, 0xD7FF),
                          r.randint(0xE000, 0xFFFD), r.randint(0x10000, 0x10FFFF)])
            s += chr(c)
        return s
    if k == 18:
        return r.choice(["٠١٢٣", "０１２３", "①②", "Ⅻ", "½", "²³", "१२", "๑๒๓", "𝟘𝟙𝟚"])
    if k == 19:  # long runs: regex backtracking and long BPE words
        return r.choice([" " * r.randint(10, 300), "\n" * r.randint(2, 50), "a" * r.randint(10, 500),
                         rand_range(r, 0x4E00, 0x9FFF, r.randint(50, 300)), "ab" * r.randint(10, 200),
                         "-" * r.randint(10, 200), "9" * r.randint(20, 100), " \n" * r.randint(5, 50),
                         "\t" * r.randint(3, 30) + "x"])
    if k == 20:
        return r.choice(["\x00", "\x01", "\x1b[0m", "\x7f", "\ufffd", "\ue000", "\U000e0001"])
    return r.choice(["Hello", "world", "The", "ÀÉÎÕÜ", "İstanbul", "ǅ", "Ǳ", "ß", "ẞ", "ΣΑΣ", "σς",
                     "ǰ", "ﬀ", "K", "Ⅸ"])


def rand_json(r, depth):
    t = r.randrange(6 if depth > 0 else 4)
    if t == 0:
        return r.randint(-10 ** 6, 10 ** 6)
    if t == 1:
        return r.choice(["", "x", "naïve café", "日本語", "a\nb", "tab\there", "emoji 👍🏽", "<think>"])
    if t == 2:
        return r.choice([True, False, None, 3.5, -0.25, 1e21])
    if t == 3:
        return r.choice(WORDS)
    if t == 4:
        return [rand_json(r, depth - 1) for _ in range(r.randint(0, 3))]
    return {r.choice(["name", "arguments", "city", "unit", "q", "id", "ключ", "键"]): rand_json(r, depth - 1)
            for _ in range(r.randint(0, 3))}


# a variant of the Qwen3 tokenizer.json with every added-token flag in use (Qwen's own are plain)
VARIANT_TOKENS = [  # (content, single_word, lstrip, rstrip, normalized, special)
    ("caf\u00e9", False, False, False, True, False),   # matched after NFC: "cafe\u0301" too
    ("\u2126m", False, False, False, True, False),     # OHM SIGN: NFC makes it U+03A9
    ("e\u0301!", False, False, False, False, False),   # not normalized: matches raw NFD text only
    ("hello", True, False, False, False, False),        # in the vocab: keeps its vocab id
    ("<sw>", True, True, True, False, True),
    ("[[", False, True, False, False, True),
    ("]]", False, False, True, False, True),
]
VARIANT_FLAGS = {"<think>": dict(lstrip=True, rstrip=True), "</think>": dict(single_word=True),
                 "<tool_call>": dict(rstrip=True, normalized=True), "<|im_end|>": dict(lstrip=True)}
VARIANT_SNIPPETS = ["café", "cafe\u0301", "\u2126m", "\u03a9m", "e\u0301!", "é!", "hello", "Hello", "xhello",
                    "hello_", "<sw>", " <sw> ", "a<sw>b", "[[", "  [[  ", "]]", "x]]  y", "  <think>  ",
                    "a</think>b", " </think> ", "<tool_call>   \n", "  <|im_end|>"]


def write_variant(src, dst):
    with open(src, encoding="utf-8") as f:
        d = json.load(f)
    for t in d["added_tokens"]:
        t.update(VARIANT_FLAGS.get(t["content"], {}))
    next_id = max(t["id"] for t in d["added_tokens"]) + 1
    for content, sw, ls, rs, norm, special in VARIANT_TOKENS:
        d["added_tokens"].append({"id": next_id, "content": content, "single_word": sw, "lstrip": ls,
                                  "rstrip": rs, "normalized": norm, "special": special})
        next_id += 1
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False)


def make_strings(n, seed, extra=None):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [r.choice(extra) if extra and r.random() < 0.3 else fragment(r) for _ in range(r.randint(1, 10))]
        sep = r.choice(["", " ", "", "\n"])
        out.append(sep.join(parts))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", required=True, help="tokenizer_batch binary")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    bad = compare(args.batch, args.tokenizer, make_strings(args.n, args.seed), "Qwen3 tokenizer.json")
    with tempfile.TemporaryDirectory() as d:
        variant = os.path.join(d, "variant.json")
        write_variant(args.tokenizer, variant)
        n_var = max(1, args.n // 4)
        bad += compare(args.batch, variant, make_strings(n_var, args.seed + 1, VARIANT_SNIPPETS),
                       "variant with single_word/lstrip/rstrip/normalized added tokens")
    return 1 if bad else 0


def compare(batch, tokenizer, strings, what):
    """encodes strings with HF and with the batch binary; prints and returns the mismatch count"""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer)
    want = [tok.encode(s, add_special_tokens=False).ids for s in strings]

    with tempfile.TemporaryDirectory() as d:
        inp, outp = os.path.join(d, "in.jsonl"), os.path.join(d, "out.txt")
        with open(inp, "w", encoding="utf-8") as f:
            for s in strings:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
        subprocess.run([batch, tokenizer, inp, outp], check=True)
        with open(outp) as f:
            got = [[int(x) for x in line.split()] for line in f]

    if len(got) != len(strings):
        print(f"tokenizer_diff: FAIL: {len(got)} id lines for {len(strings)} strings")
        return len(strings)
    bad = [i for i in range(len(strings)) if got[i] != want[i]]
    n_chars = sum(len(s) for s in strings)
    print(f"tokenizer_diff: {what}: {len(strings)} strings ({n_chars} chars, {sum(map(len, want))} ids) "
          f"checked against HF tokenizers, {len(bad)} mismatches")
    for i in bad[:5]:
        print(f"  #{i}: {strings[i]!r}")
        print(f"    HF:      {want[i]}")
        print(f"    trustee: {got[i]}")
        print(f"    HF tokens:      {[tok.id_to_token(t) for t in want[i]]}")
        print(f"    trustee tokens: {[tok.id_to_token(t) for t in got[i]]}")
    return len(bad)

if __name__ == "__main__":
    sys.exit(main())
