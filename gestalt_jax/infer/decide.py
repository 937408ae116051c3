"""What the trained policy and planner decide for goals: the one path `gestalt eval` scores and
`gestalt run` executes. The policy predicts the intent and its own plan; with
config.planner.follow_intent the planner's FSM-constrained plan follows that intent. With
config.planner.clause_steps as well, a goal the policy calls COMPOSITE has the policy read each
of its request clauses (text/clauses.requests) as a goal of its own: when every one of two or
more reads as one tool with confidence >= config.planner.clause_steps_conf, those tools, in
order, are the plan's steps, and the planner writes their arguments."""

from __future__ import annotations

from typing import Sequence

from gestalt_jax.infer import plan as plan_lib
from gestalt_jax.infer import plan_fsm
from gestalt_jax.infer import policy as policy_lib
from gestalt_jax.infer.trained import Trained
from gestalt_jax.model.planner import build_planner
from gestalt_jax.model.policy import build_policy
from gestalt_jax.text import clauses, labels


def decide(planner: Trained, policy: Trained, goals: Sequence[str], batch_size: int) -> tuple[list, list]:
    """(plans, policy predictions), one each per goal, `batch_size` goals per compiled batch. A
    plan is {"steps", "think"} (None when its ids do not parse); a prediction is policy.predict's
    {"intent", "confidence", "steps"} and "clause_steps": the tools its clauses read as, which the
    plan's steps follow (None where they do not guide the plan)."""
    goals = list(goals)
    pc, qc = planner.config, policy.config
    predicted = policy_lib.predict(build_policy(qc), policy.members or policy.params, goals, qc.policy.max_len,
                                   batch_size)
    intents = [p["intent"] if pc.planner.follow_intent else None for p in predicted]
    steps = clause_steps(policy, goals, intents, pc.planner.clause_steps_conf, batch_size) \
        if pc.planner.follow_intent and pc.planner.clause_steps else [None] * len(goals)
    for p, fixed in zip(predicted, steps):
        p["clause_steps"] = fixed
    plans = []
    params = planner.members or planner.params  # a planner ensemble decodes as one
    for row in plan_lib.decode(build_planner(pc), params, goals, pc.planner.max_len, intents, batch_size, steps):
        try:
            plans.append(plan_fsm.parse(row))
        except ValueError:
            plans.append(None)
    return plans, predicted


def clause_steps(policy: Trained, goals: Sequence[str], intents: Sequence[str | None], min_conf: float,
                 batch_size: int) -> list[list[str] | None]:
    """For each goal whose intent is COMPOSITE and whose requests are written in the order they are
    to run (clauses.in_order), the tools of its request clauses as the policy reads each alone, when
    there are two or more and each reads as one tool (not COMPOSITE, not CONVERSATION) with
    confidence >= min_conf; None for every other goal."""
    qc = policy.config
    asked = {i: clauses.requests(g) for i, (g, intent) in enumerate(zip(goals, intents))
             if intent == "COMPOSITE" and clauses.in_order(g)}
    asked = {i: r for i, r in asked.items() if 2 <= len(r) <= labels.MAX_STEPS}
    flat = [c for r in asked.values() for c in r]
    params = policy.members or policy.params  # an ensemble reads each clause as one policy
    read = iter(policy_lib.predict(build_policy(qc), params, flat, qc.policy.max_len, batch_size) if flat else [])
    out: list[list[str] | None] = [None] * len(goals)
    for i, requests in asked.items():
        parts = [next(read) for _ in requests]
        if all(p["intent"] not in ("COMPOSITE", "CONVERSATION") and p["confidence"] >= min_conf for p in parts):
            out[i] = [p["intent"] for p in parts]
    return out
