#!/usr/bin/python3
"""Independent check of trustee's AdamW (tests/optim_torch.sh): redo the run of optim_torch_run
with torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ from the same initial weights and
gradients, and compare final weights, moments and grad norms (max |a - b| / max |b| <= 1e-6).

The learning-rate schedule (linear warmup, then cosine to a floor) and the NaN skip rule are
written here from their definitions, not taken from trustee:
  lr(t) = lr * (t + 1) / warmup            for update t < warmup   (t = updates applied so far)
        = min + (lr - min) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2   after
  a step whose gradients hold a NaN/Inf is skipped entirely (no update, t does not advance).
  usage: optim_torch_check.py RUN.safetensors
"""
import json
import math
import sys

import numpy as np
import torch

LR, BETAS, EPS, WD, CLIP, WARMUP, MIN_LR, GRAD_SCALE = 1e-2, (0.9, 0.95), 1e-8, 0.1, 1.0, 2, 1e-3, 0.5
N_PARAMS, N_CALLS = 4, 9
DECAY = [1, 0, 1, 1]
TOL = 1e-6


def load(path):
    blob = open(path, "rb").read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(blob[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"]).copy()
    return out


def schedule(t, total):
    if t < WARMUP:
        return LR * (t + 1) / WARMUP
    p = min(1.0, (t - WARMUP) / (total - WARMUP))
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * p))


def relerr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main():
    run = load(sys.argv[1])
    params = [torch.nn.Parameter(torch.from_numpy(run["init.p%d" % i])) for i in range(N_PARAMS)]
    groups = [{"params": [p for p, d in zip(params, DECAY) if d], "weight_decay": WD},
              {"params": [p for p, d in zip(params, DECAY) if not d], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, foreach=False)
    total = N_CALLS - 1
    t = 0
    worst = 0.0
    ok = True
    for c in range(N_CALLS):
        grads = [torch.from_numpy(run["grad.%d.p%d" % (c, i)]) * GRAD_SCALE for i in range(N_PARAMS)]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        if not finite:
            skipped = 1.0
        else:
            skipped = 0.0
            for p, g in zip(params, grads):
                p.grad = g.clone()
            norm = float(torch.nn.utils.clip_grad_norm_(params, CLIP))
            lr = schedule(t, total)
            for grp in opt.param_groups:
                grp["lr"] = lr
            opt.step()
            t += 1
            e = abs(norm - float(run["grad_norm"][c])) / norm
            e_lr = abs(lr - float(run["lr"][c])) / lr
            worst = max(worst, e, e_lr)
            print("call %d: grad_norm torch %.7g trustee %.7g (rel %.1e), lr %.7g vs %.7g" %
                  (c, norm, run["grad_norm"][c], e, lr, run["lr"][c]))
        if skipped != run["skipped"][c]:
            print("FAIL call %d: torch side skipped=%d, trustee skipped=%d" % (c, skipped, run["skipped"][c]))
            ok = False
    for i, p in enumerate(params):
        st = opt.state[p]
        for key, ours in (("final", p.detach().numpy()), ("exp_avg", st["exp_avg"].numpy()),
                          ("exp_avg_sq", st["exp_avg_sq"].numpy())):
            e = relerr(run["%s.p%d" % (key, i)], ours)
            worst = max(worst, e)
            print("p%d %-10s shape %-10s rel err %.2e" % (i, key, list(ours.shape), e))
    ok = ok and worst <= TOL
    print("AdamW vs torch.optim.AdamW (torch %s): worst rel err %.2e (tolerance %.0e): %s"
          % (torch.__version__, worst, TOL, "PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
