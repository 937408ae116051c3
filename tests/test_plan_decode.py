"""Planning goals with a planner: batched, any prompt length, the FSM's argmax at every step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax import config as config_lib
from gestalt_jax.infer import plan as plan_lib
from gestalt_jax.infer import plan_fsm
from gestalt_jax.model.planner import build_planner
from gestalt_jax.text import plan_vocab as pv


def _planner():
    c = config_lib.load_tier("test")
    model = build_planner(c)
    params = nn.meta.unbox(model.init(jax.random.key(3), jnp.zeros((1, 8), jnp.int32))["params"])
    return c, model, params


def test_batched_plans_match_step_by_step_constrained_argmax():
    c, model, params = _planner()
    goals = ["run the tests", "find where parse_config is defined and open that file", "hi"]
    plans = plan_lib.plan(model, params, goals, c.planner.max_len)
    assert len(plans) == 3 and all(1 <= len(p["steps"]) for p in plans)
    # The same decode, one goal at a time, one full forward per token, in plain Python.
    for goal, got in zip(goals, plans):
        ids = pv.encode_prompt(goal)
        state, budget = plan_fsm.START, c.planner.max_len - max(len(pv.encode_prompt(g)) for g in goals)
        for t in range(budget):
            logits = np.asarray(model.apply({"params": params}, jnp.asarray([ids]))[0, -1])
            ok = np.array([plan_fsm.LEGAL[state, v] and plan_fsm.DIST[plan_fsm.NEXT_STATE[state, v]]
                           <= budget - 1 - t for v in range(pv.VOCAB_SIZE)])
            token = int(np.argmax(np.where(ok, logits, -np.inf)))
            ids.append(token)
            state = plan_fsm.NEXT_STATE[state, token]
            if token == pv.EOS:
                break
        assert plan_fsm.parse(ids) == got


def test_overlong_goal_keeps_its_end_and_still_plans():
    c, model, params = _planner()
    goal = "please " * 60 + "read src/app/main.py"
    ids = plan_lib.prompt_ids(goal, c.planner.max_len - plan_fsm.MIN_NEW)
    assert len(ids) <= c.planner.max_len - plan_fsm.MIN_NEW
    assert bytes(i - pv.CHAR_OFFSET for i in ids if i >= pv.CHAR_OFFSET).decode().endswith("src/app/main.py\nPlan\n")
    (result,) = plan_lib.plan(model, params, [goal], c.planner.max_len)
    assert result["steps"]
