"""The transformer stack shared by encoder, decoder, planner and policy."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gestalt_jax.model.layers import Block, RMSNorm, StackConfig
from gestalt_jax.model.ngrams import NgramInput, per_segment, segment_cumsum
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


def text_positions(valid_BxL, segments_BxL=None):
    """RoPE positions counted from the first real token of each row, or of each packed example
    (padding gets -1)."""
    if segments_BxL is None:
        return jnp.where(valid_BxL, jnp.cumsum(valid_BxL, axis=1) - 1, -1)
    return jnp.where(valid_BxL, segment_cumsum(valid_BxL.astype(jnp.int32), segments_BxL) - 1, -1)


def mean_pool(h_BxLxD, valid_BxL, segments_BxL=None, num_segments: int = 1):
    """Mean over real positions [B, D], or over each packed example's [B, num_segments, D]: with
    padding every row would end alike, so no last-token pooling."""
    w_BxL = valid_BxL.astype(jnp.float32)
    if segments_BxL is None:
        total = jnp.sum(h_BxLxD.astype(jnp.float32) * w_BxL[..., None], axis=1)
        return total / jnp.maximum(jnp.sum(w_BxL, axis=1), 1.0)[:, None]
    total_BxnxD = per_segment(h_BxLxD * w_BxL[..., None], segments_BxL, num_segments)
    return total_BxnxD / jnp.maximum(per_segment(w_BxL, segments_BxL, num_segments), 1.0)[..., None]


def segment_mask(segments_BxL):
    """[B, 1, L, L]: whether query and key belong to the same packed example (or both to padding)."""
    return (segments_BxL[:, :, None] == segments_BxL[:, None, :])[:, None]


class Stack(nn.Module):
    """cfg.layers blocks and a final norm over already-embedded inputs.

    Non-causal stacks see `valid_BxL` as a key-padding mask; causal stacks rely on right
    padding and mask the future only. With `segments_BxL` (packed rows), no position sees
    another example's. `rope_len` is the text length the rotary tables are built for (the
    full length, or the cache capacity when decoding); `memory_mask_Bx1xLxM` keeps packed
    positions to their own example's memory. In a causal stack, positions where `both_ways_BxL`
    holds (of one example) also see each other both ways, as in a prefix LM; when decoding they
    must all come in the prefill.
    """
    cfg: StackConfig
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxLxD, positions_BxL, valid_BxL=None, memory_BxMxD=None, rope_len=None,
                 segments_BxL=None, memory_mask_Bx1xLxM=None, both_ways_BxL=None):
        cfg = self.cfg
        L = x_BxLxD.shape[1]
        rope_len = rope_len or L
        if cfg.causal:
            mask = jnp.tril(jnp.ones((L, L), bool))[None, None]
            if both_ways_BxL is not None:
                mask = mask | (both_ways_BxL[:, None, :, None] & both_ways_BxL[:, None, None, :])
        else:
            mask = valid_BxL[:, None, None, :]
        if segments_BxL is not None:
            mask = mask & segment_mask(segments_BxL)
        block = nn.remat(Block) if cfg.remat else Block
        x_BxLxD = nn.with_logical_constraint(x_BxLxD.astype(cfg.dtype), ("batch", "length", "embed"))
        for i in range(cfg.layers):
            x_BxLxD = block(cfg, rope_len, self.train, self.decode, name=f"block_{i}")(
                x_BxLxD, positions_BxL, mask, memory_BxMxD, memory_mask_Bx1xLxM, both_ways_BxL)
        return RMSNorm(dtype=cfg.dtype, param_dtype=cfg.param_dtype, name="final_norm")(x_BxLxD)


class ByteEncoder(nn.Module):
    """Left-padded byte ids → per-position states [B, L, D] and their mean over real positions [B, D].

    Shared by the concept encoder and the policy: one byte vocabulary for both. With
    `ngram_buckets`, each position's input also holds the character n-grams ending there
    (model/ngrams.py), so a word shares evidence with every other word of the same stems
    however the rest of the text is phrased.

    With `segments_BxL` (packed rows: each example's slot, 0 on padding) the mean is per
    example [B, num_segments, D]; an example sees nothing of the others."""
    cfg: StackConfig
    train: bool = False
    ngram_buckets: int = 0

    @nn.compact
    def __call__(self, ids_BxL, segments_BxL=None, num_segments: int = 1):
        cfg = self.cfg
        valid_BxL = ids_BxL != byte_tok.PAD
        x = embedding(byte_tok.VOCAB_SIZE, cfg, "embed")(ids_BxL)
        if self.ngram_buckets:
            x = x + NgramInput(self.ngram_buckets, cfg, name="ngrams")(
                ids_BxL, ids_BxL < 256, segments_BxL).astype(x.dtype)
        h_BxLxD = Stack(cfg, self.train, name="stack")(
            x, text_positions(valid_BxL, segments_BxL), valid_BxL, segments_BxL=segments_BxL)
        return h_BxLxD, mean_pool(h_BxLxD, valid_BxL, segments_BxL, num_segments)
