#!/usr/bin/env python3
"""Eager PyTorch Qwen3 on one CUDA GPU: the peer of bench/bench_gpu.c (bench/gpu.sh runs both).

A self-contained Qwen3 decoder written from its config (no transformers), random bf16 weights on
the GPU (std 0.02, norms 1), bf16 activations, eager mode (no torch.compile, no CUDA graphs),
attention by torch.nn.functional.scaled_dot_product_attention, an HF-style KV cache: per layer a
K and a V tensor (B, Hkv, S, D) that grows by torch.cat every step. Timing: torch.cuda.synchronize
around the timed region, after warm-up. The lines match bench_gpu's:

  decode batch=B: X tok/s      B prompts of --prompt tokens (prefilled, not timed), --warmup steps,
                               then --steps timed one-token steps; each step computes the logits of
                               the B new tokens (B, V) and copies them to the host, as bench_gpu does
  prefill batch=B len=T: X tok/s   one forward over B prompts of T tokens, logits of the last token
  training: X tok/s            forward + backward of --train-layers layers on a --train BxT batch
                               (bf16 params, autograd) plus the LM head and mean NLL over all rows;
                               the per-layer time extrapolated to the config's layers, as bench_gpu

usage: bench/torch_gpu.py [--config config.json] [--layers N] [--decode 1,32,128] [--prompt 128]
       [--steps 64] [--warmup 3] [--prefill 8x512,2x2048] [--train 4x1024] [--train-layers 2]
       [--train-iters 3] [--peak-tflops 989] [--cudnn-sdp] [--no-decode] [--no-prefill] [--no-train]
Exit 77 ("SKIP: ...") when torch sees no CUDA device.
"""
import argparse
import json
import math
import sys
import time

QWEN3_8B = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                rope_theta=1e6, tie_word_embeddings=False)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config")
    p.add_argument("--layers", type=int, default=0)
    p.add_argument("--decode", default="1,32,128")
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--prefill", default="8x512,2x2048")
    p.add_argument("--train", default="4x1024")
    p.add_argument("--train-layers", type=int, default=2)
    p.add_argument("--train-iters", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--cudnn-sdp", action="store_true", help="let SDPA use cuDNN (off by default)")
    p.add_argument("--no-decode", action="store_true")
    p.add_argument("--no-prefill", action="store_true")
    p.add_argument("--no-train", action="store_true")
    return p.parse_args(argv)


def bxt(s):
    b, t = s.split("x")
    return int(b), int(t)


def load_config(path):
    cfg = dict(QWEN3_8B)
    if path:
        with open(path) as f:
            j = json.load(f)
        for k in cfg:
            if k in j:
                cfg[k] = j[k]
        if "head_dim" not in j:
            cfg["head_dim"] = cfg["hidden_size"] // cfg["num_attention_heads"]
        if "num_key_value_heads" not in j:
            cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    return cfg


def main(argv):
    a = parse_args(argv)
    import torch
    import torch.nn.functional as F

    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77
    cfg = load_config(a.config)
    L_full = cfg["num_hidden_layers"]
    L = a.layers if a.layers > 0 else L_full
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    G = Hq // Hkv
    dev, dt = torch.device("cuda"), torch.bfloat16
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    # cuDNN's SDPA (torch 2.11's first choice here) costs its decode step about twice the time of
    # flash / memory-efficient attention: 92 vs 50 ms per step at batch 1 on an H100 (a new key
    # length every step); --cudnn-sdp measures that
    torch.backends.cuda.enable_cudnn_sdp(a.cudnn_sdp)
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}; eager, bf16, SDPA attention (cuDNN backend {'on' if a.cudnn_sdp else 'off'})")

    def rand(*shape):
        a_ = 0.02 * math.sqrt(3.0)
        return (torch.rand(*shape, device=dev, dtype=torch.float32) * (2 * a_) - a_).to(dt)

    def ones(n):
        return torch.ones(n, device=dev, dtype=dt)

    t0 = time.time()
    embed = rand(V, C)
    lm_head = embed if cfg["tie_word_embeddings"] else rand(V, C)
    final_norm = ones(C)
    layers = []
    for _ in range(L):
        layers.append(dict(input_norm=ones(C), wq=rand(Hq * D, C), wk=rand(Hkv * D, C), wv=rand(Hkv * D, C),
                           wo=rand(C, Hq * D), q_norm=ones(D), k_norm=ones(D), post_norm=ones(C),
                           w_gate=rand(I, C), w_up=rand(I, C), w_down=rand(C, I)))
    torch.cuda.synchronize()
    print(f"model: {L} layers, random bf16 weights ({time.time() - t0:.1f} s to make)")

    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, device=dev, dtype=torch.float32) / D))  # (D/2)

    def rmsnorm(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w

    def rope(x, pos):  # x (B, H, T, D), pos (T) or (B, T)
        f = pos.float()[..., None] * inv_freq  # (.., T, D/2)
        cos, sin = torch.cat([f.cos(), f.cos()], -1), torch.cat([f.sin(), f.sin()], -1)
        if cos.dim() == 3:  # (B, T, D) -> (B, 1, T, D)
            cos, sin = cos[:, None], sin[:, None]
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def layer(w, x, pos, cache, causal):
        """x (B, T, C); cache: [K, V] (B, Hkv, S, D) or None (training: no cache)"""
        B, T, _ = x.shape
        h = rmsnorm(x, w["input_norm"])
        q = (h @ w["wq"].t()).view(B, T, Hq, D)
        k = (h @ w["wk"].t()).view(B, T, Hkv, D)
        v = (h @ w["wv"].t()).view(B, T, Hkv, D)
        q = rope(rmsnorm(q, w["q_norm"]).transpose(1, 2), pos)
        k = rope(rmsnorm(k, w["k_norm"]).transpose(1, 2), pos)
        v = v.transpose(1, 2)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        att = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        x = x + att.transpose(1, 2).reshape(B, T, Hq * D) @ w["wo"].t()
        h = rmsnorm(x, w["post_norm"])
        return x + (F.silu(h @ w["w_gate"].t()) * (h @ w["w_up"].t())) @ w["w_down"].t()

    def forward(ids, pos, caches, last_only):
        x = embed[ids]
        causal = ids.shape[1] > 1
        for w, cache in zip(layers, caches):
            x = layer(w, x, pos, cache, causal)
        if last_only:
            x = x[:, -1]
        return rmsnorm(x, final_norm) @ lm_head.t()

    def counts(nl):
        per_layer = C * Hq * D + 2 * C * Hkv * D + Hq * D * C + 3 * C * I + 2 * C + 2 * D
        return nl * per_layer + C, V * C  # non-embedding, LM head

    results = {}
    with torch.no_grad():
        if not a.no_decode:
            for B in [int(s) for s in a.decode.split(",")]:
                caches = [[None, None] for _ in range(L)]
                ids = torch.randint(0, V, (B, a.prompt), device=dev)
                forward(ids, torch.arange(a.prompt, device=dev), caches, True).float().cpu()
                S = a.prompt
                for step in range(a.warmup + a.steps):
                    if step == a.warmup:
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                    tok = torch.randint(0, V, (B, 1), device=dev)
                    logits = forward(tok, torch.tensor([S], device=dev), caches, True)
                    logits.float().cpu()  # to the host, as the engine's step does
                    S += 1
                torch.cuda.synchronize()
                secs = time.perf_counter() - t0
                tok_s = B * a.steps / secs
                print(f"decode batch={B}: {tok_s:.1f} tok/s ({1e3 * secs / a.steps:.2f} ms/step)")
                del caches
                torch.cuda.empty_cache()
        if not a.no_prefill:
            for B, T in [bxt(s) for s in a.prefill.split(",")]:
                secs = 0.0
                for rep in range(3):  # rep 0: warm-up
                    ids = torch.randint(0, V, (B, T), device=dev)
                    caches = [[None, None] for _ in range(L)]
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    forward(ids, torch.arange(T, device=dev), caches, True).float().cpu()
                    torch.cuda.synchronize()
                    if rep:
                        secs += time.perf_counter() - t0
                    del caches
                secs /= 2
                print(f"prefill batch={B} len={T}: {B * T / secs:.1f} tok/s ({1e3 * secs:.1f} ms)")
                torch.cuda.empty_cache()

    if not a.no_train:
        B, T = bxt(a.train)
        TL = min(a.train_layers, L)
        tl = [{k: v.detach().clone().requires_grad_(True) for k, v in layers[i].items()} for i in range(TL)]
        head = lm_head.detach().clone().requires_grad_(True)
        fnorm = final_norm.detach().clone().requires_grad_(True)
        ids = torch.randint(0, V, (B, T), device=dev)
        targets = torch.randint(0, V, (B * T,), device=dev)
        pos = torch.arange(T, device=dev)
        x0 = embed[ids].detach()
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        fwd = hd = bwd = 0.0
        for it in range(a.train_iters + 1):  # it 0: warm-up
            torch.cuda.synchronize()
            ev[0].record()
            x = x0.clone().requires_grad_(True)
            h = x
            for w in tl:
                h = layer(w, h, pos, None, True)
            ev[1].record()
            # the LM head + loss: a leaf cut at the final hidden, so its time is measured apart
            hl = h.detach().requires_grad_(True)
            loss = F.cross_entropy((rmsnorm(hl, fnorm) @ head.t()).float().view(B * T, V), targets)
            loss.backward()
            ev[2].record()
            h.backward(hl.grad)
            ev[3].record()
            torch.cuda.synchronize()
            if it:
                fwd += ev[0].elapsed_time(ev[1]) / 1e3
                hd += ev[1].elapsed_time(ev[2]) / 1e3
                bwd += ev[2].elapsed_time(ev[3]) / 1e3
        n = a.train_iters
        fwd, hd, bwd = fwd / n, hd / n, bwd / n
        per_layer = (fwd + bwd) / TL
        step = L_full * per_layer + hd
        tok_s = B * T / step
        ne, lh = counts(L_full)
        mfu = tok_s * 6 * (ne + lh) / (a.peak_tflops * 1e12)
        print(f"training: {tok_s:.1f} tok/s, MFU {100 * mfu:.1f}% (6N, N = {ne + lh:.3g}; {B} x {T} tokens; "
              f"{TL} layers' forward+backward measured and extrapolated to {L_full}, LM head + loss measured)")
        print(f"training per layer: forward {1e3 * fwd / TL:.2f} ms, backward {1e3 * bwd / TL:.2f} ms; "
              f"LM head + loss fwd+bwd {1e3 * hd:.2f} ms; step estimate {1e3 * step:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
