"""The brain: concept encoder → one concept vector → prefix for the language decoder.

Concept encoder: byte ids (left-padded) → transformer → mean pool → concept [B, D].
ConceptProjector: concept → N prefix embeddings [B, N, D].
MemoryProjector: K retrieved concept vectors [B, K, D] → cross-attention source.
LanguageDecoder: [N prefix] + BOS + text → logits at text positions only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gestalt_jax import config as config_lib
from gestalt_jax.model.layers import StackConfig, dense
from gestalt_jax.model.ngrams import segment_cumsum
from gestalt_jax.model.transformer import ByteEncoder, Stack, embedding, stack_config


# Parameters that only memory reaches: without memory, cross-attention is skipped and these
# rightly get no gradient.
MEMORY_PATHS = ("/cross/", "/cross_norm/", "memory_proj/")


class LanguageDecoder(nn.Module):
    """Causal LM over [prefix] + text with optional memory cross-attention and a KV cache.

    Text positions are 0.. from BOS; the prefix gets none (unrotated). While decoding,
    `positions_BxT` gives the text position of each new token and `rope_len` the cache's
    text capacity.

    Packed rows (`segments_BxT`, training): each example is N prefix slots, then BOS + text,
    its positions counted from its own start; `prefix_BxnxNxD` and `memory_BxnxKxD` hold every
    slot's prefix and memory, and each position sees only its own example's.
    """
    cfg: StackConfig
    vocab: int
    train: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, tokens_BxT, prefix_BxNxD=None, memory_BxMxD=None, positions_BxT=None,
                 rope_len=None, segments_BxT=None):
        B, T = tokens_BxT.shape
        x = embedding(self.vocab, self.cfg, "embed")(tokens_BxT)
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(T), (B, T))
        positions, memory_mask, N = positions_BxT, None, 0
        if segments_BxT is not None:
            x, positions, memory_BxMxD, memory_mask = _packed_inputs(
                x, segments_BxT, prefix_BxNxD, memory_BxMxD)
            rope_len = rope_len or T - prefix_BxNxD.shape[2]  # the text of one example, at most
        elif prefix_BxNxD is not None:
            N = prefix_BxNxD.shape[1]
            x = jnp.concatenate([prefix_BxNxD.astype(x.dtype), x], axis=1)
            positions = jnp.concatenate([jnp.full((B, N), -1, positions_BxT.dtype), positions_BxT], 1)
        h = Stack(self.cfg, self.train, self.decode, name="stack")(
            x, positions, memory_BxMxD=memory_BxMxD, rope_len=rope_len or T, segments_BxL=segments_BxT,
            memory_mask_Bx1xLxM=memory_mask)
        logits = dense(self.vocab, ("embed", "vocab"), self.cfg, "lm_head")(h[:, N:])
        return nn.with_logical_constraint(logits.astype(jnp.float32), ("batch", "length", "vocab"))


def _packed_inputs(x_BxTxD, segments_BxT, prefix_BxnxNxD, memory_BxnxKxD):
    """A packed decoder row's inputs: the first N positions of each example take its prefix
    vectors and get no RoPE (position < 0), its text counts from 0; memory flattened to
    [B, n·K, D] with the mask that keeps each position to its own example's K vectors."""
    B, n, N, D = prefix_BxnxNxD.shape
    within_BxT = segment_cumsum(jnp.ones_like(segments_BxT), segments_BxT) - 1
    slot_BxT = jnp.maximum(segments_BxT - 1, 0)
    idx_BxT = slot_BxT * N + jnp.clip(within_BxT, 0, N - 1)
    fill_BxTxD = jnp.take_along_axis(prefix_BxnxNxD.reshape(B, n * N, D), idx_BxT[..., None], axis=1)
    positions_BxT = within_BxT - N
    x_BxTxD = jnp.where((positions_BxT < 0)[..., None], fill_BxTxD.astype(x_BxTxD.dtype), x_BxTxD)
    if memory_BxnxKxD is None:
        return x_BxTxD, positions_BxT, None, None
    K = memory_BxnxKxD.shape[2]
    key_slot_M = jnp.repeat(jnp.arange(n), K)
    mask_Bx1xTxM = (slot_BxT[:, :, None] == key_slot_M)[:, None]
    return x_BxTxD, positions_BxT, memory_BxnxKxD.reshape(B, n * K, -1), mask_Bx1xTxM


class Brain(nn.Module):
    """Encoder, both projectors and the decoder. `__call__` is the SFT forward pass.

    In training, `concept_noise` adds Gaussian noise of that size relative to each concept's
    RMS before the prefix, to teach the decoder a whole training reply from anywhere near its
    concept, so that a new prompt whose concept lands near a known one is not answered with a
    blend of several (how far that goes: BENCHMARKS.md)."""
    enc: StackConfig
    dec: StackConfig
    n_prefix: int
    dec_vocab: int
    ngram_buckets: int = 0
    concept_noise: float = 0.0
    train: bool = False
    segments: int = 1             # most examples in one packed row

    def setup(self):
        D = self.dec.d_model
        self.encoder = ByteEncoder(self.enc, self.train, self.ngram_buckets)
        self.concept_proj = dense(self.n_prefix * D, ("embed", "mlp"), self.dec, "concept_proj",
                                  use_bias=True)
        self.memory_proj = dense(D, ("embed", "mlp"), self.dec, "memory_proj", use_bias=True)
        self.decoder = LanguageDecoder(self.dec, self.dec_vocab, self.train)

    def encode(self, enc_ids_BxL, enc_segments_BxL=None):
        """Concept vectors [B, D] (f32): the encoder's mean over real positions; per packed
        example [B, segments, D] with `enc_segments_BxL`."""
        return self.encoder(enc_ids_BxL, enc_segments_BxL, self.segments)[1]

    def prefix(self, concept_xD):
        """[..., D] -> [..., N, D]."""
        return self.concept_proj(concept_xD).reshape(*concept_xD.shape[:-1], self.n_prefix, -1)

    def memory(self, memory_xKxD):
        return None if memory_xKxD is None else self.memory_proj(memory_xKxD)

    def __call__(self, enc_ids_BxL, dec_ids_BxT, memory_BxKxD=None, enc_segments_BxL=None,
                 dec_segments_BxT=None, noise_scale=1.0):
        """Logits [B, T, V] at text positions, and the concept vectors [B, D].

        Packed rows (both segment arrays given, the same examples in the same slots of the
        encoder and decoder rows): logits at every position, concepts [B, segments, D],
        memory [B, segments, K, D]. `noise_scale` (a traced scalar) scales the concept noise
        (its ramp in training)."""
        concept_xD = self.encode(enc_ids_BxL, enc_segments_BxL)
        conditioned_xD = concept_xD
        if self.train and self.concept_noise > 0:
            rms_x1 = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(jnp.square(concept_xD), -1, keepdims=True)))
            eps_xD = jax.random.normal(self.make_rng("dropout"), concept_xD.shape, concept_xD.dtype)
            conditioned_xD = concept_xD + self.concept_noise * noise_scale * rms_x1 * eps_xD
        logits = self.decoder(dec_ids_BxT, self.prefix(conditioned_xD), self.memory(memory_BxKxD),
                              segments_BxT=dec_segments_BxT)
        return logits, concept_xD


def build_brain(c: ml_collections.ConfigDict, train: bool = False) -> Brain:
    b = c.brain
    enc = stack_config(b, c, layers=b.enc_layers, dropout=b.enc_dropout, causal=False, cross=False,
                       train_len=b.enc_len)
    dec = stack_config(b, c, layers=b.dec_layers, dropout=b.dec_dropout, causal=True, cross=True,
                       train_len=b.dec_len)
    return Brain(enc, dec, b.n_prefix, config_lib.decoder_vocab(c), b.ngram_buckets, c.sft.concept_noise, train,
                 c.sft.segments)
