"""The transformer stack shared by encoder, decoder, planner and policy."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gestalt_jax.model.layers import Block, RMSNorm, StackConfig
from gestalt_jax.model.ngrams import NgramInput
from gestalt_jax.text import bytes as byte_tok


def stack_config(section: ml_collections.ConfigDict, c: ml_collections.ConfigDict, *, layers: int,
                 dropout: float, causal: bool, cross: bool, train_len: int) -> StackConfig:
    """A StackConfig from one model section of the config (brain, planner or policy)."""
    return StackConfig(
        d_model=section.d_model, heads=section.heads, d_ff=section.d_ff, layers=layers,
        dropout=dropout, causal=causal, cross=cross, train_len=train_len,
        rope_base=section.rope_base,
        yarn_beta_fast=section.yarn_beta_fast, yarn_beta_slow=section.yarn_beta_slow,
        dtype=jnp.dtype(c.compute_dtype), param_dtype=jnp.dtype(c.param_dtype), remat=c.remat)


def embedding(vocab: int, cfg: StackConfig, name: str) -> nn.Embed:
    return nn.Embed(vocab, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name,
                    embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                                ("vocab", "embed")))


def text_positions(valid_BxL):
    """RoPE positions counted from each row's first real token (left padding gets -1)."""
    return jnp.where(valid_BxL, jnp.cumsum(valid_BxL, axis=1) - 1, -1)


def mean_pool(h_BxLxD, valid_BxL):
    """Mean over real positions: with padding every row would end alike, so no last-token pooling."""
    w_BxLx1 = valid_BxL[..., None].astype(jnp.float32)
    total = jnp.sum(h_BxLxD.astype(jnp.float32) * w_BxLx1, axis=1)
    return total / jnp.maximum(jnp.sum(w_BxLx1, axis=1), 1.0)


class Stack(nn.Module):
    """cfg.layers blocks and a final norm over already-embedded inputs.

    Non-causal stacks see `valid_BxL` as a key-padding mask; causal stacks rely on right
    padding and mask the future only. `rope_len` is the text length the rotary tables are
    built for (the full length, or the cache capacity when decoding).
    """
    cfg: StackConfig
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, positions_BxL, valid_BxL=None, memory_BxMxD=None, rope_len=None):
        cfg = self.cfg
        L = x_BxLxD.shape[1]
        rope_len = rope_len or L
        if cfg.causal:
            mask = jnp.tril(jnp.ones((L, L), bool))[None, None]
        else:
            mask = valid_BxL[:, None, None, :]
        block = nn.remat(Block) if cfg.remat else Block
        x_BxLxD = nn.with_logical_constraint(x_BxLxD.astype(cfg.dtype), ("batch", "length", "embed"))
        for i in range(cfg.layers):
            x_BxLxD = block(cfg, rope_len, self.train, self.decode, name=f"block_{i}")(
                x_BxLxD, positions_BxL, mask, memory_BxMxD)
        return RMSNorm(dtype=cfg.dtype, param_dtype=cfg.param_dtype, name="final_norm")(x_BxLxD)


class ByteEncoder(nn.Module):
    """Left-padded byte ids → per-position states [B, L, D] and their mean over real positions [B, D].

    Shared by the concept encoder and the policy: one byte vocabulary for both. With
    `ngram_buckets`, each position's input also holds the character n-grams ending there
    (model/ngrams.py), so a word shares evidence with every other word of the same stems
    however the rest of the text is phrased."""
    cfg: StackConfig
    train: bool = False
    ngram_buckets: int = 0

    @nn.compact
    def __call__(self, ids_BxL):
        cfg = self.cfg
        valid_BxL = ids_BxL != byte_tok.PAD
        x = embedding(byte_tok.VOCAB_SIZE, cfg, "embed")(ids_BxL)
        if self.ngram_buckets:
            x = x + NgramInput(self.ngram_buckets, cfg, name="ngrams")(ids_BxL, ids_BxL < 256).astype(x.dtype)
        h_BxLxD = Stack(cfg, self.train, name="stack")(x, text_positions(valid_BxL), valid_BxL)
        return h_BxLxD, mean_pool(h_BxLxD, valid_BxL)
