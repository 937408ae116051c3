"""Loss functions of each component: `loss(params, batch, rng) -> (scalar, metrics)`."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gestalt_jax.model.brain import build_brain
from gestalt_jax.model.ngrams import per_segment
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
    """Decoder CE at text positions of packed rows (data/packing.py); batch['memory']
    [B, segments, K, D], when present, feeds each example's cross-attention."""
    def loss(params, batch, rng):
        logits, concept = model.apply({"params": params}, batch["enc"], batch["dec_in"], batch.get("memory"),
                                      batch["enc_seg"], batch["dec_seg"], batch.get("noise_scale", 1.0),
                                      rngs={"dropout": rng})
        ce = weighted_ce(logits, batch["dec_tgt"], batch["dec_w"])
        exact = _teacher_forced_exact(logits, batch["dec_tgt"], batch["dec_w"], batch["dec_seg"], model.segments)
        return ce, dict(loss=ce, weight=_weight(batch["dec_w"]), concept=concept,
                        slots=_slots(batch["enc_seg"], model.segments), **exact)
    return loss


def _slots(segments_BxL, n: int):
    """[B, n]: which slots of each packed row hold an example."""
    return jnp.any(segments_BxL[:, :, None] == jnp.arange(1, n + 1), axis=1)


def _teacher_forced_exact(logits_BxTxV, targets_BxT, weights_BxT, segments_BxT, n: int) -> dict:
    """examples: packed examples with a trained position; exact: those whose every trained target
    is the argmax, so greedy decoding reproduces the whole example (for the planner, the FSM
    never masks a grammatical target; for the brain, with no noise and no memory, as at reply
    time)."""
    trained_BxT = weights_BxT > 0
    wrong_BxT = (jnp.argmax(logits_BxTxV, -1) != targets_BxT) & trained_BxT
    real_Bxn = per_segment(trained_BxT, segments_BxT, n) > 0
    wrong_Bxn = per_segment(wrong_BxT, segments_BxT, n) > 0
    return dict(examples=_weight(real_Bxn), exact=_weight(real_Bxn & ~wrong_Bxn))


def planner_loss(model: nn.Module, segments: int) -> LossFn:
    """Plan CE at the trained positions of packed rows: the model's heads run at
    batch['trained_at'] alone (the row of trained positions beside each row, data/packing.py)."""
    def loss(params, batch, rng):
        logits_BxPxV = model.apply({"params": params}, batch["inputs"], segments_BxT=batch["plan_seg"],
                                   at_BxP=batch["trained_at"], rngs={"dropout": rng})
        targets_BxP, weights_BxP = batch["trained_targets"], batch["trained_weights"]
        ce = weighted_ce(logits_BxPxV, targets_BxP, weights_BxP)
        return ce, dict(loss=ce, weight=_weight(weights_BxP),
                        **_teacher_forced_exact(logits_BxPxV, targets_BxP, weights_BxP, batch["trained_seg"],
                                                segments))
    return loss


def policy_loss(model: nn.Module, c: ml_collections.ConfigDict) -> LossFn:
    """Weighted sum of cross-entropies of packed examples: per example, the intent's, the mean
    over action slots and over argument channels of the action's and the argument kind's, and
    the sum over the channels whose kind applies of the span ends' or the step and pick's.
    Every term is a sum over examples divided by the batch's example count (aux["weight"]), so
    micro-batches accumulate to exactly the full batch's loss."""
    def loss(params, batch, rng):
        out = model.apply({"params": params}, batch["ids"], batch["goal_seg"], rngs={"dropout": rng})
        ex_Bxn = batch["example_w"]  # 0 on empty slots
        examples = _weight(ex_Bxn)

        def per_example(name, w, per=1):
            return _ce_sum(out[name], batch[name], w) / (jnp.maximum(examples, 1e-6) * per)
        ex_Bxnx1 = ex_Bxn[..., None]
        kind = batch["arg_kind"]
        span, ref = (kind == _SPAN) * ex_Bxnx1, (kind == _FROM) * ex_Bxnx1
        intent = per_example("intent", ex_Bxn)
        actions = per_example("actions", jnp.broadcast_to(ex_Bxnx1, batch["actions"].shape),
                              batch["actions"].shape[-1])
        args = (per_example("arg_kind", jnp.broadcast_to(ex_Bxnx1, kind.shape), kind.shape[-1])
                + per_example("span_start", span) + per_example("span_end", span)
                + per_example("from_step", ref) + per_example("pick", ref))
        p = c.policy
        total = p.intent_weight * intent + p.action_weight * actions + p.arg_weight * args
        return total, dict(loss=total, weight=examples, intent=intent, actions=actions, args=args,
                           examples=examples, exact=jnp.sum(ex_Bxn * _policy_exact(out, batch)))
    return loss


def _ce_sum(logits_xV, targets_x, weights_x):
    """Cross-entropy summed over the weighted positions."""
    ce_x = optax.softmax_cross_entropy_with_integer_labels(logits_xV.astype(jnp.float32), targets_x)
    return jnp.sum(ce_x * weights_x.astype(jnp.float32))


def _policy_exact(out: dict, batch: dict) -> jax.Array:
    """[B, n] whether every head's argmax is right: intent, each action slot, and each argument
    channel's kind with its span ends or its step and pick."""
    def hit(name):
        return jnp.argmax(out[name], -1) == batch[name]
    kind = batch["arg_kind"]
    args_xC = (hit("arg_kind") & ((kind != _SPAN) | (hit("span_start") & hit("span_end")))
               & ((kind != _FROM) | (hit("from_step") & hit("pick"))))
    return hit("intent") & jnp.all(hit("actions"), -1) & jnp.all(args_xC, -1)


def component(c: ml_collections.ConfigDict, name: str, train: bool) -> tuple[nn.Module, LossFn]:
    """The model and loss of one component ("brain", "planner" or "policy")."""
    if name == "brain":
        model = build_brain(c, train)
        return model, brain_loss(model)
    if name == "planner":
        model = build_planner(c, train)
        return model, planner_loss(model, c.planner_sft.segments)
    if name == "policy":
        model = build_policy(c, train)
        return model, policy_loss(model, c)
    raise ValueError(f"unknown component {name!r}; expected one of {COMPONENTS}")


def init_inputs(name: str, batch: dict, c: ml_collections.ConfigDict) -> tuple:
    """Model inputs for `init` from a packed batch; the brain gets memory so its cross-attention
    parameters exist."""
    if name == "brain":
        B = batch["enc"].shape[0]
        memory = jnp.zeros((B, c.sft.segments, c.brain.mem_k, c.brain.d_model))
        return batch["enc"], batch["dec_in"], memory, batch["enc_seg"], batch["dec_seg"]
    if name == "planner":
        return batch["inputs"], None, None, batch["plan_seg"]
    return batch["ids"], batch["goal_seg"]
