"""Scoring planner and policy predictions against labelled goals (the bench format).

A bench is a goals file (datasets/goals/README.md). Per goal: the policy's intent, the
planner's and the policy's action sequences (exact match), their arguments (every labelled
argument equal; arguments a record does not give are not scored), whether the plan parsed,
and whether planner and policy agree on the actions.
"""

from __future__ import annotations

from typing import Sequence

from gestalt_jax.data import examples

METRICS = ("intent_acc", "planner_actions_acc", "policy_actions_acc", "args_acc", "policy_args_acc",
           "parse_rate", "agreement")


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


def score(records: Sequence[dict], plans: Sequence[dict | None], policy: Sequence[dict]) -> tuple[dict, list]:
    """(metrics, failures): metrics are fractions in [0, 1] plus `n` and `n_args` (goals with
    labelled arguments; the args scores are None when there are none); a failure names the goal, what went wrong and both predictions.
    `plans[i]` is None when the planner's output did not parse."""
    hits = dict.fromkeys(METRICS, 0)
    n_args, failures = 0, []
    for r, plan, pol in zip(records, plans, policy, strict=True):
        plan_steps = None if plan is None else plan["steps"]
        checks = dict(intent_acc=pol["intent"] == r["intent"],
                      planner_actions_acc=actions(plan_steps) == r["actions"],
                      policy_actions_acc=actions(pol["steps"]) == r["actions"],
                      parse_rate=plan is not None,
                      agreement=actions(plan_steps) == actions(pol["steps"]))
        planner_args, policy_args = args_match(r, plan_steps), args_match(r, pol["steps"])
        if planner_args is not None:
            n_args += 1
            checks.update(args_acc=planner_args, policy_args_acc=policy_args)
        for k, ok in checks.items():
            hits[k] += bool(ok)
        wrong = [k for k, ok in checks.items() if not ok]
        if wrong:
            failures.append(dict(goal=r["goal"], where=examples.where(r), wrong=wrong,
                                 expected=dict(intent=r["intent"], steps=examples.goal_steps(r)),
                                 planner=plan_steps, policy=pol))
    n = len(records)
    # No labelled arguments: the argument scores are None, not a misleading 0 or 1.
    metrics = {k: (hits[k] / n_args if n_args else None) if k.endswith("args_acc") else hits[k] / max(n, 1)
               for k in METRICS}
    return dict(n=n, n_args=n_args, **metrics), failures


def steps_text(steps: Sequence[dict] | None) -> str:
    """One-line plan, e.g. `SEARCH(pattern="TODO") ; READ_FILE(path=FROM 1 PICK 1)`."""
    if steps is None:
        return "<unparsed>"

    def value(v):
        return f"FROM {v['from']} PICK {v['pick']}" if isinstance(v, dict) else repr(v)
    return " ; ".join(s["tool"] + (f"({', '.join(f'{k}={value(v)}' for k, v in s['args'].items())})"
                                   if s["args"] else "") for s in steps)
