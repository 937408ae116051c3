"""The planner: a decoder-only LM over the plan vocabulary (prompt chars, then plan tokens)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gestalt_jax.model.layers import StackConfig, dense
from gestalt_jax.model.transformer import Stack, embedding, stack_config
from gestalt_jax.text import plan_vocab


class Planner(nn.Module):
    """Logits [B, T, V] for right-padded plan-vocabulary ids; KV cache when decode=True."""
    cfg: StackConfig
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, ids_BxT, positions_BxT=None, rope_len=None):
        B, T = ids_BxT.shape
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(T), (B, T))
        x = embedding(plan_vocab.VOCAB_SIZE, self.cfg, "embed")(ids_BxT)
        h = Stack(self.cfg, self.train, self.decode, name="stack")(x, positions_BxT, rope_len=rope_len or T)
        logits = dense(plan_vocab.VOCAB_SIZE, ("embed", "vocab"), self.cfg, "lm_head")(h)
        return nn.with_logical_constraint(logits.astype(jnp.float32), ("batch", "length", "vocab"))


def build_planner(c: ml_collections.ConfigDict, train: bool = False) -> Planner:
    p = c.planner
    return Planner(stack_config(p, c, layers=p.layers, dropout=p.dropout, causal=True, cross=False,
                                train_len=p.max_len), train)
