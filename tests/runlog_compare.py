#!/usr/bin/python3
"""Compares two trustee run logs row by row, bit for bit, except the timing columns.

usage: runlog_compare.py A.h5 B.h5 [--ignore-config KEY ...]

Timing columns (/steps: t_rollout t_sim t_train t_sync t_step tokens_per_s wall) differ between
any two runs and are skipped; everything else must be identical: every row of /steps,
/curriculum, /eval, /trajectories/rows and every element of the flat trajectory datasets.
/config attributes are compared too, except run_dir and the keys given with --ignore-config.
Prints one line per dataset and exits 1 on the first difference.
"""
import sys

import h5py
import numpy as np

TIMING = {"t_rollout", "t_sim", "t_train", "t_sync", "t_step", "tokens_per_s", "wall"}


def open_log(path):
    return h5py.File(path, "r", libver="latest", swmr=True)


def main():
    args = sys.argv[1:]
    ignore = {"run_dir"}
    if "--ignore-config" in args:
        i = args.index("--ignore-config")
        ignore |= set(args[i + 1:])
        args = args[:i]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = open_log(args[0]), open_log(args[1])
    bad = 0
    ca, cb = dict(a["config"].attrs), dict(b["config"].attrs)
    for k in sorted(set(ca) | set(cb)):
        if k in ignore:
            continue
        if k not in ca or k not in cb or np.any(ca[k] != cb[k]):
            print(f"/config {k}: {ca.get(k)!r} != {cb.get(k)!r}")
            bad = 1
    for name in ["steps", "curriculum", "eval", "trajectories/rows"]:
        da, db = a[name][()], b[name][()]
        if da.shape != db.shape:
            print(f"/{name}: {da.shape[0]} rows != {db.shape[0]} rows")
            bad = 1
            continue
        cols = [c for c in da.dtype.names if c not in TIMING]
        diff = [c for c in cols if da[c].tobytes() != db[c].tobytes()]
        if diff:
            rows = sorted({int(i) for c in diff for i in np.nonzero(
                (da[c] != db[c]).reshape(len(da), -1).any(axis=1))[0]})
            print(f"/{name}: columns {diff} differ (rows {rows[:10]})")
            bad = 1
        else:
            print(f"/{name}: {len(da)} rows identical ({len(cols)} columns compared)")
    for name in ["ids", "logprobs", "mask", "text", "details"]:
        da, db = a["trajectories/" + name][()], b["trajectories/" + name][()]
        if da.shape != db.shape or da.tobytes() != db.tobytes():
            n = min(len(da), len(db))
            first = int(np.nonzero(da[:n] != db[:n])[0][0]) if np.any(da[:n] != db[:n]) else n
            print(f"/trajectories/{name}: {len(da)} vs {len(db)} elements, first difference at {first}")
            bad = 1
        else:
            print(f"/trajectories/{name}: {len(da)} elements identical")
    print("run logs identical (timing columns aside)" if not bad else "run logs DIFFER")
    return bad


if __name__ == "__main__":
    sys.exit(main())
