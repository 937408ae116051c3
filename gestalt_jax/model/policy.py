"""The policy: a transformer over the goal's bytes, mean pooled, with classification heads.

Heads (S = 6 action slots, C = S × A argument channels, A = most arguments of any tool):
  intent [B, 16]; actions [B, S, 16] (END + 15 tools);
  per channel, where its value comes from: arg_kind [B, C, 3] (none, goal span, earlier
  step), span_start/span_end [B, C, L] over goal byte positions, from_step [B, C, S]
  and pick [B, C, NUM_PICKS] — the same sources as the plan grammar's arguments.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gestalt_jax.model.layers import StackConfig, dense
from gestalt_jax.model.ngrams import NgramBag
from gestalt_jax.model.transformer import ByteEncoder, stack_config
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels, plan_vocab

ARGS_PER_SLOT = max(len(a) for a in labels.TOOL_ARGS.values())
ARG_CHANNELS = labels.NUM_SLOTS * ARGS_PER_SLOT
ARG_KINDS = ("none", "span", "from")


class Policy(nn.Module):
    """The pooled heads read the transformer's mean state beside the goal's n-gram bag; in
    training, `pooled_dropout` of the rows see the bag alone.

    Packed rows (`segments_BxL`, training) give every head one more axis, the example's slot
    [B, segments, ...]; its span pointers score only its own positions (row positions)."""
    cfg: StackConfig
    ngram_buckets: int
    pooled_dropout: float = 0.0
    train: bool = False
    segments: int = 1             # most examples in one packed row

    @nn.compact
    def __call__(self, ids_BxL, segments_BxL=None):
        cfg = self.cfg
        B, L = ids_BxL.shape
        S, C = labels.NUM_SLOTS, ARG_CHANNELS
        n = self.segments if segments_BxL is not None else None
        valid_BxL = ids_BxL != byte_tok.PAD
        h_BxLxD, pooled_BxxD = ByteEncoder(cfg, self.train, self.ngram_buckets, name="encoder")(
            ids_BxL, segments_BxL, n or 1)
        bag_BxxD = NgramBag(self.ngram_buckets, cfg, name="ngrams")(ids_BxL, ids_BxL < 256, segments_BxL, n or 1)
        lead = pooled_BxxD.shape[:-1]  # [B] or [B, n]
        if self.train and self.pooled_dropout > 0:  # whole rows: those must be classified from the bag
            keep_Bxx1 = jax.random.bernoulli(self.make_rng("dropout"), 1 - self.pooled_dropout, (*lead, 1))
            pooled_BxxD = pooled_BxxD * keep_Bxx1
        pooled_BxxD = jnp.concatenate([pooled_BxxD.astype(cfg.dtype), bag_BxxD.astype(cfg.dtype)], axis=-1)

        def head(k, name, inputs=pooled_BxxD, use_bias=True):
            return dense(k, ("embed", "vocab"), cfg, name, use_bias)(inputs).astype(jnp.float32)

        # Span pointers: one start and one end score per (channel, goal byte); PAD is never a
        # span. No bias: a softmax over positions cannot see a per-channel constant.
        ends_BxLx2C = head(2 * C, "span", h_BxLxD, use_bias=False)
        ends_BxLx2C = jnp.where(valid_BxL[..., None], ends_BxLx2C, -1e9)
        ends_Bx2CxL = ends_BxLx2C.transpose(0, 2, 1)
        if n is not None:  # each example's pointers range over its own positions
            own_BxnxL = segments_BxL[:, None, :] == jnp.arange(1, n + 1)[None, :, None]
            ends_Bx2CxL = jnp.where(own_BxnxL[:, :, None, :], ends_Bx2CxL[:, None], -1e9)
        start_xCxL, end_xCxL = jnp.split(ends_Bx2CxL, 2, axis=-2)
        return dict(
            intent=head(len(labels.INTENTS), "intent"),
            actions=head(S * len(labels.ACTIONS), "actions").reshape(*lead, S, -1),
            arg_kind=head(C * len(ARG_KINDS), "arg_kind").reshape(*lead, C, -1),
            span_start=start_xCxL,
            span_end=end_xCxL,
            from_step=head(C * S, "from_step").reshape(*lead, C, S),
            pick=head(C * plan_vocab.NUM_PICKS, "pick").reshape(*lead, C, -1),
        )


def build_policy(c: ml_collections.ConfigDict, train: bool = False) -> Policy:
    p = c.policy
    return Policy(stack_config(p, c, layers=p.layers, dropout=p.dropout, causal=False, cross=False,
                               train_len=p.max_len), p.ngram_buckets, p.pooled_dropout, train,
                  c.policy_sft.segments)
