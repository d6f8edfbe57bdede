#!/usr/bin/python3
"""Eager PyTorch (autograd) training step of a Qwen3 checkpoint: the peer of `trustee bench-train`
in bench/train.sh. Float32 on the CPU; runs under Debian's /usr/bin/python3 with python3-torch.

  bench/torch_train.py --model DIR --batch B --seq-len T --steps N [--seed S] [--threads K] [--lr X]

Same work as trustee bench-train (cmd/bench_train.c), same batch:
  ids (B, T): id i = splitmix64(seed * 0x9e3779b97f4a7c15 + i) mod min(V, 151643)
  loss = mean over b, t >= 1 of -log_softmax(logits[b, t-1])[ids[b, t]]   (F.cross_entropy)
  fwd_bwd = optimizer.zero_grad() + forward + loss + loss.backward()      (timed)
  optim   = clip_grad_norm_(1.0) + AdamW.step() (lr X, betas 0.9/0.999, eps 1e-8, weight decay
            0.01 on the layers' matrices, none on norms and the embedding)  (timed)
One untimed warm-up step, then N timed ones. Prints
  torch batch=B seq_len=T steps=N threads=K fwd_bwd_tok_s=X optim_step_ms=Y loss_first=.. loss_last=..
The weights are loaded by bench/torch_qwen3.py's loader; the training forward is written here
(no KV cache; causal mask; GQA by grouping query heads; full (B, T, V) logits as eager code has).
"""
import argparse
import math
import os
import sys
import time

MASK64 = (1 << 64) - 1


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args(argv)
    if a.batch < 1 or a.seq_len < 2 or a.steps < 1 or a.threads < 1:
        p.error("expected --batch >= 1, --seq-len >= 2, --steps >= 1, --threads >= 1")
    return a


ARGS = parse_args(sys.argv[1:])
# bench/torch_qwen3.py pins the thread pools (OpenBLAS, OpenMP) and OMP_WAIT_POLICY=PASSIVE before
# torch loads, from its own command line: give it ours, then import its loader.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_argv = sys.argv
sys.argv = [_argv[0], "--model", ARGS.model, "--threads", str(ARGS.threads)]
import torch_qwen3  # noqa: E402  (exits 77 when torch is missing)
sys.argv = _argv

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class Qwen3Train(torch.nn.Module):
    """Qwen3 with nn.Parameters (autograd leaves) made from the loaded F32 weights."""

    def __init__(self, cfg, w):
        super().__init__()
        ref = torch_qwen3.Qwen3(cfg, w)  # checks names and shapes
        self.C, self.H, self.Hkv, self.D, self.L, self.V = ref.C, ref.H, ref.Hkv, ref.D, ref.L, ref.V
        self.G, self.eps, self.theta = ref.G, ref.eps, ref.theta
        P = lambda t: torch.nn.Parameter(t.detach().clone())  # noqa: E731
        self.embed = P(ref.embed)  # (V, C)
        self.layers = torch.nn.ModuleList()
        for p in ref.layers:
            m = torch.nn.Module()
            for k, t in p.items():
                setattr(m, k, P(t))
            self.layers.append(m)
        self.norm = P(ref.norm)
        self.tied = ref.lm_head is ref.embed
        self.lm_head = self.embed if self.tied else P(ref.lm_head)  # (V, C)

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, cos, sin):
        half = self.D // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def forward(self, ids):
        """ids (B, T) -> logits (B, T, V)"""
        B, T = ids.shape
        H, Hkv, G, D = self.H, self.Hkv, self.G, self.D
        i = torch.arange(D // 2, dtype=torch.float64)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * (self.theta ** (-2.0 * i / D))[None, :]
        cos, sin = ang.cos().float(), ang.sin().float()  # (T, D/2)
        mask = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # True = hidden
        scale = 1.0 / math.sqrt(D)
        x = F.embedding(ids, self.embed)  # (B, T, C)
        for p in self.layers:
            h = self.rmsnorm(x, p.ln1)
            q = self.rmsnorm(F.linear(h, p.wq).view(B, T, H, D), p.qn).transpose(1, 2)  # (B, H, T, D)
            k = self.rmsnorm(F.linear(h, p.wk).view(B, T, Hkv, D), p.kn).transpose(1, 2)  # (B, Hkv, T, D)
            v = F.linear(h, p.wv).view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            qg = q.reshape(B, Hkv, G * T, D)  # query head j*G+g uses KV head j
            att = (qg @ k.transpose(-1, -2)) * scale  # (B, Hkv, G*T, T)
            att = att.view(B, Hkv, G, T, T).masked_fill(mask, float("-inf")).view(B, Hkv, G * T, T)
            y = (torch.softmax(att, dim=-1) @ v).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
            x = x + F.linear(y, p.wo)
            h = self.rmsnorm(x, p.ln2)
            x = x + F.linear(F.silu(F.linear(h, p.wg)) * F.linear(h, p.wu), p.wd)
        return F.linear(self.rmsnorm(x, self.norm), self.lm_head)  # (B, T, V)


def main():
    torch.set_num_threads(ARGS.threads)
    cfg, w = torch_qwen3.checkpoint_load(ARGS.model)
    model = Qwen3Train(cfg, w)
    del w
    B, T, N = ARGS.batch, ARGS.seq_len, ARGS.steps
    vocab = min(model.V, 151643)
    base = (ARGS.seed * 0x9E3779B97F4A7C15) & MASK64
    ids = torch.tensor([splitmix64((base + i) & MASK64) % vocab for i in range(B * T)], dtype=torch.int64).view(B, T)

    decay = [p for l in model.layers for k, p in l.named_parameters() if p.dim() == 2]
    no_decay = [p for l in model.layers for k, p in l.named_parameters() if p.dim() < 2] + [model.norm, model.embed]
    if not model.tied:
        no_decay.append(model.lm_head)
    params = decay + no_decay
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=ARGS.lr, betas=(0.9, 0.999), eps=1e-8)
    t_fb = t_opt = 0.0
    loss_first = loss_last = None
    for s in range(N + 1):  # s = 0: warm-up
        t0 = time.perf_counter()
        opt.zero_grad()
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, model.V), ids[:, 1:].reshape(-1))
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t2 = time.perf_counter()
        loss_last = loss.item()
        if s == 0:
            loss_first = loss_last
            continue
        t_fb += t1 - t0
        t_opt += t2 - t1
    print("torch batch=%d seq_len=%d steps=%d threads=%d fwd_bwd_tok_s=%.1f optim_step_ms=%.2f loss_first=%.4f loss_last=%.4f"
          % (B, T, N, ARGS.threads, B * T * N / t_fb, 1e3 * t_opt / N, loss_first, loss_last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
