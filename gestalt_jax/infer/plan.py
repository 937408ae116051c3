"""Plans for goals from a trained planner: FSM-constrained greedy decoding over the planner's KV cache.

Goals are decoded `rows` at a time; a short last batch is filled with empty goals. Prompts are
left-padded to the longest prompt the planner takes (max_len - MIN_NEW), so every prompt ends at
the same cache slot: the padding gets a position no query reaches (attention never sees it) and
RoPE positions count from each row's first token, as in training. The prefill holds every prompt
token but the last; `plan_fsm.constrained_greedy` then feeds one token per step in one compiled
loop. Every shape (rows, padded prompt, goal width, max_new = the budget of the shortest prompt)
follows from the config alone, so a whole eval compiles the decode once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax.infer import plan_fsm
from gestalt_jax.model.planner import Planner
from gestalt_jax.text import ordinals
from gestalt_jax.text import plan_vocab as pv

NO_POSITION = np.iinfo(np.int32).max  # the position of left padding: past every query, so never seen


def prompt_ids(goal: str, limit: int) -> list[int]:
    """encode_prompt(goal), keeping the goal's end when the prompt would exceed `limit` ids."""
    return pv.encode_prompt(pv.visible_goal(goal, limit))


def _logits_fn(model: Planner, max_len: int):
    """Feeds each row its token at the row's next position; logits [B, V] of the token after it.
    For an ensemble (several members' parameters and caches), the mean of the members'
    log-probabilities: the plan the members agree on most (one member: its logits as they are)."""
    def logits_fn(carry, token_B, t):
        members, caches, first_B = carry  # first_B: the position of the token fed at t = 0
        out, new = [], []
        for params, cache in zip(members, caches):
            logits_Bx1xV, state = model.apply({"params": params, "cache": cache}, token_B[:, None],
                                              (first_B + t)[:, None], rope_len=max_len, mutable=["cache"])
            out.append(logits_Bx1xV[:, 0])
            new.append(state["cache"])
        if len(out) > 1:
            out = [jnp.mean(jnp.stack([jax.nn.log_softmax(x.astype(jnp.float32)) for x in out]), axis=0)]
        return (members, tuple(new), first_B), out[0]
    return logits_fn


@functools.partial(jax.jit, static_argnames=("model", "max_len", "max_new"))
def _decode_batch(model: Planner, members: tuple, prompt_BxP, lens_B, goal_BxG, sides_BxG, guide, *,
                  max_len: int, max_new: int):
    """Plan ids [B, max_new] for left-padded prompts [B, P] of lens_B ids (P >= 2), from the
    parameters of one planner or of several (`members`, a tuple)."""
    B, P = prompt_BxP.shape
    decoder = model.clone(decode=True)
    # Every prompt ends at slot P - 1, its last token fed at t = 0; plan token t is fed at P + t.
    S = P - 1 + max_new
    # The initial cache is not all zeros (no copy source is -1, the prompt starts open); the
    # parameters init also computes are dropped by the compiler.
    cache = decoder.init(jax.random.key(0), jnp.zeros((B, S), jnp.int32), rope_len=max_len)["cache"]
    valid_BxP = jnp.arange(P)[None, :] >= (P - lens_B)[:, None]
    positions_BxP = jnp.where(valid_BxP, jnp.cumsum(valid_BxP, axis=1) - 1, NO_POSITION)
    caches = tuple(decoder.apply({"params": params, "cache": cache}, prompt_BxP[:, :-1], positions_BxP[:, :-1],
                                 rope_len=max_len, mutable=["cache"])[1]["cache"] for params in members)
    carry = (members, caches, lens_B - 1)
    budget_B = max_len - lens_B  # a long goal in the batch does not shorten the others' plans
    return plan_fsm.constrained_greedy(_logits_fn(decoder, max_len), carry, prompt_BxP[:, -1], max_new,
                                       goal_BxG, budget_B, guide, sides_BxG)


def _batch(model: Planner, members: tuple, goals: list[str], max_len: int, intents: Sequence[str | None],
           steps: Sequence[Sequence[str] | None]) -> np.ndarray:
    """Plan ids [B, T] for one batch of goals."""
    P = max_len - plan_fsm.MIN_NEW  # the longest prompt
    visible = [pv.visible_goal(g, P) for g in goals]
    prompts = [pv.encode_prompt(g) for g in visible]
    lens = np.array([len(p) for p in prompts], np.int32)
    buf = np.full((len(goals), P), pv.PAD, np.int32)
    for b, p in enumerate(prompts):
        buf[b, P - len(p):] = p
    goal_BxG = np.full((len(goals), P), -1, np.int32)  # a goal's bytes are fewer than its prompt's ids
    raw = plan_fsm.goal_bytes(visible)
    goal_BxG[:, : raw.shape[1]] = raw
    max_new = max_len - pv.frame_len()  # the budget of the shortest prompt
    return np.asarray(_decode_batch(model, members, jnp.asarray(buf), jnp.asarray(lens), jnp.asarray(goal_BxG),
                                    jnp.asarray(plan_fsm.side_positions(goal_BxG)),
                                    plan_fsm.guidance(intents, steps, [ordinals.picks(g) for g in visible]),
                                    max_len=max_len, max_new=max_new))


def decode(model: Planner, params, goals: list[str], max_len: int,
           intents: Sequence[str | None] | None = None, rows: int | None = None,
           steps: Sequence[Sequence[str] | None] | None = None) -> list[np.ndarray]:
    """Plan ids (EOP EOS, then PAD) for goals: FSM-constrained greedy, every quoted argument a span
    of the (visible) goal, `rows` goals at a time (default: all at once). `params` are one planner's,
    or a tuple of a planner ensemble's members' (trained.Trained.members), whose log-probabilities
    are averaged at every token. With `intents` (one per
    goal, e.g. the policy's; None for a goal left to the planner), each plan follows its goal's
    intent: a tool's intent is a one-step plan of that tool; COMPOSITE leaves the plan's tools and
    length to the planner (plan_fsm.guidance).
    A goal's `steps` (tool names, where not None) fix its plan's tools, one a step (a None step's
    tool is the planner's), and its length. The hits a goal
    names by number ("open the second hit": text.ordinals) are its plan's picks, in order."""
    intents = [None] * len(goals) if intents is None else list(intents)
    steps = [None] * len(goals) if steps is None else list(steps)
    rows = rows or max(1, len(goals))
    members = tuple(params) if isinstance(params, (tuple, list)) else (params,)
    out = []
    for i in range(0, len(goals), rows):
        chunk = goals[i : i + rows]
        pad = [None] * (rows - len(chunk))
        out += list(_batch(model, members, chunk + [""] * len(pad), max_len, intents[i : i + rows] + pad,
                           steps[i : i + rows] + pad)[: len(chunk)])
    return out


def plan(model: Planner, params, goals: list[str], max_len: int,
         intents: Sequence[str | None] | None = None, rows: int | None = None) -> list[dict]:
    """Decoded plans ({"steps": [...], "think": ...}) for goals, following `intents` when given
    (see decode); every one parses by construction."""
    return [plan_fsm.parse(row) for row in decode(model, params, goals, max_len, intents, rows)]
