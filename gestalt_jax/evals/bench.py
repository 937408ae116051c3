"""`gestalt eval` on goals: the trained planner and policy on the built-in benches and user benches.

Built-in benches: `train` and `val` (the seeded split of config.data.goals_file that training
used) and `held_out` (config.data.goals_held_out: phrasings never trained on). Any
`--bench=FILE.jsonl` in the same format is scored too, under its file name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import ml_collections

from gestalt_jax.data import examples
from gestalt_jax.evals import goals as goal_scores
from gestalt_jax.infer import trained
from gestalt_jax.infer.decide import decide
from gestalt_jax.train import loop, phases
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train.metrics import log

# The scores `gestalt eval --json` prints per bench (with n), as documented in the README.
JSON_METRICS = ("intent_acc", "planner_actions_acc", "policy_actions_acc", "args_acc", "args_resolve",
                "parse_rate", "agreement")
SHOW_FAILURES = 5  # per bench on the console; all of them go to the workdir


def builtin_benches(c: ml_collections.ConfigDict, spec: phases.PhaseSpec) -> dict[str, list[dict]]:
    """train and val exactly as the goal phase `spec` split them (its first source is the train
    part of config.data.goals_file), and held_out."""
    benches = dict(train=spec.sources[0][0], val=spec.val)
    if c.data.goals_held_out:
        benches["held_out"] = examples.load_goals(c.data.goals_held_out)
    return benches


def user_benches(files: Sequence[str], taken: Sequence[str]) -> dict[str, list[dict]]:
    """Each file under its stem (made unique against `taken` and each other)."""
    out = {}
    for f in files:
        name = Path(f).stem
        while name in out or name in taken:
            name += "_"
        out[name] = examples.load_goals(f)
    return out


def evaluate(c: ml_collections.ConfigDict, workdir: str | Path, bench_files: Sequence[str] = (),
             builtin: bool = True) -> dict:
    """Scores per bench ({bench: metrics}); writes workdir/eval/goals.json and
    workdir/eval/failures_<bench>.jsonl, and prints a table and the first failures."""
    workdir = Path(workdir)
    mesh = mesh_lib.make_mesh(c)
    models = {name: trained.load(c, workdir, name, mesh) for name in ("planner", "policy")}
    planner = models["planner"]
    benches = builtin_benches(planner.config, planner.spec) if builtin else {}
    benches.update(user_benches(bench_files, list(benches)))
    with mesh_lib.activate(mesh):
        out_dir = workdir / "eval"
        out_dir.mkdir(parents=True, exist_ok=True)
        results = {}
        for name, records in benches.items():
            t = time.time()
            plans, policy = decide(planner, models["policy"], [r["goal"] for r in records], c.eval.batch_size)
            metrics, failures = goal_scores.score(records, plans, policy)
            metrics["seconds"] = round(time.time() - t, 1)
            results[name] = metrics
            with open(out_dir / f"failures_{name}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in failures)
            _show_failures(name, failures)
    loop.write_json(out_dir / "goals.json", results)
    log(table(results))
    log(f"[eval] per-goal failures in {out_dir}/failures_<bench>.jsonl; summary in {out_dir / 'goals.json'}")
    return results


def _show_failures(bench: str, failures: list[dict]) -> None:
    for x in failures[:SHOW_FAILURES]:
        log(f"[eval:{bench}] {x['where']} {x['goal']!r} wrong: {', '.join(x['wrong'])}\n"
            f"    expected {x['expected']['intent']}: {goal_scores.steps_text(x['expected']['steps'])}\n"
            f"    planner  {goal_scores.steps_text(x['planner'])}\n"
            f"    policy   {x['policy']['intent']}: {goal_scores.steps_text(x['policy']['steps'])}")
    if len(failures) > SHOW_FAILURES:
        log(f"[eval:{bench}] ... {len(failures) - SHOW_FAILURES} more failures")


_COLUMNS = (("n", "n"), ("intent", "intent_acc"), ("planner", "planner_actions_acc"),
            ("policy", "policy_actions_acc"), ("args", "args_acc"), ("pol.args", "policy_args_acc"),
            ("resolve", "args_resolve"), ("pol.res", "policy_args_resolve"), ("parse", "parse_rate"),
            ("agree", "agreement"))


def table(results: dict[str, dict]) -> str:
    """Markdown table: one row per bench, accuracies in percent."""
    head = "| bench | " + " | ".join(c for c, _ in _COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(_COLUMNS) + 1)]
    for name, m in results.items():
        cells = [str(m["n"])] + ["-" if m[k] is None else f"{100 * m[k]:.1f}" for _, k in _COLUMNS[1:]]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
