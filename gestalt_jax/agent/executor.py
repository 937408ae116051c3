"""Executing a plan: `[{"tool": ..., "args": {...}}]`, the planner's form, step by step.

An argument is a string (a span of the goal) or `{"from": k, "pick": n}`: the n-th item (both
1-based) of step k's result, as that argument (a path argument takes the item's path). Execution
stops at the first step whose tool could not run (status "error"); a check that finds problems
(failing tests, broken links) is a result, not a stop.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

from gestalt_jax.agent.memory import MemoryFileError
from gestalt_jax.agent.paths import PathRefused
from gestalt_jax.agent.sandbox import WritesRefused
from gestalt_jax.agent.tools.base import ERROR, Context, Result, ToolError
from gestalt_jax.text import labels

SHOW_ITEMS = 10  # items printed per step; --json has them all


class PlanError(ValueError):
    """A plan that cannot run as written; the message names the source, the step and the key."""


def parse_plan(text: str, source: str) -> list[dict]:
    """The steps of a JSON plan, checked against the label space before anything runs."""
    try:
        steps = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError(f"{source}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from None
    if isinstance(steps, dict) and "steps" in steps:  # the planner's {"steps": [...], "think": ...}
        steps = steps["steps"]
    if not isinstance(steps, list) or not steps:
        raise PlanError(f"{source}: expected a non-empty JSON list of steps "
                        '[{"tool": "SEARCH", "args": {"pattern": "..."}}, ...]')
    for i, step in enumerate(steps, 1):
        where = f"{source}: step {i}"
        if not isinstance(step, dict) or set(step) - {"tool", "args"} or "tool" not in step:
            raise PlanError(f"{where}: expected {{\"tool\": ..., \"args\": {{...}}}}, got {json.dumps(step)}")
        tool, args = step["tool"], step.setdefault("args", {})
        if tool not in labels.TOOLS:
            raise PlanError(f"{where}: unknown tool {tool!r}; tools: {', '.join(labels.TOOLS)}")
        if not isinstance(args, dict):
            raise PlanError(f"{where}: args must be an object, got {json.dumps(args)}")
        allowed = labels.TOOL_ARGS[tool] + (("text",) if tool == "TALK" else ())
        for name, value in args.items():
            if name not in allowed:
                raise PlanError(f"{where}: {tool} takes no argument {name!r}; its arguments: "
                                f"{', '.join(allowed) or 'none'}")
            _check_value(value, f"{where}: args.{name}", i)
    return steps


def _check_value(value, where: str, step: int) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, dict) or set(value) != {"from", "pick"}:
        raise PlanError(f'{where}: expected a string or {{"from": k, "pick": n}}, got {json.dumps(value)}')
    k, n = value["from"], value["pick"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < step:
        earlier = f"1..{step - 1}" if step > 1 else "none: step 1 has no earlier step"
        raise PlanError(f"{where}: 'from' must name an earlier step ({earlier}), got {json.dumps(k)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PlanError(f"{where}: 'pick' must be an item number >= 1, got {json.dumps(n)}")


def run_plan(ctx: Context, steps: Sequence[dict],
             on_result: Callable[[int, dict, Result], None] | None = None,
             on_start: Callable[[int, dict], None] | None = None) -> list[tuple[dict, Result]]:
    """(resolved args, result) per step run, stopping after the first error; `on_start` and
    `on_result` are called around each step (progress on the console)."""
    from gestalt_jax.agent.tools import REGISTRY  # the tools import jax lazily; the registry is cheap
    done: list[tuple[dict, Result]] = []
    for i, step in enumerate(steps, 1):
        tool = step["tool"]
        args: dict[str, str] = {}
        start = time.monotonic()
        if on_start:
            on_start(i, step)
        try:
            for name, value in step["args"].items():
                args[name] = value if isinstance(value, str) else done[value["from"] - 1][1].pick(value["pick"], name)
            result = REGISTRY[tool](ctx, args)
        except (ToolError, PathRefused, WritesRefused, MemoryFileError, FileNotFoundError, PermissionError) as e:
            result = Result(tool, ERROR, str(e))
        result.seconds = time.monotonic() - start
        done.append((args, result))
        if on_result:
            on_result(i, args, result)
        if result.status == ERROR:
            break
    return done


def step_text(tool: str, args: dict) -> str:
    """SEARCH pattern='x': a step with its resolved arguments."""
    return " ".join([tool] + [f"{k}={v!r}" for k, v in args.items()])


def describe(i: int, total: int, args: dict, result: Result) -> str:
    """A step's result for the console: the summary, the first items, where output was cut."""
    lines = [f"[{i}/{total}] {step_text(result.tool, args)} -> {result.status}: {result.summary}"]
    for item in result.items[:SHOW_ITEMS]:
        lines.append(f"    {len(lines)}. {item.shown()}")
    if len(result.items) > SHOW_ITEMS:
        lines.append(f"    ... {len(result.items) - SHOW_ITEMS} more (--json lists them all)")
    return "\n".join(lines)


def report(ctx: Context, steps: Sequence[dict], done: list[tuple[dict, Result]]) -> dict:
    """The run as one JSON object (gestalt run --json)."""
    stopped = next((i for i, (_, r) in enumerate(done, 1) if r.status == ERROR), None)
    return dict(workspace=str(ctx.sandbox.root), sandbox=ctx.sandbox.layers(),
                allow_writes=ctx.sandbox.allow_writes, allow_meta=ctx.sandbox.allow_meta,
                ok=stopped is None, stopped_at=stopped, planned=len(steps),
                steps=[dict(step=i, args=a, **r.to_json()) for i, (a, r) in enumerate(done, 1)])
