#!/usr/bin/env python3
"""Independent checks of safetensors files with torch + json (the safetensors package is not
installed; this reads the format by hand the way HF's loader does: 8-byte LE length, JSON header,
torch.frombuffer on the data). Run with /usr/bin/python3 (Debian's python3-torch).

  io_check.py tiny TINY_DIR
      reads model.safetensors (BF16) and model-f32.safetensors: every BF16 value widened equals the
      F32 value exactly (checks this reader on the reference data)
  io_check.py checkpoint DIR [--f32-twin DIR2] [--expect-params N]
      a `trustee init-model` output: header layout (padded to 8, tensors in name order, packed,
      __metadata__ {"format": "pt"}), names and shapes from config.json (computed here), dtype from
      torch_dtype, norms == 1, matrices ~ normal(0, 0.02); with --f32-twin (same seed, f32), the
      BF16 file equals torch's own rounding of the F32 values.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I32": torch.int32}
SIZES = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4}


def fail(msg):
    print(f"io_check: FAIL: {msg}")
    sys.exit(1)


def load(path):
    """-> (header dict without __metadata__, metadata, {name: tensor}, raw header bytes)"""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hbytes = raw[8:8 + n]
    header = json.loads(hbytes)
    meta = header.pop("__metadata__", None)
    data = bytearray(raw[8 + n:])
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        if end - b != math.prod(e["shape"]) * SIZES[e["dtype"]]:
            fail(f"{path}: {name}: offsets do not match the shape")
        t = torch.frombuffer(data, dtype=DTYPES[e["dtype"]], count=(end - b) // SIZES[e["dtype"]], offset=b)
        tensors[name] = t.reshape(e["shape"])
    return header, meta, tensors, hbytes, len(data)


def check_tiny(d):
    _, _, bf, _, _ = load(os.path.join(d, "model.safetensors"))
    _, _, f32, _, _ = load(os.path.join(d, "model-f32.safetensors"))
    if sorted(bf) != sorted(f32):
        fail("tiny: the two files hold different names")
    for name in bf:
        if bf[name].dtype != torch.bfloat16 or f32[name].dtype != torch.float32:
            fail(f"tiny: {name}: dtypes {bf[name].dtype} {f32[name].dtype}")
        if not torch.equal(bf[name].to(torch.float32), f32[name]):
            fail(f"tiny: {name}: BF16 widened differs from F32")
    n = sum(t.numel() for t in bf.values())
    print(f"io_check tiny: {len(bf)} tensors, {n} parameters, BF16 == F32 exactly")


def expected_shapes(cfg):
    """HF Qwen3ForCausalLM parameter names and shapes, from the config alone."""
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    D = cfg.get("head_dim", C // cfg["num_attention_heads"])
    Q, K = cfg["num_attention_heads"] * D, cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * D
    s = {"model.embed_tokens.weight": [V, C], "model.norm.weight": [C]}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        s.update({
            p + "input_layernorm.weight": [C], p + "post_attention_layernorm.weight": [C],
            p + "self_attn.q_proj.weight": [Q, C], p + "self_attn.k_proj.weight": [K, C],
            p + "self_attn.v_proj.weight": [K, C], p + "self_attn.o_proj.weight": [C, Q],
            p + "self_attn.q_norm.weight": [D], p + "self_attn.k_norm.weight": [D],
            p + "mlp.gate_proj.weight": [I, C], p + "mlp.up_proj.weight": [I, C], p + "mlp.down_proj.weight": [C, I],
        })
    if not cfg.get("tie_word_embeddings", False):
        s["lm_head.weight"] = [V, C]
    return s


def check_checkpoint(d, f32_twin, expect_params):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    for key, want in [("architectures", ["Qwen3ForCausalLM"]), ("model_type", "qwen3"), ("hidden_act", "silu"),
                      ("attention_bias", False), ("vocab_size", 151936), ("bos_token_id", 151643),
                      ("eos_token_id", 151645), ("rope_theta", 1e6), ("rms_norm_eps", 1e-6),
                      ("max_position_embeddings", 40960)]:
        if cfg.get(key) != want:
            fail(f"config.json: {key} = {cfg.get(key)!r}, expected {want!r}")
    path = os.path.join(d, "model.safetensors")
    header, meta, tensors, hbytes, data_len = load(path)
    if meta != {"format": "pt"}:
        fail(f"__metadata__ = {meta}")
    if len(hbytes) % 8:
        fail(f"header length {len(hbytes)} is not a multiple of 8")
    names = list(json.loads(hbytes).keys())
    if names[:-1] != sorted(names[:-1]) or names[-1] != "__metadata__":
        fail("header keys are not sorted names followed by __metadata__")
    at = 0
    for name in sorted(header):
        b, e = header[name]["data_offsets"]
        if b != at:
            fail(f"{name}: begins at {b}, expected {at} (packed in name order)")
        at = e
    if at != data_len:
        fail(f"data region {data_len} bytes, tensors cover {at}")

    want = expected_shapes(cfg)
    if sorted(want) != sorted(tensors):
        fail(f"names differ: missing {sorted(set(want) - set(tensors))}, extra {sorted(set(tensors) - set(want))}")
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[cfg["torch_dtype"]]
    n_params = 0
    for name, shape in want.items():
        t = tensors[name]
        if list(t.shape) != shape or t.dtype != dtype:
            fail(f"{name}: {list(t.shape)} {t.dtype}, expected {shape} {dtype}")
        n_params += t.numel()
        x = t.to(torch.float64)
        if len(shape) == 1:
            if not torch.all(x == 1):
                fail(f"{name}: a norm weight that is not all ones")
            continue
        mean, std = x.mean().item(), x.std().item()
        within = (x.abs() < 0.02).to(torch.float64).mean().item()  # normal: 0.6827
        n = x.numel()
        # 6-sigma bounds of the sample statistics of n normal(0, 0.02) draws
        if abs(mean) > 6 * 0.02 / math.sqrt(n) + 1e-4 or abs(std - 0.02) > 6 * 0.02 / math.sqrt(2 * n) + 2e-4 \
                or abs(within - 0.682689) > 6 * 0.4654 / math.sqrt(n) + 2e-3:
            fail(f"{name}: mean {mean:.3g} std {std:.5g} P(|x|<sigma) {within:.4f}: not normal(0, 0.02)")
    if expect_params is not None and n_params != expect_params:
        fail(f"{n_params} parameters, init-model printed {expect_params}")
    # distinct tensors draw distinct numbers
    mats = [n for n in want if len(want[n]) == 2]
    firsts = {tuple(tensors[n].flatten()[:8].tolist()) for n in mats}
    if len(firsts) != len(mats):
        fail("two matrices start with the same values")
    if f32_twin:
        _, _, ref, _, _ = load(os.path.join(f32_twin, "model.safetensors"))
        for name in want:
            if ref[name].dtype != torch.float32:
                fail(f"twin {name}: {ref[name].dtype}")
            if not torch.equal(ref[name].to(torch.bfloat16), tensors[name]):
                fail(f"{name}: BF16 values differ from torch's rounding of the F32 twin")
    print(f"io_check checkpoint {d}: {len(tensors)} tensors, {n_params} parameters, {cfg['torch_dtype']}, "
          f"tied={cfg['tie_word_embeddings']}" + (", BF16 == round(F32 twin)" if f32_twin else ""))


if __name__ == "__main__":
    if sys.argv[1] == "tiny":
        check_tiny(sys.argv[2])
    elif sys.argv[1] == "checkpoint":
        args = sys.argv[3:]
        twin = args[args.index("--f32-twin") + 1] if "--f32-twin" in args else None
        params = int(args[args.index("--expect-params") + 1]) if "--expect-params" in args else None
        check_checkpoint(sys.argv[2], twin, params)
    else:
        fail("usage: io_check.py tiny DIR | checkpoint DIR [--f32-twin DIR2] [--expect-params N]")
