"""`gestalt run "<goal>"`: the trained brain, policy and planner turn a goal into tool steps, the
executor runs them in the sandbox, the answer is built from their results, and the episode is
remembered.

    goal -> concept (brain encoder) -> policy (intent, actions, confidence)
         -> planner (FSM-constrained plan following the policy's intent, as `gestalt eval` scores it)
         -> executor (arguments resolved: goal spans, FROM k PICK n) -> answer -> episodic memory

The answer states what was done and what came of it with every fact taken from the tools'
results; a conversational goal (a plan of one TALK) is answered by the brain, with the episodes
recalled for it on the decoder's cross-attention path. When the policy's actions and the planner's
tools differ, the run says so and follows the planner.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np

from gestalt_jax.agent import executor, memory as memory_lib
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import talk as talk_tool
from gestalt_jax.agent.tools.base import ERROR, OK, Context, Result
from gestalt_jax.infer import trained as trained_lib

SCHEMA_FILE = Path(__file__).with_name("run_schema.json")
ANSWER_ITEMS = 3  # items of a step quoted in the answer


def steps_text(steps: list[dict]) -> str:
    """SEARCH pattern='x' -> READ_FILE path=FROM 1 PICK 1"""
    def arg(v):
        return f"FROM {v['from']} PICK {v['pick']}" if isinstance(v, dict) else repr(v)
    return " -> ".join(s["tool"] + "".join(f" {k}={arg(v)}" for k, v in s["args"].items()) for s in steps) or "(none)"


@dataclasses.dataclass
class Agent:
    """The trained components of a workdir, loaded once, and its episodic memory."""
    config: ml_collections.ConfigDict
    workdir: Path
    brain: trained_lib.TrainedBrain
    planner: trained_lib.Trained
    policy: trained_lib.Trained
    memory: memory_lib.MemoryStore

    @classmethod
    def load(cls, cli: ml_collections.ConfigDict, workdir: str | Path) -> "Agent":
        """FileNotFoundError naming every component that is not trained, one line each."""
        missing = [str(trained_lib.NotTrained(name, workdir)) for name in trained_lib.COMPONENTS
                   if not trained_lib.is_trained(workdir, name)]
        if missing:
            raise FileNotFoundError("\n".join(missing))
        from gestalt_jax.train import mesh as mesh_lib
        mesh = mesh_lib.make_mesh(cli)
        parts = {name: trained_lib.load(cli, workdir, name, mesh) for name in trained_lib.COMPONENTS}
        return cls(cli, Path(workdir), parts["brain"], parts["planner"], parts["policy"],
                   memory_lib.MemoryStore.from_config(workdir, cli.agent))

    def decide(self, goal: str) -> dict:
        """The policy's prediction and the planner's plan for `goal` (infer/decide.py, as eval scores them)."""
        from gestalt_jax.infer.decide import decide
        plans, predicted = decide(self.planner, self.policy, [goal], 1)
        plan, predicted = plans[0]["steps"], predicted[0]
        return dict(intent=predicted["intent"], confidence=round(predicted["confidence"], 4),
                    policy_actions=[s["tool"] for s in predicted["steps"]], clause_steps=predicted["clause_steps"],
                    plan=plan,
                    agree=[s["tool"] for s in predicted["steps"]] == [s["tool"] for s in plan])

    def context(self, sandbox: Sandbox, goal: str, config_file: str) -> Context:
        return Context(sandbox, self.config, self.workdir, goal=goal, config_file=config_file,
                       services=dict(brain=self.brain, memory=self.memory, concept=self.brain.concept))

    def run(self, goal: str, sandbox: Sandbox, *, config_file: str = "", dry_run: bool = False,
            on_decided: Callable[[dict], None] | None = None,
            on_start: Callable[[int, dict], None] | None = None,
            on_result: Callable[[int, dict, Result], None] | None = None) -> dict:
        """The run as the JSON object `gestalt run --json` prints (run_schema.json)."""
        decided = self.decide(goal)
        if on_decided:
            on_decided(decided)
        ctx = self.context(sandbox, goal, config_file)
        # Before this run is stored: it must not recall itself.
        memory_ids = [] if dry_run else talk_tool.recall(ctx, goal)[0]
        done = [] if dry_run else executor.run_plan(ctx, decided["plan"], on_result, on_start)
        response = answer(decided["plan"], done, dry_run)
        out = dict(goal=goal, **decided, dry_run=dry_run,
                   steps=[_step_json(ctx, a, r) for a, r in done], response=response,
                   memory_ids=memory_ids, episode_id=None)
        if not dry_run:
            concept, brain = self.brain.concept(goal)
            out["episode_id"] = self.memory.add(
                goal, concept=concept, brain=brain, plan=decided["plan"], outcome=outcome(done),
                response=response, success=bool(done) and all(r.status != ERROR for _, r in done))
        return out


def _step_json(ctx: Context, args: dict, r: Result) -> dict:
    lines = [r.summary] + [i.shown() for i in r.items[:executor.SHOW_ITEMS]]
    output = ctx.excerpt("\n".join(lines) + (f"\n{r.excerpt}" if r.excerpt else ""))
    return dict(tool=r.tool, args=args, status=r.status, output=output, duration_s=round(r.seconds, 3),
                items=[i.to_json() for i in r.items], data=r.data)


def outcome(done: list[tuple[dict, Result]]) -> str:
    """One line per step: the tool and its status and summary (what memory keeps of the run)."""
    return "\n".join(f"{r.tool} {r.status}: {r.summary}" for _, r in done)


def answer(plan: list[dict], done: list[tuple[dict, Result]], dry_run: bool) -> str:
    """What was done and what came of it, every fact from the results; a lone TALK's reply as is."""
    if dry_run:
        return f"Planned (not run: --dry_run): {steps_text(plan)}"
    if len(done) == 1 and done[0][1].tool == "TALK" and done[0][1].status == OK:
        return done[0][1].summary
    lines = []
    for i, (args, r) in enumerate(done, 1):
        line = f"{i}. {executor.step_text(r.tool, args)}: {r.summary}"
        if r.tool != "TALK" and r.items:
            line += "\n" + "\n".join(f"   - {item.shown()}" for item in r.items[:ANSWER_ITEMS])
            if len(r.items) > ANSWER_ITEMS:
                line += f"\n   - ... {len(r.items) - ANSWER_ITEMS} more"
        lines.append(line)
    if done and done[-1][1].status == ERROR:
        lines.append(f"Stopped at step {len(done)} of {len(plan)}: {done[-1][1].summary}")
    return "\n".join(lines)


def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
