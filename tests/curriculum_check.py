"""Checks a run log's curriculum against the rule of sim/curriculum.h, recomputed here from the
trajectories (not from anything the run computed about them):

  after step n, with m = the mean reward of the step's trajectories (simulator failures left out):
  m > 0.5 -> D + d_step, m < 0.0 -> D - d_step, otherwise D stays (beyond a threshold means by
  more than 1e-6); clamped to [1, 100]; a batch without any trajectory does not move D.

--curriculum env applies it per environment, to that environment's trajectories only
(/steps env_difficulty[_next], in /config env_names order; /steps difficulty[_next] = their mean,
rounded half up); --curriculum shared applies it to the whole batch (env_difficulty all -1).
Every training task's D (/curriculum rows) must be its environment's D after
max(0, n - 1 - staleness) updates.

usage: /usr/bin/python3 curriculum_check.py RUN.h5
prints e.g. "curriculum ok: env, 4 steps, 2 environments, D 50 -> 44, 50 -> 47"; exit 1 with the
first mismatches otherwise.
"""
import sys

import h5py
import numpy as np

SIM_ERROR = 1  # /steps attribute reasons[1]
TOL = 1e-6  # rewards are float32: "beyond the threshold" means by more than this


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main(path):
    f = h5py.File(path, "r", libver="latest", swmr=True)
    cfg = f["config"].attrs
    mode, d0, dstep = text(cfg["curriculum"]), int(cfg["d_start"]), int(cfg["d_step"])
    stale = int(cfg["staleness"])
    envs = [e for e in text(cfg["env_names"]).split(",") if e]
    st, rows, cur = f["steps"][()], f["trajectories/rows"][()], f["curriculum"][()]
    rows = rows[rows["eval"] == 0]
    bad = []
    groups = envs if mode == "env" else ["*"]
    d = {g: d0 for g in groups}
    history = [dict(d)]  # history[v] = D per group after v updates
    for i, r in enumerate(st):
        n = int(r["step"])
        if n != i + 1:
            bad.append(f"/steps row {i}: step {n}")
            break
        sel = (rows["step"] == n) & (rows["abort"] != SIM_ERROR)
        for j, g in enumerate(groups):
            m = sel if g == "*" else sel & (np.char.rstrip(rows["env"], b"\0") == g.encode())
            k = int(m.sum())
            mean = float(rows["reward"][m].astype(np.float64).sum() / k) if k else 0.0
            move = 0 if k == 0 else 1 if mean > 0.5 + TOL else -1 if mean < 0.0 - TOL else 0
            before, after = d[g], min(100, max(1, d[g] + move * dstep))
            if g == "*":
                got = (int(r["difficulty"]), int(r["difficulty_next"]))
            else:
                got = (int(r["env_difficulty"][j]), int(r["env_difficulty_next"][j]))
            if got != (before, after):
                bad.append(f"step {n} {g}: D {got[0]} -> {got[1]}, expected {before} -> {after} "
                           f"({k} trajectories, mean reward {mean:+.4f})")
            d[g] = after
        history.append(dict(d))
        if mode == "env":
            want = [[history[-2][g] for g in envs], [d[g] for g in envs]]
            for w, col in zip(want, ("difficulty", "difficulty_next")):
                if int(r[col]) != (2 * sum(w) + len(w)) // (2 * len(w)):
                    bad.append(f"step {n}: {col} {int(r[col])}, expected the mean of {w} rounded")
            if (r["env_difficulty"][len(envs):] != -1).any():
                bad.append(f"step {n}: env_difficulty past the {len(envs)} environments is not -1")
        elif (r["env_difficulty"] != -1).any() or (r["env_difficulty_next"] != -1).any():
            bad.append(f"step {n}: env_difficulty set with one shared curriculum")
    for c in cur:
        n, env = int(c["step"]), text(c["env"]).rstrip("\0")
        v = max(0, n - 1 - stale)
        g = env if mode == "env" else "*"
        if v >= len(history) or g not in history[v]:
            bad.append(f"/curriculum row of step {n}, env {env}: no curriculum state for it")
        elif int(c["difficulty"]) != history[v][g]:
            bad.append(f"/curriculum row of step {n}, env {env}: D {int(c['difficulty'])}, "
                       f"expected {history[v][g]} (after {v} updates)")
    if bad:
        print("curriculum check FAILED:\n  " + "\n  ".join(bad[:20]))
        return 1
    moves = ", ".join(f"{history[0][g]} -> {d[g]}" for g in groups)
    print(f"curriculum ok: {mode}, {len(st)} steps, {len(groups)} curricul{'a' if len(groups) > 1 else 'um'}, "
          f"D {moves}; {len(cur)} task rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
