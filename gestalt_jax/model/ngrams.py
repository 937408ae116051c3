"""A bag of hashed character n-grams: the mean embedding of every n-gram of a text.

A byte transformer trained on a few thousand goals keys on whole phrasings it has seen, so
a new phrasing of a known request can land on the wrong tool. Character n-grams (as in
fastText) carry the evidence of each word and word stem on its own: on the goal benches a
linear classifier over them alone classified 89% of the held-out intents, where the byte
transformer alone classified 73% (BENCHMARKS.md). Planner and policy add this bag to their
transformer's view of the goal.

Bytes are ASCII-lowercased; positions that are not text (padding, specials, plan tokens)
are word boundaries, so an n-gram may start or end at one (like fastText's `<wo` and `rd>`)
but every byte inside it is text. Each order n hashes (FNV-1a, seeded by n) into one shared
table of `buckets` rows. Everything runs on device from the byte ids.

In a packed row (data/packing.py) an n-gram belongs to the example of its last inner byte,
and the bytes of every other example are boundaries to it: each example gets exactly the
n-grams it would get alone.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gestalt_jax.model.layers import RMSNorm, StackConfig

ORDERS = (3, 4, 5, 6)
_FNV_OFFSET, _FNV_PRIME, _BOUNDARY = 0x811C9DC5, 16777619, ord(" ")


def ngram_buckets(bytes_BxL, text_BxL, n: int, buckets: int, segments_BxL=None):
    """The bucket of the n-gram ending at each position [B, L], whether it counts [B, L] and the
    packed slot it belongs to [B, L] (0 everywhere without `segments_BxL`).

    `bytes_BxL` holds byte values (anything where `text_BxL` is False); an n-gram counts when
    its inner n-2 bytes are text of its slot (its first and last may be boundaries). Its slot
    is that of its last inner byte; bytes of other slots are boundaries.
    """
    B, L = bytes_BxL.shape
    seg_BxL = jnp.zeros((B, L), jnp.int32) if segments_BxL is None else segments_BxL.astype(jnp.int32)
    owner_BxL = jnp.pad(seg_BxL, ((0, 0), (1, 0)))[:, :L]
    b = jnp.where(text_BxL, bytes_BxL, _BOUNDARY)
    b = jnp.where((b >= ord("A")) & (b <= ord("Z")), b + 32, b).astype(jnp.uint32)
    b_pad = jnp.pad(b, ((0, 0), (n - 1, 0)), constant_values=_BOUNDARY)
    text_pad = jnp.pad(text_BxL, ((0, 0), (n - 1, 0)))
    seg_pad = jnp.pad(seg_BxL, ((0, 0), (n - 1, 0)), constant_values=-1)
    h = jnp.full((B, L), (_FNV_OFFSET + n) & 0xFFFFFFFF, jnp.uint32)
    counts = jnp.ones((B, L), bool)
    for k in range(n):
        same_BxL = (seg_pad[:, k: k + L] == owner_BxL) if segments_BxL is not None else True
        h = (h ^ jnp.where(same_BxL, b_pad[:, k: k + L], _BOUNDARY)) * jnp.uint32(_FNV_PRIME)
        if 0 < k < n - 1:
            counts = counts & text_pad[:, k: k + L] & same_BxL
    return (h % jnp.uint32(buckets)).astype(jnp.int32), counts, owner_BxL


def segment_cumsum(x_BxL, segments_BxL):
    """Cumulative sums along axis 1 that restart at each packed slot (x may have trailing axes)."""
    total = jnp.cumsum(x_BxL, axis=1)
    L = segments_BxL.shape[1]
    new_BxL = segments_BxL != jnp.pad(segments_BxL, ((0, 0), (1, 0)), constant_values=-1)[:, :L]
    first_BxL = jax.lax.cummax(jnp.where(new_BxL, jnp.arange(L), 0), axis=1)
    idx = first_BxL.reshape(first_BxL.shape + (1,) * (x_BxL.ndim - 2))
    before = jnp.take_along_axis(total - x_BxL, idx, axis=1)
    return total - before


def per_segment(x_BxLx, owner_BxL, num_segments: int):
    """Sums of x over each packed slot 1..num_segments [B, n, ...] (slot 0, padding, dropped)."""
    onehot_BxLxn = jax.nn.one_hot(owner_BxL - 1, num_segments, dtype=jnp.float32)
    return jnp.einsum("bl...,bln->bn...", x_BxLx.astype(jnp.float32), onehot_BxLxn)


class NgramBag(nn.Module):
    """Mean n-gram embedding, RMS-normalised, pooled by `pool`: "row" over each row [B, D];
    "prefix" over each prefix [B, L, D] (position i sees the n-grams ending at or before i);
    "position" over the n-grams ending at each position [B, L, D] (zero where none does).

    Pooled by row, the text may end at the last position, so a boundary follows it. With
    `segments_BxL` (a packed row), "row" pools each slot [B, num_segments, D], and "prefix"
    and "position" see only the n-grams of the position's own slot."""
    buckets: int
    cfg: StackConfig
    pool: str = "row"

    @nn.compact
    def __call__(self, bytes_BxL, text_BxL, segments_BxL=None, num_segments: int = 1):
        cfg = self.cfg
        if self.pool not in ("row", "prefix", "position"):
            raise ValueError(f"NgramBag pool {self.pool!r}: expected row, prefix or position")
        if self.pool == "row":
            bytes_BxL = jnp.pad(bytes_BxL, ((0, 0), (0, 1)))
            text_BxL = jnp.pad(text_BxL, ((0, 0), (0, 1)))
            if segments_BxL is not None:
                segments_BxL = jnp.pad(segments_BxL, ((0, 0), (0, 1)))
        table = self.param("table", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
                           (self.buckets, cfg.d_model), cfg.param_dtype)
        total_BxLxD, count_BxL = 0.0, 0.0
        for n in ORDERS:
            ids_BxL, counts_BxL, owner_BxL = ngram_buckets(bytes_BxL, text_BxL, n, self.buckets, segments_BxL)
            if segments_BxL is not None and self.pool != "row":  # ends in another slot: not this position's
                counts_BxL = counts_BxL & (owner_BxL == segments_BxL)
            w_BxL = counts_BxL.astype(jnp.float32)
            total_BxLxD = total_BxLxD + jnp.take(table, ids_BxL, axis=0).astype(jnp.float32) * w_BxL[..., None]
            count_BxL = count_BxL + w_BxL
        if self.pool == "prefix":
            if segments_BxL is None:
                total_BxLxD, count_BxL = jnp.cumsum(total_BxLxD, axis=1), jnp.cumsum(count_BxL, axis=1)
            else:
                total_BxLxD = segment_cumsum(total_BxLxD, segments_BxL)
                count_BxL = segment_cumsum(count_BxL, segments_BxL)
        elif self.pool == "row":
            if segments_BxL is None:
                total_BxLxD, count_BxL = jnp.sum(total_BxLxD, axis=1), jnp.sum(count_BxL, axis=1)
            else:
                total_BxLxD = per_segment(total_BxLxD, owner_BxL, num_segments)
                count_BxL = per_segment(count_BxL, owner_BxL, num_segments)
        mean = total_BxLxD / jnp.maximum(count_BxL, 1.0)[..., None]
        out = RMSNorm(dtype=cfg.dtype, param_dtype=cfg.param_dtype, name="norm")(mean.astype(cfg.dtype))
        return out * (count_BxL > 0)[..., None].astype(out.dtype) if self.pool == "position" else out


class NgramInput(nn.Module):
    """The n-grams ending at each position [B, L, D] as an addition to a stack's input, scaled
    per channel from the byte embedding's size (0.02) so neither drowns the other at the start."""
    buckets: int
    cfg: StackConfig

    @nn.compact
    def __call__(self, bytes_BxL, text_BxL, segments_BxL=None):
        cfg = self.cfg
        local_BxLxD = NgramBag(self.buckets, cfg, pool="position", name="bag")(bytes_BxL, text_BxL, segments_BxL)
        scale_D = self.param("scale", nn.with_logical_partitioning(nn.initializers.constant(0.02), ("embed",)),
                             (cfg.d_model,), cfg.param_dtype)
        return (local_BxLxD * scale_D).astype(cfg.dtype)
