"""Makes an untied copy of a tied Qwen3 checkpoint (numpy only): the same tensors plus
lm_head.weight = a copy of model.embed_tokens.weight, and tie_word_embeddings false.
usage: grad_untie.py SRC_CONFIG SRC_SAFETENSORS OUT_DIR"""
import json
import os
import struct
import sys


def main():
    cfg_path, st_path, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(cfg_path))
    cfg["tie_word_embeddings"] = False
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    raw = open(st_path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    emb = tensors["model.embed_tokens.weight"]
    blobs = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in tensors.items()}
    blobs["lm_head.weight"] = blobs["model.embed_tokens.weight"]
    tensors["lm_head.weight"] = {"dtype": emb["dtype"], "shape": emb["shape"]}
    new_header, body, off = {"__metadata__": {"format": "pt"}}, b"", 0
    for k in sorted(tensors):
        b = blobs[k]
        new_header[k] = {"dtype": tensors[k]["dtype"], "shape": tensors[k]["shape"],
                         "data_offsets": [off, off + len(b)]}
        body += b
        off += len(b)
    hj = json.dumps(new_header).encode()
    hj += b" " * (-len(hj) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + body)


if __name__ == "__main__":
    main()
