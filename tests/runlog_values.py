#!/usr/bin/python3
"""runlog_values.py RUN.h5 N: the file holds exactly the formula rows of steps 1..N that
tests/runlog_formula.h writes (formulas re-derived here independently), nothing more or less.
Also checks the /config attributes of formula_config(). Prints "values ok: ..." or the mismatches."""
import json
import sys

import h5py
import numpy as np

path, N = sys.argv[1], int(sys.argv[2])
ENVS = ["airline", "retail", "bank_of_a_very_long_name_31char"]
PHASES = ["init", "grpo", "step"]
TRAJ, TASKS, EVALS = 4, 2, 1
bad = []


def eq(what, got, want):
    if isinstance(want, float):
        ok = float(got) == want  # every formula value is computed the same way in C: exact
    elif isinstance(want, str):
        ok = (got.decode() if isinstance(got, bytes) else got) == want
    else:
        ok = np.array_equal(np.asarray(got), np.asarray(want))
    if not ok:
        bad.append(f"{what}: got {got!r}, want {want!r}")


try:
    f = h5py.File(path, "r")
except OSError:  # being written, or left marked open by a crash
    f = h5py.File(path, "r", libver="latest", swmr=True)
st, cu, ev = f["steps"][...], f["curriculum"][...], f["eval"][...]
rows = f["trajectories/rows"][...]
ids, lps, mask = f["trajectories/ids"][...], f["trajectories/logprobs"][...], f["trajectories/mask"][...]
text, details = f["trajectories/text"][...], f["trajectories/details"][...]
cfg = dict(f["config"].attrs)
eq("rows in /steps", len(st), N)
eq("rows in /curriculum", len(cu), N * TASKS)
eq("rows in /eval", len(ev), N * EVALS)
eq("rows in /trajectories/rows", len(rows), N * TRAJ)

# /config from formula_config(): {"steps":4,"lr":1e-6,"model":"runs/demo/model","use_memo":true,
# "layers":[1,2],"judge":null,"empty":""}
eq("config keys", sorted(cfg), sorted(["steps", "lr", "model", "use_memo", "layers", "judge", "empty"]))
eq("config steps", int(cfg["steps"]), 4)
eq("config steps dtype", cfg["steps"].dtype, np.int64)
eq("config lr", float(cfg["lr"]), 1e-6)
eq("config lr dtype", cfg["lr"].dtype, np.float64)
eq("config model", cfg["model"], "runs/demo/model")
eq("config use_memo", int(cfg["use_memo"]), 1)
eq("config layers", json.loads(cfg["layers"]), [1, 2])
eq("config judge", cfg["judge"], "null")
eq("config empty", cfg["empty"], "")

for k in range(min(len(st), N)):
    i = k + 1
    r = st[k]
    want = dict(step=i, policy_version=i - 1, difficulty=i % 3, difficulty_next=(i + 1) % 3,
                mean_reward=0.25 * i - 0.5, success_rate=i / 100.0, loss=1.5 * i, pg_loss=-0.125 * i,
                kl=0.001 * i, clip_frac=0.01 * i, entropy=2.0 + 0.5 * i, ratio_min=1.0 - 0.01 * i,
                ratio_max=1.0 + 0.02 * i, lp_gap_max=0.003 * i, grad_norm=10.0 + i, lr=1e-6 * i,
                optim_skipped=int(i == 2), n_traj=TRAJ, n_groups_kept=i % 4, tokens=100 * i,
                total_tokens=150 * i, aborted=[i * 10 + j for j in range(5)], t_rollout=0.5 * i,
                t_sim=0.25 * i, t_train=0.125 * i, t_sync=0.0625 * i,
                t_step=0.5 * i + 0.125 * i + 0.0625 * i, tokens_per_s=1000.0 * i, wall=1.7e9 + i)
    want["env_difficulty"] = [1 + (i * 7 + e) % 100 if e < 5 else -1 for e in range(16)]
    want["env_difficulty_next"] = [1 + (i * 11 + e) % 100 if e < 5 else -1 for e in range(16)]
    for col, w in want.items():
        eq(f"/steps[{k}].{col}", r[col], w)

for j in range(min(len(cu), N * TASKS)):
    r = cu[j]
    want = dict(step=j // TASKS + 1, task_id=1000 + j, group=j % TASKS, env=ENVS[j % 3],
                seed=0xABCDEF0000000000 + j, difficulty=j % 5, soft=j % 2, tools_available=3 + j,
                expected_calls=j % 4, expected_turns=2 + j % 3, system_prompt=j % 2, persona=j % 6,
                ambiguity=j % 3, judge_strictness=j % 4, distractors=j % 5, mean_reward=0.1 * j,
                success_rate=0.05 * j)
    for col, w in want.items():
        eq(f"/curriculum[{j}].{col}", r[col] if col != "seed" else int(r[col]), w)

for e in range(min(len(ev), N * EVALS)):
    r = ev[e]
    want = dict(step=e + 1, phase=PHASES[e % 3], env="all" if e % 2 else ENVS[e % 3], difficulty=e,
                n=10 + e, successes=e, mean_reward=-0.2 * e)
    for col, w in want.items():
        eq(f"/eval[{e}].{col}", r[col], w)

tok = txt = det = 0
for t in range(min(len(rows), N * TRAJ)):
    r = rows[t]
    n, n_prompt = 5 + (t * 7) % 11, 2 + t % 3
    s_text = "" if t % 4 == 3 else f"traj {t}: café <tool_call>"
    s_det = '{"t":%d}' % t
    want = dict(step=t // TRAJ + 1, task_id=1000 + t // 2, group=(t // 2) % 2, index=t % 2,
                policy_version=t // TRAJ, eval=int(t % 7 == 0), env=ENVS[t % 3], difficulty=t % 5,
                reward=float(np.float32(0.5 * (t % 3) - 0.5)), score=float(np.float32(0.25 * (t % 5))),
                turns=t % 4 + 1, tool_calls=t % 3, abort=t % 5, truncated=int(t % 5 in (2, 3)),
                tok_start=tok, n_tokens=n, n_prompt=n_prompt, text_start=txt,
                text_len=len(s_text.encode()), details_start=det, details_len=len(s_det))
    for col, w in want.items():
        eq(f"/trajectories/rows[{t}].{col}", r[col], w)
    m = np.array([int(k >= n_prompt and k % 3 != 0) for k in range(n)], dtype=np.uint8)
    eq(f"traj {t} ids", ids[tok:tok + n], np.arange(n) + t * 1000)
    eq(f"traj {t} mask", mask[tok:tok + n], m)
    eq(f"traj {t} logprobs", lps[tok:tok + n], np.where(m == 1, -0.125 * (np.arange(n) % 8), 0.0).astype(np.float32))
    eq(f"traj {t} text", bytes(text[txt:txt + len(s_text.encode())]).decode(), s_text)
    eq(f"traj {t} details", bytes(details[det:det + len(s_det)]).decode(), s_det)
    tok, txt, det = tok + n, txt + len(s_text.encode()), det + len(s_det)
eq("/trajectories/ids length", len(ids), tok)
eq("/trajectories/text length", len(text), txt)
eq("/trajectories/details length", len(details), det)
f.close()
if bad:
    for b in bad[:30]:
        print("values FAILED:", path, b)
    print(f"values FAILED: {len(bad)} mismatches")
    sys.exit(1)
print(f"values ok: {path}: {N} steps, {len(rows)} trajectories, {tok} tokens, every value as the formula")
