"""EVAL and TRAIN: gestalt itself, in a sandboxed subprocess, only with --allow_meta.

Both run with the config file the agent was started with and write only to the run's workdir
(and the XLA compile cache); the workspace stays as the sandbox has it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gestalt_jax import config as config_lib
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, Item, Result, ToolError

_SUMMARY_PREFIX = "[summary]"


def _gestalt(ctx: Context, command: str, *extra: str):
    if not ctx.sandbox.allow_meta:
        raise ToolError(f"{command.upper()} runs gestalt itself; refused without --allow_meta")
    if not ctx.config_file:
        raise ToolError(f"{command.upper()} needs the --config file the agent was started with")
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    writable = [ctx.workdir.resolve()]
    cache = ctx.config.compile_cache
    if cache:
        cache_dir = Path(cache).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        writable.append(cache_dir.resolve())
    argv = [sys.executable, "-m", "gestalt_jax.main", command, f"--config={Path(ctx.config_file).resolve()}",
            f"--workdir={ctx.workdir.resolve()}", *extra]
    # The scrubbed environment drops PYTHONPATH: name the package's own root for a source checkout.
    return ctx.sandbox.run(argv, timeout_s=ctx.agent.meta_timeout_s, extra_writable=writable,
                           env={"PYTHONPATH": str(config_lib.REPO_ROOT)})


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _timed_out(tool: str, ctx: Context, done) -> Result:
    return Result(tool, ERROR, f"gestalt timed out after {done.seconds:.0f} s "
                  f"(config.agent.meta_timeout_s={ctx.agent.meta_timeout_s:g})", excerpt=ctx.excerpt(done.output))


def evaluate(ctx: Context, args: dict[str, str]) -> Result:
    """`gestalt eval --json`: one item per goal bench (action accuracies) and the talk metrics."""
    done = _gestalt(ctx, "eval", "--json")
    if done.timed_out:
        return _timed_out("EVAL", ctx, done)
    lines = done.output.strip().splitlines()
    scores = {}
    if done.ok and lines:
        try:
            scores = json.loads(lines[-1])
        except json.JSONDecodeError:
            scores = {}
    if not done.ok or not isinstance(scores, dict):
        return Result("EVAL", FAILED, f"gestalt eval exited {done.returncode}: {_last_line(done.output)}",
                      excerpt=ctx.excerpt(done.output), data=dict(returncode=done.returncode))
    items = []
    for bench, m in scores.items():
        if bench == "talk":
            items.append(Item(f"talk: train_exact {m.get('train_exact')}, held-out ranked chrF "
                              f"{m.get('held_out_ranked_chrf')}"))
        else:
            items.append(Item(f"{bench}: n={m['n']}, intent {m['intent_acc']}, planner {m['planner_actions_acc']}, "
                              f"policy {m['policy_actions_acc']}"))
    return Result("EVAL", OK, f"evaluated {len(items)} bench(es) in {done.seconds:.0f} s", items,
                  ctx.excerpt(done.output), dict(scores=scores, sandbox_missing=ctx.sandbox.missing()))


def train(ctx: Context, args: dict[str, str]) -> Result:
    """`gestalt train` of every phase into the run's workdir: items are its summary lines."""
    done = _gestalt(ctx, "train")
    if done.timed_out:
        return _timed_out("TRAIN", ctx, done)
    summary = [line[len(_SUMMARY_PREFIX):].strip() for line in done.output.splitlines()
               if line.startswith(_SUMMARY_PREFIX)]
    status = OK if done.ok else FAILED
    head = (f"trained in {done.seconds:.0f} s" if done.ok
            else f"gestalt train exited {done.returncode}: {_last_line(done.output)}")
    return Result("TRAIN", status, head, [Item(s) for s in summary], ctx.excerpt(done.output),
                  dict(returncode=done.returncode, sandbox_missing=ctx.sandbox.missing()))


TOOLS = {"EVAL": evaluate, "TRAIN": train}
