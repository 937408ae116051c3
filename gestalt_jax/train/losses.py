"""Loss functions of each component: `loss(params, batch, rng) -> (scalar, metrics)`."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gestalt_jax.model.brain import build_brain
from gestalt_jax.model.planner import build_planner
from gestalt_jax.model.policy import ARG_KINDS, build_policy

LossFn = Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]]
COMPONENTS = ("brain", "planner", "policy")
_SPAN, _FROM = ARG_KINDS.index("span"), ARG_KINDS.index("from")


def weighted_ce(logits_BxTxV, targets_BxT, weights_BxT):
    """Cross-entropy averaged over the weighted positions."""
    ce_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV.astype(jnp.float32), targets_BxT)
    w = weights_BxT.astype(jnp.float32)
    return jnp.sum(ce_BxT * w) / jnp.maximum(jnp.sum(w), 1e-6)


def _weight(w) -> jax.Array:
    """The weight of a mean loss: how much of the batch it averaged over."""
    return jnp.sum(w.astype(jnp.float32))


def brain_loss(model: nn.Module) -> LossFn:
    """Decoder CE at text positions; batch['memory'] [B, K, D], when present, feeds cross-attention."""
    def loss(params, batch, rng):
        logits, concept = model.apply({"params": params}, batch["enc"], batch["dec_in"],
                                      batch.get("memory"), rngs={"dropout": rng})
        ce = weighted_ce(logits, batch["dec_tgt"], batch["dec_w"])
        return ce, dict(loss=ce, weight=_weight(batch["dec_w"]), concept=concept,
                        **_teacher_forced_exact(logits, batch["dec_tgt"], batch["dec_w"]))
    return loss


def _teacher_forced_exact(logits_BxTxV, targets_BxT, weights_BxT) -> dict:
    """examples: rows with a trained position; exact: those whose every trained target is the
    argmax, so greedy decoding reproduces the whole row (for the planner, the FSM never masks a
    grammatical target; for the brain, with no noise and no memory, as at reply time)."""
    trained_BxT = weights_BxT > 0
    wrong_BxT = (jnp.argmax(logits_BxTxV, -1) != targets_BxT) & trained_BxT
    real_B = jnp.any(trained_BxT, axis=1)
    return dict(examples=_weight(real_B), exact=_weight(real_B & ~jnp.any(wrong_BxT, axis=1)))


def planner_loss(model: nn.Module) -> LossFn:
    def loss(params, batch, rng):
        logits = model.apply({"params": params}, batch["inputs"], rngs={"dropout": rng})
        ce = weighted_ce(logits, batch["targets"], batch["weights"])
        return ce, dict(loss=ce, weight=_weight(batch["weights"]),
                        **_teacher_forced_exact(logits, batch["targets"], batch["weights"]))
    return loss


def policy_loss(model: nn.Module, c: ml_collections.ConfigDict) -> LossFn:
    """Weighted sum of cross-entropies; span/step arguments count only where their kind applies."""
    def loss(params, batch, rng):
        out = model.apply({"params": params}, batch["ids"], rngs={"dropout": rng})
        # example_w [B] zeroes the padding rows of a final eval batch.
        ex_Bx1 = batch.get("example_w", jnp.ones(batch["intent"].shape, jnp.float32))[:, None]
        intent = weighted_ce(out["intent"][:, None], batch["intent"][:, None], ex_Bx1)
        actions = weighted_ce(out["actions"], batch["actions"], jnp.broadcast_to(ex_Bx1, batch["actions"].shape))
        kind = batch["arg_kind"]
        args = (weighted_ce(out["arg_kind"], kind, jnp.broadcast_to(ex_Bx1, kind.shape))
                + weighted_ce(out["span_start"], batch["span_start"], (kind == _SPAN) * ex_Bx1)
                + weighted_ce(out["span_end"], batch["span_end"], (kind == _SPAN) * ex_Bx1)
                + weighted_ce(out["from_step"], batch["from_step"], (kind == _FROM) * ex_Bx1)
                + weighted_ce(out["pick"], batch["pick"], (kind == _FROM) * ex_Bx1))
        p = c.policy
        total = p.intent_weight * intent + p.action_weight * actions + p.arg_weight * args
        return total, dict(loss=total, weight=_weight(ex_Bx1), intent=intent, actions=actions, args=args,
                           examples=_weight(ex_Bx1), exact=jnp.sum(ex_Bx1[:, 0] * _policy_exact(out, batch)))
    return loss


def _policy_exact(out: dict, batch: dict) -> jax.Array:
    """[B] whether every head's argmax is right: intent, each action slot, and each argument
    channel's kind with its span ends or its step and pick."""
    def hit(name):
        return jnp.argmax(out[name], -1) == batch[name]
    kind = batch["arg_kind"]
    args_BxC = (hit("arg_kind") & ((kind != _SPAN) | (hit("span_start") & hit("span_end")))
                & ((kind != _FROM) | (hit("from_step") & hit("pick"))))
    return hit("intent") & jnp.all(hit("actions"), -1) & jnp.all(args_BxC, -1)


def component(c: ml_collections.ConfigDict, name: str, train: bool) -> tuple[nn.Module, LossFn]:
    """The model and loss of one component ("brain", "planner" or "policy")."""
    if name == "brain":
        model = build_brain(c, train)
        return model, brain_loss(model)
    if name == "planner":
        model = build_planner(c, train)
        return model, planner_loss(model)
    if name == "policy":
        model = build_policy(c, train)
        return model, policy_loss(model, c)
    raise ValueError(f"unknown component {name!r}; expected one of {COMPONENTS}")


def init_inputs(name: str, batch: dict, c: ml_collections.ConfigDict) -> tuple:
    """Model inputs for `init`; the brain gets memory so its cross-attention parameters exist."""
    if name == "brain":
        B = batch["enc"].shape[0]
        return batch["enc"], batch["dec_in"], jnp.zeros((B, c.brain.mem_k, c.brain.d_model))
    return (batch["inputs"],) if name == "planner" else (batch["ids"],)
