"""Checks trustee's memo canonical JSON against Python's json module (an independent writer).

Random JSON values are written in many equivalent spellings (shuffled keys, random whitespace,
numbers as 3 / 3.0 / 3e0 / 30e-1, strings with \\u escapes); every spelling must give the same
canonical text, and that text must equal json.dumps(sort_keys=True, separators=(',', ':'),
ensure_ascii=False) of the value with integral floats below 2^53 written as integers.
usage: memo_canon_check.py TOOL"""
import json, math, random, subprocess, sys

rng = random.Random(20250601)

def rand_string():
    alphabet = ['a', 'B', ' ', 'z', '"', '\\', '\n', '\t', '\x01', '\x1f', '\x7f', 'é', 'ß', '中', '😀', '/', '_']
    return ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))

def rand_number():
    k = rng.random()
    if k < 0.3: return rng.randint(-10**6, 10**6)
    if k < 0.5: return float(rng.randint(-10**6, 10**6))        # integral float
    if k < 0.7: return rng.uniform(-1e3, 1e3)
    if k < 0.85: return rng.choice([-1, 1]) * 10 ** rng.uniform(-300, 300)
    return rng.choice([0.1, 0.5, 1e-7, 2.5e-5, 123456789.125, 1e15 + 0.5, 2.0 ** 60, 1e22, -0.0, 0.0])

def rand_value(depth=0):
    k = rng.random()
    if depth > 3 or k < 0.45:
        return rng.choice([rand_number, rand_string, lambda: rng.choice([True, False, None])])()
    if k < 0.75:
        return {rand_string() or 'k': rand_value(depth + 1) for _ in range(rng.randint(0, 5))}
    return [rand_value(depth + 1) for _ in range(rng.randint(0, 4))]

def canon_number(v):
    if isinstance(v, bool): raise TypeError
    if isinstance(v, int): return str(v)
    if v == math.floor(v) and abs(v) < 2 ** 53: return str(int(v))
    return repr(v)

def expected(v):
    if isinstance(v, dict):
        # sort by UTF-8 bytes (== code point order)
        return '{' + ','.join(json.dumps(k, ensure_ascii=False) + ':' + expected(v[k])
                              for k in sorted(v, key=lambda s: s.encode('utf-8'))) + '}'
    if isinstance(v, list): return '[' + ','.join(expected(x) for x in v) + ']'
    if isinstance(v, bool) or v is None: return json.dumps(v)
    if isinstance(v, (int, float)): return canon_number(v)
    return json.dumps(v, ensure_ascii=False)

def ws():
    return rng.choice(['', '', ' ', '\n  ', '\t'])

def spell_number(v):
    if isinstance(v, int) or (v == math.floor(v) and abs(v) < 2 ** 53):
        i = int(v)
        return rng.choice([str(i), str(i) + '.0', str(i) + 'e0', (str(i * 10) + 'e-1'), str(i) + '.000E+0'])
    return rng.choice([repr(v), '%.17g' % v, '%.20e' % v])

def spell(v):
    if isinstance(v, dict):
        items = list(v.items())
        rng.shuffle(items)
        return '{' + ws() + (',' + ws()).join(spell(k) + ws() + ':' + ws() + spell(x) for k, x in items) + ws() + '}'
    if isinstance(v, list): return '[' + ws() + (',' + ws()).join(spell(x) for x in v) + ws() + ']'
    if isinstance(v, bool) or v is None: return json.dumps(v)
    if isinstance(v, (int, float)): return spell_number(v)
    return json.dumps(v, ensure_ascii=rng.random() < 0.5)

values = [rand_value() for _ in range(1500)]
lines, want = [], []
for v in values:
    e = expected(v)
    for _ in range(3):
        s = spell(v)
        lines.append(s.replace('\n', ' '))  # one per line: newlines are only whitespace here
        want.append(e)
out = subprocess.run([sys.argv[1]], input='\n'.join(lines) + '\n', capture_output=True, text=True, check=True).stdout.split('\n')
bad = 0
for i, (l, w) in enumerate(zip(lines, want)):
    if out[i] != w:
        bad += 1
        if bad <= 5: print('MISMATCH\n  input    %s\n  trustee  %s\n  python   %s' % (l, out[i], w))
print('memo canonical JSON: %d spellings of %d random values, %d mismatches' % (len(lines), len(values), bad))
sys.exit(1 if bad else 0)
