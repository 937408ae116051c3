"""Scoring planner and policy predictions against labelled goals (the bench format).

A bench is a goals file (datasets/goals/README.md). Per goal: the policy's intent, the
planner's and the policy's action sequences (exact match), their arguments (every labelled
argument equal; arguments a record does not give are not scored), whether every argument of
their plans resolves to a value its tool accepts (`resolves`), whether the plan parsed, and
whether planner and policy agree on the actions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from gestalt_jax.agent import paths
from gestalt_jax.agent.tools import FILE_ITEMS, proofs
from gestalt_jax.agent.tools.base import ToolError
from gestalt_jax.data import examples
from gestalt_jax.text import labels
from gestalt_jax.text.plan_vocab import NUM_PICKS

METRICS = ("intent_acc", "planner_actions_acc", "policy_actions_acc", "args_acc", "policy_args_acc",
           "args_resolve", "policy_args_resolve", "parse_rate", "agreement")
# The goals each score counts (the others count all n).
_COUNTED = dict(args_acc="n_args", policy_args_acc="n_args", args_resolve="n_arg_tools",
                policy_args_resolve="n_arg_tools")
# Arguments a step cannot run without (LIST_FILES lists the workspace root without its path).
_REQUIRED = dict(labels.TOOL_ARGS, LIST_FILES=())


def actions(steps: Sequence[dict] | None) -> list[str] | None:
    return None if steps is None else [s["tool"] for s in steps]


def args_match(record: dict, steps: Sequence[dict] | None) -> bool | None:
    """Whether every argument the record labels is predicted exactly (None: nothing labelled)."""
    labelled = [(i, name, value) for i, step_args in enumerate(record.get("args") or [])
                for name, value in step_args.items()]
    if not labelled:
        return None
    steps = steps or []
    return all(i < len(steps) and steps[i]["args"].get(name) == value for i, name, value in labelled)


def build_workspace(records: Sequence[dict], root: Path) -> None:
    """Creates under `root` every path the records label (a directory for LIST_FILES, an empty file
    for the other tools) where the agent's resolver places it; a path it refuses is left out."""
    labelled = [(tool, step_args["path"].strip()) for r in records
                for tool, step_args in zip(r["actions"], r.get("args") or [])
                if isinstance(step_args.get("path"), str)]
    for tool, path in sorted(labelled, key=lambda x: x[0] != "LIST_FILES"):  # directories first
        try:
            place = paths.confine(root, path, must_exist=False)
            if tool == "LIST_FILES":
                place.mkdir(parents=True, exist_ok=True)
            elif not place.exists():
                place.parent.mkdir(parents=True, exist_ok=True)
                place.touch()
        except (paths.PathRefused, OSError):  # refused, or under a path labelled as a file
            continue


def _span_resolves(tool: str, name: str, span: str, root: Path) -> bool:
    """A path the agent's resolver accepts and finds in workspace `root`; equation sides that
    PROVE_ALGEBRA parses; any other text non-empty."""
    text = span.strip()
    try:
        if name == "path":  # stripped as the file tools strip it; LIST_FILES takes blank as the root
            return bool(paths.confine(root, text or ("." if tool == "LIST_FILES" else "")))
        if name in ("lhs", "rhs"):
            proofs.parse_side(name, text)
    except (paths.PathRefused, ToolError):
        return False
    return bool(text)


def _step_resolves(steps: Sequence[dict], i: int, root: Path) -> bool:
    """Whether step i (1-based) has the arguments its tool needs and each resolves. A pick needs an
    earlier step and n in 1..NUM_PICKS; every tool's result can hold items, but only FILE_ITEMS
    tools' items name files, so only their items can feed a path."""
    tool, args = steps[i - 1]["tool"], steps[i - 1]["args"]
    if tool == "PROVE_ALGEBRA" and all(isinstance(v, str) for v in args.values()):
        try:  # lhs alone may be "A = B", as the tool reads it
            args = dict(zip(("lhs", "rhs"), proofs.sides(args)))
        except ToolError:
            return False
    if any(name not in args for name in _REQUIRED[tool]):
        return False
    return all(1 <= v["from"] < i and 1 <= v["pick"] <= NUM_PICKS
               and (name != "path" or steps[v["from"] - 1]["tool"] in FILE_ITEMS)
               if isinstance(v, dict) else _span_resolves(tool, name, v, root) for name, v in args.items())


def resolves(steps: Sequence[dict] | None, root: Path) -> bool:
    """Whether every argument of every step resolves against workspace `root` (False: unparsed)."""
    return steps is not None and all(_step_resolves(steps, i, root) for i in range(1, len(steps) + 1))


def score(records: Sequence[dict], plans: Sequence[dict | None], policy: Sequence[dict]) -> tuple[dict, list]:
    """(metrics, failures): metrics are fractions in [0, 1] plus `n`, `n_args` (goals with
    labelled arguments: args_acc counts them) and `n_arg_tools` (goals whose plan has a tool that
    takes arguments: args_resolve counts them, against a workspace built from the records' paths);
    a score is None when it counts no goal. A failure names the goal, what went wrong and both
    predictions. `plans[i]` is None when the planner's output did not parse."""
    hits = dict.fromkeys(METRICS, 0)
    counts = dict(n=len(records), n_args=0, n_arg_tools=0)
    failures = []
    with tempfile.TemporaryDirectory() as directory:  # the bench's test workspace
        root = paths.workspace_root(directory)
        build_workspace(records, root)
        resolved = [(resolves(None if plan is None else plan["steps"], root), resolves(pol["steps"], root))
                    for plan, pol in zip(plans, policy, strict=True)]
    for r, plan, pol, (planner_resolves, policy_resolves) in zip(records, plans, policy, resolved, strict=True):
        plan_steps = None if plan is None else plan["steps"]
        checks = dict(intent_acc=pol["intent"] == r["intent"],
                      planner_actions_acc=actions(plan_steps) == r["actions"],
                      policy_actions_acc=actions(pol["steps"]) == r["actions"],
                      parse_rate=plan is not None,
                      agreement=actions(plan_steps) == actions(pol["steps"]))
        planner_args, policy_args = args_match(r, plan_steps), args_match(r, pol["steps"])
        if planner_args is not None:
            counts["n_args"] += 1
            checks.update(args_acc=planner_args, policy_args_acc=policy_args)
        if any(labels.TOOL_ARGS[tool] for tool in r["actions"]):
            counts["n_arg_tools"] += 1
            checks.update(args_resolve=planner_resolves, policy_args_resolve=policy_resolves)
        for k, ok in checks.items():
            hits[k] += bool(ok)
        wrong = [k for k, ok in checks.items() if not ok]
        if wrong:
            failures.append(dict(goal=r["goal"], where=examples.where(r), wrong=wrong,
                                 expected=dict(intent=r["intent"], steps=examples.goal_steps(r)),
                                 planner=plan_steps, policy=pol))
    # No goal with arguments: the argument scores are None, not a misleading 0 or 1.
    metrics = {k: (hits[k] / counts[_COUNTED[k]] if counts[_COUNTED[k]] else None) if k in _COUNTED
               else hits[k] / max(counts["n"], 1) for k in METRICS}
    return dict(counts, **metrics), failures


def steps_text(steps: Sequence[dict] | None) -> str:
    """One-line plan, e.g. `SEARCH(pattern="TODO") ; READ_FILE(path=FROM 1 PICK 1)`."""
    if steps is None:
        return "<unparsed>"

    def value(v):
        return f"FROM {v['from']} PICK {v['pick']}" if isinstance(v, dict) else repr(v)
    return " ; ".join(s["tool"] + (f"({', '.join(f'{k}={value(v)}' for k, v in s['args'].items())})"
                                   if s["args"] else "") for s in steps)
