"""`gestalt run`: a plan file, one goal, or (with neither) the interactive session."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path

import ml_collections

from gestalt_jax.agent import executor
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools.base import Context, Result

PROGRESS_AFTER_S = 1.0  # a step still running after this long is announced


@dataclasses.dataclass
class Options:
    plan: str | None = None
    workspace: str = "."
    allow_writes: bool = False
    allow_meta: bool = False
    json: bool = False
    dry_run: bool = False
    config_file: str = ""


def _fail(message: str, code: int) -> int:
    print(f"gestalt run: {message}", file=sys.stderr)
    return code


def run(c: ml_collections.ConfigDict, workdir: Path, goal: str | None, options: Options) -> int:
    try:
        sandbox = Sandbox(options.workspace, c.agent, allow_writes=options.allow_writes, allow_meta=options.allow_meta)
    except OSError as e:
        return _fail(str(e), 2)
    if not options.json:
        for line in sandbox.missing():
            print(f"[run] {line}; the other layers still apply")
    if options.plan:
        return run_plan_file(c, workdir, goal or "", sandbox, options)
    if goal is not None and not goal.strip():
        return _fail("the goal is empty", 2)
    from gestalt_jax.agent import run_goal
    if not options.json:
        print(f"[run] loading the trained brain, policy and planner from {workdir}", flush=True)
    try:
        agent = run_goal.Agent.load(c, workdir)
    except FileNotFoundError as e:
        return _fail(str(e).replace("\n", "\ngestalt run: "), 1)
    if goal is None:
        from gestalt_jax.agent import session
        return session.run(agent, sandbox, options)
    return run_one(agent, goal, sandbox, options)


def run_one(agent, goal: str, sandbox: Sandbox, options: Options) -> int:
    """One goal through the agent; the report (or --json) on stdout. 0 when no step failed to run."""
    progress = None if options.json else Progress(brief=True)
    out = agent.run(goal, sandbox, config_file=options.config_file, dry_run=options.dry_run,
                    on_decided=progress and progress.decided, on_start=progress and progress.start,
                    on_result=progress and progress.done)
    if options.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"\n{out['response']}\n")
        if out["episode_id"] is not None:
            recalled = f"; recalled episode(s) {', '.join(f'#{i}' for i in out['memory_ids'])}" if out["memory_ids"] else ""
            print(f"[run] remembered as episode #{out['episode_id']}{recalled}")
    return 1 if any(s["status"] == "error" for s in out["steps"]) else 0


def say_decided(decided: dict) -> None:
    from gestalt_jax.agent.run_goal import steps_text
    print(f"[run] intent {decided['intent']} (confidence {decided['confidence']:.2f}); "
          f"plan: {steps_text(decided['plan'])}", flush=True)
    if decided["clause_steps"]:
        read = " -> ".join(t or "(open)" for t in decided["clause_steps"])
        rest = ", the planner chose the open ones" if None in decided["clause_steps"] else ""
        print(f"[run] its clauses read as {read}: the plan takes those tools{rest}", flush=True)
    if not decided["agree"]:
        print(f"[run] the policy proposed {' -> '.join(decided['policy_actions']) or '(nothing)'}; "
              f"following the planner", flush=True)


class Progress:
    """Announces a step still running after PROGRESS_AFTER_S, then prints each step's result."""

    def __init__(self, brief: bool = False):
        self._timer: threading.Timer | None = None
        self.total = 0
        self.brief = brief  # one line per step (the answer that follows quotes the items)

    def decided(self, decided: dict) -> None:
        self.total = len(decided["plan"])
        say_decided(decided)

    def start(self, i: int, step: dict) -> None:
        self._timer = threading.Timer(PROGRESS_AFTER_S, lambda: print(f"[{i}] {step['tool']} running ...", flush=True))
        self._timer.daemon = True
        self._timer.start()

    def done(self, i: int, args: dict, result: Result) -> None:
        if self._timer:
            self._timer.cancel()
        text = executor.describe(i, self.total or i, args, result)
        print(text.splitlines()[0] if self.brief else text, flush=True)


def run_plan_file(c: ml_collections.ConfigDict, workdir: Path, goal: str, sandbox: Sandbox, options: Options) -> int:
    """`gestalt run --plan=FILE [goal]`: the plan's steps through the sandboxed tools."""
    source = "<stdin>" if options.plan == "-" else options.plan
    try:
        text = sys.stdin.read() if options.plan == "-" else Path(options.plan).read_text(encoding="utf-8")
        steps = executor.parse_plan(text, source)
    except (OSError, UnicodeDecodeError, executor.PlanError) as e:
        return _fail(str(e), 2)
    ctx = Context(sandbox, c, workdir, goal=goal, config_file=options.config_file)
    progress = None
    if not options.json:
        progress = Progress()
        progress.total = len(steps)
    done = executor.run_plan(ctx, steps, progress and progress.done, progress and progress.start)
    out = executor.report(ctx, steps, done)
    if options.json:
        print(json.dumps(out, ensure_ascii=False))
    elif not out["ok"]:
        print(f"[run] stopped at step {out['stopped_at']} of {len(steps)}: {done[-1][1].summary}")
    return 0 if out["ok"] else 1
