#!/usr/bin/python3
"""report.py: turns a trustee run log (run.h5, schema in comm/runlog.h) into PNG plots and a text summary.

    /usr/bin/python3 scripts/report.py RUN_DIR/run.h5 [--out DIR]      (default DIR: RUN_DIR/report/)

Writes into DIR:
    reward_success.png   mean reward and success rate per training step
    difficulty.png       curriculum difficulty D per step (before and after the step's update; with one D
                         per environment, their mean and one line per environment)
    optimizer.png        KL to the reference, PPO clip fraction, policy entropy per step
    time_split.png       seconds per step: rollout (generation), simulator, training, weight sync
    aborted.png          trajectories that ended early, by reason (names from /steps attribute "reasons")
    eval.png             held-out success per difficulty and phase (/eval), 95% Wilson intervals
    summary.txt          steps, final D, reward of the first vs the last steps, the eval table (also printed)

The file is opened as a SWMR reader, so a run still in progress can be reported on; empty tables give
plots that say so ("no eval rows") instead of errors. Needs h5py, numpy and matplotlib (Debian's
python3-h5py, python3-numpy, python3-matplotlib; scripts/install-deps.sh installs them).
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

PLOTS = ["reward_success", "difficulty", "optimizer", "time_split", "aborted", "eval"]
Z95 = 1.959963984540054


def wilson(k, n, z=Z95):
    """95% Wilson score interval of k successes in n trials; (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # the bounds are exactly 0 at k = 0 and 1 at k = n (rounding would put them just inside), and
    # always contain k / n
    lo = 0.0 if k == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if k == n else min(1.0, max(p, centre + half))
    return lo, hi


def text_of(v):
    return v.decode("utf-8", "replace").rstrip("\0") if isinstance(v, bytes) else str(v)


def read_table(f, name):
    """All rows of a 1-D compound dataset (refreshed for SWMR), or None when the dataset is absent."""
    if name not in f:
        return None
    ds = f[name]
    try:
        ds.refresh()
    except Exception:  # not opened in SWMR mode (an old file): what is there is complete
        pass
    return ds[()]


def empty_plot(path, title, message):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_axis_off()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def step_axis(ax, steps):
    ax.set_xlabel("training step")
    ax.grid(True, alpha=0.3)
    if len(steps) <= 20:
        ax.set_xticks(steps)


def plot_reward_success(steps, path, run):
    if steps is None or len(steps) == 0:
        return empty_plot(path, f"Reward and success ({run})", "no steps yet")
    x = steps["step"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    a1.plot(x, steps["mean_reward"], "o-", color="tab:blue", label="mean reward (trained-on trajectories)")
    a1.set_ylabel("reward (unitless, -1..1)")
    a1.set_title(f"Reward and success per step ({run})")
    a1.grid(True, alpha=0.3)
    a1.legend(loc="best", fontsize=9)
    a2.plot(x, 100 * steps["success_rate"], "s-", color="tab:green", label="success rate (reward = 1)")
    a2.set_ylabel("success (%)")
    a2.set_ylim(-5, 105)
    a2.legend(loc="best", fontsize=9)
    step_axis(a2, x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_env_difficulty(steps, env_names):
    """[(env name, D after each step's update)] when the run had one D per environment, else []."""
    if steps is None or len(steps) == 0 or "env_difficulty_next" not in steps.dtype.names:
        return []
    d = np.asarray(steps["env_difficulty_next"]).reshape(len(steps), -1)
    out = []
    for e in range(d.shape[1]):
        if (d[:, e] < 0).all():
            break
        out.append((env_names[e] if e < len(env_names) else f"env {e}", d[:, e]))
    return out


def plot_difficulty(steps, path, run, env_names=()):
    if steps is None or len(steps) == 0:
        return empty_plot(path, f"Curriculum difficulty ({run})", "no steps yet")
    x = steps["step"]
    per_env = per_env_difficulty(steps, env_names)
    fig, ax = plt.subplots(figsize=(8, 4))
    mean = " (mean over environments)" if per_env else ""
    ax.step(x, steps["difficulty"], "o-", where="mid", label="D before the step's curriculum update" + mean)
    ax.plot(x, steps["difficulty_next"], "x--", label="D after the step's curriculum update" + mean)
    for name, d in per_env:
        ax.plot(x, d, "-", lw=1, alpha=0.8, label=f"{name}: D after the update")
    ax.set_ylabel("difficulty D (1..100)")
    lo = min([steps["difficulty"].min(), steps["difficulty_next"].min()] + [d.min() for _, d in per_env])
    hi = max([steps["difficulty"].max(), steps["difficulty_next"].max()] + [d.max() for _, d in per_env])
    ax.set_ylim(max(0, lo - 5), hi + 5)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"Curriculum difficulty per step ({run})")
    ax.legend(loc="best", fontsize=9)
    step_axis(ax, x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_optimizer(steps, path, run):
    if steps is None or len(steps) == 0:
        return empty_plot(path, f"KL, clip fraction, entropy ({run})", "no steps yet")
    x = steps["step"]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    series = [("kl", "KL to reference (nats/token)", "tab:purple"),
              ("clip_frac", "clip fraction (of tokens)", "tab:orange"),
              ("entropy", "entropy (nats/token)", "tab:brown")]
    for ax, (col, label, colour) in zip(axes, series):
        v = np.asarray(steps[col], dtype=float)
        ax.plot(x, v, "o-", color=colour, label=label)
        # no offset notation, and a flat series stays flat (not noise blown up to the full height)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        if np.isfinite(v).any():
            lo, hi = np.nanmin(v), np.nanmax(v)
            pad = max(0.05 * (hi - lo), 0.01 * abs(hi), 1e-3)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel(label.split(" (")[0] + "\n(" + label.split(" (")[1])
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    axes[0].set_title(f"Policy update statistics per step ({run})")
    step_axis(axes[-1], x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_time_split(steps, path, run):
    if steps is None or len(steps) == 0:
        return empty_plot(path, f"Time per step ({run})", "no steps yet")
    x = steps["step"]
    # t_sim (slowest trajectory's simulator time) is part of t_rollout: show the rest as generation
    parts = [("rollout: generation (s)", np.maximum(steps["t_rollout"] - steps["t_sim"], 0), "tab:blue"),
             ("rollout: simulator (s)", steps["t_sim"], "tab:cyan"),
             ("train (s)", steps["t_train"], "tab:red"),
             ("weight sync (s)", steps["t_sync"], "tab:gray")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(x))
    for label, v, colour in parts:
        ax.bar(x, v, bottom=bottom, color=colour, label=label, width=0.7)
        bottom += v
    ax.plot(x, steps["t_step"], "D--", color="black", mfc="yellow", markersize=8,
            label="wall-clock step time (s)")
    ax.set_ylim(0, 1.12 * max(bottom.max(), steps["t_step"].max(), 1e-6))
    ax.set_ylabel("time (seconds)")
    ax.set_title(f"Time split per step ({run})\n"
                 "rollouts of a step overlap earlier steps' training, so a bar can exceed the step time",
                 fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    step_axis(ax, x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_aborted(steps, reasons, path, run):
    if steps is None or len(steps) == 0:
        return empty_plot(path, f"Aborted trajectories ({run})", "no steps yet")
    x = steps["step"]
    ab = np.asarray(steps["aborted"]).reshape(len(x), -1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(x))
    colours = plt.get_cmap("tab10")
    any_aborted = False
    for r in range(1, ab.shape[1]):  # column 0 = "ok": complete trajectories
        name = reasons[r] if r < len(reasons) else f"reason {r}"
        if ab[:, r].sum() == 0:
            continue
        any_aborted = True
        ax.bar(x, ab[:, r], bottom=bottom, width=0.7, color=colours(r), label=name)
        bottom += ab[:, r]
    ax.plot(x, steps["n_traj"], "k_", markersize=30, mew=2.5, label="trajectories in the step")
    if not any_aborted:
        ax.text(0.5, 0.5, "no aborted trajectories", ha="center", va="center", fontsize=13,
                transform=ax.transAxes)
    ax.set_ylabel("trajectories (count)")
    ax.set_ylim(0, max(1, steps["n_traj"].max()) * 1.15)
    ax.set_title(f"Trajectories that ended early, by reason ({run})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    step_axis(ax, x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def eval_cells(ev):
    """(phase label, difficulty) -> [n, successes, reward sum] over all environments ("all" rows when
    present, else the per-environment rows summed), in the order the phases were logged."""
    cells, order = {}, []
    if ev is None or len(ev) == 0:
        return cells, order
    envs = [text_of(e) for e in ev["env"]]
    use_all = "all" in envs
    for row, env in zip(ev, envs):
        if (env == "all") != use_all:
            continue
        label = f"{text_of(row['phase'])} (step {int(row['step'])})"
        if label not in order:
            order.append(label)
        c = cells.setdefault((label, int(row["difficulty"])), [0, 0, 0.0])
        c[0] += int(row["n"])
        c[1] += int(row["successes"])
        c[2] += float(row["mean_reward"]) * int(row["n"])
    return cells, order


def plot_eval(ev, path, run):
    cells, phases = eval_cells(ev)
    if not cells:
        return empty_plot(path, f"Held-out evaluation ({run})", "no eval rows")
    ds = sorted({d for (_, d) in cells})
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(ds) * max(1, len(phases)) / 2 + 3), 4.5))
    width = 0.8 / len(phases)
    colours = plt.get_cmap("tab10")
    for i, ph in enumerate(phases):
        xs, ys, lo, hi, tags = [], [], [], [], []
        for j, d in enumerate(ds):
            if (ph, d) not in cells:
                continue
            n, k, _ = cells[(ph, d)]
            a, b = wilson(k, n)
            p = k / n if n else 0.0
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(100 * p)
            lo.append(100 * (p - a))
            hi.append(100 * (b - p))
            tags.append(f"{k}/{n}")
        ax.bar(xs, ys, width=width * 0.9, color=colours(i), label=ph, alpha=0.85)
        # the point marks the success rate (visible at 0 %), the bar its 95% interval
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=colours(i), mec="black", ecolor="black",
                    capsize=4, lw=1.2)
        for xv, yv, h, tag in zip(xs, ys, hi, tags):
            ax.text(xv, yv + h + 1.5, tag, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(ds)))
    ax.set_xticklabels([f"D = {d}" for d in ds])
    ax.set_xlabel("held-out task difficulty")
    ax.set_ylabel("success (%), 95% Wilson interval")
    ax.set_ylim(-3, 112)
    ax.set_title(f"Held-out success per difficulty and phase ({run})\nlabels: successes/tasks", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="phase", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(path, steps, reasons, ev, env_names=()):
    out = [f"run log: {path}"]
    if steps is None or len(steps) == 0:
        out.append("steps: 0 (no steps yet)")
    else:
        n = len(steps)
        out.append(f"steps: {n} (steps {int(steps['step'][0])}..{int(steps['step'][-1])})")
        out.append(f"final D: {int(steps['difficulty_next'][-1])} (started at {int(steps['difficulty'][0])})")
        for name, d in per_env_difficulty(steps, env_names):
            out.append(f"  {name}: final D {int(d[-1])}, highest {int(d.max())}")
        k = max(1, min(10, n // 4))
        r, s = steps["mean_reward"], steps["success_rate"]
        out.append(f"reward: first {k} steps {r[:k].mean():+.3f}, last {k} steps {r[-k:].mean():+.3f} "
                   f"(change {r[-k:].mean() - r[:k].mean():+.3f})")
        out.append(f"success: first {k} steps {100 * s[:k].mean():.1f}%, last {k} steps {100 * s[-k:].mean():.1f}%")
        ab = np.asarray(steps["aborted"]).reshape(n, -1).sum(axis=0)
        names = [reasons[i] if i < len(reasons) else f"reason {i}" for i in range(len(ab))]
        out.append("trajectories by end reason: " + ", ".join(f"{nm} {int(c)}" for nm, c in zip(names, ab)))
        out.append(f"time: {steps['t_step'].sum():.1f} s in steps, {steps['t_step'].mean():.2f} s per step")
    cells, phases = eval_cells(ev)
    if not cells:
        out.append("eval: no eval rows")
    else:
        out.append("eval (all environments):")
        out.append(f"  {'phase':<20} {'D':>4} {'n':>5} {'succ':>5} {'success':>8}  {'95% CI':>13}  {'reward':>7}")
        for ph in phases:
            for d in sorted(dd for (p, dd) in cells if p == ph):
                n, k, rs = cells[(ph, d)]
                a, b = wilson(k, n)
                p = 100 * k / n if n else 0.0
                mr = rs / n if n else 0.0
                out.append(f"  {ph:<20} {d:>4} {n:>5} {k:>5} {p:>7.1f}%  {100 * a:5.1f}-{100 * b:5.1f}%  {mr:+7.3f}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="PNG plots and a text summary of a trustee run log")
    ap.add_argument("run", help="the run log, RUN_DIR/run.h5")
    ap.add_argument("--out", help="output folder (default: RUN_DIR/report/)")
    a = ap.parse_args(argv)
    if not os.path.exists(a.run):
        print(f"report.py: {a.run}: no such file", file=sys.stderr)
        return 1
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.run)), "report")
    try:
        f = h5py.File(a.run, "r", libver="latest", swmr=True)
    except OSError as e:
        print(f"report.py: {a.run}: cannot open as HDF5: {e}", file=sys.stderr)
        return 1
    with f:
        if f.attrs.get("format") not in ("trustee-runlog", b"trustee-runlog"):
            print(f"report.py: {a.run}: not a trustee run log (no root attribute format = trustee-runlog)",
                  file=sys.stderr)
            return 1
        steps = read_table(f, "steps")
        ev = read_table(f, "eval")
        reasons = [text_of(r) for r in f["steps"].attrs.get("reasons", [])] if "steps" in f else []
        names = text_of(f["config"].attrs["env_names"]) if "config" in f and "env_names" in f["config"].attrs else ""
        env_names = [x for x in names.split(",") if x]
    os.makedirs(out, exist_ok=True)
    run = os.path.basename(os.path.dirname(os.path.abspath(a.run))) or a.run
    plot_reward_success(steps, os.path.join(out, "reward_success.png"), run)
    plot_difficulty(steps, os.path.join(out, "difficulty.png"), run, env_names)
    plot_optimizer(steps, os.path.join(out, "optimizer.png"), run)
    plot_time_split(steps, os.path.join(out, "time_split.png"), run)
    plot_aborted(steps, reasons, os.path.join(out, "aborted.png"), run)
    plot_eval(ev, os.path.join(out, "eval.png"), run)
    lines = summary_lines(a.run, steps, reasons, ev, env_names)
    with open(os.path.join(out, "summary.txt"), "w") as g:
        g.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {', '.join(p + '.png' for p in PLOTS)} and summary.txt to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
