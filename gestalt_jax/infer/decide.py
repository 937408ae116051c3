"""What the trained policy and planner decide for goals: the one path `gestalt eval` scores and
`gestalt run` executes. The policy predicts the intent and its own plan; with
config.planner.follow_intent the planner's FSM-constrained plan follows that intent. With
config.planner.clause_steps as well, a goal the policy calls COMPOSITE has the policy read each
of its request clauses (text/clauses.run_order) as a goal of its own: when two or more read as one
tool with confidence >= config.planner.clause_steps_conf and at most
config.planner.clause_steps_open others do not (steps_of_clauses), the plan has a step for each,
those tools in order where the clause gave one, and the planner chooses the open steps' tools and
writes every step's arguments."""

from __future__ import annotations

import re
from typing import Sequence

from gestalt_jax.infer import plan as plan_lib
from gestalt_jax.infer import plan_fsm
from gestalt_jax.infer import policy as policy_lib
from gestalt_jax.infer.trained import Trained
from gestalt_jax.model.planner import build_planner
from gestalt_jax.model.policy import build_policy
from gestalt_jax.text import clauses, labels, ordinals

# The words an unsure clause that states a condition opens with (steps_of_clauses).
_CONDITION = re.compile(r"^(?:if|once|when|whenever|after|as soon as|should|in case|provided|assuming|unless"
                        r"|whatever|wherever)\b", re.IGNORECASE)
# A clause read as chat that asks for a report names the user: "tell me how it went", "walk us through it".
_TO_THE_USER = re.compile(r"\b(?:me|us)\b", re.IGNORECASE)
# What no argument of the built-in goal files (36,009) ends with: white space, ",.!?", or a joining
# word after white space. A span that runs on into the next request ends there instead.
_LOOSE_END = re.compile(r"(?:[\s,.!?]+|\s(?:and|then|also|plus))$", re.IGNORECASE)
# When the user said what they ask memory about, said after it ("what did I say about the linter
# last week?"): no MEMORY_SEARCH argument of the built-in goal files (4,422) ends with one, and the
# search matches the words of what was said, so "last" and "week" would only find other episodes.
_SAID_WHEN = re.compile(r"\s+(?:from\s+|of\s+)?(?:(?:last|this|earlier this|the other)\s+"
                        r"(?:week|month|year|morning|afternoon|evening|night|time|day|sprint)"
                        r"|yesterday|today|tonight|earlier(?: on)?|recently|a while (?:ago|back)|\w+\s+(?:days|weeks) ago)$",
                        re.IGNORECASE)


def decide(planner: Trained, policy: Trained, goals: Sequence[str], batch_size: int) -> tuple[list, list]:
    """(plans, policy predictions), one each per goal, `batch_size` goals per compiled batch. A
    plan is {"steps", "think"} (None when its ids do not parse); a prediction is policy.predict's
    {"intent", "confidence", "steps"} and "clause_steps": the tools its clauses read as, which the
    plan's steps follow (None for a clause left open; None where they do not guide the plan)."""
    goals = list(goals)
    pc, qc = planner.config, policy.config
    predicted = policy_lib.predict(build_policy(qc), policy.decides_with, goals, qc.policy.max_len, batch_size)
    intents = [p["intent"] if pc.planner.follow_intent else None for p in predicted]
    steps = clause_steps(policy, goals, intents, pc.planner.clause_steps_conf, batch_size,
                         pc.planner.clause_steps_open) \
        if pc.planner.follow_intent and pc.planner.clause_steps else [None] * len(goals)
    for p, fixed in zip(predicted, steps):
        p["clause_steps"] = fixed
    plans = []
    for row in plan_lib.decode(build_planner(pc), planner.decides_with, goals, pc.planner.max_len, intents, batch_size,
                               steps):
        try:
            plans.append(trimmed(plan_fsm.parse(row)))
        except ValueError:
            plans.append(None)
    return plans, predicted


def trimmed(plan: dict) -> dict:
    """The plan with each quoted argument's loose end cut off ("the Postgres upgrade and then " ->
    "the Postgres upgrade"), and a memory search's when ("the linter last week" -> "the linter"):
    what is left is still a span of the goal, and never empty."""
    for step in plan["steps"]:
        ends = (_LOOSE_END, _SAID_WHEN) if step["tool"] == "MEMORY_SEARCH" else (_LOOSE_END,)
        for name, value in step["args"].items():
            while isinstance(value, str) and (cut := _cut(value, ends)) != value:
                value = cut
            step["args"][name] = value
    return plan


def _cut(value: str, ends: Sequence[re.Pattern]) -> str:
    """`value` with the first of `ends` that leaves something cut off its end (`value` when none does)."""
    for end in ends:
        if (cut := end.sub("", value)) not in ("", value):
            return cut
    return value


def clause_steps(policy: Trained, goals: Sequence[str], intents: Sequence[str | None], min_conf: float,
                 batch_size: int, open_steps: int = 0) -> list[list[str | None] | None]:
    """For each goal whose intent is COMPOSITE and whose requests can be put in the order they are to
    run (clauses.run_order), the steps its request clauses give, in that order, as the policy reads
    each alone (`steps_of_clauses`); None for every other goal."""
    qc = policy.config
    asked = {i: clauses.run_order(g) for i, (g, intent) in enumerate(zip(goals, intents)) if intent == "COMPOSITE"}
    asked = {i: r for i, r in asked.items() if r is not None and 2 <= len(r) <= labels.MAX_STEPS}
    flat = [c for r in asked.values() for c in r]
    read = iter(policy_lib.predict(build_policy(qc), policy.decides_with, flat, qc.policy.max_len, batch_size)
                if flat else [])
    out: list[list[str | None] | None] = [None] * len(goals)
    for i, requests in asked.items():
        out[i] = steps_of_clauses(requests, [next(read) for _ in requests], min_conf, open_steps)
    return out


def steps_of_clauses(requests: Sequence[str], readings: Sequence[dict], min_conf: float,
                     open_steps: int) -> list[str | None] | None:
    """The plan's steps from a goal's request clauses and the policy's reading of each
    ({"intent", "confidence"}), or None where they do not guide the plan. A clause read as one tool
    (not COMPOSITE, not CONVERSATION) with confidence >= min_conf gives that tool; the last clause,
    read as chat with that confidence and naming the user ("then tell me how it went", "give me a
    summary"), gives TALK, the report a plan ends with. One read with less confidence, read as
    COMPOSITE while naming one hit at most ("open the top hit"), or read as chat while naming one hit
    of an earlier step ("show me item one") gives an open step (None: the planner chooses its tool;
    "and go through it once more", "mend anything red"), but no step where it holds no letters (a
    list marker, "1)") or states a condition on the step before: it opens with "if", "once", "when",
    ... and reads as chat, as COMPOSITE or as that step's tool ("once that's done", "when it's done",
    "if it applies"; "if anything fails fix it" is a step). The steps guide the plan when two or more
    have a tool, at most `open_steps` are open, and no other clause reads as chat or as COMPOSITE
    with confidence >= min_conf (a greeting, a thanks; "open the first two files")."""
    tools, before = [], None
    for i, (clause, read) in enumerate(zip(requests, readings, strict=True)):
        intent, sure = read["intent"], read["confidence"] >= min_conf
        picks = ordinals.picks(clause)
        one_step = (intent == "COMPOSITE" and len(picks) <= 1
                    or intent == "CONVERSATION" and len(picks) == 1 and i > 0)
        if sure and intent == "CONVERSATION" and not one_step and 0 < i == len(requests) - 1 \
                and _TO_THE_USER.search(clause):
            tools.append("TALK")
        elif sure and intent in ("CONVERSATION", "COMPOSITE") and not one_step:
            return None
        elif sure and intent not in ("CONVERSATION", "COMPOSITE"):
            tools.append(intent)
        elif any(ch.isalpha() for ch in clause) and not (_CONDITION.match(clause)
                                                         and intent in ("CONVERSATION", "COMPOSITE", before)):
            tools.append(None)
        before = intent
    given = len(tools) - tools.count(None)
    return tools if given >= 2 and tools.count(None) <= open_steps else None
