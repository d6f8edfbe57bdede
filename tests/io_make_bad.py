#!/usr/bin/env python3
"""Writes broken Qwen3 checkpoint directories for tests/io_bad.sh, each derived from the good tiny
model in tests/data/qwen3-tiny (stdlib only: json + struct; independent of trustee's writer).

usage: io_make_bad.py TINY_DIR TOKENIZER_JSON OUT_DIR
Creates OUT_DIR/<case>/ for every case and OUT_DIR/cases.tsv: "<case>\t<expected message part>".
"""
import json
import os
import shutil
import struct
import sys

tiny, tokenizer_json, out = sys.argv[1], sys.argv[2], sys.argv[3]

with open(os.path.join(tiny, "model.safetensors"), "rb") as f:
    GOOD = f.read()
(N,) = struct.unpack("<Q", GOOD[:8])
HEADER = json.loads(GOOD[8:8 + N])
DATA = GOOD[8 + N:]
TENSORS = {k: v for k, v in HEADER.items() if k != "__metadata__"}
with open(os.path.join(tiny, "config.json")) as f:
    CONFIG = json.load(f)


def pack_header(header):
    """8-byte length + compact JSON padded with spaces to a multiple of 8."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def repack(tensors):
    """a valid file from {name: (dtype, shape, bytes)}, tensors sorted by name."""
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    header["__metadata__"] = {"format": "pt"}
    return pack_header(header) + b"".join(blobs)


def good_tensors():
    return {k: (v["dtype"], list(v["shape"]), DATA[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in TENSORS.items()}


def edited_header(edit):
    """the good data with a header changed by edit(header) (offsets kept unless edit changes them)."""
    h = json.loads(json.dumps(HEADER))
    edit(h)
    return pack_header(h) + DATA


cases = []


def case(name, expect, weights=None, config=None, tokenizer=None, files=None):
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if config is not False:
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(CONFIG, indent=2))
    if weights is not None:
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(weights)
    if tokenizer is not None:
        with open(os.path.join(d, "tokenizer.json"), "wb") as f:
            f.write(tokenizer)
    for fname, content in (files or {}).items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(content)
    cases.append((name, expect))


def set_key(h, name, key, value):
    h[name][key] = value


EMB = "model.embed_tokens.weight"
Q0 = "model.layers.0.self_attn.q_proj.weight"
LAST = sorted(TENSORS, key=lambda k: TENSORS[k]["data_offsets"][0])[-1]

# --- safetensors files ---
case("st_empty_file", "model.safetensors: file is 0 bytes, too short for a safetensors header", b"")
case("st_truncated_len", "model.safetensors: file is 5 bytes, too short for a safetensors header", GOOD[:5])
case("st_truncated_header", "runs past the end of the file", GOOD[:8 + N // 2])
case("st_truncated_data", "run past the end of the data", GOOD[:-1000])
case("st_header_past_end", "model.safetensors: header length 1000000 runs past the end of the file",
     struct.pack("<Q", 1000000) + GOOD[8:])
case("st_header_over_limit", "model.safetensors: header length 150000000 exceeds the 100 MB limit",
     struct.pack("<Q", 150_000_000) + GOOD[8:])
# a sparse 200 MB file, so the length fits in the file and only the 100 MB limit refuses it
with open(os.path.join(out, "st_header_over_limit", "model.safetensors"), "r+b") as f:
    f.truncate(200_000_000)
case("st_header_huge", "header length 18446744073709551615", b"\xff" * 8 + GOOD[8:])
BROKEN = b"{\"model.embed_tokens.weight\": nope"
case("st_not_json", "model.safetensors: header is not valid JSON: invalid token near 'nope",
     GOOD[:8] + BROKEN + GOOD[8 + len(BROKEN):])
case("st_header_binary", "header is not valid JSON", GOOD[:8] + bytes(range(256)) * (N // 256) + GOOD[8 + 256 * (N // 256):])
case("st_not_object", "model.safetensors: header is not a JSON object", pack_header([1, 2, 3]) + DATA)
DUP = b'{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{}}'
DUP += b" " * (-len(DUP) % 8)
case("st_duplicate_key", "header is not valid JSON: duplicate object key near '\"a\"'",
     struct.pack("<Q", len(DUP)) + DUP + b"\0" * 4)
case("st_unknown_dtype", "tensor model.embed_tokens.weight: unknown dtype F64 (expected F32, BF16, F16 or I32)",
     edited_header(lambda h: set_key(h, EMB, "dtype", "F64")))
case("st_dtype_not_string", "tensor model.embed_tokens.weight: expected \"dtype\" to be a string, found 16",
     edited_header(lambda h: set_key(h, EMB, "dtype", 16)))
case("st_entry_not_object", "tensor model.embed_tokens.weight: expected an object with dtype, shape and data_offsets",
     edited_header(lambda h: h.__setitem__(EMB, "BF16")))
case("st_shape_5d", "tensor model.embed_tokens.weight: shape has 5 dims (expected at most 4)",
     edited_header(lambda h: set_key(h, EMB, "shape", [1024, 64, 1, 1, 1])))
case("st_shape_negative", "expected \"shape\" to be a list of non-negative integers, found [-1024,-64]",
     edited_header(lambda h: set_key(h, EMB, "shape", [-1024, -64])))
case("st_shape_huge", "needs more than",
     edited_header(lambda h: set_key(h, EMB, "shape", [2**40, 2**40])))
case("st_offsets_not_pair", "expected \"data_offsets\" to be [begin, end]",
     edited_header(lambda h: set_key(h, EMB, "data_offsets", [0])))
case("st_offsets_reversed", "data_offsets [131072, 0] end before they begin",
     edited_header(lambda h: set_key(h, EMB, "data_offsets", [131072, 0])))
case("st_offsets_out_of_range", "data_offsets [377600, 400000] run past the end of the data (377728 bytes after the header)",
     edited_header(lambda h: set_key(h, LAST, "data_offsets", [377600, 400000])))
case("st_offsets_shape_mismatch", "tensor model.embed_tokens.weight: data_offsets [0, 131072] hold 131072 bytes, "
     "but BF16 [1024, 63] needs 129024",
     edited_header(lambda h: set_key(h, EMB, "shape", [1024, 63])))
case("st_offsets_overlap", "overlap tensor model.embed_tokens.weight",
     edited_header(lambda h: h["model.layers.0.input_layernorm.weight"].__setitem__("data_offsets", [128, 256])))
case("st_trailing_bytes", "the tensors cover 377728 bytes of data but the file holds 377736 after the header",
     GOOD + b"\0" * 8)
with open(os.path.join(tiny, "model-f32.safetensors"), "rb") as f:
    G32 = f.read()
(N32,) = struct.unpack("<Q", G32[:8])
H32 = G32[8:8 + N32].rstrip(b" ") + b"  "  # header length 2 mod 8: F32 data off its 4-byte grid
H32 += b" " * ((2 - len(H32)) % 8)
case("st_unaligned", "tensor model.embed_tokens.weight: data at file offset 2482 is not aligned to its 4-byte "
     "elements (expected the header padded to a multiple of 8)", struct.pack("<Q", len(H32)) + H32 + G32[8 + N32:])
t = good_tensors()
del t["model.layers.1.mlp.down_proj.weight"]
case("st_missing_tensor", "model.safetensors: missing tensor model.layers.1.mlp.down_proj.weight", repack(t))
t = good_tensors()
t[Q0] = (t[Q0][0], [64, 128], t[Q0][2])
case("st_shape_mismatch", "model.safetensors: tensor model.layers.0.self_attn.q_proj.weight: expected shape "
     "[128, 64], found [64, 128]", repack(t))
t = good_tensors()
t["model.norm.weight"] = ("BF16", [64, 1], t["model.norm.weight"][2])
case("st_shape_extra_dim", "tensor model.norm.weight: expected shape [64], found [64, 1]", repack(t))
case("st_no_weights", "no model.safetensors or model.safetensors.index.json")
case("st_index_not_json", "model.safetensors.index.json: not valid JSON",
     files={"model.safetensors.index.json": b"{\"weight_map\": {"})
case("st_index_no_map", "model.safetensors.index.json: expected a \"weight_map\" object",
     files={"model.safetensors.index.json": b"{\"metadata\": {}}"})
case("st_index_missing_shard", "model-00001-of-00002.safetensors: cannot open: No such file or directory",
     files={"model.safetensors.index.json":
            json.dumps({"weight_map": {EMB: "model-00001-of-00002.safetensors"}}).encode()})

# --- config.json ---
case("cfg_missing", "config.json: cannot open: No such file or directory", GOOD, config=False)
case("cfg_not_json", "config.json: not valid JSON: ", GOOD, config='{"vocab_size": 1024,\n  "hidden_size": 64,,\n}')
case("cfg_empty", "config.json: not valid JSON: ", GOOD, config="")
c = dict(CONFIG)
del c["hidden_size"]
case("cfg_missing_key", "config.json: missing key \"hidden_size\" (expected a positive integer)", GOOD, config=json.dumps(c))
c = dict(CONFIG, hidden_size="abc")
case("cfg_wrong_type", "config.json: key \"hidden_size\": expected a positive integer, found \"abc\"", GOOD, config=json.dumps(c))
c = dict(CONFIG, num_key_value_heads=3)
case("cfg_bad_gqa", "config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)", GOOD,
     config=json.dumps(c))
c = dict(CONFIG, hidden_size=32)
case("cfg_disagrees_with_weights", "tensor model.embed_tokens.weight: expected shape [1024, 32], found [1024, 64]",
     GOOD, config=json.dumps(c))
c = dict(CONFIG, tie_word_embeddings=False)
case("cfg_untied_no_lm_head", "model.safetensors: missing tensor lm_head.weight", GOOD, config=json.dumps(c))

# --- tokenizer.json ---
with open(tokenizer_json, "rb") as f:
    TOK = f.read()
case("tok_not_json", "tokenizer.json", GOOD, tokenizer=b"{\"model\": {\"type\": \"BPE\", ")
case("tok_truncated", "tokenizer.json", GOOD, tokenizer=TOK[:len(TOK) // 2])
case("tok_empty_object", "tokenizer.json", GOOD, tokenizer=b"{}")
case("tok_no_vocab", "tokenizer.json", GOOD, tokenizer=b"{\"model\": {\"type\": \"BPE\", \"merges\": []}}")
case("tok_wrong_model", "tokenizer.json", GOOD, tokenizer=b"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}")

with open(os.path.join(out, "cases.tsv"), "w") as f:
    for name, expect in cases:
        f.write(f"{name}\t{expect}\n")
print(f"io_make_bad: {len(cases)} cases in {out}")
