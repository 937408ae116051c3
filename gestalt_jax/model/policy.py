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
    training, `pooled_dropout` of the rows see the bag alone."""
    cfg: StackConfig
    ngram_buckets: int
    pooled_dropout: float = 0.0
    train: bool = False

    @nn.compact
    def __call__(self, ids_BxL):
        cfg = self.cfg
        B, L = ids_BxL.shape
        S, C = labels.NUM_SLOTS, ARG_CHANNELS
        valid_BxL = ids_BxL != byte_tok.PAD
        h_BxLxD, pooled_BxD = ByteEncoder(cfg, self.train, self.ngram_buckets, name="encoder")(ids_BxL)
        bag_BxD = NgramBag(self.ngram_buckets, cfg, name="ngrams")(ids_BxL, ids_BxL < 256)
        if self.train and self.pooled_dropout > 0:  # whole rows: those must be classified from the bag
            keep_Bx1 = jax.random.bernoulli(self.make_rng("dropout"), 1 - self.pooled_dropout, (B, 1))
            pooled_BxD = pooled_BxD * keep_Bx1
        pooled_BxD = jnp.concatenate([pooled_BxD.astype(cfg.dtype), bag_BxD.astype(cfg.dtype)], axis=-1)

        def head(n, name, inputs=pooled_BxD, use_bias=True):
            return dense(n, ("embed", "vocab"), cfg, name, use_bias)(inputs).astype(jnp.float32)

        # Span pointers: one start and one end score per (channel, goal byte); PAD is never a
        # span. No bias: a softmax over positions cannot see a per-channel constant.
        ends_BxLx2C = head(2 * C, "span", h_BxLxD, use_bias=False)
        ends_BxLx2C = jnp.where(valid_BxL[..., None], ends_BxLx2C, -1e9)
        start_BxCxL, end_BxCxL = jnp.split(ends_BxLx2C.transpose(0, 2, 1), 2, axis=1)
        return dict(
            intent=head(len(labels.INTENTS), "intent"),
            actions=head(S * len(labels.ACTIONS), "actions").reshape(B, S, -1),
            arg_kind=head(C * len(ARG_KINDS), "arg_kind").reshape(B, C, -1),
            span_start=start_BxCxL,
            span_end=end_BxCxL,
            from_step=head(C * S, "from_step").reshape(B, C, S),
            pick=head(C * plan_vocab.NUM_PICKS, "pick").reshape(B, C, -1),
        )


def build_policy(c: ml_collections.ConfigDict, train: bool = False) -> Policy:
    p = c.policy
    return Policy(stack_config(p, c, layers=p.layers, dropout=p.dropout, causal=False, cross=False,
                               train_len=p.max_len), p.ngram_buckets, p.pooled_dropout, train)
