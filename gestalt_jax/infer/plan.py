"""Plans for goals from a trained planner: FSM-constrained greedy decoding in one compiled loop.

Prompts are right-padded into one [B, max_len] buffer; each decode step runs the planner
over the buffer and reads the logits at every row's own next position, so goals of any
length share one batch and one compiled loop.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from gestalt_jax.infer import plan_fsm
from gestalt_jax.model.planner import Planner
from gestalt_jax.text import plan_vocab as pv


def prompt_ids(goal: str, limit: int) -> list[int]:
    """encode_prompt(goal), keeping the goal's end when the prompt would exceed `limit` ids."""
    return pv.encode_prompt(pv.visible_goal(goal, limit))


@functools.lru_cache(maxsize=None)
def _logits_fn(model: Planner):
    """One function object per planner, so the compiled decode loop is reused."""
    def logits_fn(carry, token_B, t):
        params, buf_BxL, lens_B = carry
        rows = jnp.arange(buf_BxL.shape[0])
        pos_B = lens_B + t - 1  # the position whose logits predict plan token t
        buf_BxL = jnp.where(t > 0, buf_BxL.at[rows, pos_B].set(token_B), buf_BxL)
        logits_BxLxV = model.apply({"params": params}, buf_BxL)
        return (params, buf_BxL, lens_B), logits_BxLxV[rows, pos_B]
    return logits_fn


def decode(model: Planner, params, goals: list[str], max_len: int,
           intents: Sequence[str | None] | None = None) -> np.ndarray:
    """Plan ids [B, T] (EOP EOS, then PAD) for goals: FSM-constrained greedy, every quoted
    argument a span of the (visible) goal. With `intents` (one per goal, e.g. the policy's;
    None for a goal left to the planner), each plan follows its goal's intent: a tool's intent
    is a one-step plan of that tool, COMPOSITE a plan of two or more steps."""
    visible = [pv.visible_goal(g, max_len - plan_fsm.MIN_NEW) for g in goals]
    prompts = [pv.encode_prompt(g) for g in visible]
    lens = np.array([len(p) for p in prompts], np.int32)
    buf = np.full((len(goals), max_len), pv.PAD, np.int32)
    for b, p in enumerate(prompts):
        buf[b, : len(p)] = p
    # Each row may fill the buffer after its own prompt: a long goal in the batch does not
    # shorten the others' plans.
    budget = max_len - lens
    carry = (params, jnp.asarray(buf), jnp.asarray(lens))
    last = jnp.asarray(buf[np.arange(len(goals)), lens - 1])
    goal_BxG = jnp.asarray(plan_fsm.goal_bytes(visible))
    guide = None if intents is None else plan_fsm.guidance(intents)
    return np.asarray(plan_fsm.constrained_greedy(_logits_fn(model), carry, last, int(budget.max()), goal_BxG,
                                                  jnp.asarray(budget), guide))


def plan(model: Planner, params, goals: list[str], max_len: int,
         intents: Sequence[str | None] | None = None) -> list[dict]:
    """Decoded plans ({"steps": [...], "think": ...}) for goals, following `intents` when given
    (see decode); every one parses by construction."""
    return [plan_fsm.parse(row) for row in decode(model, params, goals, max_len, intents)]
