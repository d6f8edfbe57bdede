"""Compares a gradient file written by `trustee grad` with a reference gradient file (numpy only,
independent of trustee's code): every tensor's relative error ||g - g_ref|| / ||g_ref|| must be
below the bound; the loss printed by trustee must match the case file's loss within 1e-5 relative.
usage: grad_check.py GRADS REF CASE.json LOSS_LOG [bound]"""
import json
import struct
import sys

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + b:base + e], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def main():
    grads, ref, case, log = sys.argv[1:5]
    bound = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
    g, r = read_st(grads), read_st(ref)
    ok = True
    missing = sorted(set(r) - set(g))
    if missing:  # the untied reference files hold only the two embedding parts: compare those
        print("missing tensors:", missing)
        return 1
    worst, worst_name = 0.0, ""
    for name in sorted(r):
        if g[name].shape != r[name].shape:
            print(f"{name}: shape {g[name].shape}, expected {r[name].shape}")
            ok = False
            continue
        rel = np.linalg.norm(g[name] - r[name]) / np.linalg.norm(r[name])
        if rel > worst:
            worst, worst_name = rel, name
        if not rel < bound:
            print(f"FAIL {name}: relative error {rel:.3e} > {bound}")
            ok = False
    want = json.load(open(case))["loss"]
    got = None
    for line in open(log):
        if line.startswith("loss "):
            got = float(line.split()[1])
    if got is None:
        print("no 'loss' line in", log)
        return 1
    lrel = abs(got - want) / abs(want)
    print(f"loss {got:.10g} (reference {want:.10g}, relative error {lrel:.2e}); "
          f"worst gradient relative error {worst:.3e} ({worst_name}); {len(r)} of {len(g)} tensors compared")
    if not lrel < 1e-5:
        print("FAIL loss")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
