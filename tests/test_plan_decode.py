"""Planning goals with a planner: batched, any prompt length, the FSM's argmax at every step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax import config as config_lib
from gestalt_jax.infer import compiles
from gestalt_jax.infer import plan as plan_lib
from gestalt_jax.infer import plan_fsm
from gestalt_jax.model.planner import build_planner
from gestalt_jax.text import plan_vocab as pv


def _planner():
    c = config_lib.load_tier("test")
    model = build_planner(c)
    params = nn.meta.unbox(model.init(jax.random.key(3), jnp.zeros((1, 8), jnp.int32))["params"])
    return c, model, params


def _reference_plan(c, logits_of, goal: str) -> list[int]:
    """The decode of one goal in plain Python, one full forward per token: at every step the argmax,
    among the tokens the FSM allows, of logits_of(ids [1, max_len]) at the last fed position."""
    ids = pv.encode_prompt(goal)
    assert len(ids) <= c.planner.max_len - plan_fsm.MIN_NEW
    state, budget = plan_fsm.START, c.planner.max_len - len(ids)
    span = None  # bytes quoted so far, inside a quote
    raw = goal.encode()
    starts = np.flatnonzero(np.asarray(plan_fsm.span_starts(jnp.asarray(plan_fsm.goal_bytes([goal]))))[0])
    for t in range(budget):
        buf = np.full((1, c.planner.max_len), pv.PAD, np.int32)
        buf[0, : len(ids)] = ids  # causal: the padding after position len-1 changes nothing
        logits = np.asarray(logits_of(jnp.asarray(buf))[0, len(ids) - 1])
        ok = np.array([plan_fsm.LEGAL[state, v] and plan_fsm.DIST[plan_fsm.NEXT_STATE[state, v]]
                       <= budget - 1 - t for v in range(pv.VOCAB_SIZE)])
        if span is not None:  # a quote may only grow into a substring of the goal from a span start
            for b in range(256):
                ok[pv.CHAR_OFFSET + b] &= any(raw[i:].startswith(span + bytes([b])) for i in starts)
        token = int(np.argmax(np.where(ok, logits, -np.inf)))
        ids.append(token)
        state = plan_fsm.NEXT_STATE[state, token]
        span = b"" if token == pv.QUOTE else None if token == pv.ENDQUOTE else span
        if span is not None and token >= pv.CHAR_OFFSET and token < pv.CHAR_OFFSET + 256:
            span += bytes([token - pv.CHAR_OFFSET])
        if token == pv.EOS:
            break
    return ids


# The last goal, cut at every "so, " into clauses, leaves 7 plan tokens; that budget is its own,
# not the batch's.
_GOALS = ["run the tests", "find where parse_config is defined and open that file", "hi",
          "so, " * 30 + "open abcd.md"]


def test_batched_plans_match_step_by_step_constrained_argmax():
    c, model, params = _planner()
    # Three at a time: two batches, the second filled up with empty goals.
    plans = plan_lib.plan(model, params, _GOALS, c.planner.max_len, rows=3)
    assert len(plans) == 4 and all(1 <= len(p["steps"]) for p in plans)
    forward = jax.jit(lambda ids: model.apply({"params": params}, ids))
    for goal, got in zip(_GOALS, plans):
        assert plan_fsm.parse(_reference_plan(c, forward, goal)) == got


def test_an_ensemble_plans_by_its_members_mean_log_probabilities():
    c, model, params = _planner()
    other = nn.meta.unbox(model.init(jax.random.key(4), jnp.zeros((1, 8), jnp.int32))["params"])
    plans = plan_lib.plan(model, (params, other), _GOALS, c.planner.max_len, rows=3)
    forward = jax.jit(lambda p, ids: jax.nn.log_softmax(model.apply({"params": p}, ids).astype(jnp.float32)))
    mean = lambda ids: (forward(params, ids) + forward(other, ids)) / 2
    for goal, got in zip(_GOALS, plans):
        assert plan_fsm.parse(_reference_plan(c, mean, goal)) == got
    # Not either member's plan alone: the members disagree on these goals, and the mean decides.
    alone = [plan_lib.plan(model, p, _GOALS, c.planner.max_len, rows=3) for p in (params, other)]
    assert plans != alone[0] or plans != alone[1]


def test_overlong_goal_keeps_its_end_and_still_plans():
    c, model, params = _planner()
    goal = "please " * 60 + "read src/app/main.py"
    ids = plan_lib.prompt_ids(goal, c.planner.max_len - plan_fsm.MIN_NEW)
    assert len(ids) <= c.planner.max_len - plan_fsm.MIN_NEW
    chars = bytes(i - pv.CHAR_OFFSET for i in ids if pv.CHAR_OFFSET <= i < pv.CHAR_OFFSET + 256)
    assert chars.decode().endswith("src/app/main.py\nPlan\n")
    (result,) = plan_lib.plan(model, params, [goal], c.planner.max_len)
    assert result["steps"]


def test_plans_follow_the_given_intents():
    c, model, params = _planner()
    goals = ["run the tests", "find where parse_config is defined and open that file", "hi", "prove a=a"]
    intents = ["LEAN_SUITE", "COMPOSITE", "CONVERSATION", None]
    free = plan_lib.plan(model, params, goals, c.planner.max_len)
    guided = plan_lib.plan(model, params, goals, c.planner.max_len, intents)
    assert [s["tool"] for s in guided[0]["steps"]] == ["LEAN_SUITE"]
    assert [s["tool"] for s in guided[2]["steps"]] == ["TALK"]
    assert guided[1] == free[1] and guided[3] == free[3]  # COMPOSITE, and no intent: the planner alone


def test_batches_of_any_goals_compile_once():
    c, model, params = _planner()
    first_goals = ["hi", "run the tests", "read a.md"]
    # Other prompt lengths, goal widths and budgets (one goal longer than the planner's window).
    other_goals = ["find where parse_config is defined and open that file", "so, " * 40 + "open b.md"]
    with compiles.counted() as first:
        plan_lib.plan(model, params, first_goals, c.planner.max_len, rows=2)  # the second batch is filled up
    with compiles.counted() as again:
        plans = plan_lib.plan(model, params, other_goals, c.planner.max_len, rows=2)
    assert sum(first.values()) >= 1 and sum(again.values()) == 0, dict(again)
    assert all(p["steps"] for p in plans)
