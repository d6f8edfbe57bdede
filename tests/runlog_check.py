#!/usr/bin/python3
"""runlog_check.py: schema checker for a trustee run log (runs/<name>/run.h5, docs/runlog.md).

usage: /usr/bin/python3 runlog_check.py RUN.h5 [--steps N] [--min-traj M] [--expect-eval]

Opens the file read-only, as a SWMR reader when a plain open is refused (a file trustee is
writing, or one a crashed writer left marked open), and checks:
  - root attributes format == "trustee-runlog", format_version == 2; /config has attributes;
  - every dataset exists, 1-D, with every compound column under its name and dtype kind;
    /steps has the "reasons" attribute (ok, sim_error, turn_cap, token_cap, context_full);
  - row counts: /steps == N (with --steps), /trajectories/rows >= M (with --min-traj), /eval > 0
    (with --expect-eval); ids / logprobs / mask have the same length;
  - /steps.step is 1..rows in order;
  - every trajectory's tok_start/n_tokens, text_start/text_len, details_start/details_len lie
    inside their flat dataset and follow each other (row i+1 starts where row i ends), the last
    row ending exactly at the dataset's end; 0 <= n_prompt <= n_tokens;
  - mask values are 0 or 1, the text is UTF-8, each details blob is empty or JSON.
Prints one line and exits 0 when everything holds:
  runlog ok: 4 steps, 64 trajectories, 12345 tokens, 8 curriculum rows, 0 eval rows
otherwise prints "runlog FAILED: ..." lines (every problem found) and exits 1.
Keep this CLI stable: the training job's tests and the Slurm test call it.
"""
import argparse
import json
import sys

import h5py
import numpy as np

REASONS = ["ok", "sim_error", "turn_cap", "token_cap", "context_full"]
NAME_LEN = 32
MAX_ENVS = 16
# column -> dtype kind ('i' signed int, 'u' unsigned, 'f' float, 'S' fixed bytes); 'A' = int32 array
# of the end reasons, 'E' = int32 array of one value per environment
COLUMNS = {
    "steps": dict(
        step="i", policy_version="i", difficulty="i", difficulty_next="i", env_difficulty="E",
        env_difficulty_next="E", mean_reward="f",
        success_rate="f", loss="f", pg_loss="f", kl="f", clip_frac="f", entropy="f", ratio_min="f",
        ratio_max="f", lp_gap_max="f", grad_norm="f", lr="f", optim_skipped="i", n_traj="i",
        n_groups_kept="i", tokens="i", total_tokens="i", aborted="A", t_rollout="f", t_sim="f",
        t_train="f", t_sync="f", t_step="f", tokens_per_s="f", wall="f"),
    "curriculum": dict(
        step="i", task_id="u", group="i", env="S", seed="u", difficulty="i", soft="i",
        tools_available="i", expected_calls="i", expected_turns="i", system_prompt="i", persona="i",
        ambiguity="i", judge_strictness="i", distractors="i", mean_reward="f", success_rate="f"),
    "eval": dict(step="i", phase="S", env="S", difficulty="i", n="i", successes="i", mean_reward="f"),
    "trajectories/rows": dict(
        step="i", task_id="u", group="i", index="i", policy_version="i", eval="i", env="S",
        difficulty="i", reward="f", score="f", turns="i", tool_calls="i", abort="i", truncated="i",
        tok_start="i", n_tokens="i", n_prompt="i", text_start="i", text_len="i",
        details_start="i", details_len="i"),
}
FLAT = {"trajectories/ids": ("i", 4), "trajectories/logprobs": ("f", 4), "trajectories/mask": ("u", 1),
        "trajectories/text": ("u", 1), "trajectories/details": ("u", 1)}


def as_str(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        return as_str(v[()])
    return str(v)


def open_log(path):
    """a closed (or h5clear'ed) file opens plainly; one being written, or left marked open by a
    crashed writer, refuses that and is read as a SWMR reader"""
    try:
        return h5py.File(path, "r")
    except OSError:
        return h5py.File(path, "r", libver="latest", swmr=True)


def check(path, steps=None, min_traj=None, expect_eval=False):
    errors = []
    err = errors.append
    f = open_log(path)
    if as_str(f.attrs.get("format", "")) != "trustee-runlog":
        err(f"root attribute format = {f.attrs.get('format')!r}, expected 'trustee-runlog'")
    if int(f.attrs.get("format_version", -1)) != 2:
        err(f"root attribute format_version = {f.attrs.get('format_version')!r}, expected 2")
    if "config" not in f or len(f["config"].attrs) == 0:
        err("/config is missing or has no attributes")
    data = {}
    for name, cols in COLUMNS.items():
        if name not in f:
            err(f"dataset /{name} missing")
            continue
        ds = f[name]
        if f.swmr_mode:
            ds.refresh()
        if ds.ndim != 1 or ds.maxshape != (None,) or ds.chunks is None:
            err(f"/{name}: shape {ds.shape} maxshape {ds.maxshape} chunks {ds.chunks}, expected 1-D chunked unlimited")
        names = ds.dtype.names or ()
        for col, kind in cols.items():
            if col not in names:
                err(f"/{name}: column {col} missing")
                continue
            dt = ds.dtype[col]
            if kind == "A":
                if dt.subdtype is None or dt.subdtype[0] != np.int32 or dt.subdtype[1] != (len(REASONS),):
                    err(f"/{name}.{col}: dtype {dt}, expected int32[{len(REASONS)}]")
            elif kind == "E":
                if dt.subdtype is None or dt.subdtype[0] != np.int32 or dt.subdtype[1] != (MAX_ENVS,):
                    err(f"/{name}.{col}: dtype {dt}, expected int32[{MAX_ENVS}]")
            elif kind == "S":
                if dt.kind != "S" or dt.itemsize != NAME_LEN:
                    err(f"/{name}.{col}: dtype {dt}, expected S{NAME_LEN}")
            elif dt.kind != kind:
                err(f"/{name}.{col}: dtype {dt} (kind {dt.kind}), expected kind {kind}")
        data[name] = ds[...]
    for name, (kind, size) in FLAT.items():
        if name not in f:
            err(f"dataset /{name} missing")
            continue
        ds = f[name]
        if f.swmr_mode:
            ds.refresh()
        if ds.ndim != 1 or ds.maxshape != (None,) or ds.dtype.kind != kind or ds.dtype.itemsize != size:
            err(f"/{name}: dtype {ds.dtype} shape {ds.shape} maxshape {ds.maxshape}, expected 1-D {kind}{size} unlimited")
        data[name] = ds[...]
    if "steps" in f:
        reasons = [as_str(x) for x in f["steps"].attrs.get("reasons", [])]
        if reasons != REASONS:
            err(f"/steps attribute reasons = {reasons}, expected {REASONS}")
    f.close()
    if errors:
        return errors, None

    st, rows = data["steps"], data["trajectories/rows"]
    ids, lps, mask = data["trajectories/ids"], data["trajectories/logprobs"], data["trajectories/mask"]
    text, details = data["trajectories/text"], data["trajectories/details"]
    if steps is not None and len(st) != steps:
        err(f"/steps has {len(st)} rows, expected {steps}")
    if not np.array_equal(st["step"], np.arange(1, len(st) + 1)):
        err(f"/steps.step is not 1..{len(st)} in order: {st['step'][:20].tolist()}")
    for col in ("env_difficulty", "env_difficulty_next"):
        v = st[col]
        if len(v) and not (((v >= 1) & (v <= 100)) | (v == -1)).all():
            err(f"/steps.{col}: values outside 1..100 other than -1")
        if len(v) and ((v[:, 1:] != -1) & (v[:, :-1] == -1)).any():
            err(f"/steps.{col}: a value after a -1 (the environments must come first)")
    if min_traj is not None and len(rows) < min_traj:
        err(f"/trajectories/rows has {len(rows)} rows, expected at least {min_traj}")
    if expect_eval and len(data["eval"]) == 0:
        err("/eval is empty")
    if not (len(ids) == len(lps) == len(mask)):
        err(f"ids / logprobs / mask lengths differ: {len(ids)} / {len(lps)} / {len(mask)}")
    for start, length, flat, what in (("tok_start", "n_tokens", ids, "ids"),
                                      ("text_start", "text_len", text, "text"),
                                      ("details_start", "details_len", details, "details")):
        s = rows[start].astype(np.int64)
        n = rows[length].astype(np.int64)
        if (n < 0).any():
            err(f"trajectory row {int(np.argmax(n < 0))}: negative {length}")
        if (s < 0).any() or (s + n > len(flat)).any():
            bad = int(np.argmax((s < 0) | (s + n > len(flat))))
            err(f"trajectory row {bad}: {start} {s[bad]} + {length} {n[bad]} outside /trajectories/{what} ({len(flat)})")
        expect = np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else n
        if not np.array_equal(s, expect):
            bad = int(np.argmax(s != expect))
            err(f"trajectory row {bad}: {start} {s[bad]}, expected {expect[bad]} (rows not contiguous)")
        if len(n) and int(n.sum()) != len(flat):
            err(f"/trajectories/{what} has {len(flat)} elements, rows address {int(n.sum())}")
        elif not len(n) and len(flat):
            err(f"/trajectories/{what} has {len(flat)} elements but there are no rows")
    if ((rows["n_prompt"] < 0) | (rows["n_prompt"] > rows["n_tokens"])).any():
        err("a trajectory has n_prompt outside 0..n_tokens")
    if len(mask) and not np.isin(mask, (0, 1)).all():
        err(f"mask values other than 0/1: {sorted(set(np.unique(mask).tolist()) - {0, 1})}")
    if not errors:
        for i, r in enumerate(rows):
            try:
                bytes(text[r["text_start"]:r["text_start"] + r["text_len"]]).decode("utf-8")
                d = bytes(details[r["details_start"]:r["details_start"] + r["details_len"]])
                if d:
                    json.loads(d)
            except (UnicodeDecodeError, ValueError) as e:
                err(f"trajectory row {i}: text/details: {e}")
                break
    summary = (f"runlog ok: {len(st)} steps, {len(rows)} trajectories, {len(ids)} tokens, "
               f"{len(data['curriculum'])} curriculum rows, {len(data['eval'])} eval rows")
    return errors, summary


def main():
    ap = argparse.ArgumentParser(description="check a trustee run log (docs/runlog.md)")
    ap.add_argument("path")
    ap.add_argument("--steps", type=int, help="exact number of /steps rows")
    ap.add_argument("--min-traj", type=int, help="at least this many trajectories")
    ap.add_argument("--expect-eval", action="store_true", help="/eval must not be empty")
    a = ap.parse_args()
    try:
        errors, summary = check(a.path, a.steps, a.min_traj, a.expect_eval)
    except (OSError, KeyError, ValueError, TypeError) as e:
        errors, summary = [f"{a.path}: {e}"], None
    if errors:
        for e in errors:
            print(f"runlog FAILED: {a.path}: {e}")
        sys.exit(1)
    print(summary)


if __name__ == "__main__":
    main()
