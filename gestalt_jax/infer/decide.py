"""What the trained policy and planner decide for goals: the one path `gestalt eval` scores and
`gestalt run` executes. The policy predicts the intent and its own plan; with
config.planner.follow_intent the planner's FSM-constrained plan follows that intent."""

from __future__ import annotations

from typing import Sequence

from gestalt_jax.infer import plan as plan_lib
from gestalt_jax.infer import plan_fsm
from gestalt_jax.infer import policy as policy_lib
from gestalt_jax.infer.trained import Trained
from gestalt_jax.model.planner import build_planner
from gestalt_jax.model.policy import build_policy


def decide(planner: Trained, policy: Trained, goals: Sequence[str], batch_size: int) -> tuple[list, list]:
    """(plans, policy predictions), one each per goal, `batch_size` goals per compiled batch. A
    plan is {"steps", "think"} (None when its ids do not parse); a prediction is policy.predict's
    {"intent", "confidence", "steps"}."""
    goals = list(goals)
    pc, qc = planner.config, policy.config
    predicted = policy_lib.predict(build_policy(qc), policy.params, goals, qc.policy.max_len, batch_size)
    intents = [p["intent"] if pc.planner.follow_intent else None for p in predicted]
    plans = []
    for row in plan_lib.decode(build_planner(pc), planner.params, goals, pc.planner.max_len, intents, batch_size):
        try:
            plans.append(plan_fsm.parse(row))
        except ValueError:
            plans.append(None)
    return plans, predicted
