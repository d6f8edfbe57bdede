#!/usr/bin/python3
"""Eager PyTorch Qwen3 (float32, CPU, KV cache): the peer that trustee's generation benchmark runs
beside, and a check of itself against the independent reference logits in tests/data.

Runs under Debian's /usr/bin/python3 with python3-torch (1.13) and numpy; nothing else (the
safetensors file is parsed here: 8-byte little-endian header length, JSON header, raw data).

  bench/torch_qwen3.py --model DIR --batch B --prompt-len L --gen-len T --seed S --threads N
      B random prompts (ids uniform in [0, 151643), numpy-seeded), one prefill forward over [B, L]
      (timed), then T greedy decode steps for all B rows, EOS ignored (timed). Prints
      torch batch=B prompt_len=L gen_len=T prefill_tok_s=X decode_tok_s=Y
  bench/torch_qwen3.py --model DIR --weights FILE --check EXPECTED.json [--threads N]
      runs every case of EXPECTED.json (tests/data/qwen3-tiny/expected.json) and compares the
      logits and greedy tokens; exit 0 on a match, 1 otherwise.

Timing definitions (same as `trustee bench-generate`):
  prefill_tok_s = B*L / (seconds of one forward over [B, L], last-position logits + argmax only)
  decode_tok_s  = B*T / (seconds of T one-token forward steps over [B, 1] with the KV cache,
                  each followed by greedy argmax); the first step feeds the token picked from the
                  prefill logits.

Shapes: B batch, T tokens in this forward, pos the position of its first token, S = pos + T keys,
C hidden, H query heads, Hkv KV heads, G = H / Hkv, D head_dim, F intermediate, V vocab.
"""
import argparse
import json
import math
import os
import sys
import time

BENCH_VOCAB = 151643  # prompt ids are drawn uniform in [0, BENCH_VOCAB): Qwen3's ordinary tokens


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="HF checkpoint dir (config.json + model.safetensors)")
    p.add_argument("--weights", help="safetensors file to load instead of DIR/model.safetensors")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--gen-len", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--check", metavar="EXPECTED_JSON", help="compare with reference logits instead of benchmarking")
    p.add_argument("--rtol", type=float, default=1e-4, help="--check tolerance, relative to max|ref logits|")
    a = p.parse_args(argv)
    for k in ("batch", "prompt_len", "gen_len", "threads"):
        if getattr(a, k) < 1:
            p.error("--%s must be >= 1, got %d" % (k.replace("_", "-"), getattr(a, k)))
    return a


ARGS = parse_args(sys.argv[1:])
# Debian's torch does f32 matmul through OpenBLAS, which ignores torch.set_num_threads: pin every
# thread pool before torch (and its BLAS) is loaded. torch's own OpenMP threads spin between ops
# and starve OpenBLAS's threads (measured here at 2 threads: prefill 8x slower, decode 1.6x), so
# they are told to sleep instead, unless the caller chose otherwise.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
except ImportError as e:
    sys.stderr.write("torch_qwen3.py: cannot import torch (%s); install it with scripts/install-deps.sh --bench\n" % e)
    sys.exit(77)


# ---- safetensors ----

ST_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (None, 2)}


def safetensors_load(path):
    """-> {name: float32 torch tensor}. BF16 is widened exactly (bits << 16)."""
    with open(path, "rb") as f:
        blob = bytearray(os.fstat(f.fileno()).st_size)  # writable: F32 tensors alias it, no copy
        f.readinto(blob)
    if len(blob) < 8:
        raise ValueError("%s: %d bytes, expected at least an 8-byte header length" % (path, len(blob)))
    hlen = int.from_bytes(blob[:8], "little")
    if 8 + hlen > len(blob):
        raise ValueError("%s: header length %d runs past the end of the file (%d bytes)" % (path, hlen, len(blob)))
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in ST_DTYPES:
            raise ValueError("%s: tensor %s has dtype %s, expected one of %s" % (path, name, dtype, sorted(ST_DTYPES)))
        npdt, size = ST_DTYPES[dtype]
        n = int(np.prod(shape)) if shape else 1
        if end - begin != n * size or base + end > len(blob):
            raise ValueError("%s: tensor %s: offsets [%d, %d) do not hold %d x %s" % (path, name, begin, end, n, dtype))
        if dtype == "BF16":
            bits = np.frombuffer(blob, dtype="<u2", count=n, offset=base + begin).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(blob, dtype=np.dtype(npdt).newbyteorder("<"), count=n, offset=base + begin)
            arr = arr.astype(np.float32, copy=(base + begin) % 4 != 0)  # aligned F32: a view of blob
        out[name] = torch.from_numpy(arr.reshape(shape))
    return out


def checkpoint_load(model_dir, weights=None):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if weights:
        files = [weights]
    elif os.path.exists(os.path.join(model_dir, "model.safetensors")):
        files = [os.path.join(model_dir, "model.safetensors")]
    else:
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if not os.path.exists(index):
            raise FileNotFoundError("%s: no model.safetensors and no model.safetensors.index.json" % model_dir)
        with open(index) as f:
            files = sorted({os.path.join(model_dir, v) for v in json.load(f)["weight_map"].values()})
    w = {}
    for path in files:
        w.update(safetensors_load(path))
    return cfg, w


# ---- model ----

class Qwen3:
    def __init__(self, cfg, w):
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or self.C // self.H
        self.L = cfg["num_hidden_layers"]
        self.V = cfg["vocab_size"]
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)
        if self.H % self.Hkv != 0:
            raise ValueError("config: num_attention_heads %d is not a multiple of num_key_value_heads %d" % (self.H, self.Hkv))
        self.G = self.H // self.Hkv

        def get(name, shape):
            if name not in w:
                raise KeyError("checkpoint has no tensor %s" % name)
            t = w[name]
            if list(t.shape) != list(shape):
                raise ValueError("tensor %s: expected shape %s, found %s" % (name, list(shape), list(t.shape)))
            return t

        C, H, Hkv, D, F = self.C, self.H, self.Hkv, self.D, cfg["intermediate_size"]
        self.embed = get("model.embed_tokens.weight", (self.V, C))  # (V, C)
        self.layers = []
        for l in range(self.L):
            p = "model.layers.%d." % l
            self.layers.append({
                "ln1": get(p + "input_layernorm.weight", (C,)),
                "wq": get(p + "self_attn.q_proj.weight", (H * D, C)),
                "wk": get(p + "self_attn.k_proj.weight", (Hkv * D, C)),
                "wv": get(p + "self_attn.v_proj.weight", (Hkv * D, C)),
                "wo": get(p + "self_attn.o_proj.weight", (C, H * D)),
                "qn": get(p + "self_attn.q_norm.weight", (D,)),
                "kn": get(p + "self_attn.k_norm.weight", (D,)),
                "ln2": get(p + "post_attention_layernorm.weight", (C,)),
                "wg": get(p + "mlp.gate_proj.weight", (F, C)),
                "wu": get(p + "mlp.up_proj.weight", (F, C)),
                "wd": get(p + "mlp.down_proj.weight", (C, F)),
            })
        self.norm = get("model.norm.weight", (C,))
        if cfg.get("tie_word_embeddings", False):
            self.lm_head = self.embed
        else:
            self.lm_head = get("lm_head.weight", (self.V, C))  # (V, C)
        self.rope_len = 0

    def rope_tables(self, n):
        """cos/sin (n, D/2) for positions [0, n): angle = pos * theta^(-2i/D), made in float64."""
        if n > self.rope_len:
            i = torch.arange(self.D // 2, dtype=torch.float64)
            inv_freq = self.theta ** (-2.0 * i / self.D)
            ang = torch.arange(n, dtype=torch.float64)[:, None] * inv_freq[None, :]
            self.cos, self.sin = ang.cos().float(), ang.sin().float()
            self.rope_len = n
        return self.cos, self.sin

    def cache_init(self, B, max_len):
        """KV cache, preallocated and touched once: per layer k, v (B, Hkv, max_len, D)."""
        shape = (B, self.Hkv, max_len, self.D)
        self.rope_tables(max_len)
        return [(torch.zeros(shape), torch.zeros(shape)) for _ in range(self.L)]

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, cos, sin):
        """x (B, h, T, D), cos/sin (T, D/2); rotate-half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)."""
        half = self.D // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def forward(self, ids, cache, pos, all_logits=False):
        """ids (B, T) int64 at positions [pos, pos+T) -> logits (B, V) of the last position, or
        (B, T, V) with all_logits. Writes this chunk's k, v into cache[l][:, :, pos:pos+T]."""
        B, T = ids.shape
        H, Hkv, G, D = self.H, self.Hkv, self.G, self.D
        S = pos + T
        cos, sin = self.rope_tables(S)
        cos, sin = cos[pos:S], sin[pos:S]  # (T, D/2)
        scale = 1.0 / math.sqrt(D)
        mask = None
        if T > 1:  # key s is visible to query t iff s <= pos + t
            mask = torch.ones(T, S, dtype=torch.bool).triu(diagonal=pos + 1)  # True = hidden
        x = self.embed[ids]  # (B, T, C)
        for l, p in enumerate(self.layers):
            h = self.rmsnorm(x, p["ln1"])
            q = F.linear(h, p["wq"]).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
            k = F.linear(h, p["wk"]).view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
            v = F.linear(h, p["wv"]).view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
            q = self.rope(self.rmsnorm(q, p["qn"]), cos, sin)
            k = self.rope(self.rmsnorm(k, p["kn"]), cos, sin)
            kc, vc = cache[l]
            kc[:, :, pos:S] = k
            vc[:, :, pos:S] = v
            keys, vals = kc[:, :, :S], vc[:, :, :S]  # (B, Hkv, S, D)
            # query head j*G+g uses KV head j: stack its G query heads as G*T rows against KV
            # head j (no copy of the cache, unlike broadcasting or repeat_interleave)
            qg = q.reshape(B, Hkv, G * T, D)
            att = (qg @ keys.transpose(-1, -2)) * scale  # (B, Hkv, G*T, S)
            if mask is not None:
                att = att.view(B, Hkv, G, T, S).masked_fill(mask, float("-inf")).view(B, Hkv, G * T, S)
            att = torch.softmax(att, dim=-1)
            y = (att @ vals).view(B, H, T, D)  # (B, H, T, D)
            y = y.transpose(1, 2).reshape(B, T, H * D)
            x = x + F.linear(y, p["wo"])
            h = self.rmsnorm(x, p["ln2"])
            x = x + F.linear(F.silu(F.linear(h, p["wg"])) * F.linear(h, p["wu"]), p["wd"])  # (B, T, C)
        if not all_logits:
            x = x[:, -1]  # (B, C)
        return F.linear(self.rmsnorm(x, self.norm), self.lm_head)  # (B, V) or (B, T, V)


# ---- check against reference logits ----

def run_check(model, path, rtol):
    with open(path) as f:
        exp = json.load(f)
    ok = True
    for case in exp["cases"]:
        ids = torch.tensor([case["input_ids"]], dtype=torch.int64)  # (1, T)
        T = ids.shape[1]
        n_gen = len(case["greedy_16"])
        # full-sequence forward: every position
        cache = model.cache_init(1, T + n_gen)
        logits = model.forward(ids, cache, 0, all_logits=True)[0]  # (T, V)
        ref_last = torch.tensor(case["logits_last"])
        err_last = (logits[-1] - ref_last).abs().max().item() / ref_last.abs().max().item()
        ref8 = torch.tensor(case["logits_all_positions_first8"])  # (T, 8)
        err8 = (logits[:, :8] - ref8).abs().max().item() / ref8.abs().max().item()
        argmax_ok = logits.argmax(-1).tolist() == case["argmax_per_position"]
        # greedy decode through the KV cache: first token from the prefill, then one per step
        cache = model.cache_init(1, T + n_gen)
        tok = model.forward(ids, cache, 0).argmax(-1)  # (1,)
        gen = [tok.item()]
        for i in range(n_gen - 1):
            tok = model.forward(tok.view(1, 1), cache, T + i).argmax(-1)
            gen.append(tok.item())
        greedy_ok = gen == case["greedy_16"]
        good = err_last <= rtol and err8 <= rtol and argmax_ok and greedy_ok
        ok = ok and good
        print("%-4s case %-12s T=%-3d last-logits rel err %.2e, first-8 all positions %.2e, argmax %s, greedy-%d %s"
              % ("ok" if good else "FAIL", case["name"], T, err_last, err8,
                 "match" if argmax_ok else "DIFFER", n_gen, "match" if greedy_ok else "DIFFER %s" % gen))
    # batching: each row of a batched prefill + decode must equal the same row run alone
    g = torch.Generator().manual_seed(5)
    B, T, n = 3, 7, 4
    ids = torch.randint(0, model.V, (B, T), generator=g)
    cache = model.cache_init(B, T + n)
    out = [model.forward(ids, cache, 0)]  # (B, V)
    for i in range(n):
        out.append(model.forward(out[-1].argmax(-1).view(B, 1), cache, T + i))
    worst = 0.0
    for b in range(B):
        c1 = model.cache_init(1, T + n)
        row = [model.forward(ids[b:b + 1], c1, 0)]
        for i in range(n):
            row.append(model.forward(row[-1].argmax(-1).view(1, 1), c1, T + i))
        for a, r in zip(out, row):
            worst = max(worst, (a[b] - r[0]).abs().max().item() / r[0].abs().max().item())
    good = worst <= rtol
    ok = ok and good
    print("%-4s batch of %d rows (prefill %d + decode %d) vs each row alone: rel err %.2e"
          % ("ok" if good else "FAIL", B, T, n, worst))
    print("torch_qwen3 check: %s (tolerance %.0e relative to max|ref|)" % ("PASS" if ok else "FAIL", rtol))
    return 0 if ok else 1


# ---- benchmark ----

def run_bench(model, a):
    B, L, T = a.batch, a.prompt_len, a.gen_len
    if model.V < BENCH_VOCAB:
        raise ValueError("benchmark prompts use ids in [0, %d) but the model's vocab is %d" % (BENCH_VOCAB, model.V))
    rng = np.random.default_rng(a.seed)
    prompts = torch.from_numpy(rng.integers(0, BENCH_VOCAB, size=(B, L), dtype=np.int64))  # (B, L)

    # warm-up on a small batch (first-call costs of torch ops, the allocator's first pages)
    warm = torch.arange(9, dtype=torch.int64).view(1, 9)
    wc = model.cache_init(1, 9)
    model.forward(warm[:, :8], wc, 0).argmax(-1)
    model.forward(warm[:, 8:], wc, 8).argmax(-1)
    del wc

    cache = model.cache_init(B, L + T)
    t0 = time.perf_counter()
    tok = model.forward(prompts, cache, 0).argmax(-1)  # (B,)
    t_prefill = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(T):
        tok = model.forward(tok.view(B, 1), cache, L + i).argmax(-1)
    t_decode = time.perf_counter() - t0
    print("torch batch=%d prompt_len=%d gen_len=%d prefill_tok_s=%.1f decode_tok_s=%.1f"
          % (B, L, T, B * L / t_prefill, B * T / t_decode))
    return 0


def main():
    torch.set_num_threads(ARGS.threads)
    try:
        cfg, w = checkpoint_load(ARGS.model, ARGS.weights)
        model = Qwen3(cfg, w)
        with torch.inference_mode():
            if ARGS.check:
                return run_check(model, ARGS.check, ARGS.rtol)
            return run_bench(model, ARGS)
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write("torch_qwen3.py: error: %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
