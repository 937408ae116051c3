"""Policy predictions as concrete plans: intent, the action sequence and each action's arguments.

The heads are read the way the plan grammar reads a plan: the actions run up to the first
END (slot 1 is never END: a plan has a step); each argument of a predicted tool is absent,
a span of the goal (the best start <= end pair of the pointer heads) or `{"from": k, "pick":
n}` with k an earlier step. Spans are cut out of the goal the policy saw (its end, when the
goal is longer than the policy's max_len), so every span is a substring of the goal.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax.model.policy import ARG_KINDS, ARGS_PER_SLOT, Policy
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels

_NONE, _SPAN, _FROM = (ARG_KINDS.index(k) for k in ("none", "span", "from"))
_END = labels.ACTIONS.index("END")


def _outputs(model: Policy, members: tuple, ids_BxL) -> dict:
    """The heads' scores of one policy; of an ensemble, each head's log of its members' mean
    probability (softmax over the head's last axis: the choices it decides between)."""
    outs = [model.apply({"params": params}, ids_BxL) for params in members]
    if len(outs) == 1:
        return outs[0]
    return {k: jnp.log(jnp.mean(jnp.stack([jax.nn.softmax(o[k].astype(jnp.float32), -1) for o in outs]), axis=0))
            for k in outs[0]}


@functools.partial(jax.jit, static_argnames=("model",))
def _heads(model: Policy, members: tuple, ids_BxL):
    """Argmax decisions of every head: intent [B], actions [B, S], per channel kind/from/pick
    [B, C] (kind scores [B, C, 3] too) and the best span (start, end) [B, C] with start <= end."""
    out = _outputs(model, members, ids_BxL)
    S = labels.NUM_SLOTS
    actions_BxSxA = out["actions"].at[:, 0, _END].set(-jnp.inf)
    pair_BxCxLxL = out["span_start"][..., :, None] + out["span_end"][..., None, :]
    L = ids_BxL.shape[1]
    pair_BxCxLxL = jnp.where(jnp.triu(jnp.ones((L, L), bool)), pair_BxCxLxL, -jnp.inf)
    best_BxC = jnp.argmax(pair_BxCxLxL.reshape(*pair_BxCxLxL.shape[:2], -1), axis=-1)
    slot_C = jnp.arange(out["from_step"].shape[1]) // ARGS_PER_SLOT
    # A slot may only reference the slots before it.
    from_BxCxS = jnp.where(jnp.arange(S)[None, :] < slot_C[:, None], out["from_step"], -jnp.inf)
    kind_BxCx3 = out["arg_kind"].at[..., _FROM].set(
        jnp.where(slot_C > 0, out["arg_kind"][..., _FROM], -jnp.inf))
    return dict(intent=jnp.argmax(out["intent"], -1), confidence=jax.nn.softmax(out["intent"], -1).max(-1),
                actions=jnp.argmax(actions_BxSxA, -1),
                kind=jnp.argmax(kind_BxCx3, -1), start=best_BxC // L, end=best_BxC % L,
                from_step=jnp.argmax(from_BxCxS, -1), pick=jnp.argmax(out["pick"], -1))


def predict(model: Policy, params, goals: list[str], max_len: int, batch_size: int = 64) -> list[dict]:
    """{"intent": INTENT, "confidence": p, "steps": [{"tool", "args"}, ...]} for each goal (p: the
    intent's softmax probability), batch_size at a time (a
    short last batch is filled with empty goals, so every batch has one compiled shape). `params` are
    one policy's, or a tuple of an ensemble's members' (trained.Trained.members): every head then
    decides by its members' mean probability."""
    members = tuple(params) if isinstance(params, (tuple, list)) else (params,)
    out = []
    for i in range(0, len(goals), batch_size):
        chunk = goals[i : i + batch_size]
        ids_BxL = byte_tok.encode_left(chunk + [""] * (batch_size - len(chunk)), max_len)
        heads = jax.device_get(_heads(model, members, jnp.asarray(ids_BxL)))
        out += [_read(heads, b, ids_BxL[b]) for b in range(len(chunk))]
    return out


def _read(heads: dict, b: int, ids_L: np.ndarray) -> dict:
    steps = []
    for s in range(labels.NUM_SLOTS):
        action = int(heads["actions"][b, s])
        if action == _END:
            break
        tool = labels.ACTIONS[action]
        args = {}
        for j, name in enumerate(labels.TOOL_ARGS[tool]):
            ch = s * ARGS_PER_SLOT + j
            kind = int(heads["kind"][b, ch])
            if kind == _SPAN:
                start, end = int(heads["start"][b, ch]), int(heads["end"][b, ch])
                span = bytes(int(t) for t in ids_L[start : end + 1] if t < 256)
                if span:
                    args[name] = span.decode("utf-8", errors="replace")
            elif kind == _FROM:
                args[name] = {"from": int(heads["from_step"][b, ch]) + 1, "pick": int(heads["pick"][b, ch]) + 1}
        steps.append({"tool": tool, "args": args})
    return {"intent": labels.INTENTS[int(heads["intent"][b])], "confidence": float(heads["confidence"][b]),
            "steps": steps}
